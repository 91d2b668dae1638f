"""IPv4 fragments end to end (issue 12, item 18; SPEC §5 "Fragments").

A real UDP client sends 4000-byte datagrams to the NAT UDP service: the client
kernel fragments each one (MTU 1500, three fragments), rvs forwards the
fragments as they are (the first by its connection, the rest by IP id), the
real server's kernel reassembles and its echo reply is fragmented again by
that kernel, which exercises the reply direction. The client must get back
exactly what it sent, from the VIP, and the director's counters must show
every fragment forwarded and none dropped.
"""

import json

from lib import PY, VIP, check, e2e, say

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


@e2e(timeout=60)
def udp_fragments_nat(env):
    """4000-byte UDP datagrams through NAT both ways as fragments: byte-exact echoes."""
    env.setup()
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
