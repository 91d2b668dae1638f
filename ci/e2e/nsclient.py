#!/usr/bin/env python3
"""Client-side helpers, run inside the client namespace by the e2e tests and the demo.

Every subcommand is bounded in count and time and prints one JSON object on stdout.

    probe HOST PORT [--total S]           retry a TCP connect until it succeeds
    http-many HOST PORT N [--path P]      N fresh sequential HTTP GETs; count who answered
    udp-many HOST PORT N                  N UDP requests, each from a fresh socket
    download URL --out FILE               fetch (curl if present, else Python), sha256 it
    garbage --iface IF --dst-mac MAC      fire a bounded mix of malformed frames (AF_PACKET)
"""

import argparse
import hashlib
import http.client
import json
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
    counts, errors, answers = {}, [], []
    sources = a.sources.split(",") if a.sources else [None]
    t0 = time.monotonic()
    for i in range(a.n):
        if time.monotonic() - t0 > a.deadline:
            errors.append(f"deadline {a.deadline}s reached after {i} requests")
            break
        src = sources[i % len(sources)]
        conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout,
                                          source_address=(src, 0) if src else None)
        try:
            conn.request("GET", a.path, headers={"Connection": "close"})
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            if r.status != 200 or not body.startswith("server "):
                errors.append(f"request {i + 1}: status {r.status} body {body[:60]!r}")
                answers.append(None)
                continue
            name = body.split()[1]
            counts[name] = counts.get(name, 0) + 1
            answers.append(name)
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"request {i + 1}: {type(e).__name__}: {e}")
            answers.append(None)
        finally:
            conn.close()
    out({"counts": counts, "errors": errors, "answers": answers,
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


# ---------------------------------------------------------------- udp-many
def cmd_udp_many(a):
    counts, errors, answers = {}, [], []
    t0 = time.monotonic()
    held = []   # keep every socket open until the end: the kernel cannot reuse a source port
    for i in range(a.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.append(s)
        s.settimeout(a.timeout)
        try:
            s.bind(("0.0.0.0", 0))          # fresh source port each time
            payload = f"req-{i}".encode()
            s.sendto(payload, (a.host, a.port))
            data, peer = s.recvfrom(2048)
            name, _, rest = data.partition(b":")
            if rest != payload:
                errors.append(f"request {i + 1}: bad reply {data[:60]!r} from {peer}")
                answers.append(None)
                continue
            if peer != (a.host, a.port):
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
def cmd_download(a):
    curl = shutil.which("curl") if not a.python else None
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
            with open(a.out, "wb") as f:
                while True:
                    if time.monotonic() - t0 > a.max_time:
                        err = f"deadline {a.max_time}s"
                        break
                    c = r.read(1 << 16)
                    if not c:
                        break
                    f.write(c)
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
    p = sub.add_parser("http-hold")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--gap", type=float, default=0.02, help="seconds between two connects")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to hold all before asking")
    p = sub.add_parser("udp-many")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--timeout", type=float, default=2.0)
    p = sub.add_parser("download")
    p.add_argument("url")
    p.add_argument("--out", required=True)
    p.add_argument("--max-time", type=int, default=120)
    p.add_argument("--limit-rate", help="curl --limit-rate value, e.g. 10M")
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
    a = ap.parse_args()
    return {"probe": cmd_probe, "http-many": cmd_http_many, "http-hold": cmd_http_hold, "udp-many": cmd_udp_many,
            "download": cmd_download, "garbage": cmd_garbage}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
