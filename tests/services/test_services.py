#!/usr/bin/env python3
"""Real services end to end: each is prepared with `snapcr prepare` (started, warmed up, dumped),
restored (once eagerly, once with --map-pages), and must answer with the state it had built at
start-up (checked against a cold start), its image pid, and a request counter that continues from
the snapshot in every copy; two copies must not draw the same random bytes; the JVM service also
runs as several copies at once, each in its own PID and network namespace. Exit 77 (skip) when Java or Tomcat is not installed.

usage: test_services.py BUILD_DIR [SERVICE...]"""
import glob
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services as S  # noqa: E402

WARMUPS = 3
NS_COPIES = 3


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def cold_state(reaper, svc, workdir, port):
    """What a cold instance answers, minus pid and counter; the instance is stopped after."""
    t0 = time.monotonic()
    inst = S.start_cold(reaper, svc, workdir, port, os.path.join(workdir, f"{svc.name}-cold.log"))
    try:
        body = S.wait_http_200(inst.url, time.monotonic() + svc.init_timeout, alive=lambda: S.pid_alive(inst.pid))
    finally:
        inst.stop()
    state, _, requests = svc.expect(body)
    check(requests == 1, f"{svc.name}: a cold instance's first answer counts {requests} requests")
    log(f"{svc.name}: cold start answered in {(time.monotonic() - t0) * 1000:.0f} ms: {state}")
    return state


def snapshot_pid(images):
    return S.image_root_pid(SNAPCR, images)


def test_service(reaper, svc, workdir, port):
    state = cold_state(reaper, svc, workdir, port)
    images = os.path.join(workdir, f"{svc.name}-images")
    log_file = os.path.join(workdir, f"{svc.name}.log")
    S.prepare(reaper, SNAPCR, svc, workdir, port, images, log_file, warmups=WARMUPS)
    check(not S.port_in_use(port), f"{svc.name}: something still listens on {port} after prepare")
    log(f"{svc.name}: prepared")
    # A JVM removes the hsperfdata files of dead JVMs when it starts: the next restore makes the
    # dumped one's again from the image.
    for f in glob.glob(f"/tmp/hsperfdata_*/{snapshot_pid(images)}"):
        os.unlink(f)

    first = []
    # One copy restored eagerly, one with its memory mapped copy-on-write from the page files.
    for copy, extra in enumerate(((), ("--map-pages",))):
        inst = S.restore(reaper, SNAPCR, images, port, extra=extra)
        try:
            body = S.wait_http_200(inst.url, time.monotonic() + 30, alive=lambda: S.pid_alive(inst.pid))
            got, pid, requests = svc.expect(body)
            check(got == state, f"{svc.name}: restored copy answers {got!r}, a cold start {state!r}")
            check(pid == inst.pid, f"{svc.name}: restored copy says pid {pid}, it runs as {inst.pid}")
            check(requests > WARMUPS, f"{svc.name}: restored copy counts {requests} requests, warm-up sent {WARMUPS}")
            _, _, again = svc.expect(inst.get()[1])
            check(again == requests + 1, f"{svc.name}: counter went {requests} -> {again}")
            status, rnd = inst.get("/random")
            check(status == 200 and len(rnd.strip()) == 32, f"{svc.name}: /random answered {status} {rnd!r}")
            first.append((requests, rnd.strip()))
        finally:
            inst.stop()
        log(f"{svc.name}: restored copy {copy} {' '.join(extra)} answered: requests={requests}")
    check(first[0][0] == first[1][0], f"{svc.name}: two copies of one snapshot count {first[0][0]} and {first[1][0]}")
    check(first[0][1] != first[1][1], f"{svc.name}: two copies drew the same random bytes {first[0][1]}")
    return images, state


def test_namespaced_copies(reaper, svc, images, state, port):
    """NS_COPIES copies of one snapshot at once, each in new PID and network namespaces."""
    copies = []
    try:
        for _ in range(NS_COPIES):
            copies.append(S.restore(reaper, SNAPCR, images, port, extra=("--pidns", "--netns")))
        want_pid = snapshot_pid(images)
        for i, inst in enumerate(copies):
            body = S.wait_http_200(inst.url, time.monotonic() + 30, alive=lambda: S.pid_alive(inst.pid),
                                   netns_pid=inst.netns_pid)
            got, pid, _ = svc.expect(body)
            check(got == state, f"{svc.name}: namespaced copy {i} answers {got!r}")
            check(pid == want_pid, f"{svc.name}: namespaced copy {i} says pid {pid}, the image's is {want_pid}")
        log(f"{svc.name}: {NS_COPIES} copies in their own PID and network namespaces answered")
    finally:
        for inst in copies:
            inst.stop()


def main():
    global SNAPCR
    build = os.path.abspath(sys.argv[1])
    SNAPCR = S.snapcr_path(build)
    names = sys.argv[2:] or list(S.SERVICES)
    if not shutil.which("java") or not shutil.which("javac") or (
            "tomcat" in names and not os.path.isdir(S.TOMCAT_HOME)):
        print("skipped: Java 17 (openjdk-17-jdk-headless) or tomcat10 is not installed")
        return 77
    reaper = S.Reaper()
    workdir = tempfile.mkdtemp(prefix="snap-services-")
    failed = []
    rng = random.Random(os.getpid())
    for i, name in enumerate(names):
        svc = S.SERVICES[name]
        port = S.free_port(rng)
        try:
            svc.build(workdir)
            images, state = test_service(reaper, svc, workdir, port)
            if name == "java-http":
                test_namespaced_copies(reaper, svc, images, state, port)
            log(f"{name}: ok")
        except Exception as e:
            log(f"{name}: FAILED: {e}")
            for f in glob.glob(os.path.join(workdir, f"{name}*.log")):
                print(f"--- {f}\n" + open(f, errors="replace").read()[-3000:])
            failed.append(name)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(names) - len(failed)} of {len(names)} services passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
