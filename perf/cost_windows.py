#!/usr/bin/env python3
"""A cost row's busy cycles per packet in short windows (bench.sh's sampler).

The VM this runs on switches between two states from one second to the
next: its two vCPUs sit beside each other (a cache line moves between them
in ~60 ns) or far apart (~300 ns), and every frame crosses between the
generator's CPU and the DUT's twice. So a whole cost phase mixes the states
in proportions that differ from run to run. bench.sh samples the DUT's
cumulative busy cycles and frames every 0.25 s of the phase
(perf/cost_sampler.py); this turns the samples into windows, one line each:

    seconds  busy cycles  frames  latency min ns  latency p50 ns

The latencies are the generator's (`cost-window` lines of its log, 16 a
second): the lowest minimum and the median of the medians of those that
ended inside the window ("-" for none). A window in the far state has a
minimum latency about three times the near one's, whatever the DUT, so
report.py can compare DUTs state for state.

    cost_windows.py rvs SAMPLES [--gen-log GLOG]
        # lines "T <unix time> <busy cycles> <busy frames>"
    cost_windows.py testpmd SAMPLES --dut-log DLOG [--gen-log GLOG]
        # lines "T <unix time>"; DLOG has testpmd's answers to the
        # `show fwd stats all` sent after each

Both count alike (see bench.sh): rvs its workers' busy cycles less their
empty rx polls and its busy frames; testpmd its `--record-core-cycles`
total cycles and total RX packets.
"""
import argparse
import re

TESTPMD_TOTAL = re.compile(r"total cycles=(\d+) / total \w+ packets=(\d+)")


GEN_WINDOW = re.compile(r"cost-window (\S+) (\d+) (\d+) (\d+) (\d+)")
# The generator's windows last 1/16 s: one counts for a sampler window when
# it ended inside it and began no earlier.
GEN_WINDOW_SECS = 1 / 16


def rvs_samples(path):
    out = []
    for line in open(path):
        parts = line.split()
        if len(parts) != 4 or parts[0] != "T":
            continue
        try:
            out.append((float(parts[1]), int(parts[2]), int(parts[3])))
        except ValueError:
            continue
    return out


def gen_windows(path):
    """(end time, frames, min ns, p50 ns) of each `cost-window` line."""
    if not path:
        return []
    out = []
    for line in open(path, errors="replace"):
        m = GEN_WINDOW.search(line)
        if m and int(m.group(2)) > 0:
            out.append((float(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return out


def latency(gen, t0, t1):
    """The lowest minimum and the median p50 of the generator's windows
    inside [t0, t1], or None."""
    inside = [g for g in gen if t0 <= g[0] - GEN_WINDOW_SECS and g[0] <= t1]
    if not inside:
        return None
    p50s = sorted(g[3] for g in inside)
    return min(g[2] for g in inside), p50s[len(p50s) // 2]


def testpmd_samples(path, dlog):
    ts = [float(l.split()[1]) for l in open(path) if l.startswith("T ")]
    totals = [(int(m.group(1)), int(m.group(2))) for m in TESTPMD_TOTAL.finditer(open(dlog, errors="replace").read())]
    # One answer per `show`, in order; `stop` prints one more after them.
    return [(t, c, p) for t, (c, p) in zip(ts, totals)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["rvs", "testpmd"])
    ap.add_argument("samples")
    ap.add_argument("--dut-log")
    ap.add_argument("--gen-log")
    a = ap.parse_args()
    if a.kind == "testpmd" and not a.dut_log:
        ap.error("testpmd needs --dut-log")
    s = rvs_samples(a.samples) if a.kind == "rvs" else testpmd_samples(a.samples, a.dut_log)
    gen = gen_windows(a.gen_log)
    for (t0, c0, f0), (t1, c1, f1) in zip(s, s[1:]):
        if t1 > t0 and f1 >= f0 and c1 >= c0:
            lat = latency(gen, t0, t1)
            lmin, lp50 = (str(lat[0]), str(lat[1])) if lat else ("-", "-")
            print(f"{t1 - t0:.3f}\t{c1 - c0}\t{f1 - f0}\t{lmin}\t{lp50}")


if __name__ == "__main__":
    main()
