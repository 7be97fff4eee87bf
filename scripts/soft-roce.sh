#!/usr/bin/env bash
# Sets up soft-RoCE (rdma_rxe) on a network interface so the verbs mirror transport can run without RDMA hardware.
# Idempotent. Exit codes: 0 = an rxe device is ready; 2 = this kernel cannot do soft-RoCE (say so, use --transport
# tcp); 3 = the kernel can but set-up failed (missing tools or interface); 1 = usage.
#
# Usage: scripts/soft-roce.sh IFACE [RXE_NAME]    (default RXE_NAME: rxe0)
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 IFACE [RXE_NAME]" >&2
    exit 1
fi
iface=$1
name=${2:-rxe0}

no_kernel_support() {
    echo "soft-roce: UNSUPPORTED: $1" >&2
    echo "soft-roce: this kernel cannot provide an RDMA device; the verbs mirror transport cannot run here." >&2
    echo "soft-roce: use the tcp mirror transport (it runs the same protocol)." >&2
    exit 2
}

if [[ ! -e "/sys/class/net/$iface" ]]; then
    echo "soft-roce: no network interface $iface" >&2
    exit 3
fi

# Already set up? rxe devices appear under /sys/class/infiniband.
if [[ -e "/sys/class/infiniband/$name" ]]; then
    echo "soft-roce: $name already exists"
    exit 0
fi
if [[ $(cat /sys/class/net/"$iface"/operstate 2>/dev/null) == down ]]; then
    echo "soft-roce: $iface is down; bring it up (ip link set $iface up) and give it an address first" >&2
    exit 3
fi

if [[ ! -d /sys/module/rdma_rxe ]]; then
    if [[ -r /proc/config.gz ]] && ! zcat /proc/config.gz | grep -qE '^CONFIG_INFINIBAND=(y|m)'; then
        no_kernel_support "CONFIG_INFINIBAND is not set in $(uname -r)"
    fi
    if ! modprobe rdma_rxe 2>/dev/null; then
        if grep -qw nomodule /proc/cmdline; then
            no_kernel_support "rdma_rxe is not built in and the kernel was booted with 'nomodule'"
        fi
        no_kernel_support "modprobe rdma_rxe failed (module not available for $(uname -r))"
    fi
fi

if ! command -v rdma >/dev/null; then
    echo "soft-roce: the 'rdma' tool is missing: apt-get install -y iproute2" >&2
    exit 3
fi

if ! out=$(rdma link add "$name" type rxe netdev "$iface" 2>&1); then
    if grep -q "NETLINK_RDMA" <<<"$out"; then
        no_kernel_support "rdma link add: $out"
    fi
    echo "soft-roce: rdma link add failed: $out" >&2
    exit 3
fi

# The port goes ACTIVE, and the RoCE v2 GIDs of the interface's addresses appear, a moment after the link is added.
port=/sys/class/infiniband/$name/ports/1
for _ in $(seq 50); do
    grep -q ACTIVE "$port/state" 2>/dev/null && break
    sleep 0.1
done
echo "soft-roce: $name ready on $iface, port $(cat "$port/state" 2>/dev/null || echo unknown)"
# The verbs mirror needs the GID index of a RoCE v2 GID both ends can route to (BOURSE_RXE_GID in the tests).
for gid in "$port"/gids/*; do
    i=${gid##*/}
    value=$(cat "$gid" 2>/dev/null) || continue
    [[ $value == 0000:0000:0000:0000:0000:0000:0000:0000 ]] && continue
    echo "soft-roce: gid index $i $value ($(cat "$port/gid_attrs/types/$i" 2>/dev/null || echo '?'))"
done
