"""Director failover and connection sync end to end (issue 11), on ci/netns.py's
HaTopology: two directors (dir1 priority 150, dir2 priority 100, VRRPv3 group
51 every 100 ms on the servers segment, the real servers' gateway 198.19.0.1 a
`virtual_addresses` entry) between a client bridge and a server bridge.

    ha_election           multicast adverts: dir1 master, dir2 backup within 3 s;
                          only dir1 answers ARP for the VIP and the gateway
    ha_takeover_nat       a rate-limited 50 MB download and a 50 ms request loop;
    ha_takeover_dr        kill -9 dir1: the download completes byte-exact through
    ha_takeover_multicast dir2, the longest gap between two successes < 1 s
                          (multicast: peers = [], NAT)
    ha_persistence        persistence templates survive kill -9 of the master
    ha_persistence_bulk   the same with dir2 started after the templates were made:
                          they reach it in its bulk copy
    ha_restart_preempt    dir1 killed, restarted: backup, bulk copy done, preempts
    ha_restart_preempt_dr back; a download across the preemption completes; gap < 1 s
    ha_keepalived_interop keepalived (VRRPv3, unicast) as dir2: BACKUP under rvs;
                          kill -9 rvs: keepalived MASTER (VIP answers ping);
                          restart rvs: it preempts back, the VIP leaves keepalived
    ha_hostile            200 garbage/forged sync datagrams from a real server:
                          all counted in sync_bad, none installed; forged
                          priority-254 adverts from a non-peer: nothing moves
    ha_replay             multicast sync: 20 genuine sync datagrams captured off the
                          wire and replayed: all counted in sync_bad, none installed
    ha_sigterm            SIGTERM of the master (priority 0): dir2 master (its log)
                          within an advert interval + 100 ms, gap < 1 s, download intact
    ha_takeover_ipv6      an IPv6 NAT service on both directors: kill -9 dir1 mid-download
                          from [VIP6]: byte-exact through dir2 (synced IPv6 connection,
                          unsolicited NA for the VIP and the servers' IPv6 gateway)

The directors' exact contract (config, `rvs ctl status --json` fields) is
ci/e2e/lib.py's make_ha_config / HaDirector and SPEC §4 [ha], §7.
"""

import os
import shutil
import time

import lib
import netns
from lib import VIP, check, say

BLOB = 50 * 1024 * 1024            # /blob?size=52428800
_sha = {}
GAP_BAR = 1.0                      # issue 11: max takeover < 1 s with 100 ms adverts


def blob_sha(size):
    if size not in _sha:
        _sha[size] = lib.expected_sha256(size)
    return _sha[size]


# ------------------------------------------------------------------ helpers
def ha_env(env, dr=False, kernel=()):
    """Replace env's topology by an HaTopology (up, real servers started) and
    env.director by an HaGroup (so Env's teardown and failure report cover
    every director and keepalived)."""
    if env.fake:
        raise lib.Skip("failover needs the real director (RVS_E2E_FAKE=1)")
    ok, why = lib.rvs_supports_ha()
    check(ok, f"the rvs binary does not support [ha]: {why}")
    topo = netns.HaTopology(dr=dr)
    env.topo = topo
    env.director = lib.HaGroup()
    topo.up()
    for name in kernel:
        topo.kernel_director(name)
    topo.start_realservers(env.workdir)
    return topo, env.director


def pair(env, forward="nat", unicast=True, **kw):
    topo, group = ha_env(env, dr=(forward == "dr"))
    t0 = time.monotonic()
    dirs = lib.ha_start_pair(topo, env.workdir, group, forward=forward, unicast=unicast, **kw)
    say(f"ha topology {topo.id} ({forward}, {'unicast' if unicast else 'multicast'}): dir1 master, dir2 backup, "
        f"VIP forwarding {time.monotonic() - t0:.1f}s after start")
    return topo, dirs


