"""Scale-out through BIRD 2 (`[bgp]`, issue 15 part 1), on ci/netns.py's
HaTopology in its DR variant, with no [ha]: two standalone rvs directors
(DR, mh) on the client segment, BIRD 2 beside each in its namespace, and
BIRD 2 in the client namespace as the router (eBGP to both directors,
`merge paths on` into its kernel FIB, fib_multipath_hash_policy = 1). The
directors' BGP sessions run through rvs's exception path TAP.

    bgp_ecmp   (1) both directors' next hops in the router's multipath route;
                   300 connections from distinct source ports all served, both
                   directors carry a share and their counters sum to 300
               (4) dir1's health checks all fail: dir1 withdraws (status
                   no-server, metrics 0), one next hop left, service intact
               (5) the checks pass again: announced again, two next hops
                   operator: `rvs ctl bgp withdraw` on dir2 -> one next hop;
                   `announce` -> two
                   SIGTERM of dir1: the route loses it while dir1 still runs
                   (withdrawn before the drain and exit)
    bgp_director_leaves
               (2) 10 concurrent rate-limited 8 MB downloads across both
                   directors; SIGTERM of dir1 mid-download: it withdraws,
                   the router moves its flows to dir2, every download
                   completes byte-exact and dir2's `rescued` equals the
                   number dir1 carried (less any already ended)
               (3) dir1 restarted (two next hops again); 10 more downloads;
                   kill -9 of dir2: once the router's hold timer (3 s) drops
                   its route, every download completes byte-exact and
                   dir1's `rescued` equals the number dir2 carried (less
                   any already ended)
"""

import json
import os
import signal
import subprocess
import time

import lib
import netns
from lib import VIP, check, say

AS_ROUTER = 65000
AS_DIRS = 65001
GRACE_MS = 2000


def router_conf(topo):
    dirs = "".join(f"protocol bgp {name} from dirs {{ neighbor {ca} as {AS_DIRS}; }}\n"
                   for name, (ca, _) in netns.HA_DIRECTORS.items())
    return f"""router id {netns.CLIENT_ADDR};
protocol device {{ scan time 1; }}
protocol kernel {{
  merge paths on;
  ipv4 {{ import none; export all; }};
}}
template bgp dirs {{
  local {netns.CLIENT_ADDR} as {AS_ROUTER};
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 {{ import all; export none; }};
}}
{dirs}"""


def director_bird_conf(name, routes):
    ca, _ = netns.HA_DIRECTORS[name]
    return f"""router id {ca};
protocol device {{ scan time 1; }}
include "{routes}";
protocol bgp upstream {{
  local {ca} as {AS_DIRS};
  neighbor {netns.CLIENT_ADDR} as {AS_ROUTER};
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 {{ import none; export where proto = "rvs_vips"; next hop self; }};
}}
"""


def rvs_conf(name, workdir, run_id):
    ca, sa = netns.HA_DIRECTORS[name]
    servers = "".join(f"""
  [[service.server]]
  address = "{addr}"
  port = 80
""" for addr in netns.HA_SERVERS.values())
    return f"""# written by ci/e2e/test_bgp.py ({name})
[dpdk]
cores = "0@0,1@1"
workers = 1
memory_mb = 256
extra_args = ["--file-prefix=rvs-bgp-{run_id}-{name}"]

[[port]]
name = "client"
device = "net_af_packet0,iface=dc,qpairs=1"
address = "{ca}/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds,qpairs=1"
address = "{sa}/24"

[[service]]
vip = "{VIP}"
port = 80
protocol = "tcp"
scheduler = "mh"
forward = "dr"
  [service.health_check]
  kind = "exec"
  script = "{workdir}/{name}-check.sh"
  interval_ms = 200
  timeout_ms = 3000
  fall = 1
  rise = 1
{servers}
[control]
socket = "{workdir}/{name}.sock"
metrics = "127.0.0.1:9100"
drain_timeout_ms = 1000

[bgp]
bird_socket = "{workdir}/{name}-bird.ctl"
routes_file = "{workdir}/{name}-vips.conf"
withdraw_on = ["shutdown", "no-server", "backup"]
shutdown_grace_ms = {GRACE_MS}
"""


