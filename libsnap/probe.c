/* Readiness probes (tcp:, http://, file:) and the minimal HTTP/1.0 client of snap_prepare. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probe.h"

/* One attempt of a probe gives up after this long, so a hung server is asked again. */
#define PROBE_ATTEMPT_NS (5ull * 1000 * 1000 * 1000)
#define PROBE_LAST_NS	 (500ull * 1000 * 1000)
#define HTTP_HEAD_MAX	 (16 * 1024)

/* HOST:PORT, HOST may be [IPv6]; @what names the spec in messages. */
static int parse_host_port(struct snap_ctx *ctx, const char *s, size_t len, const char *default_port, const char *what,
			   struct probe *p)
{
	const char *host = s, *colon = NULL;
	size_t host_len;

	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close)
			return snap_fail(ctx, -EINVAL, "%s: unbalanced [ in the host", what);
		host = s + 1;
		host_len = (size_t)(close - host);
		if (close + 1 < s + len) {
			if (close[1] != ':')
				return snap_fail(ctx, -EINVAL, "%s: expected :PORT after ]", what);
			colon = close + 1;
		}
	} else {
		colon = memrchr(s, ':', len);
		host_len = colon ? (size_t)(colon - s) : len;
	}
	if (!host_len || host_len >= sizeof(p->host))
		return snap_fail(ctx, -EINVAL, "%s: no host, or a host too long", what);
	memcpy(p->host, host, host_len);
	p->host[host_len] = '\0';
	if (colon) {
		size_t plen = (size_t)(s + len - colon - 1);
		char *end;
		long port;

		if (!plen || plen >= sizeof(p->port))
			return snap_fail(ctx, -EINVAL, "%s: bad port", what);
		memcpy(p->port, colon + 1, plen);
		p->port[plen] = '\0';
		port = strtol(p->port, &end, 10);
		if (*end || port <= 0 || port > 65535)
			return snap_fail(ctx, -EINVAL, "%s: bad port '%s'", what, p->port);
	} else if (default_port) {
		snprintf(p->port, sizeof(p->port), "%s", default_port);
	} else {
		return snap_fail(ctx, -EINVAL, "%s: no port", what);
	}
	return 0;
}

int probe_parse_url(struct snap_ctx *ctx, const char *url, struct probe *ret)
{
	struct probe p = { .kind = PROBE_HTTP };
	const char *hp = url + 7, *slash;
	int r;

	if (strncmp(url, "http://", 7))
		return snap_fail(ctx, -EINVAL, "'%s': only http:// URLs are supported", url);
	slash = strchr(hp, '/');
	r = parse_host_port(ctx, hp, slash ? (size_t)(slash - hp) : strlen(hp), "80", url, &p);
	if (r)
		return r;
	if (snprintf(p.path, sizeof(p.path), "%s", slash ? slash : "/") >= (int)sizeof(p.path))
		return snap_fail(ctx, -EINVAL, "'%s': path too long", url);
	for (const char *c = p.path; *c; c++)
		if (*c <= ' ' || *c == 0x7f)
			return snap_fail(ctx, -EINVAL, "'%s': the path must be URL-encoded (no spaces or controls)",
					 url);
	*ret = p;
	return 0;
}

int probe_parse(struct snap_ctx *ctx, const char *spec, struct probe *ret)
{
	struct probe p = { 0 };
	int r;

	if (!strncmp(spec, "http://", 7))
		return probe_parse_url(ctx, spec, ret);
	if (!strncmp(spec, "tcp:", 4)) {
		p.kind = PROBE_TCP;
		r = parse_host_port(ctx, spec + 4, strlen(spec + 4), NULL, spec, &p);
		if (r)
			return r;
	} else if (!strncmp(spec, "file:", 5) && spec[5]) {
		p.kind = PROBE_FILE;
		if (snprintf(p.path, sizeof(p.path), "%s", spec + 5) >= (int)sizeof(p.path))
			return snap_fail(ctx, -EINVAL, "'%s': path too long", spec);
	} else {
		return snap_fail(ctx, -EINVAL, "'%s': a probe is tcp:HOST:PORT, http://HOST[:PORT][/PATH] or file:PATH",
				 spec);
	}
	*ret = p;
	return 0;
}

static int conns_add(struct snap_ctx *ctx, struct probe_conns *c, uint16_t server_port, uint16_t client_port)
{
	if (c->nr == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct probe_conn *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		c->v = v;
		c->cap = cap;
	}
	c->v[c->nr++] = (struct probe_conn){ server_port, client_port };
	return 0;
}

void probe_conns_free(struct probe_conns *conns)
{
	free(conns->v);
	*conns = (struct probe_conns){ 0 };
}

static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = snap_now_ns();

	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/*
 * A connected non-blocking socket to @p, or -1 with @why set (not ready),
 * or <0 another negative errno for a local error. Every connection
 * attempted is recorded: the server may hold its end even if we gave up.
 */
