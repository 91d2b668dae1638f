#!/usr/bin/env bash
# THE test command: setup, release build, unit + integration tests, fuzz smoke,
# end-to-end tests in network namespaces. Fails if any step fails.
#
#   bash ci/test.sh                 everything
#   bash ci/test.sh wrr udp         ... with the e2e runner limited to matching tests
#
# Must run as root (apt-get, network namespaces).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

declare -a NAMES=() RESULTS=() TIMES=() TEST_NOTES=()
failed=0
t_all=$SECONDS

step() {  # step NAME CMD...
  local name=$1; shift
  echo
  echo "==== [$name] $*"
  local t0=$SECONDS
  "$@"
  local rc=$?
  local dt=$((SECONDS - t0))
  NAMES+=("$name"); TIMES+=("${dt}s")
  if ((rc == 0)); then
    RESULTS+=("ok")
  else
    RESULTS+=("FAILED (exit $rc)"); failed=1
  fi
  echo "==== [$name] $([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)") in ${dt}s"
  return $rc
}

skip() {
  NAMES+=("$1"); RESULTS+=("skipped: $2"); TIMES+=("-")
  echo; echo "==== [$1] skipped: $2"
}

summary() {
  echo
  echo "==== summary ($((SECONDS - t_all))s)"
  for i in "${!NAMES[@]}"; do
    printf '  %-8s %-6s %s\n' "${NAMES[$i]}" "${TIMES[$i]}" "${RESULTS[$i]}"
  done
  if ((${#TEST_NOTES[@]})); then
    echo "  unit tests:"
    printf '%s\n' "${TEST_NOTES[@]}" | sed 's/^/    /'
  fi
  if ((failed)); then echo "ci/test.sh: FAILED"; else echo "ci/test.sh: all passed"; fi
}
trap summary EXIT

if ! step setup bash ci/setup.sh; then
  exit 1
fi
# the real interpreter, not a wrapper script (pyenv shims): signals must reach it
PY=$(python3 -c 'import sys; print(sys.executable)')

# Unit and integration tests, every binary even after one fails
# (--no-fail-fast). A failing test is run once more on its own, as the e2e
# runner does: one that then passes is named FLAKY in the summary (and its
# first failure printed there); one that fails again fails the run. The
# summary names the failing tests, so the tail of a CI log says which.
TEST_LOG=${TMPDIR:-/tmp}/rvs-cargo-test.log
unit_tests() {
  cargo test --workspace --release --no-fail-fast 2>&1 | tee "$TEST_LOG"
  local rc=${PIPESTATUS[0]}
  ((rc == 0)) && return 0
  # "failures:" lists each failing test indented by four spaces
  local names
  mapfile -t names < <(awk '/^failures:$/ {f=1; next} f && /^    [^ ]/ {print $1; next} f && !/^    / {f=0}' "$TEST_LOG" | sort -u)
  if ((${#names[@]} == 0)); then
    TEST_NOTES+=("cargo test failed (exit $rc) with no test named: see the build/test output above")
    return "$rc"
  fi
  local first
  first=$(grep -E -A12 "^---- .* stdout ----" "$TEST_LOG" | head -60)
  echo "ci/test.sh: ${#names[@]} test(s) failed, run once more: ${names[*]}"
  if cargo test --workspace --release --no-fail-fast -- --exact "${names[@]}"; then
    TEST_NOTES+=("FLAKY (failed, then passed alone): ${names[*]}" "$first")
    return 0
  fi
  TEST_NOTES+=("FAILED twice: ${names[*]}" "$first")
  return "$rc"
}

if step build cargo build --release --workspace; then
  step test unit_tests
  if [[ -f ci/fuzz.sh ]]; then
    step fuzz bash ci/fuzz.sh 30
  else
    skip fuzz "ci/fuzz.sh not present"
  fi
  # Instructions per packet of the pipeline (callgrind: exact counts, so a
  # noisy machine cannot move them) against perf/budgets.toml: fails when
  # NAT, DR, TUN or the per-connection figure exceeds its ceiling by > 5%.
  step callgrind bash perf/profile.sh --check
  # Real kernel TCP in namespaces on a shared 2-core machine: a test that
  # fails is run once more, and one that then passes is named FLAKY in the
  # summary (a test that fails twice fails the run).
  step e2e "$PY" ci/e2e/run.py --retries 1 "$@"
  # Failover takeover time, short form (2 kill -9 takeovers per mode, rvs NAT
  # and DR beside a keepalived pair); the README reports the 10-run figures.
  step failover "$PY" ci/failover.py --runs 2 --out "${TMPDIR:-/tmp}/rvs-failover-ci.md"
  # The benchmark's 10-second smoke run: generator and director talk over
  # memif and the report is well formed (its numbers are not pass/fail).
  step bench bash perf/bench.sh --smoke --no-build
  # The soak's short form (~35 s): 20 s of connection churn at half the
  # measured rate; RSS and mbufs in use flat, no silent loss (issue 12; the
  # README reports the 10-minute run).
  step soak bash perf/soak.sh --short --no-build
else
  skip test "build failed"
  skip fuzz "build failed"
  skip callgrind "build failed"
  skip e2e "build failed"
  skip failover "build failed"
  skip bench "build failed"
  skip soak "build failed"
fi

exit $failed
