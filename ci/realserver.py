#!/usr/bin/env python3
"""A real server for rvs tests (stdlib only), run inside a real-server namespace.

HTTP on 0.0.0.0:8080 (ThreadingHTTPServer):
    GET /                 -> "server <name>\\n"
    GET /blob?size=N      -> N bytes of deterministic content (see blob_chunks)
    GET /health           -> "ok\\n"
UDP echo on 0.0.0.0:5353: replies b"<name>:" + the request.

--mode-file PATH (health-check tests): while PATH exists, its first word
changes what HTTP does with each new connection:
    hang      accept and never answer (the connection is held open, at most
              10 minutes, or until the mode changes; then closed unanswered)
    garbage   answer with bytes that are not HTTP, then close
anything else (or no file) serves normally.

The blob is the concatenation of blocks of 64 KiB, block k being
SHAKE-256(b"rvs-blob-" + str(k)) truncated to 64 KiB, the whole cut to N bytes.
Anyone can compute its sha256 without fetching it (expected_sha256 below).
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

BLOCK = 65536
MAX_BLOB = 1 << 31


def blob_chunks(size):
    """Yield the blob of `size` bytes in chunks of at most 64 KiB."""
    k = 0
    left = size
    while left > 0:
        block = hashlib.shake_256(b"rvs-blob-%d" % k).digest(BLOCK)
        n = min(left, BLOCK)
        yield block[:n]
        left -= n
        k += 1


def expected_sha256(size):
    h = hashlib.sha256()
    for c in blob_chunks(size):
        h.update(c)
    return h.hexdigest()


HANG_MAX = 600.0


def current_mode(path):
    """The first word of the mode file, or "" (normal) when there is none."""
    if not path:
        return ""
    try:
        with open(path) as f:
            words = f.read(64).split()
    except OSError:
        return ""
    return words[0] if words else ""


class Handler(BaseHTTPRequestHandler):
    server_version = "rvs-realserver/1"
    name = "rs?"
    mode_file = None

    def handle(self):
        mode = current_mode(self.mode_file)
        if mode == "hang":
            # accepted; never answer while the mode lasts (bounded)
            t0 = time.monotonic()
            while current_mode(self.mode_file) == "hang" and time.monotonic() - t0 < HANG_MAX:
                time.sleep(0.1)
            return
        if mode == "garbage":
            try:
                self.wfile.write(b"\x00\xffgarbage \x1b[31m not http at all\r\n\r\n" + os.urandom(64))
            except OSError:
                pass
            return
        super().handle()

    def log_message(self, fmt, *args):  # quiet: one line per request to stderr is too much
        pass

    def _reply(self, body, ctype="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/":
            self._reply(f"server {self.name}\n".encode())
        elif u.path == "/peer":
            # who the server sees as its client (full-NAT: the director)
            self._reply(f"server {self.name} {self.client_address[0]}\n".encode())
        elif u.path == "/health":
            self._reply(b"ok\n")
        elif u.path == "/blob":
            try:
                size = int(parse_qs(u.query).get("size", ["0"])[0])
                if not 0 <= size <= MAX_BLOB:
                    raise ValueError
            except ValueError:
                self.send_error(400, "size must be 0..2^31")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("X-Server", self.name)
            self.end_headers()
            try:
                for c in blob_chunks(size):
                    self.wfile.write(c)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_error(404)

    def do_POST(self):
        if urlparse(self.path).path != "/upload":
            self.send_error(404)
            return
        try:
            size = int(self.headers.get("Content-Length", ""))
            if not 0 <= size <= MAX_BLOB:
                raise ValueError
        except ValueError:
            self.send_error(411, "Content-Length 0..2^31 needed")
            return
        h = hashlib.sha256()
        left = size
        while left > 0:
            c = self.rfile.read(min(left, BLOCK))
            if not c:
                break
            h.update(c)
            left -= len(c)
        body = json.dumps({"server": self.name, "bytes": size - left, "sha256": h.hexdigest()}).encode()
        self._reply(body + b"\n", "application/json")


def udp_echo(name, s, stop):
    s.settimeout(0.5)
    prefix = f"{name}:".encode()
    while not stop.is_set():
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        s.sendto(prefix + data, peer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--udp-port", type=int, default=5353)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--ready-file", help="created once both sockets are bound")
    ap.add_argument("--mode-file", help="hang/garbage switch for health-check tests (see above)")
    a = ap.parse_args()

    Handler.name = a.name
    Handler.mode_file = a.mode_file
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    # An IPv6 --bind (an e2e's IPv6 server beside the IPv4 one) takes
    # AF_INET6 sockets; IPv4 is as before.
    family = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    server_cls = ThreadingHTTPServer
    if family == socket.AF_INET6:
        class Server6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

            def server_bind(self):
                # HTTPServer.server_bind asks DNS for the address's name
                # (getfqdn), which stalls for seconds in a namespace
                # without DNS.
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = a.bind, a.http_port
        server_cls = Server6
    httpd = server_cls((a.bind, a.http_port), Handler)
    us = socket.socket(family, socket.SOCK_DGRAM)
    us.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    us.bind((a.bind, a.udp_port))
    stop = threading.Event()
    t = threading.Thread(target=udp_echo, args=(a.name, us, stop), daemon=True)
    t.start()

    def on_term(*_):
        stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    print(f"{a.name}: http on {a.bind}:{a.http_port}, udp echo on {a.bind}:{a.udp_port}", flush=True)
    httpd.serve_forever(poll_interval=0.2)
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
