"""Full-NAT (forward = "fnat", issue 13) end to end on the one-arm topology of
ci/e2e/onearm.py: client, director (one DPDK port, 198.18.0.2) and three real
servers on one bridge. The servers have NO default route and no route to the
client through the director: full-NAT needs none, they answer the director's
address on-link.

    fnat_onearm[wN]      wrr 3,2,1 to servers on port 8080: 300 connections
                         land exactly 150/100/50, every server saw the
                         director's address as its client (/peer); `list
                         --conns` (JSON and text) shows both tuples, each
                         local port distinct, in the default range and owned
                         (owner_worker) by the connection's worker; a 50 MB
                         download byte-exact; no snat_exhausted drop
    fnat_exhaustion[wN]  snat_ports = "20000-20007" (8 local ports): 12 held
                         connections with a 0.5 s connect timeout (one SYN
                         each): the ones beyond the free ports are refused and
                         `snat_exhausted` counts exactly as many; the held ones
                         keep 8 or fewer distinct local ports of the range
    fnat_icmp[wN]        UDP full-NAT services: a datagram to a closed server
                         port gets the server's port-unreachable (sent to the
                         director's address, quoting the local tuple) back
                         from the VIP, so the client's connected socket sees
                         ECONNREFUSED (its kernel matched the translated
                         quote); the client's own port-unreachable for an
                         echo to a closed socket is relayed to the server;
                         `icmp_relayed` exactly 2, no `icmp_unknown_flow`

The e2e tests need the real director (RVS_E2E_FAKE=1 reports SKIP).
"""

import ipaddress
import json
import os
import subprocess

import lib
import onearm
import test_dr_tun as drt
from lib import check, say

VIP = onearm.VIP
NAMES = list(onearm.SERVERS)
DIRECTOR = onearm.DIRECTOR_ADDR
WANT = {"rs1": 150, "rs2": 100, "rs3": 50}
HTTP = 8080


def owner(ip, port, workers):
    """engine::conn::owner_worker, computed independently as a NIC's RSS
    would: the Toeplitz hash (key 0x6d5a repeated, 40 bytes) of the client's
    address and port, then the default redirection table of 128 entries,
    entry i -> worker i % workers."""
    if workers <= 1:
        return 0
    key = bytes([0x6D, 0x5A] * 20)
    data = ipaddress.IPv4Address(ip).packed + port.to_bytes(2, "big")
    k = int.from_bytes(key, "big")
    klen = len(key) * 8
    h = 0
    for i, byte in enumerate(data):
        for bit in range(8):
            if byte & (0x80 >> bit):
                n = i * 8 + bit
                h ^= (k >> (klen - 32 - n)) & 0xFFFFFFFF
    return (h % 128) % workers


def setup(env, port_extra="", services=""):
    if env.fake:
        raise lib.Skip("full-NAT needs the real director (RVS_E2E_FAKE=1 puts a NAT-only kernel proxy there)")
    topo = onearm.OneArm()
    env.topo = topo
    topo.up()
    for n in NAMES:
        routes = topo.ip(topo.rs_ns[n], "route", "show", "default").stdout.strip()
        check(routes == "", f"{n} has a default route ({routes}); full-NAT must work without one")
    topo.start_realservers(env.workdir, ports={n: HTTP for n in NAMES})
    servers = [(onearm.SERVERS[n], HTTP, w, None) for n, w in zip(NAMES, (3, 2, 1))]
    with open(env.cfg, "w") as f:
        f.write(drt.onearm_config(env.workers, sock(env), "fnat", servers, "wrr", port_extra) + services)
    env.director = lib.Director(topo, env.workdir, env.cfg).start()
    t = env.director.wait_ready()
    say(f"one-arm topology {topo.id}, forward fnat, {env.workers} worker(s), director forwarding after {t:.1f}s")
    return topo


def sock(env):
    return os.path.join(env.workdir, "rvs.sock")


