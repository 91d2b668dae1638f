"""keepalived-grade health checks end to end (issue 14): https (SSL_GET) with
a Host header / SNI, connect_port, retry, alpha, per-server notify_up /
notify_down hooks; dns (DNS_CHECK) against a real DNS responder; exec checks
whose exit status sets the weight (misc_dynamic), seen in `rvs ctl list`.

The HTTPS servers are Python ssl + http.server in the real-server namespaces,
with a self-signed certificate made by `openssl req` at test time; they log
every request's Host header and TLS server name. The DNS responder is a small
Python UDP server answering with real DNS messages (header, question, an SOA
record) built byte by byte, independently of the director's hickory-proto.
"""

import json
import os
import subprocess
import time

import lib
import netns
from lib import check, e2e, say
from test_health import LOG_SPEC, checks, log_lines, mode_file, skip_if_fake, wait_counts, wait_transition

TLS_PORT = 8443
DNS_PORT = 5300
NAME = "www.example.test"

# HTTPS on 0.0.0.0:PORT for LIFE seconds: GET -> "tls <name>"; one JSON line
# per request (Host header, TLS server name) appended to LOG.
HTTPS = r'''
import http.server, json, ssl, sys, threading, time
port, cert, key, log, name, life = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
def sni(sock, server_name, _ctx):
    sock.rvs_sni = server_name
ctx.sni_callback = sni
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(json.dumps({"t": time.time(), "host": self.headers.get("Host"),
                                "sni": getattr(self.connection, "rvs_sni", None),
                                "path": self.path}) + "\n")
        body = f"tls {name}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    def get_request(self):
        s, a = self.socket.accept()
        s.settimeout(5)
        return ctx.wrap_socket(s, server_side=True), a
    def handle_error(self, request, client_address):
        pass
srv = S(("0.0.0.0", port), H)
threading.Timer(life, srv.shutdown).start()
print("ready", flush=True)
srv.serve_forever(poll_interval=0.2)
'''

# DNS over UDP on 0.0.0.0:PORT for LIFE seconds. Each query is answered with
# the same id, QR and AA set, RD copied, the question echoed and, for SOA, one
# SOA record for the name asked; while MODEFILE says "refused", RCODE 5 and
# no answer. One JSON line per query (type, name, id) appended to LOG.
DNS = r'''
import json, os, socket, struct, sys, time
port, modefile, log, life = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
s.settimeout(0.2)
print("ready", flush=True)
t_end = time.time() + life
while time.time() < t_end:
    try:
        q, addr = s.recvfrom(1500)
    except socket.timeout:
        continue
    if len(q) < 12:
        continue
    qid, flags, qd = struct.unpack(">HHH", q[:6])
    i, labels = 12, []
    while i < len(q) and q[i] != 0:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    try:
        mode = open(modefile).read().split()[0]
    except (OSError, IndexError):
        mode = ""
    with open(log, "a") as f:
        f.write(json.dumps({"t": time.time(), "id": qid, "type": qtype,
                            "name": ".".join(labels) + ".", "mode": mode}) + "\n")
    rcode = 5 if mode == "refused" else 0
    answer = b""
    if rcode == 0 and qtype == 6:
        rdata = (b"\x02ns\x07example\x04test\x00" + b"\x0ahostmaster\x07example\x04test\x00"
                 + struct.pack(">IIIII", 2026113001, 3600, 600, 86400, 60))
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 6, 1, 60, len(rdata)) + rdata
    rflags = 0x8000 | 0x0400 | (flags & 0x0100) | rcode
    s.sendto(struct.pack(">HHHHHH", qid, rflags, 1, 1 if answer else 0, 0, 0) + question + answer, addr)
'''


