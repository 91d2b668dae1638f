"""Floods (issue 12, "Proof the director stays up"; SPEC §5 "Hostile traffic").

A spoofed-source flood from ci/tools/flood.c (raw AF_PACKET, C: Python tops out
at a few kpps) into a director with a small connection table, while a 50 MB
download and a request loop run through the same VIP:

* syn_flood: TCP SYNs to VIP:80 (the service the clients use) from random
  hosts of 198.19.128.0/17. The table fills with embryonic entries; the
  director must keep evicting them for real clients: the download arrives
  byte-exact, the request loop (one GET every 20 ms, 1 s timeout) succeeds
  >= 90 % of the time during the flood (the issue's target; see
  SYN_FLOOD_MIN_OK), and requests right after it succeed at once.
* syn_flood_cookies: the same with `[timeouts] syn_cookies = true` (>= 99 %;
  skipped, saying why, with an rvs that refuses that key).
* udp_flood: spoofed UDP to a UDP service on the same VIP; its idle entries
  fill the table but must not starve the TCP service (>= 90 %:
  see UDP_FLOOD_MIN_OK).

The spoofed sources are outside every subnet of the director (so not
martians); the client port gets a gateway (the client namespace, which
drops what comes back: it does not forward), so the servers' answers to the
spoofed hosts leave the director without one ARP request per host. Each test
prints the flood's rate, the request loop's success rate and the director's
counters; the numbers are also appended to $RVS_FLOOD_RESULTS if set (one
JSON line per test).
"""

import json
import os
import subprocess
import time

import netns
from lib import (CI, VIP, Director, Skip, check, client_popen, drops_total, e2e,
                 expected_sha256, make_config, read_json_output, rvs_binary, rvs_ctl_json, say)

BLOB = 50 * 1000 * 1000
# The flood: at most this many frames and this many seconds (both bounds are
# enforced by flood.c itself).
FLOOD_COUNT = 1_000_000
FLOOD_SECS = 5.0
# Offered rate cap (packets/s; 0 = as fast as the sender goes): RVS_FLOOD_PPS.
# Default 5000: on the shared 2-CPU VM (where the busy-polling worker, the
# sender, both kernels' TCP and the request loop share the CPUs) the control
# loses nothing at this rate when the machine is otherwise quiet; higher rates
# measure the machine more than the table. It fills TABLE in 0.8 s and turns
# it over about once a second. RVS_FLOOD_PPS=0 floods at full speed.
FLOOD_PPS = float(os.environ.get("RVS_FLOOD_PPS", "5000"))
SPOOF_NET = "198.19.128.0/17"
# Per worker: small, so that the flood fills it within its first second.
# (With 1024 entries and EVICT_WINDOW 64, clients' own handshakes get evicted:
# see README, "Floods".)
TABLE = 4096
# The request loop: one GET every LOOP_INTERVAL s, each with this timeout.
LOOP_INTERVAL = 0.02
LOOP_TIMEOUT = 1.0
# A VIP port without a service: the control flood's target.
CONTROL_PORT = 81
# A UDP service for the UDP flood, to a port nothing listens on (the real
# servers answer with rate-limited ICMP): the flood loads the director, not
# the Python UDP echo that shares a process with the HTTP servers.
UDP_FLOOD_PORT = 9
UDP_SERVICE = f"""
[[service]]
vip = "{VIP}"
port = {UDP_FLOOD_PORT}
protocol = "udp"
scheduler = "rr"
forward = "nat"
""" + "".join(f"""
  [[service.server]]
  address = "{a}"
  port = {UDP_FLOOD_PORT}
""" for a in netns.SERVERS.values())

_sha = {}


def flood_binary(workdir):
    """Compile ci/tools/flood.c into the test's work dir (well under a second)."""
    out = os.path.join(workdir, "flood")
    src = os.path.join(CI, "tools", "flood.c")
    p = subprocess.run(["cc", "-O2", "-Wall", "-o", out, src], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, f"cannot compile {src}: {p.stderr[-2000:]}")
    return out


