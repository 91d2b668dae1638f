#!/usr/bin/env python3
"""The callgrind part of perf/profile.sh: instructions per packet from the
callgrind outputs in a work directory, as Markdown, and the check against
perf/budgets.toml (the regression guard CI runs: `perf/profile.sh --check`).

    cg_report.py WORKDIR --packets N --flows N --conns N [--budgets FILE]
                 [--ceiling NAME=IR ...] [--check] [--full] [--json FILE]

WORKDIR holds cg.NAME.out for NAME in dry, nat, dr, tun, nat-conn,
dry-conn, dry6, nat6, nat6-conn, dry6-conn (and nat-none with --full), written by `valgrind
--tool=callgrind rvs-perf pipeline`. A figure is the inclusive cost of
`rvs_perf::pipe::data_phase` (established data) minus that of the `--batch
dry` run (the harness building the frames; dry6 for the IPv6 frames of
nat6), per packet; per connection, the inclusive cost of
`rvs_perf::pipe::conn_phase` minus that of its own `--batch dry` run
(dry-conn: the SYN, ACK, data and FIN frames built), per connection; the
same for NAT over IPv6 (nat6-conn less dry6-conn).

With --full also the detail of profile.md: each path's figure, a new
connection's instructions split between the out-of-line transition and
new-flow paths and the rest, and self cost by source file (inlined code
counted in the file it was written in) less the dry run's, for NAT data
and for a new connection.

With --check the exit status is 1 when a figure exceeds its ceiling by more
than the tolerance of the budgets file; --ceiling nat=400 overrides a
ceiling (to see the guard fail).
"""
import argparse
import json
import re
import subprocess
import sys
import tomllib

NAMES = ("nat", "dr", "tun", "conn", "nat6", "nat6-conn")
ROW = re.compile(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S+?):(\S.*?)(?: \[.*\])?$")


def annotate(work, name, inclusive):
    """callgrind_annotate's rows: [(Ir, file, function)], largest first."""
    args = ["callgrind_annotate"] + (["--inclusive=yes"] if inclusive else []) + [f"{work}/cg.{name}.out"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), m.group(2), m.group(3)))
    return rows


def incl(work, name):
    rows = {}
    for v, _, fn in annotate(work, name, True):
        rows[fn] = max(rows.get(fn, 0), v)
    return rows