def make_cert(env):
    """A self-signed certificate for NAME (openssl req), in the work dir."""
    cnf = os.path.join(env.workdir, "req.cnf")
    with open(cnf, "w") as f:
        f.write(f"[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = v3\n[dn]\nCN = {NAME}\n"
                f"[v3]\nsubjectAltName = DNS:{NAME}\n")
    cert, key = os.path.join(env.workdir, "cert.pem"), os.path.join(env.workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-config", cnf, "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def start_helper(env, ns_name, script, args, tag):
    """Run a helper script in a server namespace; wait for its "ready"."""
    out = os.path.join(env.workdir, f"{tag}.out")
    with open(out, "w") as o:
        p = env.topo.popen(env.topo.rs_ns[ns_name], [lib.PY, "-c", script, *map(str, args)],
                           stdout=o, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        with open(out) as f:
            if "ready" in f.read():
                return p
        check(p.poll() is None, f"{tag} exited: {lib.tail(out)}")
        time.sleep(0.05)
    raise AssertionError(f"{tag} did not start: {lib.tail(out)}")


def stop_helper(p):
    p.terminate()
    p.wait(timeout=10)


def jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.endswith("\n")]
    except OSError:
        return []


def ctl_list(env):
    """`rvs ctl list`: {(service port, server addr): (weight, up)}."""
    p = subprocess.run([lib.rvs_binary(), "ctl", "-s", os.path.join(env.workdir, "rvs.sock"), "list"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"rvs ctl list: exit {p.returncode}: {p.stderr.strip()}")
    out, port = {}, None
    for line in p.stdout.splitlines():
        w = line.split()
        if w and w[0] in ("TCP", "UDP"):
            port = int(w[1].rsplit(":", 1)[1])
        elif w and w[0] == "->" and ":" in w[1] and port is not None and w[1][0].isdigit():
            out[(port, w[1].rsplit(":", 1)[0])] = (int(w[3]), "(down)" not in line)
    return out, p.stdout


def wait_list(env, pred, what, timeout=10):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got, text = ctl_list(env)
        if pred(got):
            return got, text
        time.sleep(0.1)
    raise AssertionError(f"rvs ctl list: not {what} within {timeout}s:\n{text}")


def start(env, tcp_extra, edit, helpers):
    """test_health.setup's steps, with a hook between them: the topology
    up, the real servers and `helpers()` (servers the first checks must
    find) started, the config made by lib.make_config with `tcp_extra`
    then passed through `edit`, the director started with every check
    logged."""
    env.topo.up()
    for name in env.topo.servers:
        env.topo.start_realserver(name, env.workdir, "--mode-file", mode_file(env, name))
    procs = helpers()
    text = edit(lib.make_config(env.workers, os.path.join(env.workdir, "rvs.sock"), weights=(3, 2, 1),
                                tcp_extra=tcp_extra))
    with open(env.cfg, "w") as f:
        f.write(text)
    env.director = lib.Director(env.topo, env.workdir, env.cfg)
    old = os.environ.get("RVS_LOG")
    os.environ["RVS_LOG"] = LOG_SPEC
    try:
        env.director.start()
    finally:
        if old is None:
            os.environ.pop("RVS_LOG", None)
        else:
            os.environ["RVS_LOG"] = old
    t = env.director.wait_ready()
    say(f"topology {env.topo.id}, director forwarding after {t:.1f}s")
    return procs


def health_toml(kind, extra):
    return f'  [service.health_check]\n  kind = "{kind}"\n' + "".join(f"  {l}\n" for l in extra)


@e2e(workers=(1,), timeout=180)
def health_https_alpha_retry_hooks(env):
    """https checks on connect_port 8443 with a Host header and SNI against
    Python ssl servers on rs1 and rs2 (none on rs3); alpha: every server
    starts down and rs1, rs2 come up at their first success while rs3 never
    does; requests go to rs1 and rs2 only. rs1's TLS server stopped: down
    after fall rounds of 1 + retry tries, notify_down runs with the server
    and service; restarted: up, notify_up runs."""
    skip_if_fake(env)
    cert, key = make_cert(env)
    hooks_out = os.path.join(env.workdir, "hooks.txt")
    hook = os.path.join(env.workdir, "hook.sh")
    with open(hook, "w") as f:
        f.write(f'#!/bin/sh\necho "$1 $2 $3 $4 $RVS_STATE" >> {hooks_out}\n')
    os.chmod(hook, 0o755)
    tls_logs = {n: os.path.join(env.workdir, f"{n}.tls.jsonl") for n in ("rs1", "rs2")}
    interval, timeout, fall, retry, delay = 300, 300, 2, 1, 100
    check_toml = health_toml("https", [
        f"connect_port = {TLS_PORT}", f'host = "{NAME}"', f"interval_ms = {interval}",
        f"timeout_ms = {timeout}", f"fall = {fall}", "rise = 2", f"retry = {retry}",
        f"delay_before_retry_ms = {delay}", "alpha = true",
    ])
    hooks_toml = f'  notify_up = "{hook} rs1-up"\n  notify_down = "{hook} rs1-down"\n'
    rs1_at = f'address = "{netns.SERVERS["rs1"]}"\n  port = 8080\n'
    procs = start(
        env, check_toml, lambda text: text.replace(rs1_at, rs1_at + hooks_toml, 1),
        lambda: {n: start_helper(env, n, HTTPS, [TLS_PORT, cert, key, tls_logs[n], n, 120], f"{n}.https")
                 for n in ("rs1", "rs2")})
    rs1, rs2, rs3 = (f"{netns.SERVERS[n]}:8080" for n in ("rs1", "rs2", "rs3"))
    t_start = time.time() - 10
    for s in (rs1, rs2):
        wait_transition(env, s, "up", t_start, 10)
    ups = [m for _, _, m in log_lines(env) if "first https check passed (alpha)" in m]
    say(f"alpha: {len(ups)} servers up at their first success: {[m.split()[2] for m in ups]}")
    check(sorted(m.split()[2] for m in ups) == sorted([rs1, rs2]), f"alpha ups: {ups}")
    got, text = wait_list(env, lambda g: g.get((80, netns.SERVERS["rs3"])) == (0, False)
                          and g.get((80, netns.SERVERS["rs1"])) == (3, True), "rs3 down, rs1 up")
    c3 = checks(env, rs3)
    check(c3 and not any(ok for _, ok, _ in c3), f"rs3 checks: {c3[:2]}")
    say(f"rs3 (no TLS server): {c3[-1][2]!r}")
    check(c3[-1][2].startswith("connect: ") and c3[-1][2].endswith(f"(try 2 of {retry + 1})"),
          f"rs3 failure text: {c3[-1][2]!r}")
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"rs1", "rs2"}, "rs1 and rs2 answer")
    say(f"requests: {counts}")
    seen = jsonl(tls_logs["rs1"])
    check(seen and all(r["host"] == NAME and r["sni"] == NAME and r["path"] == "/" for r in seen),
          f"rs1 TLS server saw {seen[:2]}")
    say(f"rs1's TLS server: {len(seen)} checks, Host {seen[0]['host']!r}, SNI {seen[0]['sni']!r}")

    t_stop = time.time()
    stop_helper(procs["rs1"])
    t_down = wait_transition(env, rs1, "down", t_stop, 10)
    # fall rounds, each 1 + retry tries `delay` apart, within one interval
    bound = (fall * (interval + retry * delay) + interval) / 1000.0 + 0.5
    say(f"rs1's TLS server stopped: down after {t_down - t_stop:.2f}s (bound {bound:.1f}s)")
    check(t_down - t_stop <= bound, f"down after {t_down - t_stop:.2f}s")
    fails = [t for t0, ok, t in checks(env, rs1) if t0 >= t_stop and not ok]
    check(fails and all(f.endswith("(try 2 of 2)") for f in fails), f"rs1 failures: {fails}")
    counts, _ = wait_counts(env, lambda c, e: not e and set(c) == {"rs2"}, "only rs2 answers")
    t_restart = time.time()
    procs["rs1"] = start_helper(env, "rs1", HTTPS, [TLS_PORT, cert, key, tls_logs["rs1"], "rs1", 60],
                                "rs1.https2")
    t_up = wait_transition(env, rs1, "up again", t_restart, 10)
    say(f"rs1's TLS server back: up after {t_up - t_restart:.2f}s")
    wait_list(env, lambda g: g.get((80, netns.SERVERS["rs1"])) == (3, True), "rs1 back")
    t0 = time.monotonic()
    lines = []
    while time.monotonic() - t0 < 10 and len(lines) < 3:
        try:
            with open(hooks_out) as f:
                lines = f.read().splitlines()
        except OSError:
            pass
        time.sleep(0.1)
    svc = f"tcp:{lib.VIP}:80"
    say(f"hooks: {lines}")
    # alpha's first success is a change of state too: notify_up runs
    up, down = f"rs1-up up {rs1} {svc} up", f"rs1-down down {rs1} {svc} down"
    check(lines == [up, down, up], f"hooks: {lines}")
    check(env.director.alive(), "director died")
    for p in procs.values():
        stop_helper(p)
    env.stop_director()


