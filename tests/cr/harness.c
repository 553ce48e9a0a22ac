/* Harness of the C/R tests and benchmark: runs workloads as children, dumps, restores, reaps, cleans up. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef SNAP_TEST_WORKLOADS_DIR
#error "meson must define SNAP_TEST_WORKLOADS_DIR"
#endif
#ifndef SNAP_TEST_SNAPCR
#error "meson must define SNAP_TEST_SNAPCR"
#endif

#define MAX_TMPDIRS  64
#define MAX_CHILDREN 1024

static char err_buf[8192];
/* Fixed arrays, no malloc: the watchdog walks them from a signal handler. */
static char tmpdirs[MAX_TMPDIRS][PATH_MAX];
static volatile int nr_tmpdirs;
static char watchdog_what[256];
static bool keep_tmpdirs;
static unsigned lib_timeout_s = H_LIB_TIMEOUT_S;
static uint64_t last_lib_ns;

const char *h_error(void)
{
	return err_buf;
}

int h_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return err < 0 ? err : -EINVAL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t h_last_lib_ns(void)
{
	return last_lib_ns;
}

void h_set_lib_timeout(unsigned seconds)
{
	lib_timeout_s = seconds;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * The helpers below run in the watchdog's signal handler too, so they use
 * only async-signal-safe calls: no stdio, no malloc.
 */

static size_t str_len(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void put_err(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, str_len(s));

	(void)r;
}

/* Appends @s to @buf (of @cap bytes) at *@len; false if it does not fit. */
static bool append(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = str_len(s);

	if (*len + n + 1 > cap)
		return false;
	for (size_t i = 0; i < n; i++)
		buf[*len + i] = s[i];
	*len += n;
	buf[*len] = '\0';
	return true;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Calls @fn for every entry of the open directory @fd but "." and "..". */
static int for_each_dirent(int fd, void (*fn)(void *opaque, const char *name, unsigned char type), void *opaque)
{
	char buf[4096] __attribute__((aligned(8)));
	long n;

	for (;;) {
		n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);

			off += d->d_reclen;
			if (d->d_name[0] == '.' && (!d->d_name[1] || (d->d_name[1] == '.' && !d->d_name[2])))
				continue;
			fn(opaque, d->d_name, d->d_type);
		}
	}
}

struct child_scan {
	pid_t *out;
	int max, nr;
	int taskfd;
};

