"""ipvsadm's listing options in rvs ctl (issue 14): sorted listing and --nosort,
--service, --thresholds, --persistent-conn, zero --service, set-timeouts and
list --timeout, against a real director with real traffic.

One run with 2 workers (templates and counters are summed over both).
"""

import json
import subprocess
import time

from lib import PY, VIP, check, e2e, say
import netns
from test_ctl import NAMES, ctl_fails, ctl_json, ctl_ok, no_fake, service_of, wait_for

SVC80 = f"tcp:{VIP}:80"
SVC53 = f"udp:{VIP}:53"
SVC443 = f"tcp:{VIP}:443"
RS = netns.SERVERS                      # rs1 .11, rs2 .12, rs3 .13
SOURCES = netns.CLIENT_EXTRA[:6]        # one persistence template each
UDP_SPORT_OLD, UDP_SPORT_NEW = 40054, 40053

UDP_ONCE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(3)
s.sendto(b"ping", (sys.argv[3], 53))
data, peer = s.recvfrom(2048)
print(data.decode(errors="replace"))
"""


def udp_once(env, sport):
    """One datagram to VIP:53 from CLIENT_ADDR:sport (a fixed flow); its answer."""
    p = subprocess.run(["ip", "netns", "exec", env.topo.client, PY, "-c", UDP_ONCE,
                        netns.CLIENT_ADDR, str(sport), VIP],
                       capture_output=True, text=True, timeout=15)
    check(p.returncode == 0 and p.stdout.strip().endswith(":ping"),
          f"udp from port {sport}: exit {p.returncode} {p.stdout!r} {p.stderr[-300:]!r}")
    return p.stdout.strip()


def udp_entry(env, sport):
    conns = ctl_json(env, "list", "--conns", "--service", SVC53)["conns"]
    check(all(c["vport"] == 53 and c["protocol"] == "udp" for c in conns),
          f"list --conns --service {SVC53} shows others: {conns[:3]}")
    mine = [c for c in conns if c["client"] == netns.CLIENT_ADDR and c["cport"] == sport]
    return mine[0] if mine else None


def service_lines(text):
    return [l.split()[0] + " " + l.split()[1] for l in text.splitlines()
            if l.startswith(("TCP  ", "UDP  "))]


def server_lines(text):
    return [l.split()[1] for l in text.splitlines() if l.startswith("  -> ") and
            not l.startswith("  -> RemoteAddress")]


@e2e(workers=(2,), timeout=180)
def ctl_list_options(env):
    """Services and servers added out of order list sorted, --nosort and JSON in
    configuration order; --service shows one (unknown: exit 1); --persistent-conn
    counts the real templates of 6 clients; --thresholds; zero --service zeroes one
    service after real traffic; set-timeouts --udp 2 changes list --timeout, is
    saved, and an idle UDP entry then expires after 2 s (an older one keeps its
    300 s until its next packet)."""
    no_fake()
    env.setup(tcp_extra="persistence_timeout = 60")

    # -- configuration order differs from ipvsadm's order
    ctl_ok(env, "add-service", "--service", SVC443, "--scheduler", "rr")
    for name in ("rs3", "rs1"):
        ctl_ok(env, "add-server", "--service", SVC443, "--server", f"{RS[name]}:8080")
    plain = ctl_ok(env, "list")
    check(service_lines(plain) == [f"TCP {VIP}:80", f"TCP {VIP}:443", f"UDP {VIP}:53"],
          f"list not sorted by protocol, VIP, port:\n{plain}")
    a, b, c = (f"{RS[n]}" for n in ("rs1", "rs2", "rs3"))
    want_sorted = [f"{a}:8080", f"{b}:8080", f"{c}:8080", f"{a}:8080", f"{c}:8080",
                   f"{a}:5353", f"{b}:5353", f"{c}:5353"]
    check(server_lines(plain) == want_sorted, f"servers not sorted:\n{plain}")
    nosort = ctl_ok(env, "list", "--nosort")
    check(service_lines(nosort) == [f"TCP {VIP}:80", f"UDP {VIP}:53", f"TCP {VIP}:443"],
          f"--nosort is not configuration order:\n{nosort}")
    want_config = [f"{a}:8080", f"{b}:8080", f"{c}:8080", f"{a}:5353", f"{b}:5353", f"{c}:5353",
                   f"{c}:8080", f"{a}:8080"]
    check(server_lines(nosort) == want_config, f"--nosort servers:\n{nosort}")
    lj = ctl_json(env, "list")
    got = [f"{d['address']}:{d['port']}" for s in lj["services"] for d in s["servers"]]
    check(got == want_config, f"list --json is not configuration order: {got}")
    say("list: sorted as ipvsadm -L -n; --nosort and --json in configuration order")

    # -- one service, in every listing mode
    one = ctl_ok(env, "list", "--service", SVC443)
    check(service_lines(one) == [f"TCP {VIP}:443"] and server_lines(one) == [f"{a}:8080", f"{c}:8080"],
          f"list --service {SVC443}:\n{one}")
    for mode in ("--stats", "--rate", "--thresholds", "--persistent-conn"):
        t = ctl_ok(env, "list", "--service", SVC443, mode)
        check(service_lines(t) == [f"TCP {VIP}:443"] and len(server_lines(t)) == 2,
              f"list --service {mode}:\n{t}")
    j = ctl_json(env, "list", "--service", SVC53)
    check([s["port"] for s in j["services"]] == [53], f"list --service --json: {j}")
    for args in (["list", "--service", f"tcp:{VIP}:9999"], ["list", "--stats", "--service", f"tcp:{VIP}:9999"],
                 ["list", "--conns", "--service", f"tcp:{VIP}:9999"],
                 ["zero", "--service", f"tcp:{VIP}:9999"]):
        ctl_fails(env, args, 1, f"no service tcp:{VIP}:9999")

    # -- real traffic: 6 clients with persistence on :80, 6 UDP requests on :53
    ctl_ok(env, "zero")
    r = env.client("http-many", VIP, "80", "12", "--sources", ",".join(SOURCES), "--timeout", "5",
                   timeout=90)
    check(not r["errors"] and sum(r["counts"].values()) == 12, f"http: {r}")
    # persistence: each source always on one server
    per_source = {}
    for i, name in enumerate(r["answers"]):
        per_source.setdefault(SOURCES[i % len(SOURCES)], set()).add(name)
    check(all(len(v) == 1 for v in per_source.values()), f"persistence broken: {per_source}")
    u = env.client("udp-many", VIP, "53", "6", "--timeout", "2", timeout=60)
    check(not u["errors"] and sum(u["counts"].values()) == 6, f"udp: {u}")

    # --persistent-conn: the live templates per server, exactly: those
    # list --conns shows (the 6 clients', and the readiness probe's from
    # CLIENT_ADDR), each 6-client template on the server that answered it
    conns = ctl_json(env, "list", "--conns", "--service", SVC80)["conns"]
    tpl = [c for c in conns if c["template"]]
    by_client = {c["client"]: NAMES[c["server"]] for c in tpl}
    check(len(by_client) == len(tpl), f"two templates for one client: {tpl}")
    check({s: by_client.get(s) for s in SOURCES} ==
          {s: next(iter(n)) for s, n in per_source.items()},
          f"templates {by_client} vs the servers that answered {per_source}")
    want = {n: sum(1 for v in by_client.values() if v == n) for n in ("rs1", "rs2", "rs3")}
    check(set(by_client) - set(SOURCES) <= {netns.CLIENT_ADDR}, f"unexpected templates {by_client}")
    lj = ctl_json(env, "list", "--service", SVC80)
    got = {NAMES[d["address"]]: d["persistent_conns"] for d in lj["services"][0]["servers"]}
    check(got == want, f"persistent_conns {got}, templates in the table {want}")
    text = ctl_ok(env, "list", "--persistent-conn", "--service", SVC80)
    check("Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n"
          "  -> RemoteAddress:Port\n" in text and f"TCP  {VIP}:80 wrr persistent 60\n" in text,
          f"--persistent-conn header:\n{text}")
    for d in lj["services"][0]["servers"]:
        line = next(l for l in text.splitlines() if l.startswith(f"  -> {d['address']}:8080 "))
        check(line.split()[2:4] == [str(d["weight"]), str(d["persistent_conns"])],
              f"--persistent-conn line {line!r} vs {d}")
    say(f"--persistent-conn: {got} = the templates of the 6 clients (and the readiness probe), "
        f"each on the server that answered it")

    # --thresholds
    ctl_ok(env, "edit-server", "--service", SVC80, "--server", f"{b}:8080",
           "--upper-threshold", "100", "--lower-threshold", "50")
    text = ctl_ok(env, "list", "--thresholds", "--service", SVC80)
    check("Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n" in text and
          f"  -> {b}:8080             100        50         " in text and
          f"  -> {a}:8080             0          0          " in text, f"--thresholds:\n{text}")

    # zero --service: the UDP service only
    before = ctl_json(env, "list")
    check(service_of(before, SVC53)["conns"] == 6 and service_of(before, SVC80)["conns"] == 12,
          f"before zero --service: {[(s['port'], s['conns']) for s in before['services']]}")
    out = ctl_ok(env, "zero", "--service", SVC53)
    check(f"counters of {SVC53} zeroed" in out, out)
    after = ctl_json(env, "list")
    u53, t80 = service_of(after, SVC53), service_of(after, SVC80)
    keys = ("conns", "in_packets", "out_packets", "in_bytes", "out_bytes")
    check(all(u53[k] == 0 for k in keys) and all(d[k] == 0 for d in u53["servers"] for k in keys),
          f"udp:53 not zeroed: {u53}")
    b80 = service_of(before, SVC80)
    check(all(t80[k] == b80[k] for k in keys) and t80["conns"] == 12 and
          [d["conns"] for d in t80["servers"]] == [d["conns"] for d in b80["servers"]],
          f"tcp:80 changed by zero --service {SVC53}: {t80} vs {b80}")
    stats = ctl_ok(env, "list", "--stats", "--exact", "--service", SVC53)
    check(all(l.split()[2:] == ["0"] * 5 for l in stats.splitlines() if l.startswith(("UDP", "  -> 1"))),
          f"list --stats after zero --service:\n{stats}")
    say(f"zero --service {SVC53}: it reads 0, tcp:80 keeps its {t80['conns']} connections")

    # -- set-timeouts (ipvsadm --set) and list --timeout
    check(ctl_ok(env, "list", "--timeout") == "Timeout (tcp tcpfin udp): 900 120 300\n", "default timeouts")
    udp_once(env, UDP_SPORT_OLD)
    old = udp_entry(env, UDP_SPORT_OLD)
    check(old is not None and old["expires_ms"] > 290_000, f"old udp entry: {old}")
    ctl_fails(env, ["set-timeouts", "--tcp", "0", "--udp", "0"], 1, "nothing to change")
    out = ctl_ok(env, "set-timeouts", "--udp", "2", "--tcpfin", "0")
    check("set timeouts (tcp tcpfin udp): 900 120 2" in out, out)
    check(ctl_ok(env, "list", "--timeout") == "Timeout (tcp tcpfin udp): 900 120 2\n",
          ctl_ok(env, "list", "--timeout"))
    check(json.loads(ctl_ok(env, "list", "--timeout", "--json")) == {"tcp": 900, "tcpfin": 120, "udp": 2},
          "list --timeout --json")
    saved = f"{env.workdir}/saved.toml"
    ctl_ok(env, "save", saved)
    with open(saved) as f:
        text = f.read()
    check("\nudp = 2\n" in text.split("[timeouts]", 1)[1], f"saved [timeouts]:\n{text}")
    # an existing entry keeps its expiry until its next packet; a new one gets 2 s
    old = udp_entry(env, UDP_SPORT_OLD)
    check(old is not None and old["expires_ms"] > 280_000, f"old entry after set-timeouts: {old}")
    t0 = time.monotonic()
    udp_once(env, UDP_SPORT_NEW)
    udp_once(env, UDP_SPORT_OLD)
    for sport in (UDP_SPORT_NEW, UDP_SPORT_OLD):
        e = udp_entry(env, sport)
        check(e is not None and e["expires_ms"] <= 2000, f"udp entry of port {sport}: {e}")
    wait_for("both udp entries expired",
             lambda: udp_entry(env, UDP_SPORT_NEW) is None and udp_entry(env, UDP_SPORT_OLD) is None,
             timeout=8, step=0.25)
    gone = time.monotonic() - t0
    check(gone >= 1.5, f"udp entries gone after {gone:.1f}s, before their 2 s")
    say(f"set-timeouts --udp 2: list --timeout says so, saved; idle udp entries gone {gone:.1f}s "
        f"after their last packet (the older one had {old['expires_ms'] // 1000}s left before it)")
    check(env.director.alive(), "director died")
    env.stop_director()
