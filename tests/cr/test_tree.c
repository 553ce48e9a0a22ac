/* Process trees: pids, parents, sessions, groups (one without its leader) and zombies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crtest.h"

H_SUITE(tree);

Test(tree, sessions_groups_zombies_nocr)
{
	H_OK(h_run_nocr("wl-tree", NULL, 0));
}

Test(tree, sessions_groups_zombies_cr)
{
	H_OK(h_run_cr("wl-tree", NULL, 0));
}

Test(tree, shared_memory_nocr)
{
	H_OK(h_run_nocr("wl-shm-tree", NULL, 0));
}

Test(tree, shared_memory_cr)
{
	H_OK(h_run_cr("wl-shm-tree", NULL, 0));
}

/* Proportional set size of @pid and all its descendants, in KiB. */
static long tree_pss_kib(pid_t pid)
{
	char path[64], *text, *pss, *kids;
	long total = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	text = h_read_file(path, NULL);
	pss = text ? strstr(text, "\nPss:") : NULL;
	if (pss)
		total += strtol(pss + 5, NULL, 10);
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	kids = h_read_file(path, NULL);
	for (char *p = kids; p && *p;) {
		char *end;
		long child = strtol(p, &end, 10);

		if (end == p)
			break;
		total += tree_pss_kib((pid_t)child);
		p = end;
	}
	free(kids);
	return total;
}

/*
 * 8 workers over 64 MiB inherited from their parent: after restore the
 * pages they still share with it are shared again, not copied 9 times.
 */
Test(tree, prefork_cow_footprint_nocr)
{
	H_OK(h_run_nocr("wl-prefork", NULL, 0));
}

Test(tree, prefork_cow_footprint_cr)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	long before, after;

	H_OK(h_start(&w, "wl-prefork", NULL));
	before = tree_pss_kib(w.pid);
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	H_OK(h_restore(&w, imgdir, NULL));
	after = tree_pss_kib(w.pid);
	cr_log_info("tree PSS before dump %ld KiB, after restore %ld KiB", before, after);
	cr_expect(before > 60 * 1024, "the workload's tree holds only %ld KiB", before);
	cr_expect(after <= before + before / 10, "tree PSS grew from %ld KiB to %ld KiB (more than 10%%)", before,
		  after);
	H_OK(h_finish(&w));
}
