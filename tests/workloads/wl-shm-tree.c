/*
 * Workload: shared anonymous memory between processes. The root maps a
 * region shared with four children (partly written, partly never
 * touched), one child shares another region with its own child, and one
 * child maps only part of the first region, read-only. After go every
 * process checks the data and writes its mark; the root then sees every
 * child's mark, which only works if the memory is still shared.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl.h"

#define REGION	(8u << 20)
#define DATA	(2u << 20) /* seeded; the rest is never touched before the dump */
#define MARKS	(DATA + (1u << 20))
#define NR_KIDS 4

static uint8_t *region;

static void check_data(const char *who)
{
	wl_expect_data(who, region, DATA, 0x5a5a);
	wl_expect(wl_find_nonzero(region + MARKS + 4096, REGION - MARKS - 4096) == SIZE_MAX,
		  "%s: the untouched part of the shared region is not zero", who);
}

/* Second-level sharing: a region only this child and its own child have. */
static int child_with_grandchild(void)
{
	uint64_t *own = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t g;

	if (own == MAP_FAILED)
		wl_die("mmap failed: %m");
	wl_fill(own, 1 << 20, 0x6b6b);
	g = fork();
	if (g == 0) {
		wl_wait_go();
		wl_expect_data("grandchild's view of its parent's region", own, 1 << 20, 0x6b6b);
		own[0] = 0x1234; /* the parent must see this */
		_exit(wl_finish());
	}
	wl_wait_go();
	waitpid(g, &status, 0);
	wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "grandchild ended with %#x", status);
	wl_expect(own[0] == 0x1234, "the grandchild's write to the shared region is not seen (%#llx)",
		  (unsigned long long)own[0]);
	return 0;
}

int main(int argc, char **argv)
{
	pid_t kids[NR_KIDS];
	int status;

	wl_init(argc, argv, 0, "");
	region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		wl_die("mmap failed: %m");
	wl_fill(region, DATA, 0x5a5a);
	for (int i = 0; i < NR_KIDS; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			wl_die("fork failed: %m");
		if (kids[i] == 0) {
			if (i == 1)
				child_with_grandchild();
			if (i == 2) {
				/* Only part of the region, read-only: a mapping of the object at an offset. */
				if (mprotect(region + DATA, REGION - DATA, PROT_READ))
					wl_die("mprotect failed: %m");
			} else if (i != 1) {
				wl_wait_go();
			}
			if (i == 2)
				wl_wait_go();
			check_data("child");
			if (i != 2)
				region[MARKS + i] = (uint8_t)(0xa0 + i);
			_exit(wl_finish());
		}
	}
	wl_ready();
	wl_wait_go();
	check_data("root");
	for (int i = 0; i < NR_KIDS; i++) {
		waitpid(kids[i], &status, 0);
		wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d ended with %#x", i, status);
		if (i != 2)
			wl_expect(region[MARKS + i] == 0xa0 + i, "child %d's mark is not seen: memory no longer shared",
				  i);
	}
	return wl_finish();
}
