"""DR and TUN forwarding end to end (issue 4), on the one-arm topology of
ci/e2e/onearm.py: client, director (one DPDK port) and three real servers on
one bridge; the real servers hold the VIP on lo and answer the client directly.

    dr_balanced[wN]     forward = "dr", wrr 3,2,1: 300 connections 150/100/50,
                        a 50 MB download intact, and the director saw only the
                        client's packets (its rx/tx against the client's own
                        interface counters)
    tun_balanced[wN]    the same with forward = "tun"; every real server runs
                        ci/tundecap.py (the kernel here has no ipip module)
    tun_upload_pmtu[wN] a 5 MB upload through TUN: full-size packets get ICMP
                        frag-needed (1480) from the director, the upload arrives
    mixed_service[wN]   one rr service, per-server forward nat (rs1, which routes
                        the client via the director), dr (rs2), tun (rs3): answers
                        from all three, a download served by each, intact
    check_dr_*, check_tun_*, check_dr_tun_port_mtu   `rvs check` only (no topology)

The e2e tests need the real director: with RVS_E2E_FAKE=1 (a kernel proxy in
the director's place, NAT only) they report SKIP with that reason.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import lib
import onearm
from lib import check, say

VIP = onearm.VIP
NAMES = list(onearm.SERVERS)
BLOB = 50 * 1000 * 1000
MIXED_BLOB = 10 * 1000 * 1000
MSS = 1448                      # payload of a full segment with timestamps (MTU 1500)
_sha_cache = {}


def blob_sha(size):
    if size not in _sha_cache:
        _sha_cache[size] = lib.expected_sha256(size)
    return _sha_cache[size]


# ------------------------------------------------------------------ config
def cores(workers):
    return "0@0,1@1" if workers == 1 else "0@0," + ",".join(f"{i}@1" for i in range(1, workers + 1))


def onearm_config(workers, socket_path, forward, servers, scheduler="wrr", port_extra="", port_name="lan"):
    """`servers`: [(address, port, weight, forward override or None)]."""
    srv = []
    for addr, port, weight, fwd in servers:
        srv.append(f"""
  [[service.server]]
  address = "{addr}"
  port = {port}
  weight = {weight}
""" + (f'  forward = "{fwd}"\n' if fwd else ""))
    return f"""# written by ci/e2e/test_dr_tun.py (one-arm, {workers} worker(s))
[dpdk]
cores = "{cores(workers)}"
workers = {workers}
hugepages = false
memory_mb = 256

[[port]]
name = "{port_name}"
device = "net_af_packet0,iface=dc,qpairs=1"
address = "{onearm.DIRECTOR_ADDR}/{onearm.SUBNET_LEN}"
{port_extra}
[[service]]
vip = "{VIP}"
port = 80
protocol = "tcp"
scheduler = "{scheduler}"
forward = "{forward}"
{''.join(srv)}
[timeouts]
max_connections = 65536