static void add_children_of_task(void *opaque, const char *tid, unsigned char type)
{
	struct child_scan *cs = opaque;
	char path[64], buf[4096];
	size_t len = 0;
	ssize_t n;
	long v = -1;
	int fd;

	(void)type;
	if (!append(path, sizeof(path), &len, tid) || !append(path, sizeof(path), &len, "/children"))
		return;
	fd = openat(cs->taskfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (ssize_t i = 0; i <= n; i++) {
		if (buf[i] >= '0' && buf[i] <= '9') {
			v = (v < 0 ? 0 : v * 10) + (buf[i] - '0');
			continue;
		}
		if (v > 0 && cs->nr < cs->max)
			cs->out[cs->nr++] = (pid_t)v;
		v = -1;
	}
}

int h_children(pid_t *out, int max)
{
	struct child_scan cs = { .out = out, .max = max };
	int r, i, j, k;

	cs.taskfd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs.taskfd < 0)
		return -errno;
	r = for_each_dirent(cs.taskfd, add_children_of_task, &cs);
	close(cs.taskfd);
	if (r < 0)
		return r;
	/* Sorted and unique, so that two lists compare with memcmp. */
	for (i = 1; i < cs.nr; i++)
		for (j = i; j > 0 && out[j - 1] > out[j]; j--) {
			pid_t t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	for (i = 0, k = 0; i < cs.nr; i++)
		if (k == 0 || out[k - 1] != out[i])
			out[k++] = out[i];
	return k;
}

/* SIGKILLs every child (a reaped workload's own children come back to us as subreaper) and reaps it. */
static void kill_and_reap_all(void)
{
	pid_t kids[MAX_CHILDREN];
	int status, n;

	for (int round = 0; round < 1000; round++) {
		n = h_children(kids, MAX_CHILDREN);
		for (int i = 0; i < n; i++)
			kill(kids[i], SIGKILL);
		/* __WALL: a restored child may have been cloned without SIGCHLD. */
		while (waitpid(-1, &status, WNOHANG | __WALL) > 0)
			;
		if (n <= 0 && waitpid(-1, &status, WNOHANG | __WALL) < 0 && errno == ECHILD)
			return;
		sleep_ms(5);
	}
	put_err("harness: children survive SIGKILL, giving up on reaping them\n");
}

struct rm_ctx {
	int dirfd;
	int depth;
	int removed;
};

static void rm_entry(void *opaque, const char *name, unsigned char type);

/* Removes everything in the open directory @fd; nested directories up to a few levels. */
static void rm_contents(int fd, int depth)
{
	struct rm_ctx rc = { .dirfd = fd, .depth = depth };

	/* Rescan until a pass removes nothing: deleting while reading may skip entries. */
	do {
		rc.removed = 0;
		lseek(fd, 0, SEEK_SET);
		if (for_each_dirent(fd, rm_entry, &rc) < 0)
			return;
	} while (rc.removed);
}

static void rm_entry(void *opaque, const char *name, unsigned char type)
{
	struct rm_ctx *rc = opaque;
	int sub;

	if (type != DT_DIR && unlinkat(rc->dirfd, name, 0) == 0) {
		rc->removed++;
		return;
	}
	if (rc->depth >= 8)
		return;
	sub = openat(rc->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return;
	rm_contents(sub, rc->depth + 1);
	close(sub);
	if (unlinkat(rc->dirfd, name, AT_REMOVEDIR) == 0)
		rc->removed++;
}

static void rm_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	rm_contents(fd, 0);
	close(fd);
	rmdir(path);
}

static void remove_tmpdirs(void)
{
	for (int i = nr_tmpdirs - 1; i >= 0; i--) {
		if (keep_tmpdirs) {
			put_err("harness: keeping ");
			put_err(tmpdirs[i]);
			put_err("\n");
		} else {
			rm_tree(tmpdirs[i]);
		}
	}
	nr_tmpdirs = 0;
}

static void on_watchdog(int sig)
{
	(void)sig;
	put_err("\nharness watchdog: ");
	put_err(watchdog_what);
	put_err(" did not return in time; killing every child and ending this test\n");
	kill_and_reap_all();
	remove_tmpdirs();
	_exit(124);
}

static void watchdog_arm(const char *what, unsigned seconds)
{
	size_t len = 0;

	watchdog_what[0] = '\0';
	append(watchdog_what, sizeof(watchdog_what), &len, what);
	alarm(seconds);
}

static void watchdog_disarm(void)
{
	alarm(0);
}

void h_setup(void)
{
	/* SNAP_TEST_KEEP=1 keeps images and workload output for a post-mortem. */
	const char *keep = getenv("SNAP_TEST_KEEP");
	struct sigaction sa;

	err_buf[0] = '\0';
	nr_tmpdirs = 0;
	keep_tmpdirs = keep && keep[0] == '1';
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		fprintf(stderr, "harness: PR_SET_CHILD_SUBREAPER failed: %m\n");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watchdog;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
}

void h_cleanup(void)
{
	watchdog_disarm();
	kill_and_reap_all();
	remove_tmpdirs();
}

int h_tmpdir(char out[PATH_MAX], const char *tag)
{
	const char *base = getenv("TMPDIR");
	int n;

	if (!base || !*base)
		base = "/tmp";
	if (nr_tmpdirs == MAX_TMPDIRS)
		return h_fail(-EMFILE, "too many temp dirs in one test");
	n = snprintf(out, PATH_MAX, "%s/snap-test-%s-XXXXXX", base, tag);
	if (n < 0 || n >= PATH_MAX)
		return h_fail(-ENAMETOOLONG, "temp dir name too long");
	if (!mkdtemp(out))
		return h_fail(-errno, "mkdtemp(%s): %m", out);
	memcpy(tmpdirs[nr_tmpdirs], out, PATH_MAX);
	nr_tmpdirs++;
	return 0;
}

int h_copy_dir(const char *from, const char *to)
{
	char src[PATH_MAX], dst[PATH_MAX], buf[65536];
	struct dirent *de;
	DIR *d = opendir(from);
	int r = 0;

	if (!d)
		return h_fail(-errno, "opendir(%s): %m", from);
	while ((de = readdir(d))) {
		struct stat st;
		int in, out;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(src, sizeof(src), "%s/%s", from, de->d_name);
		snprintf(dst, sizeof(dst), "%s/%s", to, de->d_name);
		if (stat(src, &st) != 0 || !S_ISREG(st.st_mode)) {
			r = h_fail(-EINVAL, "%s is not a regular file; the copy handles flat image dirs only", src);
			break;
		}
		in = open(src, O_RDONLY | O_CLOEXEC);
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
		if (in < 0 || out < 0) {
			r = h_fail(-errno, "cannot copy %s to %s: %m", src, dst);
		} else {
			while ((n = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, n) != n) {
					n = -1;
					break;
				}
			if (n < 0)
				r = h_fail(-EIO, "cannot copy %s to %s: %m", src, dst);
		}
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

const char *h_workload_path(const char *name, char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/%s", SNAP_TEST_WORKLOADS_DIR, name);
	return out;
}

const char *h_snapcr_path(void)
{
	return SNAP_TEST_SNAPCR;
}

char *h_read_file(const char *path, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || !buf) {
		int e = errno;

		free(buf);
		if (fd >= 0)
			close(fd);
		errno = e;
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

char *h_read_ctl(const struct h_wl *w, const char *file, size_t *ret_len)
{
	char path[2 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", w->ctldir, file);
	return h_read_file(path, ret_len);
}

/* The end of the workload's stderr, for failure messages. */
static const char *stderr_tail(const struct h_wl *w, char *out, size_t cap)
{
	size_t len = 0;
	char *s = h_read_ctl(w, "stderr", &len);

	if (!s) {
		snprintf(out, cap, "(no stderr: %m)");
		return out;
	}
	snprintf(out, cap, "%s", len + 1 > cap ? s + len - (cap - 1) : s);
	free(s);
	return out;
}

const char *h_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "wait status %#x", status);
	return buf;
}

int h_wait_pid(pid_t pid, int timeout_ms, int *ret_status)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int status = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG | __WALL);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
				;
			if (ret_status)
				*ret_status = status;
			return -ETIMEDOUT;
		}
		sleep_ms(1);
	}
	if (ret_status)
		*ret_status = status;
	return 0;
}

