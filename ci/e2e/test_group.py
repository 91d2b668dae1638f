"""A service over several ports (issue 14): `ports = [80, 443]`.

One rr service with persistence on VIP:80 and VIP:443 (plain HTTP on both),
NAT to real servers that listen on both ports (the servers keep the client's
destination port). A client's connections to :80 and :443 land on one server
whatever port it starts on; a second client lands on rr's next server and
sticks there on both ports; `rvs ctl list` shows the one grouped service,
and `rvs ctl` takes its name.
"""

import json
import os
import subprocess

import netns
from lib import VIP, Director, Skip, check, e2e, fake_mode, make_config, rvs_binary, say

NAMES = tuple(netns.SERVERS)
SVC = f"tcp:{VIP}:80,443"


def grouped_config(env):
    """The demo topology's config with its TCP service over 80 and 443."""
    text = make_config(env.workers, os.path.join(env.workdir, "rvs.sock"), tcp_sched="rr",
                       weights=(1, 1, 1), tcp_extra="persistence_timeout = 30")
    tcp, udp = text.split("protocol = \"udp\"", 1)
    check("port = 80\nprotocol = \"tcp\"" in tcp, "make_config changed: no TCP service on port 80")
    tcp = tcp.replace("port = 80\nprotocol = \"tcp\"", "ports = [80, 443]\nprotocol = \"tcp\"")
    tcp = tcp.replace("  port = 8080\n", "")
    return tcp + "protocol = \"udp\"" + udp


def ctl(env, *args):
    p = subprocess.run([rvs_binary(), "ctl", "-s", os.path.join(env.workdir, "rvs.sock"), *args],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"rvs ctl {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


@e2e(workers=(1,))
def group_ports_share_persistence(env):
    """rr + persistence over ports [80, 443]: a client's :80 and :443 meet on one server; list shows the group."""
    if fake_mode():
        raise Skip("the fake director has no grouped services")
    env.topo.up()
    env.topo.start_realservers(env.workdir)
    # Each real server also answers HTTP on 80 and 443 (its own name).
    for i, name in enumerate(NAMES):
        for port in (80, 443):
            env.topo.start_realserver(name, env.workdir, "--http-port", str(port),
                                      "--udp-port", str(20000 + 10 * i + port % 10))
    with open(env.cfg, "w") as f:
        f.write(grouped_config(env))
    env.director = Director(env.topo, env.workdir, env.cfg).start()
    env.director.wait_ready(port=443)
    firsts = []
    for src, order in (("198.18.0.21", ("80", "443")), ("198.18.0.22", ("443", "80"))):
        got = []
        for port in order:
            r = env.client("http-many", VIP, port, "3", "--sources", src, "--deadline", "30", timeout=60)
            check(not r["errors"], f"{src} :{port}: {r['errors'][:3]}")
            say(f"{src} :{port}: {r['answers']}")
            got += r["answers"]
        check(len(set(got)) == 1, f"{src}: its :80 and :443 connections split: {got}")
        firsts.append(got[0])
    # rr's cursor moved for the readiness probes, so it may start anywhere;
    # the second client still gets rr's next server.
    want = NAMES[(NAMES.index(firsts[0]) + 1) % len(NAMES)]
    check(firsts[1] == want, f"second client: got {firsts[1]}, rr's next is {want} (first {firsts[0]})")

    text = ctl(env, "list")
    say(next((line for line in text.splitlines() if "80,443" in line), text))
    check(f"TCP  {VIP}:80,443 rr persistent 30" in text, f"list has no grouped service:\n{text}")
    j = json.loads(ctl(env, "list", "--json"))
    svc = [s for s in j["services"] if s["protocol"] == "tcp"]
    check(len(svc) == 1 and svc[0]["ports"] == [80, 443] and svc[0]["port"] == 80,
          f"list --json: {svc}")
    check(sum(s["conns"] for s in svc[0]["servers"]) >= 12, f"connections not counted: {svc[0]}")
    # ctl names it as list does: an edit through that name shows up.
    ctl(env, "edit-service", "--service", SVC, "--persistence", "60")
    text = ctl(env, "list")
    check(f"TCP  {VIP}:80,443 rr persistent 60" in text, f"edit-service {SVC} not applied:\n{text}")
    env.stop_director()
