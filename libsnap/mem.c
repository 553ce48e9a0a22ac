/*
 * Memory: classifying areas, finding the pages that hold data (pagemap),
 * moving them to the page file in large batches, and at restore premapping
 * areas and filling them back with large preadv() calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "files.h"
#include "hooks.h"
#include "mem.h"

#define PM_PFN_MASK  ((1ull << 55) - 1)
#define PM_EXCLUSIVE (1ull << 56)
#define PM_FILE	     (1ull << 61)
#define PM_SWAP	     (1ull << 62)
#define PM_PRESENT   (1ull << 63)

#define DRAIN_BUF_SIZE (16u << 20)
#define PAGEMAP_BATCH  65536 /* pagemap entries read per pread */

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static bool is_label(const struct proc_vma *v, const char *label)
{
	return v->path && !strcmp(v->path, label);
}

/* Classifies one area; 0 with *ret_kind, or a refusal naming it. */
static int classify(struct snap_ctx *ctx, pid_t pid, const struct proc_vma *v, VmaKind *ret_kind)
{
	unsigned long long s = v->start, e = v->end;

	if (is_label(v, "[vdso]"))
		*ret_kind = VMA_KIND__VMA_VDSO;
	else if (is_label(v, "[vvar]"))
		*ret_kind = VMA_KIND__VMA_VVAR;
	else if (is_label(v, "[vvar_vclock]"))
		*ret_kind = VMA_KIND__VMA_VVAR_VCLOCK;
	else if (is_label(v, "[vsyscall]"))
		*ret_kind = VMA_KIND__VMA_VSYSCALL;
	else if (v->vmflags & VMF_HUGETLB)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: hugetlb mapping at 0x%llx-0x%llx is not supported yet", pid,
				 s, e);
	else if (v->vmflags & (VMF_IO | VMF_PFNMAP))
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: device (I/O) mapping at 0x%llx-0x%llx (%s) is not supported", pid, s, e,
				 v->path ? v->path : "anonymous");
	else if (v->shared && v->path && (!strcmp(v->path, "/dev/zero") || !strncmp(v->path, "[anon_shmem:", 12)) &&
		 (v->deleted || v->path[0] == '['))
		*ret_kind = VMA_KIND__VMA_ANON_SHARED;
	/* A memfd mapped shared is shmem as well; mem_check_memfd_fds() refuses one also open as an fd. */
	else if (v->shared && v->path && v->deleted && !strncmp(v->path, "/memfd:", 7) && !(v->vmflags & VMF_HUGETLB))
		*ret_kind = VMA_KIND__VMA_ANON_SHARED;
	else if (v->shared && (!v->path || v->path[0] != '/' || v->deleted || !strncmp(v->path, "/SYSV", 5)))
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: shared memory at 0x%llx-0x%llx (%s) is not supported yet",
				 pid, s, e, v->path ? v->path : "anonymous");
	else if (v->path && v->path[0] == '/' && v->deleted)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: mapping at 0x%llx-0x%llx of deleted file %s is not supported yet", pid, s, e,
				 v->path);
	else if (v->path && v->path[0] == '/')
		*ret_kind = v->shared ? VMA_KIND__VMA_FILE_SHARED : VMA_KIND__VMA_FILE_PRIVATE;
	else if (!v->path || !strcmp(v->path, "[heap]") || !strcmp(v->path, "[stack]") ||
		 !strncmp(v->path, "[anon:", 6))
		*ret_kind = VMA_KIND__VMA_ANON_PRIVATE;
	else
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: memory area 0x%llx-0x%llx of kind %s is not supported", pid,
				 s, e, v->path);
	return 0;
}

int mem_check_vmas(struct snap_ctx *ctx, struct dump_task *t)
{
	for (size_t i = 0; i < t->vmas.nr; i++) {
		VmaKind kind;
		int r = classify(ctx, t->pid, &t->vmas.v[i], &kind);

		if (r)
			return r;
	}
	return 0;
}

/*
 * A memfd mapped shared is restored as shared memory of its own, and an
 * open memfd as a file of its own: one also open as an fd (in any process
 * of the tree) would come back as two objects that no longer share bytes.
 */
int mem_check_memfd_fds(struct snap_ctx *ctx, const struct dump_task *t)
{
	const struct files_dump *d = t->files;

	for (size_t i = 0; d && i < t->vmas.nr; i++) {
		const struct proc_vma *v = &t->vmas.v[i];

		if (!v->shared || !v->deleted || !v->path || strncmp(v->path, "/memfd:", 7))
			continue;
		for (size_t k = 0; k < d->nr_files; k++) {
			const struct dump_file *f = d->files[k];

			if (f->link && !strncmp(f->link, "/memfd:", 7) && f->st.st_ino == v->ino)
				return snap_fail(
					ctx, -EOPNOTSUPP,
					"pid %d: memfd %s mapped shared at 0x%llx is also open as fd %d of pid "
					"%d; a memfd both mapped and open is not supported yet",
					t->pid, v->path, (unsigned long long)v->start, f->fd, f->pid);
		}
	}
	return 0;
}

/* madvise() advice to apply again once an area is in place, as a bit mask of MADV_* values. */
static uint64_t vma_madv(uint32_t vmflags)
{
	uint64_t m = 0;

	if (vmflags & VMF_DONTDUMP)
		m |= 1ull << MADV_DONTDUMP;
	if (vmflags & VMF_DONTFORK)
		m |= 1ull << MADV_DONTFORK;
	if (vmflags & VMF_WIPEONFORK)
		m |= 1ull << MADV_WIPEONFORK;
	if (vmflags & VMF_HUGEPAGE)
		m |= 1ull << MADV_HUGEPAGE;
	if (vmflags & VMF_NOHUGEPAGE)
		m |= 1ull << MADV_NOHUGEPAGE;
	if (vmflags & VMF_SEQREAD)
		m |= 1ull << MADV_SEQUENTIAL;
	if (vmflags & VMF_RANDREAD)
		m |= 1ull << MADV_RANDOM;
	return m;
}

static bool kind_has_pages(VmaKind k)
{
	return k == VMA_KIND__VMA_ANON_PRIVATE || k == VMA_KIND__VMA_FILE_PRIVATE;
}

