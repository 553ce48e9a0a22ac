/* Workload: private file mappings with copy-on-write pages, a shared read-only mapping and an open file. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wl.h"

#define FILE_PAGES 64
#define SEED_FILE  0x66696c6500000000ull
#define SEED_COW   0x636f770000000000ull
#define FD_OFFSET  12345
/* Page 5 only gets a few bytes changed: a COW page that is mostly file data. */
#define PARTIAL_PAGE 5
#define PARTIAL_OFF  1000
#define PARTIAL_LEN  24

static size_t ps;

/* Contents of page @pg of the file, seeded by its index. */
static uint64_t file_seed(size_t pg)
{
	return SEED_FILE + pg;
}

/* Pages 0, 3, 6, ... of the private mapping are rewritten after mapping. */
static int is_cow_page(size_t pg)
{
	return pg % 3 == 0;
}

/* Checks page @pg of a mapping of the file that nobody wrote to. */
static void expect_file_page(const char *what, const unsigned char *p, size_t pg)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "%s, page %zu (file contents)", what, pg);
	wl_expect_data(msg, p, ps, file_seed(pg));
}

int main(int argc, char **argv)
{
	char path[PATH_MAX], msg[128];
	unsigned char *page, *priv, *shared, *tail, expect[PARTIAL_LEN];
	volatile unsigned char sink = 0;
	off_t pos;
	int fd;

	wl_init(argc, argv, 0, "");
	ps = wl_page_size();
	wl_path(path, "cow.dat");

	page = malloc(ps);
	if (!page)
		wl_die("malloc failed");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("cannot create %s: %m", path);
	for (size_t pg = 0; pg < FILE_PAGES; pg++) {
		wl_fill(page, ps, file_seed(pg));
		if (pwrite(fd, page, ps, pg * ps) != (ssize_t)ps)
			wl_die("cannot write %s: %m", path);
	}

	priv = mmap(NULL, FILE_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	shared = mmap(NULL, FILE_PAGES * ps, PROT_READ, MAP_SHARED, fd, 0);
	/* A private read-only view at a file offset checks that pgoff survives. */
	tail = mmap(NULL, 16 * ps, PROT_READ, MAP_PRIVATE, fd, 40 * ps);
	if (priv == MAP_FAILED || shared == MAP_FAILED || tail == MAP_FAILED)
		wl_die("mmap of %s failed: %m", path);

	for (size_t pg = 0; pg < FILE_PAGES; pg++) {
		if (is_cow_page(pg))
			wl_fill(priv + pg * ps, ps, SEED_COW + pg);
		else if (pg % 3 == 1)
			sink ^= priv[pg * ps]; /* read-faulted, still backed by the file */
	}
	wl_fill(expect, sizeof(expect), SEED_COW + 1000);
	memcpy(priv + PARTIAL_PAGE * ps + PARTIAL_OFF, expect, sizeof(expect));
	for (size_t pg = 0; pg < FILE_PAGES; pg += 7)
		sink ^= shared[pg * ps];
	(void)sink;

	/* The fd stays open with an offset in the middle of the file. */
	if (lseek(fd, FD_OFFSET, SEEK_SET) != FD_OFFSET)
		wl_die("lseek failed: %m");

	wl_ready();
	wl_wait_go();

	for (size_t pg = 0; pg < FILE_PAGES; pg++) {
		unsigned char *p = priv + pg * ps;

		if (is_cow_page(pg)) {
			snprintf(msg, sizeof(msg), "private mapping, page %zu (written)", pg);
			wl_expect_data(msg, p, ps, SEED_COW + pg);
		} else if (pg == PARTIAL_PAGE) {
			wl_expect(memcmp(p + PARTIAL_OFF, expect, sizeof(expect)) == 0,
				  "private mapping, page %d: the %d written bytes are lost", PARTIAL_PAGE, PARTIAL_LEN);
			wl_fill(page, ps, file_seed(pg));
			wl_expect(memcmp(p, page, PARTIAL_OFF) == 0 &&
					  memcmp(p + PARTIAL_OFF + PARTIAL_LEN, page + PARTIAL_OFF + PARTIAL_LEN,
						 ps - PARTIAL_OFF - PARTIAL_LEN) == 0,
				  "private mapping, page %d: file data around the written bytes changed", PARTIAL_PAGE);
		} else {
			expect_file_page("private mapping", p, pg);
		}
		expect_file_page("shared read-only mapping", shared + pg * ps, pg);
	}
	for (size_t pg = 0; pg < 16; pg++)
		expect_file_page("private mapping at file offset 40 pages", tail + pg * ps, 40 + pg);

	pos = lseek(fd, 0, SEEK_CUR);
	wl_expect(pos == FD_OFFSET, "file offset is %lld, expected %d", (long long)pos, FD_OFFSET);
	/* The private writes must never have reached the file. */
	for (size_t pg = 0; pg < FILE_PAGES; pg++) {
		if (pread(fd, page, ps, pg * ps) != (ssize_t)ps) {
			wl_fail("cannot read page %zu of %s through the restored fd: %m", pg, path);
			break;
		}
		snprintf(msg, sizeof(msg), "file cow.dat, page %zu", pg);
		wl_expect_data(msg, page, ps, file_seed(pg));
	}
	return wl_finish();
}
