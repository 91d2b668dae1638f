#!/usr/bin/env python3
"""Takeover time of a director pair (issue 11): rvs against keepalived, same topology, same run.

    python3 ci/failover.py [--runs N] [--modes nat,dr,keepalived] [--out perf/results/failover.md]

For each rvs mode (nat, dr), N times: a fresh ci/netns.py HaTopology, two rvs
directors (dir1 priority 150 master, dir2 priority 100 backup, VRRPv3 every
100 ms, unicast peers, connection sync on), a client HTTP loop through the VIP
(one GET every 50 ms, each in its own thread: ci/e2e/nsclient.py http-loop),
`kill -9` of the master; the takeover time is the longest gap between two
successful requests.

The baseline, N times as well: two Debian keepalived (VRRPv3, advert_int 0.1,
priorities 150/100, unicast peers, the same address list: VIP on dc, the
servers' gateway on ds) in the same two namespaces on plain kernel veths, a
client ICMP echo loop to the VIP every 10 ms and the same 50 ms HTTP loop
against a small HTTP server (ci/realserver.py on :80) in each keepalived
namespace. The master's keepalived processes get SIGKILL and, at once, its
veths go down: a killed keepalived leaves the VIP in its kernel, which would
go on answering, so the machine is taken off the wire as a crashed director
is (rvs's kill -9 leaves nothing answering either). The figure is the
longest gap between two echo replies (and between two HTTP successes).

Output: a Markdown table (mode, runs, median gap ms, max gap ms, ...) printed
and written to --out, and the per-run rows as CSV beside it (same name, .csv).
`--runs 2` is the short form CI runs. Needs root; rvs modes need an rvs
binary with [ha] (RVS_BIN or target/release/rvs), else they are reported as
not run and the baseline still is.
"""

import argparse
import csv
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "e2e"))

import lib  # noqa: E402
import netns  # noqa: E402

VIP = lib.VIP


def log(msg):
    print(f"[failover] {msg}", file=sys.stderr, flush=True)


def loop_result(path):
    r = lib.read_json_output(path)
    return r


# ------------------------------------------------------------------ keepalived pair
def keepalived_run(i, keep=False, loop_secs=6.0, kill_after=2.5):
    wd = tempfile.mkdtemp(prefix="rvs-failover-ka-")
    topo = netns.HaTopology()
    ok = False
    try:
        topo.up()
        kas = {}
        for name in ("dir1", "dir2"):
            topo.kernel_director(name)
            # an HTTP server answering on the VIP while this namespace owns it
            with open(os.path.join(wd, f"http-{name}.log"), "w") as f:
                topo.popen(topo.dirs[name], [sys.executable, os.path.join(HERE, "realserver.py"), "--name", name,
                                             "--http-port", "80", "--udp-port", "5354"],
                           stdout=f, stderr=subprocess.STDOUT)
            kas[name] = lib.Keepalived(topo, wd, name).start()
        lib.wait_for(lambda: kas["dir1"].state() == "MASTER" and kas["dir2"].state() == "BACKUP", 10,
                     what="keepalived dir1 MASTER, dir2 BACKUP")
        lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                     10, what="VIP:80 reachable")
        stop = os.path.join(wd, "stop")
        icmp = lib.client_popen(topo, "icmp-loop", VIP, "--interval", "0.01", "--duration", str(loop_secs + 10),
                                "--stop-file", stop, stdout_path=os.path.join(wd, "icmp.json"))
        http = lib.client_popen(topo, "http-loop", VIP, "80", "--interval", "0.05",
                                "--duration", str(loop_secs + 10), "--stop-file", stop, "--timeout", "3",
                                stdout_path=os.path.join(wd, "http.json"))
        time.sleep(kill_after)
        t_kill = kas["dir1"].kill9(links_down=True)
        lib.wait_for(lambda: kas["dir2"].state() == "MASTER", 10, what="keepalived dir2 MASTER")
        time.sleep(max(0.0, loop_secs - kill_after))
        open(stop, "w").close()
        icmp.wait(timeout=30)
        http.wait(timeout=30)
        ri = loop_result(os.path.join(wd, "icmp.json"))
        rh = loop_result(os.path.join(wd, "http.json"))
        row = {"mode": "keepalived", "run": i, "gap_ms": round(ri["max_gap"] * 1000, 1),
               "http_gap_ms": round(rh["max_gap"] * 1000, 1),
               "gap_after_kill_ms": round((ri["gap_start"] - t_kill) * 1000, 1) if ri["gap_start"] else None,
               "probes": ri["sent"], "lost": ri["lost"], "http_ok": rh["ok"], "http_failed": rh["failed"],
               "new_master": "dir2" if kas["dir2"].state() == "MASTER" else "?"}
        log(f"keepalived run {i}: ping gap {row['gap_ms']} ms ({ri['lost']}/{ri['sent']} lost), "
            f"http gap {row['http_gap_ms']} ms ({rh['failed']} failed)")
        ok = True
        return row
    finally:
        topo.down()
        if ok and not keep:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            log(f"artifacts kept in {wd}")