/* The PFN of the shared zero page, to skip pages that were only ever read; 0 if unknown. */
static uint64_t zero_pfn(void)
{
	size_t ps = page_size();
	volatile uint8_t *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t ent = 0;
	int fd;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &ent, sizeof(ent), (off_t)((uintptr_t)p / ps * 8)) != sizeof(ent))
			ent = 0;
		close(fd);
	}
	munmap((void *)p, ps);
	return (ent & PM_PRESENT) ? (ent & PM_PFN_MASK) : 0;
}

struct run {
	uint64_t vaddr;
	uint64_t len;
	bool via_mem; /* read through /proc/PID/mem, see drain_flush() */
};

struct drain {
	struct snap_ctx *ctx;
	struct dump_task *t;
	struct img_pages_writer *pages;
	struct img_writer *pagemap;
	int mem_fd; /* /proc/PID/mem for areas we may not read directly */
	uint8_t *buf;
	size_t used;
	struct run *runs;
	size_t nr_runs, cap_runs;
	bool new_vma;	       /* runs never span two areas: restore fills area by area */
	int parent_pagemap_fd; /* the parent's, to find pages still shared copy-on-write; -1 if none */
	uint64_t *ppm;	       /* its pagemap entries, as pm */
	uint64_t nr_pages;
};

/* Reads the collected runs into the buffer and appends them to the page file. */
static int drain_flush(struct drain *d)
{
	struct snap_ctx *ctx = d->ctx;
	uint64_t t0 = stage_begin(), off;
	size_t done = 0;
	int r;

	if (!d->nr_runs)
		return 0;
	/*
	 * process_vm_readv pins pages, and pinning a page still shared
	 * copy-on-write makes the kernel give the task a copy of its own
	 * (Linux 5.19+): a dump would double the memory of a pre-fork server.
	 * So only pages mapped once go that way, in large batches; shared ones
	 * and unreadable areas are read through /proc/PID/mem, which does not
	 * pin.
	 */
	for (size_t i = 0; i < d->nr_runs;) {
		struct iovec local, remote[IOV_MAX];
		size_t n = 0, bytes = 0;
		ssize_t got;

		if (d->runs[i].via_mem) {
			got = pread(d->mem_fd, d->buf + done, d->runs[i].len, (off_t)d->runs[i].vaddr);
			if (got != (ssize_t)d->runs[i].len)
				return snap_fail(ctx, got < 0 ? -errno : -EIO,
						 "pid %d: reading memory at 0x%llx failed", d->t->pid,
						 (unsigned long long)d->runs[i].vaddr);
			done += d->runs[i].len;
			i++;
			continue;
		}
		for (; i < d->nr_runs && n < IOV_MAX && !d->runs[i].via_mem; i++, n++) {
			remote[n].iov_base = (void *)d->runs[i].vaddr;
			remote[n].iov_len = d->runs[i].len;
			bytes += d->runs[i].len;
		}
		local.iov_base = d->buf + done;
		local.iov_len = bytes;
		got = process_vm_readv(d->t->pid, &local, 1, remote, n, 0);
		if (got != (ssize_t)bytes)
			return snap_fail(ctx, got < 0 ? -errno : -EIO,
					 "pid %d: reading memory at 0x%llx: got %zd of %zu bytes", d->t->pid,
					 (unsigned long long)(uintptr_t)remote[0].iov_base, got, bytes);
		done += bytes;
	}
	stage_end(ctx, SNAP_STAGE_DRAIN, t0);

	t0 = stage_begin();
	r = img_pages_write(ctx, d->pages, d->buf, d->used, &off);
	if (r)
		return r;
	for (size_t i = 0; i < d->nr_runs; i++) {
		PagemapEntry pe = PAGEMAP_ENTRY__INIT;

		pe.vaddr = d->runs[i].vaddr;
		pe.nr_pages = (uint32_t)(d->runs[i].len / page_size());
		pe.offset = off;
		off += d->runs[i].len;
		r = img_write_msg(ctx, d->pagemap, &pe.base);
		if (r)
			return r;
	}
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
	d->nr_pages += d->used / page_size();
	ctx->stats.pages_bytes += d->used;
	progress_add(ctx, SNAP_STAGE_DRAIN, d->used);
	d->used = 0;
	d->nr_runs = 0;
	return 0;
}

static int drain_add(struct drain *d, uint64_t vaddr, uint64_t len, bool via_mem)
{
	while (len) {
		size_t room = DRAIN_BUF_SIZE - d->used;
		uint64_t n = len < room ? len : room;
		struct run *last = d->nr_runs ? &d->runs[d->nr_runs - 1] : NULL;

		if (last && !d->new_vma && last->via_mem == via_mem && last->vaddr + last->len == vaddr &&
		    last->len + n <= UINT32_MAX / 2) {
			last->len += n;
		} else {
			if (d->nr_runs == d->cap_runs) {
				size_t cap = d->cap_runs ? d->cap_runs * 2 : 1024;
				struct run *nr = realloc(d->runs, cap * sizeof(*nr));

				if (!nr)
					return snap_fail(d->ctx, -ENOMEM, "out of memory");
				d->runs = nr;
				d->cap_runs = cap;
			}
			d->runs[d->nr_runs++] = (struct run){ vaddr, n, via_mem };
		}
		d->new_vma = false;
		d->used += n;
		vaddr += n;
		len -= n;
		if (d->used == DRAIN_BUF_SIZE) {
			int r = drain_flush(d);

			if (r)
				return r;
		}
	}
	return 0;
}

static int write_inherited(struct drain *d, uint64_t vaddr, uint64_t nr_pages)
{
	PagemapEntry pe = PAGEMAP_ENTRY__INIT;

	pe.vaddr = vaddr;
	pe.nr_pages = (uint32_t)nr_pages;
	pe.has_inherited = 1;
	pe.inherited = 1;
	return img_write_msg(d->ctx, d->pagemap, &pe.base);
}

/*
 * Walks one area's pagemap and queues the pages that hold data. With
 * @twin (the parent's area at the same place) a page that is the very
 * same physical page in the parent is recorded as inherited, not stored:
 * restore forks the child from a parent that has it, and it stays shared.
 */
