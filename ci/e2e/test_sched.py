"""Schedulers end to end (issue 3): source hashing, persistence, wlc.

Each test runs with 1 and 2 workers on a fresh topology (lib.Env). The
expected picks are computed here independently from SPEC §6's rules.
"""

import ipaddress
import json
import os
import subprocess

from lib import VIP, check, e2e, fake_mode, rvs_binary, say

WEIGHTS = (3, 2, 1)
NAMES = ("rs1", "rs2", "rs3")


def sh_expected(src):
    """SPEC §6 sh: 256 buckets, each server `weight` consecutive buckets in
    configuration order, wrapping until full; bucket = (src_ip * 2654435761)
    mod 256 (host-order address, 32-bit product)."""
    table = []
    while len(table) < 256:
        for name, w in zip(NAMES, WEIGHTS):
            table.extend([name] * max(w, 1))
    table = table[:256]
    ip = int(ipaddress.IPv4Address(src))
    return table[((ip * 2654435761) & 0xFFFFFFFF) % 256]


@e2e()
def sh_source_affinity(env):
    """sh with 50 client sources: each source always reaches one server, the one sh's table gives."""
    env.setup(tcp_sched="sh")
    extra = [f"198.18.0.{i}" for i in range(51, 60)]
    for a in extra:
        env.topo.ip(env.topo.client, "addr", "add", f"{a}/24", "dev", env.topo.client_if)
    sources = [f"198.18.0.{i}" for i in range(10, 60)]
    r = env.client("http-many", VIP, "80", str(3 * len(sources)), "--sources", ",".join(sources),
                   "--deadline", "120", timeout=180)
    check(not r["errors"], f"{len(r['errors'])} failed, first: {r['errors'][:3]}")
    per_src = {}
    for i, name in enumerate(r["answers"]):
        per_src.setdefault(sources[i % len(sources)], set()).add(name)
    split = {s: n for s, n in per_src.items() if len(n) != 1}
    check(not split, f"sources reaching more than one server: {split}")
    wrong = {s: (next(iter(n)), sh_expected(s)) for s, n in per_src.items() if next(iter(n)) != sh_expected(s)}
    say(f"{len(sources)} sources x 3 connections: {r['counts']}")
    check(not wrong, f"sources off their sh bucket (got, want): {wrong}")
    check(len(r["counts"]) > 1, "every source landed on one server: the hash does not spread")
    env.stop_director()


@e2e()
def persistence_sticks(env):
    """rr with persistence_timeout = 30: each client's connections stick, clients rotate."""
    env.setup(tcp_sched="rr", tcp_extra="persistence_timeout = 30")
    got = {}
    for src in ("198.18.0.21", "198.18.0.22", "198.18.0.23"):
        r = env.client("http-many", VIP, "80", "5", "--sources", src, "--deadline", "30", timeout=60)
        check(not r["errors"], f"{src}: {r['errors'][:3]}")
        got[src] = r["answers"]
        say(f"{src}: {r['answers']}")
    for src, answers in got.items():
        check(len(set(answers)) == 1, f"{src} was not persistent: {answers}")
    firsts = [a[0] for a in got.values()]
    # rr's cursor also moved for the harness's readiness probes, so the
    # rotation may start anywhere; it must still be rr order.
    start = NAMES.index(firsts[0])
    want = [NAMES[(start + i) % 3] for i in range(3)]
    check(firsts == want, f"new clients should rotate in rr order: got {firsts}, want {want}")
    # The first client comes back within the timeout: same server.
    r = env.client("http-many", VIP, "80", "3", "--sources", "198.18.0.21", "--deadline", "30", timeout=60)
    check(set(r["answers"]) == {got["198.18.0.21"][0]}, f"client lost its server: {r['answers']}")
    # The templates are listed as `ipvsadm -Lnc` lists them (issue 14 item 7):
    # client net:0 -> VIP:80 -> the server that client sticks to, state NONE.
    if not fake_mode():
        p = subprocess.run([rvs_binary(), "ctl", "-s", os.path.join(env.workdir, "rvs.sock"), "list",
                            "--conns", "--json"], capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, f"list --conns: {p.stderr}")
        # (the harness's readiness probe from the client's own address made one too)
        tpl = {c["client"]: c for c in json.loads(p.stdout)["conns"] if c["template"] and c["client"] in got}
        check(sorted(tpl) == sorted(got), f"templates listed for {sorted(tpl)}, want {sorted(got)}")
        servers = {name: addr for addr, name in zip(("198.19.0.11", "198.19.0.12", "198.19.0.13"), NAMES)}
        for src, c in tpl.items():
            check((c["cport"], c["vport"], c["state"], c["server"], c["sport"])
                  == (0, 80, "NONE", servers[got[src][0]], 8080), f"template of {src}: {c}")
            check(0 < c["expires_ms"] <= 30_000, f"template of {src} expires in {c['expires_ms']} ms")
        say(f"list --conns shows {len(tpl)} templates: " +
            ", ".join(f"{s} -> {c['server']}" for s, c in sorted(tpl.items())))
    env.stop_director()


