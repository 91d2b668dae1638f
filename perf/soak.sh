#!/usr/bin/env bash
# Soak: the director under steady connection churn for a long time (issue 12).
#
#   perf/soak.sh                 10 minutes (the README's figures)
#   perf/soak.sh --minutes 60    longer
#   perf/soak.sh --short         ~30 s, for CI (ci/test.sh): same checks, 20 s of soak
#
# Options: --minutes N  --seconds N  --interval S (sampling, default 5; 2 with
#          --short)  --fraction F (soak rate / measured max cps, default 0.5)
#          --no-build  --out DIR (default perf/results; --short: a temp dir)
#
# The memif generator (rvs-perf gen, CPU 0) and rvs (worker on CPU 1) as in
# perf/bench.sh. The generator measures the director's maximum rate of new
# connections (phase cps: SYN, ACK, data, FIN each, 3 s), then opens and
# closes connections at FRACTION of it for the soak's duration (phase soak).
# Every INTERVAL seconds this script samples the director: resident memory
# (VmRSS), mbufs of the packet pool in use, connections in the table,
# connections created and evicted, and drops (`rvs ctl status --json`).
#
# Verdict per figure (RSS, mbufs in use, connections; perf/soak_report.py):
# flat when the mean of the last 10 % of the samples is within 5 % (RSS: or
# 4 MiB; mbufs: or 600, the per-lcore caches; connections: 10 %, a saw-tooth
# that follows the expiry sweep) of the mean of the 10 % after the warm-up.
# Also required: the generator lost no more frames than the director counted
# as drops (no silent loss), and no forwarded frame failed its checks.
# Writes soak.md and soak.csv into DIR; exit 1 when a check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

SECS=600
INTERVAL=""
FRACTION=0.5
BUILD=1
SHORT=0
OUT=""
while (($#)); do
  case "$1" in
    --minutes) SECS=$(( $2 * 60 )); shift ;;
    --seconds) SECS=$2; shift ;;
    --interval) INTERVAL=$2; shift ;;
    --fraction) FRACTION=$2; shift ;;
    --short) SHORT=1; SECS=20 ;;
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if ((SHORT)); then : "${INTERVAL:=2}"; else : "${INTERVAL:=5}"; fi
[[ -n $OUT ]] || { if ((SHORT)); then OUT=$(mktemp -d /tmp/rvs-soak-out.XXXXXX); else OUT=$ROOT/perf/results; fi; }
[[ $SECS =~ ^[0-9]+$ ]] && ((SECS >= 10)) || { echo "soak.sh: the soak needs >= 10 s" >&2; exit 2; }

if ((EUID != 0)); then echo "soak.sh: run as root (DPDK, network namespaces)" >&2; exit 2; fi
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
if ((BUILD)); then
  echo "soak.sh: cargo build --release -p rvs-perf -p rvs-cli"
  cargo build --release -q -p rvs-perf -p rvs-cli || exit 1
fi
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
[[ -x $REL/rvs-perf && -x $REL/rvs ]] \
  || { echo "soak.sh: build first (cargo build --release -p rvs-perf -p rvs-cli)" >&2; exit 1; }

TAG=$$
NS=rvssoak$TAG
SOCK=/run/rvs-perf/soak$TAG
RAW=$(mktemp -d /tmp/rvs-soak.XXXXXX)
mkdir -p "$RAW/bin" "$SOCK" "$OUT"
cp "$REL/rvs-perf" "$REL/rvs" "$RAW/bin/"
GEN=$RAW/bin/rvs-perf
RVS=$RAW/bin/rvs
GPID=""
DPID=""

