/*
 * TCP with the peer outside the dump: the test itself holds the other end
 * on 127.0.0.1. With --tcp-established the connection lives through dump
 * and restore without the peer seeing anything; with --tcp-close the peer
 * sees it end and the restored application connects again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"

H_SUITE(files_tcp);

#define CLIENT_IN  1000
#define CLIENT_OUT 2000

/* The stream of the workloads' wl_fill(): word i of seed s is splitmix64's output for s + (i + 1) * gamma. */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = seed + (i / 8 + 1) * 0x9e3779b97f4a7c15ull;

		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		x ^= x >> 31;
		memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
	}
}

static int listen_loopback(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0, "listen: %m");
	cr_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static int accept_within(int lsn, int ms)
{
	struct pollfd pfd = { .fd = lsn, .events = POLLIN };
	int fd;

	cr_assert(poll(&pfd, 1, ms) == 1, "nobody connected within %d ms", ms);
	fd = accept4(lsn, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(fd >= 0, "accept: %m");
	return fd;
}

static void recv_exactly(int fd, void *buf, size_t len, const char *what)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		cr_assert(poll(&pfd, 1, 10000) == 1, "%s: nothing within 10 s (%zu of %zu bytes)", what, got, len);
		n = recv(fd, (char *)buf + got, len - got, 0);
		cr_assert(n > 0, "%s: recv returned %zd after %zu of %zu bytes: %s", what, n, got, len,
			  n < 0 ? strerror(errno) : "end of stream");
		got += (size_t)n;
	}
}

/*
 * Starts the workload as a client of ours, takes its first 2000 bytes and
 * answers "hello" and 1000 bytes, then waits until the workload's kernel
 * has acknowledged them: they sit in its receive queue across the dump.
 */
static int start_client(struct h_wl *w, const char *mode, int lsn, int port)
{
	char portstr[16];
	const char *args[] = { mode, portstr, NULL };
	uint8_t got[CLIENT_OUT], want[CLIENT_OUT], out[CLIENT_IN];
	int conn, outq = -1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	H_OK(h_start(w, "wl-files-tcp", args));
	conn = accept_within(lsn, 10000);
	recv_exactly(conn, got, CLIENT_OUT, "the client's first data");
	fill(want, CLIENT_OUT, 93);
	cr_assert(!memcmp(got, want, CLIENT_OUT), "the client's first data is wrong");
	fill(out, CLIENT_IN, 94);
	cr_assert(send(conn, "hello", 5, 0) == 5 && send(conn, out, CLIENT_IN, 0) == CLIENT_IN, "send: %m");
	for (int i = 0; i < 10000 && outq; i++) {
		cr_assert(ioctl(conn, SIOCOUTQ, &outq) == 0, "SIOCOUTQ: %m");
		if (outq)
			usleep(1000);
	}
	cr_assert(outq == 0, "the workload did not acknowledge our data");
	return conn;
}

static void expect_untouched(int conn)
{
	struct pollfd pfd = { .fd = conn, .events = POLLIN | POLLRDHUP };
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	/* Nothing arrived while the process was gone: no data, no FIN, no reset. */
	cr_assert(poll(&pfd, 1, 0) == 0, "the peer saw something during the dump (revents 0x%x)", pfd.revents);
	cr_assert(getsockopt(conn, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_ESTABLISHED,
		  "the peer's connection is in state %u", ti.tcpi_state);
}

static void run_established(bool cr)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], ping[4];
	int port, lsn = listen_loopback(&port), conn;

	conn = start_client(&w, "client", lsn, port);
	if (cr) {
		H_OK(h_tmpdir(imgdir, "img"));
		H_OK(h_dump(&w, imgdir, SNAP_DUMP_TCP_ESTABLISHED, NULL));
		expect_untouched(conn);
		H_OK(h_restore(&w, imgdir, NULL));
	}
	H_OK(h_go(&w));
	recv_exactly(conn, ping, 4, "ping");
	cr_assert(!memcmp(ping, "ping", 4), "the restored client sent \"%.4s\"", ping);
	cr_assert(send(conn, "pong", 4, 0) == 4, "send pong: %m");
	H_OK(h_expect_exit_ok(&w));
	close(conn);
	close(lsn);
}

Test(files_tcp, established_outside_nocr)
{
	run_established(false);
}

Test(files_tcp, established_outside_cr)
{
	run_established(true);
}

