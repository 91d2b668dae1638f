#!/usr/bin/env python3
"""Client-side helpers, run inside the client namespace by the e2e tests and the demo.

Every subcommand is bounded in count and time and prints one JSON object on stdout.

    probe HOST PORT [--total S]           retry a TCP connect until it succeeds
    http-many HOST PORT N [--path P]      N fresh sequential HTTP GETs; count who answered
    udp-many HOST PORT N                  N UDP requests, each from a fresh socket
    hold-send HOST PORT --ready F --go F  one connection, idle until F exists, then a request:
                                          reset, timeout or answer, and how long it took
    download URL --out FILE               fetch (curl if present, else Python), sha256 it
    garbage --iface IF --dst-mac MAC      fire a bounded mix of malformed frames (AF_PACKET)
    http-loop HOST PORT --duration T      one GET every --interval (50 ms), each in its own
                                          thread; the longest gap between two successes
    icmp-loop HOST --duration T           one ICMP echo every --interval (10 ms); the longest
                                          gap between two replies
    arp-probe --iface IF --target IP      ARP requests for IP; every MAC that answered
    sync-garbage --dst IP --port P        forged/garbage datagrams to a sync port (some with a
                                          spoofed source through a raw socket)
    sync-replay --iface IF --port P       capture genuine sync datagrams off the wire, replay them
    vrrp-forge --iface IF --dst IP ...    forged VRRPv3 adverts (raw IP protocol 112, TTL 255)
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import time
from urllib.parse import urlparse


def out(obj):
    print(json.dumps(obj), flush=True)


# ---------------------------------------------------------------- probe
def cmd_probe(a):
    t0 = time.monotonic()
    attempts = 0
    last = ""
    while time.monotonic() - t0 < a.total:
        attempts += 1
        try:
            with socket.create_connection((a.host, a.port), timeout=a.each):
                out({"ok": True, "attempts": attempts, "elapsed": round(time.monotonic() - t0, 3)})
                return 0
        except OSError as e:
            last = str(e)
            time.sleep(0.2)
    out({"ok": False, "attempts": attempts, "elapsed": round(time.monotonic() - t0, 3), "error": last})
    return 1


# ---------------------------------------------------------------- http-many
def cmd_http_many(a):
    counts, errors, answers, peers = {}, [], [], {}
    sources = a.sources.split(",") if a.sources else [None]
    t0 = time.monotonic()
    for i in range(a.n):
        if time.monotonic() - t0 > a.deadline:
            errors.append(f"deadline {a.deadline}s reached after {i} requests")
            break
        src = sources[i % len(sources)]
        # --sport-base: every connection from its own port (a port the
        # kernel picked may come back within a run once its connection is
        # closed, and a director, like IPVS, then finds the old entry).
        sport = a.sport_base + i if a.sport_base else 0
        conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout,
                                          source_address=(src or "", sport) if src or sport else None)
        try:
            conn.request("GET", a.path, headers={"Connection": "close"})
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            if r.status != 200 or not body.startswith("server "):
                errors.append(f"request {i + 1}: status {r.status} body {body[:60]!r}")
                answers.append(None)
                continue
            words = body.split()
            name = words[1]
            counts[name] = counts.get(name, 0) + 1
            answers.append(name)
            if len(words) > 2:
                # --path /peer: the address the server saw as its client
                key = f"{name} {words[2]}"
                peers[key] = peers.get(key, 0) + 1
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"request {i + 1}: {type(e).__name__}: {e}")
            answers.append(None)
        finally:
            conn.close()
    out({"counts": counts, "errors": errors, "answers": answers, "peers": peers,
         "elapsed": round(time.monotonic() - t0, 3)})
    return 0


# ---------------------------------------------------------------- http-hold
def cmd_http_hold(a):
    """Opens n TCP connections one after another and holds them all open
    (each is established, so a least-connection scheduler sees it as
    active), then asks each which server it reached and closes them."""
    socks, errors, answers = [], [], []
    t0 = time.monotonic()
    for i in range(a.n):
        try:
            s = socket.create_connection((a.host, a.port), timeout=a.timeout)
            socks.append(s)
        except OSError as e:
            errors.append(f"connect {i + 1}: {e}")
            socks.append(None)
        time.sleep(a.gap)
    if a.hold:
        time.sleep(a.hold)
    counts = {}
    for i, s in enumerate(socks):
        if s is None:
            answers.append(None)
            continue
        try:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
            name = body.split()[1] if body.startswith("server ") else None
            if name is None:
                errors.append(f"connection {i + 1}: reply {body[:60]!r}")
            else:
                counts[name] = counts.get(name, 0) + 1
            answers.append(name)
        except OSError as e:
            errors.append(f"connection {i + 1}: {e}")
            answers.append(None)
        finally:
            s.close()
    out({"counts": counts, "errors": errors, "answers": answers,
         "elapsed": round(time.monotonic() - t0, 3)})
    return 0


# ---------------------------------------------------------------- hold-send
def cmd_hold_send(a):
    """One TCP connection, opened and left idle (its local port written to
    --ready) until the file --go appears (at most --wait s); then one request,
    and what became of it within --timeout s: "reset" (ECONNRESET/EPIPE),
    "timeout", "closed" or "answered", with the seconds it took."""
    s = socket.create_connection((a.host, a.port), timeout=5)
    with open(a.ready, "w") as f:
        f.write(str(s.getsockname()[1]))
    deadline = time.monotonic() + a.wait
    while not os.path.exists(a.go):
        if time.monotonic() > deadline:
            out({"result": "no-go", "elapsed": 0})
            return 1
        time.sleep(0.02)
    s.settimeout(a.timeout)
    t0 = time.monotonic()
    result, error = None, None
    try:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = s.recv(4096)
        result = "answered" if data else "closed"
    except (ConnectionResetError, BrokenPipeError) as e:
        result, error = "reset", str(e)
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result, error = "error", str(e)
    finally:
        s.close()
    out({"result": result, "error": error, "elapsed": round(time.monotonic() - t0, 3)})
    return 0


# ---------------------------------------------------------------- udp-many
def cmd_udp_many(a):
    counts, errors, answers = {}, [], []
    t0 = time.monotonic()
    held = []   # keep every socket open until the end: the kernel cannot reuse a source port
    one = None
    # an IPv6 VIP (no brackets) takes IPv6 sockets
    family, anyaddr = (socket.AF_INET6, "::") if ":" in a.host else (socket.AF_INET, "0.0.0.0")
    if a.one_socket:
        one = socket.socket(family, socket.SOCK_DGRAM)
        one.bind((anyaddr, 0))
        held.append(one)
    for i in range(a.n):
        s = one or socket.socket(family, socket.SOCK_DGRAM)
        if not one:
            held.append(s)
        s.settimeout(a.timeout)
        try:
            if not one:
                s.bind((anyaddr, 0))      # fresh source port each time
            payload = f"req-{i}".encode()
            if a.size > len(payload):
                # a datagram bigger than the MTU leaves in fragments
                payload += bytes((i + k) % 251 for k in range(a.size - len(payload)))
            s.sendto(payload, (a.host, a.port))
            data, peer = s.recvfrom(max(2048, a.size + 64))
            name, _, rest = data.partition(b":")
            if rest != payload:
                errors.append(f"request {i + 1}: bad reply {data[:60]!r} from {peer}")
                answers.append(None)
                continue
            if peer[:2] != (a.host, a.port):
                errors.append(f"request {i + 1}: reply from {peer}, not the VIP")
            n = name.decode(errors="replace")
            counts[n] = counts.get(n, 0) + 1
            answers.append(n)
        except OSError as e:
            errors.append(f"request {i + 1}: {type(e).__name__}: {e}")
            answers.append(None)
    ports = {h.getsockname()[1] for h in held}
    if len(ports) != len(held):
        errors.append(f"only {len(ports)} distinct source ports for {len(held)} requests")
    for h in held:
        h.close()
    out({"counts": counts, "errors": errors, "answers": answers,
         "elapsed": round(time.monotonic() - t0, 3)})
    return 0


# ---------------------------------------------------------------- download
def rate_bytes(v):
    """A curl-style rate ("2M", "500K", "1000") in bytes per second."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:].upper(), 1)
    return int(float(v[:-1] if mult > 1 else v) * mult)