static int drain_vma(struct drain *d, int pagemap_fd, const struct proc_vma *v, const struct proc_vma *twin,
		     uint64_t zpfn, uint64_t *pm)
{
	size_t ps = page_size();
	bool readable = v->prot & PROT_READ;
	uint64_t t0 = stage_begin();

	d->new_vma = true;
	for (uint64_t addr = v->start; addr < v->end;) {
		size_t n = (v->end - addr) / ps;
		ssize_t got;

		if (n > PAGEMAP_BATCH)
			n = PAGEMAP_BATCH;
		t0 = stage_begin();
		got = pread(pagemap_fd, pm, n * 8, (off_t)(addr / ps * 8));
		if (got == (ssize_t)(n * 8) && twin &&
		    pread(d->parent_pagemap_fd, d->ppm, n * 8, (off_t)(addr / ps * 8)) != (ssize_t)(n * 8))
			memset(d->ppm, 0, n * 8); /* no sharing found is always correct */
		stage_end(d->ctx, SNAP_STAGE_DRAIN, t0);
		if (got != (ssize_t)(n * 8))
			return snap_fail(d->ctx, got < 0 ? -errno : -EIO, "pid %d: cannot read pagemap at 0x%llx",
					 d->t->pid, (unsigned long long)addr);
		for (size_t i = 0; twin && i < n;) {
			size_t j;
			int r;

			/* The same physical page in the parent, not the zero page: still shared since the fork. */
#define SHARED(k)                                                                                            \
	((pm[k] & PM_PRESENT) && (d->ppm[k] & PM_PRESENT) && !(pm[k] & PM_FILE) && !(d->ppm[k] & PM_FILE) && \
	 (pm[k] & PM_PFN_MASK) && (pm[k] & PM_PFN_MASK) == (d->ppm[k] & PM_PFN_MASK) && (pm[k] & PM_PFN_MASK) != zpfn)
			if (!SHARED(i)) {
				i++;
				continue;
			}
			for (j = i + 1; j < n && SHARED(j); j++)
				;
			r = write_inherited(d, addr + i * ps, j - i);
			if (r)
				return r;
			/* Not stored: drop them from what the loop below looks at. */
			for (size_t k = i; k < j; k++)
				pm[k] = 0;
			i = j;
		}
#undef SHARED
		for (size_t i = 0; i < n;) {
			size_t j;
			int r;

			/* A page holds data if it is ours (anonymous), present or swapped, and not the zero page. */
#define STORED(e) \
	(((e) & (PM_PRESENT | PM_SWAP)) && !((e)&PM_FILE) && !(zpfn && ((e)&PM_PRESENT) && ((e)&PM_PFN_MASK) == zpfn))
			/* Unreadable, or mapped more than once (a swapped page counts as that): see drain_flush(). */
#define VIA_MEM(e) (!readable || !((e)&PM_EXCLUSIVE))
			if (!STORED(pm[i])) {
				i++;
				continue;
			}
			for (j = i + 1; j < n && STORED(pm[j]) && VIA_MEM(pm[j]) == VIA_MEM(pm[i]); j++)
				;
			r = drain_add(d, addr + i * ps, (j - i) * ps, VIA_MEM(pm[i]));
#undef VIA_MEM
#undef STORED
			if (r)
				return r;
			i = j;
		}
		addr += n * ps;
	}
	return 0;
}

/* The parent's area with exactly @v's range, anonymous and private too. */
static const struct proc_vma *parent_twin(const struct dump_task *parent, const struct proc_vma *v)
{
	if (!parent || v->shared ||
	    (v->path && strcmp(v->path, "[heap]") && strcmp(v->path, "[stack]") && strncmp(v->path, "[anon:", 6)))
		return NULL;
	for (size_t i = 0; i < parent->vmas.nr; i++) {
		const struct proc_vma *p = &parent->vmas.v[i];

		if (p->start == v->start && p->end == v->end && !p->shared &&
		    (!p->path || !strcmp(p->path, v->path ? v->path : "")))
			return p;
	}
	return NULL;
}

/*
 * The whole content of a shared memory object, read through the mapping's
 * /proc/PID/map_files entry (so pages no process has touched through this
 * mapping are not missed); holes stay holes.
 */
static int drain_shmem(struct drain *d, const struct proc_vma *v, uint64_t *ret_size)
{
	char path[96];
	struct stat st;
	off_t at = 0;
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", d->t->pid, (unsigned long long)v->start,
		 (unsigned long long)v->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return snap_fail(d->ctx, -errno, "pid %d: cannot open shared memory at 0x%llx through %s: %m",
				 d->t->pid, (unsigned long long)v->start, path);
	if (fstat(fd, &st)) {
		r = snap_fail(d->ctx, -errno, "pid %d: cannot stat shared memory at 0x%llx: %m", d->t->pid,
			      (unsigned long long)v->start);
		goto out;
	}
	*ret_size = (uint64_t)st.st_size;
	r = drain_flush(d);
	while (!r && at < st.st_size) {
		off_t data = lseek(fd, at, SEEK_DATA), hole;

		if (data < 0)
			break; /* no more data */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		while (!r && data < hole) {
			size_t n = (size_t)(hole - data) < DRAIN_BUF_SIZE ? (size_t)(hole - data) : DRAIN_BUF_SIZE;
			uint64_t t0 = stage_begin(), off;
			ssize_t got = pread(fd, d->buf, n, data);

			stage_end(d->ctx, SNAP_STAGE_DRAIN, t0);
			if (got <= 0) {
				r = snap_fail(d->ctx, got < 0 ? -errno : -EIO,
					      "pid %d: reading shared memory at 0x%llx failed", d->t->pid,
					      (unsigned long long)v->start);
				break;
			}
			n = (size_t)got & ~(page_size() - 1);
			if (!n)
				n = page_size(); /* a last partial page: the object's size is page aligned anyway */
			t0 = stage_begin();
			r = img_pages_write(d->ctx, d->pages, d->buf, n, &off);
			if (!r) {
				PagemapEntry pe = PAGEMAP_ENTRY__INIT;

				pe.vaddr = (uint64_t)data;
				pe.nr_pages = (uint32_t)(n / page_size());
				pe.offset = off;
				pe.has_shmem_id = 1;
				pe.shmem_id = v->ino;
				r = img_write_msg(d->ctx, d->pagemap, &pe.base);
			}
			stage_end(d->ctx, SNAP_STAGE_WRITE, t0);
			d->ctx->stats.pages_bytes += n;
			progress_add(d->ctx, SNAP_STAGE_DRAIN, n);
			data += (off_t)n;
		}
		at = hole;
	}
out:
	close(fd);
	return r;
}

