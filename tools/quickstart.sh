#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (as root): installs what is
# missing, builds, and runs either the demo or every test.
#   tools/quickstart.sh demo   cold start vs. restore of a slow-starting program
#   tools/quickstart.sh test   unit + C/R tests, real services (JVM, Tomcat, Python), the ASan/UBSan
#                              build, fuzzing, and the aarch64
#                              cross build with its unit + C/R tests under qemu-system-aarch64
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(meson ninja-build pkg-config gcc libc6-dev protobuf-c-compiler libprotobuf-c-dev
	libelf-dev libxxhash-dev libcriterion-dev libunwind-dev clang libclang-rt-14-dev python3
	openjdk-17-jdk-headless tomcat10) # the last two: the real services of tests/services

install_missing() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		echo "quickstart: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

build() { # DIR [meson options...]
	local dir=$1
	shift
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
	ninja -C "$dir" >/dev/null
}

# The plain closing line CI reads, "N passed, M failed, K skipped": meson's tests (one per test
# executable) plus the aarch64 guest's (one per Criterion test, the last line of its log).
summary() { # DIR...
	python3 - "$@" <<'PY'
import json, os, re, sys
ok = bad = skip = 0
for d in sys.argv[1:]:
    for line in open(d + "/meson-logs/testlog.json"):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: bad += 1
# The test command removes the guest's directory first: no log, or no verdict in it, means the
# aarch64 stage broke before its tests ended, which counts as one failure.
guest = "build-aarch64-qemu/guest.log"
lines = open(guest, errors="replace").read().splitlines() if os.path.exists(guest) else []
m = re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1] if lines else "")
if m:
    ok += int(m[1]); bad += int(m[2])
else:
    bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
}

case "${1:-}" in
demo)
	install_missing
	build build
	exec build/tools/snapdemo
	;;
test)
	install_missing
	rc=0
	echo "== native build: unit and checkpoint/restore tests"
	build build
	meson test -C build --print-errorlogs || rc=1
	echo "== ASan+UBSan build: unit and checkpoint/restore tests"
	build build-asan -Dsanitize=true
	ASAN_OPTIONS=detect_leaks=1 meson test -C build-asan --no-suite services --print-errorlogs || rc=1
	echo "== fuzzing the image reader"
	CC=clang build build-fuzz -Dfuzz=true -Dsanitize=true
	meson test -C build-fuzz --suite fuzz --print-errorlogs || rc=1
	echo "== aarch64: cross build, then unit and checkpoint/restore tests under qemu-system-aarch64"
	rm -rf build-aarch64-qemu
	bash .ci/cross-aarch64.sh --qemu || rc=1
	summary build build-asan build-fuzz
	exit $rc
	;;
*)
	echo "usage: $0 demo|test" >&2
	exit 2
	;;
esac
