#!/usr/bin/env bash
# rvs benchmarks against the DPDK baseline (SPEC §9).
#
#   perf/bench.sh            full: NAT, NAT over IPv6 (nat6), DR, TUN and testpmd
#                            io/macswap for 1k, 100k, 1M and 10M flows, 1 and 2 workers where
#                            the machine has the cores, plus connection-table memory
#   perf/bench.sh --quick    1M flows only: NAT, NAT6, DR, TUN, io, macswap, memory (< 4 min)
#   perf/bench.sh --smoke    ~20 s: generator and director talk (IPv4 and IPv6 NAT),
#                            output well formed
#
# nat6: IPv6/TCP through rvs NAT (perf/configs/director6.toml.in); its frames
# are the smallest valid IPv6/TCP frame, 78 bytes on the wire, whatever --size
# below that (the report's size column says so); compared with the same testpmd
# io row as the IPv4 modes.
#
# Options: --flows 1000,100000  --workers 1,2  --modes io,nat,...  --size 64
#          --duration S (max-rate phase)  --reps N  --nice N (run the two DPDK
#          processes under nice N, e.g. -10, on a machine shared with other work)  --wait-quiet S (before each row,
#          wait up to S seconds for the CPUs to be >= 85% idle: other work on the
#          machine time-slices the busy-polling processes and ruins latency)
#          --no-build  --no-plot  --no-mem  --no-cost  --out DIR (default perf/results)
#          --cost-rounds N (rounds of the cost rows, every DUT in each, interleaved;
#          default 1, full 2: the report gives each DUT's best and median, and
#          the 25th percentile of its 0.25 s windows)
#          --order seq|scatter (the data phases' order over the flows: `seq`, the
#          order they were opened in, or `scatter`, a fixed permutation: each
#          packet's connection record a random access, as in real traffic)
#
# Cost rows (issue 16): after the rows of a flow count, every DUT runs again at
# one offered rate, half the slowest max rate of those rows, and its busy
# cycles per packet are read around the generator's `cost` phase: rvs from
# `rvs ctl status --json` (the workers' busy_cycles less their
# empty_poll_cycles), testpmd from `--record-core-cycles` (interactive:
# `clear fwd stats all`, then `stop` prints its busy cycles). Both count
# the same work: testpmd counts a stream's rx and tx burst only when the rx
# returned frames; rvs counts its loops that moved frames less the rx polls
# in them that returned nothing (its whole busy loops, empty polls included,
# are reported too). Both are divided by the frames that came back through
# the DUT in the phase. The ratio testpmd-io cycles / DUT cycles is in the
# report. The phase is also sampled every 0.25 s (`cost_sampler`, on the
# generator's CPU; windows in raw/cost_windows.tsv, perf/cost_windows.py):
# the VM changes speed from one second to the next, and the report's
# window percentile compares the DUTs in the same state.
#
# Topology: the generator (rvs-perf gen, CPU 0) is the memif server of two links,
# c.sock (client side) and s.sock (server side); the device under test (rvs or
# dpdk-testpmd, CPU 1) is the memif client of both and runs in a throw-away network
# namespace (the director's exception-path TAPs stay out of the host). Each row is
# one DUT process and one generator run through its phases: probe, open (SYN+ACK
# for every flow), max (data at the highest rate the DUT takes), lat (data at 50% of
# that rate), cps (new connections: SYN, ACK, data, FIN). Results: a table on stdout,
# perf/results/latest.{csv,md,png} (and quick.* or full.*), raw JSON in
# perf/results/raw/ (not committed).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

KIND=full
FLOWS=""
WORKERS=""
MODES=""
SIZE=64
ORDER=seq
DURATION=""
REPS=1
NICE=""
BUILD=1
PLOT=1
MEM=1
COST=1
COST_ROUNDS=""
OUT="$ROOT/perf/results"
FORCE_WORKERS=0
HUGE=0
WAIT_QUIET=0
while (($#)); do
  case "$1" in
    --quick) KIND=quick ;;
    --smoke) KIND=smoke ;;
    --full) KIND=full ;;
    --flows) FLOWS=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    --force-workers) FORCE_WORKERS=1 ;;
    --modes) MODES=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --order) ORDER=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --nice) NICE=$2; shift ;;
    --wait-quiet) WAIT_QUIET=$2; shift ;;
    --no-build) BUILD=0 ;;
    --huge) HUGE=1 ;;
    --no-plot) PLOT=0 ;;
    --no-mem) MEM=0 ;;
    --no-cost) COST=0 ;;
    --cost-rounds) COST_ROUNDS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# Per kind: flows, workers, modes, phase durations (max, lat, cps).
