/*
 * SNAP_RESTORE_MAP_PAGES: choosing which stored pages the restorer maps
 * copy-on-write from the page file instead of the engine copying them in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"
#include "restore.h"

/*
 * Shorter runs are copied: each mapped run may split its area into three
 * VMAs, and the few pages it saves are not worth a VMA of their own.
 */
#define MAP_RUN_MIN_PAGES 16
/* VMAs left to the restored process for its own use, below vm.max_map_count. */
#define MAP_COUNT_RESERVE 4096
#define MAP_COUNT_DEFAULT 65530

static uint64_t max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	unsigned long long v = 0;

	if (!f)
		return MAP_COUNT_DEFAULT;
	if (fscanf(f, "%llu", &v) != 1 || !v)
		v = MAP_COUNT_DEFAULT;
	fclose(f);
	return v;
}

/*
 * Whether pages of area @v may become a private mapping of the page file.
 * Stacks grow down, which a file mapping cannot; wipe-on-fork is for
 * anonymous memory only; executable memory would need an exec mount for
 * the image directory; droppable memory has no stored pages.
 */
static bool area_mappable(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_ANON_PRIVATE && !(v->flags & (MAP_GROWSDOWN | MAP_DROPPABLE)) &&
	       !(v->madv & (1ull << MADV_WIPEONFORK)) && !(v->prot & PROT_EXEC) &&
	       !(v->path && !strcmp(v->path, "[stack]"));
}

/* Index of the area of @mi holding @addr, or SIZE_MAX (areas are sorted and disjoint: validated). */
static size_t vma_index(const struct mem_image *mi, uint64_t addr)
{
	size_t lo = 0, hi = mi->nr_vmas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mi->vmas[mid]->end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mi->nr_vmas && mi->vmas[lo]->start <= addr ? lo : SIZE_MAX;
}

/* An area that holds inherited runs (ours, or a child's at the same place) is filled: the fork shares it. */
static void mark_inherited(const struct mem_image *of, const struct mem_image *mi, bool *ok)
{
	for (size_t i = 0; i < of->nr_pages; i++) {
		const PagemapEntry *pe = of->pages[i];
		size_t k;

		if (!(pe->has_inherited && pe->inherited))
			continue;
		k = vma_index(mi, pe->vaddr);
		if (k != SIZE_MAX)
			ok[k] = false;
	}
}

/* A run to map and the page runs [first, last] it is made of. */
struct cand {
	struct mem_map_run run;
	size_t first, last;
};

static int cmp_len_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->run.len < y->run.len ? 1 : x->run.len > y->run.len ? -1 : 0;
}

static int cmp_start(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->run.start < y->run.start ? -1 : x->run.start > y->run.start;
}

static int plan_one(struct snap_ctx *ctx, struct restore_task *tasks, const size_t *parent, size_t nr, size_t idx,
		    uint64_t map_count)
{
	struct mem_image *mi = &tasks[idx].mem;
	uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE), budget, bytes = 0;
	struct cand *cands = NULL;
	size_t nr_cands = 0, m = 0;
	bool *ok = NULL, joinable = false;
	int r = 0;

	if (!mi->nr_pages)
		return 0;
	ok = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*ok));
	cands = calloc(mi->nr_pages, sizeof(*cands));
	mi->run_mapped = calloc(mi->nr_pages, sizeof(*mi->run_mapped));
	if (!ok || !cands || !mi->run_mapped) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < mi->nr_vmas; k++)
		ok[k] = area_mappable(mi->vmas[k]);
	mark_inherited(mi, mi, ok);
	for (size_t c = idx + 1; c < nr; c++)
		if (parent[c] == idx)
			mark_inherited(&tasks[c].mem, mi, ok);

	/* Runs next to each other in memory and in the file, in one area, are one mapping. */
	for (size_t i = 0; i < mi->nr_pages; i++) {
		const PagemapEntry *pe = mi->pages[i];
		struct cand *last = nr_cands ? &cands[nr_cands - 1] : NULL;
		size_t k = mem_run_has_data(pe) ? vma_index(mi, pe->vaddr) : SIZE_MAX;

		if (k == SIZE_MAX || !ok[k]) {
			joinable = false;
			continue;
		}
		if (joinable && last->run.start + last->run.len == pe->vaddr &&
		    last->run.offset + last->run.len == pe->offset && pe->vaddr > mi->vmas[k]->start) {
			last->run.len += (uint64_t)pe->nr_pages * ps;
			last->last = i;
			continue;
		}
		cands[nr_cands++] = (struct cand){
			.run = { .start = pe->vaddr,
				 .len = (uint64_t)pe->nr_pages * ps,
				 .offset = pe->offset,
				 .prot = mi->vmas[k]->prot,
				 .flags = mi->vmas[k]->flags & MAP_NORESERVE },
			.first = i,
			.last = i,
		};
		joinable = true;
	}
	for (size_t k = 0; k < nr_cands; k++)
		if (cands[k].run.len >= MAP_RUN_MIN_PAGES * ps)
			cands[m++] = cands[k];
	nr_cands = m;
	/*
	 * Each mapped run may cost two VMAs more than its area had: within
	 * vm.max_map_count, the largest runs win.
	 */
	budget = map_count > mi->nr_vmas + MAP_COUNT_RESERVE ? (map_count - mi->nr_vmas - MAP_COUNT_RESERVE) / 2 : 0;
	if (nr_cands > budget) {
		snap_info(ctx, "pid %d: %zu runs to map, %llu fit below vm.max_map_count %llu: the rest are copied",
			  tasks[idx].pstree->pid, nr_cands, (unsigned long long)budget, (unsigned long long)map_count);
		qsort(cands, nr_cands, sizeof(*cands), cmp_len_desc);
		nr_cands = (size_t)budget;
		qsort(cands, nr_cands, sizeof(*cands), cmp_start);
	}
	if (nr_cands) {
		mi->map_runs = calloc(nr_cands, sizeof(*mi->map_runs));
		if (!mi->map_runs) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t k = 0; k < nr_cands; k++) {
		mi->map_runs[k] = cands[k].run;
		for (size_t i = cands[k].first; i <= cands[k].last; i++)
			mi->run_mapped[i] = true;
		bytes += cands[k].run.len;
	}
	mi->nr_map_runs = nr_cands;
	if (nr_cands)
		snap_debug(ctx, "pid %d: %zu runs, %llu MiB mapped from %s", tasks[idx].pstree->pid, nr_cands,
			   (unsigned long long)(bytes >> 20), mi->head->pages_file);
out:
	free(cands);
	free(ok);
	return r;
}

int restore_map_pages_plan(struct snap_ctx *ctx, struct restore_task *tasks, const size_t *parent, size_t nr,
			   uint64_t map_count)
{
	if (!map_count)
		map_count = max_map_count();

	for (size_t i = 0; i < nr; i++) {
		int r = plan_one(ctx, tasks, parent, nr, i, map_count);

		if (r)
			return r;
	}
	return 0;
}
