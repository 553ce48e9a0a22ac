/*
 * Workload: TCP and UDP sockets on the loopback.
 *   listen       listeners (IPv4 with SO_REUSEADDR and TCP_NODELAY, IPv6
 *                with IPV6_V6ONLY and SO_REUSEPORT), an unbound TCP socket
 *                with keepalive options, a bound and a connected UDP socket
 *   established  a connection with both ends in the process and data queued
 *                both ways, the sender's queue filled too (--tcp-established)
 *   close        the same connection, dumped with --tcp-close: it must come
 *                back closed, and reconnecting to the listener must work
 *   client PORT  a connection to a peer outside (the test, on 127.0.0.1:PORT):
 *                it sends 2000 bytes, the peer answers "hello" and 1000 bytes
 *                it reads only after go; then it sends "ping" and expects
 *                "pong" (--tcp-established)
 *   reconnect PORT  the same connection dumped with --tcp-close: after go it
 *                finds it closed, connects again and sends "again"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

#define BACK	   5000
#define CLIENT_IN  1000 /* the outside peer sent these, not read before the dump */
#define CLIENT_OUT 2000 /* sent to the outside peer before the dump */

static const char *mode;
static int lsn, lsn6, plain, udp_srv, udp_cli, udp_other, cli, acc, peer_port;
static struct sockaddr_in lsn_addr, udp_addr, udp_cli_addr, udp_other_addr, cli_addr, acc_addr;
static struct sockaddr_in6 lsn6_addr;
static size_t filled;
static uint8_t *big;
/* What TCP negotiated for the client's connection: options, window scales, MSS. */
static struct tcp_info cli_info;
static int cli_mss;

static void must(bool ok, const char *what)
{
	if (!ok)
		wl_die("%s: %m", what);
}

static struct sockaddr_in loopback(int port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET,
				     .sin_port = htons((uint16_t)port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

static void name_of(int fd, void *sa, socklen_t len)
{
	must(getsockname(fd, sa, &len) == 0, "getsockname");
}

static int setopt(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v));
}

static int getopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) ? -1 : v;
}

static void make_listener(void)
{
	struct sockaddr_in sa = loopback(0);

	lsn = socket(AF_INET, SOCK_STREAM, 0);
	must(lsn >= 0 && setopt(lsn, SOL_SOCKET, SO_REUSEADDR, 1) == 0 && setopt(lsn, IPPROTO_TCP, TCP_NODELAY, 1) == 0,
	     "listener");
	must(bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lsn, 13) == 0, "bind/listen");
	name_of(lsn, &lsn_addr, sizeof(lsn_addr));
}

static void connect_pair(void)
{
	cli = socket(AF_INET, SOCK_STREAM, 0);
	must(cli >= 0 && connect(cli, (struct sockaddr *)&lsn_addr, sizeof(lsn_addr)) == 0, "connect");
	acc = accept(lsn, NULL, NULL);
	must(acc >= 0, "accept");
	name_of(cli, &cli_addr, sizeof(cli_addr));
	name_of(acc, &acc_addr, sizeof(acc_addr));
}

static void setup_listen(void)
{
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in sa = loopback(0);
	char path[PATH_MAX];
	FILE *f;

	make_listener();
	/* For the test, which checks the backlog from outside (sock_diag). */
	wl_path(path, "lsn-port");
	f = fopen(path, "w");
	must(f && fprintf(f, "%d\n", ntohs(lsn_addr.sin_port)) > 0 && fclose(f) == 0, "lsn-port");
	lsn6 = socket(AF_INET6, SOCK_STREAM, 0);
	must(lsn6 >= 0 && setopt(lsn6, IPPROTO_IPV6, IPV6_V6ONLY, 1) == 0 &&
		     setopt(lsn6, SOL_SOCKET, SO_REUSEPORT, 1) == 0,
	     "listener6");
	must(bind(lsn6, (struct sockaddr *)&sa6, sizeof(sa6)) == 0 && listen(lsn6, 3) == 0, "bind/listen6");
	name_of(lsn6, &lsn6_addr, sizeof(lsn6_addr));
	plain = socket(AF_INET, SOCK_STREAM, 0);
	must(plain >= 0 && setopt(plain, SOL_SOCKET, SO_KEEPALIVE, 1) == 0 &&
		     setopt(plain, IPPROTO_TCP, TCP_KEEPIDLE, 77) == 0,
	     "plain");
	udp_srv = socket(AF_INET, SOCK_DGRAM, 0);
	must(udp_srv >= 0 && bind(udp_srv, (struct sockaddr *)&sa, sizeof(sa)) == 0, "udp bind");
	name_of(udp_srv, &udp_addr, sizeof(udp_addr));
	udp_cli = socket(AF_INET, SOCK_DGRAM, 0);
	must(udp_cli >= 0 && connect(udp_cli, (struct sockaddr *)&udp_addr, sizeof(udp_addr)) == 0, "udp connect");
	name_of(udp_cli, &udp_cli_addr, sizeof(udp_cli_addr));
	udp_other = socket(AF_INET, SOCK_DGRAM, 0);
	sa = loopback(0);
	must(udp_other >= 0 && bind(udp_other, (struct sockaddr *)&sa, sizeof(sa)) == 0, "udp bind");
	name_of(udp_other, &udp_other_addr, sizeof(udp_other_addr));
	/* Datagrams left unread across the dump: to the server from two senders, and back to the connected one. */
	must(send(udp_cli, "first", 5, 0) == 5, "udp send");
	must(sendto(udp_other, "", 0, 0, (struct sockaddr *)&udp_addr, sizeof(udp_addr)) == 0, "udp send empty");
	must(sendto(udp_other, "second", 6, 0, (struct sockaddr *)&udp_addr, sizeof(udp_addr)) == 6, "udp send");
	must(sendto(udp_srv, "reply", 5, 0, (struct sockaddr *)&udp_cli_addr, sizeof(udp_cli_addr)) == 5, "udp reply");
}