case $KIND in
  smoke) : "${FLOWS:=1000}"; : "${WORKERS:=1}"; : "${MODES:=io,nat,nat6}"; : "${DURATION:=1}"
         LAT=0.5; CPS=0.5; COST_SECS=1; MEM=0; PLOT=0; : "${COST_ROUNDS:=1}" ;;
  quick) : "${FLOWS:=1000000}"; : "${WORKERS:=1}"; : "${MODES:=io,nat,nat6,dr,tun,macswap}"; : "${DURATION:=3}"
         LAT=2; CPS=2; COST_SECS=4; : "${COST_ROUNDS:=1}" ;;
  full)  : "${FLOWS:=1000,100000,1000000,10000000}"; : "${WORKERS:=1,2}"; : "${MODES:=io,nat,nat6,dr,tun,macswap}"; : "${DURATION:=3}"
         LAT=2; CPS=2; COST_SECS=6; : "${COST_ROUNDS:=2}" ;;
esac

if ((EUID != 0)); then echo "bench.sh: run as root (DPDK, network namespaces)" >&2; exit 2; fi
for t in dpdk-testpmd ip; do
  command -v $t >/dev/null || { echo "bench.sh: $t not found (apt-get install dpdk iproute2)" >&2; exit 2; }
done
NCPU=$(nproc)
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
if ((PLOT)) && ! $PY -c 'import matplotlib' 2>/dev/null; then
  echo "bench.sh: installing python3-matplotlib for the plot"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib >/dev/null 2>&1 \
    || { echo "bench.sh: no matplotlib, no plot" >&2; PLOT=0; }
fi

if ((BUILD)); then
  echo "bench.sh: cargo build --release -p rvs-perf -p rvs-cli"
  cargo build --release -q -p rvs-perf -p rvs-cli || exit 1
fi
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
[[ -x $REL/rvs-perf && -x $REL/rvs ]] \
  || { echo "bench.sh: build first (cargo build --release)" >&2; exit 1; }

TAG=$$
NS=rvsperf$TAG
SOCK=/run/rvs-perf/$TAG
RAW=$(mktemp -d /tmp/rvs-bench.XXXXXX)
# A private copy of the binaries: every row runs the same build even if the
# tree is rebuilt meanwhile.
mkdir -p "$RAW/bin"
cp "$REL/rvs-perf" "$REL/rvs" "$RAW/bin/"
GEN=$RAW/bin/rvs-perf
RVS=$RAW/bin/rvs
mkdir -p "$SOCK" "$OUT"
GPID=""
DPID=""

