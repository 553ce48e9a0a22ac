/*
 * Signals, timers, credentials, seccomp, resource limits, scheduling,
 * prctl state, the root directory and file locks: each workload once
 * untouched and once dumped and restored, plus what must be refused.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(attrs);

Test(attrs, attrs_nocr)
{
	H_OK(h_run_nocr("wl-attrs", NULL, 0));
}

Test(attrs, attrs_cr)
{
	H_OK(h_run_cr("wl-attrs", NULL, 0));
}

Test(attrs, signals_nocr)
{
	H_OK(h_run_nocr("wl-signals", NULL, 0));
}

Test(attrs, signals_cr)
{
	H_OK(h_run_cr("wl-signals", NULL, 0));
}

Test(attrs, timers_nocr)
{
	H_OK(h_run_nocr("wl-timers", NULL, 0));
}

/*
 * wl-timers has gaps in its timer ids: before Linux 6.15 they cannot be
 * made again, and the restore must say so rather than renumber them.
 */
Test(attrs, timers_cr)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	int r;

	if (prctl(77 /* PR_TIMER_CREATE_RESTORE_IDS */, 2 /* _GET */, 0, 0, 0) >= 0) {
		H_OK(h_run_cr("wl-timers", NULL, 0));
		return;
	}
	H_OK(h_start(&w, "wl-timers", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	H_OK(h_ctx_new(&ctx));
	r = h_restore(&w, imgdir, ctx);
	cr_expect(r == -EOPNOTSUPP && strstr(snap_error(ctx), "PR_TIMER_CREATE_RESTORE_IDS"),
		  "restoring timer ids without PR_TIMER_CREATE_RESTORE_IDS gave %d: %s", r, snap_error(ctx));
	snap_ctx_free(ctx);
}

Test(attrs, creds_nocr)
{
	H_OK(h_run_nocr("wl-creds", NULL, 0));
}

Test(attrs, creds_cr)
{
	H_OK(h_run_cr("wl-creds", NULL, 0));
}

Test(attrs, seccomp_nocr)
{
	H_OK(h_run_nocr("wl-seccomp", NULL, 0));
}

Test(attrs, seccomp_cr)
{
	H_OK(h_run_cr("wl-seccomp", NULL, 0));
}

/* Filters its restored credentials could not install: they go in before the credentials are set. */
static const char *const dropped_args[] = { "dropped", NULL };

Test(attrs, seccomp_dropped_nocr)
{
	H_OK(h_run_nocr("wl-seccomp", dropped_args, 0));
}

Test(attrs, seccomp_dropped_cr)
{
	H_OK(h_run_cr("wl-seccomp", dropped_args, 0));
}

Test(attrs, thread_attrs_nocr)
{
	H_OK(h_run_nocr("wl-thread-attrs", NULL, 0));
}

Test(attrs, thread_attrs_cr)
{
	H_OK(h_run_cr("wl-thread-attrs", NULL, 0));
}

/* Threads that share a filter still share it: a filter for all threads (TSYNC) can be added after restore. */
static const char *const tsync_args[] = { "tsync", NULL };

Test(attrs, thread_seccomp_tsync_nocr)
{
	H_OK(h_run_nocr("wl-thread-attrs", tsync_args, 0));
}

Test(attrs, thread_seccomp_tsync_cr)
{
	H_OK(h_run_cr("wl-thread-attrs", tsync_args, 0));
}

Test(attrs, chroot_nocr)
{
	H_OK(h_run_nocr("wl-chroot", NULL, 0));
}

Test(attrs, chroot_cr)
{
	H_OK(h_run_cr("wl-chroot", NULL, 0));
}

Test(attrs, locks_nocr)
{
	H_OK(h_run_nocr("wl-locks", NULL, 0));
}

Test(attrs, locks_cr)
{
	H_OK(h_run_cr("wl-locks", NULL, 0));
}

/* The state of @pid from /proc/PID/stat and its tracer from status: running untouched means no tracer, not stopped. */
static void expect_running_untraced(pid_t pid)
{
	char path[64], *stat, *status, *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stat = h_read_file(path, NULL);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	status = h_read_file(path, NULL);
	cr_assert(stat && status, "pid %d is gone", (int)pid);
	p = strrchr(stat, ')');
	cr_expect(p && (p[2] == 'R' || p[2] == 'S'), "pid %d is in state %c", (int)pid, p ? p[2] : '?');
	cr_expect(strstr(status, "TracerPid:\t0\n"), "pid %d is still traced", (int)pid);
	free(stat);
	free(status);
}

/*
 * Strict mode allows four system calls; the parasite's would kill the
 * process. The dump refuses it before injecting anything.
 */
Test(attrs, seccomp_strict_refused)
{
	static const char *const args[] = { "strict", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	int r;

	H_OK(h_start(&w, "wl-seccomp", args));
	/* It can write no file once in strict mode, so it is ready before: wait for the mode. */
	for (int i = 0; i < 10000; i++) {
		char path[64], *status;
		bool strict;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)w.pid);
		status = h_read_file(path, NULL);
		strict = status && strstr(status, "\nSeccomp:\t1\n");
		free(status);
		if (strict)
			break;
		usleep(1000);
	}
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_ctx_new(&ctx));
	r = h_dump(&w, imgdir, 0, ctx);
	cr_expect(r == -EOPNOTSUPP, "dump of a strict-mode process returned %d: %s", r, h_error());
	cr_expect(contains_number(snap_error(ctx), w.pid) && contains_word(snap_error(ctx), "strict"),
		  "the message does not name the pid and strict mode: %s", snap_error(ctx));
	snap_ctx_free(ctx);
	expect_running_untraced(w.pid);
}

