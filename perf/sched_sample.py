#!/usr/bin/env python3
"""What else ran on the benchmark's CPUs during one row (perf/bench.sh).

A DUT row's figure depends on its forwarding lcores having their CPUs to
themselves. On a VM they may not: the host takes the vCPU away (steal
time), or a thread of this machine (a kernel worker, the DUT's own
control thread, the bench's shell) is scheduled on the lcore's CPU. Both
show up here, from counters the kernel keeps anyway, so a slow row can be
told from a slow director:

  sample PID...            one JSON line: per thread of each process its
                           CPU time and run-queue wait (`schedstat`, ns)
                           and involuntary switches, and per CPU the
                           steal and the time spent on other work
                           (`/proc/stat`, in USER_HZ ticks)
  diff FIRST LAST N        the forwarding threads (the N threads of the
                           DUT that used the most CPU) between two
                           samples: their run-queue wait in ms, their
                           involuntary switches, and the steal of the
                           machine's CPUs in ms; tab-separated

The DUT's PID comes first in `sample`; other processes (the generator)
only add to the CPU totals.
"""

import json
import os
import sys


def threads(pid):
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns, wait_ns, _ = (int(x) for x in f.read().split())
            nonvol = 0
            with open(f"{base}/{tid}/status") as f:
                for line in f:
                    if line.startswith("nonvoluntary_ctxt_switches:"):
                        nonvol = int(line.split()[1])
            with open(f"{base}/{tid}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError):
            continue
        out[tid] = {"comm": comm, "run_ns": run_ns, "wait_ns": wait_ns, "nonvol": nonvol}
    return out


def cpus():
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = line.split()
                # user nice system idle iowait irq softirq steal
                out[v[0]] = {"steal": int(v[8]), "irq": int(v[6]) + int(v[7])}
    return out


def sample(pids):
    print(json.dumps({"dut": threads(pids[0]) if pids else {}, "cpus": cpus()}))


def diff(first, last, n):
    try:
        a = json.loads(first)
        b = json.loads(last)
    except ValueError:
        print("-\t-\t-\t-")
        return
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    # The forwarding threads: the most CPU time over the interval.
    rows = []
    for tid, t in b["dut"].items():
        t0 = a["dut"].get(tid, {"run_ns": 0, "wait_ns": 0, "nonvol": 0})
        rows.append((t["run_ns"] - t0["run_ns"], t["wait_ns"] - t0["wait_ns"], t["nonvol"] - t0["nonvol"]))
    rows.sort(reverse=True)
    fwd = rows[:n]
    run_ms = sum(r[0] for r in fwd) / 1e6
    wait_ms = sum(r[1] for r in fwd) / 1e6
    nonvol = sum(r[2] for r in fwd)
    steal = sum(b["cpus"][c]["steal"] - a["cpus"].get(c, {"steal": 0})["steal"] for c in b["cpus"])
    print(f"{run_ms:.0f}\t{wait_ms:.1f}\t{nonvol}\t{steal * tick_ms:.0f}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "sample":
        sample([p for p in sys.argv[2:] if p])
    elif len(sys.argv) == 5 and sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
