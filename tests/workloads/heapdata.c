/* Seeded heap, mmap, sparse, global and TLS data shared by wl-heap, wl-static and wl-refuse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heapdata.h"
#include "wl.h"

#define SEED_MALLOC   0x6d616c6c6f630000ull
#define SEED_MMAP     0x6d6d617000000000ull
#define SEED_SPARSE   0x7370617273650000ull
#define SEED_CHURN    0x636875726e000000ull
#define SEED_BSS      0x6273730000000000ull
#define SEED_DATA     0x6461746100000000ull
#define SEED_TLS      0x746c730000000000ull
#define SPARSE_STRIDE 1000

#define MAX_BUFS  64
#define MAX_CHURN 8192

struct area {
	void *p;
	size_t len;
	uint64_t seed;
};

static struct area mallocs[MAX_BUFS], mmaps[MAX_BUFS];
static unsigned nr_mallocs, nr_mmaps;
static struct area churn[MAX_CHURN];
static unsigned nr_churn;
static unsigned char *sparse;
static size_t sparse_len;
static void *brk_at_ready;

/* .bss and .data live in the executable's private writable mappings. */
static unsigned char bss_area[192 * 1024];
static unsigned char data_area[8192] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static __thread uint64_t tls_value = 42;

static void add_malloc(size_t len)
{
	struct area *a = &mallocs[nr_mallocs];

	if (nr_mallocs == MAX_BUFS)
		wl_die("too many malloc buffers");
	a->p = malloc(len);
	if (!a->p)
		wl_die("malloc(%zu) failed", len);
	a->len = len;
	a->seed = SEED_MALLOC + nr_mallocs;
	wl_fill(a->p, len, a->seed);
	nr_mallocs++;
}

static void add_mmap(size_t len)
{
	struct area *a = &mmaps[nr_mmaps];

	if (nr_mmaps == MAX_BUFS)
		wl_die("too many mmap areas");
	a->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a->p == MAP_FAILED)
		wl_die("mmap(%zu) failed: %m", len);
	a->len = len;
	a->seed = SEED_MMAP + nr_mmaps;
	wl_fill(a->p, len, a->seed);
	nr_mmaps++;
}

void heapdata_setup(const struct heapdata_opts *opts)
{
	/* Sizes around the allocator's bins, page size and mmap threshold. */
	static const size_t sizes[] = {
		1,    7,    8,	  15,	 16,	31,	64,	100,	255,	 1000,
		4095, 4096, 4097, 10000, 65536, 131071, 131072, 200000, 1 << 20, 3 << 20,
	};
	size_t ps = wl_page_size();
	unsigned i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i] <= opts->max_malloc)
			add_malloc(sizes[i]);

	add_mmap(ps);
	add_mmap(16 * ps + 123); /* the tail of the last page stays zero */
	for (size_t len = 64 * 1024; len <= opts->max_mmap; len *= 4)
		add_mmap(len);

	if (opts->churn > MAX_CHURN)
		wl_die("churn %u > %u", opts->churn, MAX_CHURN);
	for (i = 0; i < opts->churn; i++) {
		struct area *a = &churn[i];

		a->len = 1 + wl_word(SEED_CHURN, i) % 600;
		a->seed = SEED_CHURN + 1 + i;
		a->p = malloc(a->len);
		if (!a->p)
			wl_die("malloc(%zu) failed", a->len);
		wl_fill(a->p, a->len, a->seed);
	}
	nr_churn = opts->churn;
	/* Free lists that survive C/R are what the allocator needs next. */
	for (i = 0; i < nr_churn; i += 3) {
		free(churn[i].p);
		churn[i].p = NULL;
	}

	sparse_len = opts->sparse_bytes;
	if (sparse_len) {
		sparse = mmap(NULL, sparse_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			      0);
		if (sparse == MAP_FAILED)
			wl_die("mmap(%zu, MAP_NORESERVE) failed: %m", sparse_len);
		for (size_t pg = 0; pg * ps < sparse_len; pg += SPARSE_STRIDE)
			wl_fill(sparse + pg * ps, ps, SEED_SPARSE + pg);
	}

	wl_fill(bss_area, sizeof(bss_area), SEED_BSS);
	/* Only part of .data changes, so its pages mix file and new contents. */
	wl_fill(data_area + 4096, sizeof(data_area) - 4096, SEED_DATA);
	tls_value = wl_word(SEED_TLS, 0);
	brk_at_ready = sbrk(0);
}