static void run_reconnect(bool cr)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], mark[PATH_MAX + 32], again[5], c;
	int port, lsn = listen_loopback(&port), conn, conn2;
	struct pollfd pfd;

	conn = start_client(&w, "reconnect", lsn, port);
	if (cr) {
		H_OK(h_tmpdir(imgdir, "img"));
		H_OK(h_dump(&w, imgdir, SNAP_DUMP_TCP_CLOSE, NULL));
		/* Dumped closed: the process went away, and so did its end of the connection. */
		pfd = (struct pollfd){ .fd = conn, .events = POLLIN };
		cr_assert(poll(&pfd, 1, 10000) == 1 && recv(conn, &c, 1, MSG_DONTWAIT) <= 0,
			  "the connection did not end with the dumped process");
		H_OK(h_restore(&w, imgdir, NULL));
		snprintf(mark, sizeof(mark), "%s/expect-closed", w.ctldir);
		cr_assert(close(open(mark, O_WRONLY | O_CREAT, 0600)) == 0, "cannot create %s", mark);
	}
	H_OK(h_go(&w));
	conn2 = accept_within(lsn, 10000);
	recv_exactly(conn2, again, 5, "the reconnected client");
	cr_assert(!memcmp(again, "again", 5), "the reconnected client sent \"%.5s\"", again);
	cr_assert(send(conn2, "ok", 2, 0) == 2, "send: %m");
	H_OK(h_expect_exit_ok(&w));
	close(conn2);
	close(conn);
	close(lsn);
}

Test(files_tcp, close_outside_nocr)
{
	run_reconnect(false);
}

Test(files_tcp, close_outside_cr)
{
	run_reconnect(true);
}

/* The same through snapcr: --tcp-established reaches the library, and without it the dump is refused. */
Test(files_tcp, established_outside_snapcr)
{
	struct h_wl w = { 0 };
	char work[PATH_MAX], imgdir[PATH_MAX + 8], pid[16], pidfile[PATH_MAX + 16], out[PATH_MAX + 16],
		errf[PATH_MAX + 16], ping[4], *err, *txt;
	const char *dump_plain[] = { h_snapcr_path(), "dump", "-t", pid, "-D", imgdir, NULL };
	const char *dump[] = { h_snapcr_path(), "dump", "-t", pid, "-D", imgdir, "--tcp-established", NULL };
	const char *restore[] = { h_snapcr_path(), "restore", "-D", imgdir, "-d", "--pidfile", pidfile, NULL };
	int port, lsn = listen_loopback(&port), conn, status;

	conn = start_client(&w, "client", lsn, port);
	H_OK(h_tmpdir(work, "cli"));
	snprintf(imgdir, sizeof(imgdir), "%s/img", work);
	snprintf(pidfile, sizeof(pidfile), "%s/pid", work);
	snprintf(out, sizeof(out), "%s/out", work);
	snprintf(errf, sizeof(errf), "%s/err", work);
	snprintf(pid, sizeof(pid), "%d", (int)w.pid);

	H_OK(h_run_cmd(dump_plain, out, errf, 60000, &status));
	err = h_read_file(errf, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "snapcr dump without --tcp-established succeeded");
	cr_assert(err && strstr(err, "--tcp-established"), "snapcr does not say what to do:\n%s", err ? err : "");
	free(err);
	expect_untouched(conn);

	H_OK(h_run_cmd(dump, out, errf, 60000, &status));
	err = h_read_file(errf, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "snapcr dump --tcp-established failed:\n%s",
		  err ? err : "");
	free(err);
	H_OK(h_wait_pid(w.pid, 10000, NULL));
	expect_untouched(conn);
	H_OK(h_run_cmd(restore, out, errf, 60000, &status));
	err = h_read_file(errf, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "snapcr restore failed:\n%s", err ? err : "");
	free(err);
	txt = h_read_file(pidfile, NULL);
	cr_assert(txt && atoi(txt) == w.orig_pid, "restored pid %s, expected %d", txt ? txt : "?", (int)w.orig_pid);
	free(txt);
	w.pid = w.orig_pid;

	H_OK(h_go(&w));
	recv_exactly(conn, ping, 4, "ping");
	cr_assert(!memcmp(ping, "ping", 4), "the restored client sent \"%.4s\"", ping);
	cr_assert(send(conn, "pong", 4, 0) == 4, "send pong: %m");
	H_OK(h_expect_exit_ok(&w));
	close(conn);
	close(lsn);
}