def ctl(env, *args):
    p = subprocess.run([lib.rvs_binary(), "ctl", "-s", sock(env), *args], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 0, f"rvs ctl {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def fnat_conns(env):
    conns = json.loads(ctl(env, "list", "--conns", "--json"))["conns"]
    return [c for c in conns if c["forward"] == "fnat" and not c["template"]]


def check_locals(env, conns, lo, hi):
    """Every full-NAT entry has a local tuple on the director's address, in
    lo..hi, distinct, owned by the entry's worker (as its client is)."""
    seen = set()
    for c in conns:
        check(c.get("local"), f"no local tuple in {c}")
        addr, port = c["local"].rsplit(":", 1)
        port = int(port)
        check(addr == DIRECTOR, f"local address {addr}, want the port's {DIRECTOR}: {c}")
        check(lo <= port <= hi, f"local port {port} outside {lo}-{hi}: {c}")
        check((addr, port) not in seen, f"local tuple {addr}:{port} held twice")
        seen.add((addr, port))
        check(c["worker"] == owner(addr, port, env.workers) == owner(c["client"], c["cport"], env.workers),
              f"worker {c['worker']}: local port owner {owner(addr, port, env.workers)}, client owner "
              f"{owner(c['client'], c['cport'], env.workers)}: {c}")
    return seen


@lib.e2e(workers=(1, 2), timeout=240)
def fnat_onearm(env):
    """FNAT one-arm, servers without a route back: 150/100/50, the server sees the director, 50 MB intact."""
    setup(env)
    r = env.client("http-many", VIP, "80", "300", "--path", "/peer", "--timeout", "5", "--deadline", "150",
                   timeout=180)
    say(f"300 connections in {r['elapsed']:.1f}s: {r['counts']}; peers seen by the servers: {r['peers']}")
    check(not r["errors"], f"{len(r['errors'])} failed requests, first: {r['errors'][:3]}")
    check(r["counts"] == WANT, f"distribution {r['counts']}, want {WANT}")
    want_peers = {f"{n} {DIRECTOR}": k for n, k in WANT.items()}
    check(r["peers"] == want_peers, f"servers saw clients {r['peers']}, want only the director {want_peers}")

    conns = fnat_conns(env)
    seen = check_locals(env, conns, 1024, 32767)
    say(f"list --conns: {len(conns)} fnat entries, {len(seen)} distinct local tuples, each on its owner worker")
    check(len(conns) >= 300, f"only {len(conns)} fnat entries listed after 300 connections")
    text = ctl(env, "list", "--conns")
    rows = [l for l in text.splitlines() if f" local {DIRECTOR}:" in l]
    say(f"list --conns text: {rows[0] if rows else '<none>'}")
    check(len(rows) == len(conns), f"{len(rows)} text rows show a local tuple, want {len(conns)}")
    check(all(f"{VIP}:80" in l and f":{HTTP}" in l for l in rows), "a text row lacks the VIP or server tuple")

    drt.download(env, drt.BLOB)
    stats = env.stop_director()
    drops = stats.get("drops") or {}
    check(drops.get("snat_exhausted", 0) == 0, f"snat_exhausted {drops.get('snat_exhausted')}")
    check(drops.get("from_real_server", 0) == 0, "from_real_server drops")


@lib.e2e(workers=(1, 2), timeout=120)
def fnat_exhaustion(env):
    """snat_ports of 8: connections beyond the free local ports refused, counted exactly."""
    lo, hi = 20000, 20007
    setup(env, f'snat_ports = "{lo}-{hi}"\n')
    before = fnat_conns(env)         # the readiness probe's connection(s) hold ports too
    check_locals(env, before, lo, hi)
    n = 12
    r = env.client("http-hold", VIP, "80", str(n), "--timeout", "0.5", "--gap", "0.05", timeout=60)
    ok = sum(r["counts"].values())
    refused = sum(1 for e in r["errors"] if e.startswith("connect "))
    say(f"{n} held connections: {ok} answered, {refused} refused ({r['errors'][:2]}); "
        f"{len(before)} local ports held before")
    check(ok + refused == n, f"{ok} answered + {refused} refused != {n}: {r['errors']}")
    after = fnat_conns(env)
    seen = check_locals(env, after, lo, hi)
    per_worker = {w: sum(1 for p in range(lo, hi + 1) if owner(DIRECTOR, p, env.workers) == w)
                  for w in range(env.workers)}
    used = {w: sum(1 for c in after if c["worker"] == w) for w in range(env.workers)}
    say(f"local ports per worker {per_worker}, held per worker {used}, distinct {len(seen)}")
    check(all(used[w] <= per_worker[w] for w in used), "a worker holds more local ports than it owns")
    if env.workers == 1:
        check(ok == hi - lo + 1 - len(before), f"{ok} answered, want {hi - lo + 1 - len(before)} (the free ports)")
    check(refused >= n - (hi - lo + 1), f"only {refused} refused with {hi - lo + 1} ports for {n}")
    stats = env.stop_director()
    got = (stats.get("drops") or {}).get("snat_exhausted", 0)
    check(got == refused, f"snat_exhausted {got}, want exactly the {refused} refused connections")


# Two UDP full-NAT services to rs1: its echo (realserver.py, 5353) and a
# port nothing listens on.
ICMP_SERVICES = f"""
[[service]]
vip = "{VIP}"
port = 53
protocol = "udp"
scheduler = "rr"
forward = "fnat"
  [[service.server]]
  address = "{onearm.SERVERS['rs1']}"
  port = 5353

[[service]]
vip = "{VIP}"
port = 54
protocol = "udp"
scheduler = "rr"
forward = "fnat"
  [[service.server]]
  address = "{onearm.SERVERS['rs1']}"
  port = 5399
"""

ICMP_CLIENT = r"""
import json, socket, sys, time
vip = sys.argv[1]
out = {}
# The server's port unreachable, translated, fails the connected socket.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3.0)
s.connect((vip, 54))
s.send(b"anyone?")
try:
    out["closed_server_port"] = repr(s.recv(100))
except ConnectionRefusedError:
    out["closed_server_port"] = "refused"
except OSError as e:
    out["closed_server_port"] = f"{type(e).__name__}: {e}"
# The echo works; then one whose socket is gone before the answer comes:
# this kernel answers the echo with port unreachable to the VIP.
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
e.settimeout(3.0)
e.sendto(b"ping", (vip, 53))
try:
    out["echo"] = e.recv(100).decode()
except OSError as x:
    out["echo"] = f"{type(x).__name__}: {x}"
g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
g.sendto(b"gone", (vip, 53))
g.close()
time.sleep(1.0)
print(json.dumps(out))
"""


@lib.e2e(workers=(1, 2), timeout=120)
def fnat_icmp(env):
    """ICMP errors of full-NAT flows translated both ways: the client's socket sees the server's refusal."""
    topo = setup(env, services=ICMP_SERVICES)
    p = subprocess.run(["ip", "netns", "exec", topo.client, lib.PY, "-c", ICMP_CLIENT, VIP],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and p.stdout.strip(), f"client failed ({p.returncode}): {p.stderr[-1000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    say(f"client: {out}")
    check(out["closed_server_port"] == "refused",
          f"to a closed server port: {out['closed_server_port']}, want ECONNREFUSED from the relayed ICMP")
    check(out["echo"] == "rs1:ping", f"echo through full-NAT: {out['echo']}")
    conns = [c for c in fnat_conns(env) if c["vport"] in (53, 54)]
    check(len(conns) == 3, f"{len(conns)} UDP full-NAT entries, want 3: {conns}")
    stats = env.stop_director()
    drops = stats.get("drops") or {}
    relayed = stats.get("icmp_relayed")
    check(relayed == 2, f"icmp_relayed {relayed}, want 2 (the server's error and the client's)")
    check(drops.get("icmp_unknown_flow", 0) == 0, f"icmp_unknown_flow {drops.get('icmp_unknown_flow')}")
