"""Shared pieces of the rvs end-to-end tests: registry, config, director, client calls."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CI = os.path.dirname(HERE)
REPO = os.path.dirname(CI)
sys.path.insert(0, CI)

import netns  # noqa: E402
from realserver import expected_sha256  # noqa: E402

PY = sys.executable
NSCLIENT = os.path.join(HERE, "nsclient.py")
VIP = netns.VIP
SERVER_NAMES = list(netns.SERVERS)


def rvs_binary():
    return os.environ.get("RVS_BIN", os.path.join(REPO, "target", "release", "rvs"))


def fake_mode():
    """RVS_E2E_FAKE=1 puts ci/e2e/fakedirector.py (a kernel-socket proxy) in the
    director's place: it checks the harness itself, not rvs."""
    return os.environ.get("RVS_E2E_FAKE") == "1"


# ------------------------------------------------------------------ registry
class Skip(Exception):
    pass


class Test:
    def __init__(self, name, fn, workers, timeout):
        self.name, self.fn, self.workers, self.timeout = name, fn, workers, timeout


TESTS = []


def e2e(workers=(1, 2), timeout=240):
    """Register a test function fn(env) once per worker count: name[w1], name[w2]."""
    def deco(fn):
        for w in workers:
            TESTS.append(Test(f"{fn.__name__}[w{w}]", fn, w, timeout))
        return fn
    return deco


def say(msg):
    print(f"    {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ------------------------------------------------------------------ config
def servers_toml(port, weights):
    out = []
    for (name, addr), w in zip(netns.SERVERS.items(), weights):
        out.append(f"""
  [[service.server]]
  address = "{addr}"
  port = {port}
  weight = {w}
""")
    return "".join(out)


def make_config(workers, socket_path, file_prefix=None, tcp_sched="wrr", weights=(3, 2, 1),
                udp_sched="rr", dc="dc", ds="ds", extra="", tcp_extra=""):
    """The demo-nat.toml topology (configs/demo-nat.toml), parameterised."""
    cores = "0@0,1@1" if workers == 1 else "0@0," + ",".join(f"{i}@1" for i in range(1, workers + 1))
    eal = f'extra_args = ["--file-prefix={file_prefix}"]\n' if file_prefix else ""
    return f"""# written by ci/e2e (the demo-nat.toml topology, {workers} worker(s))
[dpdk]
cores = "{cores}"
workers = {workers}
hugepages = false
memory_mb = 256
{eal}
[[port]]
name = "client"
device = "net_af_packet0,iface={dc},qpairs=1"
address = "{netns.DIRECTOR_CLIENT_ADDR}/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface={ds},qpairs=1"
address = "{netns.DIRECTOR_SERVER_ADDR}/24"

[[service]]
vip = "{VIP}"
port = 80
protocol = "tcp"
scheduler = "{tcp_sched}"
forward = "nat"
{tcp_extra}
{servers_toml(8080, weights)}
[[service]]
vip = "{VIP}"
port = 53
protocol = "udp"
scheduler = "{udp_sched}"
forward = "nat"
{servers_toml(5353, (1, 1, 1))}
[timeouts]
max_connections = 65536

[control]
socket = "{socket_path}"
{extra}"""


# ------------------------------------------------------------------ director
def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        return f"<{e}>"
    text = "".join(lines[-n:]) or "<empty>"
    return text if text.endswith("\n") else text + "\n"


class Director:
    def __init__(self, topo, workdir, cfg_path):
        self.topo, self.workdir, self.cfg = topo, workdir, cfg_path
        self.out = os.path.join(workdir, "director.stdout")
        self.err = os.path.join(workdir, "director.stderr")
        self.proc = None
        self.stats = None
        self.exit_code = None
        self.fake = fake_mode()

    def command(self):
        if self.fake:
            return [PY, os.path.join(HERE, "fakedirector.py"), "-c", self.cfg]
        return [rvs_binary(), "run", "-c", self.cfg]

    def start(self):
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = self.topo.popen(self.topo.director, self.command(), stdout=o, stderr=e)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=30.0, port=80):
        """Retry a TCP connect from the client to VIP:port until it succeeds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                raise AssertionError(f"director exited with {self.proc.returncode} before forwarding")
            r = client(self.topo, "probe", VIP, str(port), "--total", "2", "--each", "1",
                       timeout=10, check=False)
            if r and r.get("ok"):
                return time.monotonic() - t0
        raise AssertionError(f"director not forwarding to {VIP}:{port} after {timeout:.0f}s")

    def stop(self, timeout=20.0):
        """SIGINT, wait, parse the rvs-stats line. Returns the stats dict."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                self.exit_code = "killed"
                raise AssertionError(f"director did not exit within {timeout:.0f}s of SIGINT")
        self.exit_code = self.proc.returncode
        self.stats = parse_stats(self.out)
        return self.stats

    def diagnostics(self):
        return (f"--- director command: ip netns exec {self.topo.director} {' '.join(self.command())}\n"
                f"--- director exit: {self.exit_code if self.exit_code is not None else (self.proc and self.proc.poll())}\n"
                f"--- director stdout (tail) {self.out}:\n{tail(self.out)}"
                f"--- director stderr (tail) {self.err}:\n{tail(self.err)}")