HUGE_WAS=""
cleanup() {
  for p in $GPID $DPID; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null; fi
  done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$SOCK" /var/run/dpdk/rvsperf-tp$TAG-* 2>/dev/null
  # --huge: give back the hugepages this run reserved
  [[ -n $HUGE_WAS ]] && echo "$HUGE_WAS" > /proc/sys/vm/nr_hugepages
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted"; exit 130' INT TERM

ip netns add "$NS" || { echo "bench.sh: cannot create network namespace $NS" >&2; exit 1; }
ip -n "$NS" link set lo up

GEN_CMAC=02:00:00:00:01:01
GEN_SMAC=02:00:00:00:02:01
DUT_CMAC=02:00:00:00:01:02
DUT_SMAC=02:00:00:00:02:02
memif() {  # memif NAME ROLE SOCKFILE MAC
  echo "$1,role=$2,socket=$SOCK/$3,socket-abstract=no,id=0,mac=$4"
}

# Connection-table capacity of the director: the flows plus a few seconds of
# new connections (their FIN timeout is 2 s in the bench config).
maxconn_for() { echo $(( $1 + ${RVS_BENCH_EXTRA_CONNS:-8000000} )); }

# dut_config MODE TOML FLOWS WORKERS CORES: the director's configuration of a row.
dut_config() {
  local tpl=perf/configs/director.toml.in
  [[ $1 == nat6 ]] && tpl=perf/configs/director6.toml.in
  sed -e "s|@CORES@|$5|; s|@WORKERS@|$4|; s|@SOCKDIR@|$SOCK|g; s|@SCHEDULER@|rr|" \
      -e "s|@FORWARD@|$1|; s|@MAXCONN@|$(maxconn_for "$3")|; s|@HUGE@|$HUGE_TOML|" \
      "$tpl" > "$2"
}

# wait_for FILE PATTERN SECONDS
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop_pid() {  # stop_pid PID: SIGINT, then SIGKILL after 15 s
  local p=${1:-} i
  [[ -n $p ]] || return 0
  kill -INT "$p" 2>/dev/null
  for ((i = 0; i < 150; i++)); do
    kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}

# Percent of CPU time idle over the next second (all CPUs).
idle_pct() {
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 1
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local i ta=0 tb=0
  for ((i = 1; i <= 8; i++)); do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) tot=$((tb - ta))
  ((tot > 0)) || { echo 100; return; }
  echo $(( 100 * idle / tot ))
}

wait_quiet() {
  ((WAIT_QUIET > 0)) || return 0
  local t0=$SECONDS p
  while :; do
    p=$(idle_pct)
    ((p >= 85)) && return 0
    if ((SECONDS - t0 >= WAIT_QUIET)); then
      echo "bench.sh: CPUs only ${p}% idle after ${WAIT_QUIET} s of waiting; measuring anyway"
      return 0
    fi
  done
}

# The DPDK processes are started under `nice` (all their threads inherit it).
NICE_CMD=()
# --huge: both DUTs (testpmd and rvs) take their memory from 2 MiB hugepages
# (DPDK's normal mode); default --no-huge, which needs no set-up.
TP_MEM=(--no-huge)
HUGE_TOML=false
if ((HUGE)); then
  TP_MEM=(--in-memory)
  HUGE_TOML=true
  have=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if (( ${have:-0} < 600 )); then
    HUGE_WAS=$(cat /proc/sys/vm/nr_hugepages)
    echo $(( $(awk '/^HugePages_Total/ {print $2}' /proc/meminfo) + 600 - ${have:-0} )) > /proc/sys/vm/nr_hugepages
    echo "bench.sh: reserved $(( $(cat /proc/sys/vm/nr_hugepages) - HUGE_WAS )) 2 MiB hugepages (given back at the end)"
  fi
fi
[[ -n $NICE ]] && NICE_CMD=(nice -n "$NICE")

INDEX=$RAW/index.tsv
LAT_RATES=""
# The latency-phase rates of the director rows of one flow count/workers/rep.
lat_rates_of() {
  $PY -c '
import json, sys, glob
raw, f, w, rep = sys.argv[1:]
rates = []
for p in sorted(glob.glob(f"{raw}/*-f{f}-w{w}-r{rep}.json")):
    try:
        rates.append(str(int(json.load(open(p))["phases"]["lat"]["rate_pps"])))
    except (OSError, ValueError, KeyError):
        pass
print(",".join(rates))' "$RAW" "$1" "$2" "$3"
}
printf 'name\tmode\tflows\tworkers\tsize\trep\tstatus\tdut_rss_kb\tdut_handoffs\n' > "$INDEX"
printf 'name\tfwd_cpu_ms\tfwd_wait_ms\tfwd_preemptions\tsteal_ms\n' > "$RAW/sched.tsv"
COSTS=$RAW/cost.tsv
printf 'mode\tflows\tworkers\trep\trate_pps\tcycles_per_packet\tpackets\tstatus\tloop_cycles_per_packet\tframes_per_burst\n' > "$COSTS"
# The same phases cut into 0.25 s windows (perf/cost_windows.py).
WINDOWS=$RAW/cost_windows.tsv
printf 'mode\tflows\tworkers\trep\tseconds\tcycles\tframes\tlat_min_ns\tlat_p50_ns\n' > "$WINDOWS"

