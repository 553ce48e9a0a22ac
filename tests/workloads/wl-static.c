/* Workload: a reduced wl-heap linked statically against glibc (no ld.so, no shared libraries). */
#include <stdint.h>

#include "heapdata.h"
#include "wl.h"

#define SEED_STACK 0x5354415449430000ull

int main(int argc, char **argv)
{
	const struct heapdata_opts opts = {
		.max_malloc = 1 << 20,
		.max_mmap = 1 << 20,
		.sparse_bytes = 32ull << 20,
		.churn = 500,
	};
	unsigned char stack_buf[16 * 1024];

	wl_init(argc, argv, 0, "");
	heapdata_setup(&opts);
	wl_fill(stack_buf, sizeof(stack_buf), SEED_STACK);
	wl_ready();
	wl_wait_go();
	wl_expect_data("stack buffer", stack_buf, sizeof(stack_buf), SEED_STACK);
	heapdata_check();
	return wl_finish();
}