@e2e(workers=(1,), timeout=180)
def health_dns_and_dynamic_weight(env):
    """The udp service checked by dns (SOA for ".") on connect_port 5300:
    rs1 and rs2 answer (real DNS messages), rs3 has no responder (down);
    rs2 answering REFUSED goes down with the rcode, and comes back. The tcp
    service checked by an exec script whose exit status sets the weight:
    `rvs ctl list` shows 7 -> weight 5, 2 -> weight 0, 0 -> the configured
    weight again, 1 -> down."""
    skip_if_fake(env)
    wdir = os.path.join(env.workdir, "weights")
    os.makedirs(wdir)
    script = os.path.join(env.workdir, "weight.sh")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\n# $1 address, $2 port\n[ -e {wdir}/$1 ] && exit $(cat {wdir}/$1)\nexit 0\n')
    os.chmod(script, 0o755)
    dns_logs = {n: os.path.join(env.workdir, f"{n}.dns.jsonl") for n in ("rs1", "rs2")}
    modes = {n: os.path.join(env.workdir, f"{n}.dns.mode") for n in ("rs1", "rs2")}
    tcp_check = health_toml("exec", [f'script = "{script}"', "dynamic_weight = true",
                                     "interval_ms = 200", "timeout_ms = 1000", "fall = 1", "rise = 1"])
    udp_check = health_toml("dns", [f"connect_port = {DNS_PORT}", "interval_ms = 300", "timeout_ms = 300",
                                    "fall = 2", "rise = 2"])
    head = 'port = 53\nprotocol = "udp"\nscheduler = "rr"\nforward = "nat"\n'

    def edit(text):
        check(head in text, "the udp service of make_config changed")
        return text.replace(head, head + udp_check, 1)
    procs = start(env, tcp_check, edit,
                  lambda: {n: start_helper(env, n, DNS, [DNS_PORT, modes[n], dns_logs[n], 120], f"{n}.dns")
                           for n in ("rs1", "rs2")})
    a1, a2, a3 = (netns.SERVERS[n] for n in ("rs1", "rs2", "rs3"))
    rs3u, rs2u = f"{a3}:5353", f"{a2}:5353"
    t_start = time.time() - 10
    wait_transition(env, rs3u, "down", t_start, 10)
    got, text = wait_list(env, lambda g: g.get((53, a3)) == (0, False) and g.get((53, a1)) == (1, True)
                          and g.get((53, a2)) == (1, True), "rs3 down on udp:53")
    ok1 = [t for _, ok, t in checks(env, f"{a1}:5353") if ok]
    check(ok1 and ok1[0].startswith("DNS NOERROR, 1 answer(s), authoritative"), f"rs1 dns: {ok1[:1]}")
    say(f"dns: rs1 {ok1[0]!r}; rs3 {checks(env, rs3u)[-1][2]!r}")
    q = jsonl(dns_logs["rs1"])
    check(q and all(r["type"] == 6 and r["name"] == "." for r in q), f"queries: {q[:2]}")
    check(len({r["id"] for r in q}) > 1, f"query ids do not vary: {[r['id'] for r in q]}")
    t_ref = time.time()
    with open(modes["rs2"], "w") as f:
        f.write("refused\n")
    wait_transition(env, rs2u, "down", t_ref, 10)
    fails = [t for t0, ok, t in checks(env, rs2u) if t0 >= t_ref and not ok]
    say(f"rs2 REFUSED: down; {fails[0]!r}")
    check(fails and all(f == "DNS rcode Query Refused" for f in fails), f"{fails}")
    os.unlink(modes["rs2"])
    wait_transition(env, rs2u, "up again", time.time(), 10)

    # misc_dynamic on the tcp service (configured weights 3, 2, 1)
    wait_list(env, lambda g: [g.get((80, a)) for a in (a1, a2, a3)] == [(3, True), (2, True), (1, True)],
              "the configured weights")
    steps = [("7", (5, True)), ("2", (0, True)), ("0", (3, True)), ("1", (0, False)), ("12", (10, True))]
    for code, want in steps:
        t0 = time.monotonic()
        with open(os.path.join(wdir, a1 + ".tmp"), "w") as f:
            f.write(code + "\n")
        os.rename(os.path.join(wdir, a1 + ".tmp"), os.path.join(wdir, a1))
        got, _ = wait_list(env, lambda g: g.get((80, a1)) == want, f"rs1 {want} after exit {code}")
        say(f"rs1's check exits {code}: rvs ctl list shows weight {got[(80, a1)][0]}"
            f"{'' if got[(80, a1)][1] else ' (down)'} after {time.monotonic() - t0:.2f}s")
    counts, _ = wait_counts(env, lambda c, e: not e and c.get("rs1", 0) > c.get("rs3", 0) * 3,
                            "rs1 with weight 10 takes most requests", n=28)
    say(f"requests with weights 10, 2, 1: {counts}")
    logs = [m for _, _, m in log_lines(env) if "health: weight" in m]
    check(any("weight 3 -> 5" in m for m in logs), f"weight logs: {logs[:3]}")
    check(env.director.alive(), "director died")
    for p in procs.values():
        stop_helper(p)
    env.stop_director()