class Download:
    """A rate-limited download through the VIP running in the background."""

    def __init__(self, env, size=BLOB, rate="5M", max_time=120, host=VIP):
        self.env, self.size = env, size
        self.path = os.path.join(env.workdir, "blob")
        self.json = os.path.join(env.workdir, "download.json")
        self.p = lib.client_popen(env.topo, "download", f"http://{host}/blob?size={size}", "--out", self.path,
                                  "--max-time", str(max_time), "--limit-rate", rate, stdout_path=self.json)
        self.max_time = max_time

    def got(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def wait_bytes(self, n, timeout=20):
        lib.wait_for(lambda: self.got() >= n or self.p.poll() is not None, timeout,
                     what=f"download reaching {n} bytes")
        check(self.p.poll() is None, f"download ended early: {lib.tail(self.json, 3)}")

    def running(self):
        return self.p.poll() is None

    def finish(self):
        try:
            self.p.wait(timeout=self.max_time + 20)
        except Exception:
            self.p.kill()
            raise AssertionError("download did not finish")
        r = lib.read_json_output(self.json)
        say(f"download: {r['bytes']} bytes in {r['seconds']:.1f}s = {r['MBps']} MB/s")
        check(r["ok"], f"download failed: {r['error']} after {r['bytes']} bytes")
        check(r["bytes"] == self.size, f"download got {r['bytes']} bytes, want {self.size}")
        check(r["sha256"] == blob_sha(self.size), f"download sha256 {r['sha256']} != {blob_sha(self.size)}")
        os.unlink(self.path)
        return r


class Loop:
    """nsclient http-loop through the VIP (one GET every 50 ms) until stop()."""

    def __init__(self, env, interval=0.05, duration=90):
        self.stopf = os.path.join(env.workdir, "loop.stop")
        self.json = os.path.join(env.workdir, "loop.json")
        if os.path.exists(self.stopf):
            os.unlink(self.stopf)
        self.p = lib.client_popen(env.topo, "http-loop", VIP, "80", "--interval", str(interval),
                                  "--duration", str(duration), "--stop-file", self.stopf, "--timeout", "3",
                                  stdout_path=self.json)

    def stop(self):
        open(self.stopf, "w").close()
        self.p.wait(timeout=30)
        r = lib.read_json_output(self.json)
        return r


def report_gap(r, t_event, what):
    rel = (r["gap_start"] - t_event) if r["gap_start"] else None
    say(f"request loop: {r['ok']}/{r['sent']} ok, {r['failed']} failed; longest gap {r['max_gap'] * 1000:.0f} ms "
        f"({'starting %+.0f ms from the %s' % (rel * 1000, what) if rel is not None else 'n/a'}); "
        f"served {r['served']}; top gaps ms {[round(g[0] * 1000) for g in r['top_gaps']]}")
    if r["failures"]:
        say("failed requests (start relative to the %s): " % what +
            "; ".join(f"started {(ts - t_event) * 1000:+.0f} ms, established "
                      f"{'never' if tc is None else '%+.0f ms' % ((tc - t_event) * 1000)}: {msg}"
                      for ts, msg, tc in r["failures"][:5]))
    return r["max_gap"]


def check_failures(r, t_event, what, young=0.1, max_n=3):
    """Loop requests may fail at a takeover only if their connection was young
    when the master went away: established (as the client saw it) less than
    `young` s before `t_event`, or never established and started less than
    0.5 s before it (SPEC §7: a connection is on the backup within 20 ms of
    going ESTABLISHED; the margin is for this 2-CPU machine's stalls)."""
    bad = []
    for ts, m, tc in r["failures"]:
        ok = (tc is not None and tc >= t_event - young) or (tc is None and ts >= t_event - 0.5)
        if not ok:
            bad.append((ts, m, tc))
    check(not bad and r["failed"] <= max_n,
          f"{r['failed']} loop requests failed; lost although established more than {young * 1000:.0f} ms before "
          f"the {what}: " + "; ".join(
              f"started {(ts - t_event) * 1000:+.0f} ms, established "
              f"{'never' if tc is None else '%+.0f ms' % ((tc - t_event) * 1000)}: {m}" for ts, m, tc in bad[:5]))


def arp_macs(env, ns, iface, target):
    r = lib.ns_client(env.topo, ns, "arp-probe", "--iface", iface, "--target", target, "--count", "3",
                      "--gap", "0.1", "--wait", "0.4", timeout=30)
    return set(r["macs"])


def check_arp_owner(env, name, what=""):
    """Only director `name` answers ARP for the VIP (client side) and the
    gateway (server side)."""
    topo = env.topo
    mc, ms = topo.mac(topo.dirs[name], topo.dc), topo.mac(topo.dirs[name], topo.ds)
    vip = arp_macs(env, topo.client, topo.client_if, VIP)
    gw = arp_macs(env, topo.rs_ns["rs1"], "eth0", lib.HA_GATEWAY)
    say(f"ARP{what}: {VIP} answered by {sorted(vip)} ({name} dc {mc}); {lib.HA_GATEWAY} by {sorted(gw)} "
        f"({name} ds {ms})")
    check(vip == {mc}, f"ARP for {VIP} answered by {sorted(vip)}, want only {name}'s {mc}")
    check(gw == {ms}, f"ARP for {lib.HA_GATEWAY} answered by {sorted(gw)}, want only {name}'s {ms}")


def ha_line(d):
    st = d.status() or {}
    ha = st.get("ha") or {}
    keys = ("priority", "master", "adverts_sent", "adverts_received", "adverts_ignored", "sync_sent",
            "sync_received", "sync_bad", "conns_synced", "bulk", "last_takeover")
    return f"{d.name}: role {st.get('role')} " + " ".join(f"{k}={ha.get(k)}" for k in keys)


def role_changes(d):
    return lib.role_changes(d.log_text())


def watch_roles(dirs, secs, interval=0.05):
    """Poll both directors' roles for `secs`: [(t, {name: role})] on change."""
    seen, last = [], None
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        cur = {n: d.role() for n, d in dirs.items()}
        if cur != last:
            seen.append((time.time(), cur))
            last = cur
        time.sleep(interval)
    return seen


# ------------------------------------------------------------------ 1. election
@lib.e2e(workers=(1,), timeout=120)
def ha_election(env):
    """Multicast adverts: dir1 (150) master, dir2 (100) backup within 3 s; only dir1 answers ARP."""
    topo, group = ha_env(env)
    dirs = lib.ha_start_pair(topo, env.workdir, group, unicast=False, wait=False)
    t_start = time.time()
    history, last = [], None
    t_up = None
    stable_since = None
    want = {"dir1": ("master", "198.19.0.2"), "dir2": ("backup", "198.19.0.2")}

    def settled():
        """dir1 master, dir2 backup, both naming dir1 as master, for 1 s in a row."""
        nonlocal last, t_up, stable_since
        for d in dirs.values():
            if not d.alive():
                raise AssertionError(f"{d.name} exited ({d.proc.returncode})")
        sts = {n: d.status() for n, d in dirs.items()}
        cur = {n: ((st or {}).get("role"), ((st or {}).get("ha") or {}).get("master")) for n, st in sts.items()}
        if cur != last:
            history.append((round(time.time() - t_start, 2), {n: c[0] for n, c in cur.items()}))
            last = cur
            stable_since = time.time() if cur == want else None
        if t_up is None and all(c[0] for c in cur.values()):
            t_up = time.time()
        return stable_since is not None and time.time() - stable_since >= 1.0

    lib.wait_for(settled, 30, interval=0.02, what="dir1 master and dir2 backup (stable for 1 s)")
    say(f"roles over time (s after start): {history}")
    t_settled = stable_since
    say(f"both control sockets up {t_up - t_start:.2f}s after start; dir1 master / dir2 backup "
        f"{t_settled - t_up:.2f}s later")
    check(t_settled - t_up <= 3.0, f"election took {t_settled - t_up:.2f}s after both directors were up, want <= 3 s")
    dual = [h for h in history if list(h[1].values()).count("master") > 1]
    if dual:
        say(f"NOTE: both directors master for a moment during the cold start: {dual}")
    st1, st2 = dirs["dir1"].status(), dirs["dir2"].status()
    for d in dirs.values():
        say(ha_line(d))
    for k in ("priority", "master", "adverts_sent", "adverts_received", "adverts_ignored", "sync_sent",
              "sync_received", "sync_bad", "conns_synced", "bulk", "last_takeover"):
        check(k in (st1.get("ha") or {}), f"status --json ha object lacks {k!r}: {st1.get('ha')}")
    check(st1["ha"]["priority"] == 150 and st2["ha"]["priority"] == 100,
          f"priorities {st1['ha']['priority']}/{st2['ha']['priority']}")
    check(st2["ha"]["master"] == "198.19.0.2", f"dir2 thinks the master is {st2['ha']['master']}")
    a1, a2 = st1["ha"], st2["ha"]
    check(a1["adverts_sent"] >= 5, f"dir1 sent {a1['adverts_sent']} adverts")
    check(a2["adverts_received"] >= 5, f"dir2 received {a2['adverts_received']} adverts")
    lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                 10, what="VIP forwarding")
    check_arp_owner(env, "dir1")
    r = env.client("http-many", VIP, "80", "30", "--timeout", "3", "--deadline", "30", timeout=60)
    say(f"30 requests through the VIP: {r['counts']}")
    check(not r["errors"], f"requests failed: {r['errors'][:3]}")
    lines = [l for l in dirs["dir1"].log_text().lower().splitlines() if "role" in l and "master" in l]
    check(lines, "dir1 logged no role change (no stderr line with 'role' and 'master')")
    say(f"dir1 logged: {lines[-1].strip()[:160]}")