/* Both ends here; the client writes until nothing more fits, so its send queue holds data too. */
static void setup_established(void)
{
	ssize_t n;

	make_listener();
	connect_pair();
	must(setopt(cli, IPPROTO_TCP, TCP_NODELAY, 1) == 0, "TCP_NODELAY");
	big = malloc(64 << 20);
	must(big != NULL, "malloc");
	wl_fill(big, 64 << 20, 91);
	must(fcntl(cli, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
	while ((n = send(cli, big + filled, 65536, 0)) > 0)
		filled += (size_t)n;
	must(errno == EAGAIN && filled > 0, "filling the connection");
	wl_fill(big, BACK, 92);
	must(send(acc, big, BACK, 0) == BACK, "send back");
	{
		socklen_t len = sizeof(cli_info);

		must(getsockopt(cli, IPPROTO_TCP, TCP_INFO, &cli_info, &len) == 0, "TCP_INFO");
		cli_mss = getopt_int(cli, IPPROTO_TCP, TCP_MAXSEG);
	}
}

static void setup_client(void)
{
	struct sockaddr_in sa = loopback(peer_port);

	cli = socket(AF_INET, SOCK_STREAM, 0);
	must(cli >= 0 && connect(cli, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to the outside peer");
	name_of(cli, &cli_addr, sizeof(cli_addr));
	big = malloc(CLIENT_OUT + CLIENT_IN);
	must(big != NULL, "malloc");
	wl_fill(big, CLIENT_OUT, 93);
	must(send(cli, big, CLIENT_OUT, 0) == CLIENT_OUT, "send");
	/* The peer answers "hello" and CLIENT_IN bytes, which wait unread in our queue across the dump. */
}

static void recv_all(int fd, size_t len, uint64_t seed, const char *what)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n = recv(fd, big + got, len - got, MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN && poll(&pfd, 1, 10000) == 1)
			continue;
		if (n <= 0) {
			wl_fail("%s: recv returned %zd after %zu of %zu bytes: %m", what, n, got, len);
			return;
		}
		got += (size_t)n;
	}
	wl_expect_data(what, big, len, seed);
}

static bool same_sa(const void *a, const void *b, size_t len)
{
	return !memcmp(a, b, len);
}

static void check_listen(void)
{
	struct sockaddr_in sa, from;
	struct sockaddr_in6 sa6;
	socklen_t len = sizeof(from);
	char buf[8];
	int c;

	name_of(lsn, &sa, sizeof(sa));
	wl_expect(same_sa(&sa, &lsn_addr, sizeof(sa)), "listener: another address or port");
	wl_expect(getopt_int(lsn, SOL_SOCKET, SO_ACCEPTCONN) == 1, "listener: not listening");
	wl_expect(getopt_int(lsn, SOL_SOCKET, SO_REUSEADDR) == 1, "listener: SO_REUSEADDR lost");
	wl_expect(getopt_int(lsn, IPPROTO_TCP, TCP_NODELAY) == 1, "listener: TCP_NODELAY lost");
	c = socket(AF_INET, SOCK_STREAM, 0);
	wl_expect(connect(c, (struct sockaddr *)&lsn_addr, sizeof(lsn_addr)) == 0, "listener: cannot connect: %m");
	close(c);
	c = accept(lsn, NULL, NULL);
	wl_expect(c >= 0, "listener: accept failed: %m");
	close(c);

	name_of(lsn6, &sa6, sizeof(sa6));
	wl_expect(same_sa(&sa6.sin6_addr, &lsn6_addr.sin6_addr, 16) && sa6.sin6_port == lsn6_addr.sin6_port,
		  "IPv6 listener: another address or port");
	wl_expect(getopt_int(lsn6, IPPROTO_IPV6, IPV6_V6ONLY) == 1, "IPv6 listener: IPV6_V6ONLY lost");
	wl_expect(getopt_int(lsn6, SOL_SOCKET, SO_REUSEPORT) == 1, "IPv6 listener: SO_REUSEPORT lost");
	wl_expect(getopt_int(lsn6, SOL_SOCKET, SO_ACCEPTCONN) == 1, "IPv6 listener: not listening");

	wl_expect(getopt_int(plain, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE lost");
	wl_expect(getopt_int(plain, IPPROTO_TCP, TCP_KEEPIDLE) == 77, "TCP_KEEPIDLE is %d, expected 77",
		  getopt_int(plain, IPPROTO_TCP, TCP_KEEPIDLE));

	name_of(udp_srv, &sa, sizeof(sa));
	wl_expect(same_sa(&sa, &udp_addr, sizeof(sa)), "UDP socket: another address or port");
	{
		static const struct {
			const char *data;
			struct sockaddr_in *from;
		} queued[] = { { "first", &udp_cli_addr }, { "", &udp_other_addr }, { "second", &udp_other_addr } };

		for (size_t i = 0; i < 3; i++) {
			ssize_t n;

			len = sizeof(from);
			n = recvfrom(udp_srv, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &len);
			wl_expect(n == (ssize_t)strlen(queued[i].data) && !memcmp(buf, queued[i].data, (size_t)n) &&
					  same_sa(&from, queued[i].from, sizeof(from)),
				  "UDP: queued datagram %zu lost, changed or from another sender (%zd bytes)", i, n);
		}
		len = sizeof(from);
		wl_expect(recvfrom(udp_cli, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &len) == 5 &&
				  !memcmp(buf, "reply", 5) && same_sa(&from, &udp_addr, sizeof(from)),
			  "UDP: the reply queued in the connected socket is lost");
		len = sizeof(from);
	}
	wl_expect(send(udp_cli, "udp", 3, 0) == 3, "connected UDP: send: %m");
	wl_expect(poll(&(struct pollfd){ .fd = udp_srv, .events = POLLIN }, 1, 10000) == 1 &&
			  recvfrom(udp_srv, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &len) == 3 &&
			  !memcmp(buf, "udp", 3),
		  "UDP: datagram lost");
	wl_expect(same_sa(&from, &udp_cli_addr, sizeof(from)), "UDP: the connected socket has another address");
	len = sizeof(sa);
	wl_expect(getpeername(udp_cli, (struct sockaddr *)&sa, &len) == 0 && same_sa(&sa, &udp_addr, sizeof(sa)),
		  "connected UDP: another peer");
}

static void check_names(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	name_of(cli, &sa, sizeof(sa));
	wl_expect(same_sa(&sa, &cli_addr, sizeof(sa)), "client: another local address or port");
	if (acc > 0) {
		wl_expect(getpeername(acc, (struct sockaddr *)&sa, &len) == 0 && same_sa(&sa, &cli_addr, sizeof(sa)),
			  "accepted: another peer");
		name_of(acc, &sa, sizeof(sa));
		wl_expect(same_sa(&sa, &acc_addr, sizeof(sa)), "accepted: another local address");
	}
}

static void check_established(void)
{
	char buf[8];

	check_names();
	{
		struct tcp_info ti;
		socklen_t len = sizeof(ti);

		wl_expect(getsockopt(cli, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_ESTABLISHED,
			  "client: not established");
		wl_expect(ti.tcpi_options == cli_info.tcpi_options, "client: TCP options 0x%x, were 0x%x",
			  ti.tcpi_options, cli_info.tcpi_options);
		wl_expect(ti.tcpi_snd_wscale == cli_info.tcpi_snd_wscale &&
				  ti.tcpi_rcv_wscale == cli_info.tcpi_rcv_wscale,
			  "client: window scales %u/%u, were %u/%u", ti.tcpi_snd_wscale, ti.tcpi_rcv_wscale,
			  cli_info.tcpi_snd_wscale, cli_info.tcpi_rcv_wscale);
		/*
		 * The segment size comes back at most 32767 (what TCP_MAXSEG takes)
		 * until the path MTU is next looked at: above, loopback's, it may be less.
		 */
		wl_expect(getopt_int(cli, IPPROTO_TCP, TCP_MAXSEG) >= (cli_mss < 32000 ? cli_mss : 32000) - 64,
			  "client: MSS %d, was %d", getopt_int(cli, IPPROTO_TCP, TCP_MAXSEG), cli_mss);
	}
	wl_expect(getopt_int(cli, IPPROTO_TCP, TCP_NODELAY) == 1, "client: TCP_NODELAY lost");
	wl_expect(fcntl(cli, F_GETFL) & O_NONBLOCK, "client: O_NONBLOCK lost");
	/* Everything the client wrote, from the receive queue and then its own send queue. */
	recv_all(cli, BACK, 92, "data to the client");
	recv_all(acc, filled, 91, "data to the server");
	wl_expect(send(cli, "more", 4, 0) == 4, "client: send after restore: %m");
	{
		struct pollfd pfd = { .fd = acc, .events = POLLIN };

		wl_expect(poll(&pfd, 1, 10000) == 1 && recv(acc, buf, 4, 0) == 4 && !memcmp(buf, "more", 4),
			  "the connection does not carry new data");
	}
}

/*
 * After a --tcp-close restore (the test leaves CTLDIR/expect-closed) the
 * connection reads an error or the end and cannot send; untouched, it
 * still holds its first bytes. Either way the application reconnects.
 */
static void check_closed_then_reconnect(struct sockaddr_in *to, const char *hello)
{
	char path[PATH_MAX], buf[16];
	struct pollfd pfd = { .fd = cli, .events = POLLIN };
	bool closed;
	ssize_t n;
	int c;

	wl_path(path, "expect-closed");
	closed = access(path, F_OK) == 0;
	wl_expect(poll(&pfd, 1, 10000) == 1, "connection: nothing to read, not even its end");
	n = recv(cli, buf, 5, MSG_DONTWAIT);
	if (closed) {
		wl_expect(n <= 0, "closed connection: read %zd bytes", n);
		n = send(cli, "x", 1, MSG_NOSIGNAL);
		wl_expect(n < 0, "closed connection: could still send");
	} else {
		wl_fill(big, 5, 92);
		wl_expect(n == 5 && !memcmp(buf, !strcmp(mode, "close") ? (char *)big : "hello", 5),
			  "open connection: read %zd bytes, not the first ones", n);
	}
	close(cli);
	c = socket(AF_INET, SOCK_STREAM, 0);
	wl_expect(connect(c, (struct sockaddr *)to, sizeof(*to)) == 0, "reconnect failed: %m");
	wl_expect(send(c, hello, strlen(hello), 0) == (ssize_t)strlen(hello), "reconnect: send: %m");
	if (!strcmp(mode, "close")) {
		int a = accept(lsn, NULL, NULL);

		wl_expect(a >= 0 && recv(a, buf, strlen(hello), MSG_WAITALL) == (ssize_t)strlen(hello),
			  "reconnect: nothing arrived");
	} else {
		pfd = (struct pollfd){ .fd = c, .events = POLLIN };
		wl_expect(poll(&pfd, 1, 10000) == 1 && recv(c, buf, 2, MSG_WAITALL) == 2 && !memcmp(buf, "ok", 2),
			  "reconnect: the peer did not answer");
	}
}

static void check_client(void)
{
	struct pollfd pfd = { .fd = cli, .events = POLLIN };
	char buf[8];

	check_names();
	wl_expect(recv(cli, buf, 5, MSG_WAITALL) == 5 && !memcmp(buf, "hello", 5), "no hello from the outside peer");
	recv_all(cli, CLIENT_IN, 94, "data from the outside peer");
	wl_expect(send(cli, "ping", 4, 0) == 4, "send ping: %m");
	wl_expect(poll(&pfd, 1, 10000) == 1 && recv(cli, buf, 4, MSG_WAITALL) == 4 && !memcmp(buf, "pong", 4),
		  "no pong from the outside peer");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "listen|established|close|client PORT|reconnect PORT");
	mode = argv[2];
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "client") || !strcmp(mode, "reconnect")) {
		if (argc < 4)
			wl_die("%s needs a port", mode);
		peer_port = atoi(argv[3]);
	}
	if (!strcmp(mode, "listen"))
		setup_listen();
	else if (!strcmp(mode, "established") || !strcmp(mode, "close"))
		setup_established();
	else if (peer_port)
		setup_client();
	else
		wl_die("unknown mode %s", mode);
	wl_ready();
	wl_wait_go();
	if (!strcmp(mode, "listen")) {
		check_listen();
	} else if (!strcmp(mode, "established")) {
		check_established();
	} else if (!strcmp(mode, "close")) {
		check_closed_then_reconnect(&lsn_addr, "hi");
	} else if (!strcmp(mode, "client")) {
		check_client();
	} else {
		struct sockaddr_in to = loopback(peer_port);

		check_closed_then_reconnect(&to, "again");
	}
	return wl_finish();
}
