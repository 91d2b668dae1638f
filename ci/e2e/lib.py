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
                udp_sched="rr", dc="dc", ds="ds", extra="", tcp_extra="", udp_extra="",
                timeouts_extra="", addr6=None):
    """The demo-nat.toml topology (configs/demo-nat.toml), parameterised.
    addr6=(client, servers): the ports' IPv6 addresses (CIDR), SPEC's list form."""
    def port_address(v4, i):
        return f'["{v4}", "{addr6[i]}"]' if addr6 else f'"{v4}"'
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
address = {port_address(f"{netns.DIRECTOR_CLIENT_ADDR}/24", 0)}

[[port]]
name = "servers"
device = "net_af_packet1,iface={ds},qpairs=1"
address = {port_address(f"{netns.DIRECTOR_SERVER_ADDR}/24", 1)}

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
{udp_extra}
{servers_toml(5353, (1, 1, 1))}
[timeouts]
max_connections = 65536
{timeouts_extra}
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
# First source port `http-many` uses on a topology: below the kernel's
# ephemeral range (32768-60999), so explicit and kernel-picked ports never meet.
SPORT_FIRST, SPORT_LAST = 10000, 32767


def client(topo, *args, timeout=180, check=True):
    """Run nsclient.py in the client namespace; return its JSON (None on failure if not check).

    `http-many` gets `--sport-base` (unless given): each of its connections
    from a port no earlier connection of this topology used. A kernel-picked
    port can come back within a run once its connection closed, and the
    director then finds the old connection's entry, as IPVS does: a DR entry
    in FIN_WAIT is not rescheduled, a NAT one in TIME_WAIT is replaced. Tests
    that count exact scheduler sequences or listed entries need one
    connection per entry."""
    if args and args[0] == "http-many" and "--sport-base" not in args:
        n = int(args[3])
        base = getattr(topo, "_next_sport", SPORT_FIRST)
        if base + n > SPORT_LAST:
            base = SPORT_FIRST
        topo._next_sport = base + n
        args = (*args, "--sport-base", str(base))
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


