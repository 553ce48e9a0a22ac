/* Unit tests of mem-map.c: which stored pages SNAP_RESTORE_MAP_PAGES maps, merged how, and how many. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "restore.h"

#define MAX_VMAS  8
#define MAX_RUNS  16
#define MAX_TASKS 2
/* A VMA budget that limits nothing. */
#define NO_LIMIT 1000000

/* One process's memory image, built by hand. */
struct fake {
	VmaEntry vmas[MAX_VMAS];
	VmaEntry *vp[MAX_VMAS];
	PagemapEntry runs[MAX_RUNS];
	PagemapEntry *rp[MAX_RUNS];
	PagemapHead head;
	PstreeEntry pe;
};

static struct fake fakes[MAX_TASKS];
static struct restore_task tasks[MAX_TASKS];
static size_t parent[MAX_TASKS];
static uint64_t ps;
static snap_ctx *ctx;

static void setup(void)
{
	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	memset(fakes, 0, sizeof(fakes));
	memset(tasks, 0, sizeof(tasks));
	memset(parent, 0, sizeof(parent));
	for (int t = 0; t < MAX_TASKS; t++) {
		fakes[t].head = (PagemapHead)PAGEMAP_HEAD__INIT;
		fakes[t].head.pages_file = "pages-1.img";
		fakes[t].pe = (PstreeEntry)PSTREE_ENTRY__INIT;
		fakes[t].pe.pid = 100 + t;
		tasks[t].pstree = &fakes[t].pe;
		tasks[t].mem.vmas = fakes[t].vp;
		tasks[t].mem.pages = fakes[t].rp;
		tasks[t].mem.head = &fakes[t].head;
	}
	cr_assert_eq(snap_ctx_new(&ctx), 0);
}

static void teardown(void)
{
	for (int t = 0; t < MAX_TASKS; t++) {
		free(tasks[t].mem.map_runs);
		free(tasks[t].mem.run_mapped);
	}
	snap_ctx_free(ctx);
}

TestSuite(mem_map, .init = setup, .fini = teardown);

/* Adds an area of @pages pages at page @at (in units of pages from 0x10000000). */
static VmaEntry *add_vma(int t, uint64_t at, uint64_t pages, VmaKind kind, uint32_t prot, uint32_t flags)
{
	struct mem_image *mi = &tasks[t].mem;
	VmaEntry *v = &fakes[t].vmas[mi->nr_vmas];

	*v = (VmaEntry)VMA_ENTRY__INIT;
	v->start = 0x10000000 + at * ps;
	v->end = v->start + pages * ps;
	v->kind = kind;
	v->prot = prot;
	v->flags = flags;
	fakes[t].vp[mi->nr_vmas++] = v;
	return v;
}

/* Adds a stored run of @pages pages at page @at, at page @off of the page file. */
static PagemapEntry *add_run(int t, uint64_t at, uint32_t pages, uint64_t off)
{
	struct mem_image *mi = &tasks[t].mem;
	PagemapEntry *pe = &fakes[t].runs[mi->nr_pages];

	*pe = (PagemapEntry)PAGEMAP_ENTRY__INIT;
	pe->vaddr = 0x10000000 + at * ps;
	pe->nr_pages = pages;
	pe->offset = off * ps;
	fakes[t].rp[mi->nr_pages++] = pe;
	return pe;
}

static void add_inherited(int t, uint64_t at, uint32_t pages)
{
	PagemapEntry *pe = add_run(t, at, pages, 0);

	pe->offset = 0;
	pe->has_inherited = pe->inherited = 1;
}

static void plan(size_t nr, uint64_t map_count)
{
	cr_assert_eq(restore_map_pages_plan(ctx, tasks, parent, nr, map_count), 0, "%s", snap_error(ctx));
}

#define RW (PROT_READ | PROT_WRITE)

