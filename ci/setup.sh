#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine. Idempotent.
set -euo pipefail
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # pkg-config + DPDK for the dpdk backend; libxdp/libbpf for AF_XDP tooling; libibverbs for the verbs mirror;
  # iproute2 for the namespace tests; a TrueType font for `bourse hist --plot`; tshark, whose MoldUDP64 dissector
  # decodes the appliance's real output in tests.
  apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config iproute2 \
    dpdk dpdk-dev libdpdk-dev \
    libxdp-dev libbpf-dev \
    rdma-core libibverbs-dev ibverbs-utils \
    fonts-dejavu-core util-linux tshark >/dev/null
fi
command -v cargo >/dev/null || { echo "ci/setup.sh: cargo is required" >&2; exit 1; }
