#!/usr/bin/env bash
# Runs one program inside a throwaway QEMU VM that has a soft-RoCE device, and returns its exit status and output.
#
#   ci/rxe-vm.sh [--timeout SECONDS] PROGRAM [ARGS...]
#
# The host kernel has no RDMA subsystem (PLATFORM.md, RDMA), so the verbs mirror can only run for real under another
# kernel: Debian's own, booted by QEMU with an initramfs built here. Inside, /init loads rdma_rxe, puts 10.77.0.1/24 on
# a dummy netdev, adds rxe0 on it (GID index 1 is the IPv4-mapped RoCE v2 GID), brings up loopback, and runs PROGRAM
# with ARGS from /work, a tmpfs that is also $TMPDIR. The program's output comes back over the serial console, then a
# marker line with its exit code, which becomes this script's exit code (124 when the VM timed out, 125 when it never
# reported). Environment variables named BOURSE_* and RUST_* are passed on.
#
# Packages come as .debs (apt-get download, dpkg-deb -x) into BOURSE_RXE_CACHE (default /var/cache/bourse-rxe): the
# kernel and busybox-static. Nothing is installed into the host's /boot or package database. Userspace tools and
# libraries (ip, rdma, ibv_devinfo, libibverbs and its rxe provider, PROGRAM's shared libraries) are the host's own,
# found through ldd. The base initramfs is cached; each run appends a second cpio archive holding PROGRAM and its
# arguments. Needs qemu-system-x86_64, cpio, kmod (depmod/modprobe) and xz (ci/setup.sh installs them).
set -euo pipefail

timeout_s=300
while [[ $# -gt 0 ]]; do
    case $1 in
        --timeout) timeout_s=$2; shift 2 ;;
        --) shift; break ;;
        -*) echo "rxe-vm: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [[ $# -lt 1 ]]; then
    echo "usage: $0 [--timeout SECONDS] PROGRAM [ARGS...]" >&2
    exit 2
fi
program=$(readlink -f "$1")
shift
[[ -x $program ]] || { echo "rxe-vm: $program is not an executable" >&2; exit 2; }
for tool in qemu-system-x86_64 cpio depmod modprobe xz ldd; do
    command -v "$tool" >/dev/null || { echo "rxe-vm: $tool is missing (run ci/setup.sh)" >&2; exit 2; }
done

cache=${BOURSE_RXE_CACHE:-/var/cache/bourse-rxe}
mkdir -p "$cache"
# Modules the VM loads, in this order, each with its dependencies first (modprobe --show-depends).
modules=(crc32_generic udp_tunnel ip6_udp_tunnel ib_core ib_uverbs rdma_rxe dummy)

