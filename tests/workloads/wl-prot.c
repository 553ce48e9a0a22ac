/* Workload: PROT_NONE, read-only and read-exec areas holding data, split areas and an unmapped hole. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wl.h"

#define SEED_NONE  0x6e6f6e6500000000ull
#define SEED_RO	   0x726f000000000000ull
#define SEED_HOLEY 0x686f6c6500000000ull
#define SEED_RX	   0x7278000000000000ull
#define SEED_SPLIT 0x73706c6974000000ull

#define NONE_PAGES     16
#define GUARD_PAGES    8
#define RO_PAGES       8
#define HOLEY_PAGES    32
#define HOLE_FIRST     10
#define HOLE_PAGES     10
#define RX_PAGES       4
#define SPLIT_PAGES    12
#define SPLIT_RO_FIRST 4
#define SPLIT_RO_PAGES 4

#define MAX_MAPS 4096

struct map_line {
	uintptr_t start, end;
	char perms[5];
};

static struct map_line maps[MAX_MAPS];
static size_t nr_maps;
static size_t ps;

static void *map_rw(size_t pages)
{
	void *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		wl_die("mmap of %zu pages failed: %m", pages);
	return p;
}

static void protect(void *p, size_t pages, int prot)
{
	if (mprotect(p, pages * ps, prot) != 0)
		wl_die("mprotect(%p, %zu pages, %d) failed: %m", p, pages, prot);
}

static void read_maps(void)
{
	char line[4096];
	FILE *f = fopen("/proc/self/maps", "re");

	nr_maps = 0;
	if (!f) {
		wl_fail("cannot open /proc/self/maps: %m");
		return;
	}
	while (fgets(line, sizeof(line), f) && nr_maps < MAX_MAPS) {
		struct map_line *m = &maps[nr_maps];
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx %4s", &start, &end, m->perms) != 3) {
			wl_fail("malformed maps line: %s", line);
			continue;
		}
		m->start = start;
		m->end = end;
		nr_maps++;
	}
	fclose(f);
}

/* Every byte of [p, p + pages) must be mapped by lines with exactly @perms. */
static void expect_perms(const char *what, const void *p, size_t pages, const char *perms)
{
	uintptr_t at = (uintptr_t)p, end = at + pages * ps;

	while (at < end) {
		const struct map_line *m = NULL;

		for (size_t i = 0; i < nr_maps; i++)
			if (maps[i].start <= at && at < maps[i].end)
				m = &maps[i];
		if (!m) {
			wl_fail("%s: %#lx is not mapped, expected %s", what, (unsigned long)at, perms);
			return;
		}
		if (strcmp(m->perms, perms) != 0) {
			wl_fail("%s: %#lx-%#lx is %s, expected %s", what, (unsigned long)m->start,
				(unsigned long)m->end, m->perms, perms);
			return;
		}
		at = m->end;
	}
}

static void expect_hole(const char *what, void *p, size_t pages)
{
	uintptr_t start = (uintptr_t)p, end = start + pages * ps;
	unsigned char vec[HOLE_PAGES];
	int r;

	for (size_t i = 0; i < nr_maps; i++)
		if (maps[i].start < end && start < maps[i].end)
			wl_fail("%s: %#lx-%#lx should be unmapped but maps shows %#lx-%#lx %s", what,
				(unsigned long)start, (unsigned long)end, (unsigned long)maps[i].start,
				(unsigned long)maps[i].end, maps[i].perms);
	errno = 0;
	r = msync(p, pages * ps, MS_ASYNC);
	wl_expect(r == -1 && errno == ENOMEM, "%s: msync returned %d (%m), expected ENOMEM", what, r);
	errno = 0;
	r = mincore(p, pages * ps, vec);
	wl_expect(r == -1 && errno == ENOMEM, "%s: mincore returned %d (%m), expected ENOMEM", what, r);
}

static void expect_pages(const char *what, const unsigned char *p, size_t first, size_t pages, uint64_t seed)
{
	char msg[128];

	/* Each page has its own stream so that the message names the page. */
	for (size_t pg = first; pg < first + pages; pg++) {
		snprintf(msg, sizeof(msg), "%s, page %zu", what, pg);
		wl_expect_data(msg, p + pg * ps, ps, seed + pg);
	}
}