def parse_stats(path):
    stats = None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("rvs-stats "):
                    try:
                        stats = json.loads(line[len("rvs-stats "):])
                    except ValueError:
                        stats = {"unparsable": line.strip()}
    except OSError:
        pass
    return stats


def drops_total(stats):
    d = (stats or {}).get("drops") or {}
    return sum(v for v in d.values() if isinstance(v, (int, float)))


def format_stats(stats):
    if not stats:
        return "no rvs-stats line"
    keys = ["rx_packets", "tx_packets", "conns_created", "handoffs"]
    head = " ".join(f"{k}={stats.get(k)}" for k in keys)
    drops = stats.get("drops") or {}
    dstr = ", ".join(f"{k}={v}" for k, v in sorted(drops.items()) if v) or "none"
    return f"{head} drops[{dstr}] (total {drops_total(stats)})"


# ------------------------------------------------------------------ client calls
def client(topo, *args, timeout=180, check=True):
    """Run nsclient.py in the client namespace; return its JSON (None on failure if not check)."""
    cmd = ["ip", "netns", "exec", topo.client, PY, NSCLIENT, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if check:
            raise AssertionError(f"client {args[0]} did not finish within {timeout}s")
        return None
    if p.returncode not in (0, 1) or not p.stdout.strip():
        if check:
            raise AssertionError(f"client {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def client_popen(topo, *args, stdout_path):
    f = open(stdout_path, "w")
    p = topo.popen(topo.client, [PY, NSCLIENT, *args], stdout=f, stderr=subprocess.STDOUT)
    f.close()
    return p


def read_json_output(path):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
    if not lines:
        raise AssertionError(f"no JSON output in {path}: {tail(path)}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------ per-test environment
class Env:
    """A fresh topology, real servers, config and director for one test."""

    def __init__(self, test, keep=False):
        self.test = test
        self.workers = test.workers
        self.fake = fake_mode()
        self.keep = keep
        self.workdir = tempfile.mkdtemp(prefix="rvs-e2e-")
        self.topo = netns.Topology()
        self.director = None
        self.cfg = os.path.join(self.workdir, "rvs.toml")

    def setup(self, **cfg_kw):
        self.topo.up()
        if os.environ.get("RVS_E2E_PCAP") == "1" and shutil.which("tcpdump"):
            # opt-in captures (headers only, bounded) on both sides of the director
            for ns, dev, name in ((self.topo.client, self.topo.client_if, "client"),
                                  (self.topo.switch, "sw-dir", "servers")):
                pcap = os.path.join(self.workdir, f"{name}.pcap")
                self.topo.popen(ns, ["tcpdump", "-n", "-U", "--immediate-mode", "-s", "128", "-c", "500000", "-i", dev,
                                     "-w", pcap], stdout=subprocess.DEVNULL,
                                stderr=open(pcap + ".log", "w"))
            time.sleep(0.5)
        self.topo.start_realservers(self.workdir)
        with open(self.cfg, "w") as f:
            # rvs runs EAL with --in-memory, so parallel directors need no --file-prefix
            f.write(make_config(self.workers, os.path.join(self.workdir, "rvs.sock"), **cfg_kw))
        self.director = Director(self.topo, self.workdir, self.cfg).start()
        t = self.director.wait_ready()
        say(f"topology {self.topo.id}, {self.workers} worker(s), director forwarding after {t:.1f}s"
            + (" [FAKE director]" if self.director.fake else ""))
        return self

    def client(self, *args, **kw):
        return client(self.topo, *args, **kw)

    def stop_director(self):
        stats = self.director.stop()
        say(f"director exit {self.director.exit_code}; stats: {format_stats(stats)}")
        check(self.director.exit_code == 0, f"director exit code {self.director.exit_code}, want 0")
        check(stats is not None, "director printed no rvs-stats line")
        return stats

    def diagnostics(self):
        parts = []
        if self.director:
            parts.append(self.director.diagnostics())
        for name in SERVER_NAMES:
            parts.append(f"--- {name} log (tail):\n{tail(os.path.join(self.workdir, name + '.log'), 10)}")
        return "".join(parts)

    def teardown(self, failed):
        try:
            if self.director and self.director.alive():
                try:
                    self.director.stop(timeout=10)
                except AssertionError:
                    pass
        finally:
            self.topo.down()
            if failed or self.keep:
                say(f"artifacts kept in {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
