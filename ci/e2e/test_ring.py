"""Losses the counters must show (issue 12, item 17): frames the kernel drops
at a full net_af_packet RX ring appear as `rx_ring_drops` in `rvs ctl status`
and in the rvs-stats line.

The director is paused (SIGSTOP) so its ring cannot drain, the client sends a
bounded burst of broadcast frames of a local experimental EtherType (no ARP
needed, nothing for rvs to answer), and the director is resumed. The PMD's
ring holds 512 frames per queue (DPDK 22.11 af_packet defaults), so all but
about 512 of the burst are dropped by the kernel, which `imissed` never shows.
"""

import os
import signal
import subprocess
import time

from lib import PY, Skip, check, e2e, fake_mode, rvs_ctl_json, say, wait_for

BURST = 3000
RING = 512

SEND = r"""
import socket, sys
iface, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
src = bytes.fromhex(open(f"/sys/class/net/{iface}/address").read().strip().replace(":", ""))
frame = b"\xff" * 6 + src + b"\x88\xb5" + b"\x00" * 46
for _ in range(n):
    s.send(frame)
"""


def ring_drops(ports):
    return sum(p.get("rx_ring_drops", 0) for p in ports)


def not_ipv4(status):
    """Frames of the burst that reached rvs (counted as not_ipv4 drops)."""
    return sum(w["drops"].get("not_ipv4", 0) for w in status["workers"])


@e2e(workers=(1,), timeout=120)
def ring_drops_counted(env):
    """A burst into a paused director's af_packet ring: the kernel's drops are
    counted as rx_ring_drops (ctl status and the exit stats), imissed is not;
    ring drops plus frames rvs saw add up to the burst exactly."""
    if fake_mode():
        raise Skip("the fake director has no DPDK ports")
    env.setup()
    sock = os.path.join(env.workdir, "rvs.sock")
    st = rvs_ctl_json(sock, "status")
    before = ring_drops(st["ports"])
    seen_before = not_ipv4(st)
    pid = env.director.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        subprocess.run(["ip", "netns", "exec", env.topo.client, PY, "-c", SEND, env.topo.client_if,
                        str(BURST)], check=True, timeout=30)
        time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    # ctl status shows the counters the main thread refreshes every second.
    want = before + BURST - RING

    def counted():
        st = rvs_ctl_json(sock, "status")
        return st and ring_drops(st["ports"]) >= want

    wait_for(counted, timeout=10, what=f"rx_ring_drops >= {want}")
    ports = rvs_ctl_json(sock, "status")["ports"]
    got = ring_drops(ports) - before
    say(f"burst of {BURST} into a paused director: rx_ring_drops +{got}, "
        f"imissed {sum(p['imissed'] for p in ports)}")
    check(BURST - RING <= got <= BURST, f"rx_ring_drops +{got}, want {BURST - RING}..{BURST}")
    seen = not_ipv4(rvs_ctl_json(sock, "status")) - seen_before
    # Every frame of the burst is accounted for: taken from the ring, or
    # dropped at it.
    check(got + seen == BURST, f"rx_ring_drops +{got} + {seen} seen by rvs != {BURST} sent")
    stats = env.stop_director()
    check(ring_drops(stats["ports"]) == before + got, f"exit stats ports: {stats['ports']}")
