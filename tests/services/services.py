"""Real services (a JVM HTTP server, Tomcat, a Python HTTP server) and the few things the service
tests and the service benchmark do with them: build, start cold, prepare a snapshot with snapcr,
restore it, ask it over HTTP, stop it. Standard library only."""
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOMCAT_HOME = "/usr/share/tomcat10"
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)


class Reaper:
    """Makes this process the subreaper of everything it starts (this machine's PID 1 does not
    reap orphans, and a restored process is adopted by us once snapcr exits) and reaps every child
    from one thread, keeping the statuses for wait()."""

    def __init__(self):
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.status = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                pid, st = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.01)
                continue
            with self.cond:
                self.status[pid] = st
                self.cond.notify_all()

    def wait(self, pid, timeout=None):
        """The wait status of @pid once it has exited, or None after @timeout seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while pid not in self.status:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self.cond.wait(left)
            return self.status.pop(pid)

    def run(self, args, timeout=600, **kw):
        """Runs @args to completion; returns (exit code, output)."""
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             close_fds=True, **kw)
        out = p.stdout.read().decode(errors="replace")
        st = self.wait(p.pid, timeout)
        p.returncode = 0  # reaped by us: keep Popen from looking for it
        if st is None:
            return -1, out
        return os.waitstatus_to_exitcode(st), out


def http_get(url, timeout=5.0, netns_pid=None):
    """GET @url (http://HOST:PORT/PATH) over HTTP/1.0; returns (status, body) or raises OSError.
    With @netns_pid, connects from inside that process's network namespace."""
    m = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)?", url)
    host, port, path = m[1], int(m[2]), m[3] or "/"
    if netns_pid is not None:
        return _in_netns(netns_pid, lambda: http_get(url, timeout))
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return status, body.decode(errors="replace")


def _unchunk(body):
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return out