cleanup() {
  for p in $GPID $DPID; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null; fi
  done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$SOCK" "$RAW/bin"
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted"; exit 130' INT TERM

ip netns add "$NS" || { echo "soak.sh: cannot create network namespace $NS" >&2; exit 1; }
ip -n "$NS" link set lo up

memif() {  # memif NAME ROLE SOCKFILE MAC
  echo "$1,role=$2,socket=$SOCK/$3,socket-abstract=no,id=0,mac=$4"
}
wait_for() {  # wait_for FILE PATTERN SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

GLOG=$RAW/gen.log
DLOG=$RAW/dut.log
JSON=$RAW/gen.json
CSV=$RAW/soak.csv
# The table holds each closed connection for 2 s (tcp_fin, tcp_close_wait)
# plus the time the expiry sweep (256 slots per ms of the worker's loop) takes
# to come round: 262,144 slots are one second of sweep on a worker that has
# its CPU, and room for ~10 s of connections at any rate this machine reaches.
sed -e "s|@CORES@|0@0,1@1|; s|@WORKERS@|1|; s|@SOCKDIR@|$SOCK|g; s|@SCHEDULER@|rr|" \
    -e "s|@FORWARD@|nat|; s|@MAXCONN@|262144|; s|@HUGE@|false|" \
    perf/configs/director.toml.in > "$RAW/director.toml"

echo "soak.sh: $(date -u +%FT%TZ) ${SECS} s at ${FRACTION} x max cps, sampling every ${INTERVAL} s, load $(cut -d' ' -f1-3 /proc/loadavg)"
timeout $((SECS + 120)) "$GEN" gen \
  --client-dev "$(memif net_memif0 server c.sock 02:00:00:00:01:01)" \
  --server-dev "$(memif net_memif1 server s.sock 02:00:00:00:02:01)" \
  --lcores 0@0 --queues 1 --expect nat --flows 1000 --phases probe,cps,soak \
  --cps-duration 3 --soak-duration "$SECS" --soak-fraction "$FRACTION" \
  --linger 30 --label soak --json "$JSON" > "$GLOG" 2>&1 &
GPID=$!
if ! wait_for "$GLOG" "waiting for the DUT" 20; then
  echo "soak.sh: generator did not start:"; tail -5 "$GLOG"; exit 1
fi
ip netns exec "$NS" env RVS_LOG=info "$RVS" run -c "$RAW/director.toml" > "$DLOG" 2>&1 &
DPID=$!

echo "t_s,phase,rss_kb,mbufs_in_use,mbufs_size,conns,created,evicted,drops" > "$CSV"
T0=$(date +%s.%N)
phase=start
# (until the generator is done: it then holds its memif ports until the
# director has closed its side, see `rvs-perf gen --linger`)
while kill -0 $GPID 2>/dev/null && ! grep -q "holding the ports" "$GLOG"; do
  if ! kill -0 $DPID 2>/dev/null; then echo "soak.sh: the director died"; tail -20 "$DLOG"; break; fi
  grep -q "soak: " "$GLOG" && phase=soak
  grep -q "soak-done" "$GLOG" && phase=end
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$DPID/status 2>/dev/null)
  st=$("$RVS" ctl -s "$SOCK/rvs.sock" status --json 2>/dev/null)
  if [[ -n $st && -n $rss ]]; then
    t=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }')
    echo "$st" | $PY -c '
import json, sys
s = json.load(sys.stdin)
w = s.get("workers", [])
m = s.get("mbufs") or {}
f = lambda k: sum(x.get(k, 0) for x in w)
print(",".join(str(v) for v in [sys.argv[1], sys.argv[2], sys.argv[3], m.get("in_use", ""), m.get("size", ""),
      f("conns"), f("conns_created"), f("conns_evicted"), f("drops_total")]))' "$t" "$phase" "$rss" >> "$CSV"
  fi
  sleep "$INTERVAL"
done
# The director's own last word: its counters at exit. It stops before the
# generator closes its memif ports (a memif client whose server leaves under
# its poll can fault in DPDK 22.11's PMD).
kill -INT $DPID 2>/dev/null
for ((i = 0; i < 150; i++)); do kill -0 $DPID 2>/dev/null || break; sleep 0.1; done
kill -KILL $DPID 2>/dev/null
wait $DPID 2>/dev/null
DPID=""
wait $GPID; grc=$?
GPID=""
if ((grc != 0)) || [[ ! -s $JSON ]]; then
  echo "soak.sh: generator failed (exit $grc):"; grep -v '^EAL\|^TELEMETRY' "$GLOG" | tail -5
  echo "director log: $DLOG"; tail -5 "$DLOG"
  exit 1
fi

cp "$CSV" "$OUT/soak.csv"
$PY "$ROOT/perf/soak_report.py" "$JSON" "$CSV" "$DLOG" "$OUT/soak.md" "$SECS" "$FRACTION" "$SHORT"
rc=$?
echo "soak.sh: results in $OUT/soak.md, raw logs in $RAW"
exit $rc
