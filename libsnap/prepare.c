/* snap_prepare: start a command in its own session, wait until it is ready, warm it up, and dump it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define DEFAULT_TIMEOUT_MS (300u * 1000)
/* How often readiness is probed. */
#define PROBE_INTERVAL_NS (50ull * 1000 * 1000)
/* How long a server may take to close its end of the connections we closed. */
#define SETTLE_NS      (10ull * 1000 * 1000 * 1000)
#define SETTLE_POLL_NS (5ull * 1000 * 1000)
/* How long killing the tree may take before we give up on a process. */
#define KILL_NS (10ull * 1000 * 1000 * 1000)

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* "exited with status N" or "was killed by signal N (NAME)". */
static const char *describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "ended with wait status 0x%x", st);
	return buf;
}

/* In the child, between fork and exec: only async-signal-safe calls. Reports errno on @err_fd. */
__attribute__((noreturn)) static void exec_child(const struct snap_prepare_opts *opts, int out_fd, int err_fd)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int null_fd, e;

	/* A caller without stdin, stdout or stderr gave us fds among 0-2: move them out of the way. */
	if (err_fd < 3)
		err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
	if (out_fd < 3)
		out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
	if (err_fd < 0)
		_exit(127);
	/* Its own session: it has no terminal, and its whole session can be found and killed. */
	if (out_fd < 0 || setsid() < 0)
		goto fail;
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		goto fail;
	/* Nothing of the caller's leaks into what gets dumped, except the report pipe (close-on-exec). */
	if (err_fd > 3)
		close_range(3, (unsigned)err_fd - 1, 0);
	close_range((unsigned)err_fd + 1, ~0u, 0);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(opts->argv[0], (char *const *)opts->argv);
