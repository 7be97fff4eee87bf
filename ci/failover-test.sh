#!/usr/bin/env bash
# Failover test: N rounds of "primary (ack = mirrored) + hot standby on loopback, load generator running, kill -9
# the primary at a random moment, the standby promotes and serves, compare both WALs, log in again and trade".
# Each round is one run of tools/tests/standby.rs's during-load scenario with BOURSE_FAILOVER_KILL_MS drawn at
# random; see that file for what is checked. Loopback only (no network namespaces): the mirror runs over TCP on
# 127.0.0.1 and the firms' UDP as well.
# Usage: ci/failover-test.sh [N]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-10}"
# Build once and find the test executable (it embeds the path of the `bourse` binary it spawns).
bin="$(cargo test -q -p bourse --test standby --no-run 2>&1 | sed -n 's/.*Executable tests\/standby.rs (\(.*\))$/\1/p' | tail -n 1)"
if [[ -z "$bin" || ! -x "$bin" ]]; then
    bin="$(cargo test -p bourse --test standby --no-run 2>&1 | sed -n 's/.*Executable tests\/standby.rs (\(.*\))$/\1/p' | tail -n 1)"
fi
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "could not build or find the standby test executable" >&2
    exit 2
fi

logs="$(mktemp -d -t bourse-failover.XXXXXX)"
passed=0
failed=0
for ((round = 1; round <= rounds; round++)); do
    # Kill points spread over the 1.2 s load run, from just after it starts to just after it ends.
    kill_ms=$(( 50 + RANDOM % 1250 ))
    log="$logs/round$round.log"
    start=$(date +%s%N)
    if BOURSE_FAILOVER_ONLY_DURING=1 BOURSE_FAILOVER_KILL_MS="$kill_ms" \
        "$bin" --exact standby_follows_promotes_and_loses_no_acknowledged_order --nocapture >"$log" 2>&1; then
        passed=$((passed + 1))
        verdict=ok
    else
        failed=$((failed + 1))
        verdict=FAILED
    fi
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "round $round: kill at ${kill_ms} ms: $verdict (${ms} ms) $(grep -o 'promoted at seq [0-9]*' "$log" | tail -n 1)"
    if [[ "$verdict" == FAILED ]]; then
        tail -n 30 "$log" | sed 's/^/    /'
    fi
done
if (( failed == 0 )); then
    rm -rf "$logs"
else
    echo "logs kept in $logs"
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