# ------------------------------------------------------------------ 2. takeover
def takeover(env, forward, unicast=True):
    topo, dirs = pair(env, forward, unicast=unicast)
    dl = Download(env, rate="5M")
    dl.wait_bytes(4 << 20)
    loop = Loop(env)
    time.sleep(1.5)
    before = dirs["dir2"].ha()
    say(f"before the kill: {ha_line(dirs['dir1'])}")
    say(f"before the kill: {ha_line(dirs['dir2'])}")
    check(before.get("conns_synced", 0) >= 1, f"dir2 has no synced connection before the kill: {before}")
    # gratuitous ARP from the new master, seen by the client (VIP) and rs1 (gateway)
    garp = {}
    for who, ns, dev, target in (("client", topo.client, topo.client_if, VIP),
                                 ("rs1", topo.rs_ns["rs1"], "eth0", lib.HA_GATEWAY)):
        garp[who] = (os.path.join(env.workdir, f"garp-{who}.json"), target)
        lib.ns_client_popen(topo, ns, "arp-probe", "--iface", dev, "--target", target, "--count", "0",
                            "--wait", "7.5", "--any-op", "--ready-file", garp[who][0] + ".ready",
                            stdout_path=garp[who][0])
    lib.wait_for(lambda: all(os.path.exists(p + ".ready") for p, _ in garp.values()), 10,
                 what="gratuitous ARP watchers listening")
    t_kill = dirs["dir1"].kill9()
    got = dl.got()
    _, dt = dirs["dir2"].wait_role("master", 5)
    say(f"kill -9 dir1 at {got} downloaded bytes; dir2 status master after {time.time() - t_kill:.2f}s")
    check(dl.running(), "the download ended at the takeover")
    dl.finish()
    time.sleep(0.5)
    r = loop.stop()
    gap = report_gap(r, t_kill, "kill")
    ch = [c for c in role_changes(dirs["dir2"]) if c[2] == "master" and c[0] >= t_kill - 0.05]
    check(ch, f"dir2 logged no takeover: {role_changes(dirs['dir2'])}")
    t_over = ch[0][0]
    say(f"dir2 logged '{ch[0][1]} -> master ({ch[0][3]})' {(t_over - t_kill) * 1000:.0f} ms after the kill")
    lib.wait_for(lambda: all(os.path.exists(p) and os.path.getsize(p) > 0 for p, _ in garp.values()), 10,
                 what="gratuitous ARP watchers done")
    for who, (path, target) in garp.items():
        g = lib.read_json_output(path)
        dev_ = topo.dc if who == "client" else topo.ds
        mac2 = topo.mac(topo.dirs["dir2"], dev_)
        ts = [t - t_over for t in g["times"].get(mac2, [])]
        first = [t for t in ts if -0.05 <= t <= 1.0]
        again = [t for t in ts if 4.0 <= t <= 6.5]
        say(f"gratuitous ARP for {target} from dir2 seen by {who}: {len(ts)} at "
            f"{[round(t, 2) for t in ts]} s from the takeover; other senders {[m for m in g['macs'] if m != mac2]}")
        check(first, f"no gratuitous ARP for {target} from dir2 within 1 s of its takeover (seen by {who})")
        check(again, f"no repeated gratuitous ARP for {target} from dir2 4-6.5 s after its takeover "
              f"(keepalived's garp_master_refresh-like second round; seen by {who})")
    say(ha_line(dirs["dir2"]))
    check(gap < GAP_BAR, f"takeover gap {gap * 1000:.0f} ms >= {GAP_BAR * 1000:.0f} ms")
    check(r["ok"] >= r["sent"] * 0.5, f"only {r['ok']} of {r['sent']} loop requests succeeded")
    check_failures(r, t_kill, "kill")
    # new connections are scheduled normally by the new master
    r = env.client("http-many", VIP, "80", "9", "--timeout", "3", "--deadline", "30", timeout=60)
    check(not r["errors"], f"new requests through dir2 failed: {r['errors'][:3]}")
    say(f"new requests through dir2: {r['counts']}")


