/* Every kind of file descriptor, with its data: each workload once untouched and once dumped, restored and checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "crtest.h"

H_SUITE(files);

/* Start, dump with @flags, restore, (mark the connection expected closed,) go, exit 0. */
static void run_cr(const char *name, const char *const *args, unsigned flags, bool expect_closed)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], mark[PATH_MAX + 32];

	H_OK(h_start(&w, name, args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, flags, NULL));
	H_OK(h_restore(&w, imgdir, NULL));
	if (expect_closed) {
		snprintf(mark, sizeof(mark), "%s/expect-closed", w.ctldir);
		cr_assert(close(open(mark, O_WRONLY | O_CREAT, 0600)) == 0, "cannot create %s", mark);
	}
	H_OK(h_finish(&w));
}

/* A dump that leaves the process running must not take a byte from it: it then checks everything itself. */
static void run_leave_running(const char *name, const char *const *args, unsigned flags)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];

	H_OK(h_start(&w, name, args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, flags | SNAP_DUMP_LEAVE_RUNNING, NULL));
	H_OK(h_finish(&w));
}

static const char *const listen_args[] = { "listen", NULL };
static const char *const established_args[] = { "established", NULL };
static const char *const close_args[] = { "close", NULL };

Test(files, reg_nocr)
{
	H_OK(h_run_nocr("wl-files-reg", NULL, 0));
}

Test(files, reg_cr)
{
	run_cr("wl-files-reg", NULL, 0, false);
}

Test(files, pipe_nocr)
{
	H_OK(h_run_nocr("wl-files-pipe", NULL, 0));
}

Test(files, pipe_cr)
{
	run_cr("wl-files-pipe", NULL, 0, false);
}

Test(files, pipe_leave_running)
{
	run_leave_running("wl-files-pipe", NULL, 0);
}

Test(files, unix_nocr)
{
	H_OK(h_run_nocr("wl-files-unix", NULL, 0));
}

Test(files, unix_cr)
{
	run_cr("wl-files-unix", NULL, 0, false);
}

Test(files, unix_leave_running)
{
	run_leave_running("wl-files-unix", NULL, 0);
}

Test(files, event_nocr)
{
	H_OK(h_run_nocr("wl-files-event", NULL, 0));
}

Test(files, event_cr)
{
	run_cr("wl-files-event", NULL, 0, false);
}

Test(files, tcp_listen_nocr)
{
	H_OK(h_run_nocr("wl-files-tcp", listen_args, 0));
}

Test(files, tcp_listen_cr)
{
	run_cr("wl-files-tcp", listen_args, 0, false);
}

Test(files, tcp_established_nocr)
{
	H_OK(h_run_nocr("wl-files-tcp", established_args, 0));
}

Test(files, tcp_established_cr)
{
	run_cr("wl-files-tcp", established_args, SNAP_DUMP_TCP_ESTABLISHED, false);
}

/* Repair mode must be left again, the queues untouched, when the process runs on. */
Test(files, tcp_established_leave_running)
{
	run_leave_running("wl-files-tcp", established_args, SNAP_DUMP_TCP_ESTABLISHED);
}

Test(files, tcp_close_nocr)
{
	H_OK(h_run_nocr("wl-files-tcp", close_args, 0));
}

Test(files, tcp_close_cr)
{
	run_cr("wl-files-tcp", close_args, SNAP_DUMP_TCP_CLOSE, true);
}