def flood_config(env, cookies):
    """The demo-nat topology with a TABLE-entry table, a gateway for the
    spoofed hosts, the UDP flood service and (cookies) SYN cookies."""
    text = make_config(env.workers, os.path.join(env.workdir, "rvs.sock"), extra=UDP_SERVICE)
    client_addr = f'address = "{netns.DIRECTOR_CLIENT_ADDR}/24"\n'
    check(text.count(client_addr) == 1 and text.count("max_connections = 65536\n") == 1,
          "make_config changed: cannot place the gateway / table size")
    text = text.replace(client_addr, client_addr + f'gateway = "{netns.CLIENT_ADDR}"\n')
    timeouts = f"max_connections = {TABLE}\n"
    if cookies:
        timeouts += "syn_cookies = true\n"
    return text.replace("max_connections = 65536\n", timeouts)


def refused_by_check(cfg_path):
    """`rvs check`'s complaint about the file, or None if it accepts it."""
    p = subprocess.run([rvs_binary(), "check", "-c", cfg_path], capture_output=True, text=True, timeout=30)
    return None if p.returncode == 0 else (p.stderr.strip() or p.stdout.strip())


def start(env, cookies=False):
    """Topology, real servers, the flood config, a forwarding director."""
    text = flood_config(env, cookies)
    with open(env.cfg, "w") as f:
        f.write(text)
    if cookies and not env.fake:
        why = refused_by_check(env.cfg)
        if why:
            raise Skip(f"this rvs refuses syn_cookies: {why.splitlines()[-1][:160]}")
    env.topo.up()
    env.topo.start_realservers(env.workdir)
    env.director = Director(env.topo, env.workdir, env.cfg).start()
    t = env.director.wait_ready()
    say(f"topology {env.topo.id}, {env.workers} worker(s), table {TABLE}/worker"
        f"{', syn_cookies' if cookies else ''}; director forwarding after {t:.1f}s")


def status(env):
    return rvs_ctl_json(os.path.join(env.workdir, "rvs.sock"), "status") or {}


def table_fill(st):
    ws = st.get("workers") or []
    return sum(w.get("conns", 0) for w in ws), sum(w.get("capacity", 0) for w in ws)


def evicted(st):
    return sum(w.get("conns_evicted", 0) for w in st.get("workers") or [])


def loop_through_flood(env, flood, proto, port, tag):
    """The request loop (one GET every LOOP_INTERVAL s from its own address)
    from right before a flood to its end; samples the table meanwhile.
    Returns (loop result, flood result, peak table fill)."""
    topo = env.topo
    ready = os.path.join(env.workdir, f"{tag}.ready")
    stop = os.path.join(env.workdir, f"{tag}.stop")
    loop_json = os.path.join(env.workdir, f"{tag}.loop.json")
    loop = client_popen(topo, "http-loop", VIP, "80", "--interval", str(LOOP_INTERVAL),
                        "--timeout", str(LOOP_TIMEOUT), "--duration", str(FLOOD_SECS + 15),
                        "--ready-file", ready, "--stop-file", stop, "--source", netns.CLIENT_EXTRA[0],
                        stdout_path=loop_json)
    t0 = time.monotonic()
    while not os.path.exists(ready) and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    check(os.path.exists(ready), "request loop did not start")
    fl_out = os.path.join(env.workdir, f"{tag}.flood.json")
    with open(fl_out, "w") as f:
        fp = topo.popen(topo.client, [flood, "--iface", topo.client_if,
                                      "--src-mac", topo.mac(topo.client, topo.client_if),
                                      "--dst-mac", topo.mac(topo.director, topo.dc), "--dst", VIP,
                                      "--dport", str(port), "--proto", proto, "--src-net", SPOOF_NET,
                                      "--count", str(FLOOD_COUNT), "--max-time", str(FLOOD_SECS),
                                      "--pps", str(FLOOD_PPS), "--seed", "12"],
                        stdout=f, stderr=subprocess.STDOUT)
    peak = 0
    while fp.poll() is None:
        time.sleep(0.5)
        peak = max(peak, table_fill(status(env))[0])
    check(fp.returncode == 0, f"flood sender failed: {open(fl_out).read()[-500:]}")
    open(stop, "w").close()
    loop.wait(timeout=LOOP_TIMEOUT + 15)
    return read_json_output(loop_json), read_json_output(fl_out), peak


