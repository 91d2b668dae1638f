"""Health checks, quorum, sorry server and notifications end to end (issue 7).

The director checks its real servers with ordinary kernel sockets in its own
namespace: they leave through the exception path (the DPDK veths have no
kernel address). Notifications go to a real SMTP server (aiosmtpd, or a small
stdlib sink when it is missing) listening on loopback in the director's
namespace, and to an exec hook that appends each event's JSON to a file.

Timing facts come from two clocks that are the same: the test's time.time()
and the director's log timestamps (UTC wall clock, RVS_LOG at debug for
engine::control::health so that every check result is a line).
"""

import email
import email.policy
import hashlib
import json
import os
import re
import subprocess
import time
from datetime import datetime, timezone

import lib
import netns
from lib import VIP, check, e2e, say

SORRY = "198.19.0.99"
SMTP_PORT = 2525
LOG_SPEC = "info,engine::control::health=debug"

# ------------------------------------------------------------------ helpers run in namespaces

# An SMTP server on 127.0.0.1:PORT that appends every message to OUT as one
# JSON line. aiosmtpd when installed (Debian python3-aiosmtpd), else a small
# stdlib asyncio server speaking just enough SMTP. Bounded lifetime.
SMTP_SINK = r'''
import asyncio, json, signal, sys, threading, time
port, out, life = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
def record(mailfrom, rcpts, data, impl):
    with open(out, "a") as f:
        f.write(json.dumps({"time": time.time(), "from": mailfrom, "to": rcpts,
                            "data": data, "impl": impl}) + "\n")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
try:
    from aiosmtpd.controller import Controller
except ImportError:
    Controller = None
if Controller is not None:
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            record(envelope.mail_from, list(envelope.rcpt_tos),
                   envelope.content.decode("utf-8", "replace"), "aiosmtpd")
            return "250 OK"
    c = Controller(Handler(), hostname="127.0.0.1", port=port)
    c.start()
    print("smtp sink: aiosmtpd", flush=True)
    stop.wait(life)
    c.stop()
else:
    async def session(r, w):
        w.write(b"220 sink ESMTP\r\n")
        mailfrom, rcpts = None, []
        while True:
            line = await asyncio.wait_for(r.readline(), 30)
            if not line:
                return
            cmd = line.decode("utf-8", "replace").strip()
            up = cmd.upper()
            if up.startswith(("EHLO", "HELO")):
                w.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif up.startswith("MAIL FROM:"):
                mailfrom, rcpts = cmd[10:].strip(" <>"), []
                w.write(b"250 OK\r\n")
            elif up.startswith("RCPT TO:"):
                rcpts.append(cmd[8:].strip(" <>"))
                w.write(b"250 OK\r\n")
            elif up == "DATA":
                w.write(b"354 go on\r\n")
                lines = []
                while True:
                    l = await asyncio.wait_for(r.readline(), 30)
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    lines.append(l[1:] if l.startswith(b"..") else l)
                record(mailfrom, rcpts, b"".join(lines).decode("utf-8", "replace"), "stdlib")
                w.write(b"250 OK\r\n")
            elif up == "QUIT":
                w.write(b"221 bye\r\n")
                await w.drain()
                w.close()
                return
            else:
                w.write(b"250 OK\r\n")
            await w.drain()
    async def main():
        srv = await asyncio.start_server(session, "127.0.0.1", port)
        print("smtp sink: stdlib", flush=True)
        t0 = time.monotonic()
        while not stop.is_set() and time.monotonic() - t0 < life:
            await asyncio.sleep(0.2)
        srv.close()
    asyncio.run(main())
'''

# Fresh sequential HTTP GETs to the VIP for at most DURATION seconds (or until
# STOPFILE exists); one JSON line per request: start, end, who answered or
# the error.
STREAM = r'''
import http.client, json, os, sys, time
host, out, duration, stopfile = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
t_end = time.time() + duration
with open(out, "w", buffering=1) as f:
    while time.time() < t_end and not os.path.exists(stopfile):
        t0 = time.time()
        who, err = None, None
        c = http.client.HTTPConnection(host, 80, timeout=2)
        try:
            c.request("GET", "/", headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read().decode(errors="replace").strip()
            if r.status == 200 and body.startswith("server "):
                who = body.split()[1]
            else:
                err = f"status {r.status} body {body[:40]!r}"
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
        finally:
            c.close()
        f.write(json.dumps({"t0": t0, "t1": time.time(), "server": who, "error": err}) + "\n")
        time.sleep(0.02)
'''


