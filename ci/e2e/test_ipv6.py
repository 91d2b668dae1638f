"""IPv6 end to end (issue 13), against a running director: IPv6 services and
servers added, refused, listed, saved and deleted through `rvs ctl` with the
`[addr]:port` spelling while IPv4 keeps forwarding; the exception path
(`ping -6` of the TAP's IPv6 address, neighbour solicitations for the VIP
answered, malformed IPv6 counted and never given to the kernel); NAT, DR and
TUN over IPv6 (exact wrr splits, byte-exact transfers, UDP, fragments,
packet-too-big), one-packet scheduling over IPv6, and NAT64 (an IPv6 client,
IPv4-only servers).
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import lib
import onearm
import test_dr_tun
from lib import VIP, check, e2e, expected_sha256, rvs_binary, say, wait_for
import netns
from test_ctl import ctl_fails, ctl_json, ctl_ok, no_fake

CI = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ADDR6 = ("2001:db8:0:1::2/64", "2001:db8:0:2::1/64")
VIP6 = "2001:db8:0:1::100"
SVC6 = f"tcp:[{VIP6}]:80"
RS6 = ("2001:db8:0:2::11", "2001:db8:0:2::12", "2001:db8:0:2::13")
CLIENT6 = "2001:db8:0:1::10"


def fresh_request(env):
    r = env.client("http-many", VIP, "80", "1", "--deadline", "15", timeout=30)
    check(not r["errors"] and sum(r["counts"].values()) == 1,
          f"a request to the IPv4 VIP failed: {r['errors']}")


def neighbour_solicitation(env):
    """The client's kernel resolves the IPv6 VIP and the port's IPv6 address
    through rvs (NS to the solicited-node group, NA from the port's MAC):
    IPv6 is off on the director's veths, so only rvs can answer."""
    topo, c, dev = env.topo, env.topo.client, env.topo.client_if
    topo.sysctl(c, f"net.ipv6.conf.{dev}.disable_ipv6=0", f"net.ipv6.conf.{dev}.accept_dad=0")
    topo.ip(c, "addr", "add", "2001:db8:0:1::10/64", "dev", dev, "nodad")
    dc_mac = topo.mac(topo.director, topo.dc).lower()
    for target in (VIP6, ADDR6[0].split("/")[0]):
        # one echo request makes the kernel solicit; the reply is not asked
        # for (the VIP is not forwarded yet; ipv6_exception_path pings the
        # port address)
        topo.nsexec(c, ["ping", "-6", "-c", "1", "-W", "1", target], check=False, timeout=10)
        out = topo.ip(c, "-6", "neigh", "show", target, "dev", dev, check=False).stdout
        check(f"lladdr {dc_mac}" in out.lower(),
              f"the client did not learn {target} at the director's MAC {dc_mac}: {out!r}")
    say(f"NS for {VIP6} and {ADDR6[0]} answered with {dc_mac}")


@e2e(workers=(1,), timeout=90)
def ipv6_services_through_ctl(env):
    """A director whose ports have an IPv4 and an IPv6 address: IPv6 service
    and servers added with `tcp:[VIP6]:80` / `[addr]:port`, another family
    refused naming the rule, `list` writes `[addr]:port` (sorted after IPv4),
    `--json` the bare addresses, `save` writes a file `rvs check` accepts (with
    no warning: a persistent IPv6 NAT service is forwarded); IPv4 forwards
    before and after."""
    no_fake()
    env.setup(addr6=ADDR6)
    fresh_request(env)

    ctl_ok(env, "add-service", "--service", SVC6, "--scheduler", "wrr",
           "--persistence", "60", "--persistence-prefix", "64")
    for addr, w in zip(RS6[:2], (3, 2)):
        ctl_ok(env, "add-server", "--service", SVC6, "--server", f"[{addr}]:8080",
               "--weight", str(w))
    ctl_fails(env, ["add-server", "--service", SVC6, "--server",
                    f"{netns.SERVERS['rs1']}:8080"], 1,
              "is IPv4 but the VIP 2001:db8:0:1::100 is IPv6")
    ctl_fails(env, ["add-service", "--service", f"tcp:{VIP6}:443"], 1,
              "write an IPv6 VIP in brackets")
    ctl_fails(env, ["edit-service", "--service", f"tcp:{VIP}:80",
                    "--persistence-prefix", "64"], 1,
              "persistence_prefix: is for IPv6 services")

    plain = ctl_ok(env, "list")
    lines = plain.splitlines()
    v4 = [i for i, l in enumerate(lines) if l.startswith(f"TCP  {VIP}:80 ")]
    v6 = [i for i, l in enumerate(lines)
          if l.startswith(f"TCP  [{VIP6}]:80 wrr persistent 60 mask 64")]
    check(v4 and v6 and v4[0] < v6[0], f"list:\n{plain}")
    rs = [l.split()[1] for l in lines[v6[0] + 1:v6[0] + 3]]
    check(rs == [f"[{a}]:8080" for a in RS6[:2]], f"IPv6 servers listed as {rs}:\n{plain}")

    one = ctl_ok(env, "list", "--service", SVC6)
    check(f"[{VIP6}]:80" in one and f"{VIP}:80" not in one, f"list --service {SVC6}:\n{one}")

    js = ctl_json(env, "list")
    s6 = [s for s in js["services"] if s["vip"] == VIP6]
    check(len(s6) == 1, f"--json: no service with vip {VIP6}: {[s['vip'] for s in js['services']]}")
    s6 = s6[0]
    check(s6["port"] == 80 and s6["persistence_prefix"] == 64 and
          [(d["address"], d["port"], d["weight"]) for d in s6["servers"]] ==
          [(RS6[0], 8080, 3), (RS6[1], 8080, 2)], f"--json IPv6 service: {s6}")

    neighbour_solicitation(env)

    saved = os.path.join(env.workdir, "saved.toml")
    ctl_ok(env, "save", saved)
    p = subprocess.run([rvs_binary(), "check", "-c", saved], capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0, f"rvs check of the saved file: exit {p.returncode}: {p.stderr}")
    # a persistent IPv6 NAT service is forwarded (persistence_prefix): no
    # "not forwarded" warning for it
    check(f"tcp:[{VIP6}]:80 is IPv6" not in p.stdout + p.stderr,
          f"rvs check warns of a forwarded IPv6 service: {p.stdout!r} {p.stderr!r}")
    text = open(saved).read()
    check(f'vip = "{VIP6}"' in text and "persistence_prefix = 64" in text and
          f'address = "{RS6[0]}"' in text, f"saved file:\n{text}")

    ctl_ok(env, "del-server", "--service", SVC6, "--server", f"[{RS6[1]}]:8080")
    ctl_ok(env, "del-service", "--service", SVC6)
    check(all(s["vip"] != VIP6 for s in ctl_json(env, "list")["services"]),
          "the IPv6 service is still listed after del-service")
    fresh_request(env)
    stats = env.stop_director()
    say(f"IPv6 service added, listed, saved and deleted; IPv4 forwarded; stats {stats}")


# Crafted IPv6 frames, sent from the client namespace on a packet socket:
# argv = iface dst_mac src_mac src dst count; prints the counts sent as JSON.
MALFORMED = r'''
import json, socket, sys, time
iface, dst_mac, src_mac, src, dst, n = sys.argv[1:7]
n = int(n)
eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x86\xdd"
sa, da = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
def hdr(plen, nh):
    return b"\x60\x00\x00\x00" + plen.to_bytes(2, "big") + bytes([nh, 64]) + sa + da
# destination options (60) / hop-by-hop (0), 8 bytes: next header, length 0, PadN of 4
def opt(nxt):
    return bytes([nxt, 0, 1, 4, 0, 0, 0, 0])
udp = b"\x30\x39\x00\x50\x00\x08\x00\x00"
loop = b"".join(opt(60) for _ in range(8)) + opt(17) + udp      # 9 headers: over the bound
hbh_late = opt(0) + opt(17) + udp                               # hop-by-hop not first
frames = {
    "truncated_ipv6": eth + hdr(8, 17)[:20],
    "bad_ipv6_payload_length": eth + hdr(1000, 17) + udp,
    "bad_ipv6_ext_chain": [eth + hdr(len(loop), 60) + loop, eth + hdr(len(hbh_late), 60) + hbh_late],
}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
sent, t0 = {}, time.monotonic()
for i in range(n):
    if time.monotonic() - t0 > 5:
        break
    for k, f in frames.items():
        f = f[i % 2] if isinstance(f, list) else f
        s.send(f)
        sent[k] = sent.get(k, 0) + 1
    if i % 10 == 9:
        time.sleep(0.002)
print(json.dumps(sent))
'''


@e2e(workers=(1, 2), timeout=90)
def ipv6_exception_path(env):
    """The TAP carries the port's IPv6 address: `ping -6` of it is answered
    by the director's kernel through the exception path (rvs answers the
    client's NS, hands the echo requests to the TAP, sends the kernel's own
    NS and replies out, and gives it the client's NA). NS for the VIP is
    answered by rvs. Malformed IPv6 (truncated, a payload length beyond the
    frame, extension-header chains over the bound or with a late
    hop-by-hop) is counted exactly by reason and never reaches the kernel."""
    no_fake()
    env.setup(addr6=ADDR6)
    topo, c, dev = env.topo, env.topo.client, env.topo.client_if
    rs1 = topo.rs_ns["rs1"]
    topo.sysctl(rs1, "net.ipv6.conf.eth0.disable_ipv6=0", "net.ipv6.conf.eth0.accept_dad=0")
    topo.ip(rs1, "addr", "add", f"{RS6[0]}/64", "dev", "eth0", "nodad")
    ctl_ok(env, "add-service", "--service", SVC6)
    ctl_ok(env, "add-server", "--service", SVC6, "--server", f"[{RS6[0]}]:8080")
    neighbour_solicitation(env)

    # The director resolves the IPv6 server itself: its solicitation (from
    # the port's IPv6 address, with its MAC as source link-layer option) is
    # what puts the director in the server's neighbour table.
    ds_mac = topo.mac(topo.director, topo.ds).lower()
    port6 = ADDR6[1].split("/")[0]

    def server_knows_director():
        out = topo.ip(rs1, "-6", "neigh", "show", port6, "dev", "eth0", check=False).stdout
        return f"lladdr {ds_mac}" in out.lower()
    wait_for(server_knows_director, 5, what=f"rs1 solicited by {port6} at {ds_mac}")
    say(f"rs1 was solicited by the director ({port6} at {ds_mac})")

    own = ADDR6[0].split("/")[0]
    p = topo.nsexec(c, ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", own], check=False,
                    timeout=15)
    check(p.returncode == 0 and " 3 received" in p.stdout,
          f"ping -6 {own} through the exception path: rc {p.returncode}\n{p.stdout}{p.stderr}")
    say(f"ping -6 {own}: {p.stdout.strip().splitlines()[-2]}")

    n = 100
    dc_mac = topo.mac(topo.director, topo.dc).lower()
    cli_mac = topo.mac(c, dev).lower()
    out = topo.nsexec(c, ["python3", "-c", MALFORMED, dev, dc_mac, cli_mac,
                          "2001:db8:0:1::10", own, str(n)], timeout=20).stdout
    sent = json.loads(out)
    check(sent == {"truncated_ipv6": n, "bad_ipv6_payload_length": n,
                   "bad_ipv6_ext_chain": n}, f"crafted frames sent: {sent}")
    # A last ping proves the frames before it were all processed.
    p = topo.nsexec(c, ["ping", "-6", "-c", "1", "-W", "2", own], check=False, timeout=10)
    check(p.returncode == 0, f"ping -6 after the malformed frames: {p.stdout}{p.stderr}")

    stats = env.stop_director()
    drops = stats.get("drops") or {}
    for reason, count in sent.items():
        check(drops.get(reason) == count,
              f"drops[{reason}] = {drops.get(reason)}, want exactly {count} (the frames sent)")
    # The kernel got the 4 echo requests and what NDP it needs, never the
    # 300 malformed frames.
    check(stats.get("to_kernel", 0) < 50,
          f"to_kernel = {stats.get('to_kernel')}: malformed frames reached the kernel?")
    say(f"malformed IPv6 counted: { {k: drops.get(k) for k in sent} }, "
        f"to_kernel {stats.get('to_kernel')}")


def ipv6_servers(env):
    """Each real server gets its IPv6 address (2001:db8:0:2::1x), a default
    route through the director's IPv6 address (NAT: replies come back
    through rvs), and a second realserver.py bound to it on 8080."""
    topo = env.topo
    gw = ADDR6[1].split("/")[0]
    for (name, ns), addr in zip(topo.rs_ns.items(), RS6):
        topo.sysctl(ns, "net.ipv6.conf.eth0.disable_ipv6=0", "net.ipv6.conf.eth0.accept_dad=0")
        topo.ip(ns, "addr", "add", f"{addr}/64", "dev", "eth0", "nodad")
        topo.ip(ns, "-6", "route", "add", "default", "via", gw, "dev", "eth0")
        topo.start_realserver(name, env.workdir, "--bind", addr, "--udp-port", "5354")


@e2e(workers=(1, 2), timeout=90)
def ipv6_nat_forwarding(env):
    """NAT over IPv6: 300 HTTP connections from the client's own IPv6
    address to [VIP6]:80 with wrr 3,2,1 land exactly 150/100/50, each
    server sees the client's IPv6 address (not the director's), the
    counters of `rvs ctl list --stats` agree, a 50 MB download through
    the VIP is byte-exact, and 30 UDP datagrams to [VIP6]:53 from fresh
    sockets are each answered from the VIP by the server rr picked, exactly
    10/10/10, with the UDP service's counters agreeing."""
    no_fake()
    env.setup(addr6=ADDR6)
    topo, c, dev = env.topo, env.topo.client, env.topo.client_if
    ipv6_servers(env)
    topo.sysctl(c, f"net.ipv6.conf.{dev}.disable_ipv6=0", f"net.ipv6.conf.{dev}.accept_dad=0")
    topo.ip(c, "addr", "add", f"{CLIENT6}/64", "dev", dev, "nodad")
    ctl_ok(env, "add-service", "--service", SVC6, "--scheduler", "wrr")
    for addr, w in zip(RS6, (3, 2, 1)):
        ctl_ok(env, "add-server", "--service", SVC6, "--server", f"[{addr}]:8080",
               "--weight", str(w))
    # The director solicits its IPv6 servers itself (worker 0, on the new
    # configuration): wait until each knows it, so no first SYN waits.
    ds_mac = topo.mac(topo.director, topo.ds).lower()
    port6 = ADDR6[1].split("/")[0]
    for ns in topo.rs_ns.values():
        wait_for(lambda: f"lladdr {ds_mac}" in topo.ip(
            ns, "-6", "neigh", "show", port6, "dev", "eth0", check=False).stdout.lower(),
            10, what=f"{ns} solicited by {port6}")

    n = 300
    r = env.client("http-many", VIP6, "80", str(n), "--path", "/peer", "--deadline", "25",
                   timeout=40)
    check(not r["errors"], f"{len(r['errors'])} errors, first: {r['errors'][:3]}")
    check(r["counts"] == {"rs1": 150, "rs2": 100, "rs3": 50},
          f"wrr 3,2,1 over {n}: {r['counts']}, want rs1 150 rs2 100 rs3 50")
    check(r["peers"] == {"rs1 " + CLIENT6: 150, "rs2 " + CLIENT6: 100, "rs3 " + CLIENT6: 50},
          f"the servers saw as their client: {r['peers']}, want {CLIENT6}")
    say(f"{n} connections to [{VIP6}]:80 in {r['elapsed']}s: {r['counts']}, "
        f"each server saw {CLIENT6}")

    js = ctl_json(env, "list")
    s6 = [s for s in js["services"] if s["vip"] == VIP6][0]
    conns = {d["address"]: d["conns"] for d in s6["servers"]}
    check(conns == {RS6[0]: 150, RS6[1]: 100, RS6[2]: 50},
          f"list --stats conns per IPv6 server: {conns}")
    check(all(d["in_packets"] > 0 and d["out_packets"] > 0 for d in s6["servers"]),
          f"list --stats packets: {s6['servers']}")

    size = 50 * 1000 * 1000
    out = os.path.join(env.workdir, "blob6")
    d = env.client("download", f"http://[{VIP6}]/blob?size={size}", "--out", out,
                   "--max-time", "25", timeout=45)
    check(d["ok"], f"download failed: {d['error']}")
    check(d["bytes"] == size and d["sha256"] == expected_sha256(size),
          f"download: {d['bytes']} bytes sha256 {d['sha256']}, want {size} bytes intact")
    say(f"{size} bytes from [{VIP6}] in {d['seconds']}s, intact ({d['tool']})")
    os.unlink(out)

    udp_over_ipv6(env)
    stats = env.stop_director()
    check(stats.get("conns_created", 0) >= n + 1 + UDP6_N,
          f"conns_created {stats.get('conns_created')}")
    drops = stats.get("drops") or {}
    check(not drops.get("fragment") and not drops.get("frag_no_first"),
          f"IPv6 fragments dropped: {drops}")


UDP6 = f"udp:[{VIP6}]:53"
UDP6_N = 30


def udp_over_ipv6(env):
    """UDP over IPv6 NAT: datagrams to [VIP6]:53 from fresh source ports
    reach the servers' UDP echo on 5354, rr spreads them 10/10/10, every
    answer comes back from the VIP, and `list --json` counts one
    connection per datagram on each server."""
    ctl_ok(env, "add-service", "--service", UDP6, "--scheduler", "rr")
    for addr in RS6:
        ctl_ok(env, "add-server", "--service", UDP6, "--server", f"[{addr}]:5354")
    r = env.client("udp-many", VIP6, "53", str(UDP6_N), "--timeout", "2", timeout=60)
    check(not r["errors"], f"{len(r['errors'])} UDP requests failed, first: {r['errors'][:3]}")
    want = {"rs1": UDP6_N // 3, "rs2": UDP6_N // 3, "rs3": UDP6_N // 3}
    check(r["counts"] == want, f"UDP over IPv6 rr: {r['counts']}, want {want}")
    s6 = [s for s in ctl_json(env, "list")["services"]
          if s["vip"] == VIP6 and s["port"] == 53][0]
    conns = {d["address"]: d["conns"] for d in s6["servers"]}
    check(conns == {a: UDP6_N // 3 for a in RS6}, f"list --stats conns per UDP server: {conns}")
    check(all(d["in_packets"] == UDP6_N // 3 and d["out_packets"] == UDP6_N // 3
              for d in s6["servers"]),
          f"list --stats UDP packets (one each way per datagram): {s6['servers']}")
    say(f"{UDP6_N} datagrams to [{VIP6}]:53 in {r['elapsed']}s: {r['counts']}, answered from the VIP")

    # Datagrams bigger than the MTU: the client's kernel fragments them, rvs
    # forwards the first fragment as its flow and the later ones after it,
    # the server's kernel reassembles and echoes 3,000 bytes back, again in
    # fragments: every echo matching byte for byte proves both ways intact.
    big = 3000
    r = env.client("udp-many", VIP6, "53", "3", "--size", str(big), "--timeout", "2", timeout=30)
    check(not r["errors"], f"{big}-byte datagrams over IPv6: {r['errors'][:3]}")
    check(r["counts"] == {"rs1": 1, "rs2": 1, "rs3": 1},
          f"{big}-byte datagrams: {r['counts']}, want one per server (rr)")
    say(f"3 datagrams of {big} bytes (fragmented both ways) echoed intact: {r['counts']}")


@e2e(workers=(1, 2), timeout=90)
def ipv6_ops_one_packet(env):
    """One-packet scheduling over IPv6 (as IPv4's ops_one_packet): a UDP rr
    service on [VIP6]:53 with `--ops`; 30 datagrams from ONE source port land
    10/10/10 in rr order, every answer from the VIP (the servers' replies
    have no entry: matched by their source), and `list --conns` shows no UDP
    connection while `list` flags the service `ops`."""
    no_fake()
    env.setup(addr6=ADDR6)
    topo, c, dev = env.topo, env.topo.client, env.topo.client_if
    ipv6_servers(env)
    topo.sysctl(c, f"net.ipv6.conf.{dev}.disable_ipv6=0", f"net.ipv6.conf.{dev}.accept_dad=0")
    topo.ip(c, "addr", "add", f"{CLIENT6}/64", "dev", dev, "nodad")
    ctl_ok(env, "add-service", "--service", UDP6, "--scheduler", "rr", "--ops")
    for addr in RS6:
        ctl_ok(env, "add-server", "--service", UDP6, "--server", f"[{addr}]:5354")
    ds_mac = topo.mac(topo.director, topo.ds).lower()
    port6 = ADDR6[1].split("/")[0]
    for ns in topo.rs_ns.values():
        wait_for(lambda: f"lladdr {ds_mac}" in topo.ip(
            ns, "-6", "neigh", "show", port6, "dev", "eth0", check=False).stdout.lower(),
            10, what=f"{ns} solicited by {port6}")
    r = env.client("udp-many", VIP6, "53", "30", "--one-socket", "--timeout", "2", timeout=60)
    check(not r["errors"], f"{len(r['errors'])} failed: {r['errors'][:3]}")
    check(r["counts"] == {"rs1": 10, "rs2": 10, "rs3": 10},
          f"30 datagrams from one source port: {r['counts']}, want 10/10/10")
    a = r["answers"]
    check(all(a[i] == a[i % 3] for i in range(30)) and len(set(a[:3])) == 3,
          f"not rr order: {a}")
    conns = ctl_json(env, "list", "--conns")["conns"]
    udp = [x for x in conns if x["protocol"] == "udp"]
    check(not udp, f"one-packet scheduling left {len(udp)} UDP connection entries: {udp[:2]}")
    s6 = [s for s in ctl_json(env, "list")["services"]
          if s["vip"] == VIP6 and s["port"] == 53][0]
    check(s6["ops"], f"list does not flag ops: {s6}")
    per = {d["address"]: (d["conns"], d["in_packets"], d["out_packets"]) for d in s6["servers"]}
    check(per == {x: (10, 10, 10) for x in RS6},
          f"list --stats per server (conns, in, out): {per}, want 10 each")
    say(f"30 datagrams from one source port to [{VIP6}]:53: {r['counts']} in rr order, "
        f"no UDP connection entry")
    env.stop_director()


# ---------------------------------------------------------------- DR/TUN over IPv6
# One-arm (ci/e2e/onearm.py): client, director and servers on one bridge and
# one IPv6 subnet; the servers hold VIP6 on lo (nodad: Linux answers NS only
# for addresses of the interface asked, so they never claim it on eth0).
ONEARM6_DIR = "2001:db8:0:1::2"
ONEARM6_RS = {"rs1": "2001:db8:0:1::11", "rs2": "2001:db8:0:1::12", "rs3": "2001:db8:0:1::13"}


def onearm6_config(env, forward):
    servers = "".join(f"""
  [[service.server]]
  address = "{a}"
  weight = {w}
""" for a, w in zip(ONEARM6_RS.values(), (3, 2, 1)))
    return f"""# written by ci/e2e/test_ipv6.py (one-arm IPv6 {forward}, {env.workers} worker(s))
[dpdk]
cores = "{test_dr_tun.cores(env.workers)}"
workers = {env.workers}
hugepages = false
memory_mb = 256

[[port]]
name = "lan"
device = "net_af_packet0,iface=dc,qpairs=1"
address = ["{onearm.DIRECTOR_ADDR}/{onearm.SUBNET_LEN}", "{ONEARM6_DIR}/64"]

[[service]]
vip = "{VIP6}"
port = 80
scheduler = "wrr"
forward = "{forward}"
{servers}
[control]
socket = "{os.path.join(env.workdir, 'rvs.sock')}"
"""


def onearm6_setup(env, forward):
    """The one-arm topology with IPv6 on the client and the servers (each
    with VIP6 on lo and realserver.py bound to it on port 80), the TUN
    helpers for `tun`, and the director; waits until every server has been
    solicited by the director (so no first SYN waits for ND)."""
    no_fake()
    topo = onearm.OneArm()
    env.topo = topo
    topo.up()
    six = ["net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
           "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]
    topo.sysctl(topo.client, *six)
    topo.ip(topo.client, "addr", "add", f"{CLIENT6}/64", "dev", topo.client_if, "nodad")
    for name, addr in ONEARM6_RS.items():
        ns = topo.rs_ns[name]
        topo.sysctl(ns, *six)
        topo.batch(ns, [f"addr add {addr}/64 dev eth0 nodad",
                        f"addr add {VIP6}/128 dev lo nodad"])
        topo.start_realserver(name, env.workdir, "--bind", VIP6, "--http-port", "80",
                              "--udp-port", "5354")
    if forward == "tun":
        ready = {}
        for name, addr in ONEARM6_RS.items():
            rf = os.path.join(env.workdir, f"{name}.tundecap6.ready")
            outp = os.path.join(env.workdir, f"{name}.tundecap6.log")
            with open(outp, "w") as logf:
                p = topo.popen(topo.rs_ns[name], [sys.executable, os.path.join(CI, "tundecap.py"),
                                                  "--addr", addr, "--tun", "tun6-rvs",
                                                  "--max-time", "120", "--ready-file", rf],
                               stdout=logf, stderr=subprocess.STDOUT)
            topo.tundecap[name] = (p, outp)
            ready[name] = rf
        onearm._wait_files(ready, 30.0, "IPv6 tundecap helpers")
    with open(env.cfg, "w") as f:
        f.write(onearm6_config(env, forward))
    t0 = time.monotonic()
    env.director = lib.Director(topo, env.workdir, env.cfg).start()
    # Ready when its worker has solicited every server (no probe
    # connection: it would shift the wrr sequence the test counts).
    dmac = topo.mac(topo.director, topo.dc).lower()
    for ns in topo.rs_ns.values():
        wait_for(lambda: f"lladdr {dmac}" in topo.ip(
            ns, "-6", "neigh", "show", ONEARM6_DIR, "dev", "eth0", check=False).stdout.lower(),
            30, what=f"{ns} solicited by {ONEARM6_DIR}")
    say(f"one-arm IPv6 {forward}, {env.workers} worker(s), servers resolved after "
        f"{time.monotonic() - t0:.1f}s")
    return topo


def balanced6(env, n):
    r = env.client("http-many", VIP6, "80", str(n), "--path", "/peer", "--deadline", "25",
                   timeout=40)
    check(not r["errors"], f"{len(r['errors'])} errors, first: {r['errors'][:3]}")
    want = {"rs1": n // 2, "rs2": n // 3, "rs3": n // 6}
    check(r["counts"] == want, f"wrr 3,2,1 over {n}: {r['counts']}, want {want}")
    check(set(r["peers"]) == {f"{k} {CLIENT6}" for k in want},
          f"the servers saw as their client: {r['peers']}, want {CLIENT6}")
    say(f"{n} connections to [{VIP6}]:80 in {r['elapsed']}s: {r['counts']}")


@e2e(workers=(1, 2), timeout=90)
def ipv6_dr_onearm(env):
    """DR over IPv6, one-arm: 300 connections from the client's IPv6 address
    to [VIP6]:80 with wrr 3,2,1 land exactly 150/100/50 on servers holding
    the VIP on lo, which see the client's address and answer it directly; a
    5 MB download is byte-exact and its reply packets never cross the
    director (its rx stays far below them)."""
    onearm6_setup(env, "dr")
    balanced6(env, 300)
    size = 5 * 1000 * 1000
    out = os.path.join(env.workdir, "blob6")
    d = env.client("download", f"http://[{VIP6}]/blob?size={size}", "--out", out,
                   "--max-time", "20", timeout=40)
    check(d["ok"], f"download failed: {d['error']}")
    check(d["bytes"] == size and d["sha256"] == expected_sha256(size),
          f"download: {d['bytes']} bytes sha256 {d['sha256']}, want {size} bytes intact")
    say(f"{size} bytes from [{VIP6}] (DR) in {d['seconds']}s, intact ({d['tool']})")
    os.unlink(out)
    stats = env.stop_director()
    replies = size // 1440
    cl = env.topo.link_stats(env.topo.client, env.topo.client_if)
    rx = stats.get("rx_packets", 0)
    check(stats.get("conns_created", 0) >= 300, f"conns_created {stats.get('conns_created')}")
    # Only the client's packets crossed the director (plus a few ND ones):
    # the download's replies (the client received them) did not.
    check(cl["rx_packets"] >= replies, f"client received {cl['rx_packets']} < {replies}")
    check(rx <= cl["tx_packets"] + 100,
          f"director rx_packets {rx} > client tx {cl['tx_packets']} + 100: it saw replies")
    say(f"director rx {rx} tx {stats.get('tx_packets')} packets; client tx "
        f"{cl['tx_packets']} rx {cl['rx_packets']} (the replies bypassed the director)")


UPLOAD6 = 2 * 1000 * 1000


@e2e(workers=(1, 2), timeout=90)
def ipv6_tun_upload_pmtu(env):
    """TUN over IPv6 (IPv6-in-IPv6, decapsulated by ci/tundecap.py's IPv6
    mode): 60 connections with wrr 3,2,1 land 30/20/10; a 2 MB upload in
    full-size (1500-byte) packets, 1540 once encapsulated, gets ICMPv6
    packet-too-big (MTU 1460) from the director, the client's kernel lowers
    its path MTU to the VIP to 1460 and the upload arrives intact. Every
    tunnelled packet came from the director's IPv6 address with the outer
    hop limit and traffic class the inner packet's (63)."""
    topo = onearm6_setup(env, "tun")
    balanced6(env, 60)
    path = os.path.join(env.workdir, "upload6.bin")
    data = os.urandom(UPLOAD6)
    with open(path, "wb") as f:
        f.write(data)
    sha = hashlib.sha256(data).hexdigest()
    p = topo.nsexec(topo.client, ["curl", "-sS", "--fail", "--max-time", "20", "--connect-timeout",
                                  "5", "-H", "Expect:", "-H",
                                  "Content-Type: application/octet-stream",
                                  "--data-binary", "@" + path, f"http://[{VIP6}]/upload"],
                    timeout=40, check=False)
    route = topo.ip(topo.client, "-6", "route", "get", VIP6).stdout.strip().replace("\n", " ")
    say(f"client: ip -6 route get {VIP6}: {route}")
    check(p.returncode == 0, f"upload failed: curl exit {p.returncode}: {p.stderr.strip()}")
    r = json.loads(p.stdout)
    check(r["bytes"] == UPLOAD6 and r["sha256"] == sha,
          f"upload arrived as {r}, want {UPLOAD6} bytes sha256 {sha}")
    check("mtu 1460" in route, f"the client's path MTU to the VIP is not 1460: {route}")
    stats = env.stop_director()
    dec = topo.stop_tundecap()
    say(f"director icmp_sent {stats.get('icmp_sent')}; tundecap: "
        + str({n: (d or {}).get("decapsulated") for n, d in dec.items()}))
    check(stats.get("icmp_sent", 0) >= 1, "the director sent no packet-too-big")
    for n, d in dec.items():
        check(d is not None, f"tundecap on {n} printed no counters")
        check(d["bad_inner"] == 0 and d["write_errors"] == 0 and d["len_mismatch"] == 0,
              f"tundecap on {n}: {d['first_error']} {d['first_mismatch']}")
        check(d["hop_mismatch"] == 0 and d["tclass_mismatch"] == 0,
              f"tundecap on {n}: outer header does not follow the inner: {d['first_mismatch']}")
        check(set(d["outer_src"]) == {ONEARM6_DIR}, f"{n}: outer sources {d['outer_src']}")
        check(set(d["inner_hop_limit"]) == {"63"}, f"{n}: inner hop limits {d['inner_hop_limit']}")
    check(dec["rs1"]["decapsulated"] >= 30 * 3, f"rs1 decapsulated {dec['rs1']['decapsulated']}")


# ------------------------------------------------------------------ NAT64
NAT64_CLIENT6 = "2001:db8:0:1::10"


def nat64_config(env):
    """One port with both families; an IPv4 full-NAT service (the readiness
    probe's) and the NAT64 service: [VIP6]:80 rr to the three IPv4 servers'
    8080 by fnat; a UDP NAT64 service to rs1's echo."""
    import onearm
    import test_dr_tun as drt
    servers = "".join(f"""
  [[service.server]]
  address = "{onearm.SERVERS[n]}"
  port = 8080
""" for n in ("rs1", "rs2", "rs3"))
    return f"""# written by ci/e2e/test_ipv6.py nat64_forwarding ({env.workers} worker(s))
[dpdk]
cores = "{drt.cores(env.workers)}"
workers = {env.workers}
hugepages = false
memory_mb = 256

[[port]]
name = "lan"
device = "net_af_packet0,iface=dc,qpairs=1"
address = ["{onearm.DIRECTOR_ADDR}/{onearm.SUBNET_LEN}", "{ADDR6[0]}"]

[[service]]
vip = "{VIP}"
port = 80
scheduler = "rr"
forward = "fnat"
{servers}
[[service]]
vip = "{VIP6}"
port = 80
scheduler = "rr"
forward = "fnat"
{servers}
[[service]]
vip = "{VIP6}"
port = 53
protocol = "udp"
forward = "fnat"
  [[service.server]]
  address = "{onearm.SERVERS['rs1']}"
  port = 5353

[timeouts]
max_connections = 65536

[control]
socket = "{os.path.join(env.workdir, 'rvs.sock')}"
"""


NAT64_UDP = r"""
import json, socket, sys
size = int(sys.argv[2]) if len(sys.argv) > 2 else 0
msg = b"ping" if not size else bytes((i * 7 + 3) % 251 for i in range(size))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3.0)
s.sendto(msg, (sys.argv[1], 53))
try:
    got = s.recv(65535)
    print(json.dumps({"echo": got[:8].decode(errors="replace") if not size else len(got),
                      "intact": got == b"rs1:" + msg}))
except OSError as e:
    print(json.dumps({"echo": f"{type(e).__name__}: {e}", "intact": False}))
"""


@e2e(workers=(1, 2), timeout=120)
def nat64_forwarding(env):
    """NAT64 one-arm: an IPv6 client, three IPv4-only servers with no route
    back (no default route, IPv6 disabled): 30 connections to [VIP6]:80
    with rr land exactly 10/10/10 and each server sees the director's IPv4
    address as its client; a UDP datagram echoes; a 50 MB download through
    [VIP6] is byte-exact; no snat_exhausted, too_big or rewrite drop."""
    import lib
    import onearm
    import test_dr_tun as drt
    if env.fake:
        raise lib.Skip("NAT64 needs the real director")
    topo = onearm.OneArm()
    env.topo = topo
    topo.up()
    c, dev = topo.client, topo.client_if
    topo.sysctl(c, "net.ipv6.conf.all.disable_ipv6=0", f"net.ipv6.conf.{dev}.disable_ipv6=0",
                f"net.ipv6.conf.{dev}.accept_dad=0")
    topo.ip(c, "addr", "add", f"{NAT64_CLIENT6}/64", "dev", dev, "nodad")
    for n, ns in topo.rs_ns.items():
        routes = topo.ip(ns, "route", "show", "default").stdout.strip()
        check(routes == "", f"{n} has a default route ({routes}); NAT64 must work without one")
        v6 = topo.ip(ns, "-6", "addr", "show", check=False).stdout.strip()
        check("inet6" not in v6, f"{n} has IPv6 ({v6}); the servers must be IPv4-only")
    topo.start_realservers(env.workdir, ports={n: 8080 for n in onearm.SERVERS})
    with open(env.cfg, "w") as f:
        f.write(nat64_config(env))
    chk = subprocess.run([rvs_binary(), "check", "-c", env.cfg], capture_output=True, text=True, timeout=30)
    check(chk.returncode == 0 and "IPv6" not in chk.stdout + chk.stderr,
          f"rvs check: {chk.returncode} {chk.stdout}{chk.stderr}")
    env.director = lib.Director(topo, env.workdir, env.cfg).start()
    t = env.director.wait_ready()
    say(f"one-arm NAT64 topology {topo.id}, {env.workers} worker(s), forwarding after {t:.1f}s")

    n = 30
    r = env.client("http-many", VIP6, "80", str(n), "--path", "/peer", "--deadline", "20",
                   timeout=40)
    check(not r["errors"], f"{len(r['errors'])} errors, first: {r['errors'][:3]}")
    check(r["counts"] == {"rs1": 10, "rs2": 10, "rs3": 10},
          f"rr over {n}: {r['counts']}, want 10/10/10")
    director = onearm.DIRECTOR_ADDR
    check(r["peers"] == {f"rs{i} {director}": 10 for i in (1, 2, 3)},
          f"the servers saw as their client: {r['peers']}, want the director's {director}")
    say(f"{n} connections to [{VIP6}]:80 in {r['elapsed']}s: {r['counts']}, each server saw {director}")

    sock = os.path.join(env.workdir, "rvs.sock")
    ls = subprocess.run([rvs_binary(), "ctl", "-s", sock, "list", "--json"], capture_output=True,
                        text=True, timeout=60)
    check(ls.returncode == 0, f"rvs ctl list --json: {ls.stderr}")
    s64 = [s for s in json.loads(ls.stdout)["services"] if s["vip"] == VIP6 and s["port"] == 80]
    check(len(s64) == 1, f"the NAT64 service in list --json: {s64}")
    conns = {d["address"]: d["conns"] for d in s64[0]["servers"]}
    check(conns == {onearm.SERVERS[n]: 10 for n in ("rs1", "rs2", "rs3")},
          f"list --json conns per NAT64 server: {conns}, want 10 each")
    check(all(d["in_packets"] > 0 and d["out_packets"] > 0 for d in s64[0]["servers"]),
          f"list --json packets: {s64[0]['servers']}")
    say(f"list --json: NAT64 servers {conns}")
    # list --conns shows the IPv6 side and the IPv4 local tuple of each
    lc = subprocess.run([rvs_binary(), "ctl", "-s", sock, "list", "--conns", "--json"],
                        capture_output=True, text=True, timeout=60)
    check(lc.returncode == 0, f"rvs ctl list --conns --json: {lc.stderr}")
    mine = [c for c in json.loads(lc.stdout)["conns"]
            if c["client"] == NAT64_CLIENT6 and c["vip"] == VIP6 and c["vport"] == 80]
    rs4 = set(onearm.SERVERS.values())
    check(len(mine) >= 1 and all(c["server"] in rs4 and c["sport"] == 8080 and
                                 (c.get("local") or "").startswith(director + ":") for c in mine),
          f"list --conns: NAT64 entries {mine[:3]}")
    text = subprocess.run([rvs_binary(), "ctl", "-s", sock, "list", "--conns"],
                          capture_output=True, text=True, timeout=60).stdout
    check(f"[{NAT64_CLIENT6}]:" in text and f"[{VIP6}]:80" in text,
          f"list --conns text has no [addr]:port for the NAT64 entries:\n{text[:600]}")
    say(f"list --conns: {len(mine)} NAT64 entries, e.g. {mine[0]['client']} -> [{mine[0]['vip']}]:80 "
        f"-> {mine[0]['local']} -> {mine[0]['server']}:8080")

    p = subprocess.run(["ip", "netns", "exec", c, lib.PY, "-c", NAT64_UDP, VIP6],
                       capture_output=True, text=True, timeout=30)
    out = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
    check(out.get("echo") == "rs1:ping", f"UDP over NAT64: {out} {p.stderr[-500:]}")

    size = drt.BLOB
    path = os.path.join(env.workdir, "blob64")
    d = env.client("download", f"http://[{VIP6}]/blob?size={size}", "--out", path,
                   "--max-time", "30", timeout=60)
    check(d["ok"], f"download failed: {d['error']}")
    check(d["bytes"] == size and d["sha256"] == expected_sha256(size),
          f"download: {d['bytes']} bytes sha256 {d['sha256']}, want {size} bytes intact")
    say(f"{size} bytes from [{VIP6}] in {d['seconds']}s, intact ({d['tool']})")
    os.unlink(path)
    stats = env.stop_director()
    drops = stats.get("drops") or {}
    for k in ("snat_exhausted", "too_big", "rewrite_failed", "neighbour_unresolved"):
        check(drops.get(k, 0) == 0, f"drops[{k}] = {drops.get(k)}")
    check(stats.get("conns_created", 0) >= n + 2, f"conns_created {stats.get('conns_created')}")


@e2e(workers=(1, 2), timeout=120)
def nat64_fragments(env):
    """NAT64 of fragments on the wire, both ways: 3000-byte UDP datagrams
    from the IPv6 client leave it in three IPv6 fragments, reach rs1 as
    three IPv4 fragments, and rs1's echo ("rs1:" + the datagram) comes
    back as three IPv6 fragments, intact. rvs does not fragment: rs1's
    route to the director has an MTU of 1472, so that its fragments
    (1468/1468/136 bytes) fit the client's 1500 once translated (+28).
    Every fragment counted in frags_forwarded, none dropped.

    The director's port is a net_tap bridged to dc, as in test_frag.py:
    net_af_packet joins a fanout group with PACKET_FANOUT_FLAG_DEFRAG, so
    the kernel reassembles rs1's IPv4 fragments before rvs reads them
    (IPv6 ones it leaves alone) and rvs would see one 3032-byte datagram
    cut to its 2048-byte ring frame (1982 bytes): a `bad_total_length`
    parse drop, as nat64_forwarding on net_af_packet shows."""
    import lib
    import onearm
    import test_frag
    if env.fake:
        raise lib.Skip("NAT64 needs the real director")
    topo = onearm.OneArm()
    env.topo = topo
    topo.up()
    c, dev, d = topo.client, topo.client_if, topo.director
    topo.sysctl(c, "net.ipv6.conf.all.disable_ipv6=0", f"net.ipv6.conf.{dev}.disable_ipv6=0",
                f"net.ipv6.conf.{dev}.accept_dad=0")
    topo.ip(c, "addr", "add", f"{NAT64_CLIENT6}/64", "dev", dev, "nodad")
    topo.start_realservers(env.workdir, ports={n: 8080 for n in onearm.SERVERS})
    topo.ip(d, "link", "add", "brn", "type", "bridge", "stp_state", "0", "forward_delay", "0",
            "mcast_snooping", "0")
    topo.ip(d, "link", "set", topo.dc, "master", "brn")
    topo.ip(d, "link", "set", "brn", "up")
    cfg = nat64_config(env)
    old = "net_af_packet0,iface=dc,qpairs=1"
    check(old in cfg, f"nat64_config no longer has {old}")
    with open(env.cfg, "w") as f:
        f.write(cfg.replace(old, "net_tap10,iface=rvsf64"))
    env.director = lib.Director(topo, env.workdir, env.cfg).start()
    test_frag.join_taps(env, [("brn", "rvsf64")])
    t = env.director.wait_ready()
    say(f"one-arm NAT64 topology {topo.id}, {env.workers} worker(s), net_tap port, "
        f"forwarding after {t:.1f}s")
    topo.ip(topo.rs_ns["rs1"], "route", "add", f"{onearm.DIRECTOR_ADDR}/32", "dev", "eth0",
            "mtu", "1472")

    n = 3
    for i in range(n):
        p = subprocess.run(["ip", "netns", "exec", c, lib.PY, "-c", NAT64_UDP, VIP6, "3000"],
                           capture_output=True, text=True, timeout=30)
        out = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
        check(out.get("intact") is True and out.get("echo") == 3004,
              f"3000-byte datagram {i + 1} over NAT64: {out} {p.stderr[-500:]}")
    say(f"{n} x 3000-byte UDP datagrams over NAT64, fragmented both ways, echoed intact")
    stats = env.stop_director()
    drops = stats.get("drops") or {}
    # 3008 UDP bytes in: 1448/1448/112 per IPv6 fragment; 3012 back:
    # 1448/1448/116 per IPv4 fragment.
    want = n * (3 + 3)
    check(stats.get("frags_forwarded") == want,
          f"frags_forwarded {stats.get('frags_forwarded')}, want {want}")
    for k in ("fragment", "frag_no_first", "frag_hold_full", "too_big", "bad_total_length",
              "multi_segment", "rewrite_failed"):
        check(drops.get(k, 0) == 0, f"drop counter {k} = {drops.get(k)}, want 0")
    say(f"frags_forwarded={stats.get('frags_forwarded')}, drops {({k: v for k, v in drops.items() if v})}")
