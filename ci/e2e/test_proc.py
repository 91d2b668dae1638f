"""The director as a process on a real host (issue 12, items 8-10): drain on
SIGTERM, the exception path's own routing table and the restore of what it
changed, and the MTU rule (refused where the device cannot take it). One worker each:
none of this depends on the worker count.
"""

import os
import signal
import subprocess
import time

import netns
from lib import (VIP, Director, check, client, client_popen, e2e, expected_sha256, make_config,
                 read_json_output, rvs_binary, say, wait_for)

DL_SIZE = 12 * 1000 * 1000
MGMT_GW = "198.18.200.254"
PORT_GW = "198.19.0.254"
SYSCTL_KEYS = ("rp_filter", "arp_ignore", "arp_announce")
# Values a host might have: none of them is what rvs sets (1, 8, 2).
HOST_SYSCTLS = {"rp_filter": "2", "arp_ignore": "2", "arp_announce": "1"}


def start(env, text, ready=True):
    with open(env.cfg, "w") as f:
        f.write(text)
    env.director = Director(env.topo, env.workdir, env.cfg).start()
    if ready:
        t = env.director.wait_ready()
        say(f"topology {env.topo.id}: director forwarding after {t:.1f}s")


@e2e(workers=(1,), timeout=90)
def drain_on_sigterm(env):
    """SIGTERM during a download: new connections are refused (counted `draining`),
    the download completes byte-exact, then rvs exits 0 before the grace time."""
    env.setup(extra="drain_timeout_ms = 15000\n")
    sha = expected_sha256(DL_SIZE)
    out = os.path.join(env.workdir, "blob")
    dl_json = os.path.join(env.workdir, "download.json")
    dl = client_popen(env.topo, "download", f"http://{VIP}/blob?size={DL_SIZE}", "--out", out,
                      "--max-time", "40", "--limit-rate", "2M", "--python", stdout_path=dl_json)
    _, waited = wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 1 << 20, 15,
                         what="download under way")
    say(f"SIGTERM {waited:.1f}s into the download, {os.path.getsize(out)} bytes in")
    t_term = time.monotonic()
    env.director.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    check(env.director.alive(), "director exited at once on SIGTERM (no drain)")
    r = client(env.topo, "probe", VIP, "80", "--total", "1.0", "--each", "0.4", check=False)
    say(f"new connection during the drain: {r}")
    check(r is not None and not r["ok"], f"a new connection was accepted while draining: {r}")
    check(dl.poll() is None, f"the download ended during the probe: {open(dl_json).read()[-300:]}")
    dl.wait(timeout=45)
    r = read_json_output(dl_json)
    say(f"download: {r['bytes']} bytes in {r['seconds']:.2f}s ({r['tool']}, limited to 2M/s)")
    check(r["ok"] and r["bytes"] == DL_SIZE and r["sha256"] == sha,
          f"download broken by the drain: {r}")
    try:
        env.director.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("director still running 10s after the last connection ended")
    took = time.monotonic() - t_term
    stats = env.stop_director()
    say(f"exit {env.director.exit_code} {took:.1f}s after SIGTERM; drops {stats.get('drops', {}).get('draining')} draining")
    check(took < 14, f"exit {took:.1f}s after SIGTERM: the drain waited for its grace time")
    check((stats.get("drops") or {}).get("draining", 0) >= 1,
          f"no `draining` drop counted: {stats.get('drops')}")


def sysctls(topo, dev):
    return {k: topo.nsexec(topo.director, ["cat", f"/proc/sys/net/ipv4/conf/{dev}/{k}"]).stdout.strip()
            for k in SYSCTL_KEYS}


def routes(topo, *args):
    return topo.ip(topo.director, "route", "show", *args).stdout.strip()


def rules(topo):
    return topo.ip(topo.director, "rule", "show").stdout.strip()


