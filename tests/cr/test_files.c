/* Every kind of file descriptor, with its data: each workload once untouched and once dumped, restored and checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "crtest.h"
#include "sockdiag.h"

H_SUITE(files);

/* Checks from outside what the workload cannot see itself, such as a listener's backlog. */
typedef void (*outside_check_fn)(const struct h_wl *w);

/* Start, dump with @flags, restore, (mark the connection expected closed,) go, exit 0. */
static void run_cr_checked(const char *name, const char *const *args, unsigned flags, bool expect_closed,
			   outside_check_fn check)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], mark[PATH_MAX + 32];

	H_OK(h_start(&w, name, args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, flags, NULL));
	H_OK(h_restore(&w, imgdir, NULL));
	if (check)
		check(&w);
	if (expect_closed) {
		snprintf(mark, sizeof(mark), "%s/expect-closed", w.ctldir);
		cr_assert(close(open(mark, O_WRONLY | O_CREAT, 0600)) == 0, "cannot create %s", mark);
	}
	H_OK(h_finish(&w));
}

static void run_cr(const char *name, const char *const *args, unsigned flags, bool expect_closed)
{
	run_cr_checked(name, args, flags, expect_closed, NULL);
}

static void run_nocr_checked(const char *name, const char *const *args, outside_check_fn check)
{
	struct h_wl w = { 0 };

	H_OK(h_start(&w, name, args));
	check(&w);
	H_OK(h_finish(&w));
}

/* The TCP listener's backlog (13), as sock_diag reports it. */
static void check_tcp_backlog(const struct h_wl *w)
{
	struct inet_diag_table t = { 0 };
	char *port = h_read_ctl(w, "lsn-port", NULL);
	snap_ctx *ctx;
	bool found = false;

	cr_assert(port, "no lsn-port from the workload");
	H_OK(h_ctx_new(&ctx));
	cr_assert(sockdiag_inet_load(ctx, AF_INET, IPPROTO_TCP, &t) == 0, "sock_diag: %s", snap_error(ctx));
	for (size_t i = 0; i < t.nr; i++) {
		if (t.v[i].state != TCP_LISTEN || t.v[i].sport != atoi(port))
			continue;
		found = true;
		cr_expect(t.v[i].wqueue == 13, "the listener's backlog is %u, expected 13", t.v[i].wqueue);
	}
	cr_expect(found, "no listener on port %s", port);
	inet_diag_table_free(&t);
	snap_ctx_free(ctx);
	free(port);
}

/* The unix listener's backlog (7) and the one connection waiting on it. */
static void check_unix_backlog(const struct h_wl *w)
{
	struct unix_diag_table t = { 0 };
	char path[PATH_MAX + 16];
	snap_ctx *ctx;
	bool found = false;

	snprintf(path, sizeof(path), "%s/l.sock", w->ctldir);
	H_OK(h_ctx_new(&ctx));
	cr_assert(sockdiag_unix_load(ctx, &t) == 0, "sock_diag: %s", snap_error(ctx));
	for (size_t i = 0; i < t.nr; i++) {
		if (t.v[i].state != TCP_LISTEN || t.v[i].name_len != strlen(path) + 1 ||
		    memcmp(t.v[i].name, path, strlen(path)))
			continue;
		found = true;
		cr_expect(t.v[i].wqlen == 7, "the unix listener's backlog is %u, expected 7", t.v[i].wqlen);
		cr_expect(t.v[i].rqlen == 1 && t.v[i].nr_icons == 1,
			  "%u connections waiting on the unix listener, expected 1", t.v[i].rqlen);
	}
	cr_expect(found, "no unix listener at %s", path);
	unix_diag_table_free(&t);
	snap_ctx_free(ctx);
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

Test(files, reg_leave_running)
{
	run_leave_running("wl-files-reg", NULL, 0);
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
	run_nocr_checked("wl-files-unix", NULL, check_unix_backlog);
}

Test(files, unix_cr)
{
	run_cr_checked("wl-files-unix", NULL, 0, false, check_unix_backlog);
}

Test(files, unix_leave_running)
{
	run_leave_running("wl-files-unix", NULL, 0);
}

Test(files, event_nocr)
{
	H_OK(h_run_nocr("wl-files-event", NULL, 0));
}

/* Linux 6.1 does not show an eventfd's counter and mode in fdinfo: the dump refuses eventfds there (snapcr check says
 * so). */
static bool eventfd_fdinfo(void)
{
	char path[64], *text;
	int fd = eventfd(0, EFD_CLOEXEC);
	bool ok;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	text = h_read_file(path, NULL);
	ok = text && strstr(text, "eventfd-semaphore:");
	free(text);
	close(fd);
	return ok;
}

Test(files, event_cr)
{
	if (!eventfd_fdinfo())
		cr_skip_test("this kernel's fdinfo does not show an eventfd's counter and mode");
	run_cr("wl-files-event", NULL, 0, false);
}

Test(files, event_leave_running)
{
	if (!eventfd_fdinfo())
		cr_skip_test("this kernel's fdinfo does not show an eventfd's counter and mode");
	run_leave_running("wl-files-event", NULL, 0);
}

/* The shared eventfd and epoll sets need the eventfd's state in fdinfo (not in Linux 6.1): left out without. */
static const char *const *share_args(void)
{
	static const char *const no_eventfd[] = { "no-eventfd", NULL };

	return eventfd_fdinfo() ? NULL : no_eventfd;
}

Test(files, share_nocr)
{
	H_OK(h_run_nocr("wl-files-share", share_args(), 0));
}

/* A tree sharing pipes, a socketpair, a file offset, an eventfd and epoll, a listener of 3 workers. */
Test(files, share_cr)
{
	run_cr("wl-files-share", share_args(), 0, false);
}

/* Dumping a tree's shared pipes and sockets takes nothing from them. */
Test(files, share_leave_running)
{
	run_leave_running("wl-files-share", share_args(), 0);
}

Test(files, tcp_listen_nocr)
{
	run_nocr_checked("wl-files-tcp", listen_args, check_tcp_backlog);
}

Test(files, tcp_listen_cr)
{
	run_cr_checked("wl-files-tcp", listen_args, 0, false, check_tcp_backlog);
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