# Copies a host file, and every shared library it needs, into the tree $1 at the same paths.
bundle() {
    local root=$1 file=$2 lib
    mkdir -p "$root$(dirname "$file")"
    cp -L "$file" "$root$file"
    while read -r lib; do
        [[ -e "$root$lib" ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done < <(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true)
}

build_base() {
    local work=$cache/build root=$cache/build/root
    rm -rf "$work"
    mkdir -p "$work/debs" "$root"
    local image
    image=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
    [[ -n $image ]] || { echo "rxe-vm: cannot resolve linux-image-amd64" >&2; exit 2; }
    # apt fetches as _apt when that user can write the directory (otherwise it warns).
    chown _apt "$work/debs" 2>/dev/null || true
    (cd "$work/debs" && apt-get download -qq "$image" busybox-static)
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$work/unpacked"
    done
    local kver
    kver=$(basename "$(ls -d "$work"/unpacked/lib/modules/*/)")
    # The bzImage's payload is an xz stream; QEMU boots the bare ELF through its PVH entry ~3x faster.
    local vmlinuz=$work/unpacked/boot/vmlinuz-$kver off
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
    tail -c +$((off + 1)) "$vmlinuz" | xz -dc 2>/dev/null >"$work/vmlinux" || true
    [[ $(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] \
        || { echo "rxe-vm: could not unpack an ELF vmlinux from $vmlinuz" >&2; exit 2; }

    # The .deb ships no modules.dep.
    depmod -b "$work/unpacked" "$kver"
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,work,etc/libibverbs.d,lib/modules}
    : >"$root/modules.order"
    local m line
    for m in "${modules[@]}"; do
        while read -r line; do
            local ko=${line#insmod }
            ko=${ko%% *}
            local name
            name=$(basename "$ko")
            name=${name%.xz}
            if [[ ! -e "$root/lib/modules/$name" ]]; then
                if [[ $ko == *.xz ]]; then xz -dc "$ko" >"$root/lib/modules/$name"; else cp "$ko" "$root/lib/modules/$name"; fi
                echo "$name" >>"$root/modules.order"
            fi
        done < <(modprobe -d "$work/unpacked" -S "$kver" --show-depends "$m" | grep '^insmod')
    done
    cp "$work/unpacked/bin/busybox" "$root/bin/busybox"
    local tool
    for tool in ip rdma ibv_devinfo ibv_devices; do
        bundle "$root" "$(command -v "$tool")"
    done
    local multiarch=/usr/lib/x86_64-linux-gnu
    bundle "$root" "$multiarch/libibverbs.so.1"
    bundle "$root" "$(ls "$multiarch"/libibverbs/librxe-rdmav*.so | head -n1)"
    # glibc dlopens libgcc_s for unwinding (a Rust panic), so ldd does not list it.
    bundle "$root" "$(ls "$multiarch"/libgcc_s.so.1 /lib/x86_64-linux-gnu/libgcc_s.so.1 2>/dev/null | head -n1)"
    cp /etc/libibverbs.d/rxe.driver "$root/etc/libibverbs.d/"
    cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/usr/sbin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs work /work; mkdir -p /dev/shm; mount -t tmpfs shm /dev/shm
exec 0</dev/console 1>/dev/console 2>&1
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "rxe-vm: insmod $m failed"; done
ip link set lo up
# Loading dummy creates dummy0 already (numdummies=1).
[ -e /sys/class/net/dummy0 ] || ip link add dummy0 type dummy
ip addr add 10.77.0.1/24 dev dummy0
ip link set dummy0 up
rdma link add rxe0 type rxe netdev dummy0 || echo "rxe-vm: rdma link add failed"
# The port goes ACTIVE and the IPv4-mapped GID appears a moment after the link is added: wait up to 10 s.
port=/sys/class/infiniband/rxe0/ports/1
i=0
while [ $i -lt 100 ]; do
  grep -q ACTIVE $port/state 2>/dev/null && grep -q '^0000:0000:0000:0000:0000:ffff:' $port/gids/1 2>/dev/null && break
  sleep 0.1; i=$((i + 1))
done
echo "rxe-vm: rxe0 port $(cat $port/state 2>/dev/null), gid 1 $(cat $port/gids/1 2>/dev/null)"
ulimit -l unlimited
. /run.env
cd /work
export TMPDIR=/work HOME=/work
eval "set -- $(cat /run.args)"
/run/program "$@" </dev/null
echo "BOURSE-RXE-EXIT $?"
sync
poweroff -f
EOF
    chmod +x "$root/init"
    cp "$work/vmlinux" "$cache/vmlinux.new"
    (cd "$root" && find . | cpio -o -H newc --quiet) >"$cache/base.cpio.new"
    echo "$image" >"$cache/kernel-package"
    mv "$cache/vmlinux.new" "$cache/vmlinux"
    mv "$cache/base.cpio.new" "$cache/base.cpio"
    rm -rf "$work"
}

# The cache is rebuilt when this script changes (its hash is the key).
key=$(sha256sum "$0" | cut -c1-16)
if [[ ! -e "$cache/base.cpio" || ! -e "$cache/vmlinux" || $(cat "$cache/key" 2>/dev/null) != "$key" ]]; then
    echo "rxe-vm: building the VM image in $cache" >&2
    build_base
    echo "$key" >"$cache/key"
fi

run=$(mktemp -d -t bourse-rxe.XXXXXX)
trap 'rm -rf "$run"' EXIT
mkdir -p "$run/root/run"
bundle "$run/root" "$program"
mv "$run/root$program" "$run/root/run/program"
# Debug info only slows the cpio and the guest's unpacking down: keep symbols, drop the rest.
objcopy --strip-debug "$run/root/run/program" 2>/dev/null || true
accel=(-accel tcg,thread=multi -cpu max)
# Real KVM only: this kind of host's /dev/kvm is PVM, which Debian's kernel cannot run as a guest (PLATFORM.md).
if [[ -w /dev/kvm ]] && ! grep -qw kvm_pvm /proc/modules 2>/dev/null && [[ ! -d /sys/module/kvm_pvm ]]; then
    accel=(-accel kvm -cpu host)
fi
# Arguments and environment travel as files; each argument is quoted for the guest's sh.
: >"$run/root/run.args"
for a in "$@"; do printf "'%s' " "${a//\'/\'\\\'\'}" >>"$run/root/run.args"; done
env | grep -E '^(BOURSE_|RUST_)[A-Za-z0-9_]*=' | sed "s/'/'\\\\''/g; s/=\(.*\)/='\1'/; s/^/export /" >"$run/root/run.env" || true
# Benchmarks mark their figures as emulated when the CPU is.
[[ ${accel[1]} == tcg* ]] && echo "export BOURSE_EMULATED=tcg" >>"$run/root/run.env"
(cd "$run/root" && find . | cpio -o -H newc --quiet) >"$run/run.cpio"
cat "$cache/base.cpio" "$run/run.cpio" >"$run/initrd"

started=$SECONDS
set +e
timeout "$timeout_s" qemu-system-x86_64 "${accel[@]}" -smp 2 -m 1536 -nodefaults -nic none -no-reboot \
    -display none -serial stdio -kernel "$cache/vmlinux" -initrd "$run/initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" </dev/null \
    | tr -d '\r' | tee "$run/console"
qemu_rc=${PIPESTATUS[0]}
set -e
code=$(sed -n 's/^BOURSE-RXE-EXIT \([0-9]*\)$/\1/p' "$run/console" | tail -n1)
echo "rxe-vm: VM finished in $((SECONDS - started)) s (qemu status $qemu_rc, program status ${code:-none})" >&2
if [[ -z $code ]]; then
    [[ $qemu_rc == 124 ]] && { echo "rxe-vm: timed out after $timeout_s s" >&2; exit 124; }
    echo "rxe-vm: the program never reported an exit status" >&2
    exit 125
fi
exit "$code"
