#!/usr/bin/env python3
"""A stand-in director made of kernel sockets, to check the e2e harness without rvs.

Run like rvs (`fakedirector.py -c FILE`) inside the director namespace. It gives
the director's veths kernel addresses (the real rvs must not have any), then
proxies TCP VIP:80 with IPVS-style wrr and UDP VIP:53 with rr to the configured
servers. SIGINT/SIGTERM print an `rvs-stats {...}` line and exit 0. It does not
count drops: tests skip drop assertions in fake mode (RVS_E2E_FAKE=1).
"""

import argparse
import json
import math
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from functools import reduce

stats = {"rx_packets": 0, "tx_packets": 0, "drops": {}, "handoffs": 0, "conns_created": 0}
lock = threading.Lock()


class Wrr:
    def __init__(self, servers, weights):
        self.s, self.w = servers, weights
        self.step = reduce(math.gcd, [w for w in weights if w > 0])
        self.ceil = max(weights) - (self.step - 1)
        self.cw = self.ceil
        self.i = -1

    def pick(self):
        with lock:
            while True:
                self.i += 1
                if self.i == len(self.s):
                    self.i = 0
                    self.cw -= self.step
                    if self.cw < 1:
                        self.cw = self.ceil
                if self.w[self.i] >= self.cw:
                    return self.s[self.i]


class Rr:
    def __init__(self, servers):
        self.s, self.i = servers, -1

    def pick(self):
        with lock:
            self.i = (self.i + 1) % len(self.s)
            return self.s[self.i]


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def tcp_conn(c, sched):
    try:
        u = socket.create_connection(sched.pick(), timeout=5)
        u.settimeout(None)
        with lock:
            stats["conns_created"] += 1
        t = threading.Thread(target=pump, args=(u, c), daemon=True)
        t.start()
        pump(c, u)
        t.join(120)
        u.close()
    except OSError:
        pass
    finally:
        c.close()


def tcp_service(vip, port, sched):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((vip, port))
    ls.listen(128)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=tcp_conn, args=(c, sched), daemon=True).start()


def udp_service(vip, port, sched):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((vip, port))
    flows = {}

    def relay(peer, data):
        u = flows.get(peer)
        if u is None:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.connect(sched.pick())
            flows[peer] = u
            with lock:
                stats["conns_created"] += 1
        u.settimeout(2)
        try:
            u.send(data)
            s.sendto(u.recv(65535), peer)
        except OSError:
            pass

    while True:
        data, peer = s.recvfrom(65535)
        threading.Thread(target=relay, args=(peer, data), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", required=True)
    a = ap.parse_args()
    with open(a.c, "rb") as f:
        cfg = tomllib.load(f)
    ifaces = [p["device"].split("iface=")[1].split(",")[0] for p in cfg["port"]]
    vips = sorted({s["vip"] for s in cfg["service"]})
    for p, dev in zip(cfg["port"], ifaces):
        subprocess.run(["ip", "addr", "add", p["address"], "dev", dev], check=True)
    for v in vips:
        subprocess.run(["ip", "addr", "add", v + "/32", "dev", ifaces[0]], check=True)
    for svc in cfg["service"]:
        servers = [(s["address"], s["port"]) for s in svc["server"]]
        weights = [s.get("weight", 1) for s in svc["server"]]
        sched = Wrr(servers, weights) if svc["scheduler"] == "wrr" else Rr(servers)
        target = tcp_service if svc["protocol"] == "tcp" else udp_service
        threading.Thread(target=target, args=(svc["vip"], svc["port"], sched), daemon=True).start()

    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("fake director running", file=sys.stderr, flush=True)
    done.wait(3600)
    print("rvs-stats " + json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
