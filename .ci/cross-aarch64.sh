#!/usr/bin/env bash
# Cross-builds all of libsnap for aarch64 on Debian 12 x86_64 (as root), checks the result is arm64 code,
# and with --qemu also runs the cross-built test suites in an emulated arm64 Linux.
#   .ci/cross-aarch64.sh          build only
#   .ci/cross-aarch64.sh --qemu   build, then every unit and C/R test in the guest of .ci/qemu-aarch64.sh
#                                 (what CI runs; minutes). The last line is "N passed, M failed"; the exit
#                                 status is non-zero if any test failed or did not run.
# SNAP_AARCH64_TESTS="test_fpsimd test_pac" runs only the named test executables in the guest.
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
QEMU_RUN=${SNAP_QEMU_RUN:-.ci/qemu-aarch64.sh}

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

# The test list is meson's, so a new test runs here too without anyone editing this file. Left out:
# test_blobgen compiles blobs, and the guest has no compiler; the real services need Java and Python.
python3 - "$DIR" "${SNAP_AARCH64_TESTS:-}" >"$STAGE/tests.txt" <<'PY'
import json, os, subprocess, sys
build, only = os.path.abspath(sys.argv[1]), sys.argv[2].split()
for t in json.loads(subprocess.check_output(["meson", "introspect", "--tests", build])):
    # The services suite runs x86_64's Java and Python, which the guest does not have.
    if t["name"] == "test_blobgen" or any(s.split(":")[-1] == "services" for s in t["suite"]) or (only and t["name"] not in only):
        continue
    cmd = [os.path.relpath(t["cmd"][0], build)] + t["cmd"][1:]
    print(t["name"], t["timeout"], " ".join(cmd))
PY
cat >"$STAGE/run-tests.sh" <<EOF
#!/bin/sh
# Generated by .ci/cross-aarch64.sh: runs the cross-built tests inside the arm64 guest and ends with the
# line "N passed, M failed" (an executable that crashes or reports no summary counts as one failure).
/bin/busybox --install -s /bin
export LD_LIBRARY_PATH=/mnt/lib
mkdir -p /dev/shm "$(dirname "$PWD/$DIR")"
mount -t tmpfs tmpfs /dev/shm # Criterion's workers share memory through it
# Loopback for the socket tests, devpts for the terminal refusal.
ifconfig lo 127.0.0.1 up
# A machine names its loopback: the probe tests ask for http://localhost:PORT/.
[ -e /etc/hosts ] || { mkdir -p /etc && echo "127.0.0.1 localhost" >/etc/hosts; }
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
ln -s /mnt/build "$PWD/$DIR"
cd /tmp
uname -a
rc=0
/mnt/build/tools/snapcr check || { echo "snapcr check: a required kernel feature is missing"; rc=1; }
passed=0
failed=0
while read -r name limit cmd; do
	echo "== \$name"
	timeout "\$limit" /mnt/build/\$cmd </dev/null >/tmp/test.out 2>&1
	status=\$?
	cat /tmp/test.out
	set -- \$(sed -n 's/.*Synthesis: Tested: [0-9]* | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2 \3/p' /tmp/test.out | tail -n 1)
	if [ \$# -ne 3 ]; then
		echo "\$name: exit status \$status and no Criterion summary"
		failed=\$((failed + 1))
		continue
	fi
	passed=\$((passed + \$1))
	failed=\$((failed + \$2 + \$3))
	if [ \$status -ne 0 ] && [ \$((\$2 + \$3)) -eq 0 ]; then
		echo "\$name: exit status \$status with no failed test"
		failed=\$((failed + 1))
	fi
done </mnt/tests.txt
[ \$failed -eq 0 ] || rc=1
echo "\$passed passed, \$failed failed"
exit \$rc
EOF
chmod +x "$STAGE/run-tests.sh"
echo "cross-aarch64: running $(wc -l <"$STAGE/tests.txt") test executables under qemu-system-aarch64"
bash "$QEMU_RUN" "$STAGE"
