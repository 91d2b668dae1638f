#!/usr/bin/env bash
# Fuzz the engine for SECONDS in total (default 60), split over the targets
# in engine/fuzz/fuzz_targets/:
#   parse_frame   30 %  engine::packet::parse_frame and every rewrite it feeds
#   parse_ipv6    10 %  engine::packet::parse_ipv6, ICMPv6/NDP views, IPv6 checksums
#   sync_codec    20 %  the HA codecs, ha::sync::decode and ha::advert::decode_ip
#   config_parse  20 %  config::parse (rvs check, start-up, SIGHUP) and parse_lcores
#   ctl_proto     20 %  the control socket: line reader, request parser, edits
# Each target gets at least one second, its own corpus (engine/fuzz/corpus/TARGET)
# and its own seeds. ci/fuzz-long.sh runs each target for millions of
# executions (perf/results/fuzz-long.md).
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
# FUZZ_SANITIZER=none asks for `-s none` directly.
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
if [ "${FUZZ_SANITIZER:-}" = none ]; then
  # asked for: safe-Rust targets run about 3x faster without ASan
  sanitizer=(-s none)
  cargo fuzz build "${sanitizer[@]}"
elif ! cargo fuzz build; then
  echo "fuzz.sh: ASan build failed, retrying with -s none" >&2
  sanitizer=(-s none)
  cargo fuzz build "${sanitizer[@]}"
fi

# Time split (see above), at least 1 s each (libFuzzer reads
# -max_total_time=0 as "no limit").
share() {
  local t=$(( secs * $1 / 100 ))
  [ "$t" -ge 1 ] || t=1
  echo "$t"
}
frame_secs=$(share 30)
ipv6_secs=$(share 10)
sync_secs=$(share 20)
config_secs=$(share 20)
ctl_secs=$(( secs - frame_secs - ipv6_secs - sync_secs - config_secs ))
[ "$ctl_secs" -ge 1 ] || ctl_secs=1

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

# parse_ipv6 seeds: mode byte 01 (repair the L4 checksum) + TCP over IPv6
# with hop-by-hop and destination options, a tagged UDP first fragment
# behind a routing header, a later fragment, a neighbour solicitation.
corpus=corpus/parse_ipv6
mkdir -p "$corpus"
seed tcp_hbh_dopt 0102d10000000102c10000001086dd60012345002e004020010db800000000000000000000000a20010db80000000000000000000000643c000104000000000601010c0000000000000000000000009c40005000000001000000005002faf0541500006869
seed udp_frag_vlan 0102d10000000102c1000000108100600786dd6000000000202b4020010db800000000000000000000000a20010db80000000000000000000000642c000400000000001100000100000001138800350bb800006162636465666768
seed later_frag 0002d10000000102c10000001086dd60000000000b2c4020010db800000000000000000000000a20010db8000000000000000000000064060004d00000000778797a
seed ns 003333ff56789a02c10000001086dd6000000000203aff20010db800000000000000000000000aff0200000000000000000001ff56789a8700f55e0000000020010db800000000000000123456789a010102c100000010

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

# config_parse seeds: the shipped configurations and a minimal one.
corpus=corpus/config_parse
mkdir -p "$corpus"
for f in "$root"/configs/*.toml "$root"/perf/configs/*.toml.in; do
  [ -f "$f" ] && cp "$f" "$corpus/seed_$(basename "$f")"
done
printf '[dpdk]\ncores = "0-1"\n[[port]]\nname = "a"\ndevice = "net_null0"\naddress = "198.18.0.2/24"\n' \
  >"$corpus/seed_minimal"

# ctl_proto seeds: one line of each command (the fuzz target applies the
# changes to its own two-service configuration), then two lines at once.
corpus=corpus/ctl_proto
mkdir -p "$corpus"
n=0
while IFS= read -r line; do
  n=$((n + 1))
  printf '%s\n' "$line" >"$corpus/seed_$n"
done <<'REQS'
{"cmd":"list"}
{"cmd":"conns","limit":10}
{"cmd":"status"}
{"cmd":"zero"}
{"cmd":"list","service":"udp:198.18.0.100:53"}
{"cmd":"conns","limit":10,"service":"tcp:198.18.0.100:80"}
{"cmd":"zero","service":"tcp:198.18.0.100:80"}
{"cmd":"set-timeouts","tcp":900,"tcpfin":0,"udp":2}
{"cmd":"add-service","service":"tcp:198.18.0.101:443","scheduler":"sh","flags":["sh-port"],"forward":"nat","persistence":300,"persistence_netmask":"255.255.255.0","sorry_server":"198.19.0.20:80","quorum":1}
{"cmd":"edit-service","service":"tcp:198.18.0.100:80","scheduler":"rr"}
{"cmd":"del-service","service":"udp:198.18.0.100:53"}
{"cmd":"add-server","service":"tcp:198.18.0.100:80","server":"198.19.0.14:8080","weight":2,"upper_threshold":100,"lower_threshold":50}
{"cmd":"edit-server","service":"tcp:198.18.0.100:80","server":"198.19.0.11:8080","weight":0}
{"cmd":"del-server","service":"tcp:198.18.0.100:80","server":"198.19.0.12"}
REQS
printf '{"cmd":"status"}\r\n{"cmd":"add-server","service":"tcp:198.18.0.100:80","server":"198.19.0.15"}\n' \
  >"$corpus/seed_two"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# run TARGET SECONDS [MAX_LEN]: fuzz TARGET on corpus/TARGET; exits on a crash.
run() {
  local target="$1" t="$2" max_len="${3:-2048}" rc execs
  set +e
  cargo fuzz run "${sanitizer[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$t" -max_len="$max_len" -print_final_stats=1 2>&1 | tee "$log"
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
run parse_ipv6 "$ipv6_secs"
run sync_codec "$sync_secs"
run config_parse "$config_secs" 12288
run ctl_proto "$ctl_secs"
