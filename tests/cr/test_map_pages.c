/*
 * SNAP_RESTORE_MAP_PAGES: stored pages mapped copy-on-write from the page
 * file. The workloads check their memory as with a copying restore; copies
 * of one snapshot share the page-cache pages until they write; a copy
 * restored this way can be dumped again and restored; a failed restore
 * leaves nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(map_pages);

/* Restores @w from @imgdir with SNAP_RESTORE_MAP_PAGES | @flags (no PID namespace: the root gets w's pid). */
static int restore_mapped(struct h_wl *w, const char *imgdir, unsigned flags)
{
	struct snap_restore_opts o = { .size = sizeof(o),
				       .images_dir = imgdir,
				       .flags = SNAP_RESTORE_MAP_PAGES | flags };
	snap_ctx *ctx;
	pid_t pid = 0;
	int r;

	r = h_ctx_new(&ctx);
	if (r < 0)
		return r;
	r = snap_restore(ctx, &o, &pid);
	if (r < 0)
		h_fail(r, "map-pages restore of %s from %s failed: %s", w->name, imgdir, snap_error(ctx));
	else if (pid != w->orig_pid)
		r = h_fail(-EPROTO, "restore returned pid %d, not %d", (int)pid, (int)w->orig_pid);
	else
		w->pid = pid;
	snap_ctx_free(ctx);
	return r;
}

/* One mapping of a page file of @imgdir in @pid's maps. */
struct file_map {
	unsigned long long start, end, off;
};

/* The mappings of @imgdir's page files in /proc/@pid/maps; returns how many (at most @max). */
static int page_file_maps(pid_t pid, const char *imgdir, struct file_map *out, int max)
{
	char path[64], *maps, *line, *save = NULL, want[PATH_MAX + 8];
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	snprintf(want, sizeof(want), "%s/pages-", imgdir);
	maps = h_read_file(path, NULL);
	cr_assert(maps, "cannot read %s: %m", path);
	for (line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct file_map m;

		if (!strstr(line, want) || sscanf(line, "%llx-%llx %*s %llx", &m.start, &m.end, &m.off) != 3)
			continue;
		if (n < max)
			out[n] = m;
		n++;
	}
	free(maps);
	return n;
}

/* Every process of the tree rooted at @pid (by /proc/PID/task/PID/children). */
static int tree_pids(pid_t pid, pid_t *out, int max)
{
	int n = 0;

	if (max <= 0)
		return 0;
	out[n++] = pid;
	for (int i = 0; i < n; i++) {
		char path[96], *s, *p, *end;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)out[i], (int)out[i]);
		s = h_read_file(path, NULL);
		for (p = s; s && *p && n < max; p = end) {
			long c = strtol(p, &end, 10);

			if (end == p)
				break;
			out[n++] = (pid_t)c;
		}
		free(s);
	}
	return n;
}

/* Mapped ranges in the restored tree of @w (all its processes): how many. */
static int mapped_in_tree(const struct h_wl *w, const char *imgdir)
{
	pid_t pids[64];
	struct file_map m[1];
	int n = tree_pids(w->pid, pids, 64), total = 0;

	for (int i = 0; i < n; i++)
		total += page_file_maps(pids[i], imgdir, m, 0);
	return total;
}

/*
 * The whole cycle with a map-pages restore. @want_mapped: the workload has
 * runs large enough, so some of its memory must be mapped from the page
 * file (else the test would pass with a copying restore too).
 */
