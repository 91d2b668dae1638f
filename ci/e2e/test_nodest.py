"""expire_nodest_conn (issue 14) with real kernel TCP through NAT.

An idle client connection's server is deleted with `rvs ctl del-server`; then
the client sends. With `[timeouts] expire_nodest_conn = false` (IPVS's
default) its segment is dropped and the client hears nothing (it would hang
until its retransmissions give up); after a SIGHUP turns the key on (the
default), the same cut makes the client's send fail with ECONNRESET at once:
the director answered with an RST from the VIP.
"""

import json
import os
import signal
import subprocess
import time

import lib
from lib import VIP, Skip, check, client_popen, e2e, fake_mode, rvs_binary, say, wait_for
import netns

SVC80 = f"tcp:{VIP}:80"
ANSWER_TIMEOUT = 2.0


def ctl(env, *args):
    p = subprocess.run([rvs_binary(), "ctl", "-s", os.path.join(env.workdir, "rvs.sock"), *args],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"rvs ctl {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def cut(env, tag):
    """Opens an idle connection to VIP:80, deletes its server, then sends:
    returns (hold-send's result, the deleted server's address)."""
    ready = os.path.join(env.workdir, f"{tag}.ready")
    go = os.path.join(env.workdir, f"{tag}.go")
    out = os.path.join(env.workdir, f"{tag}.out")
    p = client_popen(env.topo, "hold-send", VIP, "80", "--ready", ready, "--go", go,
                     "--wait", "20", "--timeout", str(ANSWER_TIMEOUT), stdout_path=out)
    wait_for(lambda: os.path.exists(ready) and open(ready).read().strip(), timeout=10,
             what=f"{tag}: the client's connection")
    cport = int(open(ready).read())

    def mine():
        conns = json.loads(ctl(env, "list", "--conns", "--json"))["conns"]
        m = [c for c in conns if c["client"] == netns.CLIENT_ADDR and c["cport"] == cport
             and c["state"] == "ESTABLISHED"]
        return m[0] if m else None

    conn, _ = wait_for(mine, timeout=5, what=f"{tag}: the connection in list --conns")
    server = conn["server"]
    ctl(env, "del-server", "--service", SVC80, "--server", f"{server}:8080")
    open(go, "w").close()
    p.wait(timeout=ANSWER_TIMEOUT + 10)
    r = lib.read_json_output(out)
    say(f"{tag}: connection :{cport} -> {server}, server deleted; the client's send: {r}")
    return r, server


@e2e(workers=(1,), timeout=120)
def nodest_conn_reset_on_del_server(env):
    """Key off: the client's send after del-server times out (no answer);
    SIGHUP with the key on: ECONNRESET within a second, one RST counted."""
    if fake_mode():
        raise Skip("the fake director has no control API")
    env.setup(timeouts_extra="expire_nodest_conn = false")
    text = open(env.cfg).read()

    r, _ = cut(env, "off")
    check(r["result"] == "timeout", f"key off: want the send to go unanswered, got {r}")

    # The key on (the file without the line), the servers back: SIGHUP.
    gen0 = json.loads(ctl(env, "list", "--json"))["generation"]
    with open(env.cfg, "w") as f:
        f.write(text.replace("expire_nodest_conn = false", ""))
    env.director.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: json.loads(ctl(env, "list", "--json"))["generation"] > gen0, timeout=10,
             what="the reload")

    t = time.monotonic()
    r, _ = cut(env, "on")
    check(r["result"] == "reset", f"key on: want ECONNRESET, got {r}")
    check(r["elapsed"] < 1.0, f"the reset took {r['elapsed']} s")
    stats = env.stop_director()
    check(stats.get("nodest_rst_sent") == 1 and stats.get("nodest_expired") == 1,
          f"nodest_rst_sent {stats.get('nodest_rst_sent')}, nodest_expired {stats.get('nodest_expired')}, "
          "want 1 and 1")
    say(f"key on: reset after {r['elapsed']} s (cut {time.monotonic() - t:.1f} s in all); "
        f"nodest_rst_sent {stats['nodest_rst_sent']}, nodest_expired {stats['nodest_expired']}")
