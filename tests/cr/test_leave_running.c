/* Dump with SNAP_DUMP_LEAVE_RUNNING: the original runs on exactly as before, and its pid blocks a restore. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"
#include "regs.h"

H_SUITE(leave_running);

/* wl-sleep in sigsuspend: its registers do not move while it waits. */
static const char *const suspend_args[] = { "suspend", NULL };

/* What must not change across a leave-running dump. */
struct outside_view {
	char *maps;
	char status[1024]; /* the State, TracerPid and signal lines of /proc/PID/status */
	struct tregs regs;
};

static void view_free(struct outside_view *v)
{
	free(v->maps);
	v->maps = NULL;
}

static int take_view(pid_t pid, struct outside_view *v)
{
	static const char *const keys[] = { "State:",  "TracerPid:", "SigPnd:", "ShdPnd:",
					    "SigBlk:", "SigIgn:",    "SigCgt:" };
	char path[64], *status, *line, *save = NULL;
	size_t n = 0;
	int r;

	view_free(v);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	v->maps = h_read_file(path, NULL);
	if (!v->maps)
		return h_fail(-errno, "cannot read %s: %m", path);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	status = h_read_file(path, NULL);
	if (!status)
		return h_fail(-errno, "cannot read %s: %m", path);
	v->status[0] = '\0';
	for (line = strtok_r(status, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strncmp(line, keys[k], strlen(keys[k])) == 0 && n < sizeof(v->status))
				n += snprintf(v->status + n, sizeof(v->status) - n, "%s\n", line);
	free(status);
	r = tregs_read(pid, &v->regs);
	if (r == 0 && (!v->regs.gp_len || !v->regs.fp_len))
		r = h_fail(-EIO, "pid %d: empty register sets", (int)pid);
	return r;
}

/* Empty if equal, else what differs. */
static void compare_views(const struct outside_view *a, const struct outside_view *b, char *why, size_t len)
{
	size_t n = 0;

	why[0] = '\0';
	if (strcmp(a->maps, b->maps) != 0)
		n += snprintf(why + n, len - n, "maps differ:\n--- before\n%s--- after\n%s", a->maps, b->maps);
	if (n < len && strcmp(a->status, b->status) != 0)
		n += snprintf(why + n, len - n, "status differs:\n--- before\n%s--- after\n%s", a->status, b->status);
	if (n + 64 < len) {
		char *p = why + n;
		int k = snprintf(p, len - n, "registers: ");

		if (tregs_compare(&a->regs, &b->regs, p + k, len - n - k) == 0)
			*p = '\0';
	}
}

/*
 * Views taken until two in a row agree: right after ready, and right after
 * any ptrace stop (the dump's or our own register read), the workload may
 * still be on its way back into sigsuspend, running with its normal mask.
 */
static void take_stable_view(pid_t pid, struct outside_view *v)
{
	static struct outside_view prev;
	static char why[16384];

	H_OK(take_view(pid, &prev));
	for (int i = 0; i < 100; i++) {
		H_OK(take_view(pid, v));
		compare_views(&prev, v, why, sizeof(why));
		if (!why[0]) {
			view_free(&prev);
			return;
		}
		usleep(10 * 1000);
		H_OK(take_view(pid, &prev));
	}
	cr_assert_fail("pid %d never settled:\n%s", (int)pid, why);
}

Test(leave_running, process_unchanged)
{
	static struct outside_view before, after;
	static char why[65536];
	struct h_wl w = { .wake_signal = SIGUSR1 };
	char imgdir[PATH_MAX];

	H_OK(h_start(&w, "wl-sleep", suspend_args));
	take_stable_view(w.pid, &before);
	cr_assert(strstr(before.status, "TracerPid:\t0\n"), "traced before the dump:\n%s", before.status);

	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, SNAP_DUMP_LEAVE_RUNNING, NULL));
	take_stable_view(w.pid, &after);
	compare_views(&before, &after, why, sizeof(why));
	cr_assert(!why[0], "pid %d changed across the leave-running dump:\n%s", (int)w.pid, why);
	view_free(&before);
	view_free(&after);

	/* The original finishes its own check. */
	H_OK(h_finish(&w));
}

Test(leave_running, restore_while_original_runs)
{
	pid_t kids_before[64], kids_after[64];
	struct h_wl w = { .wake_signal = SIGUSR1 };
	char imgdir[PATH_MAX], go[PATH_MAX + 8];
	int n_before, n_after, r;
	snap_ctx *ctx;
	const char *err;

	H_OK(h_start(&w, "wl-sleep", suspend_args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, SNAP_DUMP_LEAVE_RUNNING, NULL));

	n_before = h_children(kids_before, 64);
	H_OK(h_ctx_new(&ctx));
	r = h_restore(&w, imgdir, ctx);
	err = snap_error(ctx);
	cr_assert(r < 0, "restore succeeded while the original pid %d still runs", (int)w.orig_pid);
	cr_log_info("restore refused as it should: %s", err);
	cr_assert(contains_number(err, w.orig_pid), "snap_error does not name pid %d: \"%s\"", (int)w.orig_pid, err);
	cr_expect(contains_word(err, "use") || contains_word(err, "exist") || contains_word(err, "busy"),
		  "snap_error does not say the pid is taken: \"%s\"", err);
	snap_ctx_free(ctx);
	n_after = h_children(kids_after, 64);
	cr_assert(n_before == n_after && !memcmp(kids_before, kids_after, n_after * sizeof(pid_t)),
		  "the failed restore left a new child behind (%d children before, %d after)", n_before, n_after);
	cr_assert(kill(w.orig_pid, 0) == 0, "the original died during the failed restore");

	H_OK(h_finish(&w));

	/* With the pid free again, the same images restore and pass the check. */
	snprintf(go, sizeof(go), "%s/go", w.ctldir);
	cr_assert(unlink(go) == 0, "unlink(%s): %m", go);
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
}
