/* Dumps that must be refused: a missing pid, and each kind of state this engine version does not handle (fds:
 * test_files_refusals.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(dump_failures);

Test(dump_failures, missing_pid)
{
	struct h_wl w = { .name = "missing" };
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	const char *err;

	w.pid = w.orig_pid = h_unused_pid();
	cr_assert(w.pid > 0 && kill(w.pid, 0) == -1 && errno == ESRCH, "no free pid found");
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_ctx_new(&ctx));
	cr_assert(h_dump(&w, imgdir, 0, ctx) < 0, "dump of missing pid %d succeeded", (int)w.pid);
	err = snap_error(ctx);
	cr_log_info("refused as it should: %s", err);
	cr_assert(contains_number(err, w.pid), "snap_error does not name pid %d: \"%s\"", (int)w.pid, err);
	snap_ctx_free(ctx);
}

/* Neither stopped nor traced: a refused dump must let go of the process completely. */
static void expect_untouched(pid_t pid)
{
	char path[64], *status, *state, *tracer;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	status = h_read_file(path, NULL);
	cr_assert(status, "pid %d is gone after the refused dump", (int)pid);
	state = strstr(status, "\nState:\t");
	tracer = strstr(status, "\nTracerPid:\t");
	cr_assert(state && tracer, "unexpected %s", path);
	cr_expect(state[8] == 'S' || state[8] == 'R' || state[8] == 'D', "pid %d is left in state %c", (int)pid,
		  state[8]);
	cr_expect(strncmp(tracer + 12, "0\n", 2) == 0, "pid %d is still traced after the refused dump", (int)pid);
	free(status);
}

static void expect_refused_args(const char *const *args, const char *kind)
{
	const char *mode = args[0];
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	const char *err;

	H_OK(h_start(&w, "wl-refuse", args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_ctx_new(&ctx));
	cr_assert(h_dump(&w, imgdir, 0, ctx) < 0, "dump of a process with a %s succeeded", kind);
	err = snap_error(ctx);
	cr_log_info("refused as it should: %s", err);
	cr_expect(contains_number(err, w.pid), "snap_error does not name pid %d: \"%s\"", (int)w.pid, err);
	cr_expect(contains_word(err, kind), "snap_error does not say \"%s\": \"%s\"", kind, err);
	snap_ctx_free(ctx);
	expect_untouched(w.pid);
	/* The workload checks its heap and the refused object itself. */
	H_OK(h_finish(&w));
	(void)mode;
}

/* A process of the tree in a group that belongs to a process outside it. */
Test(dump_failures, group_outside_tree)
{
	char pgid[16];
	const char *const args[] = { "group", pgid, NULL };
	pid_t outsider = fork();

	cr_assert(outsider >= 0);
	if (outsider == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(outsider, outsider);
	snprintf(pgid, sizeof(pgid), "%d", (int)outsider);
	expect_refused_args(args, "group");
	kill(outsider, SIGKILL);
	waitpid(outsider, NULL, 0);
}
