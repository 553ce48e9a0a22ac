/* A minimal HTTP/1.0 GET for the C/R tests that talk to servers on 127.0.0.1 (wl-http). */
#ifndef SNAP_TESTS_CRTEST_HTTP_H
#define SNAP_TESTS_CRTEST_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 30

/* GET @path from 127.0.0.1:@port; the body (without the head) in @body. Returns the HTTP status, or -errno. */
static inline int http_get(int port, const char *path, char *body, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	char req[256], buf[4096];
	size_t used = 0;
	int fd, status = 0;
	char *eoh;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sa.sin_port = htons((uint16_t)port);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(fd);
		return -e;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -EIO;
	}
	for (ssize_t got; used < sizeof(buf) - 1 && (got = read(fd, buf + used, sizeof(buf) - 1 - used)) > 0;)
		used += (size_t)got;
	close(fd);
	buf[used] = '\0';
	eoh = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !eoh)
		return -EPROTO;
	snprintf(body, len, "%s", eoh + 4);
	return status;
}

#endif
