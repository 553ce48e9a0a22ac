/* Seeded heap, mmap, sparse, global and TLS data shared by wl-heap, wl-static and wl-refuse. */
#ifndef SNAP_TESTS_HEAPDATA_H
#define SNAP_TESTS_HEAPDATA_H

#include <stddef.h>

struct heapdata_opts {
	/* Largest malloc'd buffer and largest mmap'd area, in bytes. */
	size_t max_malloc;
	size_t max_mmap;
	/* Size of the sparse anonymous mapping; every 1000th page is written. */
	size_t sparse_bytes;
	/* Small allocations of which every third is freed again, fragmenting the heap. */
	unsigned churn;
};

/* Builds all areas; exits through wl_die() on failure. */
void heapdata_setup(const struct heapdata_opts *opts);

/* Checks every area through wl_fail(), then that malloc and brk still work. */
void heapdata_check(void);

#endif