def mode_file(env, name):
    return os.path.join(env.workdir, f"{name}.mode")


def set_mode(env, name, mode):
    path = mode_file(env, name)
    if mode:
        with open(path + ".tmp", "w") as f:
            f.write(mode + "\n")
        os.rename(path + ".tmp", path)
    elif os.path.exists(path):
        os.unlink(path)


def health_toml(kind="http", interval=500, timeout=300, fall=2, rise=2, extra=""):
    return f"""
  [service.health_check]
  kind = "{kind}"
  interval_ms = {interval}
  timeout_ms = {timeout}
  fall = {fall}
  rise = {rise}
{extra}"""


def setup(env, service_extra, notify="", sorry=False, weights=(3, 2, 1), log=LOG_SPEC):
    """Env.setup with what these tests need: real servers with a mode file,
    optionally a sorry server in a 4th namespace, the director logging every
    check, [notify] and the service's health check / sorry / quorum keys."""
    if sorry:
        env.topo = netns.Topology(servers=dict(netns.SERVERS, sorry=SORRY))
    env.topo.up()
    for name in env.topo.servers:
        env.topo.start_realserver(name, env.workdir, "--mode-file", mode_file(env, name))
    text = lib.make_config(env.workers, os.path.join(env.workdir, "rvs.sock"), weights=weights,
                           tcp_extra=service_extra, extra=notify)
    with open(env.cfg, "w") as f:
        f.write(text)
    env.director = lib.Director(env.topo, env.workdir, env.cfg)
    old = os.environ.get("RVS_LOG")
    os.environ["RVS_LOG"] = log
    try:
        env.director.start()
    finally:
        if old is None:
            os.environ.pop("RVS_LOG", None)
        else:
            os.environ["RVS_LOG"] = old
    t = env.director.wait_ready()
    say(f"topology {env.topo.id}, {env.workers} worker(s), director forwarding after {t:.1f}s"
        + (" [FAKE director]" if env.director.fake else ""))


def smtp_python():
    """An interpreter that has aiosmtpd (Debian's python3-aiosmtpd lives in
    the system python, which may not be the one running the tests), else
    ours (the sink then falls back to its stdlib SMTP server)."""
    for py in ("/usr/bin/python3", lib.PY):
        if os.path.exists(py) and subprocess.run([py, "-c", "import aiosmtpd"],
                                                 capture_output=True).returncode == 0:
            return py
    return lib.PY


def start_smtp(env, life=600):
    out = os.path.join(env.workdir, "mails.jsonl")
    log = open(os.path.join(env.workdir, "smtp.log"), "w")
    env.topo.popen(env.topo.director, [smtp_python(), "-c", SMTP_SINK, str(SMTP_PORT), out, str(life)],
                   stdout=log, stderr=subprocess.STDOUT)
    log.close()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        with open(os.path.join(env.workdir, "smtp.log")) as f:
            impl = f.read().strip()
        if impl:
            say(impl)
            return out
        time.sleep(0.1)
    raise AssertionError("the SMTP sink did not start")


def hook(env, body=None):
    """An exec hook that appends each event (one JSON line) to hook.jsonl."""
    path = os.path.join(env.workdir, "hook.sh")
    out = os.path.join(env.workdir, "hook.jsonl")
    with open(path, "w") as f:
        f.write(body or f"#!/bin/sh\ncat >> {out}\n")
    os.chmod(path, 0o755)
    return path, out


def notify_toml(smtp_port=SMTP_PORT, hook_path=None):
    s = f'[notify]\nsmtp = "127.0.0.1:{smtp_port}"\nfrom = "rvs@example.org"\nto = ["ops@example.org"]\n'
    if hook_path:
        s += f'exec = "{hook_path}"\n'
    return s


