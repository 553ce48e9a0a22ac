/* Failures that only show in a real attempt: a dump we may not make, a restore that fails after forking. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(restore_failures);

/*
 * An unprivileged user may not trace a root process: the dump fails naming
 * the pid and leaves the process to finish its own check untouched.
 */
Test(restore_failures, dump_not_permitted)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	int status;
	pid_t child;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		struct snap_dump_opts o = { .size = sizeof(o), .pid = w.pid, .images_dir = imgdir };
		snap_ctx *ctx;
		int r;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534) || snap_ctx_new(&ctx))
			_exit(10);
		r = snap_dump(ctx, &o);
		fprintf(stderr, "as nobody: %s\n", snap_error(ctx));
		if (r != -EPERM)
			_exit(11);
		if (!contains_number(snap_error(ctx), w.pid) || !strstr(snap_error(ctx), "not permitted"))
			_exit(12);
		_exit(0);
	}
	H_OK(h_wait_pid(child, 30000, &status));
	cr_assert(
		WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"unprivileged dump did not fail as expected (child status 0x%x: 10 setup, 11 wrong error, 12 message)",
		status);
	H_OK(h_finish(&w));
}

/*
 * The new process exists when premapping fails (here: an address-space
 * limit too small for the image). The half-made process must be gone and
 * its pid free, and a restore without the limit must still work.
 */
Test(restore_failures, fails_after_fork_leaves_nothing)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t child, kids[16];
	int status;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	cr_assert(kill(w.orig_pid, 0) == -1 && errno == ESRCH, "the original still exists after the dump");

	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		/* wl-heap maps 256 MiB; leave room for the engine but not for that. */
		struct rlimit lim = { address_space_bytes() + (64u << 20), RLIM_INFINITY };
		struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir };
		snap_ctx *ctx;
		pid_t pid = 0;
		int r;

		if (snap_ctx_new(&ctx))
			_exit(10);
		lim.rlim_max = lim.rlim_cur;
		if (setrlimit(RLIMIT_AS, &lim))
			_exit(10);
		r = snap_restore(ctx, &o, &pid);
		fprintf(stderr, "restore under RLIMIT_AS: %d %s\n", r, snap_error(ctx));
		if (r == 0)
			_exit(11);
		/* Nothing of the attempt may be left: no child of ours, no process with the pid. */
		if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD)
			_exit(12);
		if (kill(w.orig_pid, 0) == 0 || errno != ESRCH)
			_exit(13);
		if (!contains_number(snap_error(ctx), w.orig_pid))
			_exit(14);
		_exit(0);
	}
	H_OK(h_wait_pid(child, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "restore under a small RLIMIT_AS did not fail cleanly (child status 0x%x: 11 succeeded, 12 a child "
		  "left, 13 pid in use, 14 message)",
		  status);
	cr_assert(kill(w.orig_pid, 0) == -1 && errno == ESRCH, "pid %d exists after the failed restore",
		  (int)w.orig_pid);
	cr_assert(h_children(kids, 16) == 0, "a process is left after the failed restore");

	/* The images were fine all along. */
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
}
