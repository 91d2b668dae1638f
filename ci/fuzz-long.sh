#!/usr/bin/env bash
# Long fuzz runs (issue 12): each target for RUNS executions (default 10 M),
# one at a time on one core (-jobs/-workers unset: one process), then a table
# of executions, time, rate, coverage and crashes in perf/results/fuzz-long.md
# (and on stdout).
#
#   ci/fuzz-long.sh [RUNS] [TARGET...]     default: 10000000, every target
#
# Environment: FUZZ_SANITIZER=none builds and runs without AddressSanitizer
# (about 3x the rate on these safe-Rust targets). FUZZ_LONG_MAX_SECS caps each run (default 3600 s; a run cut
# by it says so in the table). Builds and seeds through ci/fuzz.sh (a 4-second
# pass), so the corpora and the sanitizer choice are the same as in CI.
# Exit 1 if any target crashed; the input is in engine/fuzz/artifacts/TARGET/.
set -uo pipefail

runs="${1:-10000000}"
shift || true
case "$runs" in
  ''|*[!0-9]*) echo "usage: $0 [RUNS] [TARGET...]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(parse_frame sync_codec config_parse ctl_proto)
fi
max_secs="${FUZZ_LONG_MAX_SECS:-3600}"
out="$root/perf/results/fuzz-long.md"

bash "$root/ci/fuzz.sh" 4 >/dev/null || { echo "fuzz-long.sh: ci/fuzz.sh failed" >&2; exit 1; }
cd "$root/engine/fuzz"
export RUSTC_BOOTSTRAP=1
sanitizer=()
if [ "${FUZZ_SANITIZER:-}" = none ] || [ ! -x target/x86_64-unknown-linux-gnu/release/parse_frame ]; then
  sanitizer=(-s none)
fi

san="ASan"
[ ${#sanitizer[@]} -gt 0 ] && san="none"
rows=()
failed=0
for t in "${targets[@]}"; do
  log="$(mktemp)"
  max_len=2048
  [ "$t" = config_parse ] && max_len=12288
  echo "fuzz-long.sh: $t, $runs runs (at most $max_secs s), $(date -u +%T)" >&2
  start=$(date +%s)
  cargo fuzz run "${sanitizer[@]}" "$t" "corpus/$t" -- -runs="$runs" -max_total_time="$max_secs" \
    -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
  # The last status line: "#N DONE cov: C ft: F corp: K/..."
  last="$(grep -E '^#[0-9]+' "$log" | tail -n1)"
  cov="$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')"
  ft="$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')"
  corp="$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')"
  if [ "$rc" -eq 0 ]; then
    verdict="none"
    [ "${execs:-0}" -lt "$runs" ] && verdict="none (cut at ${max_secs} s)"
  else
    verdict="CRASH (exit $rc): $(ls artifacts/"$t" 2>/dev/null | tail -n1)"
    failed=1
    tail -n 40 "$log" >&2
  fi
  rows+=("| $t | ${execs:-?} | ${secs} s | ${rate:-?}/s | ${cov:-?} | ${ft:-?} | ${corp:-?} | $san | $verdict |")
  echo "fuzz-long.sh: $t: ${execs:-?} executions in ${secs} s, cov ${cov:-?}, crashes: $verdict" >&2
  rm -f "$log"
done

{
  echo "# Long fuzz runs"
  echo
  echo "\`ci/fuzz-long.sh $runs\` on $(date -u +%F), $(nproc) shared CPUs, one libFuzzer process"
  echo "per target, seeds and corpora as in \`ci/fuzz.sh\`. cov: edges covered;"
  echo "ft: libFuzzer features; corpus: inputs kept; sanitizer: ASan, or none"
  echo "(\`FUZZ_SANITIZER=none\`: safe Rust, panics and overflow are what is hunted)."
  echo
  echo "| target | executions | time | rate | cov | ft | corpus | sanitizer | crashes |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$out.tmp"
if [ "${FUZZ_LONG_APPEND:-0}" = 1 ] && [ -f "$out" ]; then
  # keep earlier rows of other targets (runs done one target at a time)
  grep '^| ' "$out" | grep -v '^| target\|^|---' >"$out.old" || true
  for t in "${targets[@]}"; do grep -v "^| $t |" "$out.old" >"$out.old2"; mv "$out.old2" "$out.old"; done
  { sed -n '1,/^|---/p' "$out.tmp"; cat "$out.old"; grep '^| ' "$out.tmp" | grep -v '^| target\|^|---'; } >"$out"
  rm -f "$out.old" "$out.tmp"
else
  mv "$out.tmp" "$out"
fi
cat "$out"
exit $failed