# Half the slowest max rate (packets/s) of the rows of one flow count/workers/rep.
cost_rate_of() {
  $PY -c '
import json, sys, glob
raw, f, w, rep = sys.argv[1:]
rates = []
for p in glob.glob(f"{raw}/*-f{f}-w{w}-r{rep}.json"):
    try:
        rates.append(json.load(open(p))["phases"]["max"]["rx_mpps"] * 1e6)
    except (OSError, ValueError, KeyError, TypeError):
        pass
print(int(min(rates) / 2) if rates else 0)' "$RAW" "$1" "$2" "$3"
}

# Sum of the rvs workers' busy cycles less their empty rx polls (counted as
# testpmd counts), busy frames, busy cycles of whole loops, and the rx
# bursts that returned frames: "CYCLES FRAMES LOOP_CYCLES BURSTS".
rvs_busy() {
  "$RVS" ctl -s "$SOCK/rvs.sock" status --json 2>/dev/null | $PY -c '
import json, sys
ws = json.load(sys.stdin)["workers"]
busy = sum(w["cost"]["busy_cycles"] for w in ws)
empty = sum(w["cost"].get("empty_poll_cycles", 0) for w in ws)
print(busy - empty, sum(w["cost"]["busy_frames"] for w in ws), busy,
      sum(w["cost"]["rx_bursts"] for w in ws))'
}