static void fill_pages(unsigned char *p, size_t pages, uint64_t seed)
{
	for (size_t pg = 0; pg < pages; pg++)
		wl_fill(p + pg * ps, ps, seed + pg);
}

int main(int argc, char **argv)
{
	unsigned char *none, *guard, *ro, *holey, *rx, *split;

	wl_init(argc, argv, 0, "");
	ps = wl_page_size();

	none = map_rw(NONE_PAGES);
	fill_pages(none, NONE_PAGES, SEED_NONE);
	protect(none, NONE_PAGES, PROT_NONE);

	/* Never touched, so all its pages must still be zero when opened up. */
	guard = mmap(NULL, GUARD_PAGES * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED)
		wl_die("mmap PROT_NONE failed: %m");

	ro = map_rw(RO_PAGES);
	fill_pages(ro, RO_PAGES, SEED_RO);
	protect(ro, RO_PAGES, PROT_READ);

	holey = map_rw(HOLEY_PAGES);
	fill_pages(holey, HOLEY_PAGES, SEED_HOLEY);

	rx = map_rw(RX_PAGES);
	fill_pages(rx, RX_PAGES, SEED_RX);
	protect(rx, RX_PAGES, PROT_READ | PROT_EXEC);

	/* One mapping split into rw / r / rw areas by mprotect. */
	split = map_rw(SPLIT_PAGES);
	fill_pages(split, SPLIT_PAGES, SEED_SPLIT);
	protect(split + SPLIT_RO_FIRST * ps, SPLIT_RO_PAGES, PROT_READ);

	/* Punched last: a later mmap could be placed into the hole. */
	if (munmap(holey + HOLE_FIRST * ps, HOLE_PAGES * ps) != 0)
		wl_die("munmap of the hole failed: %m");

	wl_ready();
	wl_wait_go();

	/* Before anything else can map memory into the hole. */
	read_maps();
	expect_perms("PROT_NONE area with data", none, NONE_PAGES, "---p");
	expect_perms("PROT_NONE guard area", guard, GUARD_PAGES, "---p");
	expect_perms("read-only area", ro, RO_PAGES, "r--p");
	expect_perms("area before the hole", holey, HOLE_FIRST, "rw-p");
	expect_perms("area after the hole", holey + (HOLE_FIRST + HOLE_PAGES) * ps,
		     HOLEY_PAGES - HOLE_FIRST - HOLE_PAGES, "rw-p");
	expect_hole("hole", holey + HOLE_FIRST * ps, HOLE_PAGES);
	expect_perms("read-exec area", rx, RX_PAGES, "r-xp");
	expect_perms("split area, first part", split, SPLIT_RO_FIRST, "rw-p");
	expect_perms("split area, read-only middle", split + SPLIT_RO_FIRST * ps, SPLIT_RO_PAGES, "r--p");
	expect_perms("split area, last part", split + (SPLIT_RO_FIRST + SPLIT_RO_PAGES) * ps,
		     SPLIT_PAGES - SPLIT_RO_FIRST - SPLIT_RO_PAGES, "rw-p");

	if (mprotect(none, NONE_PAGES * ps, PROT_READ) == 0)
		expect_pages("PROT_NONE area", none, 0, NONE_PAGES, SEED_NONE);
	else
		wl_fail("mprotect of the PROT_NONE area back to PROT_READ failed: %m");
	if (mprotect(guard, GUARD_PAGES * ps, PROT_READ) == 0)
		wl_expect(wl_find_nonzero(guard, GUARD_PAGES * ps) == SIZE_MAX, "untouched PROT_NONE area is not zero");
	else
		wl_fail("mprotect of the guard area back to PROT_READ failed: %m");
	expect_pages("read-only area", ro, 0, RO_PAGES, SEED_RO);
	expect_pages("area before the hole", holey, 0, HOLE_FIRST, SEED_HOLEY);
	expect_pages("area after the hole", holey, HOLE_FIRST + HOLE_PAGES, HOLEY_PAGES - HOLE_FIRST - HOLE_PAGES,
		     SEED_HOLEY);
	expect_pages("read-exec area", rx, 0, RX_PAGES, SEED_RX);
	expect_pages("split area", split, 0, SPLIT_PAGES, SEED_SPLIT);
	return wl_finish();
}
