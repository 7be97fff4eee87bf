#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine. Idempotent.
set -euo pipefail
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # pkg-config + DPDK for the dpdk backend; libxdp/libbpf for AF_XDP tooling; libibverbs for the verbs mirror;
  # iproute2 for the namespace tests; a TrueType font for `bourse hist --plot`; tshark, whose MoldUDP64 dissector
  # decodes the appliance's real output in tests; Chromium and chromedriver, the browser `bourse report`'s page is
  # checked in; prometheus for promtool, which checks the metrics exposition; etcd (server and etcdctl), the pair's
  # witness in the witness tests; PostgreSQL, a backend of `bourse ledger` (its tests start a throwaway cluster).
  apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config iproute2 \
    dpdk dpdk-dev libdpdk-dev \
    libxdp-dev libbpf-dev \
    rdma-core libibverbs-dev ibverbs-utils \
    fonts-dejavu-core util-linux tshark \
    chromium chromium-driver prometheus etcd-server etcd-client postgresql >/dev/null
  # The verbs mirror tests run inside a QEMU VM with soft-RoCE (ci/rxe-vm.sh): cpio, kmod and xz build its
  # initramfs. bookworm's qemu-system-x86 (7.2) would replace the backported qemu-utils these images carry, so QEMU
  # comes from bookworm-backports, whose source is added next to the image's own Debian source when missing.
  apt-get install -y -qq --no-install-recommends cpio kmod xz-utils >/dev/null
  if ! command -v qemu-system-x86_64 >/dev/null; then
    if ! apt-cache policy | grep -q 'bookworm-backports/main'; then
      uri="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)"
      [ -n "$uri" ] || uri="$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)"
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$uri" /usr/share/keyrings/debian-archive-keyring.gpg >/etc/apt/sources.list.d/bourse-backports.sources
      apt-get update -qq
    fi
    apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
  fi
fi
# The Python HdrHistogram port: the independent decoder `bourse hist` is checked against (tools/tests/hist_independent.rs).
if command -v python3 >/dev/null && ! python3 -c 'import hdrh.histogram' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check hdrhistogram==0.10.8
fi
# itchfeed, a pure-Python TotalView-ITCH 5.0 parser: the appliance's feed is decoded with it and the book rebuilt
# from it (tools/tests/itch_third_party.rs).
if command -v python3 >/dev/null && ! python3 -c 'import itch.parser' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check itchfeed==1.6.4
fi
command -v cargo >/dev/null || { echo "ci/setup.sh: cargo is required" >&2; exit 1; }
