#!/usr/bin/env python3
"""Network-namespace topology for rvs end-to-end tests and the demo (SPEC §8).

Layout for one run id X (6 hex digits), every name prefixed `rvs-X-`:

    rvs-X-client          rvs-X-dir                 rvs-X-sw            rvs-X-rs1..3
    cli0 198.18.0.10/24 -- dc  (DPDK)  ds (DPDK) -- sw-dir  [br0]  sw-rsN -- eth0 198.19.0.1N/24
    + .11-.50 secondary      no addresses,                                  default via 198.19.0.1
                             ip_forward 0, no IPv6

Every namespace has IPv6 off (no NDP/MLD noise reaches the director) and every
veth end has tx/tso/gso/gro offloads off (net_af_packet would otherwise read
frames with partial checksums or larger than the MTU).

Nothing is created in the root namespace: each veth pair is created inside its
namespace, so parallel runs never collide on interface names. A run records its
owner pid in /run/rvs-e2e/<id>.pid; `--cleanup` removes the namespaces (and the
processes inside them) of runs whose owner is gone, `--cleanup --force` of all.

Command line:
    netns.py --up [--id X] [--hold SECS]   build a topology, print its names (JSON),
                                           keep it until Ctrl-C / SIGTERM / SECS
    netns.py --up --ha [--dr] ...          the same with the two-director HaTopology
    netns.py --cleanup [--force]           remove leftovers
    netns.py --list                        show rvs-* namespaces and their owners
"""

import argparse
import atexit
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

PREFIX = "rvs-"
STATE_DIR = "/run/rvs-e2e"
NS_RE = re.compile(r"^rvs-([0-9a-f]{6})-[a-z0-9]+$")

VIP = "198.18.0.100"
CLIENT_NET = "198.18.0"
CLIENT_ADDR = "198.18.0.10"
CLIENT_EXTRA = [f"{CLIENT_NET}.{i}" for i in range(11, 51)]
DIRECTOR_CLIENT_ADDR = "198.18.0.2"
DIRECTOR_SERVER_ADDR = "198.19.0.1"
SERVERS = {"rs1": "198.19.0.11", "rs2": "198.19.0.12", "rs3": "198.19.0.13"}

_live = []          # topologies to tear down at exit / on signals
_workdirs = []      # temp dirs (--up --servers) removed with them, also on SIGTERM
_handlers_installed = False


