/* Workload: holds one kind of state the engine must refuse to dump, and wl-heap's data besides. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "heapdata.h"
#include "wl.h"

/*
 * Usage: wl-refuse CTLDIR socket|pipe
 * After a refused dump it must go on exactly as before: the check after go
 * covers the heap data and the refused object itself (data still in the
 * socket or pipe).
 */

static const char msg[] = "ping";
static int fds[2] = { -1, -1 };

static void setup(const char *mode)
{
	int r;

	if (strcmp(mode, "socket") == 0 || strcmp(mode, "pipe") == 0) {
		r = mode[0] == 's' ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds);
		if (r != 0)
			wl_die("%s failed: %m", mode);
		/* Bytes in flight must still be there after the refused dump. */
		if (write(fds[1], msg, sizeof(msg)) != sizeof(msg))
			wl_die("write to the %s failed: %m", mode);
	} else {
		wl_die("unknown mode %s", mode);
	}
}

static void check(const char *mode)
{
	char buf[sizeof(msg)] = "";

	if (fds[0] >= 0) {
		ssize_t n = read(fds[0], buf, sizeof(buf));

		wl_expect(n == sizeof(msg) && memcmp(buf, msg, sizeof(msg)) == 0,
			  "%s: read %zd bytes \"%.*s\", expected \"%s\"", mode, n, n > 0 ? (int)n : 0, buf, msg);
	}
}

int main(int argc, char **argv)
{
	const struct heapdata_opts opts = {
		.max_malloc = 3 << 20,
		.max_mmap = 4 << 20,
		.sparse_bytes = 256ull << 20,
		.churn = 4000,
	};

	wl_init(argc, argv, 1, "socket|pipe");
	setup(argv[2]);
	heapdata_setup(&opts);
	wl_ready();
	wl_wait_go();
	heapdata_check();
	check(argv[2]);
	return wl_finish();
}