def cmd_download(a):
    # With --python the rate limit is kept here, in the reading loop:
    # curl 7.88's --limit-rate let a 12 MB download through at 11.5 MB/s
    # (measured), too fast for a test that needs it still running.
    curl = shutil.which("curl") if not a.python else None
    rate = rate_bytes(a.limit_rate) if a.limit_rate else None
    t0 = time.monotonic()
    err = None
    if curl:
        cmd = [curl, "-sS", "--fail", "-o", a.out, "--max-time", str(a.max_time),
               "--connect-timeout", "5", "-w", "%{size_download} %{speed_download}"]
        if a.limit_rate:
            cmd += ["--limit-rate", a.limit_rate]
        p = subprocess.run(cmd + [a.url], capture_output=True, text=True, timeout=a.max_time + 10)
        if p.returncode != 0:
            err = f"curl exit {p.returncode}: {p.stderr.strip()}"
        tool = "curl"
    else:
        tool = "python"
        u = urlparse(a.url)
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
            conn.request("GET", u.path + ("?" + u.query if u.query else ""))
            r = conn.getresponse()
            got = 0
            with open(a.out, "wb") as f:
                while True:
                    if time.monotonic() - t0 > a.max_time:
                        err = f"deadline {a.max_time}s"
                        break
                    c = r.read(1 << 16)
                    if not c:
                        break
                    f.write(c)
                    f.flush()
                    got += len(c)
                    if rate:
                        ahead = got / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            err = f"{type(e).__name__}: {e}"
    secs = time.monotonic() - t0
    h = hashlib.sha256()
    size = 0
    try:
        with open(a.out, "rb") as f:
            while True:
                c = f.read(1 << 20)
                if not c:
                    break
                h.update(c)
                size += len(c)
    except OSError as e:
        err = err or str(e)
    out({"ok": err is None, "error": err, "tool": tool, "bytes": size, "sha256": h.hexdigest(),
         "seconds": round(secs, 3), "MBps": round(size / secs / 1e6, 2) if secs > 0 else None})
    return 0


