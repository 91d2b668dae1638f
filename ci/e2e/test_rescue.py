"""Scale-out rescue of moved flows (issue 15, SPEC §7 "Scale-out"), on
ci/netns.py's HaTopology (DR variant) without [ha]: two rvs directors,
dir1 (198.18.0.2) and dir2 (198.18.0.3), both active, with the same `mh` DR
service; the client reaches the VIP through a /32 route via one of them,
as a router's ECMP would send it.

    rescue_moved_download_dr  a rate-limited 20 MB download starts through
                              dir1; mid-download the client's route to the
                              VIP moves to dir2, which never saw the SYN: the
                              download completes byte-exact, dir2 counted
                              `rescued` > 0 and no `no_connection` drop (any
                              other server than dir1's pick would have reset
                              the connection, so byte-exact means agreement)
"""

import os
import time

import lib
import netns
from lib import VIP, check, say

BLOB = 20 * 1024 * 1024
RATE = "2M"


def config(name, socket_path, run_id):
    """The same service on both directors (only the port addresses and the
    control socket differ): what must be identical for `mh` to agree."""
    ca, sa = netns.HA_DIRECTORS[name]
    servers = "".join(f"""
  [[service.server]]
  address = "{addr}"
  port = 80
""" for addr in netns.HA_SERVERS.values())
    return f"""# written by ci/e2e (issue 15 rescue, {name})
[dpdk]
cores = "0@0,1@1"
workers = 1
hugepages = false
memory_mb = 256
extra_args = ["--file-prefix=rvs-rescue-{run_id}-{name}"]

[[port]]
name = "client"
device = "net_af_packet0,iface=dc,qpairs=1"
address = "{ca}/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds,qpairs=1"
address = "{sa}/24"

[[service]]
vip = "{VIP}"
port = 80
protocol = "tcp"
scheduler = "mh"
forward = "dr"
{servers}
[control]
socket = "{socket_path}"
"""


def route_via(topo, name):
    """The client's route to the VIP through director `name` (a /32 beats
    the connected /24): what an ECMP router's choice looks like here."""
    topo.ip(topo.client, "route", "replace", f"{VIP}/32", "via", netns.HA_DIRECTORS[name][0],
            "dev", topo.client_if)


def worker_sum(d, key):
    st = d.status() or {}
    return sum(w.get(key, 0) for w in st.get("workers") or [])


def worker_drop(d, reason):
    st = d.status() or {}
    return sum((w.get("drops") or {}).get(reason, 0) for w in st.get("workers") or [])


@lib.e2e(workers=(1,), timeout=90)
def rescue_moved_download_dr(env):
    if env.fake:
        raise lib.Skip("the rescue needs the real director (RVS_E2E_FAKE=1)")
    topo = netns.HaTopology(dr=True)
    env.topo = topo
    env.director = lib.HaGroup()
    topo.up()
    topo.start_realservers(env.workdir)
    dirs = {}
    for name in ("dir1", "dir2"):
        cfg = os.path.join(env.workdir, f"{name}.toml")
        with open(cfg, "w") as f:
            f.write(config(name, os.path.join(env.workdir, f"{name}.sock"), topo.id))
        dirs[name] = env.director.add(lib.HaDirector(topo, env.workdir, name, cfg))
        dirs[name].start()
    t0 = time.monotonic()
    for name in ("dir2", "dir1"):      # both forward; dir1 carries the download
        route_via(topo, name)
        lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                     30, what=f"{VIP}:80 forwarding through {name}")
    say(f"both directors forwarding {time.monotonic() - t0:.1f}s after start")
    created1 = worker_sum(dirs["dir1"], "conns_created")
    rx2 = worker_sum(dirs["dir2"], "rx_packets")
    blob = os.path.join(env.workdir, "blob")
    out = os.path.join(env.workdir, "download.json")
    p = lib.client_popen(topo, "download", f"http://{VIP}/blob?size={BLOB}", "--out", blob,
                         "--max-time", "40", "--limit-rate", RATE, stdout_path=out)

    def got():
        try:
            return os.path.getsize(blob)
        except OSError:
            return 0
    lib.wait_for(lambda: got() >= 1 << 20 or p.poll() is not None, 20, what="download reaching 1 MB")
    # The router moves the flow: dir2 has no entry for it.
    route_via(topo, "dir2")
    moved_at = got()
    say(f"route to {VIP} moved from dir1 to dir2 at {moved_at} bytes")
    check(p.poll() is None, f"download ended before the move: {lib.tail(out, 3)}")
    time.sleep(0.3)                    # what was in flight to dir1 has arrived
    rx1 = worker_sum(dirs["dir1"], "rx_packets")
    check(p.poll() is None, "download ended within 0.3 s of the move (curl ignored its rate limit)")
    try:
        p.wait(timeout=60)
    except Exception:
        p.kill()
        raise AssertionError("download did not finish")
    r = lib.read_json_output(out)
    say(f"download: {r['bytes']} bytes in {r['seconds']:.1f}s = {r['MBps']} MB/s")
    check(r["ok"], f"download failed: {r['error']} after {r['bytes']} bytes")
    check(r["bytes"] == BLOB, f"download got {r['bytes']} bytes, want {BLOB}")
    check(r["sha256"] == lib.expected_sha256(BLOB), "download sha256 differs")
    rescued = worker_sum(dirs["dir2"], "rescued")
    no_conn = worker_drop(dirs["dir2"], "no_connection")
    say(f"dir2: rescued {rescued}, no_connection drops {no_conn}")
    check(rescued == 1, f"dir2 rescued {rescued} flows, want the one moved")
    check(worker_sum(dirs["dir1"], "conns_created") == created1 + 1, "the download did not open through dir1")
    # The client's segments of the rest of the download went through dir2
    # (on the rescued entry), none through dir1 (a few broadcasts at most).
    after = {"dir1": worker_sum(dirs["dir1"], "rx_packets") - rx1,
             "dir2": worker_sum(dirs["dir2"], "rx_packets") - rx2}
    say(f"frames received after the move: {after}")
    check(after["dir2"] >= 20, f"dir2 received only {after['dir2']} frames after the move")
    check(after["dir1"] <= 10, f"dir1 still received {after['dir1']} frames after the move")
    check(no_conn == 0, f"dir2 dropped {no_conn} segments of the moved flow as no_connection")
    for name in ("dir1", "dir2"):
        dirs[name].term()
        say(f"{name} exit {dirs[name].exit_code}; stats: {lib.format_stats(dirs[name].stats)}")
    check(dirs["dir2"].stats and dirs["dir2"].stats.get("rescued", 0) == rescued,
          f"dir2's exit stats disagree on rescued: {dirs['dir2'].stats and dirs['dir2'].stats.get('rescued')}")
    os.unlink(blob)
