#!/usr/bin/env bash
# Idempotent setup of what rvs builds and tests need on Debian 12 (root).
# Installs missing Debian packages (one apt-get update, only if something is
# missing) and checks the Rust toolchain, which must already be installed.
set -euo pipefail

PKGS=(
  dpdk dpdk-dev libdpdk-dev     # the data plane (pkg-config libdpdk), dpdk-testpmd baseline
  clang libclang-dev pkg-config # bindgen over the DPDK headers
  libpcap-dev                   # DPDK's pcap PMD headers
  iproute2 ethtool procps       # namespaces, veths, bridges, offloads, sysctl
  curl python3 tcpdump iputils-ping # e2e clients, ping through the exception path, debugging
  keepalived                    # the VRRPv3 peer and takeover baseline of the failover tests (issue 11)
  bird2                         # [bgp]: BIRD 2 beside each director and as the ECMP router (test_bgp.py)
  python3-aiosmtpd              # the SMTP relay the health-check e2e test mails through
  python3-prometheus-client     # parses the metrics endpoint in the ctl e2e test
  build-essential
  valgrind                      # callgrind: the instructions-per-packet guard (perf/profile.sh --check)
  openssl ca-certificates       # https health-check tests (certificates made with openssl req); tls_verify's CA bundle
)

log() { echo "[setup] $*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "[setup] must run as root (apt-get, network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  [[ $p == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all present"
fi

# Rust: preinstalled on our machines (rustup in ~/.cargo); never downloaded here.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "[setup] ERROR: cargo not found (PATH=$PATH). Install the Rust toolchain (rustup) first." >&2
  exit 1
fi
log "$(cargo --version), $(rustc --version 2>/dev/null || echo 'rustc ?')"

pkg-config --exists libdpdk || { echo "[setup] ERROR: pkg-config cannot find libdpdk" >&2; exit 1; }
log "DPDK $(pkg-config --modversion libdpdk)"

python3 - <<'PY' || { echo "[setup] ERROR: python3 >= 3.9 needed" >&2; exit 1; }
import sys
assert sys.version_info >= (3, 9), sys.version
PY
log "$(python3 --version)"

# kernel features the e2e topology uses (no modules to load: veth and bridge
# are built in or already loaded on our machines; say so clearly if not)
chk="rvs-setupchk-$$"
if ip netns add "$chk" 2>/dev/null; then
  if ! ip -n "$chk" link add chk0 type veth peer name chk1 2>/dev/null ||
     ! ip -n "$chk" link add chkbr0 type bridge 2>/dev/null; then
    log "WARNING: cannot create veth pairs or bridges; e2e tests will fail"
  fi
  ip netns del "$chk" 2>/dev/null || true
else
  log "WARNING: cannot create network namespaces; e2e tests will fail"
fi
log "ok"