# ---------------------------------------------------------------- garbage
def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip_hdr(src, dst, proto, payload_len, ver=4, ihl=5, tot_len=None, ttl=64):
    tl = tot_len if tot_len is not None else 20 + payload_len
    h = struct.pack("!BBHHHBBH4s4s", (ver << 4) | (ihl & 0xF), 0, tl & 0xFFFF, 0x1234, 0x4000,
                    ttl, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def tcp_seg(src, dst, sport, dport, seq, ack, flags, payload=b""):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    c = csum(pseudo + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def build_garbage(dst_mac, src_mac, vip, client_ip, sources, scale, rng):
    """Return [(category, certain, frame)]. `certain`: any correct director must drop it."""
    eth_ip = mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00"
    eth_arp = mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x06"
    frames = []

    def add(cat, certain, n, make):
        for i in range(max(1, int(n * scale))):
            frames.append((cat, certain, make(i)))

    def src(i):
        return sources[i % len(sources)]

    body = bytes(20)
    add("runt_lt14", True, 100, lambda i: eth_ip[: 1 + i % 13])
    add("eth_only_ipv4", True, 200, lambda i: eth_ip)
    add("ipv4_truncated", True, 300,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 20)[: 1 + i % 19])
    add("bad_ihl", True, 400,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 20, ihl=i % 5) + body)
    add("bad_version", True, 400,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 20, ver=(0, 1, 2, 3, 5, 6, 7, 15)[i % 8]) + body)
    add("totlen_gt_frame", True, 400,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 20, tot_len=100 + (i * 37) % 1400) + body)
    add("totlen_lt_ihl", True, 100,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 20, tot_len=i % 20) + body)
    add("ihl_gt_frame", True, 100,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 0, ihl=6 + i % 10, tot_len=20))
    add("tcp_truncated", True, 200,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 8) + tcp_seg(src(i), vip, 1024 + i, 80, 1, 1, 0x10)[:8])
    flags = (0x10, 0x18, 0x11, 0x14)   # ACK, PSH|ACK, FIN|ACK, RST|ACK: never a SYN
    add("tcp_no_flow", True, 600,
        lambda i: eth_ip + ip_hdr(src(i), vip, 6, 20 + (i % 2) * 10) +
        tcp_seg(src(i), vip, 1024 + (i * 7919) % 8976, 80, rng.getrandbits(32), rng.getrandbits(32),
                flags[i % 4], b"x" * ((i % 2) * 10)))
    arp_ok = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac_bytes(src_mac),
                         socket.inet_aton(client_ip), b"\0" * 6, socket.inet_aton(vip))
    add("arp_truncated", True, 200, lambda i: eth_arp + arp_ok[: 1 + i % 27])
    add("arp_bad_htype", False, 200,
        lambda i: eth_arp + struct.pack("!H", 2 + i % 1000) + arp_ok[2:])
    add("arp_bad_lengths", False, 100,
        lambda i: eth_arp + arp_ok[:4] + struct.pack("!BB", 8 + i % 8, 16) + arp_ok[6:])
    rng.shuffle(frames)
    return frames


def cmd_garbage(a):
    rng = random.Random(a.seed)
    sources = a.sources.split(",")
    frames = build_garbage(a.dst_mac, a.src_mac, a.vip, sources[0], sources, a.scale, rng)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    sent, refused, certain = {}, {}, 0
    t0 = time.monotonic()
    for n, (cat, cert, frame) in enumerate(frames):
        if time.monotonic() - t0 > a.max_time:
            break
        try:
            s.send(frame)
            sent[cat] = sent.get(cat, 0) + 1
            certain += cert
        except OSError as e:       # the kernel refuses frames shorter than an Ethernet header
            refused[cat] = refused.get(cat, 0) + 1
            if refused[cat] == 1:
                refused[cat + "_error"] = str(e)
        if n % a.burst == a.burst - 1:
            time.sleep(a.gap)
    s.close()
    out({"sent": sent, "refused": refused, "total_sent": sum(sent.values()),
         "certainly_invalid_sent": certain, "seconds": round(time.monotonic() - t0, 3)})
    return 0


