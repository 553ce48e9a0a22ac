/*
 * File descriptors the engine cannot restore are refused at dump with a
 * message naming the pid, the fd and what it is, leaving the process as it
 * was; files that changed or vanished since the dump fail the restore with
 * a message naming them, before any process exists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(files_refusals);

/* Neither stopped nor traced: the refused dump let go of the process completely. */
static void expect_untouched(pid_t pid)
{
	char path[64], *status, *state, *tracer;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	status = h_read_file(path, NULL);
	cr_assert(status, "pid %d is gone after the refused dump", (int)pid);
	state = strstr(status, "\nState:\t");
	tracer = strstr(status, "\nTracerPid:\t");
	cr_assert(state && tracer, "unexpected %s", path);
	cr_expect(state[8] == 'S' || state[8] == 'R', "pid %d is left in state %c", (int)pid, state[8]);
	cr_expect(strncmp(tracer + 12, "0\n", 2) == 0, "pid %d is still traced after the refused dump", (int)pid);
	free(status);
}

/*
 * Dumps @name with @args and @flags, which must fail with a message that
 * holds the workload's pid and every one of @words; then the workload
 * checks that what was refused still works.
 */
static void expect_refused(const char *name, const char *const *args, unsigned flags, const char *const *words,
			   pid_t also_pid)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	const char *err;

	H_OK(h_start(&w, name, args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_ctx_new(&ctx));
	cr_assert(h_dump(&w, imgdir, flags, ctx) < 0, "the dump of %s %s succeeded", name, args[0]);
	err = snap_error(ctx);
	cr_log_info("refused as it should: %s", err);
	cr_expect(contains_number(err, w.pid), "snap_error does not name pid %d: \"%s\"", (int)w.pid, err);
	for (size_t i = 0; words[i]; i++)
		cr_expect(contains_word(err, words[i]), "snap_error does not say \"%s\": \"%s\"", words[i], err);
	if (also_pid)
		cr_expect(contains_number(err, also_pid), "snap_error does not name pid %d: \"%s\"", (int)also_pid,
			  err);
	snap_ctx_free(ctx);
	expect_untouched(w.pid);
	H_OK(h_finish(&w));
}

#define REFUSE(mode, ...)                                                       \
	Test(files_refusals, mode##_fd)                                         \
	{                                                                       \
		static const char *const args[] = { #mode, NULL };              \
		static const char *const words[] = { "fd", __VA_ARGS__, NULL }; \
		expect_refused("wl-files-refuse", args, 0, words, 0);           \
	}

REFUSE(io_uring, "io_uring")
REFUSE(bpf, "BPF")
REFUSE(perf, "perf")
REFUSE(userfaultfd, "userfaultfd")
REFUSE(fanotify, "fanotify")
REFUSE(pidfd, "pidfd")
REFUSE(netlink, "netlink")
REFUSE(packet, "packet")
REFUSE(tty, "terminal")
REFUSE(scm, "in flight")

Test(files_refusals, inotify_pending_events)
{
	static const char *const args[] = { "inotify-pending", NULL };
	static const char *const words[] = { "fd", "inotify", "not read", NULL };

	expect_refused("wl-files-refuse", args, 0, words, 0);
}

/* Without --tcp-established or --tcp-close an established connection is refused, by its addresses. */
Test(files_refusals, tcp_established_without_flags)
{
	static const char *const args[] = { "established", NULL };
	static const char *const words[] = { "fd", "TCP", "127.0.0.1", "established", "--tcp-established", NULL };

	expect_refused("wl-files-tcp", args, 0, words, 0);
}

/* A unix socket connected to a socket of ours (outside the dump): refused, naming us. */
Test(files_refusals, unix_peer_outside)
{
	static const char *const words[] = { "fd", "unix", "outside", NULL };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[PATH_MAX];
	const char *args[] = { "unix-outside", sa.sun_path, NULL };
	int lsn, conn;

	H_OK(h_tmpdir(dir, "peer"));
	cr_assert(strlen(dir) + 14 < sizeof(sa.sun_path), "temp dir %s too long for a socket name", dir);
	memcpy(sa.sun_path, dir, strlen(dir));
	memcpy(sa.sun_path + strlen(dir), "/outside.sock", 14);
	lsn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(lsn >= 0 && bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lsn, 1) == 0, "listen: %m");
	expect_refused("wl-files-refuse", args, 0, words, getpid());
	conn = accept(lsn, NULL, NULL);
	cr_assert(conn >= 0, "accept: %m");
	close(conn);
	close(lsn);
}

/* A FIFO another process (we) holds open too: its data and ends are shared with the outside. */
Test(files_refusals, fifo_held_outside)
{
	static const char *const words[] = { "fd", "FIFO", "outside", NULL };
	char dir[PATH_MAX], fifo[PATH_MAX + 16];
	const char *args[] = { "fifo-outside", fifo, NULL };
	int fd;

	H_OK(h_tmpdir(dir, "peer"));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert(mkfifo(fifo, 0600) == 0, "mkfifo: %m");
	fd = open(fifo, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0, "open: %m");
	expect_refused("wl-files-refuse", args, 0, words, getpid());
	close(fd);
}

/* A datagram from a socket outside the dump cannot be sent again by its sender: refused, naming the sender. */
Test(files_refusals, udp_datagram_from_outside)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static const char *const args[] = { "udp-outside", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], *port, from[32];
	socklen_t len = sizeof(sa);
	snap_ctx *ctx;
	const char *err;
	int u;

	H_OK(h_start(&w, "wl-files-refuse", args));
	port = h_read_ctl(&w, "udp-port", NULL);
	cr_assert(port, "no udp-port from the workload");
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(u >= 0 && bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		  getsockname(u, (struct sockaddr *)&sa, &len) == 0);
	snprintf(from, sizeof(from), "127.0.0.1:%d", ntohs(sa.sin_port));
	sa.sin_port = htons((uint16_t)atoi(port));
	free(port);
	cr_assert(sendto(u, "u", 1, 0, (struct sockaddr *)&sa, sizeof(sa)) == 1, "sendto: %m");
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_ctx_new(&ctx));
	cr_assert(h_dump(&w, imgdir, 0, ctx) < 0, "the dump succeeded");
	err = snap_error(ctx);
	cr_log_info("refused as it should: %s", err);
	cr_expect(contains_number(err, w.pid) && contains_word(err, "UDP") && contains_word(err, from),
		  "snap_error does not name pid %d, UDP and the sender %s: \"%s\"", (int)w.pid, from, err);
	snap_ctx_free(ctx);
	expect_untouched(w.pid);
	H_OK(h_finish(&w));
	close(u);
}