# run_one MODE FLOWS WORKERS REP
run_one() {
  local mode=$1 flows=$2 w=$3 rep=$4
  local name="${mode}-f${flows}-w${w}-r${rep}"
  local glog=$RAW/$name.gen.log dlog=$RAW/$name.dut.log json=$RAW/$name.json
  # The DUT's main lcore (rvs: the control thread, awake every 10 ms;
  # testpmd: idle) shares CPU 0 with the generator, so the forwarding
  # lcores have their CPUs to themselves, as on a real director.
  local dut_cores="0@0" gen_core="0@0" i
  # lcore i (worker i) on CPU i; with --force-workers on a small machine the
  # extra workers share the last CPU (a functional check, not a figure)
  for ((i = 1; i <= w; i++)); do dut_cores+=",$i@$(( i < NCPU ? i : NCPU - 1 ))"; done
  rm -f "$SOCK"/*.sock
  local extra=()
  [[ $mode == io || $mode == macswap ]] && extra+=(--dut-mac "$DUT_CMAC")
  # testpmd io also measures latency at the directors' rates: equal load
  [[ $mode == io && -n $LAT_RATES ]] && extra+=(--lat-rates "$LAT_RATES")
  local expect=$mode
  local timeout=$(( 60 + flows / 20000 ))
  wait_quiet
  echo "bench.sh: [$name] $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
  "${NICE_CMD[@]}" timeout $timeout "$GEN" gen \
    --client-dev "$(memif net_memif0 server c.sock $GEN_CMAC)" \
    --server-dev "$(memif net_memif1 server s.sock $GEN_SMAC)" \
    --lcores "$gen_core" --queues "$w" --expect "$expect" --flows "$flows" --size "$SIZE" --order "$ORDER" \
    --duration "$DURATION" --lat-duration "$LAT" --cps-duration "$CPS" \
    --linger 30 --label "$name" --json "$json" "${extra[@]}" > "$glog" 2>&1 &
  GPID=$!
  if ! wait_for "$glog" "waiting for the DUT" 20; then
    echo "bench.sh: [$name] generator did not start:"; tail -5 "$glog"
    stop_pid $GPID; GPID=""
    printf '%s\t%s\t%s\t%s\t%s\t%s\tgen-failed\t0\n' "$name" "$mode" "$flows" "$w" "$SIZE" "$rep" >> "$INDEX"
    return 1
  fi
  case $mode in
    io|macswap)
      "${NICE_CMD[@]}" ip netns exec "$NS" dpdk-testpmd --lcores "$dut_cores" "${TP_MEM[@]}" -m 512 \
        --file-prefix="rvsperf-tp$TAG-$name" --no-pci --log-level=lib.eal:warning \
        --vdev "$(memif net_memif0 client c.sock $DUT_CMAC)" \
        --vdev "$(memif net_memif1 client s.sock $DUT_SMAC)" \
        -- --forward-mode="$mode" --auto-start --stats-period 60 --nb-cores="$w" \
        --rxq="$w" --txq="$w" --burst=32 --total-num-mbufs=32768 > "$dlog" 2>&1 &
      ;;
    nat|nat6|dr|tun)
      dut_config "$mode" "$RAW/$name.toml" "$flows" "$w" "$dut_cores"
      "${NICE_CMD[@]}" ip netns exec "$NS" env RVS_LOG=info "$RVS" run -c "$RAW/$name.toml" > "$dlog" 2>&1 &
      ;;
  esac
  DPID=$!
  local rss=0 s_first="" s_last="" ticks=0
  # Wait for the generator; sample the DUT's resident memory meanwhile, and
  # what else ran on the CPUs around the max phase (perf/sched_sample.py).
  # (until the generator is done: it then holds its memif ports until the
  # DUT has closed its side, see `rvs-perf gen --linger`)
  while kill -0 $GPID 2>/dev/null && ! grep -q "holding the ports" "$glog" 2>/dev/null; do
    local r
    if ((ticks++ % 5 == 0)); then
      r=$(awk '/^VmRSS/ {print $2}' /proc/$DPID/status 2>/dev/null)
      [[ -n $r ]] && ((r > rss)) && rss=$r
    fi
    if [[ -z $s_first ]] && grep -q "opened .* flows" "$glog" 2>/dev/null; then
      s_first=$($PY "$ROOT/perf/sched_sample.py" sample "$DPID")
    elif [[ -n $s_first && -z $s_last ]] && grep -q "max: {" "$glog" 2>/dev/null; then
      s_last=$($PY "$ROOT/perf/sched_sample.py" sample "$DPID")
    fi
    sleep 0.1
  done
  # The DUT first: a memif client whose server leaves under its poll can
  # fault in DPDK 22.11's PMD (rvs-perf gen --linger).
  stop_pid $DPID; DPID=""
  wait $GPID; local grc=$?
  GPID=""
  local status=ok
  if ((grc != 0)) || [[ ! -s $json ]]; then
    status="gen-exit-$grc"
    echo "bench.sh: [$name] FAILED (generator exit $grc):"
    grep -v '^EAL\|^TELEMETRY' "$glog" | tail -4
    echo "  DUT log: $dlog"; tail -3 "$dlog"
  fi
  # rvs: frames its workers handed to another worker (the `rvs-stats` line it
  # prints at exit); 0 when the generator steers flows as the director's RSS
  # would (issue 16 item 5). Empty for testpmd.
  local handoffs=""
  [[ $mode == nat || $mode == nat6 || $mode == dr || $mode == tun ]] \
    && handoffs=$(sed -n 's|^rvs-stats .*"handoffs":\([0-9]*\).*|\1|p' "$dlog" | tail -n1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mode" "$flows" "$w" "$SIZE" "$rep" "$status" "$rss" "$handoffs" >> "$INDEX"
  # The forwarding lcores over the max phase: CPU ms, ms waiting for their
  # CPU, involuntary switches; the machine's steal ms (sched.tsv).
  local sched
  sched=$($PY "$ROOT/perf/sched_sample.py" diff "${s_first:-x}" "${s_last:-x}" "$w")
  printf '%s\t%s\n' "$name" "$sched" >> "$RAW/sched.tsv"
  echo "bench.sh: [$name] max phase: forwarding lcores $(cut -f1 <<< "$sched") ms on CPU, waited $(cut -f2 <<< "$sched") ms for it ($(cut -f3 <<< "$sched") preemptions), steal $(cut -f4 <<< "$sched") ms"
  # Which memory the director's connection tables got (its start-up log).
  if [[ $mode == nat || $mode == nat6 || $mode == dr || $mode == tun ]]; then
    sed -n 's|.*connection table allocated.* worker=\([0-9]*\).* conn_memory=\(.*\)|\1\t\2|p' "$dlog" \
      | sed 's/\x1b\[[0-9;]*m//g' | while IFS=$'\t' read -r wk cm; do
          printf '%s\t%s\t%s\n' "$name" "$wk" "$cm" >> "$RAW/conn_memory.tsv"
        done
  fi
  rm -rf /var/run/dpdk/rvsperf-tp$TAG-$name
  [[ $status == ok ]]
}

# cost_sampler OUT FIFO: the DUT's cumulative busy cycles every 0.25 s until
# killed, from one process pinned to the generator's CPU (never the DUT's):
# testpmd gets `show fwd stats all` down FIFO (its answers in its log), rvs
# a status request on one control connection (perf/cost_sampler.py).
cost_sampler() {
  local out=$1 fifo=$2
  if [[ -n $fifo ]]; then
    exec taskset -c 0 "$PY" "$ROOT/perf/cost_sampler.py" "$out" --fifo "$fifo"
  else
    exec taskset -c 0 "$PY" "$ROOT/perf/cost_sampler.py" "$out" --rvs "$SOCK/rvs.sock"
  fi
}

# run_cost MODE FLOWS WORKERS REP RATE: the DUT's busy cycles per packet at
# RATE packets/s of established-flow data (a line in cost.tsv).
run_cost() {
  local mode=$1 flows=$2 w=$3 rep=$4 rate=$5
  local name="cost-${mode}-f${flows}-w${w}-r${rep}"
  local glog=$RAW/$name.gen.log dlog=$RAW/$name.dut.log fifo=$RAW/$name.fifo
  local wsamples=$RAW/$name.samples spid=""
  local dut_cores="0@0" gen_core="0@0" i fd=""
  for ((i = 1; i <= w; i++)); do dut_cores+=",$i@$(( i < NCPU ? i : NCPU - 1 ))"; done
  rm -f "$SOCK"/*.sock
  local extra=()
  [[ $mode == io || $mode == macswap ]] && extra+=(--dut-mac "$DUT_CMAC")
  wait_quiet
  echo "bench.sh: [$name] $(date +%T), $rate packets/s"
  "${NICE_CMD[@]}" timeout $(( 60 + flows / 20000 )) "$GEN" gen \
    --client-dev "$(memif net_memif0 server c.sock $GEN_CMAC)" \
    --server-dev "$(memif net_memif1 server s.sock $GEN_SMAC)" \
    --lcores "$gen_core" --queues "$w" --expect "$mode" --flows "$flows" --size "$SIZE" --order "$ORDER" \
    --phases probe,open,cost --cost-rate "$rate" --cost-duration "$COST_SECS" \
    --linger 30 --label "$name" --json "$RAW/$name.json" "${extra[@]}" > "$glog" 2>&1 &
  GPID=$!
  if ! wait_for "$glog" "waiting for the DUT" 20; then
    stop_pid $GPID; GPID=""
    printf '%s\t%s\t%s\t%s\t%s\t\t\tgen-failed\n' "$mode" "$flows" "$w" "$rep" "$rate" >> "$COSTS"
    return 1
  fi
  case $mode in
    io|macswap)
      # interactive, its commands through a FIFO held open here
      rm -f "$fifo"; mkfifo "$fifo"; exec {fd}<>"$fifo"
      # (line-buffered: its answers must reach the log before it exits)
      "${NICE_CMD[@]}" ip netns exec "$NS" stdbuf -oL dpdk-testpmd --lcores "$dut_cores" "${TP_MEM[@]}" -m 512 \
        --file-prefix="rvsperf-tp$TAG-$name" --no-pci --log-level=lib.eal:warning \
        --vdev "$(memif net_memif0 client c.sock $DUT_CMAC)" \
        --vdev "$(memif net_memif1 client s.sock $DUT_SMAC)" \
        -- -i --forward-mode="$mode" --auto-start --record-core-cycles --nb-cores="$w" \
        --rxq="$w" --txq="$w" --burst=32 --total-num-mbufs=32768 <&$fd > "$dlog" 2>&1 &
      ;;
    nat|nat6|dr|tun)
      dut_config "$mode" "$RAW/$name.toml" "$flows" "$w" "$dut_cores"
      "${NICE_CMD[@]}" ip netns exec "$NS" env RVS_LOG=info "$RVS" run -c "$RAW/$name.toml" > "$dlog" 2>&1 &
      ;;
  esac
  DPID=$!
  local status=ok cpp="" lcpp="" fpb="" pkts="" a b s_first="" s_last=""
  if wait_for "$glog" "cost-start" $(( 30 + flows / 20000 )); then
    if [[ -n $fd ]]; then echo "clear fwd stats all" >&$fd; else a=$(rvs_busy); fi
    s_first=$($PY "$ROOT/perf/sched_sample.py" sample "$DPID")
    # On the generator's CPU, never the DUT's.
    : > "$wsamples"
    cost_sampler "$wsamples" "$([[ -n $fd ]] && echo "$fifo")" &
    spid=$!
    if wait_for "$glog" "cost-done" $(( COST_SECS + 20 )); then
      kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; spid=""
      s_last=$($PY "$ROOT/perf/sched_sample.py" sample "$DPID")
      # Packets: what came back through the DUT in the phase (the generator's
      # rx), for both DUTs (testpmd's port counters after a clear are wrong
      # on memif); cycles: the DUT's busy cycles over the phase.
      sleep 0.2
      local rx cyc lcyc=""
      rx=$(sed -n 's|.*cost-done: .*"rx":\([0-9]*\),.*|\1|p' "$glog" | tail -n1)
      if [[ -n $fd ]]; then
        echo "stop" >&$fd
        if ! wait_for "$dlog" "CPU cycles/packet" 10; then
          echo "quit" >&$fd; stop_pid $DPID; DPID=""
        fi
        cyc=$(sed -n 's|.*CPU cycles/packet=.*total cycles=\([0-9]*\) .*|\1|p' "$dlog" | tail -n1)
      else
        b=$(rvs_busy)
        cyc=$($PY -c 'import sys; print(int(sys.argv[2].split()[0]) - int(sys.argv[1].split()[0]))' "$a" "$b" 2>/dev/null)
        lcyc=$($PY -c 'import sys; print(int(sys.argv[2].split()[2]) - int(sys.argv[1].split()[2]))' "$a" "$b" 2>/dev/null)
        # Frames per rx burst over the phase: how many frames' memory
        # reads can overlap (report.py's floor).
        fpb=$($PY -c 'import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); n = int(b[3]) - int(a[3]); print(f"{(int(b[1]) - int(a[1])) / n:.2f}" if n > 0 else "")' "$a" "$b" 2>/dev/null)
      fi
      if [[ -n $rx && -n $cyc ]] && ((rx > 0)); then
        pkts=$rx
        cpp=$($PY -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.2f}")' "$cyc" "$rx")
        [[ -n ${lcyc:-} ]] && lcpp=$($PY -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.2f}")' "$lcyc" "$rx")
      fi
    else
      status=no-cost-done
    fi
  else
    status=no-cost-start
  fi
  [[ -n $spid ]] && { kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; }
  [[ -n $cpp ]] || { [[ $status == ok ]] && status=no-figure; }
  if [[ $status == ok ]]; then
    local wk=rvs; [[ -n $fd ]] && wk=testpmd
    $PY "$ROOT/perf/cost_windows.py" "$wk" "$wsamples" --dut-log "$dlog" --gen-log "$glog" 2>/dev/null |
      sed "s|^|$mode\t$flows\t$w\t$rep\t|" >> "$WINDOWS"
  fi
  [[ -n $fd ]] && echo "quit" >&$fd
  # The DUT before the generator closes its ports (see run_one).
  stop_pid $DPID; DPID=""
  wait $GPID 2>/dev/null; GPID=""
  [[ -n $fd ]] && exec {fd}>&-
  rm -f "$fifo"
  rm -rf /var/run/dpdk/rvsperf-tp$TAG-$name
  local sched
  sched=$($PY "$ROOT/perf/sched_sample.py" diff "${s_first:-x}" "${s_last:-x}" "$w")
  printf '%s\t%s\n' "$name" "$sched" >> "$RAW/sched.tsv"
  echo "bench.sh: [$name] ${cpp:-?} busy cycles/packet over ${pkts:-?} packets ($status); forwarding lcores waited $(cut -f2 <<< "$sched") ms for their CPU, steal $(cut -f4 <<< "$sched") ms"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$flows" "$w" "$rep" "$rate" "$cpp" "$pkts" "$status" "$lcpp" "$fpb" >> "$COSTS"
  [[ $status == ok ]]
}

T0=$SECONDS
echo "bench.sh: $KIND run, flows $FLOWS, workers $WORKERS, modes $MODES, $SIZE-byte packets, order $ORDER, $NCPU CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
IFS=, read -r -a FL <<< "$FLOWS"
IFS=, read -r -a WL <<< "$WORKERS"
IFS=, read -r -a ML <<< "$MODES"
for w in "${WL[@]}"; do
  # the generator has CPU 0; each worker needs a CPU of its own
  if (( w + 1 > NCPU && ! FORCE_WORKERS )); then
    echo "bench.sh: skipping $w-worker rows: $NCPU CPUs (generator + $w workers need $((w + 1)); --force-workers overrides)"
    printf 'skip-w%s\t-\t-\t%s\t%s\t-\tskipped-%scpus\t0\n' "$w" "$w" "$SIZE" "$NCPU" >> "$INDEX"
    continue
  fi
  for f in "${FL[@]}"; do
    for ((rep = 1; rep <= REPS; rep++)); do
      # directors first, then the baselines (io gets their latency rates)
      LAT_RATES=""
      for m in "${ML[@]}"; do
        [[ $m == io || $m == macswap ]] && continue
        run_one "$m" "$f" "$w" "$rep" || failed=1
      done
      LAT_RATES=$(lat_rates_of "$f" "$w" "$rep")
      for m in "${ML[@]}"; do
        [[ $m == io || $m == macswap ]] || continue
        run_one "$m" "$f" "$w" "$rep" || failed=1
      done
      if ((COST)); then
        rate=$(cost_rate_of "$f" "$w" "$rep")
        if ((rate > 0)); then
          # COST_ROUNDS rounds of every DUT, interleaved: each DUT process
          # lands in the VM's fast or slow state for its whole run (the
          # same testpmd io gives ~450 or ~900 cycles per packet from one
          # run to the next), so the report gives each DUT's best round
          # beside the median of all.
          for ((round = 1; round <= COST_ROUNDS; round++)); do
            crep=$rep; ((round > 1)) && crep="${rep}c$round"
            for m in "${ML[@]}"; do run_cost "$m" "$f" "$w" "$crep" "$rate" || failed=1; done
            # testpmd io once more after the others: the VM's speed drifts
            # over minutes, and the ratios divide by io's figure
            if [[ " ${ML[*]} " == *" io "* ]]; then
              run_cost io "$f" "$w" "${crep}b" "$rate" || failed=1
            fi
          done
        fi
      fi
    done
  done
done

if ((MEM)); then
  echo "bench.sh: connection-table memory (1M and 10M connections)"
  # on the DUT's CPU: its random-read latency is report.py's floor
  taskset -c $((NCPU > 1 ? 1 : 0)) "$GEN" mem --conns 1000000,10000000 --json "$RAW/mem.json" 2>&1 | grep -v '^rvs-perf-mem' || failed=1
fi

mkdir -p "$OUT/raw"
REPORT_ARGS=("$RAW" --out "$OUT" --kind "$KIND")
((PLOT)) || REPORT_ARGS+=(--no-plot)
if [[ $KIND == smoke ]]; then
  REPORT_ARGS=("$RAW" --out "$OUT/smoke" --kind smoke --no-plot)
  mkdir -p "$OUT/smoke"
fi
$PY "$ROOT/perf/report.py" "${REPORT_ARGS[@]}" || failed=1
cp "$RAW"/*.json "$RAW"/index.tsv "$COSTS" "$WINDOWS" "$RAW"/conn_memory.tsv "$RAW"/sched.tsv "$OUT/raw/" 2>/dev/null
if [[ $KIND == smoke ]]; then
  # Well formed: every row ran, forwarded, and passed the frame checks.
  $PY "$ROOT/perf/report.py" "$RAW" --check || failed=1
fi
rm -rf "$RAW/bin"
echo "bench.sh: done in $((SECONDS - T0)) s, raw logs in $RAW"
exit $failed