def cmd_syn_flood(a):
    """Spoofed SYNs (random on-link sources, ports and ISNs) at vip:port on a
    raw socket, bounded by --count and --max-time."""
    rng = random.Random(a.seed)
    eth = mac_bytes(a.dst_mac) + mac_bytes(a.src_mac) + b"\x08\x00"
    lo, hi = (int(x) for x in a.hosts.split("-"))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    sent, errors = 0, 0
    t0 = time.monotonic()
    while sent + errors < a.count and time.monotonic() - t0 < a.max_time:
        src = f"{a.prefix}.{rng.randint(lo, hi)}"
        seg = tcp_seg(src, a.vip, rng.randint(1024, 65535), a.port, rng.getrandbits(32), 0, 0x02)
        try:
            s.send(eth + ip_hdr(src, a.vip, 6, len(seg)) + seg)
            sent += 1
        except OSError:
            errors += 1
            time.sleep(0.001)
    s.close()
    secs = time.monotonic() - t0
    out({"sent": sent, "errors": errors, "seconds": round(secs, 3),
         "rate": round(sent / secs) if secs > 0 else None})
    return 0


# ---------------------------------------------------------------- http-loop
def _loop_until(a):
    """(deadline, stop?) for the loop subcommands: --duration caps, --stop-file ends early."""
    import os
    t_end = time.monotonic() + a.duration
    return lambda: time.monotonic() >= t_end or (a.stop_file and os.path.exists(a.stop_file))


def _gaps(times):
    """The longest gap between consecutive times (sorted) as (gap, start, end),
    and the five longest."""
    ts = sorted(times)
    gaps = [(b - x, x, b) for x, b in zip(ts, ts[1:])]
    gaps.sort(reverse=True)
    best = gaps[0] if gaps else (0.0, None, None)
    return best, gaps[:5]


def cmd_http_loop(a):
    """Fire one GET every `interval` seconds, each from its own thread (a
    request stuck in SYN retransmission does not hold the next one back), for
    at most `duration` seconds or until `stop_file` exists. A success is a 200
    whose body names a server; its completion time (wall clock, time.time())
    is recorded. The longest gap between two consecutive successes is the
    outage as a client sees it (new requests keep going out every interval, so
    the first success after an outage comes within one interval of its end)."""
    import os
    import threading
    lock = threading.Lock()
    ok_times, fails, served = [], [], {}
    threads = []

    def one(i, t_start):
        conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout,
                                          source_address=(a.source, 0) if a.source else None)
        t_conn = None                 # when the client saw its connection established
        try:
            conn.connect()
            t_conn = time.time()
            conn.request("GET", a.path, headers={"Connection": "close"})
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            t = time.time()
            if r.status == 200 and body.startswith("server "):
                with lock:
                    ok_times.append(t)
                    name = body.split()[1]
                    served[name] = served.get(name, 0) + 1
            else:
                with lock:
                    fails.append((t_start, f"status {r.status}", t_conn))
        except (OSError, http.client.HTTPException) as e:
            with lock:
                fails.append((t_start, f"{type(e).__name__}: {e}", t_conn))
        finally:
            conn.close()

    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write(f"{time.time()}\n")
    done = _loop_until(a)
    t0 = time.time()
    m0 = time.monotonic()
    i = 0
    while not done():
        th = threading.Thread(target=one, args=(i, time.time()), daemon=True)
        th.start()
        threads.append(th)
        i += 1
        nxt = m0 + i * a.interval
        time.sleep(max(0.0, nxt - time.monotonic()))
    t_stop = time.time()
    for th in threads:
        th.join(timeout=max(0.1, a.timeout + 1 - (time.time() - t_stop)))
    with lock:
        ok = list(ok_times)
        fl = list(fails)
    (gap, g0, g1), top = _gaps(ok)
    fl.sort()
    out({"sent": i, "ok": len(ok), "failed": len(fl), "served": served,
         "max_gap": round(gap, 4), "gap_start": g0, "gap_end": g1,
         "top_gaps": [[round(g, 4), s0, s1] for g, s0, s1 in top],
         "first_ok": min(ok) if ok else None, "last_ok": max(ok) if ok else None,
         "t0": t0, "t_stop": t_stop, "failures": [[ts, m, tc] for ts, m, tc in fl[:20]],
         "interval": a.interval})
    return 0


