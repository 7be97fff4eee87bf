#!/usr/bin/env bash
# Crash test: N rounds of "append seeded inputs behind the WAL, kill -9 at a random moment, recover, check".
# A round passes when every input the driver saw committed is recovered exactly once, nothing after the torn tail
# survives recovery, and the recovered engine's state hash equals a fresh engine fed the same generated inputs.
# Usage: ci/crash-test.sh [N]   (BOURSE_BIN=path skips the build; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-50}"
if [[ -z "${BOURSE_BIN:-}" ]]; then
    cargo build -q -p bourse
    BOURSE_BIN="${CARGO_TARGET_DIR:-target}/debug/bourse"
fi

work="$(mktemp -d -t bourse-crash.XXXXXX)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
for ((round = 1; round <= rounds; round++)); do
    seed=$(( (RANDOM << 16) | RANDOM ))
    dir="$work/r$round"
    out="$work/r$round.out"
    # Small segments so that rotation happens under load; modes alternate between group commit and dax flushes.
    mode=msync
    (( round % 3 == 0 )) && mode=dax
    batch=$(( 1 << (4 + RANDOM % 9) ))
    "$BOURSE_BIN" wal drive --dir "$dir" --seed "$seed" --mode "$mode" --segment-bytes 262144 --batch "$batch" \
        >"$out" 2>"$work/r$round.err" &
    pid=$!
    sleep "0.$(( 20 + RANDOM % 70 ))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # The last complete line is the highest seq the driver saw committed (a partial last line is ignored).
    if [[ -s "$out" && -n "$(tail -c 1 "$out")" ]]; then
        committed=$(sed '$d' "$out" | tail -n 1)
    else
        committed=$(tail -n 1 "$out")
    fi
    committed="${committed:-0}"
    if result=$("$BOURSE_BIN" wal check --dir "$dir" --seed "$seed" --committed "$committed" 2>&1) \
        && "$BOURSE_BIN" wal verify --dir "$dir" >/dev/null 2>&1; then
        passed=$((passed + 1))
        echo "round $round: seed $seed mode $mode: $result"
    else
        failed=$((failed + 1))
        echo "round $round: seed $seed mode $mode: FAILED: $result"
        cp -r "$dir" "/tmp/bourse-crash-failed-$seed" 2>/dev/null || true
    fi
    rm -rf "$dir" "$out"
done
echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