fail:
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* Spawns the command; on success *ret_pid is our child, exec'd. */
static int start_command(struct snap_ctx *ctx, const struct snap_prepare_opts *opts, const char *log_file,
			 pid_t *ret_pid)
{
	const char *out_path = log_file ? log_file : "/dev/null";
	int out_fd, pipefd[2], e = 0, st;
	ssize_t got;
	pid_t pid;

	/* O_APPEND: the restored process reopens it by path and goes on appending. */
	out_fd = open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (out_fd < 0)
		return snap_fail(ctx, -errno, "cannot open the log file %s: %m", out_path);
	if (pipe2(pipefd, O_CLOEXEC)) {
		e = errno;
		close(out_fd);
		return snap_fail(ctx, -e, "cannot create a pipe: %s", strerror(e));
	}
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		exec_child(opts, out_fd, pipefd[1]);
	}
	e = errno;
	close(out_fd);
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		return snap_fail(ctx, -e, "cannot fork to run %s: %s", opts->argv[0], strerror(e));
	}
	/* End of file: exec succeeded; an int: why it did not. */
	while ((got = read(pipefd[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(pipefd[0]);
	if (got == sizeof(e)) {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return snap_fail(ctx, -e, "cannot run %s: %s", opts->argv[0], strerror(e));
	}
	*ret_pid = pid;
	return 0;
}

/* ppid and session of @pid from /proc; -1 if it is gone. */
static int read_ids(pid_t pid, pid_t *ppid, pid_t *sid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, pgrp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d %d %d", ppid, &pgrp, sid) != 3)
		return -1;
	return 0;
}

/* The processes of the command's tree, found so far; gone ones stay listed (their children are still ours). */
struct pidset {
	struct {
		pid_t pid;
		bool gone;
	} * v;
	size_t nr, cap;
};

static bool pidset_has(const struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < s->nr; i++)
		if (s->v[i].pid == pid)
			return true;
	return false;
}

static int pidset_add(struct pidset *s, pid_t pid)
{
	if (s->nr == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		void *v = realloc(s->v, cap * sizeof(*s->v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->nr].pid = pid;
	s->v[s->nr++].gone = false;
	return 0;
}

/* Adds every process in session @root or descended from one in @s. */
static int scan_tree(pid_t root, struct pidset *s)
{
	pid_t self = getpid();
	int more;
	DIR *d;

	do {
		struct dirent *de;

		more = 0;
		d = opendir("/proc");
		if (!d)
			return -errno;
		while ((de = readdir(d))) {
			pid_t pid = (pid_t)atoi(de->d_name), ppid, sid;

			/* Never init or us (we are the parent of what was orphaned). */
			if (pid <= 1 || pid == self || pidset_has(s, pid) || read_ids(pid, &ppid, &sid))
				continue;
			if (sid == root || (ppid > 1 && ppid != self && pidset_has(s, ppid))) {
				if (pidset_add(s, pid)) {
					closedir(d);
					return -ENOMEM;
				}
				more = 1;
			}
		}
		closedir(d);
	} while (more); /* a child listed before its parent was found */
	return 0;
}

/*
 * Kills and reaps the command's whole tree and session. We are a child
 * subreaper, so what its killed processes leave comes back to us to reap.
 */
static int kill_tree(struct snap_ctx *ctx, pid_t root, bool root_reaped)
{
	struct pidset s = { 0 };
	uint64_t until = snap_now_ns() + KILL_NS;
	size_t left;
	int r;

	r = pidset_add(&s, root);
	if (r)
		return snap_fail(ctx, r, "out of memory");
	s.v[0].gone = root_reaped; /* its pid may be someone else's by now */
	do {
		if (!r)
			r = scan_tree(root, &s);
		for (size_t i = 0; i < s.nr; i++)
			if (!s.v[i].gone)
				kill(s.v[i].pid, SIGKILL);
		left = 0;
		for (size_t i = 0; i < s.nr; i++) {
			pid_t pid = s.v[i].pid;
			int st;

			if (s.v[i].gone)
				continue;
			/* Reaped, or gone (reaped by someone else). */
			if (waitpid(pid, &st, WNOHANG | __WALL) == pid || (kill(pid, 0) && errno == ESRCH)) {
				s.v[i].gone = true;
				continue;
			}
			left++;
		}
		if (left)
			sleep_ns(1000000);
	} while (left && snap_now_ns() < until);
	for (size_t i = 0; left && i < s.nr; i++)
		if (!s.v[i].gone)
			r = snap_fail(ctx, -ETIMEDOUT, "pid %d of the command's tree did not go away", s.v[i].pid);
	if (r && !left)
		r = snap_fail(ctx, r, "cannot list the processes of the command's tree: %s", strerror(-r));
	free(s.v);
	return r;
}

/* Whether the command ended; if so, fails with how. */
static int check_alive(struct snap_ctx *ctx, pid_t pid, const char *argv0, const char *when, bool *ret_exited)
{
	char desc[128];
	int st;

	if (waitpid(pid, &st, WNOHANG) != pid)
		return 0;
	*ret_exited = true;
	return snap_fail(ctx, -ECHILD, "%s (pid %d) %s %s", argv0, pid, describe_status(st, desc, sizeof(desc)), when);
}

static int wait_ready(struct snap_ctx *ctx, const struct snap_prepare_opts *opts, const struct probe *probe, pid_t pid,
		      unsigned timeout_ms, struct probe_conns *conns, bool *ret_exited)
{
	uint64_t deadline = snap_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	char why[512] = "no probe answered yet";

	for (;;) {
		uint64_t next = snap_now_ns() + PROBE_INTERVAL_NS;
		int r = check_alive(ctx, pid, opts->argv[0], "before it was ready", ret_exited);

		if (r)
			return r;
		r = probe_once(ctx, probe, deadline, conns, why, sizeof(why));
		if (r < 0)
			return r;
		if (r > 0)
			break;
		r = check_alive(ctx, pid, opts->argv[0], "before it was ready", ret_exited);
		if (r)
			return r;
		if (snap_now_ns() >= deadline)
			return snap_fail(ctx, -ETIMEDOUT,
					 "%s (pid %d) was not ready (%s) within %u.%03u s; last probe: %s",
					 opts->argv[0], pid, opts->ready, timeout_ms / 1000, timeout_ms % 1000, why);
		if (next > snap_now_ns())
			sleep_ns(next - snap_now_ns());
	}
	snap_debug(ctx, "pid %d is ready (%s)", pid, opts->ready);
	return 0;
}

static int warm_up(struct snap_ctx *ctx, const struct snap_prepare_opts *opts, const struct probe *url, pid_t pid,
		   unsigned timeout_ms, struct probe_conns *conns, bool *ret_exited)
{
	unsigned n = opts->warmup_count ? opts->warmup_count : 1;

	for (unsigned i = 0; i < n; i++) {
		uint64_t deadline = snap_now_ns() + (uint64_t)timeout_ms * 1000000ull;
		char why[512] = "";
		int status, r;

		r = probe_http_get(ctx, url, deadline, conns, &status, why, sizeof(why));
		if (r)
			return r;
		if (status < 200 || status > 299) {
			char when[64];

			snprintf(when, sizeof(when), "during warm-up request %u", i + 1);
			r = check_alive(ctx, pid, opts->argv[0], when, ret_exited);
			if (r)
				return r;
			return snap_fail(ctx, -EPROTO, "warm-up request %u of %u to %s failed: %s", i + 1, n,
					 opts->warmup_url, why);
		}
	}
	snap_debug(ctx, "pid %d: %u warm-up requests answered", pid, n);
	return 0;
}

static const char *const tcp_state_names[] = {
	"?",	 "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",    "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT",	"LAST_ACK", "LISTEN",	"CLOSING",   "NEW_SYN_RECV",
};

/*
 * The engine dumps the sockets the processes hold, and a server keeps its
 * end of a connection until it closes it (after answering, or only once it
 * sees ours closed, or after an idle timeout for keep-alive). So wait until
 * no process holds the server end of any connection we made.
 */
static int settle(struct snap_ctx *ctx, pid_t pid, const struct probe_conns *conns, unsigned dump_flags)
{
	uint64_t until = snap_now_ns() + SETTLE_NS;
	struct pidset tree = { 0 };
	pid_t *pids = NULL;
	unsigned state = 0;
	int r;

	do {
		size_t nr = 0;

		/* The tree may change meanwhile (a worker forked per connection). */
		tree.nr = 0;
		r = pidset_add(&tree, pid);
		if (!r)
			r = scan_tree(pid, &tree);
		free(pids);
		pids = r ? NULL : calloc(tree.nr, sizeof(*pids));
		if (!pids) {
			r = snap_fail(ctx, r ? r : -ENOMEM, "cannot list the command's processes");
			break;
		}
		for (size_t i = 0; i < tree.nr; i++)
			pids[nr++] = tree.v[i].pid;
		r = probe_conns_held(ctx, pids, nr, conns, &state);
		if (r > 0)
			sleep_ns(SETTLE_POLL_NS);
	} while (r > 0 && snap_now_ns() < until);
	free(pids);
	free(tree.v);
	if (r <= 0)
		return r;
	if (dump_flags & SNAP_DUMP_TCP_CLOSE) {
		snap_info(ctx, "pid %d still holds a connection the probes made (%s); --tcp-close drops it", pid,
			  state < 13 ? tcp_state_names[state] : "?");
		return 0;
	}
	return snap_fail(ctx, -EBUSY,
			 "the command (pid %d) still holds its end of a connection the probes or warm-up made (state "
			 "%s) after %llu s; a server that keeps idle connections open can be dumped with --tcp-close",
			 pid, state < 13 ? tcp_state_names[state] : "?", SETTLE_NS / 1000000000ull);
}

int snap_prepare(snap_ctx *ctx, const struct snap_prepare_opts *opts, pid_t *ret_pid)
{
	struct probe_conns conns = { 0 };
	struct probe probe, url = { 0 };
	struct snap_dump_opts dump = { 0 };
	unsigned timeout_ms;
	int old_subreaper = 0, r;
	bool subreaper_set = false, exited = false, leave = false, dumped = false;
	pid_t pid = -1;

	snap_clear_error(ctx);
	if (!opts || !OPTS_HAS(opts, dump))
		return snap_fail(ctx, -EINVAL, "snap_prepare: options struct too small");
	if (!opts->argv || !opts->argv[0])
		return snap_fail(ctx, -EINVAL, "snap_prepare: no command given");
	if (!opts->ready)
		return snap_fail(ctx, -EINVAL, "snap_prepare: no readiness probe given");
	if (!opts->dump || !opts->dump->images_dir)
		return snap_fail(ctx, -EINVAL, "snap_prepare: no images directory given");
	/* Copy what the caller's struct has; anything newer stays zero. */
	memcpy(&dump, opts->dump, opts->dump->size < sizeof(dump) ? opts->dump->size : sizeof(dump));
	dump.size = sizeof(dump);
	leave = dump.flags & SNAP_DUMP_LEAVE_RUNNING;
	timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	/* Every argument is checked before anything starts. */
	r = probe_parse(ctx, opts->ready, &probe);
	if (!r && opts->warmup_url)
		r = probe_parse_url(ctx, opts->warmup_url, &url);
	if (r)
		return r;

	/* Whatever the command's processes leave behind when killed comes back to us to reap. */
	prctl(PR_GET_CHILD_SUBREAPER, &old_subreaper);
	if (!old_subreaper && !prctl(PR_SET_CHILD_SUBREAPER, 1))
		subreaper_set = true;

	r = start_command(ctx, opts, opts->log_file, &pid);
	if (r)
		goto out;
	snap_debug(ctx, "started %s as pid %d", opts->argv[0], pid);
	r = wait_ready(ctx, opts, &probe, pid, timeout_ms, &conns, &exited);
	if (!r && opts->warmup_url)
		r = warm_up(ctx, opts, &url, pid, timeout_ms, &conns, &exited);
	if (!r)
		r = settle(ctx, pid, &conns, dump.flags);
	if (!r && check_alive(ctx, pid, opts->argv[0], "before the dump", &exited))
		r = -ECHILD;
	if (r)
		goto out;

	dump.pid = pid;
	r = snap_dump(ctx, &dump);
	dumped = true;
out:
	/* Nothing of it stays unless it was dumped and is to run on; a failed dump leaves it running. */
	if (pid > 0 && (!leave || r)) {
		int kr = kill_tree(ctx, pid, exited);

		if (!r)
			r = kr;
		else if (dumped) {
			size_t len = strlen(ctx->error);

			snprintf(ctx->error + len, sizeof(ctx->error) - len, " (then prepare killed it)");
		}
	}
	if (subreaper_set)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	probe_conns_free(&conns);
	if (!r)
		*ret_pid = pid;
	return r;
}