# ---------------------------------------------------------------- icmp-loop
def cmd_icmp_loop(a):
    """One ICMP echo request every `interval` (raw socket), replies matched by
    id and sequence; the longest gap between two consecutive replies (arrival
    times, time.time())."""
    import os
    import select
    ident = (os.getpid() ^ random.getrandbits(16)) & 0xFFFF
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setblocking(False)
    dst = socket.gethostbyname(a.host)
    got = {}
    sent = 0
    done = _loop_until(a)
    t0 = time.time()
    m0 = time.monotonic()
    payload = b"rvs-icmp-loop" + bytes(19)

    def drain(until):
        while True:
            left = until - time.monotonic()
            r, _, _ = select.select([s], [], [], max(0.0, left))
            if not r:
                return
            try:
                data, peer = s.recvfrom(2048)
            except BlockingIOError:
                continue
            ihl = (data[0] & 0xF) * 4
            icmp = data[ihl:]
            if len(icmp) < 8 or icmp[0] != 0 or peer[0] != dst:
                continue
            rid, seq = struct.unpack("!HH", icmp[4:8])
            if rid == ident and seq not in got:
                got[seq] = time.time()

    while not done():
        seq = sent & 0xFFFF
        h = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        c = csum(h + payload)
        try:
            s.sendto(h[:2] + struct.pack("!H", c) + h[4:] + payload, (dst, 0))
        except OSError:
            pass                      # e.g. no route / ARP failure: counts as lost
        sent += 1
        drain(m0 + sent * a.interval)
    t_stop = time.time()
    drain(time.monotonic() + a.timeout)
    s.close()
    (gap, g0, g1), top = _gaps(list(got.values()))
    out({"sent": sent, "ok": len(got), "lost": sent - len(got), "max_gap": round(gap, 4),
         "gap_start": g0, "gap_end": g1, "top_gaps": [[round(g, 4), x, y] for g, x, y in top],
         "t0": t0, "t_stop": t_stop, "interval": a.interval})
    return 0


# ---------------------------------------------------------------- arp-probe
def _if_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def _if_addr(iface):
    import fcntl
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))  # SIOCGIFADDR
        return socket.inet_ntoa(r[20:24])
    finally:
        s.close()


def cmd_arp_probe(a):
    """Broadcast `count` ARP requests for `target` from `iface` (one every
    `gap` s) and listen `wait` s more; report every MAC that answered for it
    (a reply whose sender protocol address is the target, broadcast or
    unicast, gratuitous ones included)."""
    import select
    my_mac = _if_mac(a.iface)
    src_ip = a.src or _if_addr(a.iface)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((a.iface, 0))
    s.setblocking(False)
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write(f"{time.time()}\n")
    req = (b"\xff" * 6 + mac_bytes(my_mac) + b"\x08\x06" +
           struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac_bytes(my_mac), socket.inet_aton(src_ip),
                       b"\0" * 6, socket.inet_aton(a.target)))
    tgt = socket.inet_aton(a.target)
    macs, times = {}, {}
    t0 = time.monotonic()
    sent = 0
    t_end = t0 + a.count * a.gap + a.wait
    next_send = t0
    while time.monotonic() < t_end:
        now = time.monotonic()
        if sent < a.count and now >= next_send:
            s.send(req)
            sent += 1
            next_send = now + a.gap
        wait = max(0.0, min(t_end, next_send if sent < a.count else t_end) - time.monotonic())
        r, _, _ = select.select([s], [], [], wait)
        if not r:
            continue
        try:
            fr = s.recv(2048)
        except BlockingIOError:
            continue
        if len(fr) < 42 or fr[12:14] != b"\x08\x06":
            continue
        op = struct.unpack("!H", fr[20:22])[0]
        sha, spa = fr[22:28], fr[28:32]
        if spa == tgt and (op == 2 or a.any_op):
            m = ":".join(f"{b:02x}" for b in sha)
            macs[m] = macs.get(m, 0) + 1
            times.setdefault(m, []).append(round(time.time(), 4))
    s.close()
    out({"target": a.target, "iface": a.iface, "requests": sent, "macs": macs, "times": times,
         "seconds": round(time.monotonic() - t0, 3)})
    return 0


# ---------------------------------------------------------------- sync-garbage
def _raw_udp(src, dst, sport, dport, payload, ttl=64):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = csum(pseudo + udp + payload) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c)
    return ip_hdr(src, dst, 17, 8 + len(payload), ttl=ttl) + udp + payload


