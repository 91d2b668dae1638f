"""One-arm topology for the DR/TUN end-to-end tests (SPEC §8), built on ci/netns.py.

Everything sits on one Linux bridge in its own switch namespace, one subnet:

    rvs-X-client                 rvs-X-sw                   rvs-X-dir
    cli0 198.18.0.10/24 ---- sw-cli  [br0]  sw-dir ---- dc  (DPDK port 198.18.0.2,
                                     |  |  |                 no kernel address,
                   sw-rs1 -----------+  |  +---- sw-rs3      ip_forward 0)
                         |          sw-rs2            |
    rvs-X-rs1 eth0 198.18.0.11/24   ...   rvs-X-rs3 eth0 198.18.0.13/24
              lo   198.18.0.100/32 (the VIP, as IPVS DR/TUN real servers hold it)

Real servers: arp_ignore=1 and arp_announce=2 (all and eth0) so they never
answer or announce the VIP (the director owns it on the wire), rp_filter 0
(all, default and eth0: TUN hands packets in on a TUN device whose reverse
path is eth0). They have no default route and reply to the client on-link
(DR-style return path). `nat_via_director(name)` turns one server into a
one-arm NAT server: its route to the client (and its default route) go via
the director's port address, so its replies come back through rvs.

Offloads are off on every veth end, as in ci/netns.py. Namespaces, pid file
and cleanup are netns.Topology's (names `rvs-X-*`, `netns.py --cleanup`).
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CI = os.path.dirname(HERE)
sys.path.insert(0, CI)

import netns  # noqa: E402

VIP = netns.VIP
CLIENT_ADDR = netns.CLIENT_ADDR                 # 198.18.0.10
DIRECTOR_ADDR = netns.DIRECTOR_CLIENT_ADDR      # 198.18.0.2: the director's only port
SUBNET_LEN = 24
SERVERS = {"rs1": "198.18.0.11", "rs2": "198.18.0.12", "rs3": "198.18.0.13"}
TUN_DEV = "tunl-rvs"


class OneArm(netns.Topology):
    """Client, director (one DPDK port) and three real servers on one bridge."""

    def __init__(self, run_id=None, servers=None):
        super().__init__(run_id, dc="dc", ds=None, servers=servers or SERVERS)
        self.tundecap = {}        # name -> (Popen, stdout path)

    def up(self):
        if not os.path.exists("/dev/net/tun"):
            raise RuntimeError("/dev/net/tun is missing (the TUN helper needs it)")
        import shutil
        if shutil.which("ethtool") is None:
            raise RuntimeError("ethtool is missing (run ci/setup.sh)")
        netns._install_handlers()
        os.makedirs(netns.STATE_DIR, exist_ok=True)
        with open(os.path.join(netns.STATE_DIR, f"{self.id}.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        netns._live.append(self)
        t0 = time.monotonic()
        for ns in self.namespaces:
            netns.run(["ip", "netns", "add", ns])
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            self.ip(ns, "link", "set", "lo", "up")
        d, c, s = self.director, self.client, self.switch

        # switch: one bridge for everybody
        self.ip(s, "link", "add", "br0", "type", "bridge", "stp_state", "0",
                "forward_delay", "0", "mcast_snooping", "0")
        self.ip(s, "link", "set", "br0", "up")

        def attach(ns, dev, swport):
            self.ip(ns, "link", "add", dev, "type", "veth", "peer", "name", swport, "netns", s)
            self.offloads_off(ns, dev)
            self.offloads_off(s, swport)
            self.ip(s, "link", "set", swport, "master", "br0", "up")

        # director: one DPDK veth, no address, no forwarding, no IPv6
        self.sysctl(d, "net.ipv4.ip_forward=0")
        attach(d, self.dc, "sw-dir")
        self.sysctl(d, f"net.ipv6.conf.{self.dc}.disable_ipv6=1")
        self.ip(d, "link", "set", self.dc, "up")

        # client: one address, the VIP is on-link (the director answers its ARP)
        attach(c, self.client_if, "sw-cli")
        self.batch(c, [f"addr add {CLIENT_ADDR}/{SUBNET_LEN} dev {self.client_if}",
                       f"link set {self.client_if} up"])

        # real servers: VIP on lo, ARP quiet about it, no reverse-path filter
        for name, addr in self.servers.items():
            ns = self.rs_ns[name]
            attach(ns, "eth0", f"sw-{name}"[:15])
            self.sysctl(ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                        "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                        "net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2",
                        "net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.lo.rp_filter=0")
            self.batch(ns, [f"addr add {addr}/{SUBNET_LEN} dev eth0",
                            f"addr add {VIP}/32 dev lo",
                            "link set eth0 up"])
        self.up_done = True
        netns.log(f"one-arm topology {self.id} up in {time.monotonic() - t0:.1f}s")
        return self

    def nat_via_director(self, name):
        """Make `name` a one-arm NAT server: the client is on-link for it, so a
        default route alone would not do; a host route to the client (and the
        default route) via the director's port address bring its replies back
        through rvs, which puts the VIP back as their source."""
        ns = self.rs_ns[name]
        self.batch(ns, [f"route add {CLIENT_ADDR}/32 via {DIRECTOR_ADDR} dev eth0",
                        f"route add default via {DIRECTOR_ADDR} dev eth0"])

    # ---- processes in the servers ------------------------------------
    def start_realservers(self, workdir, ports=None, python=sys.executable, timeout=30.0):
        """ci/realserver.py in every server namespace; `ports` maps name -> HTTP
        port (default 80: DR and TUN keep the VIP port). Waits until bound."""
        ports = ports or {}
        ready = {}
        for name in self.servers:
            rf = os.path.join(workdir, f"{name}.ready")
            if os.path.exists(rf):
                os.unlink(rf)
            logf = open(os.path.join(workdir, f"{name}.log"), "w")
            self.popen(self.rs_ns[name], [python, os.path.join(CI, "realserver.py"), "--name", name,
                                          "--http-port", str(ports.get(name, 80)), "--ready-file", rf],
                       stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            ready[name] = rf
        _wait_files(ready, timeout, "real servers")

    def start_tundecap(self, workdir, names=None, python=sys.executable, max_time=900, timeout=30.0):
        """ci/tundecap.py in the given server namespaces (default: all). Creating
        a TUN device takes the kernel's rtnl lock, which namespace teardown (of
        the previous test, or of other users) can hold for seconds: hence the
        generous `timeout`."""
        ready = {}
        for name in names or list(self.servers):
            rf = os.path.join(workdir, f"{name}.tundecap.ready")
            if os.path.exists(rf):
                os.unlink(rf)
            outp = os.path.join(workdir, f"{name}.tundecap.log")
            logf = open(outp, "w")
            p = self.popen(self.rs_ns[name], [python, os.path.join(CI, "tundecap.py"),
                                              "--addr", self.servers[name], "--tun", TUN_DEV,
                                              "--max-time", str(max_time), "--ready-file", rf],
                           stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            self.tundecap[name] = (p, outp)
            ready[name] = rf
        try:
            _wait_files(ready, timeout, "tundecap helpers")
        except RuntimeError as e:
            logs = []
            for name in ready:
                with open(self.tundecap[name][1], errors="replace") as f:
                    logs.append(f"{name}: {f.read().strip() or '<no output>'}")
            raise RuntimeError(f"{e}; their output: " + " | ".join(logs)) from None

    def stop_tundecap(self, timeout=10.0):
        """SIGTERM the helpers; return name -> their counters (JSON line) or None."""
        out = {}
        for name, (p, path) in self.tundecap.items():
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            out[name] = None
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("tundecap-stats "):
                            out[name] = json.loads(line[len("tundecap-stats "):])
            except (OSError, ValueError):
                pass
        self.tundecap = {}
        return out

    # ---- counters -------------------------------------------------------
    def link_stats(self, ns, dev):
        """The kernel's packet/byte counters of `dev` in `ns`."""
        out = self.ip(ns, "-s", "-j", "link", "show", "dev", dev).stdout
        st = json.loads(out)[0]["stats64"]
        return {"rx_packets": st["rx"]["packets"], "tx_packets": st["tx"]["packets"],
                "rx_bytes": st["rx"]["bytes"], "tx_bytes": st["tx"]["bytes"]}

    def snmp(self, ns):
        """/proc/net/snmp of `ns` as {"Icmp": {...}, "Ip": {...}, ...}."""
        text = self.nsexec(ns, ["cat", "/proc/net/snmp"]).stdout.splitlines()
        res = {}
        for head, vals in zip(text[0::2], text[1::2]):
            proto, keys = head.split(":", 1)
            _, nums = vals.split(":", 1)
            res[proto] = dict(zip(keys.split(), (int(x) for x in nums.split())))
        return res

    def describe(self):
        return {"id": self.id, "client": self.client, "director": self.director,
                "switch": self.switch, "servers": self.rs_ns, "dc": self.dc,
                "client_if": self.client_if, "one_arm": True}


def _wait_files(ready, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(os.path.exists(f) for f in ready.values()):
            return
        time.sleep(0.05)
    missing = [n for n, f in ready.items() if not os.path.exists(f)]
    raise RuntimeError(f"{what} not ready after {timeout}s: {missing}")
