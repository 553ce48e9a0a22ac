/* wl-http: a tiny HTTP/1.0 server whose answers depend on state built at start-up and on a request counter. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

/*
 * Not the CTLDIR protocol of the other workloads: it is started the way a
 * real service is (by snapcr prepare, or by hand) and answers over TCP.
 *
 *   wl-http PORT [INIT_MS [READY_FILE]]
 *
 * It spends INIT_MS (default 200) "initializing": a 16 MiB table of
 * seeded data plus a sleep, standing in for a slow start. Only then does
 * it listen on 127.0.0.1:PORT, and then creates READY_FILE if given.
 * GET / answers 200 with one line:
 *
 *   wl-http pid=PID token=TOKEN state=ok count=N
 *
 * TOKEN is the clock at start-up (another instance has another one),
 * state says whether the table still holds its data (checked at every
 * request), N counts the requests answered, this one included. GET /exit
 * answers and then exits 0; other paths get 404 (not counted). It closes
 * a connection only after the client closed its end, and then 50 ms
 * later, so whoever dumps it must wait until it has let go of them.
 */

#define TABLE_SIZE (16u << 20)
#define TABLE_SEED 0x77686c74u
#define LINGER_MS  50

static uint8_t *table;
static unsigned long long token;
static unsigned long count;

static void reply(int fd, int status, const char *reason, const char *body)
{
	char buf[512];
	int n = snprintf(
		buf, sizeof(buf),
		"HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		status, reason, strlen(body), body);

	for (int off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, (size_t)(n - off));

		if (w <= 0)
			return;
		off += (int)w;
	}
}

/* Reads the request head; returns the path of a GET (in @req), or NULL. */
static char *read_request(int fd, char *req, size_t size)
{
	size_t used = 0;
	char *sp;

	while (used < size - 1 && !strstr(req, "\r\n\r\n") && !strstr(req, "\n\n")) {
		ssize_t r = read(fd, req + used, size - 1 - used);

		if (r <= 0)
			break;
		used += (size_t)r;
		req[used] = '\0';
	}
	if (strncmp(req, "GET /", 5))
		return NULL;
	sp = strchr(req + 4, ' ');
	if (sp)
		*sp = '\0';
	return req + 4;
}

/*
 * As servers with a lingering close do: end our side, wait until the
 * client has closed its end, and close the socket only a moment later.
 * Until then the connection is ours, in a state a dump cannot take.
 */
static void linger_close(int fd)
{
	struct timespec ts = { 0, LINGER_MS * 1000000l };
	char buf[256];

	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	nanosleep(&ts, NULL);
	close(fd);
}

static void serve(int fd)
{
	char req[4096] = "", body[256], *path = read_request(fd, req, sizeof(req));
	bool ok;

	if (!path) {
		if (req[0])
			reply(fd, 400, "Bad Request", "bad request\n");
		return;
	}
	if (strcmp(path, "/") && strcmp(path, "/exit")) {
		reply(fd, 404, "Not Found", "not found\n");
		return;
	}
	ok = wl_verify(table, TABLE_SIZE, TABLE_SEED) == SIZE_MAX;
	snprintf(body, sizeof(body), "wl-http pid=%d token=%llx state=%s count=%lu\n", getpid(), token,
		 ok ? "ok" : "LOST", ++count);
	reply(fd, 200, "OK", body);
	if (!strcmp(path, "/exit")) {
		linger_close(fd);
		exit(0);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long port, init_ms = 200;
	struct timespec ts;
	int one = 1, lfd;
	char *end;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: wl-http PORT [INIT_MS [READY_FILE]]\n");
		return WL_EXIT_SETUP;
	}
	port = strtol(argv[1], &end, 10);
	if (*end || port <= 0 || port > 65535) {
		fprintf(stderr, "wl-http: bad port '%s'\n", argv[1]);
		return WL_EXIT_SETUP;
	}
	if (argc > 2)
		init_ms = strtol(argv[2], NULL, 10);
	signal(SIGPIPE, SIG_IGN);

	clock_gettime(CLOCK_REALTIME, &ts);
	token = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
	table = malloc(TABLE_SIZE);
	if (!table) {
		fprintf(stderr, "wl-http: out of memory\n");
		return WL_EXIT_SETUP;
	}
	wl_fill(table, TABLE_SIZE, TABLE_SEED);
	ts = (struct timespec){ init_ms / 1000, (init_ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_port = htons((uint16_t)port);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 64)) {
		fprintf(stderr, "wl-http: cannot listen on 127.0.0.1:%ld: %m\n", port);
		return WL_EXIT_SETUP;
	}
	if (argc > 3) {
		int fd = open(argv[3], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0) {
			fprintf(stderr, "wl-http: cannot create %s: %m\n", argv[3]);
			return WL_EXIT_SETUP;
		}
		close(fd);
	}
	printf("wl-http pid=%d token=%llx listening on 127.0.0.1:%ld\n", getpid(), token, port);
	fflush(stdout);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "wl-http: accept: %m\n");
			return 1;
		}
		serve(fd);
		linger_close(fd);
	}
}
