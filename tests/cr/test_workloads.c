/* Each workload once untouched (its check must pass as is) and once dumped, restored and checked. */
#include <signal.h>
#include <stdlib.h>

#include "crtest.h"

H_SUITE(workloads);

static const char *const poll_args[] = { "poll", NULL };
static const char *const suspend_args[] = { "suspend", NULL };

Test(workloads, heap_nocr)
{
	H_OK(h_run_nocr("wl-heap", NULL, 0));
}

Test(workloads, heap_cr)
{
	H_OK(h_run_cr("wl-heap", NULL, 0));
}

Test(workloads, static_nocr)
{
	H_OK(h_run_nocr("wl-static", NULL, 0));
}

Test(workloads, static_cr)
{
	H_OK(h_run_cr("wl-static", NULL, 0));
}

Test(workloads, cow_nocr)
{
	H_OK(h_run_nocr("wl-cow", NULL, 0));
}

Test(workloads, cow_cr)
{
	H_OK(h_run_cr("wl-cow", NULL, 0));
}

Test(workloads, prot_nocr)
{
	H_OK(h_run_nocr("wl-prot", NULL, 0));
}

Test(workloads, prot_cr)
{
	H_OK(h_run_cr("wl-prot", NULL, 0));
}

Test(workloads, sleep_poll_nocr)
{
	H_OK(h_run_nocr("wl-sleep", poll_args, 0));
}

Test(workloads, sleep_poll_cr)
{
	H_OK(h_run_cr("wl-sleep", poll_args, 0));
}

Test(workloads, sleep_suspend_nocr)
{
	H_OK(h_run_nocr("wl-sleep", suspend_args, SIGUSR1));
}

Test(workloads, sleep_suspend_cr)
{
	H_OK(h_run_cr("wl-sleep", suspend_args, SIGUSR1));
}

/* The fd offset of stdout must survive: the file then reads exactly "before\nafter\n". */
static void run_stdout(bool cr)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], *out;
	size_t len;

	H_OK(h_start(&w, "wl-stdout", NULL));
	if (cr) {
		H_OK(h_tmpdir(imgdir, "img"));
		H_OK(h_dump(&w, imgdir, 0, NULL));
		H_OK(h_restore(&w, imgdir, NULL));
	}
	H_OK(h_finish(&w));
	out = h_read_ctl(&w, "stdout", &len);
	cr_assert(out != NULL, "cannot read the workload's stdout");
	cr_expect_str_eq(out, "before\nafter\n", "stdout holds \"%s\"", out);
	free(out);
}

Test(workloads, stdout_nocr)
{
	run_stdout(false);
}

Test(workloads, stdout_cr)
{
	run_stdout(true);
}
