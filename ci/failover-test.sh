#!/usr/bin/env bash
# Failover test: N rounds of "primary (ack = replicated, or durable in even rounds) + hot standby, load generator running, kill -9 the primary at
# a random moment, the standby promotes and serves, compare both WALs, log in again and trade".
#
# As root with working network namespaces, each round is tools/tests/failover_netns.rs's kill scenario: primary,
# standby and firms in three namespaces (scripts/netns-failover.sh; the mirror on its own veth pair, the firms on a
# bridge), plus a market-data client whose continuity verdict is shown per round. Otherwise each round is
# tools/tests/standby.rs's during-load scenario on loopback. Either way BOURSE_FAILOVER_KILL_MS is drawn at random;
# see those files for what is checked. The namespace partition scenario runs once, in `cargo test --workspace`.
# Usage: ci/failover-test.sh [N]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-10}"

# Builds one integration test and prints its executable (it embeds the path of the `bourse` binary it spawns).
test_bin() {
    local name=$1 bin
    bin="$(cargo test -q -p bourse --test "$name" --no-run 2>&1 | sed -n "s/.*Executable tests\/$name.rs (\(.*\))$/\1/p" | tail -n 1)"
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        bin="$(cargo test -p bourse --test "$name" --no-run 2>&1 | sed -n "s/.*Executable tests\/$name.rs (\(.*\))$/\1/p" | tail -n 1)"
    fi
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        echo "could not build or find the $name test executable" >&2
        exit 2
    fi
    echo "$bin"
}

# Namespaces when they can be had: root, iproute2, and the set-up script succeeding. FAILOVER_MODE=loopback forces
# the loopback rounds (FAILOVER_MODE=netns insists on namespaces).
mode="${FAILOVER_MODE:-auto}"
if [[ "$mode" == auto ]]; then
    mode=loopback
    if [[ "$(id -u)" == 0 ]] && ip netns list >/dev/null 2>&1 && bash scripts/netns-failover.sh up >/dev/null 2>&1; then
        mode=netns
    fi
elif [[ "$mode" != netns && "$mode" != loopback ]]; then
    echo "FAILOVER_MODE=$mode: expected auto, netns or loopback" >&2
    exit 2
fi
if [[ "$mode" == netns ]]; then
    bin="$(test_bin failover_netns)"
    test_name=failover_netns_kill
    echo "failover rounds in network namespaces (primary bourse-fp, standby bourse-fs, firms bourse-fl)"
else
    bin="$(test_bin standby)"
    test_name=standby_follows_promotes_and_loses_no_acknowledged_order
    echo "failover rounds on loopback (not root, or no network namespaces)"
fi

logs="$(mktemp -d -t bourse-failover.XXXXXX)"
passed=0
failed=0
for ((round = 1; round <= rounds; round++)); do
    # Kill points spread over the 1.2 s load run, from just after it starts to just after it ends.
    kill_ms=$(( 50 + RANDOM % 1250 ))
    # Both acknowledgement rules that promise no acknowledged loss on a primary's death, alternately.
    if (( round % 2 )); then ack=replicated; else ack=durable; fi
    log="$logs/round$round.log"
    start=$(date +%s%N)
    verdict=FAILED
    if BOURSE_PAIR_ACK="$ack" BOURSE_FAILOVER_ONLY_DURING=1 BOURSE_FAILOVER_KILL_MS="$kill_ms" \
        "$bin" --exact "$test_name" --nocapture >"$log" 2>&1; then
        # A namespace round that skipped checked nothing: it must not count as a pass.
        if grep -q '^skipped:' "$log"; then
            echo "    the test skipped although namespaces were available: $(grep -m1 '^skipped:' "$log")" >>"$log"
        else
            verdict=ok
        fi
    fi
    if [[ "$verdict" == ok ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    # Each may be absent (a failed round, or the loopback test's log): grep's status must not end the script.
    detail="$(grep -o 'promoted at seq [0-9]*' "$log" | tail -n 1 || true)"
    serving="$(grep -o 'in epoch 2, [0-9.]* ms after the primary fell silent' "$log" | tail -n 1 \
        | sed 's/in epoch 2, /serving /' || true)"
    md="$(grep -o 'market data across the failover: [A-Za-z ]*' "$log" | tail -n 1 \
        | sed 's/ across the failover//; s/ *$//' || true)"
    echo "round $round ($mode, ack = $ack): kill at ${kill_ms} ms: $verdict (${ms} ms) ${detail}${serving:+, $serving}${md:+, $md}"
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
