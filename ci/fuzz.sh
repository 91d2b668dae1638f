#!/usr/bin/env bash
# Fuzz the engine for SECONDS in total (default 60): two thirds of the time
# on engine::packet::parse_frame and every rewrite it feeds
# (engine/fuzz/fuzz_targets/parse_frame.rs), one third on the HA codecs,
# ha::sync::decode and ha::advert::decode_ip
# (engine/fuzz/fuzz_targets/sync_codec.rs). Each target gets at least one
# second, its own corpus (engine/fuzz/corpus/TARGET) and its own seeds.
#
#   ci/fuzz.sh [SECONDS]
#
# Installs cargo-fuzz if missing. Exits non-zero on a crash; libFuzzer leaves
# the input in engine/fuzz/artifacts/TARGET/ (reproduce with
# `cargo fuzz run TARGET <file>` from engine/fuzz).
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
cargo fuzz build "${sanitizer[@]}" sync_codec

# Time split: 2/3 parse_frame, 1/3 sync_codec, at least 1 s each
# (libFuzzer reads -max_total_time=0 as "no limit").
frame_secs=$(( secs * 2 / 3 ))
[ "$frame_secs" -ge 1 ] || frame_secs=1
sync_secs=$(( secs - frame_secs ))
[ "$sync_secs" -ge 1 ] || sync_secs=1

# Seeds: mode byte 01 (repair the IPv4 checksum) + a TCP SYN, a UDP datagram
# with IP options, an ICMP port-unreachable quoting a UDP header, an ARP
# request. libFuzzer grows the corpus from there.
corpus=corpus/parse_frame
mkdir -p "$corpus"
seed() {
  # $1 name, $2 hex; written into $corpus
  printf '%b' "$(printf '%s' "$2" | sed 's/../\\x&/g')" >"$corpus/seed_$1"
}
seed tcp_syn 0102d10000000102c100000010080045000028000140004006ae3cc612000ac61200649c40005000000001000000005002faf000000000
seed udp_opts 0102d10000000102c100000010080046000024000140004011ab34c612000ac61200640101010014e90035000c000061626364
seed icmp_err 0102d10000000102c100000010080045000038000140004001ae31c612000ac6120064030300000000000045000020000140004011ae39c6120064c612000a14e90035000c0000
seed arp 01ffffffffffff02c1000000100806000108000604000102c100000010c612000a000000000000c6120064

# sync_codec seeds: mode byte 01 (the target appends the HMAC) + a records
# message (a connection, a template and an unknown record type), a bulk
# end, a bulk request; mode byte 02 (repair the VRRP checksum) + a VRRPv3
# advert in an IPv4 packet.
corpus=corpus/sync_codec
mkdir -p "$corpus"
seed sync_records 015256535901010037c61300020123456789abcdef000000000000000100030000011a06010000c61200019c41c61200640050c613000b1f90000dbba0021511c61200650000c6120200c613000c0035000493e0c802aabb
seed sync_bulk_end 015256535901030010c61300020123456789abcdef000000000000000100000000000000000000000700000000000003e8
seed sync_bulk_req 015256535901020008c61300020123456789abcdef0000000000000001000000000000000000000007
seed vrrp_advert 0245c0002400010000ff700000c6130002e000001231336402000a0000c6120064c6130001

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# run TARGET SECONDS: fuzz TARGET on corpus/TARGET; exits on a crash.
run() {
  local target="$1" t="$2" rc execs
  set +e
  cargo fuzz run "${sanitizer[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$t" -max_len=2048 -print_final_stats=1 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: $target FAILED (exit $rc) after ${execs:-?} executions" >&2
    exit "$rc"
  fi
  echo "fuzz.sh: $target ok: ${execs:-?} executions in ${t}s, no crash"
}

run parse_frame "$frame_secs"
run sync_codec "$sync_secs"