/* The same in a thread other than the main one: refused, naming pid and tid, before anything is injected. */
Test(attrs, seccomp_strict_thread_refused)
{
	static const char *const args[] = { "strict-thread", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], path[64];
	int tid = 0, r;
	snap_ctx *ctx;

	H_OK(h_start(&w, "wl-thread-attrs", args));
	H_OK(h_ctx_new(&ctx));
	snprintf(path, sizeof(path), "/proc/%d/task", (int)w.pid);
	{
		DIR *d = opendir(path);
		struct dirent *e;

		while (d && (e = readdir(d)))
			if (atoi(e->d_name) > 0 && atoi(e->d_name) != w.pid)
				tid = atoi(e->d_name);
		if (d)
			closedir(d);
	}
	cr_assert(tid > 0, "no second thread in pid %d", (int)w.pid);
	H_OK(h_tmpdir(imgdir, "img"));
	r = h_dump(&w, imgdir, 0, ctx);
	cr_expect(r == -EOPNOTSUPP, "dump of a process with a strict-mode thread returned %d: %s", r, h_error());
	cr_expect(contains_number(snap_error(ctx), w.pid) && contains_number(snap_error(ctx), tid) &&
			  contains_word(snap_error(ctx), "strict"),
		  "the message does not name pid %d, tid %d and strict mode: %s", (int)w.pid, tid, snap_error(ctx));
	snap_ctx_free(ctx);
	expect_running_untraced(w.pid);
	/* And it carries on: the main thread still sees go and exits cleanly. */
	H_OK(h_go(&w));
	H_OK(h_expect_exit_ok(&w));
}

/*
 * A restore grants no capability that its user does not hold: restoring
 * wl-creds (CAP_NET_BIND_SERVICE permitted) without it is refused, naming
 * pid and capability, before anything exists; with it, it works.
 */
Test(attrs, creds_beyond_restorer_refused)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t child, kids[8];
	int status;

	H_OK(h_start(&w, "wl-creds", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir };
		struct __user_cap_header_struct {
			uint32_t version;
			int pid;
		} hdr = { 0x20080522, 0 };
		struct {
			uint32_t eff, prm, inh;
		} data[2];
		snap_ctx *ctx;
		pid_t pid = 0;
		int r;

		/* CAP_NET_BIND_SERVICE (10) out of our bounding, permitted and effective sets. */
		if (prctl(PR_CAPBSET_DROP, 10, 0, 0, 0) || syscall(SYS_capget, &hdr, data))
			_exit(10);
		data[0].eff &= ~(1u << 10);
		data[0].prm &= ~(1u << 10);
		if (syscall(SYS_capset, &hdr, data) || snap_ctx_new(&ctx))
			_exit(10);
		r = snap_restore(ctx, &o, &pid);
		fprintf(stderr, "restore without CAP_NET_BIND_SERVICE: %d %s\n", r, snap_error(ctx));
		if (r != -EPERM)
			_exit(11);
		if (!contains_number(snap_error(ctx), w.orig_pid) || !strstr(snap_error(ctx), "CAP_NET_BIND_SERVICE"))
			_exit(12);
		if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD || kill(w.orig_pid, 0) == 0)
			_exit(13);
		_exit(0);
	}
	H_OK(h_wait_pid(child, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "restore beyond our capabilities was not refused cleanly (child status 0x%x: 10 setup, 11 wrong "
		  "error, 12 message, 13 something left)",
		  status);
	cr_assert(h_children(kids, 8) == 0, "a process is left after the refused restore");
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
}