def sync_message(kind, sender, boot, seq, body, count, key, version=1, magic=b"RVSY", body_len=None):
    """An rvs sync message (engine/src/ha/sync.rs, version 1): 32-byte header
    (magic, version, kind, body_len, sender, boot, seq, count, reserved), the
    body, HMAC-SHA256(key, header + body)."""
    import hmac
    bl = len(body) if body_len is None else body_len
    head = magic + struct.pack("!BBH4sQQHH", version, kind, bl & 0xFFFF, socket.inet_aton(sender), boot, seq,
                               count, 0)
    return head + body + hmac.new(key, head + body, "sha256").digest()


def sync_conn_record(rng, vip="198.18.0.100", server="198.19.0.11"):
    """One well-formed connection record (type 1, 26 bytes): TCP ESTABLISHED-ish
    from a client on the client segment to VIP:80, NAT to server:8080."""
    client = f"198.18.0.{rng.randint(60, 99)}"
    return struct.pack("!BBBBBB4sH4sH4sHI", 1, 26, 6, 1, 0, 0, socket.inet_aton(client),
                       rng.randint(1024, 65535), socket.inet_aton(vip), 80, socket.inet_aton(server), 8080,
                       900000)


def build_sync_garbage(n, rng, sender="198.19.0.3"):
    """`n` datagrams no correct sync receiver may accept: [(kind, bytes)].
    Kinds rotate: random bytes; shorter than header + MAC; well-formed
    messages (records, bulk request, bulk end; sender = the peer's address)
    whose MAC is made under a wrong key; the same with a random MAC; a wrong
    version; a wrong magic; a body_len that lies; one authentic-looking
    records message with a bit flipped after its MAC was computed."""
    res = []
    kinds = ("random", "short", "records_wrong_key", "bulk_request_wrong_key", "bulk_end_wrong_key",
             "records_random_mac", "bad_version", "bad_magic", "length_lie", "bitflip")
    boot = rng.getrandbits(64)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        seq = i + 1
        wrong = bytes(rng.getrandbits(8) for _ in range(32))
        recs = [sync_conn_record(rng) for _ in range(rng.randint(1, 10))]
        body = b"".join(recs)
        if kind == "random":
            d = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 1400)))
        elif kind == "short":
            d = sync_message(1, sender, boot, seq, b"", 0, wrong)[: rng.randint(1, 63)]
        elif kind == "records_wrong_key":
            d = sync_message(1, sender, boot, seq, body, len(recs), wrong)
        elif kind == "bulk_request_wrong_key":
            d = sync_message(2, sender, boot, seq, struct.pack("!Q", rng.getrandbits(64)), 0, wrong)
        elif kind == "bulk_end_wrong_key":
            d = sync_message(3, sender, boot, seq, struct.pack("!QQ", rng.getrandbits(64), 1000), 0, wrong)
        elif kind == "records_random_mac":
            d = sync_message(1, sender, boot, seq, body, len(recs), wrong)
            d = d[:-32] + bytes(rng.getrandbits(8) for _ in range(32))
        elif kind == "bad_version":
            d = sync_message(1, sender, boot, seq, body, len(recs), wrong, version=rng.choice((0, 2, 255)))
        elif kind == "bad_magic":
            d = sync_message(1, sender, boot, seq, body, len(recs), wrong, magic=b"RVSX")
        elif kind == "length_lie":
            d = sync_message(1, sender, boot, seq, body, len(recs), wrong, body_len=len(body) + rng.randint(1, 900))
        else:
            b = bytearray(sync_message(1, sender, boot, seq, body, len(recs), wrong))
            pos = rng.randrange(len(b) - 32)
            b[pos] ^= 1 << rng.randrange(8)
            d = bytes(b)
        res.append((kind, d))
    return res


def cmd_sync_garbage(a):
    """Send `count` garbage/forged datagrams to dst:port, paced (`gap` s apart).
    Every `spoof_every`-th one (when --spoof is set) goes through a raw socket
    with the spoofed source address (a peer's), the rest from a normal UDP
    socket (this host's address)."""
    rng = random.Random(a.seed)
    dgrams = build_sync_garbage(a.count, rng, a.sender)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw = None
    if a.spoof:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    kinds, spoofed, errors = {}, 0, []
    t0 = time.monotonic()
    for i, (kind, d) in enumerate(dgrams):
        try:
            if raw is not None and a.spoof_every and i % a.spoof_every == 0:
                raw.sendto(_raw_udp(a.spoof, a.dst, a.port, a.port, d), (a.dst, 0))
                spoofed += 1
            else:
                u.sendto(d, (a.dst, a.port))
            kinds[kind] = kinds.get(kind, 0) + 1
        except OSError as e:
            errors.append(f"{i}: {e}")
        time.sleep(a.gap)
    u.close()
    if raw:
        raw.close()
    out({"sent": sum(kinds.values()), "kinds": kinds, "spoofed": spoofed, "errors": errors[:10],
         "seconds": round(time.monotonic() - t0, 3)})
    return 0


