/* Process trees: pids, parents, sessions, groups (one without its leader) and zombies. */
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
