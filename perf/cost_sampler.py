#!/usr/bin/env python3
"""bench.sh's cost sampler: a DUT's cumulative busy cycles every 0.25 s.

One process for the whole cost phase, pinned by bench.sh to the
generator's CPU, so that a sample costs that CPU a wake-up and a short
read, the same for every DUT: no process started per sample (`rvs ctl`
and `date` took some 10 ms of the generator's CPU four times a second,
the generator then caught up in bursts of 32 frames, and rvs's windows
were not testpmd's).

    cost_sampler.py OUT --rvs SOCKET      # `{"cmd":"status"}` on one API
                                          # connection; lines "T <unix time>
                                          # <busy cycles less empty polls>
                                          # <busy frames>"
    cost_sampler.py OUT --fifo PATH       # testpmd: `show fwd stats all`
                                          # down its stdin FIFO; lines
                                          # "T <unix time>" (the answers
                                          # are in testpmd's log)

Runs until killed (SIGTERM).
"""
import argparse
import json
import signal
import socket
import sys
import time

EVERY = 0.25


def rvs_sampler(out, path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rwb", buffering=0)
    while True:
        t = time.time()
        f.write(b'{"cmd":"status"}\n')
        line = f.readline()
        if not line:
            return  # the director closed the connection
        try:
            ws = json.loads(line)["result"]["workers"]
            busy = sum(w["cost"]["busy_cycles"] - w["cost"].get("empty_poll_cycles", 0) for w in ws)
            frames = sum(w["cost"]["busy_frames"] for w in ws)
            out.write(f"T {t:.6f} {busy} {frames}\n")
            out.flush()
        except (ValueError, KeyError, TypeError):
            pass  # an answer without the counters: no sample
        sleep_to_next(t)


def fifo_sampler(out, path):
    with open(path, "w") as fifo:
        while True:
            t = time.time()
            out.write(f"T {t:.6f}\n")
            out.flush()
            fifo.write("show fwd stats all\n")
            fifo.flush()
            sleep_to_next(t)


def sleep_to_next(t):
    time.sleep(max(0.0, t + EVERY - time.time()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--rvs", metavar="SOCKET")
    g.add_argument("--fifo", metavar="PATH")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(a.out, "a") as out:
        try:
            if a.rvs:
                rvs_sampler(out, a.rvs)
            else:
                fifo_sampler(out, a.fifo)
        except (OSError, KeyboardInterrupt):
            pass  # the DUT went away: the samples so far stand


if __name__ == "__main__":
    main()
