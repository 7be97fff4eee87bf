#!/usr/bin/env bash
# The witness fault matrix (tools/tests/witness.rs) N times: each round starts its own single-member etcd per case
# and checks every case for acknowledged loss and two serving nodes. A missing etcd binary makes each case print
# `skipped: <reason>` (ci/setup.sh installs etcd-server).
# Usage: ci/witness-test.sh [N]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
cargo test -q -p bourse --test witness --no-run
for round in $(seq 1 "$rounds"); do
    printf 'witness round %d/%d\n' "$round" "$rounds"
    cargo test -q -p bourse --test witness -- --test-threads=1 --nocapture 2>&1 | grep -E 'witness: |skipped: |test result|panicked'
done