static int connect_to(struct snap_ctx *ctx, const struct probe *p, uint64_t deadline_ns, struct probe_conns *conns,
		      char *why, size_t why_len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int fd = -1, r;

	r = getaddrinfo(p->host, p->port, &hints, &ai);
	if (r) {
		snprintf(why, why_len, "cannot resolve %s: %s", p->host, gai_strerror(r));
		return -1;
	}
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof(r);
		uint16_t cport;

		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			r = snap_fail(ctx, -errno, "cannot create a socket to probe %s:%s: %m", p->host, p->port);
			freeaddrinfo(ai);
			return r;
		}
		r = connect(fd, a->ai_addr, a->ai_addrlen) ? errno : 0;
		cport = local_port(fd);
		if (cport && conns_add(ctx, conns, (uint16_t)atoi(p->port), cport)) {
			close(fd);
			freeaddrinfo(ai);
			return -ENOMEM;
		}
		if (r == EINPROGRESS) {
			pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
			while ((r = poll(&pfd, 1, ms_left(deadline_ns))) < 0 && errno == EINTR)
				;
			if (r == 0)
				r = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &r, &len))
				r = errno;
		}
		if (!r)
			break;
		snprintf(why, why_len, "connecting to %s:%s: %s", p->host, p->port, strerror(r));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int probe_http_get(struct snap_ctx *ctx, const struct probe *p, uint64_t deadline_ns, struct probe_conns *conns,
		   int *ret_status, char *why, size_t why_len)
{
	char req[4096 + 512], *head = NULL, *eoh = NULL;
	size_t used = 0, body = 0, reqlen;
	long long content_length = -1;
	int fd, status = 0, major, minor, r = 0;
	bool bracket = strchr(p->host, ':');

	*ret_status = 0;
	fd = connect_to(ctx, p, deadline_ns, conns, why, why_len);
	if (fd < 0)
		return fd == -1 ? 0 : fd;
	/* HTTP/1.0 with Connection: close, so the server ends the connection itself once it answered. */
	reqlen = (size_t)snprintf(req, sizeof(req),
				  "GET %s HTTP/1.0\r\nHost: %s%s%s:%s\r\nUser-Agent: libsnap-prepare\r\n"
				  "Accept: */*\r\nConnection: close\r\n\r\n",
				  p->path, bracket ? "[" : "", p->host, bracket ? "]" : "", p->port);
	for (size_t off = 0; off < reqlen;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t w = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(why, why_len, "sending the request to %s:%s: %m", p->host, p->port);
			goto out;
		}
		if (poll(&pfd, 1, ms_left(deadline_ns)) == 0) {
			snprintf(why, why_len, "%s:%s took the connection but not the request in time", p->host,
				 p->port);
			goto out;
		}
	}
	head = malloc(HTTP_HEAD_MAX + 1);
	if (!head) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	/* Read the head, then the body (discarded) up to Content-Length or the end of the connection. */
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char sink[16384];
		ssize_t got;

		if (eoh && content_length >= 0 && body >= (size_t)content_length)
			break;
		if (!eoh)
			got = recv(fd, head + used, HTTP_HEAD_MAX - used, 0);
		else
			got = recv(fd, sink, sizeof(sink), 0);
		if (got == 0)
			break;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				snprintf(why, why_len, "reading the answer of %s:%s: %m", p->host, p->port);
				goto out;
			}
			if (poll(&pfd, 1, ms_left(deadline_ns)) == 0) {
				snprintf(why, why_len, "no %s from %s:%s in time", eoh ? "end of the answer" : "answer",
					 p->host, p->port);
				goto out;
			}
			continue;
		}
		if (eoh) {
			body += (size_t)got;
			continue;
		}
		used += (size_t)got;
		head[used] = '\0';
		eoh = strstr(head, "\r\n\r\n");
		if (eoh) {
			body = used - (size_t)(eoh + 4 - head);
			for (char *l = strstr(head, "\r\n"); l && l < eoh; l = strstr(l + 2, "\r\n"))
				if (!strncasecmp(l + 2, "Content-Length:", 15))
					content_length = strtoll(l + 17, NULL, 10);
		} else if (used == HTTP_HEAD_MAX) {
			snprintf(why, why_len, "the answer of %s:%s has a head over %d bytes", p->host, p->port,
				 HTTP_HEAD_MAX);
			goto out;
		}
	}
	if (!used || sscanf(head, "HTTP/%d.%d %d", &major, &minor, &status) != 3) {
		snprintf(why, why_len, "%s:%s closed the connection without an HTTP answer", p->host, p->port);
		goto out;
	}
	*ret_status = status;
	snprintf(why, why_len, "HTTP %d from http://%s:%s%s", status, p->host, p->port, p->path);
out:
	free(head);
	close(fd);
	return r;
}