/* Restore must fail naming @file, leave no process, and work again once the file is as it was. */
static void expect_restore_fails(void (*change)(const char *ctldir), void (*undo)(const char *ctldir), const char *file,
				 const char *word)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t kids[8];
	snap_ctx *ctx;
	const char *err;

	H_OK(h_start(&w, "wl-files-reg", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	change(w.ctldir);
	H_OK(h_ctx_new(&ctx));
	cr_assert(h_restore(&w, imgdir, ctx) < 0, "the restore succeeded though %s changed", file);
	err = snap_error(ctx);
	cr_log_info("refused as it should: %s", err);
	cr_expect(contains_word(err, file), "snap_error does not name %s: \"%s\"", file, err);
	cr_expect(contains_word(err, word), "snap_error does not say \"%s\": \"%s\"", word, err);
	snap_ctx_free(ctx);
	cr_assert(kill(w.orig_pid, 0) == -1 && errno == ESRCH, "pid %d exists after the failed restore",
		  (int)w.orig_pid);
	cr_assert(h_children(kids, 8) == 0, "a process is left after the failed restore");
	undo(w.ctldir);
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
}

static void grow_data(const char *ctldir)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/data.txt", ctldir);
	fd = open(path, O_WRONLY | O_APPEND);
	cr_assert(fd >= 0 && write(fd, "more", 4) == 4 && close(fd) == 0, "cannot grow %s: %m", path);
}

static void shrink_data(const char *ctldir)
{
	char path[PATH_MAX + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data.txt", ctldir);
	cr_assert(stat(path, &st) == 0 && truncate(path, st.st_size - 4) == 0, "cannot shrink %s: %m", path);
}

static void hide_shared(const char *ctldir)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16];

	snprintf(from, sizeof(from), "%s/shared.txt", ctldir);
	snprintf(to, sizeof(to), "%s/shared.txt.away", ctldir);
	cr_assert(rename(from, to) == 0, "rename: %m");
}

static void unhide_shared(const char *ctldir)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16];

	snprintf(from, sizeof(from), "%s/shared.txt.away", ctldir);
	snprintf(to, sizeof(to), "%s/shared.txt", ctldir);
	cr_assert(rename(from, to) == 0, "rename: %m");
}

Test(files_refusals, restore_file_changed_size)
{
	expect_restore_fails(grow_data, shrink_data, "data.txt", "changed size");
}

Test(files_refusals, restore_file_vanished)
{
	expect_restore_fails(hide_shared, unhide_shared, "shared.txt", "no longer exists");
}
