#!/usr/bin/env python3
"""A cost row's busy cycles per packet in short windows (bench.sh's sampler).

The VM this runs on switches between two states from one second to the next
(a cache line bounced between its two CPUs takes ~50 or ~330 ns), so a whole
cost phase mixes them in proportions that differ from run to run. bench.sh
samples the DUT's cumulative busy cycles and frames every 0.25 s of the
phase; this turns the samples into windows (one line each: seconds, busy
cycles, frames), so that report.py can compare DUTs window for window.

    cost_windows.py rvs SAMPLES          # lines "T <unix time> <status JSON>"
    cost_windows.py testpmd SAMPLES DLOG  # lines "T <unix time>"; DLOG has
                                          # testpmd's answers to the
                                          # `show fwd stats all` sent after each

Both count alike (see bench.sh): rvs its workers' busy cycles less their
empty rx polls and its busy frames; testpmd its `--record-core-cycles`
total cycles and total RX packets.
"""
import json
import re
import sys

TESTPMD_TOTAL = re.compile(r"total cycles=(\d+) / total \w+ packets=(\d+)")


def rvs_samples(path):
    out = []
    for line in open(path):
        parts = line.split(" ", 2)
        if len(parts) < 3 or parts[0] != "T":
            continue
        try:
            ws = json.loads(parts[2])["workers"]
            busy = sum(w["cost"]["busy_cycles"] - w["cost"].get("empty_poll_cycles", 0) for w in ws)
            frames = sum(w["cost"]["busy_frames"] for w in ws)
        except (ValueError, KeyError, TypeError):
            continue  # a sample the control socket did not answer
        out.append((float(parts[1]), busy, frames))
    return out


def testpmd_samples(path, dlog):
    ts = [float(l.split()[1]) for l in open(path) if l.startswith("T ")]
    totals = [(int(m.group(1)), int(m.group(2))) for m in TESTPMD_TOTAL.finditer(open(dlog, errors="replace").read())]
    # One answer per `show`, in order; `stop` prints one more after them.
    return [(t, c, p) for t, (c, p) in zip(ts, totals)]


def main():
    kind = sys.argv[1]
    s = rvs_samples(sys.argv[2]) if kind == "rvs" else testpmd_samples(sys.argv[2], sys.argv[3])
    for (t0, c0, f0), (t1, c1, f1) in zip(s, s[1:]):
        if t1 > t0 and f1 >= f0 and c1 >= c0:
            print(f"{t1 - t0:.3f}\t{c1 - c0}\t{f1 - f0}")


if __name__ == "__main__":
    main()