int probe_once(struct snap_ctx *ctx, const struct probe *p, uint64_t deadline_ns, struct probe_conns *conns, char *why,
	       size_t why_len)
{
	uint64_t attempt = snap_now_ns() + PROBE_ATTEMPT_NS;
	int fd, status, r;

	/* Even the last attempt gets a moment, so the final message tells what the probe saw. */
	if (attempt > deadline_ns)
		attempt = deadline_ns > snap_now_ns() + PROBE_LAST_NS ? deadline_ns : snap_now_ns() + PROBE_LAST_NS;
	switch (p->kind) {
	case PROBE_FILE:
		if (!access(p->path, F_OK))
			return 1;
		snprintf(why, why_len, "%s: %m", p->path);
		return 0;
	case PROBE_TCP:
		fd = connect_to(ctx, p, attempt, conns, why, why_len);
		if (fd < 0)
			return fd == -1 ? 0 : fd;
		close(fd);
		return 1;
	case PROBE_HTTP:
		r = probe_http_get(ctx, p, attempt, conns, &status, why, why_len);
		if (r < 0)
			return r;
		return status >= 200 && status < 300;
	}
	return snap_fail(ctx, -EINVAL, "unknown probe kind");
}

/* Inodes of the sockets /proc/PID/net/tcp{,6} list, so that those it does not list can be told. */
struct inode_set {
	unsigned long *v;
	size_t nr, cap;
};

static int inode_add(struct inode_set *s, unsigned long ino)
{
	if (s->nr == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		unsigned long *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->nr++] = ino;
	return 0;
}

static bool inode_has(const struct inode_set *s, unsigned long ino)
{
	for (size_t i = 0; i < s->nr; i++)
		if (s->v[i] == ino)
			return true;
	return false;
}

static bool is_server_port(const struct probe_conns *conns, unsigned port)
{
	for (size_t i = 0; i < conns->nr; i++)
		if (conns->v[i].server_port == port)
			return true;
	return false;
}

/*
 * Scans one of /proc/PID/net/tcp{,6} for the server end of one of our
 * connections that is still someone's: held by an fd (it has an inode),
 * or not accepted yet (the server will get an fd for it; /proc shows
 * those waiting for their handshake as SYN_RECV too).
 */
static int scan_tcp(const char *path, const struct probe_conns *conns, struct inode_set *listed, unsigned *state)
{
	char line[512];
	FILE *f = fopen(path, "re");
	int found = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno; /* no IPv6 in this kernel */
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned lport, rport, st;
		unsigned long inode;

		if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport,
			   &rport, &st, &inode) != 4)
			continue; /* the header */
		if (inode && inode_add(listed, inode)) {
			fclose(f);
			return -ENOMEM;
		}
		if (!inode && st != TCP_ESTABLISHED && st != TCP_CLOSE_WAIT && st != TCP_SYN_RECV)
			continue; /* closed by the server, now the kernel's alone (TIME_WAIT, FIN_WAIT2...) */
		for (size_t i = 0; i < conns->nr; i++) {
			if (conns->v[i].server_port == lport && conns->v[i].client_port == rport) {
				*state = st;
				found = 1;
				break;
			}
		}
	}
	fclose(f);
	return found;
}

/*
 * A connection that ended while its socket stays open is unhashed (state
 * CLOSE): /proc/net/tcp does not list it, yet the fd is there and is
 * bound to the server's port, which a restore would have to bind again.
 * Servers that close lazily (shut down, wait for the client's end, close)
 * have such sockets for a while. Looks at each socket of @pid that is
 * not listed through a copy of its fd.
 */
static int scan_unlisted(pid_t pid, const struct probe_conns *conns, const struct inode_set *listed, unsigned *state)
{
	char path[64], link[64];
	struct dirent *de;
	int pidfd, found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0; /* gone: it holds nothing */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	while (pidfd >= 0 && !found && (de = readdir(d))) {
		struct sockaddr_storage ss;
		struct tcp_info ti;
		socklen_t len = sizeof(ss), tlen = sizeof(ti);
		unsigned long ino;
		int fd, proto = 0, port = 0;
		socklen_t plen = sizeof(proto);
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) != 1 || inode_has(listed, ino))
			continue;
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
		if (fd < 0)
			continue;
		if (!getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) && proto == IPPROTO_TCP &&
		    !getsockname(fd, (struct sockaddr *)&ss, &len)) {
			if (ss.ss_family == AF_INET)
				port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			else if (ss.ss_family == AF_INET6)
				port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
			if (port && is_server_port(conns, (unsigned)port) &&
			    !getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) && ti.tcpi_state == TCP_CLOSE) {
				*state = TCP_CLOSE;
				found = 1;
			}
		}
		close(fd);
	}
	if (pidfd >= 0)
		close(pidfd);
	closedir(d);
	return found;
}

int probe_conns_held(struct snap_ctx *ctx, const pid_t *pids, size_t nr_pids, const struct probe_conns *conns,
		     unsigned *state)
{
	static const char *const files[] = { "tcp", "tcp6" };
	struct inode_set listed = { 0 };
	char path[64];
	int r = 0;

	if (!nr_pids || !conns->nr)
		return 0;
	for (int i = 0; !r && i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)pids[0], files[i]);
		r = scan_tcp(path, conns, &listed, state);
		if (r < 0)
			r = snap_fail(ctx, r, "pid %d: cannot read %s: %s", pids[0], path, strerror(-r));
	}
	for (size_t i = 0; !r && i < nr_pids; i++)
		r = scan_unlisted(pids[i], conns, &listed, state);
	free(listed.v);
	return r;
}