def called_from(work, name, callee, caller):
    """Whether function `callee` (a name suffix) is called from `caller` in
    run `name` (callgrind_annotate's caller tree: a block of caller lines
    `<` above the function's own `*` line)."""
    args = ["callgrind_annotate", "--auto=no", "--inclusive=yes", "--tree=caller",
            f"{work}/cg.{name}.out"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    for block in text.split("\n\n"):
        lines = block.splitlines()
        own = [l for l in lines if re.match(r"\s*[\d,]+ \([^)]*\)\s+\*", l)]
        if any(re.search(rf"::{callee}( \[|$)", l) for l in own):
            if any(re.match(r"\s*[\d,]+ \([^)]*\)\s+<", l) and f"::{caller} (" in l for l in lines):
                return True
    return False


def fn_cost(rows, suffix):
    """Inclusive Ir of the function whose name ends with `suffix` (0: absent)."""
    return max((v for k, v in rows.items() if k.endswith(suffix)), default=0)


def figures(work, packets, conns, full):
    dry = fn_cost(incl(work, "dry"), "pipe::data_phase")
    dry6 = fn_cost(incl(work, "dry6"), "pipe::data_phase")
    out = {"detail": {}}
    modes = ["nat", "dr", "tun", "nat6"] + (["nat-none"] if full else [])
    for name in modes:
        r = incl(work, name)
        base = dry6 if name == "nat6" else dry
        tot = (fn_cost(r, "pipe::data_phase") - base) / packets
        out["detail"][name] = {"total": tot}
        if name in NAMES:
            out[name] = round(tot)
    for name, dry_name, key, harness in (("nat-conn", "dry-conn", "conn", "conn_harness"),
                                         ("nat6-conn", "dry6-conn", "nat6-conn", "conn6_harness")):
        r = incl(work, name)
        dry_conn = fn_cost(incl(work, dry_name), "pipe::conn_phase")
        out[key] = round((fn_cost(r, "pipe::conn_phase") - dry_conn) / conns)
        out["detail"][harness] = dry_conn / conns
        # the out-of-line paths a new connection's frames take (inclusive)
        out["detail"][name] = {
            f: fn_cost(r, f"::{f}") / conns
            for f in ("transition", "new_flow", "transition6", "first_packet6")
        }
        # IPv4's transition path is `moves` (the commit, called by the
        # dispatch with the established path's hit) and `transition` (the
        # lookup of its own, `[ha] sync` only: it calls `moves` then, which
        # the harness never runs), so the two add up.
        out["detail"][name]["transition"] += fn_cost(r, "::moves") / conns
        # IPv6's the same: `moves6` (the established path's hit) and
        # `transition6` (frames without ids, `[ha] sync`); its new-flow
        # path is `first_packet6` (`new_flow6`'s code inlined in it).
        out["detail"][name]["transition6"] += fn_cost(r, "::moves6") / conns
        out["detail"][name]["nested"] = any(
            called_from(work, name, nf, tr) for tr, nf in (("transition", "new_flow"),
                                                            ("transition6", "first_packet6")))
        # the same connections with each one's segments in one burst (the
        # full run only)
        try:
            r = incl(work, f"{name}-together")
            d = fn_cost(incl(work, f"{dry_name}-together"), "pipe::conn_phase")
            out["detail"][f"{key}-together"] = round((fn_cost(r, "pipe::conn_phase") - d) / conns)
        except subprocess.CalledProcessError:
            pass
    return out


def by_file(work, name, base, per):
    """Self cost by source file of run `name` less that of its dry run
    `base` (the harness's frame building), per packet or connection
    (`per`), largest first: where the pipeline's instructions go, inlined
    code counted in the file it was written in."""
    def sums(n):
        acc = {}
        for v, file, _ in annotate(work, n, False):
            if file.startswith("???"):
                continue
            short = file.split("/src/")[-1] if "/src/" in file else file.split("/")[-1]
            if "/rustc/" in file:
                short = "std: " + short
            acc[short] = acc.get(short, 0) + v
        return acc
    a, b = sums(name), sums(base)
    rows = [((a.get(k, 0) - b.get(k, 0)) / per, k) for k in set(a) | set(b)]
    return sorted((r for r in rows if r[0] >= 0.5), reverse=True)


def load_budgets(path, overrides):
    with open(path, "rb") as f:
        b = tomllib.load(f)
    tol = float(b.get("tolerance_percent", 5))
    rows = {}
    for n in NAMES:
        if n not in b:
            sys.exit(f"cg_report.py: {path}: no [{n}] table")
        for k in ("ceiling", "target"):
            if not isinstance(b[n].get(k), (int, float)):
                sys.exit(f"cg_report.py: {path}: [{n}] {k} missing or not a number")
        rows[n] = dict(b[n])
    for o in overrides:
        name, _, val = o.partition("=")
        if name not in rows or not val.isdigit():
            sys.exit(f"cg_report.py: --ceiling {o}: want NAME=IR with NAME one of {', '.join(NAMES)}")
        rows[name]["ceiling"] = int(val)
        rows[name]["overridden"] = True
    return tol, rows


def verdicts(fig, tol, budgets):
    """[(name, label, figure, ceiling, limit, target, verdict, target met)], and
    whether any figure is over its limit."""
    out, failed = [], False
    for n in NAMES:
        b = budgets[n]
        v = fig[n]
        limit = b["ceiling"] * (1 + tol / 100)
        if v > limit:
            verdict, failed = f"FAIL: {100 * (v / b['ceiling'] - 1):+.1f}% over the ceiling", True
        elif v < b["ceiling"] * (1 - tol / 100):
            verdict = f"ok ({100 * (v / b['ceiling'] - 1):+.1f}%: lower the ceiling)"
        else:
            verdict = f"ok ({100 * (v / b['ceiling'] - 1):+.1f}%)"
        out.append((n, b.get("label", n), v, b["ceiling"], limit, b["target"], verdict,
                    "met" if v <= b["target"] else "not met"))
    return out, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--packets", type=int, required=True)
    ap.add_argument("--flows", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--budgets", default="perf/budgets.toml")
    ap.add_argument("--ceiling", action="append", default=[])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--full", action="store_true", help="the detailed tables of profile.md too")
    ap.add_argument("--json")
    a = ap.parse_args()
    tol, budgets = load_budgets(a.budgets, a.ceiling)
    fig = figures(a.work, a.packets, a.conns, a.full)
    rows, failed = verdicts(fig, tol, budgets)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({n: fig[n] for n in NAMES}, f)
    P = print
    P()
    P(f"## Instructions per packet (callgrind), {a.flows} flows, 64-byte frames")
    P()
    P(f"Regression guard (`perf/profile.sh --check`, ceilings and targets in `{a.budgets}`; "
      f"{a.packets} packets, {a.conns} connections): a figure more than {tol:g}% over its ceiling fails CI; "
      "the target is issue 16's budget.")
    P()
    P("| figure | Ir | ceiling | target | verdict | target |")
    P("|---|---|---|---|---|---|")
    for n, label, v, ceil, limit, target, verdict, met in rows:
        mark = " (overridden)" if budgets[n].get("overridden") else ""
        P(f"| {label} | {v:,} | {ceil:,}{mark} | {target:,} | {verdict} | {met} |")
    if a.full:
        P()
        P("| path | Ir/packet |")
        P("|---|---|")
        labels = {"nat": "NAT data", "dr": "DR data", "tun": "TUN data",
                  "nat6": "NAT over IPv6 data",
                  "nat-none": "NAT data, frame by frame (no burst prefetch)"}
        for name, label in labels.items():
            P(f"| {label} | {fig['detail'][name]['total']:.0f} |")
        P()
        tg = [fig["detail"].get(k) for k in ("conn-together", "nat6-conn-together")]
        if all(tg):
            P()
            P("A new connection's segments in one burst (each connection's SYN, ACK, data and FIN")
            P("together, 8 connections a burst; the guarded figures have them apart, 32")
            P("connections' SYNs in one burst, then their ACKs, data, FINs, as real traffic):")
            P(f"IPv4 {tg[0]:,} (apart {fig['conn']:,}), IPv6 {tg[1]:,} (apart {fig['nat6-conn']:,}).")
        P()
        P("A new connection (SYN, ACK, data, FIN, apart; its frames' building subtracted), per connection:")
        P("the out-of-line paths its frames take (inclusive: the transition path takes the ACK and")
        P("the FIN, found by the established path's lookup (`moves`, `moves6`), IPv6's looking a new")
        P("client's SYN up too (`transition6`: no ids in the first pass); the new-flow path opens the")
        P("SYN's connection, IPv4's called by the dispatch on the established path's miss, IPv6's")
        P("(`first_packet6`) by its transition path there) and the rest (the first")
        P("pass of each frame, the established path of the data segment, its lookups and declines,")
        P("dispatch).")
        P()
        P("| figure | per connection | transition path | new-flow path (SYN) | rest: first pass, established, dispatch |")
        P("|---|---|---|---|---|")
        for name, key, harness, tr, nf in (("nat-conn", "conn", "conn_harness", "transition", "new_flow"),
                                           ("nat6-conn", "nat6-conn", "conn6_harness", "transition6", "first_packet6")):
            d = fig["detail"][name]
            label = "IPv4 NAT" if name == "nat-conn" else "NAT over IPv6"
            if d[nf] and not d["nested"]:
                # called by the dispatch: siblings
                tr_text, nf_text, rest = f"{d[tr]:.0f}", f"{d[nf]:.0f}", fig[key] - d[tr] - d[nf]
            elif d[nf]:
                # called from inside the transition path
                tr_text, nf_text, rest = f"{d[tr] - d[nf]:.0f}", f"{d[nf]:.0f}", fig[key] - d[tr]
            else:
                tr_text, nf_text, rest = f"{d[tr]:.0f}, new-flow inlined in it", "(in transition)", fig[key] - d[tr]
            P(f"| {label} | {fig[key]:,} (building {fig['detail'][harness]:.0f} subtracted) | "
              f"{tr_text} | {nf_text} | {rest:.0f} |")
        for title, name, base, per in (
                ("Where the instructions go, NAT data, Ir per packet", "nat", "dry", a.packets),
                ("Where the instructions go, a new IPv4 NAT connection, Ir per connection",
                 "nat-conn", "dry-conn", a.conns)):
            P()
            P(f"{title}: self cost by source file (code inlined elsewhere counted where it is written), the dry run's subtracted:")
            P()
            P("| Ir | file |")
            P("|---|---|")
            for v, file in by_file(a.work, name, base, per)[:14]:
                P(f"| {v:.1f} | `{file}` |")
    if a.check:
        print("profile.sh --check: " + ("FAILED: a figure is over its ceiling" if failed else "ok"),
              file=sys.stderr)
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
