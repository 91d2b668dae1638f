#!/usr/bin/env python3
"""The soak's report (perf/soak.sh): reads the generator's JSON, the samples
(CSV) and the director's log, writes soak.md, exits 1 when a check fails.

    soak_report.py GEN_JSON SAMPLES_CSV DIRECTOR_LOG OUT_MD SECONDS FRACTION SHORT(0|1)

Flat: the mean of the last 10 % of the soak's samples within 5 % (RSS: or
4 MiB; mbufs: or 600, the per-lcore caches; connections: 10 %) of the mean of
the 10 % after the warm-up (the first 10 % of the samples, at least 3 and at
least 10 s: the cps phase's connections take that long to go). Means over a
window, not single samples: the connection count is a saw-tooth that follows
the expiry sweep. --short judges RSS and mbufs only (20 s are a few sweeps).
"""
import csv
import json
import sys


def main():
    gen_path, csv_path, dlog, md_path, secs, frac, short = sys.argv[1:8]
    gen = json.load(open(gen_path))["phases"]
    cps, soak = gen["cps"], gen["soak"]
    rows = [r for r in csv.DictReader(open(csv_path)) if r["phase"] == "soak" and r["mbufs_in_use"]]
    if len(rows) < 4:
        sys.exit(f"soak_report: only {len(rows)} samples during the soak")
    stats = None
    for line in open(dlog, errors="replace"):
        if line.startswith("rvs-stats "):
            stats = json.loads(line[len("rvs-stats "):])
    t0 = float(rows[0]["t_s"])
    warm = max(3, len(rows) // 10, sum(1 for r in rows if float(r["t_s"]) - t0 < 10))
    warm = min(warm, len(rows) - 2)
    win = max(1, len(rows) // 10)
    ref_rows = rows[warm:warm + win]
    end_rows = rows[-win:]

    def mean(rs, k):
        return sum(int(r[k]) for r in rs) / len(rs)

    figs = [("RSS (KiB)", "rss_kb", 0.05, 4096), ("mbufs in use", "mbufs_in_use", 0.05, 600),
            ("connections", "conns", 0.10, 0)]
    lines, ok = [], True
    for name, k, rel, absol in figs:
        vals = [int(r[k]) for r in rows]
        a, b = mean(ref_rows, k), mean(end_rows, k)
        flat = abs(b - a) <= max(rel * a, absol)
        if k == "conns" and short == "1":
            verdict = "not judged (--short)"
        else:
            ok &= flat
            verdict = "flat" if flat else "NOT FLAT"
        lines.append(f"| {name} | {vals[0]} | {a:.0f} | {b:.0f} | {min(vals)} | {max(vals)} | {verdict} |")
    drops = {k: v for k, v in ((stats or {}).get("drops") or {}).items() if v}
    drops_total = sum(drops.values())
    lost = soak["lost"]
    ok &= lost <= drops_total and soak["bad_total"] == 0
    created = int(rows[-1]["created"]) - int(rows[0]["created"])
    evicted = int(rows[-1]["evicted"]) - int(rows[0]["evicted"])
    dtext = f" ({', '.join(f'{k}={v}' for k, v in sorted(drops.items()))})" if drops else ""
    md = f"""# Soak: {int(secs) // 60} min {int(secs) % 60} s of connection churn

`perf/soak.sh --seconds {secs}` (fraction {frac}). The generator measured
**{cps['cps']:.0f} new connections/s** at most (SYN, ACK, data, FIN each; 3 s),
then opened and closed **{soak['rate_cps']:.0f}/s** ({float(frac):.0%}) for
{soak['secs']:.0f} s: {soak['conns_sent']} connections, {soak['tx']} frames sent,
{soak['rx']} forwarded back ({soak['late']} late), {lost} lost,
{soak['bad_total']} failing the frame checks. The director counted
{drops_total} drops in all{dtext}; created {created} connections and evicted
{evicted} during the soak.

{len(rows)} samples during the soak (`soak.csv`: t_s, phase, rss_kb,
mbufs_in_use, mbufs_size, conns, created, evicted, drops). "After warm-up":
the mean of samples {warm + 1}-{warm + win}; "end": the mean of the last {win}.
Flat: the end within 5 % (RSS: or 4 MiB; mbufs: or 600, the per-lcore caches;
connections: 10 %, a saw-tooth that follows the expiry sweep) of the value
after warm-up.

| figure | first | after warm-up | end | min | max | verdict |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}

**Verdict: {'PASS' if ok else 'FAIL'}** (flat figures; lost frames {lost} <= drops counted
{drops_total}: no silent loss; {soak['bad_total']} bad frames).
"""
    open(md_path, "w").write(md)
    print(md)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