/* Reads the whole small file @path (mapped shared and writable by @pid, which is frozen) into *ret. */
static int save_file_content(struct snap_ctx *ctx, pid_t pid, const char *path, size_t size, ProtobufCBinaryData *ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = malloc(size ? size : 1);
	ssize_t n = -1;

	if (fd >= 0 && buf)
		n = pread(fd, buf, size, 0);
	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)size) {
		free(buf);
		return snap_fail(ctx, n < 0 ? -errno : -EIO, "pid %d: cannot read file %s, which it maps shared: %s",
				 pid, path, n < 0 ? strerror(errno) : "short read");
	}
	ret->data = buf;
	ret->len = size;
	return 0;
}

static int write_mm(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	struct img_writer *w = NULL;
	MmEntry mm = MM_ENTRY__INIT;
	int r;

	mm.start_code = t->stat.start_code;
	mm.end_code = t->stat.end_code;
	mm.start_data = t->stat.start_data;
	mm.end_data = t->stat.end_data;
	mm.start_brk = t->stat.start_brk;
	mm.brk = t->misc.brk;
	mm.start_stack = t->stat.start_stack;
	mm.arg_start = t->stat.arg_start;
	mm.arg_end = t->stat.arg_end;
	mm.env_start = t->stat.env_start;
	mm.env_end = t->stat.env_end;
	mm.auxv = t->auxv;
	mm.n_auxv = t->nr_auxv;
	mm.exe = t->exe;
	mm.nr_vmas = (uint32_t)t->vmas.nr;

	r = img_writer_open(ctx, dir, IMG_KIND_MM, t->pid, &w);
	if (r)
		return r;
	r = img_write_msg(ctx, w, &mm.base);
	for (size_t i = 0; !r && i < t->vmas.nr; i++) {
		const struct proc_vma *v = &t->vmas.v[i];
		VmaEntry ve = VMA_ENTRY__INIT;
		VmaKind kind;
		struct stat st;

		r = classify(ctx, t->pid, v, &kind);
		if (r)
			break;
		ve.start = v->start;
		ve.end = v->end;
		ve.kind = kind;
		ve.prot = v->prot;
		ve.flags = (v->vmflags & VMF_GROWSDOWN ? MAP_GROWSDOWN : 0) |
			   (v->vmflags & VMF_NORESERVE ? MAP_NORESERVE : 0) |
			   (kind == VMA_KIND__VMA_ANON_PRIVATE && v->vmflags & VMF_DROPPABLE ? MAP_DROPPABLE : 0);
		ve.pgoff = v->pgoff;
		ve.madv = vma_madv(v->vmflags);
		ve.path = v->path;
		if (kind == VMA_KIND__VMA_FILE_PRIVATE || kind == VMA_KIND__VMA_FILE_SHARED) {
			if (stat(v->path, &st) || st.st_ino != v->ino) {
				r = snap_fail(ctx, -ESTALE,
					      "pid %d: file %s mapped at 0x%llx is no longer at that path (replaced or "
					      "removed)",
					      t->pid, v->path, (unsigned long long)v->start);
				break;
			}
			ve.has_file_dev = ve.has_file_ino = ve.has_file_size = ve.has_file_mtime_ns = 1;
			ve.file_dev = st.st_dev;
			ve.file_ino = st.st_ino;
			ve.file_size = (uint64_t)st.st_size;
			ve.file_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			if (mem_vma_writes_file(&ve) && st.st_size <= MEM_SAVED_FILE_MAX) {
				r = save_file_content(ctx, t->pid, v->path, (size_t)st.st_size, &ve.file_content);
				if (r)
					break;
				ve.has_file_content = 1;
			}
		}
		if (kind == VMA_KIND__VMA_ANON_SHARED) {
			char path[96];

			snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", t->pid,
				 (unsigned long long)v->start, (unsigned long long)v->end);
			if (stat(path, &st)) {
				r = snap_fail(ctx, -errno, "pid %d: cannot stat shared memory at 0x%llx: %m", t->pid,
					      (unsigned long long)v->start);
				break;
			}
			ve.has_shmem_id = ve.has_shmem_size = 1;
			ve.shmem_id = v->ino;
			ve.shmem_size = (uint64_t)st.st_size;
		}
		r = img_write_msg(ctx, w, &ve.base);
		free(ve.file_content.data);
	}
	if (!r)
		return img_writer_close(ctx, w);
	img_writer_close(ctx, w);
	return r;
}

/* 1 if shared memory object @id is not dumped yet (it is from now on), 0 if it is. */
static int shmem_first(struct snap_ctx *ctx, struct shmem_set *set, uint64_t id)
{
	for (size_t i = 0; i < set->nr; i++)
		if (set->ids[i] == id)
			return 0;
	if (set->nr == SHMEM_SET_MAX)
		return snap_fail(ctx, -EOPNOTSUPP, "more than %d shared memory objects are not supported",
				 SHMEM_SET_MAX);
	set->ids[set->nr++] = id;
	return 1;
}