# ---------------------------------------------------------------- sync-replay
def cmd_sync_replay(a):
    """Capture genuine sync datagrams (UDP to `port`, from `src` if given) seen
    on `iface` (AF_PACKET: multicast sync floods the segment), up to `count` or
    `sniff_time` s; create <go_file>.captured; wait for `go_file`; then send
    each captured IP packet again byte for byte (raw, IP_HDRINCL: the original
    source, destination, and authentic MAC), `gap` s apart. A receiver must
    drop them all as replays."""
    import os
    import select
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((a.iface, 0))
    s.setblocking(False)
    src = socket.inet_aton(a.src) if a.src else None
    caught = []
    t0 = time.monotonic()
    while len(caught) < a.count and time.monotonic() - t0 < a.sniff_time:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        try:
            fr, addr = s.recvfrom(65535)
        except BlockingIOError:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        ip = fr[14:] if fr[12:14] == b"\x08\x00" else None
        if not ip or len(ip) < 28 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0xF) * 4
        tot = struct.unpack("!H", ip[2:4])[0]
        dport = struct.unpack("!H", ip[ihl + 2:ihl + 4])[0]
        if dport != a.port or (src and ip[12:16] != src):
            continue
        caught.append(bytes(ip[:tot]))
    s.close()
    if a.go_file:
        open(a.go_file + ".captured", "w").close()
        t1 = time.monotonic()
        while not os.path.exists(a.go_file) and time.monotonic() - t1 < a.go_timeout:
            time.sleep(0.05)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.iface.encode())
    sent, errors, dsts = 0, [], {}
    for ip in caught:
        dst = socket.inet_ntoa(ip[16:20])
        try:
            raw.sendto(ip, (dst, 0))
            sent += 1
            dsts[dst] = dsts.get(dst, 0) + 1
        except OSError as e:
            errors.append(str(e))
        time.sleep(a.gap)
    raw.close()
    out({"captured": len(caught), "replayed": sent, "destinations": dsts, "errors": errors[:5],
         "sizes": sorted({len(x) for x in caught})[:10]})
    return 0


# ---------------------------------------------------------------- vrrp-forge
def vrrp_advert(src, dst, vrid, priority, addrs, interval_cs):
    """A VRRPv3 advertisement (RFC 5798 §5.1): version 3, type 1, the checksum
    over the IPv4 pseudo header (src, dst, 0, 112, length) and the packet."""
    body = struct.pack("!BBBBHH", 0x31, vrid, priority, len(addrs), interval_cs & 0x0FFF, 0)
    body += b"".join(socket.inet_aton(x) for x in addrs)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(body))
    c = csum(pseudo + body)
    return body[:6] + struct.pack("!H", c) + body[8:]


def vrrp_check(src, dst, pkt):
    """True when pkt's checksum verifies under the pseudo header (self-test)."""
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(pkt))
    return csum(pseudo + pkt) == 0