/* In the child between fork and exec: a clean process like one a shell would start. */
static void exec_child(const char *const *argv, const char *out, const char *err, pid_t parent)
{
	sigset_t none;
	int fd;

	/* The harness may die without cleaning up; its workloads must not outlive it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
		_exit(127);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
		_exit(127);
	fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(127);
	/* Whatever the test runner has open (its pipes, sockets) is no part of the workload. */
	close_range(3, ~0U, 0);
	execv(argv[0], (char *const *)argv);
	dprintf(STDERR_FILENO, "harness: cannot exec %s: %m\n", argv[0]);
	_exit(127);
}

static int spawn(const char *const *argv, const char *out, const char *err, pid_t *ret_pid)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return h_fail(-errno, "fork: %m");
	if (pid == 0)
		exec_child(argv, out, err, parent);
	*ret_pid = pid;
	return 0;
}

int h_run_cmd(const char *const *argv, const char *out, const char *err, int timeout_ms, int *ret_status)
{
	char desc[128];
	pid_t pid;
	int r;

	r = spawn(argv, out, err, &pid);
	if (r < 0)
		return r;
	r = h_wait_pid(pid, timeout_ms, ret_status);
	if (r == -ETIMEDOUT)
		return h_fail(r, "%s did not finish within %d ms (killed: %s)", argv[0], timeout_ms,
			      h_describe_status(*ret_status, desc, sizeof(desc)));
	if (r < 0)
		return h_fail(r, "waitpid(%d): %s", (int)pid, strerror(-r));
	return 0;
}

static int wait_ready(struct h_wl *w)
{
	uint64_t deadline = now_ms() + (uint64_t)w->ready_timeout_ms;
	char ready[PATH_MAX + 16], desc[128], tail[2048];
	int status;
	pid_t r;

	snprintf(ready, sizeof(ready), "%s/ready", w->ctldir);
	for (;;) {
		if (access(ready, F_OK) == 0)
			return 0;
		r = waitpid(w->pid, &status, WNOHANG | __WALL);
		if (r == w->pid) {
			w->pid = 0;
			return h_fail(-ECHILD, "%s (pid %d) %s before it was ready; its stderr:\n%s", w->name,
				      (int)w->orig_pid, h_describe_status(status, desc, sizeof(desc)),
				      stderr_tail(w, tail, sizeof(tail)));
		}
		if (now_ms() > deadline) {
			h_wait_pid(w->pid, 0, &status);
			w->pid = 0;
			return h_fail(-ETIMEDOUT, "%s (pid %d) not ready after %d ms; its stderr:\n%s", w->name,
				      (int)w->orig_pid, w->ready_timeout_ms, stderr_tail(w, tail, sizeof(tail)));
		}
		sleep_ms(1);
	}
}

