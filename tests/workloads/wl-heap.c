/* Workload: malloc'd, mmap'd, sparse, global, TLS and stack data with known contents. */
#include <stdint.h>

#include "heapdata.h"
#include "wl.h"

#define SEED_STACK 0x737461636b000000ull

int main(int argc, char **argv)
{
	const struct heapdata_opts opts = {
		.max_malloc = 3 << 20,
		.max_mmap = 4 << 20,
		.sparse_bytes = 256ull << 20,
		.churn = 4000,
	};
	unsigned char stack_buf[96 * 1024];

	wl_init(argc, argv, 0, "");
	heapdata_setup(&opts);
	wl_fill(stack_buf, sizeof(stack_buf), SEED_STACK);
	wl_ready();
	wl_wait_go();
	wl_expect_data("stack buffer", stack_buf, sizeof(stack_buf), SEED_STACK);
	heapdata_check();
	return wl_finish();
}