@e2e(workers=(1,), timeout=90)
def host_network_untouched(env):
    """A port gateway goes to the exception path's own table; the host's default
    route stays; rules, table and sysctls are gone/restored after exit."""
    topo = env.topo
    topo.up()
    d = topo.director
    # The host's management network: its own default route.
    topo.ip(d, "link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt1")
    topo.batch(d, ["addr add 198.18.200.1/24 dev mgmt0", "link set mgmt0 up", "link set mgmt1 up",
                   f"route add default via {MGMT_GW} dev mgmt0"])
    for dev in (topo.dc, topo.ds):
        topo.sysctl(d, *(f"net.ipv4.conf.{dev}.{k}={v}" for k, v in HOST_SYSCTLS.items()))
    before = (routes(topo), rules(topo))
    say(f"host default route: {routes(topo, 'default')}")
    topo.start_realservers(env.workdir)
    text = make_config(1, os.path.join(env.workdir, "rvs.sock"))
    port = f'address = "{netns.DIRECTOR_SERVER_ADDR}/24"\n'
    text = text.replace(port, port + f'gateway = "{PORT_GW}"\n')
    start(env, text)

    during = routes(topo, "default")
    say(f"while running: default {during!r}; table 201 {routes(topo, 'table', '201')!r}")
    check(during == f"default via {MGMT_GW} dev mgmt0", f"the host's default route changed: {during!r}")
    t201 = routes(topo, "table", "201")
    check(f"default via {PORT_GW} dev rvs-servers" in t201, f"no gateway route in table 201: {t201!r}")
    rl = rules(topo)
    check(f"from {netns.DIRECTOR_SERVER_ADDR} lookup 201" in rl, f"no source rule: {rl}")
    # A socket bound to the port's address reaches an off-link host through
    # the port's gateway; an unbound one keeps the host's route.
    via = topo.ip(d, "route", "get", "203.0.113.9", "from", netns.DIRECTOR_SERVER_ADDR).stdout
    check(f"via {PORT_GW} dev rvs-servers" in via, f"bound socket routing: {via!r}")
    via = topo.ip(d, "route", "get", "203.0.113.9").stdout
    check(f"via {MGMT_GW} dev mgmt0" in via, f"unbound socket routing: {via!r}")
    for dev in (topo.dc, topo.ds):
        got = sysctls(topo, dev)
        check(got == {"rp_filter": "1", "arp_ignore": "8", "arp_announce": "2"}, f"{dev} while running: {got}")

    env.stop_director()
    after = (routes(topo), rules(topo))
    check(after == before, f"routes/rules not restored:\nbefore {before}\nafter  {after}")
    check(routes(topo, "table", "201") == "", "table 201 not emptied")
    for dev in (topo.dc, topo.ds):
        got = sysctls(topo, dev)
        check(got == HOST_SYSCTLS, f"{dev} sysctls not restored: {got}, want {HOST_SYSCTLS}")
    say("default route, rules, table 201 and sysctls as before")


@e2e(workers=(1,), timeout=60)
def jumbo_mtu_refused(env):
    """mtu = 9000 on a net_af_packet port (DPDK 22.11: 1518-byte frames at most) is
    refused by `rvs check` and `rvs run` at its key path, before anything starts."""
    text = make_config(1, os.path.join(env.workdir, "rvs.sock"))
    port = f'address = "{netns.DIRECTOR_CLIENT_ADDR}/24"\n'
    with open(env.cfg, "w") as f:
        f.write(text.replace(port, port + "mtu = 9000\n"))
    for cmd in (["check", "-c", env.cfg], ["run", "-c", env.cfg]):
        p = subprocess.run([rvs_binary(), *cmd], capture_output=True, text=True, timeout=30)
        last = (p.stderr.strip().splitlines() or ["<no stderr>"])[-1]
        say(f"rvs {cmd[0]}: exit {p.returncode}: {last}")
        check(p.returncode == 1, f"rvs {cmd[0]} exit {p.returncode} with mtu = 9000 on af_packet")
        check("port[0].mtu" in p.stderr and "at most 1500" in p.stderr, f"error does not name the key: {p.stderr}")