# ------------------------------------------------------------------ rvs pair
def rvs_run(mode, i, keep=False, loop_secs=6.0, kill_after=2.5):
    wd = tempfile.mkdtemp(prefix=f"rvs-failover-{mode}-")
    topo = netns.HaTopology(dr=(mode == "dr"))
    ok = False
    group = lib.HaGroup()
    try:
        topo.up()
        topo.start_realservers(wd)
        dirs = lib.ha_start_pair(topo, wd, group, forward=mode)
        stop = os.path.join(wd, "stop")
        http = lib.client_popen(topo, "http-loop", VIP, "80", "--interval", "0.05",
                                "--duration", str(loop_secs + 10), "--stop-file", stop, "--timeout", "3",
                                stdout_path=os.path.join(wd, "http.json"))
        time.sleep(kill_after)
        t_kill = dirs["dir1"].kill9()
        dirs["dir2"].wait_role("master", 10)
        ch = [c for c in lib.role_changes(dirs["dir2"].log_text()) if c[2] == "master" and c[0] >= t_kill - 0.05]
        took = round((ch[0][0] - t_kill) * 1000, 1) if ch else None
        time.sleep(max(0.0, loop_secs - kill_after))
        open(stop, "w").close()
        http.wait(timeout=30)
        rh = loop_result(os.path.join(wd, "http.json"))
        row = {"mode": f"rvs-{mode}", "run": i, "gap_ms": round(rh["max_gap"] * 1000, 1),
               "http_gap_ms": round(rh["max_gap"] * 1000, 1),
               "gap_after_kill_ms": round((rh["gap_start"] - t_kill) * 1000, 1) if rh["gap_start"] else None,
               "probes": rh["sent"], "lost": rh["failed"], "http_ok": rh["ok"], "http_failed": rh["failed"],
               "new_master": "dir2", "takeover_log_ms": took}
        log(f"rvs {mode} run {i}: http gap {row['gap_ms']} ms ({rh['failed']}/{rh['sent']} failed); "
            f"dir2 logged its takeover {took} ms after the kill")
        ok = True
        return row
    except Exception:
        sys.stderr.write(group.diagnostics())
        raise
    finally:
        group.stop()
        topo.down()
        if ok and not keep:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            log(f"artifacts kept in {wd}")


# ------------------------------------------------------------------ report
def summarize(rows, modes, runs, skipped):
    out = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"# Director takeover time (ci/failover.py, {now})\n")
    out.append("kill -9 of the master; gap = longest time between two successful client probes "
               "(rvs: HTTP GET through the VIP every 50 ms; keepalived: ICMP echo to the VIP every 10 ms, "
               "and the same 50 ms HTTP loop against a server in the keepalived namespace). "
               "VRRPv3 adverts every 100 ms, priorities 150/100, unicast peers, on ci/netns.py HaTopology.\n")
    out.append("| mode | runs | median gap ms | max gap ms | median HTTP gap ms | max HTTP gap ms | "
               "median kill -> new master logs ms |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for m in modes:
        key = "keepalived" if m == "keepalived" else f"rvs-{m}"
        rs = [r for r in rows if r["mode"] == key]
        if m in skipped:
            out.append(f"| {key} | 0 | not run: {skipped[m]} | | | | |")
            continue
        g = [r["gap_ms"] for r in rs]
        h = [r["http_gap_ms"] for r in rs]
        fails = runs - len(rs)
        name = key + (" (ICMP 10 ms)" if m == "keepalived" else " (HTTP 50 ms)")
        if not g:
            out.append(f"| {name} | 0 | all {runs} runs failed | | | | |")
            continue
        tl = [r["takeover_log_ms"] for r in rs if r.get("takeover_log_ms") is not None]
        out.append(f"| {name} | {len(rs)}{f' ({fails} failed)' if fails else ''} | {statistics.median(g):.0f} | "
                   f"{max(g):.0f} | {statistics.median(h):.0f} | {max(h):.0f} | "
                   f"{f'{statistics.median(tl):.0f}' if tl else 'n/a'} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--modes", default="nat,dr,keepalived", help="comma list of nat, dr, keepalived")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "perf", "results", "failover.md"))
    ap.add_argument("--keep", action="store_true", help="keep every run's temp dir")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("failover.py needs root")
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("nat", "dr", "keepalived"):
            sys.exit(f"unknown mode {m!r}")
    netns.cleanup_leftovers(quiet=True)
    skipped = {}
    if any(m != "keepalived" for m in modes):
        ok, why = lib.rvs_supports_ha()
        if not ok:
            for m in modes:
                if m != "keepalived":
                    skipped[m] = why
            log(f"rvs modes not run: {why}")
    if "keepalived" in modes and shutil.which("keepalived") is None:
        skipped["keepalived"] = "keepalived is not installed (ci/setup.sh)"
    rows = []
    for m in modes:
        if m in skipped:
            continue
        for i in range(1, a.runs + 1):
            try:
                rows.append(keepalived_run(i, a.keep) if m == "keepalived" else rvs_run(m, i, a.keep))
            except Exception as e:
                log(f"{m} run {i} failed: {type(e).__name__}: {e}")
    text = summarize(rows, modes, a.runs, skipped)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    csv_path = os.path.splitext(a.out)[0] + ".csv"
    fields = ["mode", "run", "gap_ms", "http_gap_ms", "gap_after_kill_ms", "probes", "lost", "http_ok",
              "http_failed", "new_master", "takeover_log_ms"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    log(f"wrote {a.out} and {csv_path}")
    want = sum(a.runs for m in modes if m not in skipped)
    return 0 if len(rows) == want else 1


if __name__ == "__main__":
    sys.exit(main())