# ------------------------------------------------------------------ failover (issue 11)
# Two directors (ci/netns.py HaTopology): dir1 priority 150, dir2 priority 100,
# VRRPv3 group 51 on the "servers" port, the real servers' gateway 198.19.0.1
# moving with the master. keepalived (Debian, 2.2.7) can take a director's place.
HA_VRID = 51
HA_PRIORITY = {"dir1": 150, "dir2": 100}
HA_ADVERT_MS = 100
HA_SYNC_PORT = 8848
HA_GATEWAY = netns.HA_GATEWAY


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Poll cond() until it returns something truthy; return (value, seconds).
    Raises AssertionError naming `what` after `timeout`."""
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout:.1f}s")
        time.sleep(interval)


def make_ha_key(path):
    """32 random bytes, mode 0600 (SPEC §4: >= 16 bytes, 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return path


def ha_peer(name):
    return netns.HA_DIRECTORS["dir2" if name == "dir1" else "dir1"][1]


def make_ha_config(name, socket_path, key_path, run_id, forward="nat", unicast=True, sync=True,
                   advert_ms=HA_ADVERT_MS, preempt=True, preempt_delay_ms=0, priority=None,
                   weights=(1, 1, 1), ha_extra="", extra="", service_extra="", addr6=None):
    """rvs config of director `name` (dir1 | dir2) on the HaTopology: ports
    "client"/"servers" on its dc/ds, one TCP service VIP:80 (wrr; NAT to :8080,
    or DR keeping :80), and [ha] as issue 11's tests use it. addr6: the ports'
    IPv6 addresses ("a/len" for client, servers) beside their IPv4 ones."""
    ca, sa = netns.HA_DIRECTORS[name]
    ca, sa = f'"{ca}/24"', f'"{sa}/24"'
    if addr6:
        ca, sa = f'[{ca}, "{addr6[0]}"]', f'[{sa}, "{addr6[1]}"]'
    port = 80 if forward == "dr" else 8080
    servers = "".join(f"""
  [[service.server]]
  address = "{addr}"
  port = {port}
  weight = {w}
""" for addr, w in zip(netns.HA_SERVERS.values(), weights))
    peers = f'["{ha_peer(name)}"]' if unicast else "[]"
    prio = priority if priority is not None else HA_PRIORITY[name]
    return f"""# written by ci/e2e (issue 11 failover, {name}, {forward}, {'unicast' if unicast else 'multicast'})
[dpdk]
cores = "0@0,1@1"
workers = 1
hugepages = false
memory_mb = 256
extra_args = ["--file-prefix=rvs-ha-{run_id}-{name}"]

[[port]]
name = "client"
device = "net_af_packet0,iface=dc,qpairs=1"
address = {ca}

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds,qpairs=1"
address = {sa}

[[service]]
vip = "{VIP}"
port = 80
protocol = "tcp"
scheduler = "wrr"
forward = "{forward}"
{service_extra}
{servers}
[timeouts]
max_connections = 65536

[control]
socket = "{socket_path}"

[ha]
vrid = {HA_VRID}
priority = {prio}
port = "servers"
peers = {peers}
advert_interval_ms = {advert_ms}
preempt = {'true' if preempt else 'false'}
preempt_delay_ms = {preempt_delay_ms}
virtual_addresses = ["{HA_GATEWAY}/24@servers"]
sync = {'true' if sync else 'false'}
sync_port = {HA_SYNC_PORT}
auth_key_file = "{key_path}"
{ha_extra}
{extra}"""


def rvs_ctl_json(socket_path, *args, timeout=10):
    """`rvs ctl -s SOCK ARGS --json` -> dict, or None when it fails."""
    try:
        p = subprocess.run([rvs_binary(), "ctl", "-s", socket_path, *args, "--json"],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


class HaDirector(Director):
    """rvs as director `name` of an HaTopology: start (again), kill -9,
    SIGTERM, `rvs ctl status --json`. Every start writes its own
    <name>.<n>.stdout/.stderr in the work dir."""

    def __init__(self, topo, workdir, name, cfg_path):
        super().__init__(topo, workdir, cfg_path)
        self.name = name
        self.ns = topo.dirs[name]
        self.sock = None
        self.starts = 0
        self.logs = []
        with open(cfg_path) as f:
            for line in f:
                if line.startswith("socket = "):
                    self.sock = line.split("=", 1)[1].strip().strip('"')

    def start(self):
        self.starts += 1
        self.out = os.path.join(self.workdir, f"{self.name}.{self.starts}.stdout")
        self.err = os.path.join(self.workdir, f"{self.name}.{self.starts}.stderr")
        self.logs.append((self.out, self.err))
        self.exit_code = None
        self.stats = None
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = self.topo.popen(self.ns, self.command(), stdout=o, stderr=e)
        self.t_start = time.time()
        return self

    def kill9(self):
        """SIGKILL (a crash): no priority 0, no cleanup."""
        t = time.time()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.exit_code = "SIGKILL"
        return t

    def term(self, timeout=20.0):
        """SIGTERM (clean shutdown: priority 0). Returns the time it was sent."""
        t = time.time()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                self.exit_code = "killed"
                raise AssertionError(f"{self.name} did not exit within {timeout:.0f}s of SIGTERM")
        self.exit_code = self.proc.returncode
        self.stats = parse_stats(self.out)
        return t

    def status(self):
        if not self.alive() or not self.sock:
            return None
        return rvs_ctl_json(self.sock, "status")

    def role(self):
        st = self.status()
        return st.get("role") if st else None

    def ha(self):
        st = self.status() or {}
        return st.get("ha") or {}

    def wait_role(self, role, timeout, what=None):
        def cond():
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) while waiting for role {role}")
            st = self.status()
            return st if st and st.get("role") == role else None
        st, dt = wait_for(cond, timeout, what=what or f"{self.name} role {role}")
        return st, dt

    def log_text(self):
        text = ""
        for _, err in self.logs:
            try:
                with open(err, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def diagnostics(self):
        parts = [f"--- {self.name} command: ip netns exec {self.ns} {' '.join(self.command())}\n"
                 f"--- {self.name} exit: {self.exit_code if self.exit_code is not None else (self.proc and self.proc.poll())}\n"]
        for out, err in self.logs:
            parts.append(f"--- {self.name} stdout (tail) {out}:\n{tail(out, 15)}"
                         f"--- {self.name} stderr (tail) {err}:\n{tail(err, 60)}")
        return "".join(parts)


def keepalived_config(name, iface, priority, vips, unicast_src=None, unicast_peers=(), advert_int=0.1,
                      vrid=HA_VRID, garp_master_delay=0):
    """keepalived.conf for one VRRPv3 instance. `vips`: [(address/len, dev)]
    in advert order (rvs's: IPv4 VIPs, then virtual_addresses)."""
    uni = ""
    if unicast_src:
        uni = f"    unicast_src_ip {unicast_src}\n    unicast_peer {{\n" + "".join(
            f"        {p}\n" for p in unicast_peers) + "    }\n"
    vipl = "".join(f"        {a} dev {d}\n" for a, d in vips)
    return f"""# written by ci/e2e (issue 11): keepalived as director {name}
global_defs {{
    router_id rvs_{name}
    vrrp_version 3
    vrrp_garp_master_delay {garp_master_delay}
}}

vrrp_instance VI_{vrid} {{
    state BACKUP
    interface {iface}
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert_int}
    garp_master_delay {garp_master_delay}
{uni}    virtual_ipaddress {{
{vipl}    }}
}}
"""


class Keepalived:
    """Debian keepalived (VRRP only, no fork) in director namespace `name`
    of an HaTopology whose veths got kernel addresses (topo.kernel_director)."""

    def __init__(self, topo, workdir, name, unicast=True, priority=None, advert_int=0.1):
        self.topo, self.workdir, self.name = topo, workdir, name
        self.ns = topo.dirs[name]
        self.conf = os.path.join(workdir, f"keepalived-{name}.conf")
        self.log = os.path.join(workdir, f"keepalived-{name}.log")
        self.proc = None
        src = netns.HA_DIRECTORS[name][1]
        with open(self.conf, "w") as f:
            f.write(keepalived_config(
                name, topo.ds, priority if priority is not None else HA_PRIORITY[name],
                [(f"{VIP}/24", topo.dc), (f"{HA_GATEWAY}/24", topo.ds)],
                unicast_src=src if unicast else None, unicast_peers=[ha_peer(name)] if unicast else (),
                advert_int=advert_int))

    def command(self):
        base = os.path.join(self.workdir, f"keepalived-{self.name}")
        return ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
                "--use-file", self.conf, "--pid", base + ".pid", "--vrrp_pid", base + ".vrrp.pid",
                "--checkers_pid", base + ".checkers.pid"]

    def start(self):
        with open(self.log, "a") as f:
            self.proc = self.topo.popen(self.ns, self.command(), stdout=f, stderr=subprocess.STDOUT)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        """keepalived processes in the namespace (the parent and its VRRP child)."""
        res = []
        for pid in netns.ns_pids(self.ns):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "keepalived":
                        res.append(pid)
            except OSError:
                pass
        return res

    def kill9(self, links_down=False):
        """SIGKILL every keepalived process at once (its VRRP child would
        otherwise get SIGTERM from the parent's death and leave cleanly).
        links_down: then take dc/ds down as well, the machine is gone (a
        killed keepalived leaves its addresses in the kernel, which would go
        on answering)."""
        t = time.time()
        for pid in sorted(self.pids(), reverse=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if links_down:
            self.topo.batch(self.ns, [f"link set {self.topo.dc} down", f"link set {self.topo.ds} down"])
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return t

    def stop(self, timeout=10.0):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def owns_vips(self):
        """Which of the VIP / gateway the kernel holds now."""
        have = self.topo.addresses(self.ns, self.topo.dc) + self.topo.addresses(self.ns, self.topo.ds)
        return [a for a in (f"{VIP}/24", f"{HA_GATEWAY}/24") if a in have]

    def state(self):
        """The last 'Entering X STATE' in its log (MASTER, BACKUP, FAULT) or None."""
        last = None
        try:
            with open(self.log, errors="replace") as f:
                for line in f:
                    if "Entering " in line and " STATE" in line:
                        last = line.split("Entering ", 1)[1].split()[0]
        except OSError:
            pass
        return last

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def diagnostics(self):
        return (f"--- keepalived {self.name}: {' '.join(self.command())}\n"
                f"--- its addresses: dc {self.topo.addresses(self.ns, self.topo.dc) if self.topo.up_done else '?'}"
                f" ds {self.topo.addresses(self.ns, self.topo.ds) if self.topo.up_done else '?'}\n"
                f"--- keepalived {self.name} log (tail):\n{tail(self.log, 40)}")


class HaGroup:
    """What an HA test runs (rvs directors, keepalived instances), shaped like
    a Director for Env (alive/stop/diagnostics), so that Env's teardown and
    failure report cover all of them."""

    def __init__(self):
        self.members = []
        self.fake = False

    def add(self, m):
        self.members.append(m)
        return m

    def alive(self):
        return any(m.alive() for m in self.members)

    def stop(self, timeout=10.0):
        for m in self.members:
            try:
                if isinstance(m, HaDirector):
                    if m.alive():
                        m.term(timeout=timeout)
                else:
                    m.stop(timeout=timeout)
            except (AssertionError, OSError, subprocess.SubprocessError):
                pass

    def diagnostics(self):
        parts = []
        for m in self.members:
            try:
                parts.append(m.diagnostics())
            except Exception as e:    # a report must never fail
                parts.append(f"--- diagnostics of {getattr(m, 'name', m)} failed: {e}\n")
        return "".join(parts)


def ns_client(topo, ns, *args, timeout=120, check=True):
    """nsclient.py in namespace `ns` (a real server's, a director's): its JSON."""
    cmd = ["ip", "netns", "exec", ns, PY, NSCLIENT, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if check:
            raise AssertionError(f"nsclient {args[0]} in {ns} did not finish within {timeout}s")
        return None
    if p.returncode not in (0, 1) or not p.stdout.strip():
        if check:
            raise AssertionError(f"nsclient {' '.join(args)} in {ns} failed ({p.returncode}): {p.stderr[-2000:]}")
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def ns_client_popen(topo, ns, *args, stdout_path):
    with open(stdout_path, "w") as f:
        return topo.popen(ns, [PY, NSCLIENT, *args], stdout=f, stderr=subprocess.STDOUT)


def rvs_supports_ha():
    """(True, "") when the rvs binary accepts an [ha] config (`rvs check`),
    else (False, why)."""
    b = rvs_binary()
    if not os.access(b, os.X_OK):
        return False, f"{b} missing"
    d = tempfile.mkdtemp(prefix="rvs-hacheck-")
    try:
        key = make_ha_key(os.path.join(d, "ha.key"))
        cfg = os.path.join(d, "rvs.toml")
        with open(cfg, "w") as f:
            f.write(make_ha_config("dir1", os.path.join(d, "rvs.sock"), key, "000000"))
        p = subprocess.run([b, "check", "-c", cfg], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            return False, f"`rvs check` refuses [ha]: {(p.stdout + p.stderr).strip()[:300]}"
        return True, ""
    finally:
        shutil.rmtree(d, ignore_errors=True)


def ha_start_pair(topo, workdir, group, forward="nat", unicast=True, sync=True, start=("dir1", "dir2"),
                  wait=True, cfg_kw=None, timeout=30.0):
    """Write a shared key and both directors' configs, start the directors in
    `start` (both by default, dir1 first), add them to `group` and, with
    `wait`, wait until dir1 is master, dir2 backup and the VIP forwards.
    Returns name -> HaDirector (the ones not started can be .start()ed later)."""
    key = make_ha_key(os.path.join(workdir, "ha.key"))
    dirs = {}
    for name in ("dir1", "dir2"):
        cfg = os.path.join(workdir, f"{name}.toml")
        with open(cfg, "w") as f:
            f.write(make_ha_config(name, os.path.join(workdir, f"{name}.sock"), key, topo.id, forward=forward,
                                   unicast=unicast, sync=sync, **(cfg_kw or {}).get(name, {})))
        dirs[name] = group.add(HaDirector(topo, workdir, name, cfg))
    for name in start:
        dirs[name].start()
    if wait:
        if "dir1" in start:
            dirs["dir1"].wait_role("master", timeout)
        if "dir2" in start:
            dirs["dir2"].wait_role("backup", timeout)
        wait_for(lambda: (client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                 timeout, what=f"{VIP}:80 forwarding")
    return dirs


def role_changes(text):
    """[(unix time, from, to, reason)] from rvs's stderr lines
    `<RFC 3339 UTC time> ... ha: role A -> B (reason) ...`."""
    import datetime
    import re
    res = []
    for line in text.splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s.*?role (\w+) -> (\w+) \(([^)]*)\)", line)
        if m:
            ts = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
            res.append((ts, m.group(2), m.group(3), m.group(4)))
    return res