def nexthops(topo):
    """The router's FIB entry for the VIP: the set of next-hop addresses."""
    out = topo.ip(topo.client, "-j", "-4", "route", "show", f"{VIP}/32", check=False).stdout
    hops = set()
    for r in json.loads(out or "[]"):
        if r.get("gateway"):
            hops.add(r["gateway"])
        for nh in r.get("nexthops", []):
            hops.add(nh["gateway"])
    return hops


def wait_hops(topo, want, timeout, what):
    want = {netns.HA_DIRECTORS[n][0] for n in want}
    _, dt = lib.wait_for(lambda: nexthops(topo) == want, timeout, interval=0.05, what=what)
    return dt


def start_bird(topo, ns, workdir, name, conf_text):
    conf = os.path.join(workdir, f"{name}-bird.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    ctl = os.path.join(workdir, f"{name}-bird.ctl")
    log = open(os.path.join(workdir, f"{name}-bird.log"), "w")
    # -f: foreground, so the topology's process list owns it and stops it.
    return topo.popen(ns, ["bird", "-f", "-c", conf, "-s", ctl, "-P", os.path.join(workdir, f"{name}-bird.pid")],
                      stdout=log, stderr=subprocess.STDOUT)


def server_conns(sock):
    v = lib.rvs_ctl_json(sock, "list", "--stats")
    check(v is not None, f"list --stats on {sock} failed")
    return sum(s["conns"] for svc in v["services"] for s in svc["servers"])


def bgp_vip(d):
    st = d.status() or {}
    for v in (st.get("bgp") or {}).get("vips", []):
        if v["vip"] == VIP:
            return v
    return None


def metric(topo, ns):
    code = ("import urllib.request;"
            "print(urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=3).read().decode())")
    text = topo.nsexec(ns, [lib.PY, "-c", code]).stdout
    for line in text.splitlines():
        if line.startswith(f'rvs_bgp_announced{{vip="{VIP}"}} '):
            return int(line.split()[-1])
    return None


def many(env, n):
    r = env.client("http-many", VIP, "80", str(n), "--timeout", "3", "--deadline", "40", timeout=60)
    check(not r["errors"], f"{len(r['errors'])} of {n} requests failed: {r['errors'][:3]}")
    check(sum(r["counts"].values()) == n, f"answers {r['counts']}, want {n}")
    return r


def start_bgp(env):
    """The topology, both directors and the three BIRDs; returns
    (topo, {name: HaDirector}) once the router has both next hops."""
    if env.fake:
        raise lib.Skip("needs the real director (RVS_E2E_FAKE=1)")
    if subprocess.run(["which", "bird"], capture_output=True).returncode != 0:
        raise AssertionError("bird (Debian bird2) is missing: run ci/setup.sh")
    topo = netns.HaTopology(dr=True)
    env.topo = topo
    env.director = group = lib.HaGroup()
    topo.up()
    topo.sysctl(topo.client, "net.ipv4.fib_multipath_hash_policy=1")
    topo.start_realservers(env.workdir)
    wd = env.workdir
    dirs = {}
    for name in ("dir1", "dir2"):
        check_sh = os.path.join(wd, f"{name}-check.sh")
        with open(check_sh, "w") as f:
            f.write(f"#!/bin/sh\n[ ! -e {wd}/{name}.down ]\n")
        os.chmod(check_sh, 0o755)
        cfg = os.path.join(wd, f"{name}.toml")
        with open(cfg, "w") as f:
            f.write(rvs_conf(name, wd, topo.id))
        r = subprocess.run([lib.rvs_binary(), "check", "-c", cfg], capture_output=True, text=True)
        check(r.returncode == 0, f"rvs check {name}: {r.stdout}{r.stderr}")
        dirs[name] = group.add(lib.HaDirector(topo, wd, name, cfg).start())
    t0 = time.monotonic()
    # rvs writes the routes file at start, before BIRD needs it; BIRD starts
    # once the TAP holds the director's address (the first reconfigure
    # attempts find no BIRD: retried, not fatal).
    for name, d in dirs.items():
        lib.wait_for(lambda: d.status() is not None, 30, what=f"{name} answering rvs ctl")
        routes = open(os.path.join(wd, f"{name}-vips.conf")).read()
        say(f"{name} routes file at start:\n{routes.rstrip()}")
        check(f"route {VIP}/32 blackhole;" in routes or "protocol static rvs_vips" in routes,
              f"{name}: routes file {routes!r}")
        start_bird(topo, d.ns, wd, name, director_bird_conf(name, os.path.join(wd, f"{name}-vips.conf")))
    start_bird(topo, topo.client, wd, "router", router_conf(topo))
    dt = wait_hops(topo, ("dir1", "dir2"), 30, "both directors in the router's FIB")
    say(f"multipath route with both directors {time.monotonic() - t0:.1f}s after start "
        f"({dt:.1f}s after BIRD): {topo.ip(topo.client, 'route', 'show', f'{VIP}/32').stdout.strip()}")
    return topo, dirs


@lib.e2e(workers=(1,), timeout=150)
def bgp_ecmp(env):
    topo, dirs = start_bgp(env)
    wd = env.workdir

    # (1) both next hops, connections through both
    for name, d in dirs.items():
        v = bgp_vip(d)
        check(v and v["state"] == "announced" and v["reason"] == "live", f"{name} bgp: {v}")
        check((d.status()["bgp"]["bird"]) == "ok", f"{name}: {d.status()['bgp']}")
        check(metric(topo, d.ns) == 1, f"{name}: rvs_bgp_announced not 1")
    before = {n: server_conns(d.sock) for n, d in dirs.items()}
    r = many(env, 300)
    share = {n: server_conns(d.sock) - before[n] for n, d in dirs.items()}
    say(f"300 connections: servers {r['counts']}, directors {share}")
    check(sum(share.values()) == 300, f"directors' counters {share} do not sum to 300")
    check(all(v >= 30 for v in share.values()), f"a director carries almost nothing: {share}")
    # mh agreement: one client address -> the same real server, whichever
    # director the router picked for the flow.
    check(len(r["counts"]) == 1, f"the directors disagree on the real server: {r['counts']}")

    # (4) every server down on dir1's checks: withdrawn, one next hop
    d1, d2 = dirs["dir1"], dirs["dir2"]
    open(os.path.join(wd, "dir1.down"), "w").close()
    t = time.monotonic()
    wait_hops(topo, ("dir2",), 15, "dir1 withdrawn after its checks failed")
    say(f"dir1 checks down: route via dir2 only after {time.monotonic() - t:.1f}s")
    v = bgp_vip(d1)
    check(v["state"] == "withdrawn" and v["reason"] == "no-server", f"dir1 bgp: {v}")
    check(metric(topo, d1.ns) == 0, "dir1: rvs_bgp_announced not 0")
    c1 = server_conns(d1.sock)
    many(env, 50)
    check(server_conns(d1.sock) == c1, "dir1 still got connections after withdrawing")

    # (5) back: announced again
    os.unlink(os.path.join(wd, "dir1.down"))
    t = time.monotonic()
    wait_hops(topo, ("dir1", "dir2"), 15, "dir1 announced again")
    say(f"dir1 checks up: two next hops again after {time.monotonic() - t:.1f}s")
    check(bgp_vip(d1)["state"] == "announced", f"dir1 bgp: {bgp_vip(d1)}")
    before = {n: server_conns(d.sock) for n, d in dirs.items()}
    many(env, 100)
    share = {n: server_conns(d.sock) - before[n] for n, d in dirs.items()}
    check(all(v > 0 for v in share.values()), f"new flows not spread again: {share}")

    # operator maintenance on dir2
    svc = f"tcp:{VIP}:80"
    out = subprocess.run([lib.rvs_binary(), "ctl", "-s", d2.sock, "bgp", "withdraw", "--service", svc],
                         capture_output=True, text=True)
    check(out.returncode == 0, f"bgp withdraw: {out.stdout}{out.stderr}")
    wait_hops(topo, ("dir1",), 15, "dir2 withdrawn by the operator")
    check(bgp_vip(d2)["reason"] == "operator", f"dir2 bgp: {bgp_vip(d2)}")
    out = subprocess.run([lib.rvs_binary(), "ctl", "-s", d2.sock, "bgp", "announce", "--service", svc],
                         capture_output=True, text=True)
    check(out.returncode == 0, f"bgp announce: {out.stdout}{out.stderr}")
    wait_hops(topo, ("dir1", "dir2"), 15, "dir2 announced again")
    bad = subprocess.run([lib.rvs_binary(), "ctl", "-s", d2.sock, "bgp", "withdraw", "--service",
                          f"tcp:{VIP}:81"], capture_output=True, text=True)
    check(bad.returncode == 1 and "no service" in bad.stderr, f"unknown service: {bad.returncode} {bad.stderr}")

    # SIGTERM: withdrawn while dir1 still runs, then it exits
    t_term = time.monotonic()
    d1.proc.send_signal(signal.SIGTERM)
    lib.wait_for(lambda: nexthops(topo) == {netns.HA_DIRECTORS["dir2"][0]} or not d1.alive(), 10,
                 what="dir1 gone from the route or exited")
    t_gone = time.monotonic()
    check(d1.alive(), "dir1 exited before the router lost its route (no withdrawal before exit)")
    d1.proc.wait(timeout=GRACE_MS / 1000 + 10)
    t_exit = time.monotonic()
    say(f"SIGTERM dir1: route via dir2 only after {t_gone - t_term:.2f}s, exit after {t_exit - t_term:.2f}s")
    check(t_exit - t_term >= GRACE_MS / 1000, "dir1 exited before the grace time")
    check(d1.proc.returncode == 0, f"dir1 exit code {d1.proc.returncode}")
    many(env, 30)
    log = d1.log_text()
    check("bgp: every VIP withdrawn" in log, "dir1's log has no withdrawal")
    check("draining:" in log and log.index("bgp: every VIP withdrawn") < log.index("draining:"),
          "dir1 did not withdraw before the drain")


BLOB = 8 * 1024 * 1024
RATE = "1M"
DOWNLOADS = 10


def worker_sum(d, key):
    st = d.status() or {}
    return sum(w.get(key, 0) for w in st.get("workers") or [])


class Downloads:
    """DOWNLOADS concurrent rate-limited curl downloads of BLOB bytes (each
    its own connection, so its own source port and ECMP hash)."""

    def __init__(self, env, tag):
        self.files = [os.path.join(env.workdir, f"{tag}-{i}.blob") for i in range(DOWNLOADS)]
        self.outs = [os.path.join(env.workdir, f"{tag}-{i}.json") for i in range(DOWNLOADS)]
        self.procs = [lib.client_popen(env.topo, "download", f"http://{VIP}/blob?size={BLOB}", "--out", f,
                                       "--max-time", "40", "--limit-rate", RATE, stdout_path=o)
                      for f, o in zip(self.files, self.outs)]

    def sizes(self):
        return [os.path.getsize(f) if os.path.exists(f) else 0 for f in self.files]

    def wait_started(self, least):
        """Every download has `least` bytes and none has ended: all flows are
        established and mid-transfer."""
        lib.wait_for(lambda: min(self.sizes()) >= least or any(p.poll() is not None for p in self.procs),
                     20, what=f"every download reaching {least} bytes")
        check(all(p.poll() is None for p in self.procs), f"a download ended early: {self.sizes()}")

    def done(self):
        return sum(1 for n in self.sizes() if n >= BLOB)

    def check_all(self, what):
        """Every download completes byte-exact."""
        for p in self.procs:
            try:
                p.wait(timeout=50)
            except subprocess.TimeoutExpired:
                p.kill()
                raise AssertionError(f"{what}: a download did not finish: {self.sizes()}")
        want = lib.expected_sha256(BLOB)
        secs = []
        for o, f in zip(self.outs, self.files):
            r = lib.read_json_output(o)
            check(r["ok"], f"{what}: download failed: {r['error']} after {r['bytes']} bytes")
            check(r["bytes"] == BLOB and r["sha256"] == want, f"{what}: {r['bytes']} bytes, sha256 differs")
            secs.append(r["seconds"])
            os.unlink(f)
        return secs


def spread_downloads(env, tag, d1, d2, need):
    """Starts DOWNLOADS downloads and returns (dl, n1, n2) once each is
    mid-transfer, n1/n2 the downloads dir1/dir2 carry. The router's ECMP hash
    places each flow; when it put none on director `need` (1 or 2, the one
    about to leave), that batch finishes and another is drawn, up to 3
    times: 10 flows over two next hops all land on one about once in 500
    batches (seen once in CI), and then the test has nothing to move."""
    for attempt in range(3):
        c1, c2 = server_conns(d1.sock), server_conns(d2.sock)
        dl = Downloads(env, f"{tag}{attempt}")
        dl.wait_started(128 * 1024)
        n1, n2 = server_conns(d1.sock) - c1, server_conns(d2.sock) - c2
        say(f"{DOWNLOADS} downloads: dir1 carries {n1}, dir2 {n2}")
        check(n1 + n2 == DOWNLOADS, f"directors' counters {n1}+{n2}, want {DOWNLOADS}")
        if (n1, n2)[need - 1] > 0:
            return dl, n1, n2
        say(f"none through dir{need}: this batch finishes, another is drawn")
        dl.check_all("a batch with nothing to move")
    check(False, f"the router sent no download through dir{need} in 3 batches (nothing to move)")


@lib.e2e(workers=(1,), timeout=150)
def bgp_director_leaves(env):
    topo, dirs = start_bgp(env)
    d1, d2 = dirs["dir1"], dirs["dir2"]

    # (2) SIGTERM of dir1 mid-download: withdrawn, the router moves dir1's
    # flows to dir2, which rescues them (mh agrees on the real server).
    dl, n1, n2 = spread_downloads(env, "term", d1, d2, 1)
    at, done = dl.sizes(), dl.done()
    t_term = time.monotonic()
    d1.proc.send_signal(signal.SIGTERM)
    wait_hops(topo, ("dir2",), 10, "dir1 withdrawn after SIGTERM")
    say(f"SIGTERM dir1 at {at} bytes ({done} ended): "
        f"route via dir2 only after {time.monotonic() - t_term:.2f}s")
    secs = dl.check_all("SIGTERM of dir1")
    d1.proc.wait(timeout=GRACE_MS / 1000 + 10)
    check(d1.proc.returncode == 0, f"dir1 exit code {d1.proc.returncode}")
    rescued = worker_sum(d2, "rescued")
    say(f"all {DOWNLOADS} downloads byte-exact (longest {max(secs):.1f}s); dir2 rescued {rescued}")
    # A download that had already ended (slow starts under load) moves nothing.
    check(0 < rescued <= n1 and rescued >= n1 - done,
          f"dir2 rescued {rescued} flows, want dir1's {n1} ({done} downloads had ended)")

    # (3) dir1 back, then kill -9 of dir2 mid-download: its route stays until
    # the router's hold timer (3 s) expires, then dir1 rescues dir2's flows
    # from the client's retransmissions.
    d1.start()
    lib.wait_for(lambda: d1.status() is not None, 30, what="dir1 answering rvs ctl after restart")
    t = time.monotonic()
    wait_hops(topo, ("dir1", "dir2"), 30, "dir1 announced again after restart")
    say(f"dir1 restarted: two next hops again after {time.monotonic() - t:.1f}s")
    # Forwarding through both before the downloads start (a SYN lost to a
    # director still coming up would delay its download by seconds).
    before = {n: server_conns(d.sock) for n, d in dirs.items()}
    many(env, 20)
    check(all(server_conns(d.sock) > before[n] for n, d in dirs.items()),
          "a director serves nothing after the restart")
    r1 = worker_sum(d1, "rescued")
    dl, n1, n2 = spread_downloads(env, "kill", d1, d2, 2)
    at, done = dl.sizes(), dl.done()
    t_kill = time.monotonic()
    d2.kill9()
    wait_hops(topo, ("dir1",), 15, "dir2's route gone after its hold timer")
    say(f"kill -9 dir2 at {at} bytes ({done} ended): "
        f"route via dir1 only after {time.monotonic() - t_kill:.2f}s")
    secs = dl.check_all("kill -9 of dir2")
    rescued = worker_sum(d1, "rescued") - r1
    say(f"all {DOWNLOADS} downloads byte-exact (longest {max(secs):.1f}s); dir1 rescued {rescued}")
    check(0 < rescued <= n2 and rescued >= n2 - done,
          f"dir1 rescued {rescued} flows, want dir2's {n2} ({done} downloads had ended)")
