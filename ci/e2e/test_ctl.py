"""Live control (issue 6): `rvs ctl`, hot reconfiguration, SIGHUP, counters, metrics.

Each test runs once with 1 worker and once with 2 (`name[w1]`, `name[w2]`), on a
fresh topology with a fresh director (lib.Env). `rvs ctl` runs in the root
namespace (the API is a Unix socket: a path, not a network address); the
metrics endpoint is fetched with curl inside the director's namespace.

Traffic that must never fail runs the whole time as a "stream": a helper in the
client namespace (this file run as a script: `test_ctl.py stream ...`) that makes
one fresh HTTP request after another from its own source address and logs each
one (start and end time, who answered, or the error) as a JSON line, until a
stop file appears.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import lib
from lib import (PY, VIP, Skip, check, client_popen, e2e, expected_sha256, fake_mode,
                 read_json_output, rvs_binary, say)
import netns

BLOB = 50 * 1000 * 1000
SVC80 = f"tcp:{VIP}:80"
SVC53 = f"udp:{VIP}:53"
NAMES = {addr: name for name, addr in netns.SERVERS.items()}
RS4 = ("rs4", "198.19.0.14")
NAMES[RS4[1]] = RS4[0]
STREAM_SRC = "198.18.0.20"


# ------------------------------------------------------------------ helpers
def no_fake():
    if fake_mode():
        raise Skip("the fake director has no control API")


def sock(env):
    return os.path.join(env.workdir, "rvs.sock")


def ctl(env, *args, timeout=60):
    """rvs ctl -s SOCKET ARGS -> (exit code, stdout, stderr)."""
    p = subprocess.run([rvs_binary(), "ctl", "-s", sock(env), *args], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ctl_ok(env, *args):
    rc, out, err = ctl(env, *args)
    check(rc == 0, f"rvs ctl {' '.join(args)}: exit {rc}: {err.strip()}")
    return out


def ctl_json(env, *args):
    return json.loads(ctl_ok(env, *args, "--json"))


def ctl_fails(env, args, code, *needles):
    rc, out, err = ctl(env, *args)
    check(rc == code, f"rvs ctl {' '.join(args)}: exit {rc}, want {code} (stderr {err.strip()!r})")
    for n in needles:
        check(n in err, f"rvs ctl {' '.join(args)}: {n!r} not in {err.strip()!r}")
    return err.strip()


def server_of(listing, service, address):
    for s in listing["services"]:
        if f"{s['protocol']}:{s['vip']}:{s['port']}" == service:
            for d in s["servers"]:
                if d["address"] == address:
                    return d
    return None


def service_of(listing, service):
    for s in listing["services"]:
        if f"{s['protocol']}:{s['vip']}:{s['port']}" == service:
            return s
    return None


def four_servers(env):
    """The standard topology plus rs4 (198.19.0.14), a real server that is
    running but not in the configuration: `add-server` brings it in."""
    env.topo = netns.Topology(servers={**netns.SERVERS, RS4[0]: RS4[1]})


def wait_for(what, cond, timeout=10.0, step=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


class Stream:
    """Fresh HTTP requests one after another from the client namespace."""

    def __init__(self, env, port=80, source=STREAM_SRC, gap=0.02, name="stream"):
        self.env = env
        self.out = os.path.join(env.workdir, f"{name}.jsonl")
        self.stop_file = os.path.join(env.workdir, f"{name}.stop")
        self.log = os.path.join(env.workdir, f"{name}.log")
        self.args = [PY, os.path.abspath(__file__), "stream", VIP, str(port), "--out", self.out,
                     "--stop", self.stop_file, "--source", source, "--gap", str(gap)]
        self.proc = None

    def start(self):
        with open(self.log, "w") as f:
            self.proc = self.env.topo.popen(self.env.topo.client, self.args, stdout=f,
                                            stderr=subprocess.STDOUT)
        wait_for("the stream's first answer", lambda: self.results(), timeout=15)
        return self

    def results(self):
        try:
            with open(self.out) as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass          # a line being written
        return out

    def errors(self):
        return [r for r in self.results() if r.get("error")]

    def check_alive(self):
        check(self.proc.poll() is None, f"stream ended early: {open(self.log).read()[-500:]}")
        errs = self.errors()
        check(not errs, f"{len(errs)} stream requests failed, first: {errs[:3]}")

    def stop(self):
        with open(self.stop_file, "w"):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("stream did not stop")
        return self.results()


def answered_after(results, t):
    """{server: count} of the stream requests that started after wall time t."""
    out = {}
    for r in results:
        if r["t0"] > t and r.get("server"):
            out[r["server"]] = out.get(r["server"], 0) + 1
    return out


def counts(results):
    return answered_after(results, 0)


def start_download(env, rate="2M"):
    out = os.path.join(env.workdir, "blob")
    js = os.path.join(env.workdir, "download.json")
    dl = client_popen(env.topo, "download", f"http://{VIP}/blob?size={BLOB}", "--out", out,
                      "--max-time", "150", "--limit-rate", rate, stdout_path=js)
    wait_for("download start", lambda: os.path.exists(out) and os.path.getsize(out) > 1 << 20,
             timeout=20)
    return dl, out, js


def finish_download(env, dl, out, js):
    try:
        dl.wait(timeout=170)
    except subprocess.TimeoutExpired:
        dl.kill()
        raise AssertionError("download did not finish within 170s")
    r = read_json_output(js)
    say(f"download: {r['bytes']} bytes in {r['seconds']:.1f}s ({r['MBps']} MB/s)")
    check(r["ok"], f"download failed: {r['error']}")
    check(r["bytes"] == BLOB and r["sha256"] == expected_sha256(BLOB),
          f"download corrupted: {r['bytes']} bytes sha256 {r['sha256']}")
    os.unlink(out)


# ------------------------------------------------------------------ tests
@e2e(timeout=300)
def ctl_live_changes(env):
    """Under a request stream and a 50 MB download: add-server brings rs4 in,
    edit-server --weight 0 drains the download's server (the download completes
    intact), del-server removes another, add-service opens VIP:8080 at once; no
    request fails; list --json matches, list --stats counts exactly."""
    no_fake()
    four_servers(env)
    env.setup()
    ctl_ok(env, "zero")
    stream = Stream(env).start()
    dl, out, js = start_download(env)

    # the download's connection, found in the workers' tables
    conns = ctl_json(env, "list", "--conns")
    mine = [c for c in conns["conns"] if c["client"] == netns.CLIENT_ADDR and c["vport"] == 80
            and c["state"] == "ESTABLISHED"]
    check(len(mine) == 1, f"want the download's one established connection, got {mine}")
    dl_addr = mine[0]["server"]
    dl_name = NAMES[dl_addr]
    streamed = [c for c in conns["conns"] if c["client"] == STREAM_SRC]
    check(streamed, "no stream connection in list --conns")
    check(all(c["protocol"] == "tcp" and c["vip"] == VIP and c["forward"] == "nat"
              and c["expires_ms"] > 0 for c in conns["conns"]), f"odd entries: {conns['conns'][:3]}")
    text = ctl_ok(env, "list", "--conns")
    check(text.startswith("IPVS connection entries\npro expire state") and
          re.search(rf"TCP \d\d:\d\d  ESTABLISHED {re.escape(netns.CLIENT_ADDR)}:\d+ +{re.escape(VIP)}:80 +"
                    rf"{re.escape(dl_addr)}:8080", text), f"list --conns:\n{text[:600]}")
    say(f"list --conns: {conns['total']} connections; the download is on {dl_name}")

    # 1. add-server: rs4 starts answering
    t = time.time()
    ctl_ok(env, "add-server", "--service", SVC80, "--server", f"{RS4[1]}:8080", "--weight", "2")
    wait_for("rs4 answering", lambda: answered_after(stream.results(), t).get("rs4"), timeout=10)
    say(f"add-server: rs4 answered {time.time() - t:.2f}s after the command")
    stream.check_alive()

    # 2. drain the download's server: no new connections, its download lives on
    check(dl.poll() is None, "the download ended before the drain")
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", f"{dl_addr}:8080", "--weight", "0")
    t_drain = time.time()
    n0 = len(stream.results())
    wait_for("20 requests after the drain", lambda: len(stream.results()) >= n0 + 20, timeout=30)
    after = answered_after(stream.results(), t_drain)
    check(dl_name not in after, f"drained {dl_name} still got new connections: {after}")
    lj = ctl_json(env, "list")
    d = server_of(lj, SVC80, dl_addr)
    running = dl.poll() is None
    check(d["weight"] == 0 and (d["active"] >= 1 or not running),
          f"drained server: weight {d['weight']} active {d['active']} (want 0, >= 1)")
    say(f"drain of {dl_name}: {sum(after.values())} requests since, none to it ({after}); "
        f"its download {'still running' if running else 'done'}, active {d['active']}")
    stream.check_alive()

    # 3. del-server (drained first, as an operator does: deleting drops its connections)
    victim = "rs3" if dl_name != "rs3" else "rs2"
    v_addr = netns.SERVERS[victim]
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", f"{v_addr}:8080", "--weight", "0")
    wait_for(f"{victim} without active connections",
             lambda: server_of(ctl_json(env, "list"), SVC80, v_addr)["active"] == 0, timeout=15)
    ctl_ok(env, "del-server", "--service", SVC80, "--server", f"{v_addr}:8080")
    t_del = time.time()
    n0 = len(stream.results())
    wait_for("20 requests after the delete", lambda: len(stream.results()) >= n0 + 20, timeout=30)
    after = answered_after(stream.results(), t_del)
    check(victim not in after and dl_name not in after, f"since the delete: {after}")
    check(server_of(ctl_json(env, "list"), SVC80, v_addr) is None, f"{victim} still listed")
    say(f"del-server {victim}: {sum(after.values())} requests since: {after}")
    stream.check_alive()

    # 4. add-service: a second port of the VIP answers at once
    t = time.monotonic()
    ctl_ok(env, "add-service", "--service", f"tcp:{VIP}:8080", "--scheduler", "rr")
    for name in ("rs1", "rs2"):
        ctl_ok(env, "add-server", "--service", f"tcp:{VIP}:8080", "--server",
               f"{netns.SERVERS[name]}:8080")
    r = env.client("http-many", VIP, "8080", "6", "--timeout", "5", "--deadline", "30", timeout=60)
    say(f"add-service tcp:{VIP}:8080 + 2 servers: 6 requests answered {r['counts']} "
        f"{time.monotonic() - t:.2f}s after the command")
    check(not r["errors"], f"the new service failed: {r['errors'][:3]}")
    check(r["counts"] == {"rs1": 3, "rs2": 3}, f"rr over rs1, rs2: {r['counts']}")

    results = stream.stop()
    finish_download(env, dl, out, js)
    errs = [x for x in results if x.get("error")]
    check(not errs, f"{len(errs)} of {len(results)} stream requests failed, first: {errs[:3]}")
    c = counts(results)
    say(f"stream: {len(results)} requests, 0 failed: {c}")

    # list --json is the configuration as changed
    lj = ctl_json(env, "list")
    got = [(s["protocol"], s["vip"], s["port"], s["scheduler"], s["forward"], s["persistence"],
            [(d["address"], d["port"], d["forward"], d["weight"], d["up"]) for d in s["servers"]])
           for s in lj["services"]]
    weights = {"rs1": 3, "rs2": 2, "rs3": 1}
    weights[dl_name] = 0
    srv80 = [(netns.SERVERS[n], 8080, "nat", weights[n], True) for n in ("rs1", "rs2", "rs3")
             if n != victim] + [(RS4[1], 8080, "nat", 2, True)]
    want = [("tcp", VIP, 80, "wrr", "nat", 0, srv80),
            ("udp", VIP, 53, "rr", "nat", 0,
             [(netns.SERVERS[n], 5353, "nat", 1, True) for n in ("rs1", "rs2", "rs3")]),
            ("tcp", VIP, 8080, "rr", "nat", 0,
             [(netns.SERVERS[n], 8080, "nat", 1, True) for n in ("rs1", "rs2")])]
    check(got == want, f"list --json:\n got  {got}\n want {want}")

    # list --stats: every connection since `zero` is one the test made
    s80 = service_of(lj, SVC80)
    for d in s80["servers"]:
        name = NAMES[d["address"]]
        exp = c.get(name, 0) + (1 if name == dl_name else 0)
        check(d["conns"] == exp, f"{name}: list says {d['conns']} connections, the test made {exp}")
        check(d["in_packets"] >= 3 * exp and d["out_packets"] >= 3 * exp,
              f"{name}: {d['in_packets']}/{d['out_packets']} packets for {exp} connections")
    check(s80["conns"] == len(results) + 1,
          f"service conns {s80['conns']} != {len(results)} stream requests + 1 download")
    check(s80["out_bytes"] > BLOB, f"service out_bytes {s80['out_bytes']} < the download")
    s8080 = service_of(lj, f"tcp:{VIP}:8080")
    check([d["conns"] for d in s8080["servers"]] == [3, 3], f"tcp:8080 conns {s8080}")
    check(service_of(lj, SVC53)["conns"] == 0, "udp:53 counted connections nobody made")
    stats = ctl_ok(env, "list", "--stats", "--exact")
    line = next(l for l in stats.splitlines() if l.startswith(f"TCP  {VIP}:80 "))
    check(line.split()[2:] == [str(s80[k]) for k in
                               ("conns", "in_packets", "out_packets", "in_bytes", "out_bytes")],
          f"list --stats line {line!r} != JSON {s80}")
    say(f"list --stats matches the test's own count: {s80['conns']} connections, "
        f"{s80['out_bytes']} bytes out")
    check(env.director.alive(), "director died")
    env.stop_director()


@e2e(timeout=240)
def ctl_sighup_reload(env):
    """SIGHUP applies a changed weight; it replaces API changes with the file; a
    broken file changes nothing and every error is logged. A stream runs throughout."""
    no_fake()
    env.setup()
    good = open(env.cfg).read()
    stream = Stream(env).start()
    gen0 = ctl_json(env, "list")["generation"]

    # rs3 weight 1 -> 0, rs1 3 -> 1: wrr 1,2,0
    lines = good.split("\n")
    # the first three `weight =` lines belong to tcp:80's rs1..rs3
    idx = [i for i, l in enumerate(lines) if l.strip().startswith("weight =")][:3]
    for i, w in zip(idx, (1, 2, 0)):
        lines[i] = re.sub(r"weight = \d+", f"weight = {w}", lines[i])
    changed = "\n".join(lines)
    with open(env.cfg, "w") as f:
        f.write(changed)
    env.director.proc.send_signal(signal.SIGHUP)
    lj = wait_for("the reload", lambda: (lambda l: l if l["generation"] > gen0 else None)(
        ctl_json(env, "list")), timeout=10)
    t = time.time()
    w = [d["weight"] for d in service_of(lj, SVC80)["servers"]]
    check(w == [1, 2, 0], f"weights after SIGHUP {w}, want [1, 2, 0]")
    # every connection from now on, the stream's and 30 fresh ones, follows wrr 1,2,0
    # (the stream shares the scheduler's cycle, so count them all, from `zero` on)
    ctl_ok(env, "zero")
    r = env.client("http-many", VIP, "80", "30", "--sources", "198.18.0.30", "--timeout", "5",
                   timeout=90)
    check(not r["errors"], f"requests after the reload failed: {r['errors'][:3]}")
    check("rs3" not in r["counts"], f"rs3 (weight 0) answered: {r['counts']}")
    n0 = len(stream.results())
    wait_for("stream requests after the reload", lambda: len(stream.results()) >= n0 + 10)
    check("rs3" not in answered_after(stream.results(), t), "rs3 (weight 0) got new connections")
    c = [d["conns"] for d in service_of(ctl_json(env, "list"), SVC80)["servers"]]
    n = c[0] + c[1]
    check(c[2] == 0 and n >= 30 and abs(3 * c[0] - n) <= 3,
          f"connections since the reload rs1,rs2,rs3 = {c}: not wrr 1,2,0")
    say(f"SIGHUP weights 1,2,0: connections since: rs1={c[0]} rs2={c[1]} rs3={c[2]} "
        f"(30 fresh requests: {r['counts']})")

    # an API change, then a reload of the same file: the file wins
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", "198.19.0.13:8080", "--weight", "5")
    check(server_of(ctl_json(env, "list"), SVC80, "198.19.0.13")["weight"] == 5, "edit-server")
    st = ctl_json(env, "status")
    check(st["api_changes"] == 1, f"status api_changes {st['api_changes']}")
    gen1 = ctl_json(env, "list")["generation"]
    env.director.proc.send_signal(signal.SIGHUP)
    wait_for("the second reload", lambda: ctl_json(env, "list")["generation"] > gen1)
    check(server_of(ctl_json(env, "list"), SVC80, "198.19.0.13")["weight"] == 0,
          "the reload did not replace the API change with the file")
    check(wait_for("the reload warning", lambda: "replaced by the file" in open(env.director.err).read()),
          "no warning that API changes were replaced")
    say("an API change (rs3 weight 5) is replaced by the file on SIGHUP, with a warning")

    # a broken file: three errors, nothing changes, each is logged
    broken = changed.replace('address = "198.19.0.12"\n  port = 8080', 'address = "198.19.0.300"\n  port = 8080', 1)
    broken = broken.replace('scheduler = "wrr"', 'scheduler = "wrr"\nbogus_key = 1', 1)
    broken = re.sub(r"weight = 1\n", "weight = -1\n", broken, count=1)
    check(broken.count("198.19.0.300") == 1 and "bogus_key" in broken and "weight = -1" in broken,
          "could not break the file")
    with open(env.cfg, "w") as f:
        f.write(broken)
    before = ctl_json(env, "list")
    log0 = len(open(env.director.err).read())
    env.director.proc.send_signal(signal.SIGHUP)
    want = ["service[0].bogus_key", "service[0].server[0].weight", "service[0].server[1].address"]
    log = wait_for("the refusal in the log",
                   lambda: (lambda s: s if all(w in s for w in want) else None)(
                       open(env.director.err).read()[log0:]), timeout=10)
    refused = [l for l in log.splitlines() if "reload refused" in l]
    for w in want:
        check(any(w in l for l in refused), f"no 'reload refused' line names {w}:\n{log}")
    after = ctl_json(env, "list")
    strip = lambda l: [(s["scheduler"], [(d["address"], d["port"], d["weight"]) for d in s["servers"]])  # noqa: E731
                       for s in l["services"]]
    check(strip(after) == strip(before), "a broken file changed the running configuration")
    check(after["generation"] == before["generation"], "a broken file published a snapshot")
    st = ctl_json(env, "status")
    check(st["reloads_failed"] >= 1, f"status reloads_failed {st['reloads_failed']}")
    say("broken file: refused, nothing changed; logged:")
    for l in refused:
        say("  " + l.split("reload refused: ", 1)[-1])
    r = env.client("http-many", VIP, "80", "10", "--sources", "198.18.0.31", timeout=60)
    check(not r["errors"], f"requests after the refused reload failed: {r['errors'][:3]}")
    results = stream.stop()
    errs = [x for x in results if x.get("error")]
    check(not errs, f"{len(errs)} of {len(results)} stream requests failed: {errs[:3]}")
    say(f"stream: {len(results)} requests, 0 failed")
    with open(env.cfg, "w") as f:
        f.write(good)
    env.stop_director()


@e2e(workers=(1,), timeout=240)
def ctl_save_round_trip(env):
    """`rvs ctl save` (issue 14): live changes written as TOML that keeps the
    file's comments; a director started from the saved file lists the same
    services; `save` with no FILE writes the file rvs was started with, and a
    reload warning names each live change it replaces."""
    no_fake()
    four_servers(env)
    env.setup()
    ctl_ok(env, "add-server", "--service", SVC80, "--server", f"{RS4[1]}:8080", "--weight", "4")
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", "198.19.0.11:8080", "--weight", "7")
    ctl_ok(env, "del-server", "--service", SVC80, "--server", "198.19.0.12:8080")
    ctl_ok(env, "edit-service", "--service", SVC80, "--scheduler", "wlc", "--persistence", "30")
    ctl_ok(env, "add-service", "--service", f"tcp:{VIP}:8081", "--scheduler", "rr")
    ctl_ok(env, "add-server", "--service", f"tcp:{VIP}:8081", "--server", "198.19.0.13:8080")
    before = ctl_json(env, "list")

    def strip(listing):
        return sorted((s["protocol"], s["vip"], s["port"], s["scheduler"], s["persistence"],
                       [(d["address"], d["port"], d["weight"], d["forward"]) for d in s["servers"]])
                      for s in listing["services"])

    # a relative FILE is the caller's, not the director's
    p = subprocess.run([rvs_binary(), "ctl", "-s", sock(env), "save", "saved.toml"],
                       capture_output=True, text=True, timeout=30, cwd=env.workdir)
    check(p.returncode == 0, f"rvs ctl save: exit {p.returncode}: {p.stderr.strip()}")
    saved = os.path.join(env.workdir, "saved.toml")
    say(p.stdout.strip())
    text = open(saved).read()
    check(text.startswith("# written by ci/e2e"), "the saved file lost the original's comments")
    check("198.19.0.12" not in text.split("port = 53")[0], "the deleted server is still saved")
    r = subprocess.run([rvs_binary(), "check", "-c", saved], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"rvs check of the saved file: {r.stdout}{r.stderr}")

    env.stop_director()
    env.cfg = saved
    env.director = lib.Director(env.topo, env.workdir, saved).start()
    env.director.wait_ready()
    after = ctl_json(env, "list")
    check(strip(after) == strip(before),
          f"restarted from the saved file, list differs:\n{strip(after)}\nwant\n{strip(before)}")
    r = env.client("http-many", VIP, "8081", "4", "--sources", "198.18.0.30", timeout=60)
    check(r["counts"] == {"rs3": 4}, f"the saved service tcp:{VIP}:8081 answered {r['counts']}")
    say(f"restarted from the saved file: same listing ({len(after['services'])} services); "
        f"the added service answers")

    # a live change, `save` with no FILE (the file rvs was started with), then one
    # more change that a reload replaces: the warning names it
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", "198.19.0.13:8080", "--weight", "2")
    ctl_ok(env, "save")
    check("weight = 2" in open(saved).read(), "save without FILE did not write the running file")
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", f"{RS4[1]}:8080", "--weight", "9")
    gen = ctl_json(env, "list")["generation"]
    env.director.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: ctl_json(env, "list")["generation"] > gen)
    check(server_of(ctl_json(env, "list"), SVC80, RS4[1])["weight"] == 4, "the reload kept a live change")
    check(server_of(ctl_json(env, "list"), SVC80, "198.19.0.13")["weight"] == 2, "the saved change was lost")
    log = wait_for("the named warning", lambda: (lambda s: s if "replaced by the file: changed server" in s
                                                  else None)(open(env.director.err).read()))
    line = [l for l in log.splitlines() if "replaced by the file: changed server" in l]
    check(len(line) == 1 and f"{RS4[1]}:8080" in line[0], f"reload warnings: {line}")
    say("reload warning: " + line[0].split("reload: ", 1)[-1])
    env.stop_director()


def raw(env, payload, shutdown=False, read=True, timeout=15):
    """Send raw bytes on the API socket; return what comes back."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock(env))
    try:
        s.sendall(payload)
    except OSError:
        pass
    if shutdown:
        s.shutdown(socket.SHUT_WR)
    data = b""
    if read:
        try:
            while not data.endswith(b"\n"):
                c = s.recv(65536)
                if not c:
                    break
                data += c
        except OSError:
            pass
    s.close()
    return data.decode(errors="replace")


