/* Workload: holds one kind of state the engine must refuse to dump, and wl-heap's data besides. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "heapdata.h"
#include "wl.h"

/*
 * Usage: wl-refuse CTLDIR socket|pipe|group PGID
 *   group: a child of ours joins process group PGID, which belongs to a
 *   process outside our tree
 * After a refused dump it must go on exactly as before: the check after go
 * covers the heap data and the refused object itself (data still in the
 * socket or pipe).
 */

static const char msg[] = "ping";
static int fds[2] = { -1, -1 };
static pid_t child;

static void setup(const char *mode, const char *arg)
{
	int r;

	if (strcmp(mode, "socket") == 0 || strcmp(mode, "pipe") == 0) {
		r = mode[0] == 's' ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds);
		if (r != 0)
			wl_die("%s failed: %m", mode);
		/* Bytes in flight must still be there after the refused dump. */
		if (write(fds[1], msg, sizeof(msg)) != sizeof(msg))
			wl_die("write to the %s failed: %m", mode);
	} else if (strcmp(mode, "group") == 0 && arg) {
		pid_t pgid = (pid_t)atoi(arg);

		child = fork();
		if (child < 0)
			wl_die("fork failed: %m");
		if (child == 0) {
			if (setpgid(0, pgid))
				wl_die("setpgid(0, %d) failed: %m", (int)pgid);
			wl_wait_go();
			wl_expect(getpgid(0) == pgid, "the child left group %d", (int)pgid);
			_exit(wl_finish());
		}
		/* Ready only once the child is in the group. */
		while (getpgid(child) != pgid)
			usleep(1000);
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
	if (child > 0) {
		int status;

		wl_expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
			  "the child in the outside group failed");
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

	wl_init(argc, argv, 1, "socket|pipe|group PGID");
	setup(argv[2], argc > 3 ? argv[3] : NULL);
	heapdata_setup(&opts);
	wl_ready();
	wl_wait_go();
	heapdata_check();
	check(argv[2]);
	return wl_finish();
}
