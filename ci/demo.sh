#!/usr/bin/env bash
# THE demo: builds rvs, builds a namespace topology with three real HTTP servers,
# runs the director with configs/demo-nat.toml, sends traffic through the VIP,
# prints who answered and the director's counters, and cleans up (always).
# Must run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
bash ci/setup.sh
# the real interpreter, not a wrapper script (pyenv shims): signals must reach it
PY=$(python3 -c 'import sys; print(sys.executable)')
if [[ ${RVS_E2E_FAKE:-} != 1 ]]; then
  echo "[demo] cargo build --release -p rvs-cli"
  cargo build --release -p rvs-cli
fi
exec "$PY" ci/demo.py "$@"
