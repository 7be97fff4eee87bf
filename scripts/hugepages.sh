#!/usr/bin/env bash
# Reserves N 2 MiB huge pages (default 256 = 512 MiB) and mounts hugetlbfs at /dev/hugepages. Idempotent: the pool
# only grows (other users may hold pages), and an existing mount is left alone.
#
#   scripts/hugepages.sh [N]
set -euo pipefail

pages=${1:-256}
case $pages in ''|*[!0-9]*) echo "usage: $0 [pages]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }

nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
[ -w "$nr" ] || { echo "$0: no 2 MiB huge page support ($nr)" >&2; exit 1; }

if [ "$(cat "$nr")" -lt "$pages" ]; then
  echo "$pages" > "$nr"
fi
got=$(cat "$nr")
if [ "$got" -lt "$pages" ]; then
  echo "$0: asked for $pages pages, the kernel reserved $got (memory fragmented?)" >&2
  exit 1
fi

mkdir -p /dev/hugepages
if ! awk '$2 == "/dev/hugepages" && $3 == "hugetlbfs" {found=1} END {exit !found}' /proc/mounts; then
  mount -t hugetlbfs -o pagesize=2M none /dev/hugepages
fi
echo "hugepages: $got x 2 MiB reserved, hugetlbfs at /dev/hugepages"