@lib.e2e(workers=(1,), timeout=150)
def ha_takeover_nat(env):
    """NAT: kill -9 the master mid-download; byte-exact through dir2, gap < 1 s."""
    takeover(env, "nat")


@lib.e2e(workers=(1,), timeout=150)
def ha_takeover_dr(env):
    """DR: kill -9 the master mid-download; byte-exact through dir2, gap < 1 s."""
    takeover(env, "dr")


@lib.e2e(workers=(1,), timeout=150)
def ha_takeover_multicast(env):
    """NAT with peers = [] (adverts to 224.0.0.18, sync to its group): the same as ha_takeover_nat."""
    takeover(env, "nat", unicast=False)


@lib.e2e(workers=(1,), timeout=150)
def ha_persistence(env):
    """persistence_timeout = 300: 12 client addresses each stick to one server;
    after kill -9 of the master, fresh connections from each address reach the
    same server through dir2 (persistence templates are synced)."""
    svc = "persistence_timeout = 300\n"
    topo, dirs = pair(env, "nat", cfg_kw={"dir1": {"service_extra": svc}, "dir2": {"service_extra": svc}})
    sources = [f"198.18.0.{i}" for i in range(11, 23)]

    def mapping(order):
        return persist_mapping(env, order)

    before = mapping(sources)
    say(f"persistence before: {sorted(set(before.values()))} over {len(before)} sources "
        f"({ {n: list(before.values()).count(n) for n in sorted(set(before.values()))} })")
    check(len(set(before.values())) >= 2, f"all sources on one server, the test proves nothing: {before}")
    time.sleep(0.5)
    say(ha_line(dirs["dir2"]))
    dirs["dir1"].kill9()
    dirs["dir2"].wait_role("master", 5)
    lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                 10, what="VIP forwarding through dir2")
    # another order, after a source dir2 has never seen: a fresh wrr pass would
    # not give the same mapping (the templates must)
    after = mapping(["198.18.0.40"] + sources[::-1])
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    say(f"after the takeover: {len(before) - len(moved)}/{len(before)} sources on the same server; moved {moved}")
    check(not moved, f"persistence lost at the takeover for {len(moved)} sources: {moved}")


def persist_mapping(env, order):
    """Two rounds over `order` (source addresses): source -> server."""
    r = env.client("http-many", VIP, "80", str(len(order) * 2), "--sources", ",".join(order),
                   "--timeout", "3", "--deadline", "60", timeout=90)
    check(not r["errors"], f"requests failed: {r['errors'][:3]}")
    m = {}
    for i, a in enumerate(r["answers"]):
        m.setdefault(order[i % len(order)], set()).add(a)
    check(all(len(v) == 1 for v in m.values()), f"a source reached two servers: {m}")
    return {k: next(iter(v)) for k, v in m.items()}


