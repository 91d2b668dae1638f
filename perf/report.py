#!/usr/bin/env python3
"""Turns the raw results of perf/bench.sh into a table, CSV, Markdown and a plot.

    report.py RAWDIR --out DIR --kind quick|full|smoke [--no-plot]
    report.py RAWDIR --check          exit 1 unless every row ran and is well formed

RAWDIR holds index.tsv (one line per run, written by bench.sh), one JSON per run
(written by `rvs-perf gen --json`) and mem.json (`rvs-perf mem --json`).
Every figure of a director row is set beside the testpmd `io` row of the same
flow count and worker count, measured in the same bench run.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

CSV_FIELDS = [
    "scenario", "mode", "flows", "workers", "pkt_size", "mpps", "baseline", "baseline_mpps",
    "ratio", "p50_us", "p99_us", "cps",
    # beyond the required columns
    "gbps", "loss", "lat_rate_mpps", "baseline_p99_us", "added_p99_us", "p50_max_us",
    "p99_max_us", "lat_min_us", "baseline_p50_us", "added_p50_us", "dut_bound", "cps_baseline", "cps_ratio", "checked", "bad",
    "dut_rss_mb", "reps", "handoffs", "lcore_wait_pct", "steal_ms",
]
BASELINE = "io"
TARGET_RATIO = {"dr": 0.85, "nat": 0.75, "tun": 0.70}
DUT = {"io": "testpmd io", "macswap": "testpmd macswap", "nat": "rvs NAT", "nat6": "rvs NAT IPv6 (78 B)",
       "dr": "rvs DR", "tun": "rvs TUN"}
MODE_ORDER = ["io", "macswap", "nat", "nat6", "dr", "tun"]
# The director rows (rvs processes; testpmd's are the baselines).
DIRECTORS = ("nat", "nat6", "dr", "tun")


def flows_label(n):
    n = int(n)
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def load_sched(raw):
    """sched.tsv (bench.sh, perf/sched_sample.py): per run name, what else
    ran on the CPUs during its max phase; {} for raw results without it."""
    out = {}
    try:
        with open(os.path.join(raw, "sched.tsv")) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                try:
                    cpu, wait = float(row["fwd_cpu_ms"]), float(row["fwd_wait_ms"])
                    out[row["name"]] = {"wait_pct": 100 * wait / (cpu + wait) if cpu + wait > 0 else None,
                                        "steal_ms": float(row["steal_ms"])}
                except (KeyError, ValueError):
                    pass
    except OSError:
        pass
    return out


def load_runs(raw):
    runs = []
    sched = load_sched(raw)
    with open(os.path.join(raw, "index.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            row["sched"] = sched.get(row["name"], {})
            if row["status"] != "ok":
                runs.append({"meta": row, "doc": None})
                continue
            try:
                with open(os.path.join(raw, row["name"] + ".json")) as j:
                    doc = json.load(j)
            except (OSError, ValueError):
                doc = None
                row["status"] = "no-json"
            runs.append({"meta": row, "doc": doc})
    return runs


def ph(doc, phase, *keys, default=None):
    v = doc.get("phases", {}).get(phase)
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return default
        v = v[k]
    return v


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def handoffs_of(rs):
    """The rvs workers' hand-offs summed over runs; None for testpmd rows
    (and for raw results from before the column)."""
    xs = [r["meta"].get("dut_handoffs") for r in rs]
    xs = [int(x) for x in xs if x not in (None, "")]
    return sum(xs) if xs else None


def summarize(runs):
    """One row per (mode, flows, workers): the median over repetitions."""
    groups = {}
    for r in runs:
        m = r["meta"]
        if r["doc"] is None:
            continue
        key = (m["mode"], int(m["flows"]), int(m["workers"]), int(m["size"]))
        groups.setdefault(key, []).append(r)
    rows = {}
    for key, rs in groups.items():
        mode, flows, workers, size = key
        docs = [r["doc"] for r in rs]
        rows[key] = {
            "mode": mode, "flows": flows, "workers": workers, "pkt_size": size,
            "reps": len(rs),
            "mpps": med([ph(d, "max", "rx_mpps") for d in docs]),
            "gbps": med([ph(d, "max", "gbps") for d in docs]),
            "loss": med([ph(d, "max", "loss") for d in docs]),
            "p50_us": med([ph(d, "lat", "lat_us", "p50") for d in docs]),
            "p99_us": med([ph(d, "lat", "lat_us", "p99") for d in docs]),
            "lat_rate_mpps": med([(ph(d, "lat", "rate_pps") or 0) / 1e6 for d in docs]),
            # io's latency at other rates: {rate_pps: {p50, p99}} (first rep)
            "lat_at": {k: {"p50": v["lat_us"]["p50"], "p99": v["lat_us"]["p99"]}
                       for k, v in (docs[0].get("phases", {}).get("lat_at") or {}).items()},
            "p50_max_us": med([ph(d, "max", "lat_us", "p50") for d in docs]),
            "p99_max_us": med([ph(d, "max", "lat_us", "p99") for d in docs]),
            "lat_min_us": med([ph(d, "lat", "lat_us", "min") for d in docs]),
            # share of send attempts that found the DUT's ring full at max rate
            "dut_bound": med([ph(d, "max", "tx_blocked_frac") for d in docs]),
            "cps": med([ph(d, "cps", "cps") for d in docs]),
            "checked": sum(sum((ph(d, p, "checked") or 0) for p in ("open", "max", "lat", "cps")) for d in docs),
            "bad": sum(sum((ph(d, p, "bad_total") or 0) for p in ("max", "lat", "cps")) for d in docs),
            "dut_rss_mb": med([int(r["meta"]["dut_rss_kb"] or 0) / 1024 for r in rs]),
            # rvs: frames handed between workers (0 when flows arrive on
            # their owner's queue, as the director's RSS places them)
            "handoffs": handoffs_of(rs),
            # The share of the max phase its forwarding lcores spent waiting
            # for their CPU (taken by the host or another thread): a row
            # with more than a few % measured the machine, not the DUT.
            "lcore_wait_pct": med([r["meta"]["sched"].get("wait_pct") for r in rs]),
            "steal_ms": med([r["meta"]["sched"].get("steal_ms") for r in rs]),
        }
        # The frame actually sent (nat6: an IPv6/TCP frame is 78 bytes at
        # least, whatever the size asked for; the baseline is the io row
        # of the asked size).
        lens = [d.get("frame_len") for d in docs if d.get("frame_len")]
        if lens:
            rows[key]["pkt_size"] = max(size, max(lens) + 4)
    for key, row in rows.items():
        mode, flows, workers, size = key
        base = rows.get((BASELINE, flows, workers, size))
        row["scenario"] = f"{mode}-{flows_label(flows)}-w{workers}"
        row["baseline"] = f"testpmd-{BASELINE}"
        row["baseline_mpps"] = base["mpps"] if base else None
        row["ratio"] = (row["mpps"] / base["mpps"]) if base and base["mpps"] and row["mpps"] is not None else None
        # Latency is compared at equal offered load: testpmd io measured at
        # this row's own latency rate (bench.sh passes it), else io's 50%.
        bp99 = base["p99_us"] if base else None
        bp50 = base["p50_us"] if base else None
        row["baseline_lat_same_rate"] = False
        if base and row["lat_rate_mpps"]:
            want = row["lat_rate_mpps"] * 1e6
            near = min(base.get("lat_at", {}).items(), key=lambda kv: abs(float(kv[0]) - want), default=None)
            at = near[1] if near and abs(float(near[0]) - want) <= 0.01 * want else None
            if at:
                bp99, bp50 = at["p99"], at["p50"]
                row["baseline_lat_same_rate"] = True
        row["baseline_p99_us"] = bp99
        row["baseline_p50_us"] = bp50
        row["added_p99_us"] = (row["p99_us"] - bp99) if bp99 is not None and row["p99_us"] is not None else None
        row["added_p50_us"] = (row["p50_us"] - bp50) if bp50 is not None and row["p50_us"] is not None else None
        row["cps_baseline"] = base["cps"] if base else None
        row["cps_ratio"] = (row["cps"] / base["cps"]) if base and base["cps"] and row["cps"] is not None else None
    order = sorted(rows.values(), key=lambda r: (r["workers"], r["flows"], MODE_ORDER.index(r["mode"]) if r["mode"] in MODE_ORDER else 99))
    return order


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else (round(r[k], 4) if isinstance(r[k], float) else r[k])) for k in CSV_FIELDS})


def table_lines(rows):
    head = ["scenario", "DUT", "Mpps", "ratio", "Gbit/s", "loss %", "DUT-bound", "min us", "p50 us", "p99 us", "+p50 us", "+p99 us", "p99 us @max", "conn/s", "cps ratio", "checked/bad", "hand-offs", "lcore wait %"]
    lines = [head]
    for r in rows:
        lines.append([
            r["scenario"], DUT.get(r["mode"], r["mode"]), fmt(r["mpps"], 3), fmt(r["ratio"], 2), fmt(r["gbps"], 2),
            fmt((r["loss"] or 0) * 100, 2), fmt(r["dut_bound"], 2), fmt(r["lat_min_us"], 1),
            fmt(r["p50_us"], 1), fmt(r["p99_us"], 1), fmt(r["added_p50_us"], 1), fmt(r["added_p99_us"], 1),
            fmt(r["p99_max_us"], 0), f"{r['cps'] / 1e6:.3f}M" if r["cps"] else "-", fmt(r["cps_ratio"], 2),
            f"{r['checked']}/{r['bad']}", fmt(r.get("handoffs")), fmt(r.get("lcore_wait_pct"), 1),
        ])
    return lines


def print_table(rows):
    lines = table_lines(rows)
    widths = [max(len(l[i]) for l in lines) for i in range(len(lines[0]))]
    for n, l in enumerate(lines):
        print("  ".join(c.rjust(widths[i]) if i > 1 else c.ljust(widths[i]) for i, c in enumerate(l)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def md_table(lines):
    out = ["| " + " | ".join(lines[0]) + " |", "|" + "|".join("---" for _ in lines[0]) + "|"]
    out += ["| " + " | ".join(l) + " |" for l in lines[1:]]
    return out


def load_costs(raw):
    """cost.tsv (bench.sh's cost rows): {(mode, flows, workers): {"rate", "cpp"}},
    the median over repetitions (and `bench.sh --cost-rounds`) of busy cycles
    per packet; "best": the lowest of them (a DUT process spends its whole
    run in the VM's fast or slow state), "runs": how many."""
    groups = {}
    sched = load_sched(raw)
    try:
        with open(os.path.join(raw, "cost.tsv")) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["status"] != "ok" or not row["cycles_per_packet"]:
                    continue
                k = (row["mode"], int(row["flows"]), int(row["workers"]))
                loop = row.get("loop_cycles_per_packet") or ""
                fpb = row.get("frames_per_burst") or ""
                name = f"cost-{row['mode']}-f{row['flows']}-w{row['workers']}-r{row['rep']}"
                groups.setdefault(k, []).append((float(row["rate_pps"]), float(row["cycles_per_packet"]),
                                                 float(loop) if loop else None,
                                                 sched.get(name, {}).get("wait_pct"),
                                                 float(fpb) if fpb else None))
    except (OSError, ValueError, KeyError):
        return {}
    windows = load_cost_windows(raw)
    out = {}
    for k, v in groups.items():
        loops = [l for _, _, l, _, _ in v if l is not None]
        win = sorted(c for c, _ in windows.get(k, []))
        near = near_windows(windows, k)
        out[k] = {"rate": med([r for r, _, _, _, _ in v]), "cpp": med([c for _, c, _, _, _ in v]),
                  "best": min(c for _, c, _, _, _ in v), "runs": len(v),
                  "loop": med(loops) if loops else None, "wait": med([w for _, _, _, w, _ in v]),
                  "burst": med([b for _, _, _, _, b in v]),
                  "windows": len(win), "win_p25": quantile(win, 0.25),
                  "near": len(near) if near is not None else None,
                  "near_p50": quantile(near, 0.5) if near else None}
    return out


def quantile(xs, q):
    """The q-quantile of sorted xs (nearest rank), None if empty."""
    return xs[int(q * (len(xs) - 1))] if xs else None


# A window is in the VM's near state when the generator's lowest latency in
# it is under this many times the 10th percentile of testpmd io's windows'
# lowest latencies at the same flow count (near ~330 ns for io, far ~1,000
# ns: a frame crosses between the CPUs twice, several cache lines each way;
# a director's own work adds less than the gap). The percentile, not the
# minimum: one lucky window of 180 ns set the bar below every director's
# near state.
NEAR_FACTOR = 2.5


def load_cost_windows(raw):
    """cost_windows.tsv (bench.sh's sampler, perf/cost_windows.py):
    {(mode, flows, workers): [(busy cycles per packet, generator's lowest
    latency ns or None) of each 0.25 s window of every run]}. A window
    shorter than 0.1 s or longer than 1 s (a sampler the machine held up),
    or with fewer frames than 80% of the offered rate (one that began
    before the phase or ended after it), is left out."""
    out = {}
    try:
        with open(os.path.join(raw, "cost.tsv")) as f:
            rates = {(r["mode"], r["flows"], r["workers"], r["rep"]): float(r["rate_pps"] or 0)
                     for r in csv.DictReader(f, delimiter="\t")}
        with open(os.path.join(raw, "cost_windows.tsv")) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                secs, cyc, frames = float(row["seconds"]), int(row["cycles"]), int(row["frames"])
                rate = rates.get((row["mode"], row["flows"], row["workers"], row["rep"]), 0)
                lat = row.get("lat_min_ns") or "-"
                if 0.1 <= secs <= 1.0 and frames > 0 and frames >= 0.8 * rate * secs:
                    k = (row["mode"], int(row["flows"]), int(row["workers"]))
                    out.setdefault(k, []).append((cyc / frames, int(lat) if lat.isdigit() else None))
    except (OSError, ValueError, KeyError):
        return {}
    return out


def near_windows(windows, k):
    """The busy cycles per packet of key k's windows in the near state
    (`NEAR_FACTOR`), sorted; None when testpmd io has no latency at k's
    flow count to anchor the threshold."""
    io = sorted(l for c, l in windows.get((BASELINE, k[1], k[2]), []) if l)
    if not io:
        return None
    limit = NEAR_FACTOR * quantile(io, 0.1)
    return sorted(c for c, l in windows.get(k, []) if l and l < limit)


def read_cycles(mem, flows):
    """One random read of memory the size of a `flows`-connection table, TSC
    cycles on the DUT's CPU (`rvs-perf mem`'s pointer chase), if measured."""
    m = next((x for x in mem or [] if x["conns"] == flows and x.get("random_read_cycles")), None)
    return m["random_read_cycles"] if m else None


def floor_of(costs, mem, key):
    """The floor of a director row at `key`: testpmd io's busy cycles plus one
    uncached read per packet, shared by the frames of an rx burst (their
    reads overlap); (floor cycles, best io/DUT ratio), or None."""
    c, base = costs.get(key), costs.get((BASELINE, key[1], key[2]))
    r = read_cycles(mem, key[1])
    if not (c and base and r and c.get("burst")):
        return None
    f = base["cpp"] + r / max(c["burst"], 1.0)
    return f, base["cpp"] / f


def cost_lines(costs, mem=None):
    """The cost table: busy cycles per packet at one offered rate, and the
    ratio testpmd io cycles / these (what issue 16's targets apply to);
    for director rows at a flow count `rvs-perf mem` measured, the floor
    of one uncached read per packet (`floor_of`)."""
    if not costs:
        return []
    lines = [["scenario", "DUT", "offered Mpps", "runs", "busy cycles/packet", "io cycles / these",
              "best run", "io best / best", "0.25 s windows", "windows: p25", "io p25 / p25",
              "near-state windows", "near: p50", "io near p50 / near p50",
              "rvs: whole busy loops, empty polls included", "rvs: frames per rx burst",
              "floor: io + one uncached read per packet", "io cycles / floor", "lcore wait %"]]
    for (mode, flows, w) in sorted(costs, key=lambda k: (k[2], k[1], MODE_ORDER.index(k[0]) if k[0] in MODE_ORDER else 9)):
        c = costs[(mode, flows, w)]
        base = costs.get((BASELINE, flows, w))
        ratio = base["cpp"] / c["cpp"] if base and c["cpp"] else None
        fl = floor_of(costs, mem, (mode, flows, w)) if mode in DIRECTORS else None
        best = base["best"] / c["best"] if base and c["best"] else None
        wr = base["win_p25"] / c["win_p25"] if base and base.get("win_p25") and c.get("win_p25") else None
        nr = base["near_p50"] / c["near_p50"] if base and base.get("near_p50") and c.get("near_p50") else None
        lines.append([f"{flows_label(flows)} flows, {w}w", DUT.get(mode, mode), fmt(c["rate"] / 1e6, 3),
                      str(c["runs"]), fmt(c["cpp"], 1), fmt(ratio, 2), fmt(c["best"], 1), fmt(best, 2),
                      str(c.get("windows", 0)), fmt(c.get("win_p25"), 1), fmt(wr, 2),
                      "-" if c.get("near") is None else str(c["near"]), fmt(c.get("near_p50"), 1), fmt(nr, 2),
                      fmt(c["loop"], 1) if c.get("loop") else "-",
                      fmt(c.get("burst"), 2), fmt(fl[0], 0) if fl else "-", fmt(fl[1], 2) if fl else "-",
                      fmt(c.get("wait"), 1)])
    return lines


def floor_text(costs, mem):
    """What the floor columns mean, with this run's read latencies."""
    reads = [(x["conns"], x["random_read_cycles"], x["random_read_ns"], x["memory_bytes"])
             for x in mem or [] if x.get("random_read_cycles")]
    if not reads or not costs:
        return []
    said = "; ".join(f"{flows_label(n)} flows: {cy:.0f} cycles ({ns:.0f} ns) in {b / 2**20:.0f} MiB"
                     for n, cy, ns, b in reads)
    return ["", "The floor columns: at a flow count whose table is larger than the last-level cache, a packet "
            "of a flow not seen for a while reads at least one line that is in no cache (its index bucket; its "
            "record too, unless the hardware prefetcher saw it coming). `rvs-perf mem` measures one such read "
            "on the DUT's CPU, each waiting for the one before, in memory of the table's size and kind (THP): "
            f"{said}. The frames of one rx burst can overlap their reads, so the floor of any DUT that keeps "
            "per-flow state is testpmd io's cycles plus one read divided by the frames per burst (rvs's, at this "
            "rate); `io cycles / floor` is the best ratio such a DUT can reach here. A model (it gives the DUT's "
            "own work, and any overlap of the read with io's, for free), generated from this run's figures."]


def load_conn_memory(raw):
    """conn_memory.tsv (bench.sh, from each director's start-up log):
    {row name: [what backs worker 0's connection table, worker 1's, ...]}."""
    out = {}
    try:
        with open(os.path.join(raw, "conn_memory.tsv")) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3:
                    out.setdefault(parts[0], []).append(parts[2])
    except OSError:
        pass
    return out


def conn_memory_line(raw):
    """One sentence: the kinds of memory the director rows' tables got."""
    cm = load_conn_memory(raw)
    if not cm:
        return None
    kinds = {}
    for name, ks in cm.items():
        for k in ks:
            # the THP share varies row to row: group by the allocator and page kind
            kinds.setdefault(k.split(" (")[0], []).append(k)
    parts = [f"{k} ({len(v)} worker tables{', e.g. ' + v[0] if v[0] != k else ''})" for k, v in sorted(kinds.items())]
    return "Director connection tables (`conn_memory` of the start-up log): " + "; ".join(parts) + "."


def load_mem(raw):
    try:
        with open(os.path.join(raw, "mem.json")) as f:
            return json.load(f)["mem"]
    except (OSError, ValueError, KeyError):
        return []


def targets(rows, mem, costs=None):
    """(target, value, met) for each target of issue 5 (and issue 16's
    cycles-per-packet ratios)."""
    out = []
    by = {(r["mode"], r["flows"], r["workers"]): r for r in rows}
    costs = costs or {}
    for mode, want in TARGET_RATIO.items():
        key = (mode, 1_000_000, 1)
        if key not in costs:
            key = next((k for k in sorted(costs) if k[0] == mode and k[2] == 1), None)
        c = costs.get(key) if key else None
        base = costs.get((BASELINE, key[1], 1)) if key else None
        if c and base:
            v = base["cpp"] / c["cpp"]
            fl = floor_of(costs, mem, key)
            at_floor = f"; floor of one uncached read per packet: {fl[1]:.2f}" if fl else ""
            b = base["best"] / c["best"]
            best = f"; best runs: {b:.2f} ({c['best']:.0f} vs {base['best']:.0f})" if c["runs"] > 1 or base["runs"] > 1 else ""
            if c.get("win_p25") and base.get("win_p25"):
                best += (f"; 0.25 s windows, p25: {base['win_p25'] / c['win_p25']:.2f} "
                         f"({c['win_p25']:.0f} vs {base['win_p25']:.0f})")
            if c.get("near_p50") and base.get("near_p50"):
                best += (f"; near-state windows ({c['near']} and {base['near']}), p50: "
                         f"{base['near_p50'] / c['near_p50']:.2f} ({c['near_p50']:.0f} vs {base['near_p50']:.0f})")
            out.append((f"{mode.upper()} busy cycles/packet, 1 worker, {flows_label(key[1])} flows: testpmd io / rvs >= {want:.2f}",
                        f"{v:.2f} ({c['cpp']:.0f} vs {base['cpp']:.0f} cycles at {c['rate'] / 1e6:.2f} Mpps, medians{best}{at_floor})", v >= want))
    for mode, want in TARGET_RATIO.items():
        r = by.get((mode, 1_000_000, 1))
        v = r["ratio"] if r else None
        out.append((f"{mode.upper()} established, 1 worker, 1M flows: >= {want:.2f} x testpmd io",
                    f"{v:.2f} ({r['mpps']:.3f} vs {r['baseline_mpps']:.3f} Mpps)" if v is not None else "not measured",
                    None if v is None else v >= want))
    for mode in DIRECTORS:
        r = by.get((mode, 1_000_000, 1)) or next((x for x in rows if x["mode"] == mode and x["workers"] == 1), None)
        if r and r["cps"]:
            out.append((f"{mode.upper()} new connections >= 1 M/s per worker ({flows_label(r['flows'])} flows)",
                        f"{r['cps'] / 1e6:.3f} M/s (testpmd io: {r['cps_baseline'] / 1e6:.3f} M/s of the same 4-packet mix)" if r["cps_baseline"] else f"{r['cps'] / 1e6:.3f} M/s",
                        r["cps"] / r["workers"] >= 1e6))
    for mode in DIRECTORS:
        r = by.get((mode, 1_000_000, 1)) or next((x for x in rows if x["mode"] == mode and x["workers"] == 1), None)
        if r and r["added_p99_us"] is not None:
            same = "same rate" if r.get("baseline_lat_same_rate") else "io at its own 50%"
            out.append((f"{mode.upper()} p99 latency added over testpmd io at 50% of max rate < 10 us",
                        f"{r['added_p99_us']:+.1f} us (p99 {r['p99_us']:.1f} vs {r['baseline_p99_us']:.1f} us, {same}, "
                        f"{r['lat_rate_mpps']:.2f} Mpps; p50 {r['added_p50_us']:+.1f} us)",
                        r["added_p99_us"] < 10))
    for m in mem:
        if m["conns"] == 1_000_000 or m["conns"] == 10_000_000:
            out.append((f"<= 128 bytes per tracked connection ({flows_label(m['conns'])})",
                        f"{m['bytes_per_conn']:.1f} B (table), {m['rss_bytes_per_conn']:.1f} B (RSS)",
                        max(m["bytes_per_conn"], m["rss_bytes_per_conn"]) <= 128))
        if m["conns"] == 10_000_000:
            gib = max(m["memory_bytes"], m["rss_delta_bytes"]) / 2**30
            out.append(("10M connections fit in 2 GiB", f"{gib:.2f} GiB", gib <= 2))
    return out


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        return ""


def machine():
    cpu = ""
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
        "load": " ".join(load), "commit": sh(["git", "rev-parse", "--short", "HEAD"]),
        "dpdk": sh(["pkg-config", "--modversion", "libdpdk"]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w1 = [r for r in rows if r["workers"] == 1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"io": ("k", "--"), "macswap": ("0.5", "--"), "nat": ("tab:blue", "-"), "nat6": ("tab:purple", "-"), "dr": ("tab:green", "-"), "tun": ("tab:red", "-")}
    for mode in MODE_ORDER:
        rs = sorted((r for r in w1 if r["mode"] == mode and r["mpps"] is not None), key=lambda r: r["flows"])
        if not rs:
            continue
        c, ls = styles[mode]
        xs = [r["flows"] for r in rs]
        a1.plot(xs, [r["mpps"] for r in rs], marker="o", color=c, linestyle=ls, label=DUT[mode])
        p99 = [(r["flows"], r["p99_us"]) for r in rs if r["p99_us"] is not None]
        p50 = [(r["flows"], r["p50_us"]) for r in rs if r["p50_us"] is not None]
        if p99:
            a2.plot(*zip(*p99), marker="o", color=c, linestyle=ls, label=f"{DUT[mode]} p99")
        if p50:
            a2.plot(*zip(*p50), marker=".", color=c, linestyle=":", label=f"{DUT[mode]} p50")
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("established flows")
        a.grid(True, which="both", alpha=0.3)
    a1.set_ylabel("Mpps (64-byte packets, 1 worker)")
    a1.set_title("Throughput vs flow count")
    a1.set_ylim(bottom=0)
    a1.legend(fontsize=8)
    a2.set_yscale("log")
    a2.set_ylabel("latency, us (at 50% of each DUT's max rate)")
    a2.set_title("Latency vs flow count")
    a2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(rows, runs, mem, path, kind, m, png, raw_dir):
    L = [f"# rvs benchmark ({kind})", ""]
    L.append(f"{m['date']}, commit `{m['commit']}`, DPDK {m['dpdk']}, {m['cpus']} x {m['cpu']}, kernel {m['kernel']}, "
             f"load average at the end {m['load']}.")
    L.append("")
    L.append("Generator: `rvs-perf gen` on CPU 0; device under test (rvs or dpdk-testpmd) on CPU 1; two `net_memif` "
             "links; 64-byte frames unless said (NAT IPv6: 78-byte IPv6/TCP frames, the smallest valid); `ratio` = Mpps / testpmd io Mpps of the same flow count and workers, "
             "same run. Latency min/p50/p99 at 50% of each DUT's own max rate; `+p50`/`+p99` = over testpmd io "
             "measured at the same offered rate; `p99 @max` at the max rate (queueing). conn/s: new connections (SYN, ACK, data, FIN) at the max rate. "
             "checked/bad: frames verified byte by byte (sampled 1/16) / failures. DUT-bound: share of the generator's "
             "send attempts at the max rate that found the DUT's memif ring full (near 1: the DUT sets the pace; near 0: "
             "the generator does, and the figure is a lower bound for the DUT). hand-offs: frames rvs's workers passed "
             "to the worker owning their flow (the generator places flows on queues as the director's RSS would, so 0).")
    orders = sorted({r["doc"].get("order", "seq") for r in runs if r["doc"]})
    if orders == ["scatter"]:
        L.append("")
        L.append("Order of the data over the flows: `scatter` (`--order scatter`: a fixed permutation, so each packet's "
                 "connection record is a random memory access, as in real traffic; the default `seq` sends the flows in "
                 "the order they were opened, and the records' order in the slab lets the CPU's prefetcher fetch them ahead).")
    L.append("")
    cml = conn_memory_line(raw_dir)
    if cml:
        L += [cml, ""]
    L += md_table(table_lines(rows))
    skipped = [r["meta"] for r in runs if r["meta"]["status"].startswith("skipped")]
    failed = [r["meta"] for r in runs if r["meta"]["status"] not in ("ok",) and not r["meta"]["status"].startswith("skipped")]
    for s in skipped:
        L.append("")
        why = s["status"].split("-", 1)[1].replace("cpus", " CPUs")
        L.append(f"{s['workers']}-worker rows skipped: only {why} (the generator needs a CPU, and each worker one; "
                 "`--force-workers` runs them on shared CPUs as a functional check).")
    for f in failed:
        L.append("")
        L.append(f"Run `{f['name']}` failed: {f['status']}.")
    costs = load_costs(raw_dir)
    if costs:
        L += ["", "## Busy cycles per packet at one offered rate", "",
              "Every DUT again, offered half the slowest max rate of the rows above; busy cycles (poll iterations "
              "that received frames) per packet, read around the generator's `cost` phase: rvs from `rvs ctl status "
              "--json`, testpmd from `--record-core-cycles`. Both count alike: testpmd counts a stream's rx and tx "
              "only when its rx returned frames, rvs its loops that moved frames less the rx polls in them that "
              "returned nothing (the `whole busy loops` column: rvs's whole loops). testpmd io runs first and again "
              "last in each round (`bench.sh --cost-rounds`: every DUT in each round). `busy cycles/packet`: the "
              "median of a DUT's runs; `best run`: the lowest. On this VM a DUT process spends its whole run in one "
              "of two states, the same testpmd io ~450 or ~900 cycles per packet from one run to the next (and a "
              "ping-pong of a cache line between the two CPUs 40-60 or ~330 ns), so a median of few runs can set "
              "one DUT's fast state against another's slow one; the best runs compare fast with fast. The state "
              "also changes within a run, from one second to the next, so the phase is sampled every 0.25 s "
              "as well (`perf/cost_windows.py`, on the generator's CPU): `windows: p25` is the 25th percentile "
              "of the busy cycles per packet of all of a DUT's windows (each divided by the frames the DUT "
              "itself counted), a like-for-like figure of each DUT's fast state. The state of each window "
              "is also read off the generator's own latencies (`cost-window` lines of its log, 16 a second): "
              "the two vCPUs sit beside each other (a cache line moves in ~60 ns) or far apart (~300 ns), "
              "and every frame crosses between them twice, so the lowest latency in a window is about "
              f"three times higher in the far state, whatever the DUT. `near-state windows`: those whose "
              f"lowest latency is under {NEAR_FACTOR} times the 10th percentile of testpmd io's windows' "
              "lowest latencies at the same flow count; `near: p50` their median. The sampler is one process per phase "
              "(`perf/cost_sampler.py`), the same wake-up for every DUT. The ratio "
              "columns are the ones issue 16's targets apply to.",
              ""]
        L += md_table(cost_lines(costs, mem))
        L += floor_text(costs, mem)
    if mem:
        L += ["", "## Connection-table memory", "",
              "| connections | table (memory_bytes) | bytes/conn | RSS delta | RSS bytes/conn | insert ns | lookup ns | "
              "lookup alone, ns (cycles) | one random read, ns (cycles) | pages |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for x in mem:
            alone = (f"{x['lookup_dependent_ns']:.0f} ({x['lookup_dependent_cycles']:.0f})"
                     if x.get("lookup_dependent_ns") else "-")
            read = f"{x['random_read_ns']:.0f} ({x['random_read_cycles']:.0f})" if x.get("random_read_ns") else "-"
            L.append(f"| {flows_label(x['conns'])} | {x['memory_bytes'] / 2**20:.1f} MiB | {x['bytes_per_conn']:.1f} | "
                     f"{x['rss_delta_bytes'] / 2**20:.1f} MiB | {x['rss_bytes_per_conn']:.1f} | {x['insert_ns']:.0f} | {x['lookup_ns']:.0f} | "
                     f"{alone} | {read} | {x.get('conn_memory', '-')} |")
        L += ["", "`lookup ns`: lookups of random keys one after another (the CPU overlaps them); `lookup alone`: "
              "each key chosen by the one before's record, so nothing overlaps (a frame that arrives alone); "
              "`one random read`: a pointer chase through memory of the table's size and kind, on the DUT's CPU."]
    t = targets(rows, mem, costs)
    if t:
        L += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for name, val, met in t:
            L.append(f"| {name} | {val} | {'-' if met is None else ('yes' if met else 'NO')} |")
    if png:
        L += ["", f"![throughput and latency vs flows]({os.path.basename(png)})"]
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def check(raw):
    runs = load_runs(raw)
    ok = True
    if not runs:
        print("report.py --check: no runs")
        return False
    for r in runs:
        m = r["meta"]
        if m["status"].startswith("skipped"):
            continue
        if m["status"] != "ok" or r["doc"] is None:
            print(f"report.py --check: {m['name']}: {m['status']}")
            ok = False
            continue
        d = r["doc"]
        for p in ("max", "lat", "cps"):
            if p not in d["phases"]:
                print(f"report.py --check: {m['name']}: phase {p} missing")
                ok = False
                continue
            st = d["phases"][p]
            if st["rx"] <= 0 or st["checked"] <= 0:
                print(f"report.py --check: {m['name']}: {p}: nothing received/checked")
                ok = False
            if st["bad_total"] != 0:
                print(f"report.py --check: {m['name']}: {p}: {st['bad_total']} frames failed the checks: {st['bad']} {st['bad_examples'][:1]}")
                ok = False
    try:
        with open(os.path.join(raw, "cost.tsv")) as f:
            for c in csv.DictReader(f, delimiter="\t"):
                if c["status"] != "ok" or not c["cycles_per_packet"] or float(c["cycles_per_packet"]) <= 0:
                    print(f"report.py --check: cost row {c['mode']} f{c['flows']} w{c['workers']}: {c['status']}")
                    ok = False
        # The sampler ran: every cost row has windows (any: a short smoke
        # phase may have none that `load_cost_windows` keeps), and the
        # generator's latency labelled at least one of them.
        sampled, timed = set(), set()
        with open(os.path.join(raw, "cost_windows.tsv")) as f:
            for w in csv.DictReader(f, delimiter="\t"):
                k = (w["mode"], w["flows"], w["workers"], w["rep"])
                sampled.add(k)
                if (w.get("lat_min_ns") or "-").isdigit():
                    timed.add(k)
        with open(os.path.join(raw, "cost.tsv")) as f:
            for c in csv.DictReader(f, delimiter="\t"):
                k = (c["mode"], c["flows"], c["workers"], c["rep"])
                if c["status"] != "ok":
                    continue
                what = ("no 0.25 s window sampled" if k not in sampled else
                        "no window with the generator's latency (its cost-window lines)" if k not in timed else "")
                if what:
                    print(f"report.py --check: cost row {c['mode']} f{c['flows']} w{c['workers']} r{c['rep']}: {what}")
                    ok = False
    except OSError:
        pass
    cm = load_conn_memory(raw)
    for r in runs:
        m = r["meta"]
        if m["mode"] in DIRECTORS and m["status"] == "ok" and not cm.get(m["name"]):
            print(f"report.py --check: {m['name']}: the director did not log its connection table's memory")
            ok = False
    line = conn_memory_line(raw)
    if line:
        print(f"report.py --check: {line}")
    rows = summarize(runs)
    for r in rows:
        for k in ("mpps", "p50_us", "p99_us", "cps"):
            if r[k] is None:
                print(f"report.py --check: {r['scenario']}: {k} missing")
                ok = False
        if r.get("handoffs"):
            print(f"report.py --check: {r['scenario']}: {r['handoffs']} frames handed between workers (flows off their RSS queue)")
            ok = False
        if r["mode"] != BASELINE and r["ratio"] is None:
            print(f"report.py --check: {r['scenario']}: no baseline ratio")
            ok = False
    print("report.py --check: " + ("ok" if ok else "FAILED") + f" ({len(rows)} rows)")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--out")
    ap.add_argument("--kind", default="full")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.check:
        sys.exit(0 if check(a.raw) else 1)
    runs = load_runs(a.raw)
    rows = summarize(runs)
    mem = load_mem(a.raw)
    print()
    print_table(rows)
    costs = load_costs(a.raw)
    if costs:
        print()
        for line in cost_lines(costs, mem):
            print("  ".join(f"{c:>18}" for c in line))
    for name, val, met in targets(rows, mem, costs):
        print(f"  target: {name}: {val} -> {'-' if met is None else ('met' if met else 'NOT met')}")
    cml = conn_memory_line(a.raw)
    if cml:
        print(f"  {cml}")
    os.makedirs(a.out, exist_ok=True)
    m = machine()
    csv_path = os.path.join(a.out, "latest.csv")
    write_csv(rows, csv_path)
    png = None
    if not a.no_plot:
        try:
            png = os.path.join(a.out, "latest.png")
            plot(rows, png)
        except Exception as e:  # the plot is a bonus; the figures are in the CSV
            print(f"report.py: no plot: {e}")
            png = None
    md_path = os.path.join(a.out, "latest.md")
    write_md(rows, runs, mem, md_path, a.kind, m, png, a.raw)
    if mem:
        with open(os.path.join(a.out, "latest-mem.json"), "w") as f:
            json.dump({"mem": mem}, f, indent=1)
    if a.kind in ("quick", "full"):
        for src in (csv_path, md_path, png):
            if src:
                dst = os.path.join(a.out, a.kind + os.path.splitext(src)[1])
                shutil.copyfile(src, dst)
        # the copy names its own picture
        mdk = os.path.join(a.out, a.kind + ".md")
        if png and os.path.exists(mdk):
            s = open(mdk).read().replace("(latest.png)", f"({a.kind}.png)")
            open(mdk, "w").write(s)
    print(f"\nreport.py: wrote {csv_path}, {md_path}" + (f", {png}" if png else ""))


if __name__ == "__main__":
    main()
