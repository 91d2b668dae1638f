"""NAT forwarding end to end (issue 2): scheduling, integrity, UDP, bad input.

Each test runs once with 1 worker and once with 2 (`name[w1]`, `name[w2]`), on a
fresh topology with a fresh director (lib.Env).
"""

import os
import time

from lib import (VIP, SERVER_NAMES, check, client_popen, drops_total, e2e, expected_sha256,
                 read_json_output, say)

BLOB = 50 * 1000 * 1000
_sha_cache = {}


def blob_sha(size):
    if size not in _sha_cache:
        _sha_cache[size] = expected_sha256(size)
    return _sha_cache[size]


def fresh_request(env):
    r = env.client("http-many", VIP, "80", "1", "--deadline", "15", timeout=30)
    check(not r["errors"] and sum(r["counts"].values()) == 1,
          f"a fresh request through the VIP failed: {r['errors']}")
    return r["answers"][0]


@e2e()
def wrr_distribution(env):
    """300 fresh sequential connections, wrr 3,2,1 -> exactly 150/100/50."""
    env.setup()
    r = env.client("http-many", VIP, "80", "300", "--timeout", "5", "--deadline", "150", timeout=180)
    say(f"300 connections in {r['elapsed']:.1f}s: {r['counts']}")
    seq = "".join(a[-1] if a else "-" for a in r["answers"][:24])
    say(f"first picks: {seq}")
    check(not r["errors"], f"{len(r['errors'])} failed requests, first: {r['errors'][:3]}")
    want = {"rs1": 150, "rs2": 100, "rs3": 50}
    check(r["counts"] == want, f"distribution {r['counts']}, want {want}")
    stats = env.stop_director()
    check(env.fake or stats.get("conns_created", 0) >= 300, f"conns_created {stats.get('conns_created')} < 300")


@e2e()
def download_integrity(env):
    """A 50 MB download through the VIP arrives intact."""
    env.setup()
    sha = blob_sha(BLOB)
    out = os.path.join(env.workdir, "blob")
    r = env.client("download", f"http://{VIP}/blob?size={BLOB}", "--out", out, "--max-time", "150",
                   timeout=180)
    say(f"{r['bytes']} bytes in {r['seconds']:.2f}s = {r['MBps']} MB/s ({r['tool']})")
    check(r["ok"], f"download failed: {r['error']}")
    check(r["bytes"] == BLOB, f"got {r['bytes']} bytes, want {BLOB}")
    check(r["sha256"] == sha, f"sha256 {r['sha256']} != expected {sha}")
    os.unlink(out)
    stats = env.stop_director()
    check(env.fake or stats.get("tx_packets", 0) > BLOB // 1500, f"tx_packets {stats.get('tx_packets')} too low")


@e2e()
def udp_service(env):
    """30 UDP requests from fresh sockets: all answered, rr 10/10/10."""
    env.setup()
    r = env.client("udp-many", VIP, "53", "30", "--timeout", "2", timeout=120)
    say(f"30 datagrams in {r['elapsed']:.1f}s: {r['counts']}")
    check(not r["errors"], f"{len(r['errors'])} failed, first: {r['errors'][:3]}")
    want = {n: 10 for n in SERVER_NAMES}
    check(r["counts"] == want, f"distribution {r['counts']}, want {want}")
    env.stop_director()


@e2e()
def bad_input_during_download(env):
    """Malformed frames while a 50 MB download runs: the download survives, drops are counted."""
    env.setup()
    topo = env.topo
    dc_mac = topo.mac(topo.director, topo.dc)
    cli_mac = topo.mac(topo.client, topo.client_if)
    sha = blob_sha(BLOB)
    out = os.path.join(env.workdir, "blob")
    dl_json = os.path.join(env.workdir, "download.json")
    # rate-limited so that the garbage certainly lands while the download runs
    dl = client_popen(topo, "download", f"http://{VIP}/blob?size={BLOB}", "--out", out,
                      "--max-time", "150", "--limit-rate", "8M", stdout_path=dl_json)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15 and not (os.path.exists(out) and os.path.getsize(out) > 1 << 20):
        check(dl.poll() is None, f"download ended early: {open(dl_json).read()}")
        time.sleep(0.1)
    check(os.path.exists(out) and os.path.getsize(out) > 1 << 20, "download did not start within 15s")
    g = env.client("garbage", "--iface", topo.client_if, "--dst-mac", dc_mac, "--src-mac", cli_mac,
                   "--vip", VIP, "--sources", ",".join(f"198.18.0.{i}" for i in range(10, 51)),
                   "--max-time", "30", timeout=60)
    during = dl.poll() is None
    say(f"garbage: {g['total_sent']} frames in {g['seconds']:.1f}s "
        f"({g['certainly_invalid_sent']} certainly invalid), download still running after: {during}")
    say(f"  sent per kind: {g['sent']}")
    if g["refused"]:
        say(f"  refused by the kernel: {g['refused']}")
    try:
        dl.wait(timeout=170)
    except Exception:
        dl.kill()
        raise AssertionError("download did not finish within 170s")
    r = read_json_output(dl_json)
    say(f"download: {r['bytes']} bytes in {r['seconds']:.2f}s = {r['MBps']} MB/s ({r['tool']}, limited to 8M/s)")
    check(r["ok"], f"download failed: {r['error']}")
    check(r["bytes"] == BLOB and r["sha256"] == sha,
          f"download corrupted: {r['bytes']} bytes sha256 {r['sha256']} (want {BLOB} {sha})")
    os.unlink(out)
    check(env.director.alive(), "director died")
    who = fresh_request(env)
    say(f"fresh request after the garbage answered by {who}")
    stats = env.stop_director()
    drops = stats.get("drops") or {}
    say("drops per reason (non-zero): " +
        (", ".join(f"{k}={v}" for k, v in sorted(drops.items()) if v) or "none"))
    if env.fake:
        say("FAKE director: drop counters not checked")
        return
    total = drops_total(stats)
    check(total >= g["certainly_invalid_sent"],
          f"sum of drops {total} < {g['certainly_invalid_sent']} certainly invalid frames sent")