@lib.e2e(workers=(1,), timeout=150)
def ha_persistence_bulk(env):
    """persistence_timeout = 300, dir2 started only after 12 client addresses
    made their templates on dir1 (none streamed to it): its bulk copy carries
    them, and after kill -9 of dir1 every address reaches the same server
    through dir2."""
    svc = "persistence_timeout = 300\n"
    topo, dirs = pair(env, "nat", start=("dir1",),
                      cfg_kw={"dir1": {"service_extra": svc}, "dir2": {"service_extra": svc}})
    sources = [f"198.18.0.{i}" for i in range(11, 23)]
    before = persist_mapping(env, sources)
    say(f"persistence before: { {n: list(before.values()).count(n) for n in sorted(set(before.values()))} }")
    check(len(set(before.values())) >= 2, f"all sources on one server, the test proves nothing: {before}")
    # dir1's kernel queues the sync datagrams to the absent dir2 while it
    # resolves 198.19.0.3 (and would deliver them if dir2 answered in time):
    # let that resolution fail first, so only the bulk copy can bring them.
    time.sleep(6)
    dirs["dir2"].start()
    dirs["dir2"].wait_role("backup", 30)
    # (dir2 may become master for a moment at start, before dir1's kernel has
    # resolved it again, and be preempted: it then asks for the copy as well)
    lib.wait_for(lambda: (dirs["dir2"].ha().get("bulk") or {}).get("state") == "done", 20,
                 what="dir2's bulk copy done")
    say(f"dir2's roles: {[c[1:3] for c in role_changes(dirs['dir2'])]}")
    say(ha_line(dirs["dir2"]))
    bulk = dirs["dir2"].ha()["bulk"]
    check(bulk["records"] >= len(sources), f"the bulk copy carried {bulk['records']} records, "
          f"fewer than the {len(sources)} templates")
    conns = (lib.rvs_ctl_json(dirs["dir2"].sock, "list", "--conns") or {}).get("conns") or []
    names = {a: n for n, a in netns.HA_SERVERS.items()}
    tpl = {c["client"]: names.get(c["server"]) for c in conns if c.get("template")}
    say(f"dir2 lists {len(tpl)} templates: {sorted(tpl)}")
    want = sorted(sources + [netns.CLIENT_ADDR])      # + the probe's, from pair()
    check(sorted(tpl) == want, f"dir2's templates are for {sorted(tpl)}, want {want}")
    check(all(tpl[a] == before[a] for a in sources), f"dir2's templates {tpl} != the mapping {before}")
    dirs["dir1"].kill9()
    dirs["dir2"].wait_role("master", 5)
    lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                 10, what="VIP forwarding through dir2")
    after = persist_mapping(env, ["198.18.0.40"] + sources[::-1])
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    say(f"after the takeover: {len(before) - len(moved)}/{len(before)} sources on the same server; moved {moved}")
    check(not moved, f"persistence lost at the takeover for {len(moved)} sources: {moved}")


# ------------------------------------------------------------------ 3. restart + preemption
def restart_preempt(env, forward):
    topo, dirs = pair(env, forward)
    d1, d2 = dirs["dir1"], dirs["dir2"]
    d1.kill9()
    d2.wait_role("master", 5)
    dl = Download(env, rate="4M")           # ~13 s: spans dir1's start, bulk copy and preemption
    dl.wait_bytes(2 << 20)
    loop = Loop(env)
    time.sleep(1.0)
    t_restart = time.time()
    d1.start()
    seen, last = [], None
    t_master = None

    def preempted():
        nonlocal last, t_master
        if not d1.alive():
            raise AssertionError(f"dir1 exited ({d1.proc.returncode}) after its restart")
        st = d1.status()
        if not st:
            return False
        ha = st.get("ha") or {}
        cur = (st.get("role"), (ha.get("bulk") or {}).get("state"), (ha.get("bulk") or {}).get("records"))
        if cur != last:
            seen.append((round(time.time() - t_restart, 2), cur))
            last = cur
        if cur[0] == "master":
            t_master = time.time()
            return True
        return False

    lib.wait_for(preempted, 30, interval=0.02, what="dir1 master again after its restart")
    say(f"dir1 after the restart (s, (role, bulk state, bulk records)): {seen}")
    check(seen[0][1][0] in ("init", "backup"), f"dir1 came up {seen[0][1][0]}, want init/backup first")
    first_master = [s for s in seen if s[1][0] == "master"][0]
    check(first_master[1][1] == "done", f"dir1 became master with bulk state {first_master[1][1]}, want done")
    check((first_master[1][2] or 0) >= 1, f"dir1's bulk copy had {first_master[1][2]} records; the download's "
          "connection at least was on dir2")
    d2.wait_role("backup", 5)
    check(dl.running(), "the download ended at the preemption")
    dl.finish()
    time.sleep(0.5)
    r = loop.stop()
    gap = report_gap(r, t_master, "preemption (dir1 status master)")
    if r["gap_start"]:
        say(f"(the longest gap starts {(r['gap_start'] - t_restart) * 1000:+.0f} ms from dir1's restart)")
    say(ha_line(d1))
    say(ha_line(d2))
    check(gap < GAP_BAR, f"preemption gap {gap * 1000:.0f} ms >= {GAP_BAR * 1000:.0f} ms")
    ch = [c for c in role_changes(d1) if c[2] == "master" and c[0] >= t_restart]
    t_pre = ch[0][0] if ch else t_master
    check_failures(r, t_pre, "preemption")
    check(d2.role() == "backup", f"dir2 ends {d2.role()}, want backup")
    check_arp_owner(env, "dir1", " after the preemption")


@lib.e2e(workers=(1,), timeout=180)
def ha_restart_preempt(env):
    """NAT: dir1 killed and restarted: backup, bulk copy, preempts back; a download across it survives."""
    restart_preempt(env, "nat")


@lib.e2e(workers=(1,), timeout=180)
def ha_restart_preempt_dr(env):
    """DR: dir1 killed and restarted: backup, bulk copy, preempts back; a download across it survives."""
    restart_preempt(env, "dr")


# ------------------------------------------------------------------ 4. keepalived interop
KEEPALIVED_SYNC = True     # rvs keeps sync = true: its bulk request is never answered and it
                           # must preempt after a bounded wait (SPEC §7, the lead's contract)