Test(mem_map, only_plain_anonymous_private_memory)
{
	add_vma(0, 0, 64, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_vma(0, 100, 64, VMA_KIND__VMA_ANON_PRIVATE, RW, MAP_GROWSDOWN);
	add_vma(0, 200, 64, VMA_KIND__VMA_ANON_PRIVATE, RW | PROT_EXEC, 0);
	add_vma(0, 300, 64, VMA_KIND__VMA_ANON_PRIVATE, RW, 0)->madv = 1ull << MADV_WIPEONFORK;
	add_vma(0, 400, 64, VMA_KIND__VMA_ANON_PRIVATE, RW, 0)->path = "[stack]";
	add_vma(0, 500, 64, VMA_KIND__VMA_FILE_PRIVATE, RW, 0);
	add_vma(0, 600, 64, VMA_KIND__VMA_ANON_PRIVATE, PROT_NONE, MAP_NORESERVE);
	for (uint64_t k = 0; k < 7; k++)
		add_run(0, k * 100, 32, k * 32);
	plan(1, NO_LIMIT);

	cr_assert_eq(tasks[0].mem.nr_map_runs, 2);
	cr_assert_eq(tasks[0].mem.map_runs[0].start, 0x10000000);
	cr_assert_eq(tasks[0].mem.map_runs[0].len, 32 * ps);
	cr_assert_eq(tasks[0].mem.map_runs[0].prot, RW);
	cr_assert_eq(tasks[0].mem.map_runs[0].flags, 0);
	cr_assert_eq(tasks[0].mem.map_runs[1].start, 0x10000000 + 600 * ps);
	cr_assert_eq(tasks[0].mem.map_runs[1].offset, 6 * 32 * ps);
	cr_assert_eq(tasks[0].mem.map_runs[1].prot, PROT_NONE);
	cr_assert_eq(tasks[0].mem.map_runs[1].flags, MAP_NORESERVE);
	for (int k = 0; k < 7; k++)
		cr_assert_eq(tasks[0].mem.run_mapped[k], k == 0 || k == 6, "run %d", k);
}

Test(mem_map, runs_merge_when_contiguous_in_memory_and_file_and_short_ones_are_copied)
{
	add_vma(0, 0, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_vma(0, 100, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_run(0, 0, 10, 0);	  /* with the next: 20 pages */
	add_run(0, 10, 10, 10);	  /* */
	add_run(0, 20, 10, 50);	  /* next in memory, not in the file: alone, short */
	add_run(0, 40, 16, 60);	  /* exactly the minimum */
	add_run(0, 90, 10, 76);	  /* ends at the area's end... */
	add_run(0, 100, 10, 86);  /* ...and this starts the next area: not one run, both short */
	add_run(0, 150, 15, 200); /* one page short */
	plan(1, NO_LIMIT);

	cr_assert_eq(tasks[0].mem.nr_map_runs, 2);
	cr_assert_eq(tasks[0].mem.map_runs[0].start, 0x10000000);
	cr_assert_eq(tasks[0].mem.map_runs[0].len, 20 * ps);
	cr_assert_eq(tasks[0].mem.map_runs[1].start, 0x10000000 + 40 * ps);
	cr_assert_eq(tasks[0].mem.map_runs[1].len, 16 * ps);
	{
		static const bool want[] = { true, true, false, true, false, false, false };

		for (int k = 0; k < 7; k++)
			cr_assert_eq(tasks[0].mem.run_mapped[k], want[k], "run %d", k);
	}
}

Test(mem_map, memory_a_child_inherits_is_filled_in_parent_and_child)
{
	/* Parent: area A (shared with the child at fork) and area B (its own). */
	add_vma(0, 0, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_vma(0, 200, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_run(0, 0, 100, 0);
	add_run(0, 200, 100, 100);
	/* Child: the same A, half inherited, half its own; and C, its own. */
	add_vma(1, 0, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_vma(1, 400, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_inherited(1, 0, 50);
	add_run(1, 50, 50, 0);
	add_run(1, 400, 100, 50);
	parent[1] = 0;
	plan(2, NO_LIMIT);

	cr_assert_eq(tasks[0].mem.nr_map_runs, 1);
	cr_assert_eq(tasks[0].mem.map_runs[0].start, 0x10000000 + 200 * ps);
	cr_assert_eq(tasks[1].mem.nr_map_runs, 1);
	cr_assert_eq(tasks[1].mem.map_runs[0].start, 0x10000000 + 400 * ps);
	cr_assert(!tasks[1].mem.run_mapped[0] && !tasks[1].mem.run_mapped[1] && tasks[1].mem.run_mapped[2]);
}

Test(mem_map, below_max_map_count_the_largest_runs_win)
{
	add_vma(0, 0, 1000, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	/* Sizes 20, 50, 30, 40, 16 pages, gaps between them. */
	add_run(0, 0, 20, 0);
	add_run(0, 100, 50, 20);
	add_run(0, 200, 30, 70);
	add_run(0, 300, 40, 100);
	add_run(0, 400, 16, 140);
	/* Room for two runs: each may cost two VMAs, 4096 are left to the process. */
	plan(1, 1 + 4096 + 2 * 2);

	cr_assert_eq(tasks[0].mem.nr_map_runs, 2);
	cr_assert_eq(tasks[0].mem.map_runs[0].start, 0x10000000 + 100 * ps, "by address, the largest two");
	cr_assert_eq(tasks[0].mem.map_runs[1].start, 0x10000000 + 300 * ps);
	{
		static const bool want[] = { false, true, false, true, false };

		for (int k = 0; k < 5; k++)
			cr_assert_eq(tasks[0].mem.run_mapped[k], want[k], "run %d", k);
	}
}

Test(mem_map, no_room_at_all_maps_nothing)
{
	add_vma(0, 0, 100, VMA_KIND__VMA_ANON_PRIVATE, RW, 0);
	add_run(0, 0, 100, 0);
	plan(1, 4000);
	cr_assert_eq(tasks[0].mem.nr_map_runs, 0);
	cr_assert(!tasks[0].mem.run_mapped[0]);
}
