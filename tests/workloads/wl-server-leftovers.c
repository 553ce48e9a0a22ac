/*
 * What a real server holds between two requests, beyond its listener: "finished" keeps the socket of a
 * connection that ended on both sides (the server shut its side down after the client left) next to the
 * listener that accepted it, as Tomcat does until it closes it; "shared-file" maps a small file shared
 * and writable, as a JVM maps its hsperfdata file, and writes through the mapping.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

#define SHARED_FILE_SIZE (32 * 1024)
#define SHARED_SEED	 0x5eed0f11e

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ? -1 : ti.tcpi_state;
}

static unsigned short local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	return getsockname(fd, (struct sockaddr *)&a, &len) ? 0 : ntohs(a.sin_port);
}

/* Connects to 127.0.0.1:@port, sends @msg, and has the listener take it: the accepted fd. */
static int round_trip(int lfd, unsigned short port, const char *msg, int *ret_cfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int cfd = socket(AF_INET, SOCK_STREAM, 0), afd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof(a)) || write(cfd, msg, strlen(msg)) < 0)
		return -1;
	afd = accept(lfd, NULL, NULL);
	*ret_cfd = cfd;
	return afd;
}

static int finished(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), afd, cfd, nfd;
	unsigned short port;
	char buf[16];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 8))
		wl_die("listener: %m");
	port = local_port(lfd);
	afd = round_trip(lfd, port, "first", &cfd);
	if (afd < 0 || read(afd, buf, sizeof(buf)) != 5)
		wl_die("first connection: %m");
	/* The client leaves, the server sees the end and shuts its side: the connection is over, the fd held. */
	close(cfd);
	if (read(afd, buf, sizeof(buf)) != 0 || shutdown(afd, SHUT_WR))
		wl_die("ending the first connection: %m");
	for (int i = 0; i < 5000 && tcp_state(afd) != TCP_CLOSE; i++)
		usleep(1000);
	if (tcp_state(afd) != TCP_CLOSE)
		wl_die("the finished connection is in state %d, not CLOSE", tcp_state(afd));
	wl_ready();
	wl_wait_go();

	/* The listener still takes connections on its port... */
	nfd = round_trip(lfd, port, "second", &cfd);
	wl_expect(nfd >= 0, "listener on port %u accepts no connection: %m", port);
	wl_expect(nfd >= 0 && read(nfd, buf, sizeof(buf)) == 6 && !memcmp(buf, "second", 6),
		  "the new connection carries no data");
	/* ...and the finished connection still gives no data and sends none. */
	wl_expect(local_port(afd) == port, "finished connection is on port %u, was on %u", local_port(afd), port);
	wl_expect(read(afd, buf, sizeof(buf)) <= 0, "finished connection gives data");
	wl_expect(send(afd, "x", 1, MSG_NOSIGNAL) < 0, "finished connection takes data");
	wl_expect(close(afd) == 0, "cannot close the finished connection: %m");
	return wl_finish();
}

static int shared_file(void)
{
	char path[PATH_MAX];
	uint8_t *map, byte;
	int fd;

	wl_path(path, "shared-file");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, SHARED_FILE_SIZE))
		wl_die("%s: %m", path);
	map = mmap(NULL, SHARED_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		wl_die("mmap %s: %m", path);
	close(fd);
	wl_fill(map, SHARED_FILE_SIZE, SHARED_SEED);
	wl_ready();
	wl_wait_go();

	wl_expect_data("shared file mapping", map, SHARED_FILE_SIZE, SHARED_SEED);
	/* It is still the file at that path: a write through the mapping is seen by read(). */
	map[100] ^= 0xff;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	wl_expect(fd >= 0 && pread(fd, &byte, 1, 100) == 1 && byte == map[100], "%s: the mapping is no longer the file",
		  path);
	if (fd >= 0)
		close(fd);
	return wl_finish();
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "finished|shared-file");
	if (!strcmp(argv[2], "finished"))
		return finished();
	if (!strcmp(argv[2], "shared-file"))
		return shared_file();
	wl_die("unknown mode %s", argv[2]);
}