[control]
socket = "{socket_path}"
"""


# ------------------------------------------------------------------ environment
def onearm_setup(env, forward, servers, scheduler="wrr", http_ports=None, tun=(), nat=()):
    """Replace env's (two-arm) topology by a one-arm one, start the real servers
    (HTTP on 80 unless `http_ports` says otherwise), the TUN helpers in `tun`,
    the NAT return route in `nat`, and the director."""
    if env.fake:
        raise lib.Skip("DR/TUN need the real director (RVS_E2E_FAKE=1 puts a NAT-only kernel proxy there)")
    topo = onearm.OneArm()
    env.topo = topo
    topo.up()
    if os.environ.get("RVS_E2E_PCAP") == "1" and shutil.which("tcpdump"):
        # opt-in captures (headers + IPIP inner headers, bounded): the director's
        # switch port and the client
        for ns, dev, name in ((topo.switch, "sw-dir", "director"), (topo.client, topo.client_if, "client")):
            pcap = os.path.join(env.workdir, f"{name}.pcap")
            topo.popen(ns, ["tcpdump", "-n", "-U", "--immediate-mode", "-s", "160", "-c", "500000", "-i", dev,
                            "-w", pcap], stdout=subprocess.DEVNULL, stderr=open(pcap + ".log", "w"))
        time.sleep(0.5)
    for name in nat:
        topo.nat_via_director(name)
    topo.start_realservers(env.workdir, ports=http_ports)
    if tun:
        topo.start_tundecap(env.workdir, list(tun))
    with open(env.cfg, "w") as f:
        f.write(onearm_config(env.workers, os.path.join(env.workdir, "rvs.sock"), forward, servers, scheduler))
    env.director = lib.Director(topo, env.workdir, env.cfg).start()
    t = env.director.wait_ready()
    say(f"one-arm topology {topo.id}, forward {forward}, {env.workers} worker(s), "
        f"director forwarding after {t:.1f}s")
    return topo


def server_tx(topo):
    return {n: topo.link_stats(topo.rs_ns[n], "eth0")["tx_bytes"] for n in NAMES}


def served_by(before, after, size):
    """The server whose eth0 sent at least `size` bytes between two snapshots."""
    grew = {n: after[n] - before[n] for n in NAMES}
    who = [n for n, d in grew.items() if d >= size]
    return (who[0] if len(who) == 1 else None), grew


def download(env, size, max_time=150):
    sha = blob_sha(size)
    out = os.path.join(env.workdir, "blob")
    before = server_tx(env.topo)
    r = env.client("download", f"http://{VIP}/blob?size={size}", "--out", out, "--max-time", str(max_time),
                   timeout=max_time + 30)
    who, grew = served_by(before, server_tx(env.topo), size)
    say(f"download {r['bytes']} bytes in {r['seconds']:.2f}s = {r['MBps']} MB/s ({r['tool']}), "
        f"served by {who} (server tx bytes {grew})")
    check(r["ok"], f"download failed: {r['error']}")
    check(r["bytes"] == size, f"got {r['bytes']} bytes, want {size}")
    check(r["sha256"] == sha, f"sha256 {r['sha256']} != expected {sha}")
    os.unlink(out)
    return who


def director_picks(env):
    """Connections the director scheduled per server (`list --stats`)."""
    v = lib.rvs_ctl_json(os.path.join(env.workdir, "rvs.sock"), "list", "--stats")
    if v is None:
        return None
    return {str(s["address"]): s["conns"] for svc in v["services"] for s in svc["servers"]}


def balanced(env, n=300, want=None):
    before = director_picks(env)
    r = env.client("http-many", VIP, "80", str(n), "--timeout", "5", "--deadline", "150", timeout=180)
    after = director_picks(env)
    say(f"{n} connections in {r['elapsed']:.1f}s: {r['counts']}")
    say("first picks: " + "".join(a[-1] if a else "-" for a in r["answers"][:24]))
    if before is not None and after is not None:
        say(f"director scheduled: {({k: after[k] - before.get(k, 0) for k in after})}")
    check(not r["errors"], f"{len(r['errors'])} failed requests, first: {r['errors'][:3]}")
    if want is not None:
        if r["counts"] != want:
            seq = "".join(a[-1] if a else "-" for a in r["answers"])
            say(f"all picks: {seq}")
        check(r["counts"] == want, f"distribution {r['counts']}, want {want}")
    return r


def only_client_packets(env, stats, reply_packets):
    """The director must have seen the client's packets and nothing of the
    servers' replies: its rx is bounded by what the client sent (plus the
    broadcasts every port of the bridge gets), and far below the number of
    packets of the download's reply direction, which the client received."""
    cl = env.topo.link_stats(env.topo.client, env.topo.client_if)
    rx, tx = stats.get("rx_packets", 0), stats.get("tx_packets", 0)
    drops = lib.drops_total(stats)
    slack = 200            # ARP broadcasts (servers asking for the client, the client for the VIP)
    dc = env.topo.link_stats(env.topo.director, env.topo.dc)
    say(f"client cli0: tx {cl['tx_packets']} rx {cl['rx_packets']} packets; director rx {rx} tx {tx} "
        f"drops {drops} (its veth dc: rx {dc['rx_packets']} tx {dc['tx_packets']}); "
        f"reply direction of the download >= {reply_packets} packets")
    check(cl["rx_packets"] >= reply_packets, f"client received {cl['rx_packets']} packets < {reply_packets}")
    check(rx <= cl["tx_packets"] + slack,
          f"director rx_packets {rx} > client tx {cl['tx_packets']} + {slack}: it saw reply packets")
    check(rx < reply_packets * 0.8,
          f"director rx_packets {rx} not far below the reply direction's {reply_packets} packets")
    check(tx >= (rx - drops) * 0.95 and tx <= rx + slack,
          f"director tx_packets {tx} does not match rx {rx} - drops {drops}: it did not forward one for one")


