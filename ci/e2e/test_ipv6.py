"""IPv6 in configuration and control (issue 13, stage 1), against a running
director: ports with SPEC's address list (one IPv4, one IPv6), IPv6 services and
servers added, refused, listed, saved and deleted through `rvs ctl` with the
`[addr]:port` spelling, while IPv4 keeps forwarding.

The data plane does not forward IPv6 yet; it answers neighbour solicitations for
the VIP and its own IPv6 addresses, which the client's kernel proves by resolving
them (IPv6 is off on the director's veths, so the kernel there cannot answer).
`ipv6_exception_path` (issue 13 stage 2): the TAP's IPv6 address answers
`ping -6`, malformed IPv6 is counted and never reaches the kernel.
"""

import json
import os
import subprocess

from lib import VIP, check, e2e, expected_sha256, rvs_binary, say, wait_for
import netns
from test_ctl import ctl_fails, ctl_json, ctl_ok, no_fake

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
    its not-forwarded-yet warning); IPv4 forwards before and after."""
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
    check(f"tcp:[{VIP6}]:80 is IPv6" in p.stdout + p.stderr,
          f"rvs check says nothing of the IPv6 service: {p.stdout!r} {p.stderr!r}")
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
    counters of `rvs ctl list --stats` agree, and a 5 MB download through
    the VIP is byte-exact."""
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

    size = 5 * 1000 * 1000
    out = os.path.join(env.workdir, "blob6")
    d = env.client("download", f"http://[{VIP6}]/blob?size={size}", "--out", out,
                   "--max-time", "20", timeout=40)
    check(d["ok"], f"download failed: {d['error']}")
    check(d["bytes"] == size and d["sha256"] == expected_sha256(size),
          f"download: {d['bytes']} bytes sha256 {d['sha256']}, want {size} bytes intact")
    say(f"{size} bytes from [{VIP6}] in {d['seconds']}s, intact ({d['tool']})")
    os.unlink(out)
    stats = env.stop_director()
    check(stats.get("conns_created", 0) >= n + 1, f"conns_created {stats.get('conns_created')}")
