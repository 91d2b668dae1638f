#!/usr/bin/env python3
"""The rvs demo (run through ci/demo.sh): NAT load balancing over three real servers.

Builds the SPEC §8 topology in fresh network namespaces, starts three real HTTP
servers, runs `rvs run -c configs/demo-nat.toml` in the director namespace, sends
12 HTTP requests and 3 UDP requests through the VIP, downloads 20 MB and checks
its sha256, prints the director's counters, and always cleans up.
"""

import json
import os
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "e2e"))

import lib  # noqa: E402
import netns  # noqa: E402

CONFIG = os.path.join(lib.REPO, "configs", "demo-nat.toml")
SIZE = 20 * 1000 * 1000


def title(s):
    print(f"\n== {s}", flush=True)


def main():
    cfg_path = sys.argv[1] if len(sys.argv) > 1 else CONFIG
    workdir = tempfile.mkdtemp(prefix="rvs-demo-")
    if not os.path.exists(cfg_path):
        print(f"{cfg_path} is missing; using the same settings written by ci/e2e/lib.py")
        cfg_path = os.path.join(workdir, "demo-nat.toml")
        with open(cfg_path, "w") as f:
            f.write(lib.make_config(1, "/run/rvs/demo.sock"))
    with open(cfg_path, "rb") as f:
        cfg = tomllib.load(f)
    ifaces = [p["device"].split("iface=")[1].split(",")[0] for p in cfg["port"]]
    sock = cfg.get("control", {}).get("socket")
    if sock:
        os.makedirs(os.path.dirname(sock), exist_ok=True)

    ok = True
    topo = netns.Topology(dc=ifaces[0], ds=ifaces[1])
    director = None
    try:
        title(f"topology {topo.id}: client {netns.CLIENT_ADDR} -> VIP {lib.VIP} -> "
              f"rs1..rs3 {', '.join(netns.SERVERS.values())}")
        topo.up()
        topo.start_realservers(workdir)
        print(f"namespaces: {', '.join(topo.namespaces)}")
        director = lib.Director(topo, workdir, cfg_path)
        title(f"director: ip netns exec {topo.director} {' '.join(director.command())}")
        director.start()
        t = director.wait_ready(timeout=30)
        print(f"forwarding after {t:.1f}s (the readiness probe's connections took the first wrr picks)")

        title("12 HTTP requests to http://198.18.0.100/ (wrr, weights 3,2,1)")
        r = lib.client(topo, "http-many", lib.VIP, "80", "12", "--timeout", "5", "--deadline", "60")
        for i, who in enumerate(r["answers"], 1):
            print(f"request {i:2d} -> {'server ' + who if who else 'FAILED'}")
        print(f"per server: {json.dumps(r['counts'])}")
        ok &= not r["errors"]
        for e in r["errors"]:
            print(f"  error: {e}")

        title("3 UDP requests to 198.18.0.100:53 (rr)")
        r = lib.client(topo, "udp-many", lib.VIP, "53", "3", "--timeout", "2", timeout=30)
        for i, who in enumerate(r["answers"], 1):
            print(f"datagram {i} -> {'echoed by ' + who if who else 'FAILED'}")
        ok &= not r["errors"]

        title(f"download of {SIZE // 1000000} MB through the VIP")
        want = lib.expected_sha256(SIZE)
        out = os.path.join(workdir, "blob")
        r = lib.client(topo, "download", f"http://{lib.VIP}/blob?size={SIZE}", "--out", out,
                       "--max-time", "120", timeout=150)
        good = r["ok"] and r["bytes"] == SIZE and r["sha256"] == want
        print(f"{r['bytes']} bytes in {r['seconds']:.2f}s = {r['MBps']} MB/s ({r['tool']})")
        print(f"sha256 {r['sha256']} {'matches' if good else 'DOES NOT MATCH ' + want}")
        if r["error"]:
            print(f"  error: {r['error']}")
        ok &= good

        title("director stats (SIGINT -> rvs-stats line)")
        stats = director.stop()
        print(f"exit code {director.exit_code}")
        if stats:
            main_keys = ("rx_packets", "tx_packets", "conns_created", "handoffs")
            for k in main_keys:
                print(f"  {k:20s} {stats.get(k)}")
            drops = stats.get("drops") or {}
            print(f"  {'drops':20s} {lib.drops_total(stats)}" +
                  "".join(f"\n    {k:24s} {v}" for k, v in sorted(drops.items()) if v))
            for k, v in stats.items():
                if k not in main_keys and k not in ("drops", "drops_total"):
                    print(f"  {k:20s} {json.dumps(v)}")
        else:
            print("no rvs-stats line")
            ok = False
        ok &= director.exit_code == 0
    except (AssertionError, RuntimeError) as e:
        print(f"\ndemo failed: {e}")
        ok = False
    except KeyboardInterrupt:
        ok = False
    finally:
        if not ok and director:
            print(director.diagnostics())
        if director and director.alive():
            try:
                director.stop(timeout=10)
            except AssertionError:
                pass
        topo.down()
        if ok:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")
    title("demo " + ("OK" if ok else "FAILED") + " (namespaces removed)")
    return 0 if ok else 1


if __name__ == "__main__":
    t0 = time.monotonic()
    rc = main()
    print(f"({time.monotonic() - t0:.0f}s)")
    sys.exit(rc)
