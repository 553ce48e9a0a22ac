/*
 * Workload: unix sockets. Stream, seqpacket and datagram socketpairs with
 * data queued both ways; a path listener with an accepted connection
 * (data both ways) and one waiting to be accepted; an abstract datagram
 * server holding messages from a named, an unnamed and a connected sender;
 * a pair shut down one way, a socket whose peer was closed, a socket bound
 * to a path that was then removed, SO_PASSCRED and SO_PEEK_OFF.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "wl.h"

#define BULK 100000
#define BACK 5000
#define RESP 10000

static int st[2], sq[2], dg[2], lsn, cli, acc, waiting, srv, named_cli, unnamed_cli, conn_cli, sh[2], pc, gone;
static char lpath[PATH_MAX], gpath[PATH_MAX];
static struct sockaddr_un srv_addr, cli_addr;
static socklen_t srv_len, cli_len;
static uint8_t buf[BULK + 64];
static const size_t seq_sizes[] = { 1, 100, 3000, 65000 };

static void must(bool ok, const char *what)
{
	if (!ok)
		wl_die("%s: %m", what);
}

static socklen_t abstract(struct sockaddr_un *sa, const char *tag)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "wl-files-unix-%s-%d", tag, (int)getpid());
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static socklen_t path_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static void send_seeded(int fd, size_t len, uint64_t seed)
{
	wl_fill(buf, len, seed);
	must(send(fd, buf, len, 0) == (ssize_t)len, "send");
}

static void setup(void)
{
	struct sockaddr_un sa;
	socklen_t len;
	int one = 1, peek = 3, p[2];

	signal(SIGPIPE, SIG_IGN);

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, st) == 0, "socketpair stream");
	must(send(st[0], "hello ", 6, 0) == 6 && send(st[0], "world", 5, 0) == 5, "send");
	send_seeded(st[0], BULK, 21);
	send_seeded(st[1], BACK, 22);
	must(setsockopt(st[0], SOL_SOCKET, SO_PEEK_OFF, &peek, sizeof(peek)) == 0, "SO_PEEK_OFF");

	must(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) == 0, "socketpair seqpacket");
	for (size_t i = 0; i < sizeof(seq_sizes) / sizeof(seq_sizes[0]); i++) {
		send_seeded(sq[0], seq_sizes[i], 30 + i);
		send_seeded(sq[1], seq_sizes[i] + 1, 40 + i);
	}

	must(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) == 0, "socketpair dgram");
	send_seeded(dg[0], 10, 51);
	send_seeded(dg[0], 2000, 52);
	send_seeded(dg[1], 7, 53);

	/* A path listener: one connection accepted, one waiting. */
	wl_path(lpath, "l.sock");
	lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	must(lsn >= 0 && bind(lsn, (struct sockaddr *)&sa, path_addr(&sa, lpath)) == 0 && listen(lsn, 7) == 0,
	     "listener");
	cli = socket(AF_UNIX, SOCK_STREAM, 0);
	must(cli >= 0 && connect(cli, (struct sockaddr *)&sa, path_addr(&sa, lpath)) == 0, "connect");
	acc = accept(lsn, NULL, NULL);
	must(acc >= 0, "accept");
	must(send(cli, "request", 7, 0) == 7, "send");
	send_seeded(acc, RESP, 61);
	waiting = socket(AF_UNIX, SOCK_STREAM, 0);
	must(waiting >= 0 && connect(waiting, (struct sockaddr *)&sa, path_addr(&sa, lpath)) == 0, "connect");

	/* An abstract datagram server and its senders. */
	srv_len = abstract(&srv_addr, "srv");
	srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	must(srv >= 0 && bind(srv, (struct sockaddr *)&srv_addr, srv_len) == 0, "bind srv");
	must(setsockopt(srv, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED");
	cli_len = abstract(&cli_addr, "cli");
	named_cli = socket(AF_UNIX, SOCK_DGRAM, 0);
	must(named_cli >= 0 && bind(named_cli, (struct sockaddr *)&cli_addr, cli_len) == 0, "bind cli");
	wl_fill(buf, 300, 71);
	must(sendto(named_cli, buf, 300, 0, (struct sockaddr *)&srv_addr, srv_len) == 300, "sendto");
	unnamed_cli = socket(AF_UNIX, SOCK_DGRAM, 0);
	wl_fill(buf, 40, 72);
	must(unnamed_cli >= 0 && sendto(unnamed_cli, buf, 40, 0, (struct sockaddr *)&srv_addr, srv_len) == 40,
	     "sendto");
	wl_fill(buf, 500, 73);
	must(sendto(named_cli, buf, 500, 0, (struct sockaddr *)&srv_addr, srv_len) == 500, "sendto");
	conn_cli = socket(AF_UNIX, SOCK_DGRAM, 0);
	must(conn_cli >= 0 && connect(conn_cli, (struct sockaddr *)&srv_addr, srv_len) == 0, "connect dgram");

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sh) == 0, "socketpair");
	must(send(sh[0], "bye", 3, 0) == 3 && shutdown(sh[0], SHUT_WR) == 0, "shutdown");

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0, "socketpair");
	must(send(p[1], "last", 4, 0) == 4, "send");
	close(p[1]);
	pc = p[0];

	wl_path(gpath, "gone.sock");
	gone = socket(AF_UNIX, SOCK_DGRAM, 0);
	must(gone >= 0 && bind(gone, (struct sockaddr *)&sa, path_addr(&sa, gpath)) == 0 && unlink(gpath) == 0, "gone");
	len = sizeof(sa);
	must(getsockname(gone, (struct sockaddr *)&sa, &len) == 0, "getsockname");
}