def cmd_vrrp_forge(a):
    """Send `count` VRRPv3 adverts to each of --dst (comma list: unicast
    addresses and/or 224.0.0.18) from this host's address on --iface, raw IP
    protocol 112 with TTL 255 (IP_HDRINCL, so the TTL and source are exact),
    `gap` s apart."""
    src = a.src or _if_addr(a.iface)
    addrs = [x for x in a.addrs.split(",") if x]
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.iface.encode())
    sent, errors = {}, []
    t0 = time.monotonic()
    for i in range(a.count):
        for dst in a.dst.split(","):
            pkt = vrrp_advert(src, dst, a.vrid, a.priority, addrs, a.interval_cs)
            assert vrrp_check(src, dst, pkt)
            try:
                raw.sendto(ip_hdr(src, dst, 112, len(pkt), ttl=a.ttl) + pkt, (dst, 0))
                sent[dst] = sent.get(dst, 0) + 1
            except OSError as e:
                errors.append(f"{dst}: {e}")
        time.sleep(a.gap)
    raw.close()
    out({"sent": sent, "src": src, "vrid": a.vrid, "priority": a.priority, "addrs": addrs,
         "errors": errors[:10], "seconds": round(time.monotonic() - t0, 3)})
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--total", type=float, default=2.0)
    p.add_argument("--each", type=float, default=1.0)
    p = sub.add_parser("http-many")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--path", default="/")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--deadline", type=float, default=120.0)
    p.add_argument("--sources", help="comma-separated source addresses to rotate through")
    p.add_argument("--sport-base", type=int, default=0,
                   help="source port of the first connection, then one more per connection (0: the kernel's)")
    p = sub.add_parser("http-hold")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--gap", type=float, default=0.02, help="seconds between two connects")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to hold all before asking")
    p = sub.add_parser("hold-send")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--ready", required=True, help="file the local port is written to once connected")
    p.add_argument("--go", required=True, help="file whose existence says: send now")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for --go at most")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    p = sub.add_parser("udp-many")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--one-socket", action="store_true",
                   help="every request from one socket (one source port)")
    p.add_argument("--size", type=int, default=0,
                   help="pad each request to this many bytes (the echo must match)")
    p = sub.add_parser("download")
    p.add_argument("url")
    p.add_argument("--out", required=True)
    p.add_argument("--max-time", type=int, default=120)
    p.add_argument("--limit-rate", help="curl --limit-rate value, e.g. 10M (with --python: kept by the reading loop)")
    p.add_argument("--python", action="store_true", help="do not use curl")
    p = sub.add_parser("garbage")
    p.add_argument("--iface", required=True)
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--src-mac", required=True)
    p.add_argument("--vip", default="198.18.0.100")
    p.add_argument("--sources", default="198.18.0.10")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every category count")
    p.add_argument("--burst", type=int, default=8)
    p.add_argument("--gap", type=float, default=0.002)
    p.add_argument("--max-time", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("syn-flood")
    p.add_argument("--iface", required=True)
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--src-mac", required=True)
    p.add_argument("--vip", default="198.18.0.100")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--prefix", default="198.18.0", help="first three octets of the spoofed sources")
    p.add_argument("--hosts", default="151-250", help="last octet range of the spoofed sources")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--max-time", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("http-loop")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--duration", type=float, default=60.0, help="at most this many seconds")
    p.add_argument("--stop-file", help="stop as soon as this file exists")
    p.add_argument("--ready-file", help="written when the loop starts")
    p.add_argument("--timeout", type=float, default=3.0, help="per request")
    p.add_argument("--path", default="/")
    p.add_argument("--source", help="source address")
    p = sub.add_parser("icmp-loop")
    p.add_argument("host")
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--stop-file")
    p.add_argument("--timeout", type=float, default=1.0, help="wait for late replies at the end")
    p = sub.add_parser("arp-probe")
    p.add_argument("--iface", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--src", help="sender protocol address (default: the interface's)")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--gap", type=float, default=0.2)
    p.add_argument("--wait", type=float, default=0.5)
    p.add_argument("--any-op", action="store_true", help="count ARP requests from the target too")
    p.add_argument("--ready-file", help="written once the socket listens")
    p = sub.add_parser("sync-garbage")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=8848)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--spoof", help="source address of the raw-socket share (e.g. a peer's)")
    p.add_argument("--spoof-every", type=int, default=2, help="every Nth datagram is spoofed")
    p.add_argument("--sender", default="198.19.0.3", help="the sender field of the forged messages")
    p.add_argument("--gap", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=11)
    p = sub.add_parser("sync-replay")
    p.add_argument("--iface", required=True)
    p.add_argument("--port", type=int, default=8848)
    p.add_argument("--src", help="only datagrams from this source")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--sniff-time", type=float, default=15.0)
    p.add_argument("--go-file", help="replay only once this file exists")
    p.add_argument("--go-timeout", type=float, default=60.0)
    p.add_argument("--gap", type=float, default=0.005)
    p = sub.add_parser("vrrp-forge")
    p.add_argument("--iface", required=True)
    p.add_argument("--dst", required=True, help="comma list: peers and/or 224.0.0.18")
    p.add_argument("--src", help="source address (default: the interface's)")
    p.add_argument("--vrid", type=int, default=51)
    p.add_argument("--priority", type=int, default=254)
    p.add_argument("--addrs", default="198.18.0.100,198.19.0.1")
    p.add_argument("--interval-cs", type=int, default=10)
    p.add_argument("--ttl", type=int, default=255)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--gap", type=float, default=0.05)
    a = ap.parse_args()
    extra = {"http-loop": cmd_http_loop, "icmp-loop": cmd_icmp_loop, "arp-probe": cmd_arp_probe,
             "sync-garbage": cmd_sync_garbage, "sync-replay": cmd_sync_replay, "vrrp-forge": cmd_vrrp_forge,
             "syn-flood": cmd_syn_flood, "hold-send": cmd_hold_send}
    if a.cmd in extra:
        return extra[a.cmd](a)
    return {"probe": cmd_probe, "http-many": cmd_http_many, "http-hold": cmd_http_hold, "udp-many": cmd_udp_many,
            "download": cmd_download, "garbage": cmd_garbage}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
