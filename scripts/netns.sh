#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for the backend tests and the wire benchmarks:
#
#   bourse-a: veth bva, 10.77.0.1/24  <──veth──>  bourse-b: veth bvb, 10.77.0.2/24
#
# `up` creates whatever is missing and leaves what exists alone, so several engineers' tests can call it at once;
# a lock file serialises concurrent callers. `down` removes both namespaces (and with them the veth pair).
set -euo pipefail

NS_A=bourse-a
NS_B=bourse-b
VETH_A=bva
VETH_B=bvb
ADDR_A=10.77.0.1/24
ADDR_B=10.77.0.2/24
LOCK=/run/bourse-netns.lock

usage() { echo "usage: $0 up|down|status" >&2; exit 2; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# Assigns the address and brings the links up; each step is skipped when already done.
configure() {
  local ns=$1 dev=$2 addr=$3
  ip -n "$ns" link set lo up
  if ! ip -n "$ns" -4 addr show dev "$dev" | grep -q "inet ${addr%/*}/"; then
    ip -n "$ns" addr add "$addr" dev "$dev"
  fi
  ip -n "$ns" link set "$dev" up
}

up() {
  ns_exists "$NS_A" || ip netns add "$NS_A"
  ns_exists "$NS_B" || ip netns add "$NS_B"
  # The pair is created inside bourse-a and one end moved, so a half-built pair from an interrupted run is
  # recognisable: if bva exists but bvb does not live in bourse-b, rebuild the pair.
  if ! ip -n "$NS_A" link show "$VETH_A" >/dev/null 2>&1 || ! ip -n "$NS_B" link show "$VETH_B" >/dev/null 2>&1; then
    ip -n "$NS_A" link del "$VETH_A" >/dev/null 2>&1 || true
    ip -n "$NS_B" link del "$VETH_B" >/dev/null 2>&1 || true
    ip -n "$NS_A" link add "$VETH_A" type veth peer name "$VETH_B"
    ip -n "$NS_A" link set "$VETH_B" netns "$NS_B"
  fi
  configure "$NS_A" "$VETH_A" "$ADDR_A"
  configure "$NS_B" "$VETH_B" "$ADDR_B"
}

down() {
  ns_exists "$NS_A" && ip netns del "$NS_A"
  ns_exists "$NS_B" && ip netns del "$NS_B"
  return 0
}

status() {
  for ns in "$NS_A" "$NS_B"; do
    if ns_exists "$ns"; then ip -n "$ns" -br addr; else echo "$ns: absent"; fi
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