@lib.e2e(workers=(1,), timeout=180)
def ha_keepalived_interop(env):
    """keepalived (VRRPv3, unicast) as dir2: backup under rvs, master when rvs dies, backup again after."""
    if shutil.which("keepalived") is None:
        raise lib.Skip("keepalived is not installed (ci/setup.sh)")
    topo, group = ha_env(env, kernel=("dir2",))
    dirs = lib.ha_start_pair(topo, env.workdir, group, sync=KEEPALIVED_SYNC, start=("dir1",), wait=False)
    d1 = dirs["dir1"]
    ka = group.add(lib.Keepalived(topo, env.workdir, "dir2"))
    _, dt = d1.wait_role("master", 20, what="rvs alone becoming master")
    say(f"rvs dir1 alone: master {dt:.1f}s after its control socket answered")
    ka.start()
    time.sleep(2.0)
    say(f"keepalived: state {ka.state()}, VIPs held {ka.owns_vips()}")
    check(ka.state() == "BACKUP", f"keepalived is {ka.state()} under rvs (priority 150), want BACKUP")
    check("Entering MASTER STATE" not in ka.log_text(), "keepalived was MASTER while rvs was master")
    check(not ka.owns_vips(), f"keepalived holds {ka.owns_vips()} while backup")
    check(d1.role() == "master", f"rvs is {d1.role()} next to a backup keepalived")
    lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                 10, what="VIP forwarding through rvs")
    vip = arp_macs(env, topo.client, topo.client_if, VIP)
    check(vip == {topo.mac(topo.dirs["dir1"], topo.dc)}, f"ARP for the VIP answered by {vip}")

    # kill rvs: keepalived takes over
    t_kill = d1.kill9()
    lib.wait_for(lambda: ka.state() == "MASTER" and len(ka.owns_vips()) == 2, 5,
                 what="keepalived MASTER holding the VIP and the gateway")
    say(f"kill -9 rvs: keepalived MASTER with {ka.owns_vips()} after {time.time() - t_kill:.2f}s")
    r = env.client("icmp-loop", VIP, "--interval", "0.05", "--duration", "1", timeout=30)
    say(f"ping the VIP (keepalived's kernel): {r['ok']}/{r['sent']} answered")
    check(r["ok"] >= r["sent"] - 2 and r["ok"] > 0, f"the VIP does not answer ping under keepalived: {r}")

    # restart rvs: it preempts back
    t_restart = time.time()
    d1.start()
    _, dt = d1.wait_role("master", 30, what="rvs preempting keepalived")
    say(f"rvs restarted: master {time.time() - t_restart:.1f}s after its start "
        f"({'sync on: bulk copy never answered' if KEEPALIVED_SYNC else 'sync off'})")
    lib.wait_for(lambda: ka.state() == "BACKUP" and not ka.owns_vips(), 5,
                 what="keepalived BACKUP with no VIP")
    say(f"keepalived: {ka.state()}, VIPs held {ka.owns_vips()}")
    say(ha_line(d1))
    check(d1.ha().get("adverts_received", 0) >= 1, "rvs received none of keepalived's adverts")
    lib.wait_for(lambda: (lib.client(topo, "probe", VIP, "80", "--total", "1", check=False) or {}).get("ok"),
                 10, what="VIP forwarding through rvs again")
    r = env.client("http-many", VIP, "80", "9", "--timeout", "3", "--deadline", "30", timeout=60)
    check(not r["errors"], f"requests through rvs after the preemption failed: {r['errors'][:3]}")
    vip = arp_macs(env, topo.client, topo.client_if, VIP)
    check(vip == {topo.mac(topo.dirs["dir1"], topo.dc)}, f"ARP for the VIP answered by {vip} after the preemption")
    say(f"keepalived transitions: {[l.split(': ', 1)[-1] for l in ka.log_text().splitlines() if 'Entering' in l]}")


# ------------------------------------------------------------------ 5. hostile segment
@lib.e2e(workers=(1,), timeout=150)
def ha_hostile(env):
    """Forged sync datagrams all counted in sync_bad, none installed; forged adverts move nothing."""
    topo, dirs = pair(env, "nat")
    d1, d2 = dirs["dir1"], dirs["dir2"]
    r = env.client("http-many", VIP, "80", "6", "--timeout", "3", "--deadline", "30", timeout=60)
    check(not r["errors"], f"requests failed: {r['errors'][:3]}")
    time.sleep(0.5)
    b1, b2 = d1.ha(), d2.ha()
    g = lib.ns_client(topo, topo.rs_ns["rs1"], "sync-garbage", "--dst", "198.19.0.2",
                      "--port", str(lib.HA_SYNC_PORT), "--count", "200", "--spoof", "198.19.0.3",
                      "--spoof-every", "2", timeout=60)
    say(f"sync garbage from rs1: {g['sent']} datagrams ({g['spoofed']} with the peer's source 198.19.0.3) "
        f"kinds {g['kinds']} errors {g['errors']}")
    check(g["sent"] == 200, f"sent {g['sent']} of 200")
    lib.wait_for(lambda: d1.ha().get("sync_bad", 0) - b1.get("sync_bad", 0) >= 200, 5, interval=0.1,
                 what="dir1 sync_bad +200")
    time.sleep(0.5)
    a1, a2 = d1.ha(), d2.ha()
    say(f"dir1 sync_bad {b1.get('sync_bad')} -> {a1.get('sync_bad')}, conns_synced {b1.get('conns_synced')} -> "
        f"{a1.get('conns_synced')}; dir2 conns_synced {b2.get('conns_synced')} -> {a2.get('conns_synced')}")
    check(a1["sync_bad"] - b1["sync_bad"] == 200, f"dir1 sync_bad rose by {a1['sync_bad'] - b1['sync_bad']}, want 200")
    check(a1["conns_synced"] == b1["conns_synced"], "dir1 installed something from the garbage")
    check(a2["conns_synced"] == b2["conns_synced"], "dir2's synced connections moved during the garbage")

    # forged adverts from a non-peer, priority 254, unicast and multicast
    f = lib.ns_client(topo, topo.rs_ns["rs1"], "vrrp-forge", "--iface", "eth0", "--dst", "198.19.0.2,224.0.0.18",
                      "--priority", "254", "--count", "10", "--gap", "0.05", timeout=30)
    say(f"forged adverts from rs1: {f['sent']} (priority 254, vrid 51, {f['addrs']})")
    seen = watch_roles(dirs, 1.5)
    say(f"roles during/after: {[s[1] for s in seen]}")
    check(all(s[1] == {"dir1": "master", "dir2": "backup"} for s in seen), f"roles moved: {seen}")
    c1, c2 = d1.ha(), d2.ha()
    di1 = c1["adverts_ignored"] - a1.get("adverts_ignored", 0)
    di2 = c2["adverts_ignored"] - a2.get("adverts_ignored", 0)
    say(f"adverts_ignored: dir1 +{di1}, dir2 +{di2} (20 sent to dir1: 10 unicast + 10 multicast; "
        "dir2 saw the 10 multicast)")
    check(di1 >= 10, f"dir1 adverts_ignored rose by {di1}, want >= 10 (the unicast ones at least)")
    r = env.client("http-many", VIP, "80", "6", "--timeout", "3", "--deadline", "30", timeout=60)
    check(not r["errors"], f"requests after the hostile input failed: {r['errors'][:3]}")
    check(d1.role() == "master" and d2.role() == "backup", "roles after the hostile input")