static void check_sparse(void)
{
	size_t ps = wl_page_size(), pages = sparse_len / ps, bad_zero = 0, off;

	for (size_t pg = 0; pg < pages; pg++) {
		unsigned char *p = sparse + pg * ps;

		if (pg % SPARSE_STRIDE == 0) {
			wl_expect_data("sparse mapping, written page", p, ps, SEED_SPARSE + pg);
			continue;
		}
		off = wl_find_nonzero(p, ps);
		if (off != SIZE_MAX && bad_zero++ < 5)
			wl_fail("sparse mapping: untouched page %zu (%p) is not zero at offset %zu", pg, (void *)p,
				off);
	}
	if (bad_zero > 5)
		wl_fail("sparse mapping: %zu untouched pages are not zero", bad_zero);
}

static void check_allocator(void)
{
	unsigned char *p, *q;
	void *grown;
	size_t len = mallocs[0].len;

	/* Allocating into the fragmented heap must not disturb live buffers. */
	for (unsigned i = 0; i < nr_churn; i++)
		if (!churn[i].p)
			churn[i].p = malloc(churn[i].len);
	for (unsigned i = 0; i < nr_churn; i++)
		free(churn[i].p);

	p = malloc(1 << 20);
	q = malloc(100);
	wl_expect(p && q, "malloc after restore failed");
	if (p && q) {
		memset(p, 0xa5, 1 << 20);
		memset(q, 0x5a, 100);
	}
	free(q);
	free(p);

	/* realloc moves the buffer and must carry the old contents along. */
	grown = realloc(mallocs[0].p, 256 * 1024);
	wl_expect(grown != NULL, "realloc failed");
	if (grown) {
		mallocs[0].p = grown;
		wl_expect_data("realloc'd buffer", grown, len, mallocs[0].seed);
	}

	/* The restored mm must let brk grow (its start and end came from the image). */
	p = sbrk(64 * 1024);
	wl_expect(p != (void *)-1, "sbrk(64 KiB) failed: %m");
	if (p != (void *)-1) {
		memset(p, 0x77, 64 * 1024);
		sbrk(-64 * 1024);
	}
}

void heapdata_check(void)
{
	void *brk_now = sbrk(0);

	wl_expect(brk_now == brk_at_ready, "program break moved: %p, was %p", brk_now, brk_at_ready);
	for (unsigned i = 0; i < nr_mallocs; i++)
		wl_expect_data("malloc'd buffer", mallocs[i].p, mallocs[i].len, mallocs[i].seed);
	for (unsigned i = 0; i < nr_mmaps; i++) {
		struct area *a = &mmaps[i];
		size_t ps = wl_page_size(), tail = (ps - a->len % ps) % ps;

		wl_expect_data("mmap'd area", a->p, a->len, a->seed);
		wl_expect(wl_find_nonzero((char *)a->p + a->len, tail) == SIZE_MAX,
			  "mmap'd area %p: bytes after its end are not zero", a->p);
	}
	for (unsigned i = 0; i < nr_churn; i++)
		if (churn[i].p)
			wl_expect_data("small heap block", churn[i].p, churn[i].len, churn[i].seed);
	if (sparse)
		check_sparse();
	wl_expect_data(".bss array", bss_area, sizeof(bss_area), SEED_BSS);
	wl_expect(data_area[0] == 1 && data_area[7] == 8 && wl_find_nonzero(data_area + 8, 4096 - 8) == SIZE_MAX,
		  ".data array: initialised part changed");
	wl_expect_data(".data array, written part", data_area + 4096, sizeof(data_area) - 4096, SEED_DATA);
	wl_expect(tls_value == wl_word(SEED_TLS, 0), "TLS variable is %#llx, expected %#llx",
		  (unsigned long long)tls_value, (unsigned long long)wl_word(SEED_TLS, 0));
	if (!wl_failures())
		check_allocator();
}
