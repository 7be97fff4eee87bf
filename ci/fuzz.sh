#!/usr/bin/env bash
# Fuzz smoke: runs every cargo-fuzz target in nic/fuzz, persist/fuzz and tools/appliance/fuzz (when present) for a bounded time each.
# Usage: ci/fuzz.sh [seconds-per-target]   (default 20)
#
# Only a stable toolchain is installed: cargo-fuzz needs nightly flags, so RUSTC_BOOTSTRAP=1 unlocks them.
# The sanitizer runtime is tried first (-s address); where it is unavailable we fall back to `-s none`, which
# still catches panics, the failures that matter for our decoders.
set -euo pipefail

seconds="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

run_dir() {
    local dir="$1"
    [ -d "$dir/fuzz/fuzz_targets" ] || return 0
    local sanitizer="address"
    for src in "$dir"/fuzz/fuzz_targets/*.rs; do
        local target
        target="$(basename "$src" .rs)"
        local corpus="$dir/fuzz/corpus/$target"
        mkdir -p "$corpus"
        echo "== fuzz $dir $target (${seconds}s, sanitizer $sanitizer)"
        if ! (cd "$dir" && cargo fuzz build -s "$sanitizer" "$target" >/dev/null 2>&1); then
            echo "   sanitizer '$sanitizer' unavailable here; using -s none"
            sanitizer="none"
        fi
        # Fuzz a scratch copy so new inputs do not pile up in the committed seed corpus.
        local work
        work="$(mktemp -d)"
        cp -r "$corpus/." "$work/" 2>/dev/null || true
        (cd "$dir" && cargo fuzz run -s "$sanitizer" "$target" "$work" -- -max_total_time="$seconds")
        rm -rf "$work"
    done
}

run_dir "$root/nic"
run_dir "$root/persist"
run_dir "$root/tools/appliance"
echo "fuzz smoke passed"