@lib.e2e(workers=(1,), timeout=120)
def ha_replay(env):
    """Multicast sync floods the segment: a real server captures 20 genuine
    sync datagrams of dir1 and replays them byte for byte (dir1's source, the
    authentic MAC): dir2 counts every one in sync_bad, installs none."""
    topo, dirs = pair(env, "nat", unicast=False)
    d2 = dirs["dir2"]
    go = os.path.join(env.workdir, "replay.go")
    outp = os.path.join(env.workdir, "replay.json")
    sniff = lib.ns_client_popen(topo, topo.rs_ns["rs1"], "sync-replay", "--iface", "eth0",
                                "--port", str(lib.HA_SYNC_PORT), "--src", "198.19.0.2", "--count", "20",
                                "--sniff-time", "20", "--go-file", go, "--go-timeout", "40", stdout_path=outp)
    time.sleep(0.5)
    r = env.client("http-many", VIP, "80", "80", "--timeout", "3", "--deadline", "30", timeout=60)
    check(not r["errors"], f"requests failed: {r['errors'][:3]}")
    lib.wait_for(lambda: os.path.exists(go + ".captured") or sniff.poll() is not None, 25,
                 what="20 sync datagrams captured at rs1")
    time.sleep(1.5)                      # the sync of those requests is over
    before = d2.ha()
    open(go, "w").close()
    sniff.wait(timeout=30)
    rep = lib.read_json_output(outp)
    say(f"rs1 captured {rep['captured']} sync datagrams of dir1 (sizes {rep['sizes']}), replayed {rep['replayed']} "
        f"to {rep['destinations']}")
    # (the sync batches records, so how many datagrams the requests make varies:
    # every one captured must be replayed, and at least 10)
    n = rep["captured"]
    check(10 <= n <= 20 and rep["replayed"] == n, f"capture/replay: {rep}")
    lib.wait_for(lambda: d2.ha().get("sync_bad", 0) - before.get("sync_bad", 0) >= n, 5, interval=0.1,
                 what=f"dir2 sync_bad +{n}")
    time.sleep(0.3)
    after = d2.ha()
    say(f"dir2: sync_bad {before['sync_bad']} -> {after['sync_bad']}, conns_synced {before['conns_synced']} -> "
        f"{after['conns_synced']}, sync_received {before['sync_received']} -> {after['sync_received']}")
    check(after["sync_bad"] - before["sync_bad"] == n, f"dir2 sync_bad rose by {after['sync_bad'] - before['sync_bad']}, want {n}")
    check(after["conns_synced"] == before["conns_synced"], "dir2 installed replayed records")