static void run_mapped(const char *name, const char *const *args, bool want_mapped)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	int mapped;

	H_OK(h_start(&w, name, args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	H_OK(restore_mapped(&w, imgdir, 0));
	mapped = mapped_in_tree(&w, imgdir);
	if (want_mapped)
		cr_assert(mapped > 0, "%s: nothing of it is mapped from %s", name, imgdir);
	H_OK(h_finish(&w));
}

Test(map_pages, heap)
{
	run_mapped("wl-heap", NULL, true);
}

Test(map_pages, cow)
{
	run_mapped("wl-cow", NULL, false); /* its stored pages are in private file mappings: copied */
}

Test(map_pages, prot)
{
	run_mapped("wl-prot", NULL, true);
}

Test(map_pages, threads)
{
	static const char *const threads64[] = { "64", NULL };

	run_mapped("wl-threads", threads64, false);
}

/* Children inherit part of their parents' memory: those areas are filled, the rest may be mapped. */
Test(map_pages, tree)
{
	run_mapped("wl-tree", NULL, false);
}

Test(map_pages, prefork)
{
	run_mapped("wl-prefork", NULL, false);
}

Test(map_pages, shm_tree)
{
	run_mapped("wl-shm-tree", NULL, false);
}

Test(map_pages, bench_mem)
{
	static const char *const mib16[] = { "16", NULL };

	run_mapped("wl-bench-mem", mib16, true);
}

/* ---- two copies at once ---- */

/* Restores one copy in a PID namespace; returns the init's pid. */
static pid_t restore_copy(const char *imgdir)
{
	struct snap_restore_opts o = { .size = sizeof(o),
				       .images_dir = imgdir,
				       .flags = SNAP_RESTORE_PIDNS | SNAP_RESTORE_MAP_PAGES };
	snap_ctx *ctx;
	pid_t pid = 0;
	int r;

	H_OK(h_ctx_new(&ctx));
	r = snap_restore(ctx, &o, &pid);
	cr_assert(r == 0, "map-pages restore of a copy failed (%d): %s", r, snap_error(ctx));
	snap_ctx_free(ctx);
	return pid;
}

/* The copy's root as seen here: the init's only child. */
static pid_t root_of(pid_t init)
{
	char path[96], *s;
	pid_t root;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	s = h_read_file(path, NULL);
	cr_assert(s && atoi(s) > 0, "init %d has no child", (int)init);
	root = atoi(s);
	free(s);
	return root;
}

/* The pagemap entry of @addr in @pid: bit 63 present, bits 0-54 the frame. */
static uint64_t pagemap_of(pid_t pid, unsigned long long addr)
{
	char path[64];
	uint64_t ent = 0;
	long ps = sysconf(_SC_PAGESIZE);
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "%s: %m", path);
	cr_assert(pread(fd, &ent, sizeof(ent), (off_t)(addr / (unsigned long long)ps * 8)) == sizeof(ent));
	close(fd);
	return ent;
}

#define PFN(e) ((e) & ((1ull << 55) - 1))

static void mem_rw(pid_t pid, unsigned long long addr, void *buf, size_t len, bool write)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	cr_assert(fd >= 0, "%s: %m", path);
	n = write ? pwrite(fd, buf, len, (off_t)addr) : pread(fd, buf, len, (off_t)addr);
	cr_assert(n == (ssize_t)len, "%s %s at 0x%llx: %zd: %m", write ? "writing" : "reading", path, addr, n);
	close(fd);
}