def success(lr):
    return lr["ok"] / lr["sent"] if lr["sent"] else 0.0


def run_flood(env, proto, port, min_ok, cookies=False):
    """The whole scenario; returns the figures it printed.

    First a control: the same flood to a VIP port without a service (the
    cheapest drop, no state) while the request loop runs; what the loop
    loses then is what this machine loses at that packet rate (the busy-
    polling worker shares 2 CPUs with the sender, the kernel stacks and
    everyone else), not what the table does. The thresholds apply to the
    real flood's success as is when the control lost nothing (>= 98 %), else
    to its ratio to the control's success (and the test says so)."""
    flood = flood_binary(env.workdir)
    sha = _sha.setdefault(BLOB, expected_sha256(BLOB))

    ctl, ctl_fl, _ = loop_through_flood(env, flood, proto, CONTROL_PORT, "control")
    base = success(ctl)
    say(f"control: {proto} flood of {ctl_fl['sent']} frames at {ctl_fl['pps']:.0f} pps to port "
        f"{CONTROL_PORT} (no service): request loop {ctl['ok']}/{ctl['sent']} = {100 * base:.1f}%")

    # the download, slowed so that it certainly spans the flood
    topo = env.topo
    out = os.path.join(env.workdir, "blob")
    dl_json = os.path.join(env.workdir, "download.json")
    dl = client_popen(topo, "download", f"http://{VIP}/blob?size={BLOB}", "--out", out,
                      "--max-time", "60", "--limit-rate", "6M", stdout_path=dl_json)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15 and not (os.path.exists(out) and os.path.getsize(out) > 1 << 20):
        check(dl.poll() is None, f"download ended early: {open(dl_json).read()}")
        time.sleep(0.05)
    check(os.path.getsize(out) > 1 << 20, "download did not start within 15s")

    before = status(env)
    lr, fl, peak = loop_through_flood(env, flood, proto, port, "flood")
    t_end = time.monotonic()
    # right after the flood: fresh requests succeed at once
    first = env.client("http-many", VIP, "80", "1", "--timeout", "1", "--deadline", "5", timeout=30)
    t_first = time.monotonic() - t_end
    fresh = env.client("http-many", VIP, "80", "10", "--timeout", "1", "--deadline", "20", timeout=40)
    after = status(env)

    rate = success(lr)
    say(f"{proto} flood: {fl['sent']} frames in {fl['seconds']:.2f}s = {fl['pps']:.0f} pps "
        f"(send errors {fl['send_errors']})")
    say(f"request loop during the flood: {lr['ok']}/{lr['sent']} = {100 * rate:.1f}% "
        f"(longest gap between successes {lr['max_gap']:.2f}s); first failures: {lr['failures'][:3]}")
    conns, cap = table_fill(after)
    ev = evicted(after) - evicted(before)
    w_after = after.get("workers") or [{}]
    drops = {}
    for w in w_after:
        for k, v in (w.get("drops") or {}).items():
            drops[k] = drops.get(k, 0) + v
    say(f"table: peak {peak}/{cap} during the flood, {conns}/{cap} after; evicted {ev}; "
        f"rx {sum(w.get('rx_packets', 0) for w in w_after)}; drops {drops}")
    say(f"after the flood: first request {'ok' if not first['errors'] else first['errors']} in "
        f"{first['elapsed']:.3f}s ({t_first:.2f}s after the flood ended, client start-up included); "
        f"then {10 - len(fresh['errors'])}/10 ok in {fresh['elapsed']:.2f}s")

    dl.wait(timeout=90)
    r = read_json_output(dl_json)
    say(f"download: {r['bytes']} bytes in {r['seconds']:.2f}s ({r['tool']}, limited to 6M/s)")
    figures = {"test": env.test.name, "proto": proto, "flood_sent": fl["sent"],
               "flood_seconds": fl["seconds"], "flood_pps": fl["pps"], "loop_sent": lr["sent"],
               "loop_ok": lr["ok"], "loop_success": round(rate, 4), "control_success": round(base, 4),
               "max_gap": lr["max_gap"], "table_peak": peak, "table_capacity": cap, "evicted": ev,
               "first_after_s": first["elapsed"], "fresh_ok": 10 - len(fresh["errors"]),
               "download_ok": r["ok"] and r["sha256"] == sha}
    if os.environ.get("RVS_FLOOD_RESULTS"):
        with open(os.environ["RVS_FLOOD_RESULTS"], "a") as f:
            f.write(json.dumps(figures) + "\n")

    check(r["ok"] and r["bytes"] == BLOB and r["sha256"] == sha,
          f"download corrupted or failed: {r['bytes']} bytes sha256 {r['sha256']} error {r.get('error')}")
    os.unlink(out)
    check(env.director.alive(), "director died")
    want = 0.8 * FLOOD_PPS * FLOOD_SECS if FLOOD_PPS else 20_000
    check(fl["sent"] >= want, f"flood sent only {fl['sent']} frames (want >= {want:.0f})")
    if cookies:
        # answered statelessly: the flood makes no entry at all
        check(env.fake or peak <= cap // 4, f"SYN cookies, yet the flood filled the table: peak {peak}/{cap}")
        check(env.fake or ev == 0, f"SYN cookies, yet {ev} entries were evicted")
    else:
        check(env.fake or peak >= cap * 9 // 10, f"the flood did not fill the table: peak {peak}/{cap}")
        check(env.fake or ev > 0, "no eviction counted during the flood")
    check(not first["errors"] and first["elapsed"] <= 1.0,
          f"the first request after the flood: {first['errors']} in {first['elapsed']:.2f}s (want ok within 1 s)")
    check(not fresh["errors"], f"requests right after the flood failed: {fresh['errors'][:3]}")
    if base >= 0.98:
        check(rate >= min_ok, f"request loop success {100 * rate:.1f}% < {100 * min_ok:.0f}% during the flood")
    else:
        say(f"MACHINE-LIMITED: the control lost {100 * (1 - base):.1f}% at this packet rate; "
            f"asserting {100 * min_ok:.0f}% of the control's success instead of {100 * min_ok:.0f}% absolute")
        check(base > 0.3, f"the control itself succeeded only {100 * base:.1f}%: machine too loaded to judge")
        check(rate >= min_ok * base,
              f"request loop success {100 * rate:.1f}% < {100 * min_ok:.0f}% of the control's {100 * base:.1f}%")
    stats = env.stop_director()
    say(f"drops in total {drops_total(stats)}")
    return figures


# Issue 12's target without SYN cookies is 90 %. Measured on a quiet 2-CPU
# machine (CI) at 5 kpps: 100 % (258/258); on the same VM loaded to 13-18 by
# other builds: 85.5 % and 87.0 % (the control then decides: a machine that
# cannot carry the requests beside the flood is judged against the control).
SYN_FLOOD_MIN_OK = 0.90


@e2e(workers=(1,), timeout=120)
def syn_flood(env):
    """Spoofed SYN flood into a 4096-entry table during a download and a request loop (>= 90 % ok)."""
    start(env)
    run_flood(env, "tcp", 80, SYN_FLOOD_MIN_OK)


@e2e(workers=(1,), timeout=120)
def syn_flood_cookies(env):
    """The SYN flood with syn_cookies = true: >= 99 % ok (skipped while rvs refuses the key)."""
    start(env, cookies=True)
    run_flood(env, "tcp", 80, 0.99, cookies=True)


# The same for the UDP flood (target 90 %): measured 98.0 % and 81.0 % at
# 5 kpps on the shared VM; most lost requests are client SYNs dropped as
# `table_full` although the table holds only evictable UDP entries (README).
UDP_FLOOD_MIN_OK = 0.90


@e2e(workers=(1,), timeout=120)
def udp_flood(env):
    """Spoofed UDP flood on the same VIP: its entries do not starve TCP (>= 90 % ok)."""
    start(env)
    run_flood(env, "udp", UDP_FLOOD_PORT, UDP_FLOOD_MIN_OK)