int h_start(struct h_wl *w, const char *name, const char *const *args)
{
	const char *argv[32];
	char path[PATH_MAX], out[PATH_MAX + 16], err[PATH_MAX + 16];
	int argc = 0, r;

	if (!w->ready_timeout_ms)
		w->ready_timeout_ms = H_READY_TIMEOUT_MS;
	if (!w->exit_timeout_ms)
		w->exit_timeout_ms = H_EXIT_TIMEOUT_MS;
	snprintf(w->name, sizeof(w->name), "%s", name);
	r = h_tmpdir(w->ctldir, name);
	if (r < 0)
		return r;
	argv[argc++] = h_workload_path(name, path);
	argv[argc++] = w->ctldir;
	for (int i = 0; args && args[i]; i++) {
		if (argc == 30)
			return h_fail(-E2BIG, "too many workload arguments");
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	snprintf(out, sizeof(out), "%s/stdout", w->ctldir);
	snprintf(err, sizeof(err), "%s/stderr", w->ctldir);
	r = spawn(argv, out, err, &w->pid);
	if (r < 0)
		return r;
	w->orig_pid = w->pid;
	return wait_ready(w);
}

int h_go(struct h_wl *w)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/go", w->ctldir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return h_fail(-errno, "cannot create %s: %m", path);
	close(fd);
	if (w->wake_signal && w->pid > 0 && kill(w->pid, w->wake_signal) != 0)
		return h_fail(-errno, "cannot send signal %d to %s (pid %d): %m", w->wake_signal, w->name, (int)w->pid);
	return 0;
}

int h_expect_exit_ok(struct h_wl *w)
{
	char desc[128], tail[2048];
	pid_t pid = w->pid;
	int status = 0, r;

	if (pid <= 0)
		return h_fail(-ESRCH, "%s: no live process to wait for", w->name);
	r = h_wait_pid(pid, w->exit_timeout_ms, &status);
	w->pid = 0;
	if (r == -ETIMEDOUT)
		return h_fail(r, "%s (pid %d) did not exit within %d ms after go (killed); its stderr:\n%s", w->name,
			      (int)pid, w->exit_timeout_ms, stderr_tail(w, tail, sizeof(tail)));
	if (r < 0)
		return h_fail(r, "waitpid(%d): %s", (int)pid, strerror(-r));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return h_fail(-EPROTO, "%s (pid %d) %s; its stderr:\n%s", w->name, (int)pid,
			      h_describe_status(status, desc, sizeof(desc)), stderr_tail(w, tail, sizeof(tail)));
	return 0;
}

int h_finish(struct h_wl *w)
{
	int r = h_go(w);

	return r < 0 ? r : h_expect_exit_ok(w);
}

static void log_to_stderr(void *opaque, enum snap_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	(void)opaque;
	fprintf(stderr, "[snap %s] %s\n", (unsigned)level < 4 ? names[level] : "?", msg);
}

int h_ctx_new(snap_ctx **ret_ctx)
{
	const char *env = getenv("SNAP_TEST_LOG");
	enum snap_log_level level = SNAP_LOG_WARN;
	int r = snap_ctx_new(ret_ctx);

	if (r < 0)
		return h_fail(r, "snap_ctx_new: %s", strerror(-r));
	if (env && strcmp(env, "debug") == 0)
		level = SNAP_LOG_DEBUG;
	else if (env && strcmp(env, "info") == 0)
		level = SNAP_LOG_INFO;
	snap_set_log(*ret_ctx, level, log_to_stderr, NULL);
	return 0;
}

static void reap_zombie_children(void)
{
	pid_t kids[1024];
	int n = h_children(kids, 1024);

	for (int i = 0; i < n; i++) {
		char path[64], *stat;
		const char *state;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)kids[i]);
		stat = h_read_file(path, NULL);
		state = stat ? strrchr(stat, ')') : NULL;
		if (state && state[1] == ' ' && state[2] == 'Z')
			waitpid(kids[i], NULL, __WALL);
		free(stat);
	}
}