int mem_dump(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir, struct shmem_set *shmem,
	     const struct dump_task *parent)
{
	struct drain d = { .ctx = ctx, .t = t, .mem_fd = -1, .parent_pagemap_fd = -1 };
	PagemapHead head = PAGEMAP_HEAD__INIT;
	uint64_t zpfn = zero_pfn(), *pm = NULL;
	char path[64];
	int pagemap_fd, r;

	r = write_mm(ctx, t, dir);
	if (r)
		return r;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0)
		return snap_fail(ctx, -errno, "pid %d: cannot open %s: %m", t->pid, path);
	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	d.mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (d.mem_fd < 0) {
		r = snap_fail(ctx, -errno, "pid %d: cannot open %s: %m", t->pid, path);
		goto out;
	}
	if (parent && zpfn) {
		snprintf(path, sizeof(path), "/proc/%d/pagemap", parent->pid);
		d.parent_pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	d.buf = mmap(NULL, DRAIN_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pm = malloc(PAGEMAP_BATCH * sizeof(*pm));
	d.ppm = malloc(PAGEMAP_BATCH * sizeof(*d.ppm));
	if (d.buf == MAP_FAILED || !pm || !d.ppm) {
		d.buf = d.buf == MAP_FAILED ? NULL : d.buf;
		r = snap_fail(ctx, -ENOMEM, "out of memory for the drain buffer");
		goto out;
	}

	r = img_pages_open(ctx, dir, t->pid, &d.pages);
	if (r)
		goto out;
	r = img_writer_open(ctx, dir, IMG_KIND_PAGEMAP, t->pid, &d.pagemap);
	if (r)
		goto out;
	head.pages_file = (char *)img_pages_name(d.pages);
	head.nr_pages = 0; /* the total is checked against the page file's size at restore */
	r = img_write_msg(ctx, d.pagemap, &head.base);

	for (size_t i = 0; !r && i < t->vmas.nr; i++) {
		const struct proc_vma *v = &t->vmas.v[i];
		VmaKind kind;

		r = classify(ctx, t->pid, v, &kind);
		/*
		 * Droppable memory (the vDSO getrandom state) is not stored: the
		 * kernel may zero it at any time, so zero is always a valid
		 * content, and a zeroed getrandom state fetches a new key. Stored,
		 * it would make every copy of a snapshot read the same bytes.
		 */
		if (!r && kind_has_pages(kind) && !(v->vmflags & VMF_DROPPABLE))
			r = drain_vma(&d, pagemap_fd, v,
				      d.parent_pagemap_fd >= 0 && kind == VMA_KIND__VMA_ANON_PRIVATE
					      ? parent_twin(parent, v)
					      : NULL,
				      zpfn, pm);
		if (!r && kind == VMA_KIND__VMA_ANON_SHARED) {
			uint64_t size = 0;

			r = shmem_first(ctx, shmem, v->ino);
			r = r > 0 ? drain_shmem(&d, v, &size) : r;
		}
	}
	if (!r)
		r = drain_flush(&d);
	ctx->stats.vmas += t->vmas.nr;
out:
	if (d.pagemap) {
		int cr = img_writer_close(ctx, d.pagemap);

		r = r ? r : cr;
	}
	if (d.pages) {
		int cr = img_pages_close(ctx, d.pages);

		r = r ? r : cr;
	}
	free(pm);
	free(d.ppm);
	if (d.parent_pagemap_fd >= 0)
		close(d.parent_pagemap_fd);
	free(d.runs);
	if (d.buf)
		munmap(d.buf, DRAIN_BUF_SIZE);
	if (d.mem_fd >= 0)
		close(d.mem_fd);
	close(pagemap_fd);
	return r;
}

/* ---- restore side ---- */

int mem_image_read(struct snap_ctx *ctx, struct img_set *set, int pid, struct mem_image *ret)
{
	struct mem_image mi = { 0 };
	struct img_reader *rd = NULL;
	ProtobufCMessage *msg;
	size_t cap = 0;
	int r, fd;

	r = img_reader_open(ctx, set, IMG_KIND_MM, pid, &rd);
	if (r)
		return r;
	r = img_read_one(ctx, rd, &mm_entry__descriptor, (ProtobufCMessage **)&mi.mm);
	if (!r && mi.mm->nr_vmas > (1u << 24))
		r = snap_fail(ctx, -EINVAL, "image %s: implausible area count %u", img_reader_name(rd), mi.mm->nr_vmas);
	if (!r) {
		mi.vmas = calloc(mi.mm->nr_vmas ? mi.mm->nr_vmas : 1, sizeof(*mi.vmas));
		if (!mi.vmas)
			r = snap_fail(ctx, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; !r && i < mi.mm->nr_vmas; i++) {
		r = img_read_one(ctx, rd, &vma_entry__descriptor, (ProtobufCMessage **)&mi.vmas[i]);
		if (!r)
			mi.nr_vmas++;
	}
	img_reader_close(rd);
	rd = NULL;
	if (r)
		goto fail;

	r = img_reader_open(ctx, set, IMG_KIND_PAGEMAP, pid, &rd);
	if (!r)
		r = img_read_one(ctx, rd, &pagemap_head__descriptor, (ProtobufCMessage **)&mi.head);
	while (!r) {
		r = img_read_msg(ctx, rd, &pagemap_entry__descriptor, &msg);
		if (r <= 0)
			break;
		r = 0;
		if (mi.nr_pages == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			PagemapEntry **n = realloc(mi.pages, ncap * sizeof(*n));

			if (!n) {
				protobuf_c_message_free_unpacked(msg, NULL);
				r = snap_fail(ctx, -ENOMEM, "out of memory");
				break;
			}
			mi.pages = n;
			cap = ncap;
		}
		mi.pages[mi.nr_pages++] = (PagemapEntry *)msg;
	}
	if (rd)
		img_reader_close(rd);
	if (r)
		goto fail;
	fd = img_set_open_pages(ctx, set, mi.head->pages_file, &mi.pages_size);
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	close(fd);
	*ret = mi;
	return 0;
fail:
	mem_image_free(&mi);
	return r;
}

void mem_image_free(struct mem_image *mi)
{
	for (size_t i = 0; i < mi->nr_vmas; i++)
		protobuf_c_message_free_unpacked(&mi->vmas[i]->base, NULL);
	free(mi->vmas);
	for (size_t i = 0; i < mi->nr_pages; i++)
		protobuf_c_message_free_unpacked(&mi->pages[i]->base, NULL);
	free(mi->pages);
	free(mi->map_runs);
	free(mi->run_mapped);
	if (mi->head)
		protobuf_c_message_free_unpacked(&mi->head->base, NULL);
	if (mi->mm)
		protobuf_c_message_free_unpacked(&mi->mm->base, NULL);
	memset(mi, 0, sizeof(*mi));
}

const VmaEntry *mem_find_vma(const struct mem_image *mi, uint64_t addr)
{
	size_t lo = 0, hi = mi->nr_vmas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mi->vmas[mid]->end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mi->nr_vmas && mi->vmas[lo]->start <= addr ? mi->vmas[lo] : NULL;
}

bool mem_run_has_data(const PagemapEntry *pe)
{
	return !pe->has_shmem_id && !(pe->has_inherited && pe->inherited);
}

/* Whether page run @i is copied in here: its data is in our page file and the restorer does not map it. */
static bool run_filled(const struct mem_image *mi, size_t i)
{
	return mem_run_has_data(mi->pages[i]) && !(mi->run_mapped && mi->run_mapped[i]);
}

void mem_vmas_with_pages(const struct mem_image *mi, bool *ret)
{
	size_t vi = 0;

	memset(ret, 0, mi->nr_vmas * sizeof(*ret));
	for (size_t i = 0; i < mi->nr_pages; i++) {
		const PagemapEntry *pe = mi->pages[i];

		if (!run_filled(mi, i))
			continue;
		while (vi < mi->nr_vmas && mi->vmas[vi]->end <= pe->vaddr)
			vi++;
		if (vi < mi->nr_vmas)
			ret[vi] = true;
	}
}

bool mem_vma_premapped(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_ANON_PRIVATE || v->kind == VMA_KIND__VMA_FILE_PRIVATE ||
	       v->kind == VMA_KIND__VMA_FILE_SHARED || v->kind == VMA_KIND__VMA_ANON_SHARED;
}

uint32_t mem_premap_prot(const VmaEntry *v, bool has_pages)
{
	/* A shared memory area is a second mapping of the engine's read-write one, protection included. */
	if (v->kind == VMA_KIND__VMA_ANON_SHARED)
		return PROT_READ | PROT_WRITE;
	return has_pages ? (v->prot | PROT_READ | PROT_WRITE) : v->prot;
}

bool mem_vma_writes_file(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_FILE_SHARED && (v->prot & PROT_WRITE);
}

int mem_open_mapped_file(struct snap_ctx *ctx, const VmaEntry *v)
{
	int mode = mem_vma_writes_file(v) ? O_RDWR : O_RDONLY, fd;

	fd = open(v->path, mode | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && v->has_file_content) {
		/* Gone since the dump: made again from the image. Another restore may be making it too. */
		fd = open(v->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			snap_info(ctx, "mapped file %s was gone: made again with its content at dump", v->path);
			if (pwrite(fd, v->file_content.data, v->file_content.len, 0) != (ssize_t)v->file_content.len) {
				int r = snap_fail(ctx, -errno, "cannot write mapped file %s again: %m", v->path);

				close(fd);
				unlink(v->path);
				return r;
			}
		} else if (errno == EEXIST) {
			fd = open(v->path, mode | O_CLOEXEC);
		}
	}
	if (fd < 0)
		return snap_fail(ctx, -errno, "cannot open mapped file %s: %m", v->path);
	return fd;
}

static int check_mapped_file(struct snap_ctx *ctx, const VmaEntry *v)
{
	struct stat st;
	int64_t mtime;

	if (!v->path || v->path[0] != '/')
		return snap_fail(ctx, -EINVAL, "area 0x%llx: file mapping without a path in the image",
				 (unsigned long long)v->start);
	if (v->has_file_content && (!v->has_file_size || v->file_content.len != v->file_size))
		return snap_fail(ctx, -EINVAL, "image mm: saved content of mapped file %s has the wrong size", v->path);
	if (stat(v->path, &st)) {
		if (errno == ENOENT && v->has_file_content)
			return 0;
		return snap_fail(ctx, -errno, "mapped file %s (at 0x%llx) is missing: %m", v->path,
				 (unsigned long long)v->start);
	}
	mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	/* A file mapped shared and writable is the process's own live state: it changes after the dump. */
	if (mem_vma_writes_file(v))
		mtime = v->file_mtime_ns;
	if (!S_ISREG(st.st_mode) || (v->has_file_size && (uint64_t)st.st_size != v->file_size) ||
	    (v->has_file_mtime_ns && mtime != v->file_mtime_ns))
		return snap_fail(ctx, -ESTALE, "mapped file %s (at 0x%llx) changed since the dump (size %llu -> %lld)",
				 v->path, (unsigned long long)v->start, (unsigned long long)v->file_size,
				 (long long)st.st_size);
	return 0;
}

int mem_image_validate(struct snap_ctx *ctx, const struct mem_image *mi)
{
	uint64_t ps = page_size(), prev_end = 0;
	size_t vi = 0;

	for (size_t i = 0; i < mi->nr_vmas; i++) {
		const VmaEntry *v = mi->vmas[i];

		if (v->start >= v->end || (v->start | v->end) % ps || v->start < prev_end)
			return snap_fail(ctx, -EINVAL, "image mm: area %zu (0x%llx-0x%llx) is malformed or overlaps", i,
					 (unsigned long long)v->start, (unsigned long long)v->end);
		if (v->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC) ||
		    v->flags & ~(uint32_t)(MAP_GROWSDOWN | MAP_NORESERVE | MAP_DROPPABLE) || v->pgoff % ps ||
		    (v->flags & MAP_DROPPABLE && v->kind != VMA_KIND__VMA_ANON_PRIVATE))
			return snap_fail(ctx, -EINVAL, "image mm: area 0x%llx has bad protection, flags or offset",
					 (unsigned long long)v->start);
		if (!protobuf_c_enum_descriptor_get_value(&vma_kind__descriptor, v->kind))
			return snap_fail(ctx, -EINVAL, "image mm: area 0x%llx has unknown kind %d",
					 (unsigned long long)v->start, v->kind);
		if (v->kind == VMA_KIND__VMA_FILE_PRIVATE || v->kind == VMA_KIND__VMA_FILE_SHARED) {
			int r = check_mapped_file(ctx, v);

			if (r)
				return r;
		}
		if (v->kind == VMA_KIND__VMA_ANON_SHARED &&
		    (!v->has_shmem_id || !v->has_shmem_size || v->shmem_size % ps || v->pgoff > v->shmem_size ||
		     v->end - v->start > v->shmem_size - v->pgoff))
			return snap_fail(ctx, -EINVAL, "image mm: shared memory area 0x%llx lies outside its object",
					 (unsigned long long)v->start);
		if (v->kind != VMA_KIND__VMA_VSYSCALL)
			prev_end = v->end;
	}
	for (size_t i = 0, prev = SIZE_MAX; i < mi->nr_pages; i++) {
		const PagemapEntry *pe = mi->pages[i];
		uint64_t len = (uint64_t)pe->nr_pages * ps;

		if (pe->has_inherited && pe->inherited) {
			/* The parent's side of it is checked across the tree. */
			const VmaEntry *v = mem_find_vma(mi, pe->vaddr);

			if (!pe->nr_pages || pe->vaddr % ps || !v || v->kind != VMA_KIND__VMA_ANON_PRIVATE ||
			    len > v->end - pe->vaddr)
				return snap_fail(ctx, -EINVAL, "image %s: inherited run %zu (0x%llx) is malformed",
						 mi->head->pages_file, i, (unsigned long long)pe->vaddr);
			continue;
		}
		if (pe->has_shmem_id) {
			/* Which object, and its size, are checked across the tree. */
			if (!pe->nr_pages || pe->vaddr % ps || pe->offset % ps || pe->offset + len > mi->pages_size ||
			    pe->offset + len < pe->offset)
				return snap_fail(ctx, -EINVAL, "image %s: shared memory run %zu is malformed",
						 mi->head->pages_file, i);
			continue;
		}
		if (prev != SIZE_MAX && pe->vaddr < mi->pages[prev]->vaddr + (uint64_t)mi->pages[prev]->nr_pages * ps)
			return snap_fail(ctx, -EINVAL, "image %s: page run %zu (0x%llx) overlaps the one before",
					 mi->head->pages_file, i, (unsigned long long)pe->vaddr);
		prev = i;
		while (vi < mi->nr_vmas && mi->vmas[vi]->end <= pe->vaddr)
			vi++;
		if (!pe->nr_pages || pe->vaddr % ps || pe->offset % ps || pe->offset + len > mi->pages_size ||
		    pe->offset + len < pe->offset || vi == mi->nr_vmas || pe->vaddr < mi->vmas[vi]->start ||
		    pe->vaddr + len > mi->vmas[vi]->end ||
		    (mi->vmas[vi]->kind != VMA_KIND__VMA_ANON_PRIVATE &&
		     mi->vmas[vi]->kind != VMA_KIND__VMA_FILE_PRIVATE))
			return snap_fail(ctx, -EINVAL, "image %s: page run %zu (0x%llx, %u pages) is malformed",
					 mi->head->pages_file, i, (unsigned long long)pe->vaddr, pe->nr_pages);
	}
	return 0;
}

int mem_premap_one(struct snap_ctx *ctx, const VmaEntry *v, uint64_t addr, uint32_t prot, int fd, uint64_t shmem_src)
{
	uint64_t len = v->end - v->start;
	int flags = MAP_FIXED | (int)v->flags;
	void *p;

	if (v->kind == VMA_KIND__VMA_ANON_SHARED)
		/* old_size 0: a new mapping of the same shared pages, the engine's stays */
		p = mremap((void *)(shmem_src + v->pgoff), 0, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)addr);
	else if (v->kind == VMA_KIND__VMA_ANON_PRIVATE)
		p = mmap((void *)addr, len, (int)prot,
			 flags | (flags & MAP_DROPPABLE ? 0 : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	else
		p = mmap((void *)addr, len, (int)prot,
			 flags | (v->kind == VMA_KIND__VMA_FILE_SHARED ? MAP_SHARED : MAP_PRIVATE), fd,
			 (off_t)v->pgoff);
	if (p == MAP_FAILED)
		return snap_fail(ctx, -errno, "area 0x%llx-0x%llx (%s): cannot premap: %m",
				 (unsigned long long)v->start, (unsigned long long)v->end,
				 v->path ? v->path : "anonymous");
	return 0;
}

struct fill_job {
	const struct mem_image *mi;
	const uint64_t *premap_of;
	int pages_fd;
	int uffd;	       /* a userfaultfd the areas marked in @uffd_area are registered with, or -1 */
	const bool *uffd_area; /* per area of @mi */
	size_t first, last;    /* page runs [first, last) */
	uint64_t bytes;	       /* filled */
	int err;	       /* -errno of a failed read, -EIO for a short file */
	uint64_t err_off;
	/* The tree's count of bytes filled, for progress reports, or NULL. */
	_Atomic uint64_t *progress;
};

/* Counts @n filled bytes. */
static void fill_count(struct fill_job *j, uint64_t n)
{
	j->bytes += n;
	if (j->progress)
		atomic_fetch_add_explicit(j->progress, n, memory_order_relaxed);
}

/*
 * Puts @len bytes from @src at @dst with UFFDIO_COPY: the kernel allocates each page and copies into it,
 * without the zeroing and the page fault of a first touch. Returns what it placed; it stops early where a
 * page is already present (pages a child shares with its parent), which the caller then reads.
 */
static uint64_t uffd_copy(int uffd, uint64_t dst, const uint8_t *src, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy c = { .dst = dst + done, .src = (uint64_t)(src + done), .len = len - done };

		if (!ioctl(uffd, UFFDIO_COPY, &c)) {
			done = len;
			break;
		}
		if (c.copy <= 0 || errno != EAGAIN) {
			if (c.copy > 0)
				done += (uint64_t)c.copy;
			break;
		}
		done += (uint64_t)c.copy;
	}
	return done;
}

/* Reads @len bytes at @off of the page file into @dst whole; 0 or -errno (-EIO at end of file). */
static int pread_full(int fd, void *dst, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t got = pread(fd, dst, len, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		dst = (uint8_t *)dst + got;
		len -= (uint64_t)got;
		off += (uint64_t)got;
	}
	return 0;
}

/*
 * Fills the @n pieces of @iov, which lie back to back in the page file from @file_off, the ones in areas
 * registered with the userfaultfd (@via_uffd) by UFFDIO_COPY from a mapping of the file, the rest (and
 * whatever UFFDIO_COPY left) with pread. Returns 1 if it could not map the file (the caller reads all).
 */
static int fill_uffd(struct fill_job *j, struct iovec *iov, const bool *via_uffd, int n, uint64_t file_off,
		     uint64_t want)
{
	const uint8_t *win = mmap(NULL, want, PROT_READ, MAP_SHARED | MAP_POPULATE, j->pages_fd, (off_t)file_off);
	uint64_t at = 0;

	if (win == MAP_FAILED)
		return 1;
	for (int k = 0; k < n; at += iov[k].iov_len, k++) {
		uint64_t done = 0;
		int r;

		if (via_uffd[k])
			done = uffd_copy(j->uffd, (uint64_t)iov[k].iov_base, win + at, iov[k].iov_len);
		r = done < iov[k].iov_len ? pread_full(j->pages_fd, (uint8_t *)iov[k].iov_base + done,
						       iov[k].iov_len - done, file_off + at + done)
					  : 0;
		if (r) {
			j->err = r;
			j->err_off = file_off + at + done;
			break;
		}
		fill_count(j, iov[k].iov_len);
	}
	munmap((void *)win, want);
	return 0;
}

/* Fills runs [first, last) with one preadv (or UFFDIO_COPY) per stretch that is contiguous in the page file. */
static void *fill_range(void *arg)
{
	struct fill_job *j = arg;
	const struct mem_image *mi = j->mi;
	uint64_t ps = page_size();
	struct iovec iov[IOV_MAX];
	bool via_uffd[IOV_MAX];
	size_t vi = 0;

	for (size_t i = j->first; i < j->last && !j->err;) {
		uint64_t file_off = mi->pages[i]->offset, want = 0;
		bool any_uffd = false;
		int n = 0;

		if (!run_filled(mi, i)) {
			i++; /* shared memory: filled by the engine; inherited: there since the fork; mapped */
			continue;
		}
		for (; i < j->last && n < IOV_MAX && run_filled(mi, i) && mi->pages[i]->offset == file_off + want;
		     i++, n++) {
			const PagemapEntry *pe = mi->pages[i];

			while (mi->vmas[vi]->end <= pe->vaddr)
				vi++;
			iov[n].iov_base = (void *)(j->premap_of[vi] + (pe->vaddr - mi->vmas[vi]->start));
			iov[n].iov_len = (uint64_t)pe->nr_pages * ps;
			via_uffd[n] = j->uffd >= 0 && j->uffd_area[vi];
			any_uffd |= via_uffd[n];
			want += iov[n].iov_len;
		}
		if (any_uffd && !fill_uffd(j, iov, via_uffd, n, file_off, want))
			continue;
		while (want) {
			ssize_t got = preadv(j->pages_fd, iov, n, (off_t)file_off);

			if (got <= 0) {
				j->err = got < 0 ? -errno : -EIO;
				j->err_off = file_off;
				return NULL;
			}
			fill_count(j, (uint64_t)got);
			want -= (uint64_t)got;
			file_off += (uint64_t)got;
			/* Short read: drop what was filled and go on with the rest. */
			for (int k = 0; got > 0 && k < n;) {
				if ((uint64_t)got >= iov[k].iov_len) {
					got -= (ssize_t)iov[k].iov_len;
					iov[k].iov_len = 0;
					k++;
				} else {
					iov[k].iov_base = (uint8_t *)iov[k].iov_base + got;
					iov[k].iov_len -= (size_t)got;
					got = 0;
				}
			}
		}
	}
	return NULL;
}

/*
 * A userfaultfd with every private anonymous area that has runs to fill registered (missing-page mode, which
 * UFFDIO_COPY needs); -1 where the kernel or the sandbox says no, and the fill then reads as before.
 * *ret_area says which areas are registered.
 */
static int fill_uffd_open(const struct mem_image *mi, const uint64_t *premap_of, bool **ret_area)
{
	struct uffdio_api api = { .api = UFFD_API };
	bool *area = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*area));
	size_t vi = 0;
	int uffd;

	*ret_area = NULL;
	if (!area)
		return -1;
	for (size_t i = 0; i < mi->nr_pages; i++) {
		if (!run_filled(mi, i))
			continue;
		while (mi->vmas[vi]->end <= mi->pages[i]->vaddr)
			vi++;
		area[vi] = mi->vmas[vi]->kind == VMA_KIND__VMA_ANON_PRIVATE;
	}
	/* User-mode-only faults are all we need (we never fault), and any user may ask for those. */
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api))
		goto fail;
	for (size_t k = 0; k < mi->nr_vmas; k++) {
		struct uffdio_register reg = {
			.range = { .start = premap_of[k], .len = mi->vmas[k]->end - mi->vmas[k]->start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (area[k] && ioctl(uffd, UFFDIO_REGISTER, &reg))
			goto fail;
	}
	*ret_area = area;
	return uffd;
fail:
	if (uffd >= 0)
		close(uffd); /* closing it unregisters every area */
	free(area);
	return -1;
}

/*
 * First touch of fresh memory is what fill time is made of, and page
 * faults in different threads proceed in parallel: large fills are split
 * between up to FILL_THREADS threads by bytes.
 */
#define FILL_THREADS	  4
#define FILL_PARALLEL_MIN (64ull << 20)

int mem_fill(struct snap_ctx *ctx, const struct mem_image *mi, const uint64_t *premap_of, int pages_fd)
{
	struct fill_job jobs[FILL_THREADS];
	pthread_t threads[FILL_THREADS];
	uint64_t total = 0, share, acc = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nr = 1, started = 0;
	bool *uffd_area = NULL;
	int r = 0, uffd;

	for (size_t i = 0; i < mi->nr_pages; i++)
		if (run_filled(mi, i))
			total += (uint64_t)mi->pages[i]->nr_pages * page_size();
	uffd = total ? fill_uffd_open(mi, premap_of, &uffd_area) : -1;
	if (total >= FILL_PARALLEL_MIN && cpus > 1)
		nr = cpus < FILL_THREADS ? (size_t)cpus : FILL_THREADS;
	share = total / nr + 1;
	for (size_t k = 0, i = 0; k < nr; k++) {
		jobs[k] = (struct fill_job){ .mi = mi,
					     .premap_of = premap_of,
					     .pages_fd = pages_fd,
					     .uffd = uffd,
					     .uffd_area = uffd_area,
					     .first = i };
		jobs[k].progress = ctx->fill_counter;
		while (i < mi->nr_pages && (k == nr - 1 || acc < share * (k + 1))) {
			acc += run_filled(mi, i) ? (uint64_t)mi->pages[i]->nr_pages * page_size() : 0;
			i++;
		}
		jobs[k].last = i;
	}
	for (size_t k = 1; k < nr; k++) {
		if (pthread_create(&threads[k], NULL, fill_range, &jobs[k]))
			break;
		started = k;
	}
	/* Whatever could not get a thread of its own is filled here. */
	for (size_t k = started + 1; k < nr; k++)
		fill_range(&jobs[k]);
	fill_range(&jobs[0]);
	for (size_t k = 1; k <= started; k++)
		pthread_join(threads[k], NULL);
	/* Closing the userfaultfd unregisters the areas: nothing of it outlives the fill. */
	if (uffd >= 0) {
		close(uffd);
		free(uffd_area);
	}
	for (size_t k = 0; k < nr; k++) {
		ctx->stats.pages_bytes += jobs[k].bytes;
		if (jobs[k].err && !r)
			r = snap_fail(ctx, jobs[k].err, "image %s: read at offset %llu failed: %s",
				      mi->head->pages_file, (unsigned long long)jobs[k].err_off,
				      jobs[k].err == -EIO ? "unexpected end of file" : strerror(-jobs[k].err));
	}
	return r;
}
