"""The synproxy end to end (issue 12): `[timeouts] syn_cookies = true` on the
NAT service. Real kernel TCP clients and servers in namespaces: every
connection is answered by a SYN cookie from the director, opened to the real
server only after the client's ACK, and runs with shifted sequence numbers.
"""

import os

from lib import VIP, check, e2e, expected_sha256, say

SIZE = 4 * 1000 * 1000
REQUESTS = 20


@e2e()
def synproxy_download_and_requests(env):
    """A 4 MB download byte-exact and 20 fresh requests through the synproxy."""
    env.setup(timeouts_extra="syn_cookies = true")
    out = os.path.join(env.workdir, "blob")
    r = env.client("download", f"http://{VIP}/blob?size={SIZE}", "--out", out, "--max-time", "30",
                   timeout=45)
    say(f"download: {r['bytes']} bytes in {r['seconds']:.2f}s = {r['MBps']} MB/s ({r['tool']})")
    check(r["ok"], f"download failed: {r['error']}")
    check(r["bytes"] == SIZE and r["sha256"] == expected_sha256(SIZE),
          f"download corrupted: {r['bytes']} bytes sha256 {r['sha256']}")
    os.unlink(out)
    m = env.client("http-many", VIP, "80", str(REQUESTS), "--timeout", "5", "--deadline", "30",
                   timeout=45)
    say(f"{REQUESTS} requests in {m['elapsed']:.2f}s: {m['counts']}")
    check(not m["errors"], f"{len(m['errors'])} failed requests, first: {m['errors'][:3]}")
    check(sum(m["counts"].values()) == REQUESTS, f"answers {m['counts']}")
    stats = env.stop_director()
    if env.fake:
        return
    drops = stats.get("drops") or {}
    created, ok = stats.get("conns_created", 0), stats.get("syn_cookies_ok", 0)
    say(f"syn_cookies_sent {stats.get('syn_cookies_sent')} syn_cookies_ok {ok} conns_created {created}")
    # Every connection (ours, plus the harness's readiness probe) was opened
    # by a proven cookie; a lost SYN-ACK would mean a repeated cookie, hence >=.
    check(created >= REQUESTS + 1 and ok == created, f"syn_cookies_ok {ok}, conns_created {created}")
    check(stats.get("syn_cookies_sent", 0) >= ok, f"syn_cookies_sent {stats.get('syn_cookies_sent')} < {ok}")
    check(drops.get("bad_syn_cookie", 0) == 0, f"bad_syn_cookie {drops.get('bad_syn_cookie')}")
    # Requests were not held back by a retransmission timeout (>= 200 ms
    # each): the client's first segment was kept and sent with the ACK.
    check(m["elapsed"] < REQUESTS * 0.2, f"{REQUESTS} requests took {m['elapsed']:.2f}s")
