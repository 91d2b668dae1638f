#!/usr/bin/env python3
"""IPIP decapsulation in user space, for a TUN real server (stdlib only).

The test kernel has no ipip module, so a real server behind an rvs `forward =
"tun"` service runs this inside its namespace instead:

  * a raw IPv4 socket for protocol 4 (IPPROTO_IPIP) receives every IPIP packet
    the kernel accepts for this host (outer header included, after the
    kernel's own checks: outer checksum, destination is a local address);
  * packets whose outer destination is --addr are stripped of their outer
    header (IHL*4 bytes, normally 20) and the inner packet is written into a
    TUN device (`/dev/net/tun`, IFF_TUN|IFF_NO_PI, default name tunl-rvs,
    brought up here, rp_filter 0), so the kernel receives it as if it came in
    on that interface and delivers it to the server process (the VIP is on lo);
  * the server replies straight to the client (DR-style return path).

ICMP protocol-unreachable: a kernel with no handler for protocol 4 answers
each IPIP packet with one, *unless a raw socket took the packet*
(ip_local_deliver_finish() only sends it when no raw socket matched). The raw
socket above is that raw socket, so no nft/iptables rule is needed; the
counters below include the namespace's Icmp OutDestUnreachs to prove it.

Bounded by --max-time; SIGTERM/SIGINT stop it. On exit it prints one line
`tundecap-stats {json}` with its counters, and the TUN device goes away with
its file descriptor.

    tundecap.py --addr 198.18.0.11 [--tun tunl-rvs] [--max-time 900] [--ready-file F]

IPv6-in-IPv6 (RFC 2473, next header 41; an IPv6 --addr): the same with a raw
IPv6 socket for next header 41, which receives the payload only (the inner
packet); the outer source comes with the datagram's address and the outer
hop limit and traffic class as ancillary data, checked against the inner
header (RFC 2473 / the director copies them). The kernel has no ip6_tunnel
module either, and a raw socket that takes the packet stops the parameter
problem it would otherwise send.
"""

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
IPV6_RECVTCLASS = 66
IPV6_TCLASS = 67


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
    res = fcntl.ioctl(fd, TUNSETIFF, ifr)
    real = res[:16].rstrip(b"\0").decode()
    return fd, real


def link_up(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))
    finally:
        s.close()


def set_conf(dev, key, value):
    with open(f"/proc/sys/net/ipv4/conf/{dev}/{key}", "w") as f:
        f.write(f"{value}\n")


def snmp_icmp():
    try:
        with open("/proc/net/snmp") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for head, vals in zip(lines[0::2], lines[1::2]):
        if head.startswith("Icmp:"):
            return dict(zip(head.split()[1:], (int(x) for x in vals.split()[1:])))
    return {}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addr", required=True, help="this server's address (outer destination)")
    ap.add_argument("--tun", default="tunl-rvs", help="TUN device name (default tunl-rvs)")
    ap.add_argument("--max-time", type=float, default=900.0, help="stop after this many seconds")
    ap.add_argument("--ready-file", help="created once the TUN device is up and the socket open")
    a = ap.parse_args()
    if ":" in a.addr:
        return main6(a)
    me = socket.inet_aton(a.addr)

    c = {"received": 0, "decapsulated": 0, "bytes_in": 0, "bytes_out": 0, "not_for_us": 0,
         "bad_outer": 0, "bad_inner": 0, "write_errors": 0, "first_error": None,
         # what RFC 2003 / SPEC §5 say the director's outer header must be:
         # TTL, TOS and DF copied from the inner header, total = inner + 20
         "outer_src": {}, "inner_ttl": {}, "ttl_mismatch": 0, "tos_mismatch": 0,
         "df_mismatch": 0, "len_mismatch": 0, "first_mismatch": None}
    stop = {"why": None}

    def on_signal(signum, _frame):
        stop["why"] = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print(f"tundecap: pid {os.getpid()} creating {a.tun}", flush=True)
    t_start = time.monotonic()
    tun, dev = open_tun(a.tun)
    link_up(dev)
    set_conf(dev, "rp_filter", 0)
    set_conf("all", "rp_filter", 0)
    set_conf(dev, "accept_local", 1)   # harmless; inner sources are never local here
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.bind((a.addr, 0))               # only IPIP addressed to this server
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    raw.setblocking(False)
    icmp0 = snmp_icmp()
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    print(f"tundecap: IPIP to {a.addr} -> {dev} (max {a.max_time:.0f}s), "
          f"set up in {time.monotonic() - t_start:.2f}s", flush=True)

    def bad(kind, msg):
        c[kind] += 1
        if c["first_error"] is None:
            c["first_error"] = msg

    t0 = time.monotonic()
    while stop["why"] is None:
        left = a.max_time - (time.monotonic() - t0)
        if left <= 0:
            stop["why"] = "max-time"
            break
        try:
            r, _, _ = select.select([raw], [], [], min(0.5, left))
        except InterruptedError:
            continue
        if not r:
            continue
        for _ in range(256):          # drain a bounded batch, then look at the clock again
            try:
                pkt = raw.recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            c["received"] += 1
            if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != IPPROTO_IPIP:
                bad("bad_outer", f"outer header {pkt[:20].hex()}")
                continue
            ihl = (pkt[0] & 0xF) * 4
            total = struct.unpack("!H", pkt[2:4])[0]
            if ihl < 20 or total > len(pkt) or total < ihl + 20:
                bad("bad_outer", f"outer ihl {ihl} total {total} len {len(pkt)}: {pkt[:20].hex()}")
                continue
            if pkt[16:20] != me:
                c["not_for_us"] += 1
                continue
            inner = pkt[ihl:total]
            itotal = struct.unpack("!H", inner[2:4])[0]
            if inner[0] >> 4 != 4 or (inner[0] & 0xF) < 5 or itotal > len(inner) or itotal < (inner[0] & 0xF) * 4:
                bad("bad_inner", f"inner header {inner[:20].hex()} (outer total {total})")
                continue
            src = socket.inet_ntoa(pkt[12:16])
            if src in c["outer_src"] or len(c["outer_src"]) < 8:
                c["outer_src"][src] = c["outer_src"].get(src, 0) + 1
            ttl = str(inner[8])
            if ttl in c["inner_ttl"] or len(c["inner_ttl"]) < 8:
                c["inner_ttl"][ttl] = c["inner_ttl"].get(ttl, 0) + 1
            for key, ok in (("ttl_mismatch", pkt[8] == inner[8]), ("tos_mismatch", pkt[1] == inner[1]),
                            ("df_mismatch", (pkt[6] & 0x40) == (inner[6] & 0x40)),
                            ("len_mismatch", total == itotal + ihl)):
                if not ok:
                    c[key] += 1
                    if c["first_mismatch"] is None:
                        c["first_mismatch"] = f"{key}: outer {pkt[:ihl].hex()} inner {inner[:20].hex()}"
            try:
                os.write(tun, inner[:itotal])
            except OSError as e:
                bad("write_errors", f"write to {dev}: {e}")
                continue
            c["decapsulated"] += 1
            c["bytes_in"] += len(pkt)
            c["bytes_out"] += itotal
    icmp1 = snmp_icmp()
    c["icmp_out_dest_unreachs"] = icmp1.get("OutDestUnreachs", 0) - icmp0.get("OutDestUnreachs", 0)
    c["stopped_by"] = stop["why"]
    c["seconds"] = round(time.monotonic() - t0, 3)
    raw.close()
    os.close(tun)
    print("tundecap-stats " + json.dumps(c), flush=True)
    return 0


