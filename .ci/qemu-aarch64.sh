#!/bin/bash
# Boot a Debian arm64 kernel under qemu-system-aarch64 (software emulation) and run
# DIR/run-tests.sh inside it, with DIR shared into the guest at /mnt over 9p.
# The exit status is the guest script's. Usage: qemu-aarch64.sh DIR
# The project's copy of ../shared/aarch64/qemu-run.sh. Changes: the guest's time limit
# comes from QEMU_TIMEOUT (seconds, default 600, so that CI's aarch64 stage stays within
# 15 minutes), the kernel and initramfs are cached in a directory of their own and
# rebuilt when this script changes, and the guest's log comes last (its final line is
# the run's verdict).
# Runs as root on Debian 12 x86_64 with apt access only; touches neither /etc/apt
# nor dpkg's architecture list. Kernel, busybox and initramfs are cached in $W.
# Cross-compile what DIR holds with aarch64-linux-gnu-gcc (this script installs it).
# Guest: Linux 6.1 arm64 (CHECKPOINT_RESTORE, USERFAULTFD, KCMP, namespaces built in;
# no MEM_SOFT_DIRTY, no userfaultfd write-protect, no PAGEMAP_SCAN), 2 vCPUs, 1 GiB.
set -euo pipefail
S=$(readlink -f "${1:?usage: qemu-run.sh DIR-with-run-tests.sh}")
[ -x "$S/run-tests.sh" ] || { echo "qemu-run.sh: $S/run-tests.sh missing or not executable" >&2; exit 2; }
W=${W:-/var/cache/snap-aarch64-qemu}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-600}
STAMP=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
mkdir -p "$W"; cd "$W"
t0=$(date +%s)
ts() { echo "[+$(( $(date +%s) - t0 ))s] $*"; }
ts "apt install"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends \
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm cpio kmod >/dev/null

if [ ! -s initrd.cpio.gz ] || [ ! -s kernel.path ] || [ "$(cat stamp 2>/dev/null)" != "$STAMP" ]; then
# 2. private apt state for arm64: does not touch /etc/apt or dpkg's architecture list
ts "arm64 apt state"
A=$W/apt; mkdir -p $A/lists/partial $A/cache/archives/partial $A/sources; : > $A/status
cp /etc/apt/sources.list.d/debian.sources $A/sources/   # same mirror/suites as the host
cat > $A/apt.conf <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Sandbox::User "root";
Dir::State "$A"; Dir::State::Lists "$A/lists"; Dir::State::status "$A/status";
Dir::Cache "$A/cache";
Dir::Etc::SourceList "/dev/null"; Dir::Etc::SourceParts "$A/sources";
EOF
aptarm() { APT_CONFIG=$A/apt.conf "$@"; }
aptarm apt-get update -q >/dev/null
KPKG=$(aptarm apt-cache depends linux-image-arm64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KV=${KPKG#linux-image-}
ts "kernel package: $KPKG $(aptarm apt-cache policy $KPKG | awk '/Candidate/{print $2}')"
mkdir -p debs; (cd debs && aptarm apt-get download -q $KPKG busybox-static >/dev/null)
rm -rf k bb; mkdir k bb
dpkg-deb --fsys-tarfile debs/${KPKG}_*_arm64.deb | tar -C k -x ./boot ./lib/modules
dpkg -x debs/busybox-static_*_arm64.deb bb
grep -E '^CONFIG_(CHECKPOINT_RESTORE|USERFAULTFD|NET_9P_VIRTIO|9P_FS|VIRTIO_PCI)=' k/boot/config-$KV | tr '\n' ' '; echo

# 3. initramfs: busybox + the few modules needed (9p over virtio-pci, sock_diag)
ts "initramfs"
R=$W/initrd; rm -rf $R; mkdir -p $R/{bin,lib,proc,sys,dev,tmp,mnt,lib/modules/$KV}
mknod -m 600 $R/dev/console c 5 1
cp bb/bin/busybox $R/bin/; for a in sh mount umount modprobe poweroff cat; do ln -s busybox $R/bin/$a; done
cp -L /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 /usr/aarch64-linux-gnu/lib/libc.so.6 $R/lib/
MODS="virtio_pci 9pnet_virtio 9p unix_diag tcp_diag udp_diag netlink_diag af_packet_diag"
depmod -b $W/k $KV
for m in $MODS; do modprobe -d $W/k -S $KV --show-depends $m; done | awk '$1=="insmod"{print $2}' | sort -u |
while read -r f; do rel=${f#$W/k/}; mkdir -p $R/$(dirname $rel); cp $f $R/$rel; done
cp k/lib/modules/$KV/modules.{order,builtin,builtin.modinfo} $R/lib/modules/$KV/
depmod -b $R $KV
cat > $R/init <<EOF
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $MODS; do modprobe \$m || echo "modprobe \$m FAILED"; done
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 host0 /mnt && [ -x /mnt/run-tests.sh ]; then
  cd /mnt; ./run-tests.sh > /mnt/guest.log 2>&1; echo \$? > /mnt/guest.rc; cd /; umount /mnt
else
  echo "GUEST SETUP FAILED"
fi
poweroff -f
EOF
chmod +x $R/init
(cd $R && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet | gzip -1) > initrd.cpio.gz
echo "$W/k/boot/vmlinuz-$KV" > kernel.path
echo "$STAMP" > stamp
fi
KERNEL=$(cat kernel.path)

# 4. boot and run
ts "boot"
rm -f $S/guest.rc $S/guest.log
timeout "$QEMU_TIMEOUT" qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -smp 2 -m 1024 \
	-nographic -no-reboot -nic none \
	-kernel "$KERNEL" -initrd initrd.cpio.gz \
	-append "console=ttyAMA0 panic=-1 quiet" \
	-fsdev local,id=fs0,path=$S,security_model=none -device virtio-9p-pci,fsdev=fs0,mount_tag=host0 \
	> console.log 2>&1 || { echo "qemu failed or ran out of its ${QEMU_TIMEOUT} s"; cat console.log; cat $S/guest.log 2>/dev/null; exit 1; }
rc=$(cat $S/guest.rc 2>/dev/null || echo 255)
ts "guest done, rc=$rc"
cat $S/guest.log
exit $rc
