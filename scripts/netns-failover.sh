#!/usr/bin/env bash
# Three network namespaces for the failover tests (tools/tests/failover_netns.rs): the primary, the standby, and
# the firms with the load generator. Firm traffic and market data share one network, a bridge in bourse-fl; the
# mirror runs on its own veth pair, so a test can cut the mirror while the firms still reach both nodes:
#
#   bourse-fp (primary)                    bourse-fl (firms, load)               bourse-fs (standby)
#     bfp  10.78.0.1/24 ──veth── bfpl ─┐                              ┌─ bfsl ──veth── bfs  10.78.0.2/24
#                                      └── bridge bfbr 10.78.0.3/24 ──┘
#     bfpm 10.79.0.1/24 ─────────────────────── veth (mirror link) ───────────────────── bfsm 10.79.0.2/24
#
# Nothing routes between 10.78.0.0/24 and 10.79.0.0/24, so with bfpm down the nodes cannot reach each other's
# mirror address at all. `up` creates whatever is missing, leaves what exists alone and brings every link up (so
# it also heals a partition a failed test left behind); a lock file serialises concurrent callers. `down` removes
# the three namespaces (and with them every link). Tests call `up` and leave the namespaces in place, like
# scripts/netns.sh.
set -euo pipefail

NS_P=bourse-fp
NS_S=bourse-fs
NS_L=bourse-fl
BRIDGE=bfbr
LOCK=/run/bourse-netns-failover.lock

usage() { echo "usage: $0 up|down|status" >&2; exit 2; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
link_in() { ip -n "$1" link show "$2" >/dev/null 2>&1; }

# Assigns the address (when given) and brings the link up; each step is skipped when already done.
configure() {
  local ns=$1 dev=$2 addr=${3:-}
  if [ -n "$addr" ] && ! ip -n "$ns" -4 addr show dev "$dev" | grep -q "inet ${addr%/*}/"; then
    ip -n "$ns" addr add "$addr" dev "$dev"
  fi
  ip -n "$ns" link set "$dev" up
}

# A veth pair created in namespace $1 as $2, its peer $4 moved to namespace $3. A half-built pair from an
# interrupted run (one end missing or in the wrong place) is deleted and rebuilt.
veth() {
  local ns_a=$1 dev_a=$2 ns_b=$3 dev_b=$4
  if ! link_in "$ns_a" "$dev_a" || ! link_in "$ns_b" "$dev_b"; then
    ip -n "$ns_a" link del "$dev_a" >/dev/null 2>&1 || true
    ip -n "$ns_b" link del "$dev_b" >/dev/null 2>&1 || true
    ip -n "$ns_a" link add "$dev_a" type veth peer name "$dev_b"
    ip -n "$ns_a" link set "$dev_b" netns "$ns_b"
  fi
}

up() {
  for ns in "$NS_P" "$NS_S" "$NS_L"; do
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  # The firm network: a bridge in bourse-fl (STP off, so ports forward at once) with one port per node.
  link_in "$NS_L" "$BRIDGE" || ip -n "$NS_L" link add "$BRIDGE" type bridge stp_state 0 forward_delay 0
  veth "$NS_P" bfp "$NS_L" bfpl
  veth "$NS_S" bfs "$NS_L" bfsl
  for port in bfpl bfsl; do
    ip -n "$NS_L" link set "$port" master "$BRIDGE"
    configure "$NS_L" "$port"
  done
  configure "$NS_L" "$BRIDGE" 10.78.0.3/24
  configure "$NS_P" bfp 10.78.0.1/24
  configure "$NS_S" bfs 10.78.0.2/24
  # The mirror link.
  veth "$NS_P" bfpm "$NS_S" bfsm
  configure "$NS_P" bfpm 10.79.0.1/24
  configure "$NS_S" bfsm 10.79.0.2/24
}

down() {
  for ns in "$NS_P" "$NS_S" "$NS_L"; do
    if ns_exists "$ns"; then ip netns del "$ns"; fi
  done
  return 0
}

status() {
  for ns in "$NS_P" "$NS_S" "$NS_L"; do
    if ns_exists "$ns"; then ip -n "$ns" -br addr | sed "s/^/$ns: /"; else echo "$ns: absent"; fi
  done
}

[ $# -eq 1 ] || usage
[ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }
command -v ip >/dev/null || { echo "$0: needs ip (iproute2)" >&2; exit 1; }

exec 9>"$LOCK"
flock 9
case $1 in
  up) up ;;
  down) down ;;
  status) status ;;
  *) usage ;;
esac
