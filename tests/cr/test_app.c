/*
 * The in-process API (snap/app.h): callbacks around external dumps,
 * their time limit and refusal, self-checkpoint from C and from Python,
 * and what two copies of one snapshot read from their random sources.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"

H_SUITE(app);

static const char *const plain[] = { "plain", NULL };
static const char *const hang[] = { "hang", NULL };
static const char *const refuse[] = { "refuse", NULL };
static const char *const memfd[] = { "memfd", NULL };
static const char *const slowafter[] = { "slowafter", NULL };
static const char *const plain_twice[] = { "plain", "2", NULL };

Test(app, hooks_nocr)
{
	H_OK(h_run_nocr("wl-app-hooks", plain, 0));
}

/* Before-checkpoint callbacks in order before the freeze; after-restore ones before any other thread runs. */
Test(app, hooks_cr)
{
	H_OK(h_run_cr("wl-app-hooks", plain, 0));
}

/* A restored copy is registered still (its block kept its name): a second dump runs its callbacks again. */
Test(app, hooks_cr_twice)
{
	char img1[PATH_MAX], img2[PATH_MAX];
	struct h_wl w = { 0 };

	H_OK(h_tmpdir(img1, "img1"));
	H_OK(h_tmpdir(img2, "img2"));
	H_OK(h_start(&w, "wl-app-hooks", plain_twice));
	H_OK(h_dump(&w, img1, 0, NULL));
	H_OK(h_restore(&w, img1, NULL));
	H_OK(h_dump(&w, img2, 0, NULL));
	H_OK(h_restore(&w, img2, NULL));
	H_OK(h_finish(&w));
}

/* The original goes on after a --leave-running dump with SNAP_APP_AFTER_CONTINUE, a copy with AFTER_RESTORE. */
Test(app, hooks_leave_running)
{
	struct h_wl w = { 0 };
	char img[PATH_MAX], go[PATH_MAX + 8];

	H_OK(h_tmpdir(img, "img"));
	H_OK(h_start(&w, "wl-app-hooks", plain));
	H_OK(h_dump(&w, img, SNAP_DUMP_LEAVE_RUNNING, NULL));
	H_OK(h_finish(&w));
	/* The copy waits for go again: it was dumped before go existed. */
	snprintf(go, sizeof(go), "%s/go", w.ctldir);
	cr_assert(unlink(go) == 0, "cannot remove %s: %m", go);
	H_OK(h_restore(&w, img, NULL));
	H_OK(h_finish(&w));
}

/* A dump that fails in the callbacks leaves the process running, and its after-restore callbacks then run. */
static void expect_dump_refused(const char *const *args, int want, const char *words)
{
	struct h_wl w = { 0 };
	char img[PATH_MAX];
	snap_ctx *ctx;
	int r;

	H_OK(h_tmpdir(img, "img"));
	H_OK(h_ctx_new(&ctx));
	H_OK(h_start(&w, "wl-app-hooks", args));
	r = h_dump(&w, img, 0, ctx);
	cr_assert(r == want, "dump returned %d, expected %d: %s", r, want, h_error());
	cr_assert(strstr(snap_error(ctx), words), "message \"%s\" lacks \"%s\"", snap_error(ctx), words);
	cr_assert(kill(w.pid, 0) == 0, "the process is gone after a refused dump");
	snap_ctx_free(ctx);
	H_OK(h_finish(&w));
}

Test(app, before_checkpoint_time_limit)
{
	expect_dump_refused(hang, -ETIMEDOUT, "did not finish within 500 ms");
}

Test(app, before_checkpoint_refused)
{
	expect_dump_refused(refuse, -ECANCELED, "callback #2 refused the checkpoint (returned 7)");
}

/* An after-restore callback past its time limit: the restore goes on and lets the other threads run. */
Test(app, after_restore_time_limit)
{
	char img[PATH_MAX];
	struct h_wl w = { 0 };

	H_OK(h_tmpdir(img, "img"));
	H_OK(h_start(&w, "wl-app-hooks", slowafter));
	H_OK(h_dump(&w, img, 0, NULL));
	H_OK(h_restore(&w, img, NULL));
	H_OK(h_finish(&w));
}

/* A memfd mapped shared is dumped as shared memory, but not one that is also open as an fd. */
Test(app, memfd_mapped_and_open_refused)
{
	expect_dump_refused(memfd, -EOPNOTSUPP, "is also open as fd");
}

/* The lines the restored copies of wl-app-self appended: "getrandom vdso prng-reseeded prng-stale". */
struct unique_line {
	char sys[64], vdso[64], reseeded[32], stale[32];
};