@e2e(timeout=240)
def ctl_bad_input(env):
    """Garbage, oversized, half-written and idle clients and 50 concurrent ones on
    the API socket, and bad arguments: clear errors (exit 1), exit 2 with no
    director; the director keeps forwarding (a stream never fails)."""
    no_fake()
    env.setup()
    stream = Stream(env).start()

    # idle and half-written clients that hold on: nobody waits on them
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(sock(env))
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(sock(env))
    half.sendall(b'{"cmd":"li')
    t_idle = time.monotonic()

    r = raw(env, b"\x00\xff garbage \x7f\n")
    check('"ok":false' in r and "bad request" in r, f"garbage: {r!r}")
    r = raw(env, b'{"cmd":"format-disk"}\n')
    check("unknown variant" in r, f"unknown command: {r!r}")
    r = raw(env, b'{"cmd":"list","bogus":1}\n')
    check("unknown field" in r, f"unknown field: {r!r}")
    r = raw(env, b"x" * (100 * 1024))
    check("longer than 65536 bytes" in r, f"oversized: {r[:200]!r}")
    r = raw(env, b'{"cmd":"list"', shutdown=True)
    check("the stream ended after 13 bytes" in r, f"half-written then closed: {r!r}")
    # a connection survives garbage and serves the next request
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock(env))
    s.sendall(b"nonsense\n{\"cmd\":\"status\"}\n")
    f = s.makefile("r")
    a, b = json.loads(f.readline()), json.loads(f.readline())
    s.close()
    check(not a["ok"] and b["ok"] and b["result"]["role"] == "standalone", f"{a} / {b}")
    say("garbage, unknown command/field, 100 KiB line, half-written: each a clear error")

    # 50 concurrent raw clients and 10 rvs ctl processes, while idle/half hold on
    res, lock = [], threading.Lock()

    def one():
        try:
            out = raw(env, b'{"cmd":"list"}\n')
            ok = json.loads(out)["ok"]
        except Exception as e:  # noqa: BLE001 - reported below
            ok = f"{type(e).__name__}: {e}"
        with lock:
            res.append(ok)
    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    procs = [subprocess.Popen([rvs_binary(), "ctl", "-s", sock(env), "list", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(10)]
    for t in threads:
        t.join(timeout=30)
    outs = [p.communicate(timeout=30) for p in procs]
    dt = time.monotonic() - t0
    check(res.count(True) == 50, f"50 concurrent clients: {[r for r in res if r is not True][:3]}")
    check(all(p.returncode == 0 and json.loads(o)["services"] for p, (o, _) in zip(procs, outs)),
          f"rvs ctl under load: {[(p.returncode, e[-200:]) for p, (_, e) in zip(procs, outs)]}")
    check(dt < 8, f"60 clients took {dt:.1f}s (someone waited on the idle client?)")
    say(f"50 raw clients + 10 rvs ctl at once, with an idle and a half-written client "
        f"connected: all answered in {dt:.2f}s")

    # bad arguments: exit 1 and say what is wrong
    for args, needles in [
        (["edit-server", "--service", f"tcp:{VIP}:81", "--server", "198.19.0.11:8080", "--weight", "1"],
         ["no service tcp:198.18.0.100:81"]),
        (["add-server", "--service", SVC80, "--server", "198.19.0.300:8080"],
         ["`198.19.0.300` is not an IPv4 address"]),
        (["add-server", "--service", "tcp:198.18.0:80", "--server", "198.19.0.14:8080"],
         ["service: `198.18.0` is not an IPv4 address"]),
        (["del-server", "--service", SVC80, "--server", "198.19.0.99:8080"],
         ["has no server 198.19.0.99:8080"]),
        (["edit-server", "--service", SVC80, "--server", "198.19.0.11:8080", "--weight", "70000"],
         ["70000 is not in 0..=65535"]),
        (["add-server", "--service", SVC80, "--server", "198.18.0.2:8080"],
         ["198.18.0.2 is the director's own address"]),
        (["add-service", "--service", f"tcp:{VIP}:8080", "--scheduler", "fastest"],
         ["unknown scheduler `fastest`"]),
        (["add-service", "--service", SVC80], ["already exists"]),
        (["del-service", "--service", "sctp:198.18.0.100:80"], ["unknown protocol `sctp`"]),
        (["edit-server", "--service", SVC80, "--server", "198.19.0.11:8080", "--weight", "-1"],
         ["-1 is not in 0..=65535"]),
        (["add-server", "--service", SVC80], ["--server"]),
        (["list", "--stats", "--rate"], ["cannot be used with"]),
    ]:
        msg = ctl_fails(env, args, 1, *needles)
        say(f"exit 1: rvs ctl {' '.join(args)}\n        -> {msg.splitlines()[0][:150]}")
    p = subprocess.run([rvs_binary(), "ctl", "-s", os.path.join(env.workdir, "nope.sock"), "list"],
                       capture_output=True, text=True, timeout=20)
    check(p.returncode == 2 and "cannot reach the director" in p.stderr,
          f"rvs ctl with no director: exit {p.returncode} {p.stderr!r}, want 2")
    say(f"exit 2: {p.stderr.strip()}")

    # the idle and the half-written client are told and closed after 10 s
    for name, c in (("idle", idle), ("half-written", half)):
        c.settimeout(20)
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            data += f"<{e}>".encode()
        c.close()
        check(b"idle for 10 s" in data or b"bytes of a request" in data,
              f"{name} client got {data!r}")
        say(f"{name} client closed after {time.monotonic() - t_idle:.1f}s: {data.decode().strip()}")

    # the data plane never noticed
    check(env.director.alive(), "director died")
    n0 = len(stream.results())
    wait_for("stream still flowing", lambda: len(stream.results()) >= n0 + 10)
    results = stream.stop()
    errs = [x for x in results if x.get("error")]
    check(not errs, f"{len(errs)} of {len(results)} stream requests failed: {errs[:3]}")
    say(f"stream: {len(results)} requests, 0 failed")
    check(ctl_json(env, "status")["role"] == "standalone", "status after the abuse")
    env.stop_director()
    rc, _, err = ctl(env, "list")
    check(rc == 2 and "cannot reach the director" in err, f"after stop: exit {rc} {err!r}")
    check(not os.path.exists(sock(env)), "the socket file outlived the director")


METRICS = "127.0.0.1:9100"
PARSER = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([fam.name, fam.type, s.name, s.labels, s.value])
print(json.dumps(out))
"""


def scrape(env):
    p = env.topo.nsexec(env.topo.director, ["curl", "-sS", "--max-time", "10", "-i",
                                            f"http://{METRICS}/metrics"], check=False)
    check(p.returncode == 0, f"curl metrics: exit {p.returncode}: {p.stderr}")
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    check(head.startswith("HTTP/1.1 200") and "text/plain; version=0.0.4" in head, f"head: {head}")
    return body


def parse_metrics(text):
    """Parse with the Prometheus project's own Python parser (Debian's
    python3-prometheus-client, see ci/setup.sh), plus the rules it does not
    enforce: HELP and TYPE before every family's samples."""
    for py in (PY, "/usr/bin/python3"):
        p = subprocess.run([py, "-c", PARSER], input=text, capture_output=True, text=True)
        if p.returncode == 0:
            break
        if "No module named" not in p.stderr:
            raise AssertionError(f"the Prometheus parser refused the metrics: {p.stderr[-1500:]}")
    else:
        raise AssertionError("no Prometheus parser: install python3-prometheus-client (ci/setup.sh)")
    samples = json.loads(p.stdout)
    declared = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            check(name in declared, f"sample before its # TYPE: {line}")
    check(all(f"# HELP {n} " in text for n in declared), "a family without # HELP")
    return samples


def metric(samples, name, **labels):
    hits = [s[4] for s in samples if s[2] == name and s[3] == labels]
    check(len(hits) == 1, f"{name}{labels}: {len(hits)} samples")
    return hits[0]


@e2e(timeout=240)
def ctl_stats_and_metrics(env):
    """A quiet test: zero, 30 HTTP + 12 UDP requests; list --stats counts them
    exactly; list --json matches the file; status parses; the metrics endpoint is
    valid exposition text whose counters moved by exactly the same amounts."""
    no_fake()
    env.setup(extra=f'metrics = "{METRICS}"\n')
    lj = ctl_json(env, "list")
    got = [(s["protocol"], s["port"], s["scheduler"], [(d["address"], d["port"], d["weight"], d["up"])
                                                       for d in s["servers"]]) for s in lj["services"]]
    want = [("tcp", 80, "wrr", [(a, 8080, w, True) for a, w in zip(netns.SERVERS.values(), (3, 2, 1))]),
            ("udp", 53, "rr", [(a, 5353, 1, True) for a in netns.SERVERS.values()])]
    check(got == want, f"list --json vs the file:\n got  {got}\n want {want}")
    plain = ctl_ok(env, "list")
    check(plain.startswith("IP Virtual Server version ") and
          "Prot LocalAddress:Port Scheduler Flags\n"
          "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" in plain and
          f"TCP  {VIP}:80 wrr\n  -> 198.19.0.11:8080             Masq    3      " in plain,
          f"list:\n{plain}")
    st = ctl_json(env, "status")
    check(st["role"] == "standalone" and len(st["workers"]) == env.workers and
          all(s["health"] == "no-check" for sv in st["services"] for s in sv["servers"]),
          f"status: {st}")
    check("role: standalone" in ctl_ok(env, "status"), "status text")

    ctl_ok(env, "zero")
    zeroed = ctl_json(env, "list")
    check(all(d[k] == 0 for s in zeroed["services"] for d in s["servers"]
              for k in ("conns", "in_packets", "out_packets", "in_bytes", "out_bytes")),
          f"after zero: {zeroed}")
    m0 = parse_metrics(scrape(env))

    r = env.client("http-many", VIP, "80", "30", "--timeout", "5", timeout=90)
    check(not r["errors"] and r["counts"] == {"rs1": 15, "rs2": 10, "rs3": 5}, f"http: {r}")
    u = env.client("udp-many", VIP, "53", "12", "--timeout", "2", timeout=60)
    check(not u["errors"] and u["counts"] == {"rs1": 4, "rs2": 4, "rs3": 4}, f"udp: {u}")
    # what the UDP requests were: "req-0".."req-11", each answered with "rsN:" + it
    payloads = [len(f"req-{i}") for i in range(12)]

    lj = ctl_json(env, "list")
    for d in service_of(lj, SVC80)["servers"]:
        name = NAMES[d["address"]]
        check(d["conns"] == r["counts"][name], f"{name}: {d['conns']} tcp conns, made {r['counts'][name]}")
        check(d["in_packets"] >= 3 * d["conns"] and d["out_packets"] >= 3 * d["conns"],
              f"{name}: {d}")
    udp = service_of(lj, SVC53)
    for i, d in enumerate(udp["servers"]):
        mine = payloads[i::3]           # rr: request k went to server k % 3
        check((d["conns"], d["in_packets"], d["out_packets"]) == (4, 4, 4),
              f"{NAMES[d['address']]} udp: {d}")
        # IP bytes, as IPVS counts: 20 (IPv4) + 8 (UDP) + payload, exactly
        want = sum(28 + n for n in mine)
        check(d["in_bytes"] == want,
              f"udp in_bytes {d['in_bytes']} for payloads {mine}, want {want} (IP bytes)")
        check(d["out_bytes"] == want + 4 * len("rsN:"),
              f"udp out_bytes {d['out_bytes']}, want {want + 4 * len('rsN:')}")
    check(udp["conns"] == 12 and service_of(lj, SVC80)["conns"] == 30, "service totals")
    text = ctl_ok(env, "list", "--stats", "--exact")
    for s in lj["services"]:
        for d in s["servers"]:
            row = f"  -> {d['address']}:{d['port']}"
            line = next(l for l in text.splitlines() if l.startswith(row) and
                        text.index(l) > text.index(f"{s['protocol'].upper()}  {VIP}:{s['port']}"))
            check(line.split()[2:] == [str(d[k]) for k in
                                       ("conns", "in_packets", "out_packets", "in_bytes", "out_bytes")],
                  f"list --stats {line!r} != {d}")
    say("list --stats: " + "; ".join(
        f"{s['protocol']}:{s['port']} " + ", ".join(f"{NAMES[d['address']]}={d['conns']}" for d in s["servers"])
        for s in lj["services"]) + " (exactly the requests made)")
    rate = ctl_ok(env, "list", "--rate")
    check("CPS    InPPS   OutPPS    InBPS   OutBPS" in rate, f"list --rate:\n{rate}")

    # metrics: valid, and moved by what list shows
    body = scrape(env)
    m1 = parse_metrics(body)
    fams = {s[0] for s in m1}
    for f in ("rvs_service_connections", "rvs_server_connections", "rvs_server_in_packets",
              "rvs_worker_rx_packets", "rvs_worker_drops", "rvs_server_weight", "rvs_config_generation"):
        check(f in fams, f"metric family {f} missing")
    for s in lj["services"]:
        key = f"{s['protocol']}:{VIP}:{s['port']}"
        for d in s["servers"]:
            lab = {"service": key, "server": f"{d['address']}:{d['port']}"}
            for k, mname in (("conns", "rvs_server_connections_total"),
                             ("in_packets", "rvs_server_in_packets_total"),
                             ("out_bytes", "rvs_server_out_bytes_total")):
                delta = metric(m1, mname, **lab) - metric(m0, mname, **lab)
                check(delta == d[k], f"{mname}{lab} moved {delta}, list says {d[k]}")
            check(metric(m1, "rvs_server_weight", **lab) == d["weight"], "weight metric")
    rx = sum(s[4] for s in m1 if s[2] == "rvs_worker_rx_packets_total")
    check(rx > 0 and {s[3]["worker"] for s in m1 if s[2] == "rvs_worker_rx_packets_total"} ==
          {str(i) for i in range(env.workers)}, "worker metrics")
    check(any(s[2] == "rvs_worker_drops_total" and "reason" in s[3] for s in m1), "drop reasons")
    # cost accounting (issue 16): every frame a busy loop took in is counted;
    # busy cycles are a part of the loop cycles
    tot = lambda name: sum(s[4] for s in m1 if s[2] == name)
    busy, loops, frames = (tot("rvs_worker_busy_cycles_total"), tot("rvs_worker_loop_cycles_total"),
                           tot("rvs_worker_busy_frames_total"))
    check(frames >= rx and 0 < busy < loops and tot("rvs_worker_rx_bursts_total") > 0,
          f"cost counters: busy {busy} loop {loops} frames {frames} rx {rx}")
    # the busy loops' empty rx polls (left out of cycles/frame, as testpmd
    # leaves them out) are a part of the busy cycles
    empty = tot("rvs_worker_empty_poll_cycles_total")
    check(0 <= empty < busy, f"empty-poll cycles {empty} not a part of busy cycles {busy}")
    st = ctl_json(env, "status")
    cost = [w["cost"] for w in st["workers"]]
    check(sum(c["busy_frames"] for c in cost) >= frames and
          all(0 <= c["busy_pct"] <= 100 for c in cost), f"status cost: {cost}")
    check("cycles/frame" in ctl_ok(env, "status"), "status text shows the cost line")
    # the established fast path forwarded a part of those frames, never more
    fast = tot("rvs_worker_established_hits_total")
    check(0 < fast < rx and sum(w["established_hits"] for w in st["workers"]) >= fast,
          f"established hits: metrics {fast} of rx {rx}, status "
          f"{[w['established_hits'] for w in st['workers']]}")
    say(f"established fast path: {fast} of {rx} frames ({100 * fast / rx:.0f}%)")
    say(f"cost: {frames} frames in {busy} busy cycles ({busy // max(frames, 1)} cycles/frame, "
        f"busy {100 * busy / loops:.2f}% of {loops} loop cycles)")
    say(f"metrics: {len(m1)} samples in {len(fams)} families, parsed by prometheus_client; "
        f"counters moved exactly as list --stats")
    # zero does not touch the Prometheus counters (they only go up)
    ctl_ok(env, "zero")
    m2 = parse_metrics(scrape(env))
    lab = {"service": SVC80, "server": "198.19.0.11:8080"}
    check(metric(m2, "rvs_server_connections_total", **lab) ==
          metric(m1, "rvs_server_connections_total", **lab), "zero changed a Prometheus counter")
    env.stop_director()


# ------------------------------------------------------------------ the stream helper
def stream_main(argv):
    ap = argparse.ArgumentParser(prog="test_ctl.py stream")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--source")
    ap.add_argument("--gap", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--max-time", type=float, default=280.0)
    a = ap.parse_args(argv)
    t_end = time.monotonic() + a.max_time
    i = 0
    with open(a.out, "a") as f:
        while not os.path.exists(a.stop) and time.monotonic() < t_end:
            rec = {"i": i, "t0": time.time()}
            conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout,
                                              source_address=(a.source, 0) if a.source else None)
            try:
                conn.request("GET", "/", headers={"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace").strip()
                if resp.status == 200 and body.startswith("server "):
                    rec["server"] = body.split()[1]
                else:
                    rec["error"] = f"status {resp.status} body {body[:60]!r}"
            except (OSError, http.client.HTTPException) as e:
                rec["error"] = f"{type(e).__name__}: {e}"
            finally:
                conn.close()
            rec["t1"] = time.time()
            f.write(json.dumps(rec) + "\n")
            f.flush()
            i += 1
            time.sleep(a.gap)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "stream":
        sys.exit(stream_main(sys.argv[2:]))
    sys.exit("usage: test_ctl.py stream HOST PORT --out FILE --stop FILE [--source IP]")
