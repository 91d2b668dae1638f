#!/usr/bin/env bash
# Fuzz engine::packet::parse_frame and every rewrite it feeds
# (engine/fuzz/fuzz_targets/parse_frame.rs) for SECONDS (default 60).
#
#   ci/fuzz.sh [SECONDS]
#
# Installs cargo-fuzz if missing. Exits non-zero on a crash; libFuzzer leaves
# the input in engine/fuzz/artifacts/parse_frame/ (reproduce with
# `cargo fuzz run parse_frame <file>` from engine/fuzz).
#
# cargo-fuzz needs unstable rustc flags (-Zsanitizer=address, coverage
# options). Only stable Rust is assumed, so RUSTC_BOOTSTRAP=1 unlocks them;
# if the AddressSanitizer build fails on this toolchain we fall back to
# `-s none` (safe Rust: panics and arithmetic overflow are what we hunt).
set -euo pipefail

secs="${1:-60}"
case "$secs" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/engine/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# Keep the build polite on shared machines.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

sanitizer=()
if ! cargo fuzz build parse_frame; then
  echo "fuzz.sh: ASan build failed, retrying with -s none" >&2
  sanitizer=(-s none)
  cargo fuzz build "${sanitizer[@]}" parse_frame
fi

# Seeds: mode byte 01 (repair the IPv4 checksum) + a TCP SYN, a UDP datagram
# with IP options, an ICMP port-unreachable quoting a UDP header, an ARP
# request. libFuzzer grows the corpus from there.
corpus=corpus/parse_frame
mkdir -p "$corpus"
seed() {
  # $1 name, $2 hex
  printf '%b' "$(printf '%s' "$2" | sed 's/../\\x&/g')" >"$corpus/seed_$1"
}
seed tcp_syn 0102d10000000102c100000010080045000028000140004006ae3cc612000ac61200649c40005000000001000000005002faf000000000
seed udp_opts 0102d10000000102c100000010080046000024000140004011ab34c612000ac61200640101010014e90035000c000061626364
seed icmp_err 0102d10000000102c100000010080045000038000140004001ae31c612000ac6120064030300000000000045000020000140004011ae39c6120064c612000a14e90035000c0000
seed arp 01ffffffffffff02c1000000100806000108000604000102c100000010c612000a000000000000c6120064

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo fuzz run "${sanitizer[@]}" parse_frame "$corpus" -- \
  -max_total_time="$secs" -max_len=2048 -print_final_stats=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
if [ "$rc" -ne 0 ]; then
  echo "fuzz.sh: parse_frame FAILED (exit $rc) after ${execs:-?} executions" >&2
  exit "$rc"
fi
echo "fuzz.sh: parse_frame ok: ${execs:-?} executions in ${secs}s, no crash"