def mails(path):
    """Received mails: [(subject, body, record)]."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        rec = json.loads(line)
        msg = email.message_from_string(rec["data"], policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else msg.get_payload()
        out.append((str(msg["Subject"]), text, rec))
    return out


def wait_mail(path, pred, what, timeout=15):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = [m for m in mails(path) if pred(m[0], m[1])]
        if got:
            return got[0], time.monotonic() - t0
        time.sleep(0.2)
    subjects = [m[0] for m in mails(path)]
    raise AssertionError(f"no mail {what} within {timeout}s; got {subjects}")


def hook_events(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except OSError:
        return []


LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z\s+(\w+)\s+(\S+): (.*)$")


def log_lines(env):
    """(unix time, level, message) of each director log line."""
    out = []
    with open(env.director.err, errors="replace") as f:
        for line in f:
            m = LOG_RE.match(line.strip())
            if not m:
                continue
            ts = m.group(1)
            if "." in ts:
                base, frac = ts.split(".")
                ts = f"{base}.{frac[:6]}"
                fmt = "%Y-%m-%dT%H:%M:%S.%f"
            else:
                fmt = "%Y-%m-%dT%H:%M:%S"
            t = datetime.strptime(ts, fmt).replace(tzinfo=timezone.utc).timestamp()
            out.append((t, m.group(2), m.group(4)))
    return out


CHECK_RE = re.compile(r"health check of (\S+) \((\S+)\) (passed|failed): (.*)$")


def checks(env, server):
    """(time, passed, text) of every check of `server` (addr:port)."""
    out = []
    for t, _lvl, msg in log_lines(env):
        m = CHECK_RE.search(msg)
        if m and m.group(1) == server:
            out.append((t, m.group(3) == "passed", m.group(4)))
    return out


def transition(env, server, state, after=0.0):
    """Time of the first log line saying `server` went `state` (down/up again)."""
    needle = f"health: server {server} of "
    for t, _lvl, msg in log_lines(env):
        if t >= after and needle in msg and f" is {state}" in msg:
            return t
    return None


def wait_transition(env, server, state, after, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        t = transition(env, server, state, after)
        if t is not None:
            return t
        check(env.director.alive(), "director died")
        time.sleep(0.1)
    raise AssertionError(f"{server} not {state} within {timeout}s (log: {lib.tail(env.director.err, 15)})")


def stream_start(env, duration):
    out = os.path.join(env.workdir, "stream.jsonl")
    stop = os.path.join(env.workdir, "stream.stop")
    p = env.topo.popen(env.topo.client, [lib.PY, "-c", STREAM, VIP, out, str(duration), stop],
                       stdout=subprocess.DEVNULL, stderr=open(out + ".err", "w"))
    return p, out, stop


def stream_read(out):
    try:
        with open(out) as f:
            return [json.loads(l) for l in f if l.endswith("\n")]
    except OSError:
        return []


def requests(env, n=12):
    r = env.client("http-many", VIP, "80", str(n), "--timeout", "3", "--deadline", "60", timeout=90)
    return r["counts"], r["errors"]


def wait_counts(env, pred, what, timeout=15, n=12):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        counts, errors = requests(env, n)
        last = (counts, errors)
        if pred(counts, errors):
            return counts, time.monotonic() - t0
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s; last {last}")


def ctl_status(env):
    """`rvs ctl status --json` (the API socket is a path: reachable from here)."""
    p = subprocess.run([lib.rvs_binary(), "ctl", "-s", os.path.join(env.workdir, "rvs.sock"),
                        "status", "--json"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"rvs ctl status: exit {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def skip_if_fake(env):
    if env.fake:
        raise lib.Skip("health checks are the director's; the FAKE director has none")


# ------------------------------------------------------------------ tests
@e2e(workers=(1, 2), timeout=300)
def health_kill_restart_mail(env):
    """Kill rs2's HTTP server during a request stream: out of rotation within
    fall*interval + timeout + interval, no request fails after that, one DOWN
    mail naming it with the configuration; restart it: back after rise checks,
    one UP mail; the exec hook gets both events as JSON; ping through the
    exception path."""
    skip_if_fake(env)
    interval, timeout, fall, rise = 500, 300, 2, 2
    hook_path, hook_out = hook(env)
    setup(env, health_toml("http", interval, timeout, fall, rise, '  path = "/health"'),
          notify=notify_toml(hook_path=hook_path))
    rs2 = f"{netns.SERVERS['rs2']}:8080"
    smtp = start_smtp(env)

    # the checks go through the exception path; so does a ping to the director
    p = env.topo.nsexec(env.topo.rs_ns["rs1"], ["ping", "-c", "3", "-i", "0.2", "-W", "2",
                                                netns.DIRECTOR_SERVER_ADDR], check=False)
    check(p.returncode == 0, f"ping from rs1 to {netns.DIRECTOR_SERVER_ADDR} failed: {p.stdout}{p.stderr}")
    say("ping rs1 -> director's server-side address: " + p.stdout.strip().splitlines()[-1])
    t0 = time.time()
    while time.time() - t0 < 10 and not all(len(checks(env, f"{a}:8080")) >= 2 for a in netns.SERVERS.values()):
        time.sleep(0.2)
    for a in netns.SERVERS.values():
        c = checks(env, f"{a}:8080")
        check(len(c) >= 2 and all(ok for _, ok, _ in c), f"checks of {a}: {c[:3]}")
    say("every server passed its first http checks (exception path)")

    sp, sout, sstop = stream_start(env, 90)
    time.sleep(2.0)
    t_kill = time.time()
    env.topo.kill_realserver("rs2")
    bound = (fall * interval + timeout + interval) / 1000.0
    t_down = wait_transition(env, rs2, "down", t_kill, 10)
    say(f"rs2 killed; marked down after {t_down - t_kill:.2f}s (bound fall*interval+timeout+interval = {bound:.1f}s)")
    check(t_down - t_kill <= bound + 0.1, f"down after {t_down - t_kill:.2f}s > {bound:.1f}s")
    (subj, body, _), dt = wait_mail(smtp, lambda s, b: rs2 in s and "DOWN" in s, "saying rs2 is down")
    say(f"mail after {dt:.1f}s: {subj!r}")
    for want in ["Last result:", "Current configuration:", "TCP  198.18.0.100:80 wrr",
                 f"{netns.SERVERS['rs1']}:8080", rs2, "down"]:
        check(want in body, f"mail body lacks {want!r}:\n{body}")
    st = ctl_status(env)
    s2 = [d for s in st["services"] if s["service"] == "tcp:198.18.0.100:80"
          for d in s["servers"] if d["server"] == rs2][0]
    say(f"rvs ctl status: {rs2} health {s2['health']} ({s2['detail'][:90]})")
    check(s2["health"] == "down" and not s2["up"], f"rvs ctl status says {s2}")
    time.sleep(4.0)

    env.topo.start_realserver("rs2", env.workdir, "--mode-file", mode_file(env, "rs2"))
    t_up0 = time.time()        # listening from here on
    t_up = wait_transition(env, rs2, "up again", t_up0, 10)
    # the next check comes within one interval, then rise-1 more
    up_bound = (rise * interval) / 1000.0 + 0.5
    say(f"rs2 restarted; back after {t_up - t_up0:.2f}s (rise*interval = {up_bound - 0.5:.1f}s)")
    check(t_up - t_up0 <= up_bound, f"up after {t_up - t_up0:.2f}s > {up_bound:.1f}s")
    (subj, body, _), dt = wait_mail(smtp, lambda s, b: rs2 in s and " UP" in s, "saying rs2 is up")
    say(f"mail after {dt:.1f}s: {subj!r}")
    time.sleep(3.0)
    with open(sstop, "w"):
        pass
    sp.wait(timeout=20)

    reqs = stream_read(sout)
    after_down = [r for r in reqs if r["t0"] >= t_kill + bound]
    bad = [r for r in after_down if r["error"]]
    # "before": finished before the kill. One in flight across it may meet
    # the dying server (refused or reset) and belongs to the window.
    before = [r for r in reqs if r["t1"] < t_kill]
    window = [r for r in reqs if r["t1"] >= t_kill and r["t0"] < t_kill + bound]
    back = [r for r in reqs if r["t0"] >= t_up + 0.05]
    say(f"stream: {len(reqs)} requests; before kill {len(before)} "
        f"({sum(1 for r in before if r['error'])} failed); first {bound:.1f}s after kill {len(window)} "
        f"({sum(1 for r in window if r['error'])} failed); after {len(after_down)} "
        f"({len(bad)} failed); rs2 answered {sum(1 for r in back if r['server'] == 'rs2')} "
        f"of {len(back)} after it came back")
    failed_before = [r for r in before if r["error"]]
    check(not failed_before, f"{len(failed_before)} requests failed before the kill, first {failed_before[:3]}")
    check(len(after_down) > 50, f"too few requests after the bound: {len(after_down)}")
    check(not bad, f"{len(bad)} requests failed after the bound, first {bad[:3]}")
    during = [r for r in after_down if r["t0"] < t_up0]
    check(not [r for r in during if r["server"] == "rs2"], "rs2 answered while dead?")
    check(any(r["server"] == "rs2" for r in back), "rs2 never answered after it came back")

    time.sleep(1.0)
    downs = [m for m in mails(smtp) if rs2 in m[0] and "DOWN" in m[0]]
    ups = [m for m in mails(smtp) if rs2 in m[0] and " UP" in m[0]]
    check(len(downs) == 1 and len(ups) == 1, f"mails: {[m[0] for m in mails(smtp)]}")
    others = [m[0] for m in mails(smtp) if rs2 not in m[0]]
    check(not others, f"unexpected mails: {others}")
    evs = [(e["event"], e.get("server")) for e in hook_events(hook_out)]
    say(f"exec hook events: {evs}")
    check(evs == [("server-down", rs2), ("server-up", rs2)], f"hook events {evs}")
    ev = hook_events(hook_out)[0]
    check(ev["configuration"]["services"][0]["servers"][1]["up"] is False, "hook JSON configuration")
    check(ev.get("last_result") and "HTTP 200" not in ev["last_result"],
          f"last_result {ev.get('last_result')!r}")
    say(f"hook JSON: last_result {ev['last_result']!r}, live_weight {ev['live_weight']}")
    stats = env.stop_director()
    say(f"exception path: to_kernel={stats.get('to_kernel')} from_kernel={stats.get('from_kernel')}")


@e2e(workers=(1,), timeout=240)
def health_hang_timeout_schedule(env):
    """http checks with an MD5 body digest. rs2 accepts and never answers:
    down by timeout (timeout > interval) while rs1's and rs3's checks keep
    their 500 ms schedule; rs3 answering garbage goes down with the reason;
    both come back."""
    skip_if_fake(env)
    interval, timeout, fall, rise = 500, 1200, 2, 2
    # /health answers "ok\n": keepalived's digest is the MD5 of the body
    digest = hashlib.md5(b"ok\n").hexdigest()
    setup(env, health_toml("http", interval, timeout, fall, rise,
                           f'  path = "/health"\n  digest = "{digest}"'))
    rs1, rs2, rs3 = (f"{netns.SERVERS[n]}:8080" for n in ("rs1", "rs2", "rs3"))
    time.sleep(1.5)
    t_hang = time.time()
    set_mode(env, "rs2", "hang")
    t_down = wait_transition(env, rs2, "down", t_hang, 10)
    # each timed-out check is followed at once by the next: fall x timeout,
    # plus up to one interval until the first hanging check starts
    bound = (fall * timeout + interval) / 1000.0 + 0.6
    say(f"rs2 hangs; down after {t_down - t_hang:.2f}s (bound {bound:.1f}s)")
    check(t_down - t_hang <= bound, f"down after {t_down - t_hang:.2f}s")
    passed = [x for _, ok, x in checks(env, rs1) if ok]
    check(passed and f"body MD5 {digest}" in passed[0], f"rs1 checks: {passed[:1]}")
    c2 = [c for c in checks(env, rs2) if c[0] >= t_hang]
    check(c2 and all("timed out after 1200 ms" in t for _, ok, t in c2 if not ok),
          f"rs2 failures should be timeouts: {c2}")
    time.sleep(2.0)
    t_end = time.time()
    for s in (rs1, rs3):
        ts = [t for t, ok, _ in checks(env, s) if t_hang <= t <= t_end]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        say(f"{s}: {len(ts)} checks while rs2 hung, gaps {min(gaps):.3f}..{max(gaps):.3f}s")
        check(len(ts) >= int((t_end - t_hang) / (interval / 1000.0)) - 1, f"{s}: only {len(ts)} checks")
        check(max(gaps) < interval / 1000.0 + 0.25, f"{s}: a gap of {max(gaps):.3f}s")
    counts, _ = wait_counts(env, lambda c, e: not e and "rs2" not in c, "requests avoid rs2")
    say(f"requests while rs2 hangs: {counts}")

    t_g = time.time()
    set_mode(env, "rs3", "garbage")
    wait_transition(env, rs3, "down", t_g, 10)
    reasons = [t for t0, ok, t in checks(env, rs3) if t0 >= t_g and not ok]
    say(f"rs3 answers garbage: down; reason {reasons[0]!r}")
    check(reasons and all(r.startswith("not an HTTP response") for r in reasons), f"{reasons}")
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"rs1"}, "only rs1 answers")

    t_back = time.time()
    set_mode(env, "rs2", "")
    set_mode(env, "rs3", "")
    wait_transition(env, rs2, "up again", t_back, 10)
    wait_transition(env, rs3, "up again", t_back, 10)
    counts, dt = wait_counts(env, lambda c, e: not e and set(c) == {"rs1", "rs2", "rs3"}, "all back")
    say(f"all back: {counts}")
    check(env.director.alive(), "director died")
    env.stop_director()


@e2e(workers=(1,), timeout=300)
def health_quorum_sorry_server(env):
    """weights 3,2,1, quorum 2, a sorry server: rs1 down -> live 3, the real
    servers serve; rs2 down too -> live 1 < 2: the sorry server answers though
    rs3 is up (one QUORUM LOST mail); all down -> still the sorry server; rs2
    back -> live 2: traffic returns to rs2 (QUORUM REGAINED mail)."""
    skip_if_fake(env)
    interval, timeout, fall, rise = 500, 300, 2, 2
    extra = f'sorry_server = "{SORRY}:8080"\nquorum = 2\n' + health_toml("tcp", interval, timeout, fall, rise)
    setup(env, extra, notify=notify_toml(), sorry=True)
    smtp = start_smtp(env)
    rs = {n: f"{netns.SERVERS[n]}:8080" for n in ("rs1", "rs2", "rs3")}
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"rs1", "rs2", "rs3"}, "all serve")
    say(f"all up: {counts}")

    t = time.time()
    env.topo.kill_realserver("rs1")
    wait_transition(env, rs["rs1"], "down", t, 10)
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"rs2", "rs3"}, "rs2+rs3 serve")
    say(f"rs1 down (live weight 3 >= quorum 2): {counts}")

    t = time.time()
    env.topo.kill_realserver("rs2")
    wait_transition(env, rs["rs2"], "down", t, 10)
    counts, dt = wait_counts(env, lambda c, e: not e and set(c) == {"sorry"}, "the sorry server serves")
    say(f"rs2 down too (live weight 1 < 2): {counts} though rs3 is up")
    (subj, body, _), _ = wait_mail(smtp, lambda s, b: "LOST QUORUM" in s, "about the lost quorum")
    say(f"mail: {subj!r}")
    check(f"sorry server {SORRY}:8080" in body, f"quorum mail body:\n{body}")

    t = time.time()
    env.topo.kill_realserver("rs3")
    wait_transition(env, rs["rs3"], "down", t, 10)
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"sorry"}, "still the sorry server")
    say(f"all down: {counts}")

    t = time.time()
    env.topo.start_realserver("rs2", env.workdir, "--mode-file", mode_file(env, "rs2"))
    wait_transition(env, rs["rs2"], "up again", t, 10)
    counts, dt = wait_counts(env, lambda c, e: not e and set(c) == {"rs2"}, "traffic back to rs2")
    say(f"rs2 back (live weight 2): {counts}")
    (subj, _, _), _ = wait_mail(smtp, lambda s, b: "REGAINED QUORUM" in s, "about the regained quorum")
    say(f"mail: {subj!r}")
    time.sleep(1.0)
    subjects = [m[0] for m in mails(smtp)]
    say(f"{len(subjects)} mails: " + "; ".join(subjects))
    check(sum("LOST QUORUM" in s for s in subjects) == 1, "one quorum-lost mail")
    check(sum("REGAINED QUORUM" in s for s in subjects) == 1, "one quorum-regained mail")
    check(sum("DOWN" in s for s in subjects) == 3 and sum(" UP" in s for s in subjects) == 1,
          "a mail per server change")
    env.stop_director()


@e2e(workers=(1,), timeout=240)
def health_bad_inputs(env):
    """exec checks: a script flooding stdout and one that hangs are killed at
    the timeout (servers down, with the reason); a dead SMTP relay is retried
    with backoff; a hook that exits 3 is logged; the director keeps
    forwarding to the healthy server."""
    skip_if_fake(env)
    script = os.path.join(env.workdir, "check.sh")
    with open(script, "w") as f:
        f.write("""#!/bin/sh