int h_dump(struct h_wl *w, const char *imgdir, unsigned flags, snap_ctx *ctx)
{
	struct snap_dump_opts opts = {
		.size = sizeof(opts),
		.pid = w->pid,
		.images_dir = imgdir,
		.flags = flags,
	};
	snap_ctx *own = NULL;
	char desc[128];
	int r, status;

	if (w->pid <= 0)
		return h_fail(-ESRCH, "%s: no live process to dump", w->name);
	if (!ctx) {
		r = h_ctx_new(&own);
		if (r < 0)
			return r;
		ctx = own;
	}
	watchdog_arm("snap_dump", lib_timeout_s);
	last_lib_ns = now_ns();
	r = snap_dump(ctx, &opts);
	last_lib_ns = now_ns() - last_lib_ns;
	watchdog_disarm();
	if (r < 0) {
		h_fail(r, "snap_dump of %s (pid %d) into %s failed: %d (%s): %s", w->name, (int)w->pid, imgdir, r,
		       strerror(-r), snap_error(ctx));
		goto out;
	}
	if (flags & SNAP_DUMP_LEAVE_RUNNING) {
		if (waitpid(w->pid, &status, WNOHANG | __WALL) == w->pid) {
			r = h_fail(-ESRCH, "%s (pid %d) %s after a leave-running dump", w->name, (int)w->pid,
				   h_describe_status(status, desc, sizeof(desc)));
			w->pid = 0;
		}
		goto out;
	}
	/* The pid must be free again before anything is restored with it. */
	r = h_wait_pid(w->pid, 10 * 1000, &status);
	if (r == -ETIMEDOUT)
		h_fail(r, "%s (pid %d) still alive 10 s after snap_dump returned; it should have been killed", w->name,
		       (int)w->pid);
	else if (r < 0)
		h_fail(r, "waitpid(%d): %s", (int)w->pid, strerror(-r));
	w->pid = 0;
	/*
	 * The rest of a dumped tree was killed too; as the subreaper we get
	 * each one back as a zombie (the engine waited for every exit), and
	 * their pids are free only once reaped.
	 */
	if (!r)
		reap_zombie_children();
out:
	snap_ctx_free(own);
	return r;
}

int h_restore(struct h_wl *w, const char *imgdir, snap_ctx *ctx)
{
	struct snap_restore_opts opts = {
		.size = sizeof(opts),
		.images_dir = imgdir,
	};
	snap_ctx *own = NULL;
	pid_t pid = 0;
	int r;

	if (!ctx) {
		r = h_ctx_new(&own);
		if (r < 0)
			return r;
		ctx = own;
	}
	watchdog_arm("snap_restore", lib_timeout_s);
	last_lib_ns = now_ns();
	r = snap_restore(ctx, &opts, &pid);
	last_lib_ns = now_ns() - last_lib_ns;
	watchdog_disarm();
	if (r < 0) {
		h_fail(r, "snap_restore of %s from %s failed: %d (%s): %s", w->name, imgdir, r, strerror(-r),
		       snap_error(ctx));
		goto out;
	}
	if (pid != w->orig_pid) {
		r = h_fail(-EPROTO, "snap_restore of %s returned pid %d, expected the original pid %d", w->name,
			   (int)pid, (int)w->orig_pid);
		if (pid > 0)
			h_wait_pid(pid, 0, NULL);
		goto out;
	}
	w->pid = pid;
out:
	snap_ctx_free(own);
	return r;
}

int h_run_nocr(const char *name, const char *const *args, int wake_signal)
{
	struct h_wl w = { .wake_signal = wake_signal };
	int r = h_start(&w, name, args);

	return r < 0 ? r : h_finish(&w);
}

int h_run_cr(const char *name, const char *const *args, int wake_signal)
{
	struct h_wl w = { .wake_signal = wake_signal };
	char imgdir[PATH_MAX];
	int r;

	r = h_start(&w, name, args);
	if (r < 0)
		return r;
	r = h_tmpdir(imgdir, "img");
	if (r < 0)
		return r;
	r = h_dump(&w, imgdir, 0, NULL);
	if (r < 0)
		return r;
	r = h_restore(&w, imgdir, NULL);
	if (r < 0)
		return r;
	return h_finish(&w);
}

pid_t h_unused_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	if (pid < 0 || h_wait_pid(pid, 10 * 1000, NULL) < 0)
		return -1;
	return pid;
}