/* A hard limit above the restoring user's cannot be set without CAP_SYS_RESOURCE: refused up front. */
Test(attrs, rlimit_beyond_restorer_refused)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t child;
	int status;

	H_OK(h_start(&w, "wl-attrs", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir };
		struct rlimit core = { 1024, 4096 }; /* wl-attrs has 1024/8192 */
		struct __user_cap_header_struct {
			uint32_t version;
			int pid;
		} hdr = { 0x20080522, 0 };
		struct {
			uint32_t eff, prm, inh;
		} data[2];
		snap_ctx *ctx;
		pid_t pid = 0;
		int r;

		/* Without CAP_SYS_RESOURCE (24), which could raise it. */
		if (setrlimit(RLIMIT_CORE, &core) || syscall(SYS_capget, &hdr, data))
			_exit(10);
		data[0].eff &= ~(1u << 24);
		data[0].prm &= ~(1u << 24);
		if (syscall(SYS_capset, &hdr, data) || snap_ctx_new(&ctx))
			_exit(10);
		r = snap_restore(ctx, &o, &pid);
		fprintf(stderr, "restore under a lower RLIMIT_CORE: %d %s\n", r, snap_error(ctx));
		if (r != -EPERM)
			_exit(11);
		if (!contains_number(snap_error(ctx), w.orig_pid) || !strstr(snap_error(ctx), "RLIMIT_CORE"))
			_exit(12);
		if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD)
			_exit(13);
		_exit(0);
	}
	H_OK(h_wait_pid(child, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "restore beyond our resource limits was not refused cleanly (child status 0x%x: 10 setup, 11 wrong "
		  "error, 12 message, 13 something left)",
		  status);
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
}

/*
 * Locks come back held, so they cannot come back while someone else holds
 * them: restoring next to the still running original is refused before
 * anything is created, and the original keeps its locks.
 */
Test(attrs, locks_held_elsewhere_refused)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	pid_t pid = 0, kids[8];
	int r;

	H_OK(h_start(&w, "wl-locks", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, SNAP_DUMP_LEAVE_RUNNING, NULL));
	/* Its pid is taken too, but the locks are checked with the images, before that. */
	H_OK(h_ctx_new(&ctx));
	{
		struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir };

		r = snap_restore(ctx, &o, &pid);
	}
	cr_expect(r == -EAGAIN, "restore next to the lock holder returned %d: %s", r, snap_error(ctx));
	cr_expect(contains_word(snap_error(ctx), "locked by pid") && contains_number(snap_error(ctx), w.pid),
		  "the message does not name the holder: %s", snap_error(ctx));
	snap_ctx_free(ctx);
	cr_assert(h_children(kids, 8) == 1 && kids[0] == w.pid, "a process is left after the refused restore");
	H_OK(h_finish(&w));
}

/*
 * A dump only reads: the original, left running, still has every pending
 * signal with its siginfo, its timers as they were and its locks.
 */
static void run_leave_running(const char *name)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];

	H_OK(h_start(&w, name, NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, SNAP_DUMP_LEAVE_RUNNING, NULL));
	H_OK(h_finish(&w));
}

Test(attrs, signals_leave_running)
{
	run_leave_running("wl-signals");
}

Test(attrs, timers_leave_running)
{
	run_leave_running("wl-timers");
}

Test(attrs, seccomp_leave_running)
{
	run_leave_running("wl-seccomp");
}