# $1 address, $2 port
case "$1" in
  198.19.0.11) while :; do echo "flood flood flood flood flood flood flood"; done ;;
  198.19.0.12) sleep 600 ;;
  *) exit 0 ;;
esac
""")
    os.chmod(script, 0o755)
    hook_path, _ = hook(env, "#!/bin/sh\ncat > /dev/null\necho 'hook is broken' >&2\nexit 3\n")
    # nothing listens on SMTP_PORT + 1: the relay refuses
    setup(env, health_toml("exec", 400, 400, 2, 2, f'  script = "{script}"'),
          notify=notify_toml(SMTP_PORT + 1, hook_path))
    rs1, rs2, rs3 = (f"{netns.SERVERS[n]}:8080" for n in ("rs1", "rs2", "rs3"))
    t = time.time() - 5
    wait_transition(env, rs1, "down", t, 15)
    wait_transition(env, rs2, "down", t, 15)
    for s, want in ((rs1, "bytes of output discarded"), (rs2, "timed out after 400 ms (killed)")):
        fails = [x for _, ok, x in checks(env, s) if not ok]
        say(f"{s}: {fails[0]!r}")
        check(fails and all("timed out after 400 ms (killed)" in x for x in fails), f"{s}: {fails}")
        check(any(want in x for x in fails), f"{s}: no {want!r} in {fails}")
    c3 = checks(env, rs3)
    check(c3 and all(ok for _, ok, _ in c3), f"rs3 checks: {c3[:3]}")
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"rs3"}, "only rs3 answers")
    say(f"requests: {counts}")
    t0 = time.monotonic()
    want = ["notify: mail", "retrying in", "notify: exec hook failed: exit status 3: hook is broken"]
    while time.monotonic() - t0 < 15:
        msgs = [m for _, _, m in log_lines(env)]
        if all(any(w in m for m in msgs) for w in want):
            break
        time.sleep(0.3)
    msgs = [m for _, _, m in log_lines(env) if "notify:" in m]
    for m in msgs[:4]:
        say(f"log: {m[:160]}")
    for w in want:
        check(any(w in m for m in msgs), f"no log line with {w!r}")
    # no flood or hang processes outlive their timeout: a process of a check
    # seen twice 1 s apart (timeout 0.4 s) lingers
    def check_procs():
        found = set()
        for pid in netns.ns_pids(env.topo.director):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if script in cmd or cmd.startswith("sleep 600"):
                found.add((pid, cmd.strip()))
        return found
    first = check_procs()
    time.sleep(1.0)
    left = first & check_procs()
    say(f"check processes: {len(first)} running at one moment, {len(left)} still there 1 s later")
    check(not left, f"check processes linger: {left}")
    check(env.director.alive(), "director died")
    env.stop_director()