# ------------------------------------------------------------------ 6. clean shutdown
@lib.e2e(workers=(1,), timeout=150)
def ha_sigterm(env):
    """SIGTERM the master mid-download: priority 0, dir2 master at once, download intact, gap < 1 s."""
    topo, dirs = pair(env, "nat")
    d1, d2 = dirs["dir1"], dirs["dir2"]
    dl = Download(env, rate="5M")
    dl.wait_bytes(4 << 20)
    loop = Loop(env)
    time.sleep(1.5)
    import signal as _signal
    t_term = time.time()
    d1.proc.send_signal(_signal.SIGTERM)
    st, _ = d2.wait_role("master", 5)
    took = time.time() - t_term
    d1.proc.wait(timeout=20)
    say(f"dir1 exit {d1.proc.returncode}")
    ch = [c for c in role_changes(d2) if c[2] == "master" and c[0] >= t_term - 0.05]
    check(ch, f"dir2 logged no role change to master after the SIGTERM: {role_changes(d2)}")
    latency = ch[0][0] - t_term
    say(f"SIGTERM dir1: dir2 logged '{ch[0][1]} -> master ({ch[0][3]})' {latency * 1000:.0f} ms later "
        f"(status showed master after {took * 1000:.0f} ms; advert interval {lib.HA_ADVERT_MS} ms)")
    check(d1.proc.returncode == 0, f"dir1 exit code {d1.proc.returncode} after SIGTERM, want 0")
    check(dl.running(), "the download ended at the takeover")
    dl.finish()
    time.sleep(0.5)
    r = loop.stop()
    gap = report_gap(r, t_term, "SIGTERM")
    say(ha_line(d2))
    bar = lib.HA_ADVERT_MS / 1000 + 0.1
    check(latency < bar or "priority 0" in ch[0][3],
          f"dir2 became master {latency * 1000:.0f} ms after SIGTERM ({ch[0][3]}), want < "
          f"{bar * 1000:.0f} ms (one advert interval + 100 ms) or a takeover on the priority-0 advert: the "
          "master's priority 0 should make it take over after its skew time, not after the master-down interval")
    check(gap < GAP_BAR, f"gap {gap * 1000:.0f} ms >= {GAP_BAR * 1000:.0f} ms")
    check_failures(r, t_term, "SIGTERM")


# ------------------------------------------------------------------ IPv6
VIP6 = "2001:db8:0:1::100"
CLIENT6 = "2001:db8:0:1::10"
# The real servers' IPv6 gateway. [ha] virtual_addresses are IPv4 only, so it
# is the VIP of a service without servers on the servers' subnet: the master
# alone answers neighbour solicitations for it and advertises it (unsolicited
# NA, override) on takeover, as it does the client-side VIP.
GW6 = "2001:db8:0:2::1"
HA_ADDR6 = {"dir1": ("2001:db8:0:1::2/64", "2001:db8:0:2::2/64"),
            "dir2": ("2001:db8:0:1::3/64", "2001:db8:0:2::3/64")}
RS6 = {"rs1": "2001:db8:0:2::11", "rs2": "2001:db8:0:2::12", "rs3": "2001:db8:0:2::13"}


def services6():
    servers = "".join(f"""
  [[service.server]]
  address = "{a}"
  port = 8080
""" for a in RS6.values())
    return f"""
[[service]]
vip = "{VIP6}"
port = 80
protocol = "tcp"
scheduler = "rr"
{servers}
[[service]]
vip = "{GW6}"
port = 9
protocol = "tcp"
scheduler = "rr"
"""


@lib.e2e(workers=(1,), timeout=180)
def ha_takeover_ipv6(env):
    """NAT over IPv6 behind two directors: a rate-limited 50 MB download from
    [VIP6]:80 (IPv6 client, IPv6 servers); kill -9 of the master mid-download;
    the download completes byte-exact through dir2, which took the connection
    over from its sync (record type 3); new IPv6 connections go through dir2."""
    kw = {n: {"addr6": HA_ADDR6[n], "extra": services6()} for n in ("dir1", "dir2")}
    topo, dirs = pair(env, "nat", cfg_kw=kw)
    c, dev = topo.client, topo.client_if
    topo.sysctl(c, f"net.ipv6.conf.{dev}.disable_ipv6=0", f"net.ipv6.conf.{dev}.accept_dad=0")
    topo.ip(c, "addr", "add", f"{CLIENT6}/64", "dev", dev, "nodad")
    for name, ns in topo.rs_ns.items():
        topo.sysctl(ns, "net.ipv6.conf.eth0.disable_ipv6=0", "net.ipv6.conf.eth0.accept_dad=0")
        topo.ip(ns, "addr", "add", f"{RS6[name]}/64", "dev", "eth0", "nodad")
        topo.ip(ns, "-6", "route", "add", "default", "via", GW6, "dev", "eth0")
        topo.start_realserver(name, env.workdir, "--bind", RS6[name], "--udp-port", "5354")
    r = env.client("http-many", VIP6, "80", "6", "--deadline", "30", timeout=60)
    check(not r["errors"], f"requests to [{VIP6}]:80 through dir1 failed: {r['errors'][:3]}")
    say(f"IPv6 through dir1: {r['counts']}")

    dl = Download(env, rate="5M", host=f"[{VIP6}]")
    dl.wait_bytes(4 << 20)
    time.sleep(1.5)
    before = dirs["dir2"].ha()
    say(f"before the kill: {ha_line(dirs['dir1'])}")
    say(f"before the kill: {ha_line(dirs['dir2'])}")
    check(before.get("conns_synced", 0) >= 1, f"dir2 has no synced connection before the kill: {before}")
    t_kill = dirs["dir1"].kill9()
    got = dl.got()
    dirs["dir2"].wait_role("master", 5)
    say(f"kill -9 dir1 at {got} downloaded bytes; dir2 master after {time.time() - t_kill:.2f}s")
    check(dl.running(), "the download ended at the takeover")
    t_more = time.time()
    dl.wait_bytes(got + (1 << 20), timeout=30)
    say(f"the download moved on through dir2 {time.time() - t_more:.2f}s after dir2 was master")
    dl.finish()
    say(ha_line(dirs["dir2"]))
    r = env.client("http-many", VIP6, "80", "6", "--timeout", "3", "--deadline", "30", timeout=60)
    check(not r["errors"], f"new IPv6 requests through dir2 failed: {r['errors'][:3]}")
    say(f"new IPv6 requests through dir2: {r['counts']}")
