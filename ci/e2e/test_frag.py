"""IPv4 fragments end to end (issue 12, item 18; SPEC §5 "Fragments").

A real UDP client sends 4000-byte datagrams to the NAT UDP service: the client
kernel fragments each one (MTU 1500, three fragments), rvs forwards the
fragments as they are (the first by its connection, the rest by IP id), the
real server's kernel reassembles and its echo reply is fragmented again by
that kernel, which exercises the reply direction. The client must get back
exactly what it sent, from the VIP, and the director's counters must show
every fragment forwarded and none dropped.

net_af_packet cannot show this: DPDK's AF_PACKET PMD joins a fanout group
with PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles before rvs reads
(rvs then sees one frame larger than its mbuf: `bad_total_length`). Here the
director's two ports are `net_tap` devices instead, whose kernel ends are
bridged, inside the director's namespace, to the usual veths (dc, ds): the
frames reach rvs exactly as they were on the wire.
"""

import json
import os
import time

import lib
from lib import PY, VIP, check, e2e, say

TAPS = {"client": "rvsfc", "servers": "rvsfs"}
KERNEL_END_MAC = {"rvsfc": "02:00:00:00:fa:01", "rvsfs": "02:00:00:00:fa:02",
                  "rvsf64": "02:00:00:00:fa:03"}

N = 6
SIZE = 4000
# UDP header + data over 1480-byte fragment payloads (MTU 1500).
FRAGS_PER_REQUEST = -(-(8 + SIZE) // 1480)          # 3
FRAGS_PER_REPLY = -(-(8 + len("rsN:") + SIZE) // 1480)   # 3

CLIENT = r"""
import json, os, socket, sys, time
vip, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
errors, counts, held = [], {}, []
t0 = time.monotonic()
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.append(s)
    s.settimeout(2.0)
    s.bind(("0.0.0.0", 0))
    payload = os.urandom(size)
    try:
        s.sendto(payload, (vip, 53))
        data, peer = s.recvfrom(65535)
    except OSError as e:
        errors.append(f"request {i + 1}: {type(e).__name__}: {e}")
        continue
    name, _, rest = data.partition(b":")
    if rest != payload:
        errors.append(f"request {i + 1}: {len(data)}-byte reply is not the {size} bytes sent")
    elif peer != (vip, 53):
        errors.append(f"request {i + 1}: reply from {peer}, not the VIP")
    else:
        counts[name.decode()] = counts.get(name.decode(), 0) + 1
for s in held:
    s.close()
print(json.dumps({"counts": counts, "errors": errors, "elapsed": round(time.monotonic() - t0, 3)}))
"""


def setup_tap_ports(env):
    """lib.Env.setup with the director's ports on net_tap, bridged to dc/ds."""
    topo = env.topo
    topo.up()
    topo.start_realservers(env.workdir)
    d = topo.director
    for br, veth in (("brc", topo.dc), ("brs", topo.ds)):
        topo.ip(d, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0",
                "mcast_snooping", "0")
        topo.ip(d, "link", "set", veth, "master", br)
        topo.ip(d, "link", "set", br, "up")
    cfg = lib.make_config(env.workers, os.path.join(env.workdir, "rvs.sock"))
    for i, (veth, tap) in enumerate(((topo.dc, TAPS["client"]), (topo.ds, TAPS["servers"]))):
        old = f"net_af_packet{i},iface={veth},qpairs=1"
        check(old in cfg, f"lib.make_config no longer has {old}")
        cfg = cfg.replace(old, f"net_tap{10 + i},iface={tap}")
    with open(env.cfg, "w") as f:
        f.write(cfg)
    env.director = lib.Director(topo, env.workdir, env.cfg).start()
    join_taps(env, [("brc", TAPS["client"]), ("brs", TAPS["servers"])])
    t = env.director.wait_ready()
    say(f"topology {topo.id}, {env.workers} worker(s), net_tap ports, forwarding after {t:.1f}s")


def join_taps(env, bridges):
    """Once rvs has started its ports (starting one writes rvs's MAC to the
    TAP's kernel end), joins each TAP of `bridges` ((bridge, tap) pairs, in
    the director's namespace) to its bridge, each kernel end with a MAC of
    its own (KERNEL_END_MAC): with rvs's, the bridge would take frames for
    rvs as its own. Also used by test_ipv6.py nat64_fragments."""
    topo, d = env.topo, env.topo.director
    t0 = time.monotonic()
    while "rvs ready" not in lib.tail(env.director.err, 200):
        check(env.director.alive(), "director exited before forwarding")
        check(time.monotonic() - t0 < 20, "director not ready after 20 s")
        time.sleep(0.1)
    for br, tap in bridges:
        topo.nsexec(d, ["ethtool", "-K", tap, "tx", "off"], check=False)
        topo.ip(d, "link", "set", tap, "address", KERNEL_END_MAC[tap])
        topo.ip(d, "link", "set", tap, "master", br, "up")


@e2e(timeout=60)
def udp_fragments_nat(env):
    """4000-byte UDP datagrams through NAT both ways as fragments: byte-exact echoes."""
    if env.fake:
        env.setup()
    else:
        setup_tap_ports(env)
    p = env.topo.nsexec(env.topo.client, [PY, "-c", CLIENT, VIP, str(N), str(SIZE)], timeout=40)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    say(f"{N} x {SIZE}-byte datagrams in {r['elapsed']:.2f}s: {r['counts']}")
    check(not r["errors"], f"{len(r['errors'])} failed, first: {r['errors'][:3]}")
    check(sum(r["counts"].values()) == N, f"answers {r['counts']}, want {N}")
    stats = env.stop_director()
    if env.fake:
        return
    want = N * (FRAGS_PER_REQUEST + FRAGS_PER_REPLY)
    drops = stats.get("drops") or {}
    say(f"frags_forwarded={stats.get('frags_forwarded')} frags_held={stats.get('frags_held')} "
        f"frag_no_first={drops.get('frag_no_first')} frag_hold_full={drops.get('frag_hold_full')}")
    check(stats.get("frags_forwarded") == want,
          f"frags_forwarded {stats.get('frags_forwarded')}, want {want} (did rvs see fragments?)")
    for k in ("fragment", "frag_no_first", "frag_hold_full", "too_big", "multi_segment"):
        check(drops.get(k, 0) == 0, f"drop counter {k} = {drops.get(k)}, want 0")