/* The Rss and Anonymous (kB) of the mapping starting at @start, from /proc/@pid/smaps. */
static void smaps_of(pid_t pid, unsigned long long start, long *ret_rss, long *ret_anon)
{
	char path[64], *s, *p, head[32];

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	s = h_read_file(path, NULL);
	cr_assert(s, "%s: %m", path);
	snprintf(head, sizeof(head), "%llx-", start);
	for (p = s; p && strncmp(p, head, strlen(head)); p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		;
	cr_assert(p, "no mapping at 0x%llx in %s", start, path);
	cr_assert(strstr(p, "\nRss:") && strstr(p, "\nAnonymous:"));
	*ret_rss = atol(strstr(p, "\nRss:") + 5);
	*ret_anon = atol(strstr(p, "\nAnonymous:") + 11);
	free(s);
}

/*
 * Two copies of a 32 MiB snapshot at once: the same physical pages back
 * both (read, they are faulted in from the one page cache); a write in
 * one copy gives it a page of its own and leaves the other's as it was;
 * then both check their whole memory.
 */
Test(map_pages, copies_share_pages)
{
	static const char *const mib32[] = { "32", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	struct file_map m[2][8];
	pid_t init[2], root[2];
	long ps = sysconf(_SC_PAGESIZE), anon, rss;
	uint8_t *a = malloc((size_t)ps), *b = malloc((size_t)ps), *mine = malloc((size_t)ps);
	unsigned long long addr, len;
	int n[2], status;

	cr_assert(a && b && mine);
	H_OK(h_start(&w, "wl-bench-mem", mib32));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	for (int i = 0; i < 2; i++) {
		init[i] = restore_copy(imgdir);
		root[i] = root_of(init[i]);
		n[i] = page_file_maps(root[i], imgdir, m[i], 8);
		cr_assert(n[i] >= 1 && n[i] <= 8, "copy %d: %d mappings of the page file", i, n[i]);
	}
	cr_assert(n[0] == n[1] && m[0][0].start == m[1][0].start && m[0][0].off == m[1][0].off);
	/* The largest mapping: the benchmark area. */
	for (int k = 1; k < n[0]; k++)
		if (m[0][k].end - m[0][k].start > m[0][0].end - m[0][0].start)
			m[0][0] = m[0][k];
	addr = m[0][0].start;
	len = m[0][0].end - m[0][0].start;
	cr_assert(len >= (16ull << 20), "only 0x%llx bytes mapped", len);

	/* Fault the whole range in, in both: reading through /proc/PID/mem does not copy. */
	for (unsigned long long off = 0; off < len; off += (unsigned long long)ps) {
		mem_rw(root[0], addr + off, a, (size_t)ps, false);
		mem_rw(root[1], addr + off, b, (size_t)ps, false);
		cr_assert(!memcmp(a, b, (size_t)ps), "copies differ at 0x%llx", addr + off);
	}
	for (unsigned long long off = 0; off < len; off += 64 * (unsigned long long)ps) {
		uint64_t e0 = pagemap_of(root[0], addr + off), e1 = pagemap_of(root[1], addr + off);

		cr_assert((e0 >> 63) && (e1 >> 63) && PFN(e0) && PFN(e0) == PFN(e1),
			  "0x%llx: not the same page in both copies (pagemap %llx, %llx)", addr + off,
			  (unsigned long long)e0, (unsigned long long)e1);
	}
	for (int i = 0; i < 2; i++) {
		/* All of it resident, none of it a private copy: page cache. */
		smaps_of(root[i], addr, &rss, &anon);
		cr_assert(rss * 1024 >= (long)len && anon == 0, "copy %d: Rss %ld kB, Anonymous %ld kB of 0x%llx", i,
			  rss, anon, len);
	}

	/* Copy 0 writes one page: it gets its own, copy 1 still sees the snapshot's. */
	mem_rw(root[0], addr, a, (size_t)ps, false);
	memcpy(mine, a, (size_t)ps);
	for (long k = 0; k < ps; k++)
		mine[k] ^= 0x5a;
	mem_rw(root[0], addr, mine, (size_t)ps, true);
	mem_rw(root[1], addr, b, (size_t)ps, false);
	cr_assert(!memcmp(a, b, (size_t)ps), "a write in copy 0 showed in copy 1");
	mem_rw(root[0], addr, b, (size_t)ps, false);
	cr_assert(!memcmp(mine, b, (size_t)ps), "copy 0 does not read what it wrote");
	cr_assert(PFN(pagemap_of(root[0], addr)) != PFN(pagemap_of(root[1], addr)), "the written page is still shared");
	smaps_of(root[0], addr, &rss, &anon);
	cr_assert(anon * 1024 == ps, "copy 0: %ld kB of its own after writing one page", anon);
	smaps_of(root[1], addr, &rss, &anon);
	cr_assert(anon == 0, "copy 1: %ld kB of its own after copy 0 wrote", anon);
	/* The snapshot's bytes back, for the copy's own check. */
	mem_rw(root[0], addr, a, (size_t)ps, true);

	H_OK(h_go(&w));
	for (int i = 0; i < 2; i++) {
		H_OK(h_wait_pid(init[i], 60000, &status));
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "copy %d: %s", i,
			  h_describe_status(status, (char[64]){ 0 }, 64));
	}
	free(a);
	free(b);
	free(mine);
}

/* snapcr restore --map-pages, with --pidns --netns: the copy maps its memory and checks it. */
Test(map_pages, cli)
{
	static const char *const mib16[] = { "16", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], dir[PATH_MAX], pidfile[PATH_MAX + 16], out[PATH_MAX + 16], err[PATH_MAX + 16], *s;
	struct file_map m[8];
	pid_t init;
	int status;

	H_OK(h_start(&w, "wl-bench-mem", mib16));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	H_OK(h_tmpdir(dir, "cli"));
	snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	{
		const char *const argv[] = { h_snapcr_path(), "restore",   "-D",    imgdir,	   "-d", "--pidns",
					     "--netns",	      "--pidfile", pidfile, "--map-pages", NULL };

		H_OK(h_run_cmd(argv, out, err, 30000, &status));
		s = h_read_file(err, NULL);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "snapcr restore: status 0x%x: %s", status,
			  s ? s : "");
		free(s);
	}
	s = h_read_file(pidfile, NULL);
	cr_assert(s && (init = atoi(s)) > 0);
	free(s);
	cr_assert(page_file_maps(root_of(init), imgdir, m, 8) >= 1, "nothing mapped from %s", imgdir);
	H_OK(h_go(&w));
	H_OK(h_wait_pid(init, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "copy: %s",
		  h_describe_status(status, (char[64]){ 0 }, 64));
}

/*
 * A copy restored with mapped pages, one page of it written (so it has
 * both pages of the file and a page of its own there), dumped into a new
 * directory: that image maps the rest from the first one's page file and
 * stores the written page; it comes back with a copying restore, and a
 * dump of that with a mapping one.
 */
Test(map_pages, dump_of_a_mapped_copy)
{
	static const char *const mib16[] = { "16", NULL };
	struct h_wl w = { 0 };
	char img1[PATH_MAX], img2[PATH_MAX], img3[PATH_MAX];
	struct file_map m[8];
	long ps = sysconf(_SC_PAGESIZE);
	uint8_t *orig = malloc((size_t)ps), *mine = malloc((size_t)ps), *back = malloc((size_t)ps);
	unsigned long long at;
	int n;

	cr_assert(orig && mine && back);
	H_OK(h_start(&w, "wl-bench-mem", mib16));
	H_OK(h_tmpdir(img1, "img1"));
	H_OK(h_tmpdir(img2, "img2"));
	H_OK(h_tmpdir(img3, "img3"));
	H_OK(h_dump(&w, img1, 0, NULL));
	H_OK(restore_mapped(&w, img1, 0));
	n = page_file_maps(w.pid, img1, m, 8);
	cr_assert(n >= 1, "nothing mapped from %s", img1);
	at = m[0].start + (unsigned long long)ps;
	mem_rw(w.pid, at, orig, (size_t)ps, false);
	for (long k = 0; k < ps; k++)
		mine[k] = (uint8_t)(orig[k] ^ 0xa5);
	mem_rw(w.pid, at, mine, (size_t)ps, true);

	/* Never into the directory whose page file it maps: image files are never written over. */
	{
		struct snap_dump_opts o = { .size = sizeof(o), .pid = w.pid, .images_dir = img1 };
		snap_ctx *ctx;
		int r;

		H_OK(h_ctx_new(&ctx));
		r = snap_dump(ctx, &o);
		cr_assert(r < 0, "a dump into %s, whose page file the copy maps, succeeded", img1);
		snap_ctx_free(ctx);
		cr_assert(kill(w.pid, 0) == 0, "the copy is gone after a refused dump");
	}
	H_OK(h_dump(&w, img2, 0, NULL));
	H_OK(h_restore(&w, img2, NULL));
	/* Mapped as a file from img1, with the written page stored in img2. */
	cr_assert(page_file_maps(w.pid, img1, m, 8) >= 1, "the new image does not map %s's page file", img1);
	mem_rw(w.pid, at, back, (size_t)ps, false);
	cr_assert(!memcmp(back, mine, (size_t)ps), "the written page came back as the page file's");
	mem_rw(w.pid, at, orig, (size_t)ps, true);

	H_OK(h_dump(&w, img3, 0, NULL));
	H_OK(restore_mapped(&w, img3, 0));
	H_OK(h_finish(&w));
	free(orig);
	free(mine);
	free(back);
}

/* ---- failure ---- */

/* Whether any process maps or holds open a file under @dir. */
static bool anything_holds(const char *dir)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;

	cr_assert(d);
	while (!found && (e = readdir(d))) {
		char path[300], link[PATH_MAX], *maps;
		DIR *fds;
		struct dirent *f;

		if (atoi(e->d_name) <= 0 || atoi(e->d_name) == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", e->d_name);
		maps = h_read_file(path, NULL);
		if (maps && strstr(maps, dir))
			found = true;
		free(maps);
		snprintf(path, sizeof(path), "/proc/%s/fd", e->d_name);
		fds = opendir(path);
		while (!found && fds && (f = readdir(fds))) {
			char fp[600];
			ssize_t k;

			snprintf(fp, sizeof(fp), "%s/%s", path, f->d_name);
			k = readlink(fp, link, sizeof(link) - 1);
			if (k > 0) {
				link[k] = '\0';
				found = !strncmp(link, dir, strlen(dir));
			}
		}
		if (fds)
			closedir(fds);
	}
	closedir(d);
	return found;
}

/*
 * A map-pages restore into namespaces that fails once the processes exist
 * (premap under a small address-space limit) leaves no process and nothing
 * holding the page file; then it works.
 */
Test(map_pages, failure_leaves_nothing)
{
	static const char *const mib64[] = { "64", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t child, init;
	int status;

	H_OK(h_start(&w, "wl-bench-mem", mib64));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		struct rlimit lim = { address_space_bytes() + (32u << 20), RLIM_INFINITY };
		struct snap_restore_opts o = { .size = sizeof(o),
					       .images_dir = imgdir,
					       .flags = SNAP_RESTORE_PIDNS | SNAP_RESTORE_MAP_PAGES };
		snap_ctx *ctx;
		pid_t pid = 0;
		int r;

		if (snap_ctx_new(&ctx) || setrlimit(RLIMIT_AS, &lim))
			_exit(10);
		r = snap_restore(ctx, &o, &pid);
		fprintf(stderr, "restore under RLIMIT_AS: %d %s\n", r, snap_error(ctx));
		if (r == 0)
			_exit(11);
		if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD)
			_exit(12);
		if (!contains_number(snap_error(ctx), w.orig_pid))
			_exit(14);
		_exit(0);
	}
	H_OK(h_wait_pid(child, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "restore under a small RLIMIT_AS did not fail cleanly (child status 0x%x)", status);
	cr_assert(!anything_holds(imgdir), "a process still holds a file of %s", imgdir);

	init = restore_copy(imgdir);
	H_OK(h_go(&w));
	H_OK(h_wait_pid(init, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