static void recv_exact(int fd, size_t len, uint64_t seed, const char *what)
{
	size_t got = 0;

	memset(buf, 0, len);
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, MSG_DONTWAIT);

		if (n <= 0) {
			wl_fail("%s: recv returned %zd after %zu of %zu bytes: %m", what, n, got, len);
			return;
		}
		got += (size_t)n;
	}
	wl_expect_data(what, buf, len, seed);
}

/* One message of exactly @len bytes (boundaries kept). */
static void recv_msg(int fd, size_t len, uint64_t seed, const char *what, struct sockaddr_un *from, socklen_t *flen)
{
	ssize_t n;

	memset(buf, 0, sizeof(buf));
	n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)from, flen);
	wl_expect(n == (ssize_t)len, "%s: message of %zd bytes, expected %zu (%m)", what, n, len);
	if (n == (ssize_t)len)
		wl_expect_data(what, buf, len, seed);
}

static bool same_addr(const struct sockaddr_un *a, socklen_t alen, const struct sockaddr_un *b, socklen_t blen)
{
	return alen == blen && !memcmp(a, b, alen);
}

static void check(void)
{
	struct sockaddr_un sa, from;
	struct pollfd pfd;
	socklen_t len, flen;
	char small[16];
	int v = -1, c, extra;

	/* Stream pair: SO_PEEK_OFF first, then the bytes in order, both ways. */
	len = sizeof(v);
	wl_expect(getsockopt(st[0], SOL_SOCKET, SO_PEEK_OFF, &v, &len) == 0 && v == 3, "SO_PEEK_OFF is %d, expected 3",
		  v);
	wl_expect(recv(st[1], small, 11, MSG_DONTWAIT) == 11 && !memcmp(small, "hello world", 11),
		  "stream: the first bytes are wrong");
	recv_exact(st[1], BULK, 21, "stream, one way");
	recv_exact(st[0], BACK, 22, "stream, other way");
	wl_expect(recv(st[1], small, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "stream: more data than sent");

	for (size_t i = 0; i < sizeof(seq_sizes) / sizeof(seq_sizes[0]); i++) {
		recv_msg(sq[1], seq_sizes[i], 30 + i, "seqpacket, one way", NULL, NULL);
		recv_msg(sq[0], seq_sizes[i] + 1, 40 + i, "seqpacket, other way", NULL, NULL);
	}
	recv_msg(dg[1], 10, 51, "dgram pair, first", NULL, NULL);
	recv_msg(dg[1], 2000, 52, "dgram pair, second", NULL, NULL);
	recv_msg(dg[0], 7, 53, "dgram pair, other way", NULL, NULL);

	/* The accepted connection: names, data both ways. */
	len = sizeof(sa);
	wl_expect(getsockname(acc, (struct sockaddr *)&sa, &len) == 0 && !strcmp(sa.sun_path, lpath),
		  "accepted socket: name \"%s\", expected the listener's", sa.sun_path);
	len = sizeof(sa);
	wl_expect(getpeername(cli, (struct sockaddr *)&sa, &len) == 0 && !strcmp(sa.sun_path, lpath),
		  "client: peer \"%s\", expected the listener", sa.sun_path);
	wl_expect(recv(acc, small, 7, MSG_DONTWAIT) == 7 && !memcmp(small, "request", 7), "accepted: request lost");
	recv_exact(cli, RESP, 61, "accepted, response");
	/* The waiting one is accepted now, and is connected to its client. */
	pfd = (struct pollfd){ .fd = lsn, .events = POLLIN };
	c = poll(&pfd, 1, 10000) == 1 ? accept(lsn, NULL, NULL) : -1;
	wl_expect(c >= 0, "the waiting connection is gone: %m");
	if (c >= 0) {
		wl_expect(send(waiting, "late", 4, 0) == 4 && recv(c, small, 4, 0) == 4 && !memcmp(small, "late", 4),
			  "the waiting connection does not reach its client");
		close(c);
	}
	extra = socket(AF_UNIX, SOCK_STREAM, 0);
	wl_expect(connect(extra, (struct sockaddr *)&sa, path_addr(&sa, lpath)) == 0,
		  "listener refuses connections: %m");
	close(extra);

	/* The datagram server: messages in order with their senders. */
	len = sizeof(v);
	wl_expect(getsockopt(srv, SOL_SOCKET, SO_PASSCRED, &v, &len) == 0 && v == 1, "SO_PASSCRED lost");
	flen = sizeof(from);
	recv_msg(srv, 300, 71, "dgram from a named sender", &from, &flen);
	wl_expect(same_addr(&from, flen, &cli_addr, cli_len), "first datagram: wrong sender");
	flen = sizeof(from);
	recv_msg(srv, 40, 72, "dgram from an unnamed sender", &from, &flen);
	wl_expect(flen <= sizeof(sa_family_t), "second datagram: sender has a name (%u bytes)", flen);
	flen = sizeof(from);
	recv_msg(srv, 500, 73, "dgram from a named sender", &from, &flen);
	wl_expect(same_addr(&from, flen, &cli_addr, cli_len), "third datagram: wrong sender");
	wl_expect(recv(srv, small, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "dgram server: more messages than sent");
	len = sizeof(sa);
	wl_expect(getpeername(conn_cli, (struct sockaddr *)&sa, &len) == 0 && same_addr(&sa, len, &srv_addr, srv_len),
		  "connected datagram socket: wrong peer");
	wl_expect(send(conn_cli, "hi", 2, 0) == 2 && recv(srv, small, 2, MSG_DONTWAIT) == 2 && !memcmp(small, "hi", 2),
		  "connected datagram socket does not reach the server");

	wl_expect(recv(sh[1], small, 3, MSG_DONTWAIT) == 3 && !memcmp(small, "bye", 3), "shut down pair: data lost");
	wl_expect(recv(sh[1], small, 1, MSG_DONTWAIT) == 0, "shut down pair: no end of file after the data");
	wl_expect(send(sh[0], "x", 1, MSG_DONTWAIT) < 0 && errno == EPIPE, "shut down pair: could still send");
	wl_expect(send(sh[1], "y", 1, MSG_DONTWAIT) == 1 && recv(sh[0], small, 1, MSG_DONTWAIT) == 1,
		  "shut down pair: the other way is closed too");

	wl_expect(recv(pc, small, 4, MSG_DONTWAIT) == 4 && !memcmp(small, "last", 4), "closed peer: data lost");
	wl_expect(recv(pc, small, 1, MSG_DONTWAIT) == 0, "closed peer: no end of file");
	wl_expect(send(pc, "x", 1, MSG_DONTWAIT) < 0 && errno == EPIPE, "closed peer: could still send");

	len = sizeof(sa);
	wl_expect(getsockname(gone, (struct sockaddr *)&sa, &len) == 0 && !strcmp(sa.sun_path, gpath),
		  "socket of a removed path: name \"%s\"", sa.sun_path);
	wl_expect(access(gpath, F_OK) && errno == ENOENT, "%s exists again", gpath);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "");
	setup();
	wl_ready();
	wl_wait_go();
	check();
	return wl_finish();
}