def _in_netns(pid, fn):
    """Runs @fn in a forked child that joined @pid's network namespace; returns its result."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            res = json.dumps(fn())
        except Exception as e:  # reported to the parent, raised there
            res = json.dumps(["error", str(e)])
        os.write(w, res.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        res = json.loads(f.read().decode())
    while True:
        try:
            os.waitpid(child, 0)
            break
        except ChildProcessError:
            break  # the subreaper thread took it
        except InterruptedError:
            continue
    if res[0] == "error":
        raise OSError(errno.ECONNREFUSED, res[1])
    return tuple(res)


def wait_http_200(url, deadline, alive=None, netns_pid=None, interval=0.002):
    """Polls @url until it answers 200; returns the body. Raises TimeoutError at @deadline
    (time.monotonic()) and RuntimeError when @alive() says the server is gone."""
    while True:
        try:
            status, body = http_get(url, timeout=max(0.1, deadline - time.monotonic()), netns_pid=netns_pid)
            if status == 200:
                return body
        except OSError:
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"{url}: the server exited before answering")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}: no 200 answer in time")
        time.sleep(interval)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Service:
    """One service: how to build it once, the command that starts it on a port, and what its
    answer must say (state that a lost snapshot would get wrong)."""

    name = ""
    init_timeout = 120

    def build(self, workdir):
        pass

    def command(self, workdir, port):
        raise NotImplementedError

    def expect(self, body):
        """The part of an answer that must be the same in a cold instance and in every restored
        copy: everything but the pid and the request counter."""
        m = re.fullmatch(r"(.*) pid=(\d+) requests=(\d+)\n", body)
        if not m:
            raise ValueError(f"{self.name}: unexpected answer {body!r}")
        return m[1], int(m[2]), int(m[3])


class JavaHttp(Service):
    name = "java-http"

    def build(self, workdir):
        out = os.path.join(workdir, "java-http")
        os.makedirs(out, exist_ok=True)
        subprocess.run(["javac", "-d", out, os.path.join(HERE, "java-http", "SnapHttp.java")], check=True)

    def command(self, workdir, port):
        return ["java", "-cp", os.path.join(workdir, "java-http"), "SnapHttp", str(port)]


class Tomcat(Service):
    name = "tomcat"

    def build(self, workdir):
        base = os.path.join(workdir, "tomcat")
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(os.path.join(HERE, "tomcat", "conf"), os.path.join(base, "conf"))
        shutil.copytree(os.path.join(HERE, "tomcat", "webapps"), os.path.join(base, "webapps"))
        for f in ("web.xml", "catalina.properties", "context.xml"):
            shutil.copy(os.path.join(TOMCAT_HOME, "etc", f), os.path.join(base, "conf", f))
        for d in ("logs", "work", "temp"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        classes = os.path.join(base, "webapps", "ROOT", "WEB-INF", "classes")
        os.makedirs(classes, exist_ok=True)
        subprocess.run(["javac", "-cp", os.path.join(TOMCAT_HOME, "lib", "servlet-api.jar"), "-d", classes,
                        os.path.join(HERE, "tomcat", "HelloServlet.java")], check=True)

    def command(self, workdir, port):
        base = os.path.join(workdir, "tomcat")
        cp = ":".join(os.path.join(TOMCAT_HOME, "bin", j) for j in ("bootstrap.jar", "tomcat-juli.jar"))
        return ["java", "-cp", cp, f"-Dcatalina.base={base}", f"-Dcatalina.home={TOMCAT_HOME}",
                f"-Djava.io.tmpdir={base}/temp", f"-Dsnap.port={port}",
                f"-Djava.util.logging.config.file={base}/conf/logging.properties",
                "-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager",
                "org.apache.catalina.startup.Bootstrap", "start"]


class PythonHttp(Service):
    name = "python-http"

    def command(self, workdir, port):
        return ["/usr/bin/python3", os.path.join(HERE, "python-http", "app.py"), str(port)]


SERVICES = {s.name: s for s in (JavaHttp(), Tomcat(), PythonHttp())}


class Instance:
    """A running copy of a service, cold or restored: the pid to signal and reap (with --pidns
    the namespace's init, whose death ends the copy), and where to ask it."""

    def __init__(self, reaper, pid, url, netns_pid=None):
        self.reaper, self.pid, self.url, self.netns_pid = reaper, pid, url, netns_pid

    def get(self, path="/"):
        return http_get(self.url.rstrip("/") + path, netns_pid=self.netns_pid)

    def stop(self):
        """SIGKILL, as a platform stops an instance it no longer needs, and reap."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.reaper.wait(self.pid, 30)


def start_cold(reaper, service, workdir, port, log):
    """Starts @service cold in its own session; returns the Instance right away."""
    with open(log, "ab") as out:
        p = subprocess.Popen(service.command(workdir, port), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             close_fds=True, start_new_session=True, cwd=workdir)
    p.returncode = 0  # the reaper thread owns it
    return Instance(reaper, p.pid, f"http://127.0.0.1:{port}/")


def free_port(rng):
    """A TCP port on 127.0.0.1 that nothing holds now, below the ephemeral range (32768 and up), where
    the local ends of other connections cannot take it from one start of a service to the next."""
    for _ in range(1000):
        port = rng.randrange(10000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise OSError(errno.EADDRINUSE, "no free port")


def port_in_use(port):
    """True if something listens on 127.0.0.1:@port in this network namespace."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def image_root_pid(snapcr, images):
    """The pid of the dumped tree's root, from the inventory."""
    out = subprocess.run([snapcr, "show", os.path.join(images, "inventory.img")], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["records"][0]["root_pid"]


def snapcr_path(build_dir):
    return os.path.join(build_dir, "tools", "snapcr")


def prepare(reaper, snapcr, service, workdir, port, images, log, warmups=0, extra=()):
    """Snapshots @service with `snapcr prepare`; returns snapcr's output."""
    shutil.rmtree(images, ignore_errors=True)
    url = f"http://127.0.0.1:{port}/"
    args = [snapcr, "prepare", "-D", images, "--ready", url, "--log", log, *extra]
    if warmups:
        args += ["--warmup", url, "--warmup-count", str(warmups)]
    rc, out = reaper.run(args + ["--", *service.command(workdir, port)], cwd=workdir)
    if rc != 0:
        raise RuntimeError(f"{service.name}: snapcr prepare failed ({rc}):\n{out}")
    return out


def restore(reaper, snapcr, images, port, stats=None, extra=()):
    """Restores one copy with `snapcr restore -d`; returns the Instance once snapcr returned."""
    pidfile = f"{images.rstrip('/')}.restored-{time.monotonic_ns()}.pid"
    args = [snapcr, "restore", "-D", images, "-d", "--pidfile", pidfile, *extra]
    if stats:
        args += ["--stats", stats]
    rc, out = reaper.run(args)
    if rc != 0:
        raise RuntimeError(f"snapcr restore failed ({rc}):\n{out}")
    with open(pidfile) as f:
        pid = int(f.read())
    os.unlink(pidfile)
    netns = pid if "--netns" in extra else None
    return Instance(reaper, pid, f"http://127.0.0.1:{port}/", netns_pid=netns)
