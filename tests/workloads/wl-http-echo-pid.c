/*
 * Workload: a minimal HTTP server on 127.0.0.1 whose answer carries its
 * getpid(), a checksum computed once at startup, the same checksum of that
 * memory computed again per request, and how many requests it has served,
 * so a copy that lost any of it answers wrongly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

#define SEED	  0x6874747000000000ull
#define STATE_LEN (4u << 20)

static unsigned char *state;
static uint64_t init_sum;
static unsigned long hits;

/* Answers one connection: whatever the request, one line of state. */
static void serve(int lsn)
{
	char req[2048], body[256], resp[512];
	size_t got = 0;
	int fd = accept4(lsn, NULL, NULL, SOCK_CLOEXEC), len, blen;

	if (fd < 0)
		return;
	/* Up to the end of the headers, or whatever arrives within a second. */
	while (got < sizeof(req) - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 1000) != 1)
			break;
		n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	hits++;
	blen = snprintf(body, sizeof(body), "pid %d init %016llx now %016llx hits %lu\n", (int)getpid(),
			(unsigned long long)init_sum, (unsigned long long)wl_hash(state, STATE_LEN), hits);
	len = snprintf(
		resp, sizeof(resp),
		"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		blen, body);
	if (send(fd, resp, (size_t)len, MSG_NOSIGNAL) < 0) {
		/* The client went away; nothing to report to it. */
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	char path[4096];
	int lsn, one = 1;
	FILE *f;

	wl_init(argc, argv, 1, "PORT (0: any; the port is written to CTLDIR/port)");
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	state = malloc(STATE_LEN);
	if (!state)
		wl_die("out of memory");
	wl_fill(state, STATE_LEN, SEED);
	init_sum = wl_hash(state, STATE_LEN);

	lsn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lsn < 0 || setsockopt(lsn, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 64) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &salen))
		wl_die("cannot listen on 127.0.0.1:%s: %s", argv[2], strerror(errno));
	wl_path(path, "port");
	f = fopen(path, "we");
	if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f))
		wl_die("cannot write %s", path);
	wl_ready();

	/* Serve until go, polling for it as every workload does. */
	for (unsigned waited = 0; !wl_go_exists(); waited++) {
		struct pollfd pfd = { .fd = lsn, .events = POLLIN };

		if (waited >= WL_GO_TIMEOUT_MS)
			return WL_EXIT_NO_GO;
		if (poll(&pfd, 1, 1) == 1)
			serve(lsn);
	}
	wl_expect_data("state", state, STATE_LEN, SEED);
	wl_expect(wl_hash(state, STATE_LEN) == init_sum, "checksum changed");
	return wl_finish();
}
