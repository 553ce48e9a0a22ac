/* Workload: holds one kind of state the engine must refuse to dump, and wl-heap's data besides. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heapdata.h"
#include "wl.h"

/*
 * Usage: wl-refuse CTLDIR socket|pipe|child
 * After a refused dump it must go on exactly as before: the check after go
 * covers the heap data and the refused object itself (data still in the
 * socket or pipe, the child still alive).
 */

static const char msg[] = "ping";
static int fds[2] = { -1, -1 };
static pid_t child;

static void setup(const char *mode)
{
	pid_t parent = getpid();
	int r;

	if (strcmp(mode, "socket") == 0 || strcmp(mode, "pipe") == 0) {
		r = mode[0] == 's' ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds);
		if (r != 0)
			wl_die("%s failed: %m", mode);
		/* Bytes in flight must still be there after the refused dump. */
		if (write(fds[1], msg, sizeof(msg)) != sizeof(msg))
			wl_die("write to the %s failed: %m", mode);
	} else if (strcmp(mode, "child") == 0) {
		child = fork();
		if (child < 0)
			wl_die("fork failed: %m");
		if (child == 0) {
			/* Dies with its parent, so a killed workload leaves nothing behind. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			for (;;)
				pause();
		}
	} else {
		wl_die("unknown mode %s", mode);
	}
}

static void check(const char *mode)
{
	char buf[sizeof(msg)] = "";
	int status;
	pid_t r;

	if (fds[0] >= 0) {
		ssize_t n = read(fds[0], buf, sizeof(buf));

		wl_expect(n == sizeof(msg) && memcmp(buf, msg, sizeof(msg)) == 0,
			  "%s: read %zd bytes \"%.*s\", expected \"%s\"", mode, n, n > 0 ? (int)n : 0, buf, msg);
	} else if (child > 0) {
		r = waitpid(child, &status, WNOHANG);
		wl_expect(r == 0, "child %d is gone (waitpid returned %d, status %#x)", (int)child, (int)r,
			  r > 0 ? status : 0);
		if (r == 0) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
		}
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

	wl_init(argc, argv, 1, "socket|pipe|thread|child");
	setup(argv[2]);
	heapdata_setup(&opts);
	wl_ready();
	wl_wait_go();
	heapdata_check();
	check(argv[2]);
	return wl_finish();
}