static int read_unique(const struct h_wl *w, struct unique_line *l, int max)
{
	char *s = h_read_ctl(w, "unique.log", NULL), *p = s;
	int n = 0;

	cr_assert(s, "no unique.log");
	while (n < max && sscanf(p, "%63s %63s %31s %31s", l[n].sys, l[n].vdso, l[n].reseeded, l[n].stale) == 4) {
		n++;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	free(s);
	return n;
}

/*
 * snap_app_checkpoint returns ORIGINAL in the original, RESTORED in each
 * copy (the workloads check). Two copies of the snapshot must read
 * different bytes from getrandom() and from the vDSO's getrandom; a PRNG
 * seeded before the snapshot repeats itself unless an after-restore
 * callback reseeds it.
 */
Test(app, self_checkpoint_two_copies)
{
	struct unique_line l[2];
	char img[PATH_MAX + 8];
	struct h_wl w = { 0 };

	H_OK(h_start(&w, "wl-app-self", NULL));
	H_OK(h_finish(&w));
	snprintf(img, sizeof(img), "%s/img", w.ctldir);
	for (int i = 0; i < 2; i++) {
		H_OK(h_restore(&w, img, NULL));
		H_OK(h_expect_exit_ok(&w));
	}
	cr_assert(read_unique(&w, l, 2) == 2, "expected two lines in unique.log");
	cr_assert(strcmp(l[0].sys, l[1].sys), "two copies read the same getrandom() bytes %s", l[0].sys);
	if (strcmp(l[0].vdso, "none"))
		cr_assert(strcmp(l[0].vdso, l[1].vdso), "two copies read the same vDSO getrandom bytes %s", l[0].vdso);
	else
		/* Not cr_log_warn: a warning makes the Criterion run exit 1 with every test passed. */
		cr_log_info("no vDSO getrandom on this kernel (6.11+): that half is skipped");
	cr_assert(strcmp(l[0].reseeded, l[1].reseeded), "the reseeded PRNG repeats itself: %s", l[0].reseeded);
	/* What the callbacks are for: without one, state seeded before the snapshot is the same in every copy. */
	cr_assert(!strcmp(l[0].stale, l[1].stale), "the PRNG not reseeded differs (%s, %s): the test has no point",
		  l[0].stale, l[1].stale);
}

/* tests/python/app_demo.py: the same through ctypes from Debian's python3. */
Test(app, python_demo)
{
	char dir[PATH_MAX], img[PATH_MAX + 8], out[PATH_MAX + 16], err[PATH_MAX + 16], log[PATH_MAX + 16];
	const char *argv[] = { "/usr/bin/python3", SNAP_TEST_PYTHON_DEMO, SNAP_TEST_LIBSNAP_SO, img, log, NULL };
	struct h_wl w = { .name = "app_demo.py", .exit_timeout_ms = H_EXIT_TIMEOUT_MS };
	snap_ctx *ctx;
	char *s;
	int status;

	if (access("/usr/bin/python3", X_OK))
		cr_skip_test("no /usr/bin/python3");
	H_OK(h_tmpdir(dir, "py"));
	snprintf(w.ctldir, sizeof(w.ctldir), "%s", dir);
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(out, sizeof(out), "%s/stdout", dir);
	snprintf(err, sizeof(err), "%s/stderr", dir);
	snprintf(log, sizeof(log), "%s/demo.log", dir);
	H_OK(h_run_cmd(argv, out, err, 60000, &status));
	s = h_read_file(err, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the demo failed (status 0x%x): %s", status,
		  s ? s : "");
	free(s);
	s = h_read_file(log, NULL);
	cr_assert(s && !strcmp(s, "before\nafter continue\noriginal\n"), "original logged \"%s\"", s ? s : "");
	free(s);

	/* The restored copy is the demo itself, as the original pid. */
	s = h_read_file(out, NULL);
	cr_assert(s && sscanf(s, "pid %d", &w.orig_pid) == 1, "the demo printed no pid: \"%s\"", s ? s : "");
	free(s);
	H_OK(h_ctx_new(&ctx));
	H_OK(h_restore(&w, img, ctx));
	H_OK(h_expect_exit_ok(&w));
	snap_ctx_free(ctx);
	s = h_read_file(log, NULL);
	cr_assert(s && !strcmp(s, "before\nafter continue\noriginal\nafter restore 1\nrestored\n"),
		  "the restored copy logged \"%s\"", s ? s : "");
	free(s);
}