def main6(a):
    """IPv6-in-IPv6 to `a.addr`: the inner packet into the TUN device."""
    c = {"received": 0, "decapsulated": 0, "bytes_in": 0, "bytes_out": 0,
         "bad_inner": 0, "write_errors": 0, "first_error": None,
         "outer_src": {}, "inner_hop_limit": {}, "hop_mismatch": 0, "tclass_mismatch": 0,
         "len_mismatch": 0, "first_mismatch": None}
    stop = {"why": None}

    def on_signal(signum, _frame):
        stop["why"] = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tun, dev = open_tun(a.tun)
    link_up(dev)
    raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
    raw.bind((a.addr, 0))
    raw.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    raw.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    raw.setblocking(False)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    print(f"tundecap: IPv6-in-IPv6 to {a.addr} -> {dev} (max {a.max_time:.0f}s)", flush=True)

    def mismatch(key, msg):
        c[key] += 1
        if c["first_mismatch"] is None:
            c["first_mismatch"] = f"{key}: {msg}"

    t0 = time.monotonic()
    while stop["why"] is None:
        left = a.max_time - (time.monotonic() - t0)
        if left <= 0:
            stop["why"] = "max-time"
            break
        try:
            r, _, _ = select.select([raw], [], [], min(0.5, left))
        except InterruptedError:
            continue
        if not r:
            continue
        for _ in range(256):
            try:
                inner, anc, _flags, src = raw.recvmsg(65535, 256)
            except (BlockingIOError, InterruptedError):
                break
            c["received"] += 1
            hop = tclass = None
            for level, kind, data in anc:
                if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                    hop = struct.unpack("i", data[:4])[0]
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_TCLASS:
                    tclass = struct.unpack("i", data[:4])[0]
            if len(inner) < 40 or inner[0] >> 4 != 6:
                c["bad_inner"] += 1
                if c["first_error"] is None:
                    c["first_error"] = f"inner {inner[:40].hex()}"
                continue
            plen = struct.unpack("!H", inner[4:6])[0]
            if 40 + plen != len(inner):
                mismatch("len_mismatch", f"inner payload length {plen}, {len(inner)} bytes")
            if src[0] in c["outer_src"] or len(c["outer_src"]) < 8:
                c["outer_src"][src[0]] = c["outer_src"].get(src[0], 0) + 1
            ih = str(inner[7])
            if ih in c["inner_hop_limit"] or len(c["inner_hop_limit"]) < 8:
                c["inner_hop_limit"][ih] = c["inner_hop_limit"].get(ih, 0) + 1
            if hop is not None and hop != inner[7]:
                mismatch("hop_mismatch", f"outer {hop} inner {inner[7]}")
            itc = ((inner[0] & 0xF) << 4) | (inner[1] >> 4)
            if tclass is not None and tclass != itc:
                mismatch("tclass_mismatch", f"outer {tclass} inner {itc}")
            try:
                os.write(tun, inner[:40 + plen])
            except OSError as e:
                c["write_errors"] += 1
                if c["first_error"] is None:
                    c["first_error"] = f"write to {dev}: {e}"
                continue
            c["decapsulated"] += 1
            c["bytes_in"] += len(inner) + 40
            c["bytes_out"] += 40 + plen
    c["stopped_by"] = stop["why"]
    c["seconds"] = round(time.monotonic() - t0, 3)
    raw.close()
    os.close(tun)
    print("tundecap-stats " + json.dumps(c), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
