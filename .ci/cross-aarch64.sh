#!/usr/bin/env bash
# Cross-builds all of libsnap for aarch64 on Debian 12 x86_64 (as root), checks the result is arm64 code,
# and with --qemu also runs the cross-built test suites in an emulated arm64 Linux.
#   .ci/cross-aarch64.sh          build only (what CI runs)
#   .ci/cross-aarch64.sh --qemu   build, then the unit and C/R tests in the guest of qemu-run.sh (minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

# Native: the cross compiler, and what runs at build time (blobgen needs libelf, protoc-c makes the image code).
NATIVE=(meson ninja-build pkg-config gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross protobuf-c-compiler
	libprotobuf-c-dev libelf-dev)
# The arm64 libraries the engine and tests link against.
ARM64=(libprotobuf-c-dev libprotobuf-c1 libxxhash-dev libxxhash0 libcriterion-dev libcriterion3 libunwind-dev libunwind8
	liblzma5)
# What the cross-built programs load at run time beyond glibc (which the cross toolchain has).
RUNTIME=(libprotobuf-c1 libxxhash0 libcriterion3 libunwind8 liblzma5)
DIR=build-aarch64
LOG=$DIR/cross-aarch64.log
# The arm64 libraries are unpacked here, not installed: libcriterion-dev:arm64 conflicts with the native one
# (its dependencies are not Multi-Arch: same), and dpkg's architecture list stays as it is.
DEPS=${SNAP_AARCH64_DEPS:-/var/cache/snap-aarch64-deps}
QEMU_RUN=${SNAP_QEMU_RUN:-../shared/aarch64/qemu-run.sh}

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${NATIVE[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "cross-aarch64: installing ${missing[*]}"
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# A private apt state that sees only arm64 packages, from the machine's own mirrors.
APT_STATE=$DEPS/apt
apt_arm64() {
	APT_CONFIG=$APT_STATE/apt.conf "$@"
}
apt_arm64_setup() {
	local a=$APT_STATE

	[ -f "$a/ready" ] && return
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/sources"
	: >"$a/status"
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$a/sources/"
	else
		cp /etc/apt/sources.list "$a/sources/debian.list"
	fi
	cat >"$a/apt.conf" <<CONF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Sandbox::User "root";
Dir::State "$a"; Dir::State::Lists "$a/lists"; Dir::State::status "$a/status";
Dir::Cache "$a/cache";
Dir::Etc::SourceList "/dev/null"; Dir::Etc::SourceParts "$a/sources";
CONF
	apt_arm64 apt-get update -q >/dev/null
	touch "$a/ready"
}

# Downloads arm64 packages and unpacks them into $1.
unpack_arm64() { # ROOT PACKAGE...
	local root=$1 tmp deb
	shift
	apt_arm64_setup
	tmp=$(mktemp -d)
	(cd "$tmp" && apt_arm64 apt-get download -q "$@" >/dev/null)
	mkdir -p "$root"
	for deb in "$tmp"/*.deb; do
		dpkg -x "$deb" "$root"
	done
	rm -rf "$tmp"
}

# pkg-config files pointing into $DEPS. Criterion's own names dependencies (libgit2, nanomsg, ...) that
# only its shared library needs; they are left out, so the linker must not chase them.
fetch_build_deps() {
	local lib=$DEPS/root/usr/lib/aarch64-linux-gnu f

	echo "cross-aarch64: fetching arm64 ${ARM64[*]}"
	rm -rf "$DEPS/root" "$DEPS/pkgconfig"
	unpack_arm64 "$DEPS/root" "${ARM64[@]}"
	mkdir -p "$DEPS/pkgconfig"
	for f in "$lib"/pkgconfig/*.pc; do
		sed -e "s|^prefix=/usr\$|prefix=$DEPS/root/usr|" -e '/^Requires.private:/d' -e '/^Libs.private:/d' \
			"$f" >"$DEPS/pkgconfig/$(basename "$f")"
	done
	sed -i -e 's|^Libs: .*|& -Wl,--allow-shlib-undefined|' "$DEPS/pkgconfig/criterion.pc"
	# libunwind's shared objects need liblzma, which is found through its unpacked location.
	sed -i -e "s|^Libs: .*|& -Wl,-rpath-link,$DEPS/root/lib/aarch64-linux-gnu -Wl,-rpath-link,$lib|" \
		"$DEPS"/pkgconfig/libunwind*.pc
	cat >"$DEPS/deps.ini" <<INI
# Meson cross file overlay: take the arm64 libraries from $DEPS (written by .ci/cross-aarch64.sh).
[properties]
pkg_config_libdir = ['$DEPS/pkgconfig']
INI
	echo "${ARM64[*]}" >"$DEPS/stamp"
}

if [ "$(cat "$DEPS/stamp" 2>/dev/null)" != "${ARM64[*]}" ]; then
	fetch_build_deps
fi

# Output goes to a log, shown only when a step fails.
run() {
	if ! "$@" >>"$LOG" 2>&1; then
		tail -n 60 "$LOG" >&2
		echo "cross-aarch64: '$*' failed (full log: $LOG)" >&2
		exit 1
	fi
}
mkdir -p "$DIR"
: >"$LOG"
[ -f "$DIR/build.ninja" ] ||
	run meson setup "$DIR" --cross-file arch/aarch64/cross-gcc.ini --cross-file "$DEPS/deps.ini"
run ninja -C "$DIR"

# e_machine (bytes 18-19 of the ELF header, little endian) is 183 for AArch64.
is_aarch64() {
	[ "$(od -An -tx1 -N4 "$1" | tr -d ' ')" = 7f454c46 ] &&
		[ "$(od -An -tu2 -j18 -N2 "$1" | tr -d ' ')" = 183 ]
}
for f in tools/snapcr libsnap/libsnap.so parasite/parasite.elf restorer/restorer.elf tests/test_image \
	tests/cr/test_workloads tests/workloads/wl-heap; do
	if ! is_aarch64 "$DIR/$f"; then
		echo "cross-aarch64: $DIR/$f is not an aarch64 ELF" >&2
		exit 1
	fi
done
echo "cross-aarch64: $DIR built; snapcr, libsnap, both blobs and the tests are aarch64 code"

[ "${1:-}" = --qemu ] || exit 0

# The guest has busybox and glibc only: the shared folder brings the build, every library the programs
# load, and a script that puts the build where its tests expect it (absolute paths are compiled in).
STAGE=$DIR-qemu
rm -rf "$STAGE"
mkdir -p "$STAGE/lib"
if [ "$(cat "$DEPS/runtime/stamp" 2>/dev/null)" != "${RUNTIME[*]}" ]; then
	echo "cross-aarch64: fetching arm64 run-time libraries of ${RUNTIME[*]}"
	apt_arm64_setup
	mapfile -t closure < <(apt_arm64 apt-get install -s --no-install-recommends "${RUNTIME[@]}" 2>/dev/null |
		awk '$1 == "Inst" { print $2 }' | grep -vx -e libc6 -e libgcc-s1 -e gcc-12-base)
	rm -rf "$DEPS/runtime"
	unpack_arm64 "$DEPS/runtime" "${closure[@]}"
	echo "${RUNTIME[*]}" >"$DEPS/runtime/stamp"
fi
for d in "$DEPS"/runtime/{usr/,}lib/aarch64-linux-gnu; do
	[ ! -d "$d" ] || cp -a "$d/." "$STAGE/lib/"
done
cp -a /usr/aarch64-linux-gnu/lib/*.so.* "$STAGE/lib/"
cp -a "$DIR" "$STAGE/build"
find "$STAGE/build" -name '*.o' -delete
cat >"$STAGE/run-tests.sh" <<EOF
#!/bin/sh
# Generated by .ci/cross-aarch64.sh: runs the cross-built test suites inside the arm64 guest.
export LD_LIBRARY_PATH=/mnt/lib
mkdir -p /dev/shm "$(dirname "$PWD/$DIR")"
mount -t tmpfs tmpfs /dev/shm # Criterion's workers share memory through it
ln -s /mnt/build "$PWD/$DIR"
cd /tmp
uname -a
/mnt/build/tools/snapcr check
rc=0
# test_blobgen is left out: it compiles blobs, and the guest has no compiler.
for t in tests/test_image tests/test_proc tests/cr/test_workloads tests/cr/test_leave_running \\
	tests/cr/test_dump_failures tests/cr/test_corrupt_images tests/cr/test_cli; do
	echo "== \$t"
	/mnt/build/\$t -j1 || rc=1
done
exit \$rc
EOF
chmod +x "$STAGE/run-tests.sh"
echo "cross-aarch64: running the tests under qemu-system-aarch64"
bash "$QEMU_RUN" "$STAGE"
