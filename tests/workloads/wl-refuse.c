/* Workload: holds one kind of state the engine must refuse to dump, and wl-heap's data besides. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heapdata.h"
#include "wl.h"

/*
 * Usage: wl-refuse CTLDIR group PGID
 *   group: a child of ours joins process group PGID, which belongs to a
 *   process outside our tree
 * After a refused dump it must go on exactly as before: the check after go
 * covers the heap data and the refused state itself (the child still in
 * its group). The fd kinds a dump refuses have wl-files-refuse.
 */

static pid_t child;

static void setup(const char *mode, const char *arg)
{
	if (strcmp(mode, "group") == 0 && arg) {
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

static void check(void)
{
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

	wl_init(argc, argv, 1, "group PGID");
	setup(argv[2], argc > 3 ? argv[3] : NULL);
	heapdata_setup(&opts);
	wl_ready();
	wl_wait_go();
	heapdata_check();
	check();
	return wl_finish();
}