def log(msg):
    print(f"[netns] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, input=None, timeout=30, quiet=False):
    """Run a command (list), return CompletedProcess; raise with its output on failure."""
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    if not quiet and p.returncode != 0:
        log(f"(ignored) {' '.join(cmd)}: {p.stderr.strip()}")
    return p


def list_namespaces():
    p = run(["ip", "-j", "netns", "list"], check=False, quiet=True)
    if p.returncode != 0 or not p.stdout.strip():
        return []
    try:
        return [e["name"] for e in json.loads(p.stdout)]
    except (ValueError, KeyError):
        return [l.split()[0] for l in p.stdout.splitlines() if l.strip()]


def ns_pids(ns):
    p = run(["ip", "netns", "pids", ns], check=False, quiet=True)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_ns_processes(ns, grace=3.0):
    """SIGTERM then SIGKILL every process living in namespace ns (bounded)."""
    pids = ns_pids(ns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies count as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def delete_ns(ns):
    kill_ns_processes(ns)
    run(["ip", "netns", "del", ns], check=False, quiet=True)


def _owner_alive(run_id):
    try:
        with open(os.path.join(STATE_DIR, f"{run_id}.pid")) as f:
            return _alive(int(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return False


def cleanup_leftovers(force=False, quiet=False):
    """Remove namespaces of runs whose owner process is gone (all of them if force)."""
    removed = []
    by_id = {}
    for ns in list_namespaces():
        m = NS_RE.match(ns)
        if m:
            by_id.setdefault(m.group(1), []).append(ns)
    for run_id, names in sorted(by_id.items()):
        if not force and _owner_alive(run_id):
            if not quiet:
                log(f"run {run_id} is still alive; leaving {', '.join(names)}")
            continue
        for ns in names:
            delete_ns(ns)
            removed.append(ns)
        try:
            os.unlink(os.path.join(STATE_DIR, f"{run_id}.pid"))
        except OSError:
            pass
    # pid files without namespaces
    if os.path.isdir(STATE_DIR):
        for f in os.listdir(STATE_DIR):
            rid = f.split(".")[0]
            if rid not in by_id and (force or not _owner_alive(rid)):
                try:
                    os.unlink(os.path.join(STATE_DIR, f))
                except OSError:
                    pass
    if removed and not quiet:
        log(f"removed {len(removed)} leftover namespaces: {' '.join(removed)}")
    return removed


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(teardown_all)

    def on_signal(signum, _frame):
        teardown_all()
        # re-raise with default action so the exit status says what happened
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) in (signal.SIG_DFL, None):   # keep a caller's own handler
            signal.signal(s, on_signal)
    # SIGINT: Python raises KeyboardInterrupt, which unwinds through try/finally;
    # atexit catches the rest.


def teardown_all():
    while _live:
        t = _live.pop()
        try:
            t.down()
        except Exception as e:  # never let cleanup stop cleanup
            log(f"teardown of {t.id} failed: {e}")
    while _workdirs:
        shutil.rmtree(_workdirs.pop(), ignore_errors=True)


class Topology:
    """One client / director / switch / three real servers topology."""

    def __init__(self, run_id=None, dc="dc", ds="ds", servers=None):
        self.id = run_id or secrets.token_hex(3)
        p = f"{PREFIX}{self.id}-"
        self.client = p + "client"
        self.director = p + "dir"
        self.switch = p + "sw"
        self.servers = dict(servers or SERVERS)          # name -> address
        self.rs_ns = {name: p + name for name in self.servers}
        self.dc, self.ds = dc, ds
        self.client_if = "cli0"
        self.procs = []                                   # Popen objects we own
        self.up_done = False

    # ---- helpers -------------------------------------------------------
    @property
    def namespaces(self):
        return [self.client, self.director, self.switch] + list(self.rs_ns.values())

    def ip(self, ns, *args, check=True):
        return run(["ip", "-n", ns, *args], check=check)

    def nsexec(self, ns, cmd, check=True, timeout=30, input=None):
        return run(["ip", "netns", "exec", ns, *cmd], check=check, timeout=timeout, input=input)

    def batch(self, ns, lines):
        run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")

    def sysctl(self, ns, *settings):
        self.nsexec(ns, ["sysctl", "-q", "-w", *settings])

    def offloads_off(self, ns, dev):
        self.nsexec(ns, ["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])

    def popen(self, ns, cmd, stdout=None, stderr=None, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=stdout, stderr=stderr,
                             stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def mac(self, ns, dev):
        out = self.ip(ns, "-j", "link", "show", "dev", dev).stdout
        return json.loads(out)[0]["address"]

    # ---- life cycle ----------------------------------------------------
    def up(self):
        if shutil.which("ethtool") is None:
            raise RuntimeError("ethtool is missing (run ci/setup.sh)")
        _install_handlers()
        os.makedirs(STATE_DIR, exist_ok=True)
        with open(os.path.join(STATE_DIR, f"{self.id}.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        _live.append(self)
        t0 = time.monotonic()
        for ns in self.namespaces:
            run(["ip", "netns", "add", ns])
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            self.ip(ns, "link", "set", "lo", "up")
        d, c, s = self.director, self.client, self.switch

        # director: two DPDK veths, no addresses, no forwarding, no IPv6
        self.sysctl(d, "net.ipv4.ip_forward=0")
        self.ip(d, "link", "add", self.dc, "type", "veth", "peer", "name", self.client_if, "netns", c)
        self.ip(d, "link", "add", self.ds, "type", "veth", "peer", "name", "sw-dir", "netns", s)
        for dev in (self.dc, self.ds):
            self.sysctl(d, f"net.ipv6.conf.{dev}.disable_ipv6=1")
            self.offloads_off(d, dev)
            self.ip(d, "link", "set", dev, "up")

        # client: one address the VIP shares a subnet with, plus .11-.50
        self.offloads_off(c, self.client_if)
        lines = [f"addr add {CLIENT_ADDR}/24 dev {self.client_if}"]
        lines += [f"addr add {a}/24 dev {self.client_if}" for a in CLIENT_EXTRA]
        lines += [f"link set {self.client_if} up"]
        self.batch(c, lines)

        # switch: a bridge joining the director's server side and the servers
        self.ip(s, "link", "add", "br0", "type", "bridge", "stp_state", "0",
                "forward_delay", "0", "mcast_snooping", "0")
        self.ip(s, "link", "set", "br0", "up")
        self.offloads_off(s, "sw-dir")
        self.ip(s, "link", "set", "sw-dir", "master", "br0", "up")
        for name, addr in self.servers.items():
            ns = self.rs_ns[name]
            port = f"sw-{name}"[:15]
            self.ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", s)
            self.offloads_off(ns, "eth0")
            self.offloads_off(s, port)
            self.ip(s, "link", "set", port, "master", "br0", "up")
            self.batch(ns, [f"addr add {addr}/24 dev eth0", "link set eth0 up",
                            f"route add default via {DIRECTOR_SERVER_ADDR}"])
        self.up_done = True
        log(f"topology {self.id} up in {time.monotonic() - t0:.1f}s")
        return self

    def stop_procs(self, grace=5.0):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log(f"pid {p.pid} did not die")
        self.procs = []

    def down(self):
        self.stop_procs()
        for ns in self.namespaces:
            if ns in list_namespaces():
                delete_ns(ns)
        try:
            os.unlink(os.path.join(STATE_DIR, f"{self.id}.pid"))
        except OSError:
            pass
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc):
        self.down()
        return False

    # ---- real servers --------------------------------------------------
    def start_realservers(self, workdir, python=sys.executable, timeout=10.0):
        """Start ci/realserver.py in every server namespace; wait until each is bound."""
        here = os.path.dirname(os.path.abspath(__file__))
        ready = {}
        for name in self.servers:
            rf = os.path.join(workdir, f"{name}.ready")
            if os.path.exists(rf):
                os.unlink(rf)
            logf = open(os.path.join(workdir, f"{name}.log"), "w")
            self.popen(self.rs_ns[name], [python, os.path.join(here, "realserver.py"),
                                          "--name", name, "--ready-file", rf],
                       stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            ready[name] = rf
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(os.path.exists(f) for f in ready.values()):
                return
            time.sleep(0.05)
        missing = [n for n, f in ready.items() if not os.path.exists(f)]
        raise RuntimeError(f"real servers not ready after {timeout}s: {missing}")

    def start_realserver(self, name, workdir, *extra, python=sys.executable, timeout=10.0):
        """Start ci/realserver.py in server namespace `name` (again, e.g. after
        kill_realserver), with extra arguments; wait until it is bound. Its
        output is appended to <workdir>/<name>.log."""
        here = os.path.dirname(os.path.abspath(__file__))
        rf = os.path.join(workdir, f"{name}.ready")
        if os.path.exists(rf):
            os.unlink(rf)
        with open(os.path.join(workdir, f"{name}.log"), "a") as logf:
            p = self.popen(self.rs_ns[name], [python, os.path.join(here, "realserver.py"),
                                              "--name", name, "--ready-file", rf, *extra],
                           stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(rf):
                return p
            if p.poll() is not None:
                raise RuntimeError(f"real server {name} exited with {p.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"real server {name} not ready after {timeout}s")

    def kill_realserver(self, name, sig=signal.SIGKILL, timeout=5.0):
        """Kill every process in server namespace `name` (its real server) with
        `sig` and wait until they are gone. Returns the pids killed."""
        ns = self.rs_ns[name]
        pids = ns_pids(ns)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)
        for p in self.procs:              # reap our children among them
            p.poll()
        return pids

    def describe(self):
        return {"id": self.id, "client": self.client, "director": self.director,
                "switch": self.switch, "servers": self.rs_ns, "dc": self.dc, "ds": self.ds,
                "client_if": self.client_if}


# ---------------------------------------------------------------- failover (issue 11)
HA_DIRECTORS = {                     # name -> (client-side address, server-side address)
    "dir1": ("198.18.0.2", "198.19.0.2"),
    "dir2": ("198.18.0.3", "198.19.0.3"),
}
HA_GATEWAY = "198.19.0.1"            # the real servers' gateway: a virtual address of the master
HA_SERVERS = {"rs1": "198.19.0.11", "rs2": "198.19.0.12", "rs3": "198.19.0.13"}
# DR variant: each real server also sits on the client segment (eth1), so its
# replies (source VIP) reach the client directly. Not .21-.23: the client holds
# .11-.50 as secondaries.
HA_DR_CLIENT_SIDE = {"rs1": "198.18.0.201", "rs2": "198.18.0.202", "rs3": "198.18.0.203"}


class HaTopology(Topology):
    """Two directors between a client segment and a server segment (issue 11).

        rvs-X-client     rvs-X-sw                               rvs-X-dir1 / rvs-X-dir2
        cli0 ------ sw-cli [brc] sw-d1c -- dc (DPDK)  ds (DPDK) -- sw-d1s [brs] sw-rsN -- eth0 rsN
        198.18.0.10/24         [brc] sw-d2c -- dc      ds      -- sw-d2s [brs]           198.19.0.1N/24
        + .11-.50                                                                         default via 198.19.0.1

    Both directors' veths have no kernel address, ip_forward 0, IPv6 off,
    offloads off (as Topology's director). Both bridges: STP off,
    forward_delay 0, multicast snooping off (VRRP's 224.0.0.18 floods).

    dr=True: the real servers hold the VIP on lo (arp_ignore=1, arp_announce=2,
    rp_filter 0) and have a second veth `eth1` on brc (HA_DR_CLIENT_SIDE) so
    their replies go straight to the client.

    kernel_director(name) turns one director namespace into a plain kernel
    host (addresses on dc/ds) for keepalived.
    """

    def __init__(self, run_id=None, dr=False, servers=None):
        super().__init__(run_id, dc="dc", ds="ds", servers=servers or HA_SERVERS)
        p = f"{PREFIX}{self.id}-"
        self.dirs = {name: p + name for name in HA_DIRECTORS}
        self.director = self.dirs["dir1"]          # Topology's single-director helpers
        self.dr = dr
        self.kernel_dirs = set()

    @property
    def namespaces(self):
        return [self.client, *self.dirs.values(), self.switch] + list(self.rs_ns.values())

    def _attach(self, ns, dev, bridge, swport):
        s = self.switch
        self.ip(ns, "link", "add", dev, "type", "veth", "peer", "name", swport, "netns", s)
        self.offloads_off(ns, dev)
        self.offloads_off(s, swport)
        self.ip(s, "link", "set", swport, "master", bridge, "up")

    def up(self):
        if shutil.which("ethtool") is None:
            raise RuntimeError("ethtool is missing (run ci/setup.sh)")
        _install_handlers()
        os.makedirs(STATE_DIR, exist_ok=True)
        with open(os.path.join(STATE_DIR, f"{self.id}.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        _live.append(self)
        t0 = time.monotonic()
        for ns in self.namespaces:
            run(["ip", "netns", "add", ns])
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            self.ip(ns, "link", "set", "lo", "up")
        c, s = self.client, self.switch
        for br in ("brc", "brs"):
            self.ip(s, "link", "add", br, "type", "bridge", "stp_state", "0",
                    "forward_delay", "0", "mcast_snooping", "0")
            self.ip(s, "link", "set", br, "up")

        # directors: two DPDK veths each, no addresses, no forwarding, no IPv6
        for name, ns in self.dirs.items():
            self.sysctl(ns, "net.ipv4.ip_forward=0")
            self._attach(ns, self.dc, "brc", f"sw-d{name[-1]}c")
            self._attach(ns, self.ds, "brs", f"sw-d{name[-1]}s")
            for dev in (self.dc, self.ds):
                self.sysctl(ns, f"net.ipv6.conf.{dev}.disable_ipv6=1")
                self.ip(ns, "link", "set", dev, "up")

        # client
        self._attach(c, self.client_if, "brc", "sw-cli")
        lines = [f"addr add {CLIENT_ADDR}/24 dev {self.client_if}"]
        lines += [f"addr add {a}/24 dev {self.client_if}" for a in CLIENT_EXTRA]
        lines += [f"link set {self.client_if} up"]
        self.batch(c, lines)

        # real servers
        for name, addr in self.servers.items():
            ns = self.rs_ns[name]
            self._attach(ns, "eth0", "brs", f"sw-{name}"[:15])
            lines = [f"addr add {addr}/24 dev eth0", "link set eth0 up",
                     f"route add default via {HA_GATEWAY}"]
            if self.dr:
                self._attach(ns, "eth1", "brc", f"sw-{name}c"[:15])
                self.sysctl(ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                            "net.ipv4.conf.lo.rp_filter=0")
                for dev in ("eth0", "eth1"):
                    self.sysctl(ns, f"net.ipv4.conf.{dev}.arp_ignore=1", f"net.ipv4.conf.{dev}.arp_announce=2",
                                f"net.ipv4.conf.{dev}.rp_filter=0")
                lines = [f"addr add {addr}/24 dev eth0", f"addr add {HA_DR_CLIENT_SIDE[name]}/24 dev eth1",
                         f"addr add {VIP}/32 dev lo", "link set eth0 up", "link set eth1 up",
                         f"route add default via {HA_GATEWAY}"]
            self.batch(ns, lines)
        self.up_done = True
        log(f"ha topology {self.id}{' (DR)' if self.dr else ''} up in {time.monotonic() - t0:.1f}s")
        return self

    def kernel_director(self, name):
        """Give director `name`'s veths kernel addresses (for keepalived in its
        place): dc = its client-side address/24, ds = its server-side address/24."""
        ns = self.dirs[name]
        ca, sa = HA_DIRECTORS[name]
        self.batch(ns, [f"addr add {ca}/24 dev {self.dc}", f"addr add {sa}/24 dev {self.ds}"])
        self.kernel_dirs.add(name)

    def start_realservers(self, workdir, python=sys.executable, timeout=15.0, http_port=None):
        """ci/realserver.py in every server namespace, HTTP on `http_port`
        (default: 80 in the DR variant, which keeps the VIP port; 8080 for NAT)."""
        port = http_port or (80 if self.dr else 8080)
        ready = {}
        for name in self.servers:
            rf = os.path.join(workdir, f"{name}.ready")
            if os.path.exists(rf):
                os.unlink(rf)
            with open(os.path.join(workdir, f"{name}.log"), "w") as logf:
                self.popen(self.rs_ns[name], [python, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                    "realserver.py"),
                                              "--name", name, "--http-port", str(port), "--ready-file", rf],
                           stdout=logf, stderr=subprocess.STDOUT)
            ready[name] = rf
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(os.path.exists(f) for f in ready.values()):
                return
            time.sleep(0.05)
        missing = [n for n, f in ready.items() if not os.path.exists(f)]
        raise RuntimeError(f"real servers not ready after {timeout}s: {missing}")

    def link_stats(self, ns, dev):
        out = self.ip(ns, "-s", "-j", "link", "show", "dev", dev).stdout
        st = json.loads(out)[0]["stats64"]
        return {"rx_packets": st["rx"]["packets"], "tx_packets": st["tx"]["packets"],
                "rx_bytes": st["rx"]["bytes"], "tx_bytes": st["tx"]["bytes"]}

    def addresses(self, ns, dev):
        """IPv4 addresses (a/len strings) on `dev` in `ns`."""
        out = self.ip(ns, "-j", "-4", "addr", "show", "dev", dev).stdout
        res = []
        for e in json.loads(out or "[]"):
            for a in e.get("addr_info", []):
                res.append(f"{a['local']}/{a['prefixlen']}")
        return res

    def describe(self):
        return {"id": self.id, "client": self.client, "directors": self.dirs, "switch": self.switch,
                "servers": self.rs_ns, "dc": self.dc, "ds": self.ds, "client_if": self.client_if,
                "dr": self.dr, "ha": True}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--up", action="store_true", help="build a topology and hold it")
    g.add_argument("--cleanup", action="store_true", help="remove leftover rvs-* namespaces")
    g.add_argument("--list", action="store_true", help="list rvs-* namespaces")
    ap.add_argument("--force", action="store_true", help="with --cleanup: also runs whose owner lives")
    ap.add_argument("--id", help="run id (6 hex digits) for --up")
    ap.add_argument("--hold", type=float, default=3600, help="with --up: seconds to hold (default 3600)")
    ap.add_argument("--servers", action="store_true", help="with --up: also start the real servers")
    ap.add_argument("--ha", action="store_true", help="with --up: the two-director HaTopology (issue 11)")
    ap.add_argument("--dr", action="store_true", help="with --up --ha: its DR variant")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("netns.py needs root")
    if a.cleanup:
        removed = cleanup_leftovers(force=a.force)
        print(f"removed {len(removed)} namespaces")
        return
    if a.list:
        for ns in list_namespaces():
            m = NS_RE.match(ns)
            if m:
                print(f"{ns}\towner {'alive' if _owner_alive(m.group(1)) else 'gone'}")
        return
    if a.id and not re.fullmatch(r"[0-9a-f]{6}", a.id):
        sys.exit("--id must be 6 hex digits")
    import tempfile
    wd = None
    try:
        with (HaTopology(a.id, dr=a.dr) if a.ha else Topology(a.id)) as t:
            if a.servers:
                wd = tempfile.mkdtemp(prefix=f"rvs-{t.id}-")
                _workdirs.append(wd)
                t.start_realservers(wd)
                log(f"real server logs in {wd} (removed at exit)")
            print(json.dumps(t.describe()), flush=True)
            try:
                time.sleep(min(a.hold, 86400))
            except KeyboardInterrupt:
                pass
    finally:
        if wd:
            shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