def ip_csum_ok(h):
    s = sum(int.from_bytes(h[i:i + 2], "big") for i in range(0, len(h), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def parse_xx(text):
    """Frames from `tcpdump -XX` output: [(header line, bytes)]."""
    frames, cur, head = [], None, None
    for line in text.splitlines():
        m = re.match(r"\s+0x([0-9a-f]{4}):\s+((?:[0-9a-f]{2,4} ?)+)", line)
        if m:
            if cur is not None:
                cur += bytes.fromhex(m.group(2).replace(" ", ""))
            continue
        if re.match(r"\d\d:\d\d:\d\d\.\d+ ", line):
            if cur is not None:
                frames.append((head, cur))
            head, cur = line, b""
    if cur is not None:
        frames.append((head, cur))
    return frames


def wire_check(env, name, forward, frames=4):
    """Capture a few director -> `name` frames on the server's eth0 (tcpdump
    -e -n -XX) and check them byte by byte against SPEC §5: Ethernet from the
    director's port MAC to the server's MAC; DR: the client's packet with
    addresses and ports untouched and TTL 64 -> 63; NAT: the same but to
    server:8080; TUN: an outer header
    198.18.0.2 -> server, protocol 4, TTL/TOS/DF copied from the inner one,
    length inner + 20, valid checksums, and the inner packet as DR has it."""
    check(shutil.which("tcpdump") is not None, "tcpdump is missing (ci/setup.sh installs it)")
    topo = env.topo
    dmac = topo.mac(topo.director, topo.dc)
    smac = topo.mac(topo.rs_ns[name], "eth0")
    flt = f"ether src {dmac} and ether dst {smac} and " + (
        "ip proto 4" if forward == "tun" else
        f"dst host {onearm.SERVERS[name]} and tcp dst port 8080" if forward == "nat" else
        f"dst host {VIP} and tcp dst port 80")
    outp = os.path.join(env.workdir, f"wire-{name}.txt")
    with open(outp, "w") as f:
        p = topo.popen(topo.rs_ns[name], ["timeout", "30", "tcpdump", "-e", "-n", "-XX", "-l", "-c", str(frames),
                                          "-i", "eth0", flt], stdout=f, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    env.client("http-many", VIP, "80", "6", "--timeout", "5", "--deadline", "30", timeout=60)
    try:
        p.wait(timeout=40)
    except subprocess.TimeoutExpired:
        p.kill()
    with open(outp) as f:
        text = f.read()
    got = parse_xx(text)
    check(len(got) >= frames, f"captured {len(got)} director->{name} frames, want {frames}:\n{text[-2000:]}")
    cip, vip, sip, dip = (socket.inet_aton(a) for a in (onearm.CLIENT_ADDR, VIP, onearm.SERVERS[name],
                                                          onearm.DIRECTOR_ADDR))
    for head, fr in got[:frames]:
        def bad(what):
            raise AssertionError(f"director -> {name} frame wrong ({forward}): {what}\n  {head}\n  {fr.hex()}")
        if fr[0:6] != bytes.fromhex(smac.replace(":", "")) or fr[6:12] != bytes.fromhex(dmac.replace(":", "")):
            bad("Ethernet addresses are not director port MAC -> server MAC")
        if fr[12:14] != b"\x08\x00":
            bad("ethertype is not IPv4")
        ip = fr[14:]
        if forward == "tun":
            ihl = (ip[0] & 0xF) * 4
            outer, ip = ip[:ihl], ip[ihl:]
            if outer[0] != 0x45 or outer[9] != 4 or outer[12:16] != dip or outer[16:20] != sip:
                bad("outer header is not 4/5, protocol 4, director port address -> server")
            if not ip_csum_ok(outer):
                bad("outer header checksum")
            if (int.from_bytes(outer[2:4], "big") != int.from_bytes(ip[2:4], "big") + 20
                    or outer[8] != ip[8] or outer[1] != ip[1] or (outer[6] & 0x40) != (ip[6] & 0x40)
                    or outer[6] & 0x3F or outer[7]):
                bad("outer length/TTL/TOS/DF/fragment fields do not follow the inner header")
        ihl = (ip[0] & 0xF) * 4
        want_dst, want_port = (sip, 8080) if forward == "nat" else (vip, 80)
        if (ip[12:16] != cip or ip[16:20] != want_dst or ip[9] != 6
                or int.from_bytes(ip[ihl + 2:ihl + 4], "big") != want_port):
            bad(f"packet is not client -> {socket.inet_ntoa(want_dst)}:{want_port} TCP")
        if ip[8] != 63:
            bad(f"TTL {ip[8]}, want 63 (the client sends 64; every method is a routed hop)")
        if not ip_csum_ok(ip[:ihl]):
            bad("IPv4 header checksum")
    h, fr = got[0]
    say(f"wire check {name}: {len(got)} frames ok, first: {h.split(', ethertype')[0]} ... {len(fr)} bytes")
    say(f"  {fr[:14 + (40 if forward == 'tun' else 20)].hex()}")


# ------------------------------------------------------------------ tests
WRR = [(onearm.SERVERS[n], 80, w, None) for n, w in zip(NAMES, (3, 2, 1))]
WANT = {"rs1": 150, "rs2": 100, "rs3": 50}


@lib.e2e(workers=(1, 2), timeout=300)
def dr_balanced(env):
    """DR, wrr 3,2,1: 300 connections 150/100/50, 50 MB intact, no replies through rvs."""
    onearm_setup(env, "dr", WRR)
    balanced(env, 300, WANT)
    wire_check(env, "rs1", "dr")
    download(env, BLOB)
    stats = env.stop_director()
    only_client_packets(env, stats, BLOB // MSS)


@lib.e2e(workers=(1, 2), timeout=300)
def tun_balanced(env):
    """TUN (IPIP, decapsulated by ci/tundecap.py), wrr 3,2,1: 150/100/50, 50 MB intact."""
    onearm_setup(env, "tun", WRR, tun=NAMES)
    balanced(env, 300, WANT)
    wire_check(env, "rs1", "tun")
    download(env, BLOB)
    stats = env.stop_director()
    dec = env.topo.stop_tundecap()
    for n in NAMES:
        say(f"tundecap {n}: {dec.get(n)}")
    for n in NAMES:
        d = dec.get(n)
        check(d is not None, f"tundecap on {n} printed no counters")
        check(d["bad_outer"] == 0 and d["bad_inner"] == 0 and d["write_errors"] == 0,
              f"tundecap on {n}: malformed IPIP from the director: {d['first_error']}")
        check(d["decapsulated"] >= WANT[n] * 3, f"tundecap on {n} decapsulated only {d['decapsulated']}")
        mism = {k: d[k] for k in ("ttl_mismatch", "tos_mismatch", "df_mismatch", "len_mismatch")}
        check(not any(mism.values()), f"tundecap on {n}: outer header does not follow the inner: {mism} "
              f"{d['first_mismatch']}")
        check(set(d["outer_src"]) == {onearm.DIRECTOR_ADDR}, f"outer sources {d['outer_src']}")
        check(set(d["inner_ttl"]) == {"63"}, f"inner TTLs {d['inner_ttl']}, want only 63")
        check(d["icmp_out_dest_unreachs"] == 0,
              f"{n} sent {d['icmp_out_dest_unreachs']} ICMP unreachables (protocol 4 not swallowed)")
    only_client_packets(env, stats, BLOB // MSS)


UPLOAD = 5 * 1000 * 1000


@lib.e2e(workers=(1, 2), timeout=180)
def tun_upload_pmtu(env):
    """TUN: a 5 MB upload sends full-size (1500-byte) packets towards the
    server, 1520 once encapsulated: the director answers them with ICMP
    frag-needed (MTU 1480, SPEC §5), the client's path MTU to the VIP drops
    and the upload arrives intact."""
    topo = onearm_setup(env, "tun", WRR, tun=NAMES)
    path = os.path.join(env.workdir, "upload.bin")
    data = os.urandom(UPLOAD)
    with open(path, "wb") as f:
        f.write(data)
    sha = hashlib.sha256(data).hexdigest()
    t0 = time.monotonic()
    p = topo.nsexec(topo.client, ["curl", "-sS", "--fail", "--max-time", "60", "--connect-timeout", "5",
                                  "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                                  "--data-binary", "@" + path, f"http://{VIP}/upload"], timeout=90, check=False)
    dt = time.monotonic() - t0
    route = topo.ip(topo.client, "route", "get", VIP).stdout.strip().replace("\n", " ")
    say(f"upload: curl exit {p.returncode} in {dt:.2f}s: {p.stdout.strip()[:200]} {p.stderr.strip()[:200]}")
    say(f"client: ip route get {VIP}: {route}")
    check(p.returncode == 0, f"upload failed: curl exit {p.returncode}: {p.stderr.strip()}")
    r = json.loads(p.stdout)
    check(r["bytes"] == UPLOAD and r["sha256"] == sha, f"upload arrived as {r}, want {UPLOAD} bytes sha256 {sha}")
    stats = env.stop_director()
    dec = env.topo.stop_tundecap()
    say(f"director icmp_sent {stats.get('icmp_sent')}, too_big drops {(stats.get('drops') or {}).get('too_big')}; "
        f"tundecap {r['server']}: " + str({k: dec[r['server']][k] for k in ('decapsulated', 'bytes_out', 'bad_outer')}))
    check(stats.get("icmp_sent", 0) >= 1, "the director sent no ICMP frag-needed, yet 1500-byte packets were tunnelled?")
    check("mtu 1480" in route, f"the client's path MTU to the VIP is not 1480: {route}")


@lib.e2e(workers=(1, 2), timeout=300)
def mixed_service(env):
    """rr over rs1 nat (port 8080), rs2 dr, rs3 tun: all answer, each serves a download."""
    servers = [(onearm.SERVERS["rs1"], 8080, 1, "nat"), (onearm.SERVERS["rs2"], 80, 1, "dr"),
               (onearm.SERVERS["rs3"], 80, 1, "tun")]
    onearm_setup(env, "dr", servers, scheduler="rr", http_ports={"rs1": 8080}, tun=["rs3"], nat=["rs1"])
    balanced(env, 30, {n: 10 for n in NAMES})
    for name, fwd in (("rs1", "nat"), ("rs2", "dr"), ("rs3", "tun")):
        wire_check(env, name, fwd)
    # rr: three downloads in a row go to three different servers
    served = [download(env, MIXED_BLOB, max_time=90) for _ in range(3)]
    check(sorted(s for s in served if s) == sorted(NAMES), f"downloads served by {served}, want one each")
    stats = env.stop_director()
    dec = env.topo.stop_tundecap()
    say(f"tundecap rs3: {dec.get('rs3')}")
    d = dec.get("rs3") or {}
    check(d.get("decapsulated", 0) > 0 and d.get("bad_outer", 1) == 0 and d.get("bad_inner", 1) == 0,
          f"tundecap on rs3: {d}")
    # NAT replies pass through the director, DR/TUN replies do not
    cl = env.topo.link_stats(env.topo.client, env.topo.client_if)
    rx = stats.get("rx_packets", 0)
    nat_replies = MIXED_BLOB // MSS
    say(f"client cli0 tx {cl['tx_packets']} rx {cl['rx_packets']}; director rx {rx}; "
        f"one NAT download's replies >= {nat_replies} packets")
    check(rx >= nat_replies, f"director rx {rx} < {nat_replies}: the NAT server's replies did not come back through it")
    check(rx <= cl["tx_packets"] + nat_replies * 1.2 + 400,
          f"director rx {rx}: more than the client's packets and one NAT download's replies")


# ------------------------------------------------------------------ rvs check only
def rvs_check(text):
    d = tempfile.mkdtemp(prefix="rvs-check-")
    try:
        path = os.path.join(d, "rvs.toml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([lib.rvs_binary(), "check", "-c", path], capture_output=True, text=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).strip()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def expect_check(text, want_rc, *needles):
    if not os.access(lib.rvs_binary(), os.X_OK):
        if lib.fake_mode():
            raise lib.Skip(f"`rvs check` needs the real binary, and {lib.rvs_binary()} is missing")
        raise AssertionError(f"{lib.rvs_binary()} missing: cargo build --release -p rvs-cli")
    rc, out = rvs_check(text)
    say(f"rvs check -> exit {rc}: {out.splitlines()[0] if out else '<no output>'}"
        + (f" (+{len(out.splitlines()) - 1} lines)" if len(out.splitlines()) > 1 else ""))
    check(rc == want_rc, f"rvs check exit {rc}, want {want_rc}; output:\n{out}")
    for n in needles:
        check(n in out, f"rvs check output lacks {n!r}:\n{out}")
    if want_rc == 1 and needles:
        # FILE:LINE: key.path: message
        check(re.search(r":\d+: " + re.escape(needles[0]) + ": ", out),
              f"rvs check names {needles[0]} without its line: {out}")
    return out


OFF_LINK = "198.19.7.11"       # on no attached subnet of the one-arm port


def check_cfg(forward, addr=OFF_LINK, port_extra=""):
    return onearm_config(1, "/run/rvs-check.sock", forward, [(addr, 80, 1, None)], "rr", port_extra)


def config_test(fn):
    """Register a `rvs check` test: no topology, no director."""
    def run(env):
        fn(env)
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return lib.e2e(workers=(1,), timeout=60)(run)


@config_test
def check_dr_offlink(env):
    """A DR server on no directly attached subnet: exit 1 at its key path (gateway or not)."""
    expect_check(check_cfg("dr", onearm.SERVERS["rs1"]), 0)
    expect_check(check_cfg("dr"), 1, "service[0].server[0].address", OFF_LINK, "directly attached")
    expect_check(check_cfg("dr", port_extra='gateway = "198.18.0.1"\n'), 1,
                 "service[0].server[0].address", "directly attached")


@config_test
def check_tun_no_route(env):
    """A TUN server off-link with no port gateway: exit 1; with a gateway: exit 0."""
    expect_check(check_cfg("tun"), 1, "service[0].server[0].address", OFF_LINK, "tun")
    expect_check(check_cfg("tun", port_extra='gateway = "198.18.0.1"\n'), 0)


@config_test
def check_dr_tun_port_mtu(env):
    """A port MTU below 576: exit 1 at port[0].mtu; 576 itself is accepted."""
    out = expect_check(check_cfg("tun", onearm.SERVERS["rs1"], port_extra="mtu = 575\n"), 1, "port[0].mtu")
    check("575" in out or "576" in out, f"the message names neither the value nor the bound: {out}")
    expect_check(check_cfg("tun", onearm.SERVERS["rs1"], port_extra="mtu = 576\n"), 0)