@e2e()
def wlc_long_held(env):
    """wlc 3,2,1 with 60 connections held open: exactly 30/20/10, level after every round."""
    env.setup(tcp_sched="wlc")
    r = env.client("http-hold", VIP, "80", "60", "--gap", "0.03", timeout=120)
    check(not r["errors"], f"{len(r['errors'])} failed, first: {r['errors'][:3]}")
    say(f"60 held connections: {r['counts']}; first picks {r['answers'][:12]}")
    # Every held connection is active (256 inactive ones' worth), so the
    # readiness probes' closed connections (inactive) cannot tip a count.
    check(r["counts"] == {"rs1": 30, "rs2": 20, "rs3": 10}, f"distribution {r['counts']}")
    # After each full round of 6 the servers are level again.
    for k in range(6, 61, 6):
        seen = r["answers"][:k]
        level = {n: seen.count(n) for n in NAMES}
        check(level == {"rs1": k // 2, "rs2": k // 3, "rs3": k // 6},
              f"after {k} connections {level}: wlc must keep load/weight level")
    env.stop_director()


@e2e()
def ops_one_packet(env):
    """One-packet scheduling (issue 14): a UDP rr service with `ops = true`;
    30 datagrams from ONE source port land 10/10/10 in rr order, every reply
    comes from the VIP, and no connection entry is made (without ops the same
    30 stick to one server)."""
    env.setup(udp_extra="ops = true")
    r = env.client("udp-many", VIP, "53", "30", "--one-socket", timeout=60)
    check(not r["errors"], f"{len(r['errors'])} failed: {r['errors'][:3]}")
    say(f"30 datagrams from one source port: {r['counts']}")
    check(sorted(r["counts"].values()) == [10, 10, 10], f"not 10/10/10: {r['counts']}")
    a = r["answers"]
    check(all(a[i] == a[i % 3] for i in range(30)) and len(set(a[:3])) == 3,
          f"not rr order: {a}")
    if not fake_mode():
        sock = os.path.join(env.workdir, "rvs.sock")
        p = subprocess.run([rvs_binary(), "ctl", "-s", sock, "list", "--conns", "--json"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, f"list --conns: {p.stderr}")
        udp = [c for c in json.loads(p.stdout)["conns"] if c["protocol"] == "udp"]
        check(not udp, f"one-packet scheduling left {len(udp)} UDP connection entries: {udp[:2]}")
        p = subprocess.run([rvs_binary(), "ctl", "-s", sock, "list"], capture_output=True, text=True,
                           timeout=30)
        line = [l for l in p.stdout.splitlines() if l.startswith("UDP")]
        check(line and line[0].rstrip().endswith(" ops"), f"list does not flag ops: {line}")
        say(f"no UDP connection entries; list: {line[0].strip()}")
    env.stop_director()
