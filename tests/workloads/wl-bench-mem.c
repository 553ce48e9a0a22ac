/* Workload for the memory benchmark: fills N MiB of anonymous memory with seeded data, verifies it after go. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "wl.h"

/* Usage: wl-bench-mem CTLDIR MIB */

#define SEED_BENCH 0x62656e6368000000ull

int main(int argc, char **argv)
{
	unsigned long mib;
	size_t len;
	char *end;
	void *p;

	wl_init(argc, argv, 1, "MIB");
	mib = strtoul(argv[2], &end, 10);
	if (*end || !mib)
		wl_die("bad size %s", argv[2]);
	len = (size_t)mib << 20;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_die("mmap of %lu MiB failed: %m", mib);
	/* Random, not zero: zero pages are not stored and would flatter the numbers. */
	wl_fill(p, len, SEED_BENCH);
	wl_ready();
	wl_wait_go();
	wl_expect_data("benchmark area", p, len, SEED_BENCH);
	return wl_finish();
}
