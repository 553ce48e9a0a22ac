/*
 * snap_restore: read and validate every image, fork the process with its
 * PID, premap and fill its memory, open its files, then hand over to the
 * restorer blob, and finally remove the blob once the process is back in
 * its own registers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blob.h"
#include "files.h"
#include "image.h"
#include "mem.h"
#include "proc.h"
#include "ptrace.h"
#include "restorer-blob.h"
#include "../restorer/restorer.h"

#define REGION_GUARD (1ull << 20)
#define REGION_ALIGN (2ull << 20)
#define STATUS_MSG_MAX 1024

/* Everything one process's images say, read and validated. */
struct restore_task {
	PstreeEntry *pstree;
	TaskCoreEntry *core;
	ThreadCoreEntry *thread;
	struct mem_image mem;
	struct files_image files;
};

/* Child -> parent records on the status pipe. */
enum { STATUS_STATS = 'S', STATUS_ERROR = 'E' };

struct child_stats {
	uint64_t premap_ns, fill_ns, pages_bytes, vmas;
	uint64_t region, region_len; /* what the parent unmaps once the restorer is done */
};

static uint64_t page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void restore_task_free(struct restore_task *rt)
{
	if (rt->pstree)
		protobuf_c_message_free_unpacked(&rt->pstree->base, NULL);
	if (rt->core)
		protobuf_c_message_free_unpacked(&rt->core->base, NULL);
	if (rt->thread)
		protobuf_c_message_free_unpacked(&rt->thread->base, NULL);
	mem_image_free(&rt->mem);
	files_image_free(&rt->files);
}

static const VmaEntry *find_special(const struct mem_image *mi, VmaKind kind)
{
	for (size_t i = 0; i < mi->nr_vmas; i++)
		if (mi->vmas[i]->kind == kind)
			return mi->vmas[i];
	return NULL;
}

static const char *const special_labels[] = { "[vdso]", "[vvar]", "[vvar_vclock]" };
static const VmaKind special_kinds[] = { VMA_KIND__VMA_VDSO, VMA_KIND__VMA_VVAR, VMA_KIND__VMA_VVAR_VCLOCK };
#define NR_SPECIAL 3

/* The kernel's areas of this process must match the image's in size: same kernel, same vDSO. */
static int check_specials(struct snap_ctx *ctx, const struct mem_image *mi, const struct proc_vma_list *self)
{
	for (int k = 0; k < NR_SPECIAL; k++) {
		const VmaEntry *img = find_special(mi, special_kinds[k]);
		const struct proc_vma *own = NULL;

		for (size_t i = 0; i < self->nr; i++)
			if (self->v[i].path && !strcmp(self->v[i].path, special_labels[k]))
				own = &self->v[i];
		if (img && !own)
			return snap_fail(ctx, -EOPNOTSUPP, "the image has a %s area but this kernel maps none",
					 special_labels[k]);
		if (img && own && img->end - img->start != own->end - own->start)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "the image's %s is %llu bytes, this kernel's is %llu: restore needs the same kernel",
					 special_labels[k], (unsigned long long)(img->end - img->start),
					 (unsigned long long)(own->end - own->start));
	}
	return 0;
}

static int read_task(struct snap_ctx *ctx, struct img_set *set, struct restore_task *rt)
{
	const InventoryEntry *inv = img_set_inventory(set);
	struct img_reader *rd;
	int pid, r;

	r = img_reader_open(ctx, set, IMG_KIND_PSTREE, 0, &rd);
	if (r)
		return r;
	r = img_read_one(ctx, rd, &pstree_entry__descriptor, (ProtobufCMessage **)&rt->pstree);
	if (!r) {
		ProtobufCMessage *extra = NULL;
		int more = img_read_msg(ctx, rd, &pstree_entry__descriptor, &extra);

		if (more > 0) {
			protobuf_c_message_free_unpacked(extra, NULL);
			r = snap_fail(ctx, -EOPNOTSUPP, "image pstree.img: more than one process is not supported yet");
		} else if (more < 0) {
			r = more;
		}
	}
	img_reader_close(rd);
	if (r)
		return r;
	pid = rt->pstree->pid;
	if (pid != inv->root_pid || pid <= 0)
		return snap_fail(ctx, -EINVAL, "image pstree.img: root pid %d does not match the inventory's %d", pid,
				 inv->root_pid);
	if (rt->pstree->n_threads != 1 || rt->pstree->threads[0] != pid)
		return snap_fail(ctx, -EOPNOTSUPP, "image pstree.img: pid %d has %zu threads; only one is supported yet",
				 pid, rt->pstree->n_threads);

	r = img_reader_open(ctx, set, IMG_KIND_CORE, pid, &rd);
	if (r)
		return r;
	r = img_read_one(ctx, rd, &task_core_entry__descriptor, (ProtobufCMessage **)&rt->core);
	if (!r)
		r = img_read_one(ctx, rd, &thread_core_entry__descriptor, (ProtobufCMessage **)&rt->thread);
	img_reader_close(rd);
	if (r)
		return r;
	if (rt->thread->tid != pid)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: thread %d is not the process's main thread", pid,
				 rt->thread->tid);
	for (size_t i = 0; i < rt->core->n_sigactions; i++)
		if (rt->core->sigactions[i]->sig < 1 || rt->core->sigactions[i]->sig > RESTORER_NSIG)
			return snap_fail(ctx, -EINVAL, "image core-%d.img: signal number %u out of range", pid,
					 rt->core->sigactions[i]->sig);
	if (rt->thread->rseq && (rt->thread->rseq->len < 20 || rt->thread->rseq->len > 4096))
		return snap_fail(ctx, -EINVAL, "image core-%d.img: bad rseq area size %u", pid, rt->thread->rseq->len);
	r = arch_thread_validate(ctx, rt->thread);
	if (r)
		return r;

	r = mem_image_read(ctx, set, pid, &rt->mem);
	if (!r)
		r = mem_image_validate(ctx, &rt->mem);
	if (!r && rt->mem.mm->n_auxv % 2)
		r = snap_fail(ctx, -EINVAL, "image mm-%d.img: odd auxv length", pid);
	if (!r)
		r = files_image_read(ctx, set, pid, &rt->files);
	if (!r)
		r = files_image_validate(ctx, &rt->files);
	return r;
}

static int pid_in_use(struct snap_ctx *ctx, pid_t pid)
{
	char comm[64] = "?", path[64];
	FILE *f;

	if (kill(pid, 0) && errno == ESRCH)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	return snap_fail(ctx, -EEXIST, "pid %d is in use (by %s); cannot restore with the same pid", pid, comm);
}

/* ---- in the new process ---- */

struct interval {
	uint64_t start, end;
};

static int cmp_interval(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Finds @size bytes that neither this process nor the image uses, as high
 * as possible below our stack: there nothing will be mapped meanwhile.
 */
static int find_hole(struct snap_ctx *ctx, const struct proc_vma_list *self, const struct mem_image *mi, uint64_t size,
		     uint64_t *ret)
{
	size_t n = 0, m = 1, cap = self->nr + mi->nr_vmas;
	struct interval *iv = calloc(cap ? cap : 1, sizeof(*iv));
	uint64_t top = 0, lowest = 1ull << 32;
	int r = -ENOMEM;

	if (!iv)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < self->nr; i++) {
		if (self->v[i].path && !strcmp(self->v[i].path, "[vsyscall]"))
			continue;
		iv[n++] = (struct interval){ self->v[i].start, self->v[i].end };
		if (self->v[i].path && !strcmp(self->v[i].path, "[stack]"))
			top = self->v[i].start;
	}
	for (size_t i = 0; i < mi->nr_vmas; i++)
		if (mi->vmas[i]->kind != VMA_KIND__VMA_VSYSCALL)
			iv[n++] = (struct interval){ mi->vmas[i]->start, mi->vmas[i]->end };
	qsort(iv, n, sizeof(*iv), cmp_interval);
	m = n ? 1 : 0;
	/* Coalesce: the two layouts overlap each other. */
	for (size_t i = 1; i < n; i++) {
		if (iv[i].start <= iv[m - 1].end) {
			if (iv[i].end > iv[m - 1].end)
				iv[m - 1].end = iv[i].end;
		} else {
			iv[m++] = iv[i];
		}
	}
	/* The highest gap below our stack that fits, with a guard on each side. */
	for (size_t k = m; k-- > 0;) {
		uint64_t gap_start = iv[k].end, gap_end = k + 1 < m ? iv[k + 1].start : top, at;

		if (gap_end > top)
			gap_end = top;
		if (gap_start >= gap_end || gap_end - gap_start < size + 2 * REGION_GUARD + REGION_ALIGN)
			continue;
		at = (gap_end - REGION_GUARD - size) & ~(REGION_ALIGN - 1);
		if (at >= gap_start + REGION_GUARD && at >= lowest) {
			*ret = at;
			r = 0;
			break;
		}
	}
	free(iv);
	if (r)
		return snap_fail(ctx, -ENOMEM, "no free address range of %llu bytes for the restore",
				 (unsigned long long)size);
	return 0;
}

/* Unregisters glibc's rseq area of this thread: the kernel must not write into memory we are about to drop. */
static int rseq_unregister_self(void)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	if (!__rseq_size)
		return 0;
	if (!syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG))
		return 0;
	/* glibc may have registered the full 32-byte area while advertising its feature size. */
	if (!syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG))
		return 0;
	return -errno;
}

struct child_layout {
	uint64_t region, region_len; /* everything of ours: restorer, args, stack, scratch, premapped areas */
	uint64_t blob, args, args_len, stack_top, scratch;
	uint64_t *premap_of;	  /* per image vma: where it is premapped */
	uint32_t *premap_prot_of; /* per image vma: the protection it is premapped with */
};

static void send_status(int fd, char type, const void *data, size_t len)
{
	char buf[STATUS_MSG_MAX + 1];

	if (len > STATUS_MSG_MAX)
		len = STATUS_MSG_MAX;
	buf[0] = type;
	memcpy(buf + 1, data, len);
	if (write(fd, buf, len + 1) < 0) {
		/* The parent is gone; it kills us through PTRACE_O_EXITKILL. */
	}
}

/* Builds the restorer's arguments: everything it needs once nothing of ours is left. */
static int build_args(struct snap_ctx *ctx, struct restore_task *rt, struct child_layout *L, int status_fd, int exe_fd,
		      const struct proc_vma_list *self)
{
	struct restorer_args *a = (void *)L->args;
	uint8_t *cur = (uint8_t *)L->args + align_up(sizeof(*a), 64);
	uint8_t *end = (uint8_t *)L->args + L->args_len;
	const MmEntry *mm = rt->mem.mm;
	struct restorer_vma *rv;
	struct restorer_range *un;
	struct restorer_special *sp;
	uint64_t scratch = L->scratch, limit = 0, prev = 0, sp_val;
	size_t frame_size;
	int r;

#define ALLOC(ptr, count)                                                              \
	do {                                                                           \
		(ptr) = (void *)cur;                                                   \
		cur += align_up(sizeof(*(ptr)) * (count), 64);                         \
		if (cur > end)                                                         \
			return snap_fail(ctx, -ENOMEM, "restorer arguments do not fit"); \
	} while (0)

	memset(a, 0, sizeof(*a));
	a->status_fd = status_fd;
	a->exe_fd = exe_fd;

	ALLOC(rv, rt->mem.nr_vmas);
	for (size_t i = 0; i < rt->mem.nr_vmas; i++) {
		const VmaEntry *v = rt->mem.vmas[i];

		if (!mem_vma_premapped(v))
			continue;
		rv[a->nr_vmas] = (struct restorer_vma){
			.start = v->start,
			.end = v->end,
			.premap = L->premap_of[i],
			.prot = v->prot,
			.premap_prot = L->premap_prot_of[i],
			.madv = v->madv,
		};
		a->nr_vmas++;
	}
	a->vmas = (uint64_t)rv;

	ALLOC(sp, NR_SPECIAL);
	for (int k = 0; k < NR_SPECIAL; k++) {
		const VmaEntry *img = find_special(&rt->mem, special_kinds[k]);

		for (size_t i = 0; i < self->nr; i++) {
			if (!self->v[i].path || strcmp(self->v[i].path, special_labels[k]))
				continue;
			sp[a->nr_special++] = (struct restorer_special){
				.cur = self->v[i].start,
				.len = self->v[i].end - self->v[i].start,
				.scratch = scratch,
				.target = img ? img->start : 0,
			};
			scratch += self->v[i].end - self->v[i].start;
		}
	}
	a->special = (uint64_t)sp;

	/* Unmap everything but our region and the kernel's areas (parked first, so skipped here too). */
	ALLOC(un, self->nr + 2);
	for (size_t i = 0; i < self->nr; i++)
		if (!(self->v[i].path && !strcmp(self->v[i].path, "[vsyscall]")) && self->v[i].end > limit)
			limit = self->v[i].end;
	{
		struct interval keep[NR_SPECIAL + 1];
		size_t nk = 0;

		keep[nk++] = (struct interval){ L->region, L->region + L->region_len };
		for (uint32_t k = 0; k < a->nr_special; k++)
			keep[nk++] = (struct interval){ sp[k].cur, sp[k].cur + sp[k].len };
		qsort(keep, nk, sizeof(keep[0]), cmp_interval);
		for (size_t k = 0; k < nk; k++) {
			if (keep[k].start > prev)
				un[a->nr_unmap++] = (struct restorer_range){ prev, keep[k].start };
			prev = keep[k].end;
		}
		if (limit > prev)
			un[a->nr_unmap++] = (struct restorer_range){ prev, limit };
	}
	a->unmap = (uint64_t)un;

	a->mm = (struct prctl_mm_map){
		.start_code = mm->start_code,
		.end_code = mm->end_code,
		.start_data = mm->start_data,
		.end_data = mm->end_data,
		.start_brk = mm->start_brk,
		.brk = mm->brk,
		.start_stack = mm->start_stack,
		.arg_start = mm->arg_start,
		.arg_end = mm->arg_end,
		.env_start = mm->env_start,
		.env_end = mm->env_end,
		.exe_fd = (uint32_t)exe_fd,
	};
	{
		uint64_t *auxv;

		ALLOC(auxv, mm->n_auxv);
		memcpy(auxv, mm->auxv, mm->n_auxv * sizeof(*auxv));
		a->mm.auxv = (__u64 *)auxv;
		a->mm.auxv_size = (uint32_t)(mm->n_auxv * sizeof(*auxv));
	}

	for (size_t i = 0; i < rt->core->n_sigactions; i++) {
		const SigactionEntry *s = rt->core->sigactions[i];

		a->sigactions[s->sig - 1] = (struct restorer_sigaction){ s->handler, s->flags, s->restorer, s->mask };
	}
	a->nr_sigactions = RESTORER_NSIG;
	a->clear_child_tid = rt->thread->clear_child_tid;
	a->robust_list = rt->thread->robust_list;
	a->robust_list_len = rt->thread->robust_list_len;
	if (rt->thread->rseq) {
		a->has_rseq = 1;
		a->rseq_addr = rt->thread->rseq->addr;
		a->rseq_len = rt->thread->rseq->len;
		a->rseq_sig = rt->thread->rseq->signature;
	}
	a->umask = rt->core->umask;
	snprintf(a->comm, sizeof(a->comm), "%s", rt->thread->comm);

	frame_size = arch_sigframe_size(rt->thread);
	{
		uint8_t *frame;

		ALLOC(frame, frame_size);
		r = arch_build_sigframe(ctx, rt->thread, frame, frame_size, (uint64_t)frame, &sp_val, a->tls);
		if (r)
			return r;
	}
	a->sigreturn_sp = sp_val;
#undef ALLOC
	return 0;
}

/* Reports the context's error to the engine, errno first, and ends the half-made process. */
__attribute__((noreturn)) static void child_fail(struct snap_ctx *ctx, int status_fd, int err)
{
	char msg[STATUS_MSG_MAX];
	int32_t e = err < 0 ? err : -EIO;
	size_t len = strlen(snap_error(ctx));

	if (len > sizeof(msg) - sizeof(e))
		len = sizeof(msg) - sizeof(e);
	memcpy(msg, &e, sizeof(e));
	memcpy(msg + sizeof(e), snap_error(ctx), len);
	send_status(status_fd, STATUS_ERROR, msg, sizeof(e) + len);
	_exit(1);
}

/* Runs in the new process: premap, fill, files, then into the restorer. */
__attribute__((noreturn)) static void restore_child(struct snap_ctx *ctx, struct img_set *set, struct restore_task *rt,
						    int status_fd, int go_fd)
{
	struct mem_image *mi = &rt->mem;
	struct proc_vma_list self = { 0 };
	struct child_layout L = { 0 };
	struct child_stats cs = { 0 };
	uint64_t ps = page_size(), t0, premap_total = 0, special_total = 0, blob_len = blob_map_size(&restorer_blob);
	int pages_fd = -1, exe_fd, keep[2], high, r;
	char c;
	sigset_t all;

	if (read(go_fd, &c, 1) != 1)
		_exit(1);
	close(go_fd);
	snap_clear_error(ctx);

	t0 = stage_begin();
	r = proc_read_vmas(ctx, getpid(), &self);
	if (r)
		child_fail(ctx, status_fd, r);
	for (size_t i = 0; i < mi->nr_vmas; i++)
		if (mem_vma_premapped(mi->vmas[i]))
			premap_total += mi->vmas[i]->end - mi->vmas[i]->start;
	for (size_t i = 0; i < self.nr; i++)
		for (int k = 0; k < NR_SPECIAL; k++)
			if (self.v[i].path && !strcmp(self.v[i].path, special_labels[k]))
				special_total += self.v[i].end - self.v[i].start;

	L.args_len = align_up(sizeof(struct restorer_args) + 64 * 8 + (mi->nr_vmas + 1) * sizeof(struct restorer_vma) +
				      (self.nr + 2) * sizeof(struct restorer_range) + mi->mm->n_auxv * 8 +
				      arch_sigframe_size(rt->thread) + 4096,
			      ps);
	L.region_len = blob_len + L.args_len + RESTORER_STACK_SIZE + align_up(special_total, ps) + premap_total;
	r = find_hole(ctx, &self, mi, L.region_len, &L.region);
	if (r)
		child_fail(ctx, status_fd, r);
	/* Reserve it all at once so nothing of ours lands there meanwhile. */
	if (mmap((void *)L.region, L.region_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
		 -1, 0) != (void *)L.region) {
		r = snap_fail(ctx, -errno, "cannot reserve 0x%llx bytes at 0x%llx: %m", (unsigned long long)L.region_len,
			  (unsigned long long)L.region);
		child_fail(ctx, status_fd, r);
	}
	L.blob = L.region;
	L.args = L.blob + blob_len;
	L.stack_top = L.args + L.args_len + RESTORER_STACK_SIZE;
	L.scratch = L.stack_top;
	if (mmap((void *)L.blob, blob_len + L.args_len + RESTORER_STACK_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		r = snap_fail(ctx, -errno, "cannot map the restorer: %m");
		child_fail(ctx, status_fd, r);
	}
	blob_relocate(&restorer_blob, (void *)L.blob, L.blob);

	L.premap_of = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*L.premap_of));
	L.premap_prot_of = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*L.premap_prot_of));
	if (!L.premap_of || !L.premap_prot_of) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		child_fail(ctx, status_fd, r);
	}
	{
		uint64_t at = L.scratch + align_up(special_total, ps);
		size_t pi = 0;

		for (size_t i = 0; i < mi->nr_vmas; i++) {
			const VmaEntry *v = mi->vmas[i];
			bool has_pages = false;
			int fd = -1;

			if (!mem_vma_premapped(v))
				continue;
			while (pi < mi->nr_pages && mi->pages[pi]->vaddr < v->start)
				pi++;
			has_pages = pi < mi->nr_pages && mi->pages[pi]->vaddr < v->end;
			if (v->kind != VMA_KIND__VMA_ANON_PRIVATE) {
				int mode = (v->kind == VMA_KIND__VMA_FILE_SHARED && (v->prot & PROT_WRITE)) ? O_RDWR
													     : O_RDONLY;

				fd = open(v->path, mode | O_CLOEXEC);
				if (fd < 0) {
					r = snap_fail(ctx, -errno, "cannot open mapped file %s: %m", v->path);
					child_fail(ctx, status_fd, r);
				}
			}
			L.premap_prot_of[i] = mem_premap_prot(v, has_pages);
			r = mem_premap_one(ctx, v, at, L.premap_prot_of[i], fd);
			if (fd >= 0)
				close(fd);
			if (r)
				child_fail(ctx, status_fd, r);
			L.premap_of[i] = at;
			at += v->end - v->start;
		}
	}
	cs.premap_ns = snap_now_ns() - t0;

	t0 = stage_begin();
	pages_fd = img_set_open_pages(ctx, set, mi->head->pages_file, &cs.pages_bytes);
	if (pages_fd < 0)
		child_fail(ctx, status_fd, pages_fd);
	ctx->stats.pages_bytes = 0;
	r = mem_fill(ctx, mi, L.premap_of, pages_fd);
	if (r)
		child_fail(ctx, status_fd, r);
	close(pages_fd);
	cs.fill_ns = snap_now_ns() - t0;
	cs.pages_bytes = ctx->stats.pages_bytes;
	cs.vmas = mi->nr_vmas;
	cs.region = L.region;
	cs.region_len = L.region_len;

	/* Our own fds move above the image's, then the image's fds are opened. */
	exe_fd = open(mi->mm->exe, O_RDONLY | O_CLOEXEC);
	if (exe_fd < 0) {
		r = snap_fail(ctx, -errno, "cannot open executable %s: %m", mi->mm->exe);
		child_fail(ctx, status_fd, r);
	}
	r = files_restore_prepare(ctx, &rt->files);
	if (r)
		child_fail(ctx, status_fd, r);
	high = files_max_fd(&rt->files) + 1;
	if (high < 3)
		high = 3;
	keep[0] = fcntl(status_fd, F_DUPFD_CLOEXEC, high);
	keep[1] = fcntl(exe_fd, F_DUPFD_CLOEXEC, high);
	if (keep[0] < 0 || keep[1] < 0) {
		r = snap_fail(ctx, -errno, "cannot move our descriptors out of the way: %m");
		child_fail(ctx, status_fd, r);
	}
	close(exe_fd);
	close(status_fd);
	status_fd = keep[0];
	exe_fd = keep[1];
	r = files_restore(ctx, &rt->files, keep, 2);
	if (!r && chdir(rt->files.fs->cwd))
		r = snap_fail(ctx, -errno, "cannot enter working directory %s: %m", rt->files.fs->cwd);
	if (r)
		child_fail(ctx, status_fd, r);

	/* The layout as it is now, with every mapping of ours the steps above made. */
	proc_vma_list_free(&self);
	r = proc_read_vmas(ctx, getpid(), &self);
	if (!r)
		r = build_args(ctx, rt, &L, status_fd, exe_fd, &self);
	if (r)
		child_fail(ctx, status_fd, r);
	r = rseq_unregister_self();
	if (r) {
		r = snap_fail(ctx, r, "cannot unregister the engine's rseq area: %s", strerror(-r));
		child_fail(ctx, status_fd, r);
	}
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	send_status(status_fd, STATUS_STATS, &cs, sizeof(cs));
	arch_jump(L.blob + RESTORER_BLOB_OFF_restorer_entry, L.stack_top, L.args);
}

/* ---- in the engine ---- */

/* Reads the child's status records until it closes the pipe (success) or reports an error. */
static int read_status(struct snap_ctx *ctx, int fd, pid_t pid, struct child_stats *cs)
{
	char buf[STATUS_MSG_MAX + 2];
	int r = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return r;
		if (buf[0] == STATUS_STATS && (size_t)n == 1 + sizeof(*cs)) {
			memcpy(cs, buf + 1, sizeof(*cs));
			continue;
		}
		buf[n] = '\0';
		if (buf[0] == STATUS_ERROR && (size_t)n > 1 + sizeof(int32_t)) {
			int32_t e;

			memcpy(&e, buf + 1, sizeof(e));
			r = snap_fail(ctx, e < 0 ? e : -EIO, "pid %d: %s", pid, buf + 1 + sizeof(e));
		} else {
			/* The restorer blob writes plain text. */
			r = snap_fail(ctx, -EIO, "pid %d: %s", pid, buf);
		}
	}
}

/* The restorer trapped right before rt_sigreturn: step through it, then drop the restorer region. */
static int finish_child(struct snap_ctx *ctx, pid_t pid, const struct restore_task *rt, uint64_t region,
			uint64_t region_len)
{
	const VmaEntry *vdso = find_special(&rt->mem, VMA_KIND__VMA_VDSO);
	long off = vdso_syscall_offset(), ret;
	struct arch_regs regs;
	char why[96];
	int status, r;
	uint64_t args[6] = { region, region_len, 0, 0, 0, 0 };

	r = ptrace_wait(pid, &status);
	if (r)
		return snap_fail(ctx, r, "pid %d: wait for the restorer: %s", pid, strerror(-r));
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP || (status >> 8) != SIGTRAP)
		return snap_fail(ctx, -ECHILD, "pid %d: the restorer %s", pid, ptrace_status_str(status, why, sizeof(why)));
	for (int i = 0; i < 2; i++) {
		if (ptrace(PTRACE_SYSCALL, pid, 0, 0))
			return snap_fail(ctx, -errno, "pid %d: cannot step into rt_sigreturn: %m", pid);
		r = ptrace_wait(pid, &status);
		if (r || !WIFSTOPPED(status) || !ptrace_is_syscall_stop(status))
			return snap_fail(ctx, -ECHILD, "pid %d: rt_sigreturn did not complete: %s", pid,
					 r ? strerror(-r) : ptrace_status_str(status, why, sizeof(why)));
	}
	r = arch_get_regs(pid, &regs);
	if (r)
		return snap_fail(ctx, r, "pid %d: cannot read the restored registers: %s", pid, strerror(-r));
	if (!vdso || off < 0)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: no vDSO to remove the restorer from", pid);
	r = ptrace_remote_syscall(ctx, pid, &regs, vdso->start + (uint64_t)off, SYS_munmap, args, &ret);
	if (!r && ret)
		r = snap_fail(ctx, (int)ret, "pid %d: cannot unmap the restorer: %s", pid, strerror((int)-ret));
	if (!r && (r = arch_set_regs(pid, &regs)))
		snap_fail(ctx, r, "pid %d: cannot put the restored registers back: %s", pid, strerror(-r));
	if (!r && ptrace(PTRACE_DETACH, pid, 0, 0))
		r = snap_fail(ctx, -errno, "pid %d: cannot detach: %m", pid);
	return r;
}

static int write_pidfile(struct snap_ctx *ctx, const char *path, pid_t pid)
{
	FILE *f = fopen(path, "we");

	if (!f || fprintf(f, "%d\n", pid) < 0 || fclose(f))
		return snap_fail(ctx, -errno, "cannot write pid file %s: %m", path);
	return 0;
}

int snap_restore(snap_ctx *ctx, const struct snap_restore_opts *opts, pid_t *ret_pid)
{
	struct restore_task rt = { 0 };
	struct img_set *set = NULL;
	struct child_stats cs = { 0 };
	struct clone_args ca = { 0 };
	int status_pipe[2] = { -1, -1 }, go_pipe[2] = { -1, -1 };
	pid_t want, pid = -1;
	uint64_t t0;
	int r, st;

	snap_clear_error(ctx);
	snap_stats_reset(ctx);
	if (!opts || opts->size < offsetof(struct snap_restore_opts, stats_file) + sizeof(opts->stats_file))
		return snap_fail(ctx, -EINVAL, "snap_restore: options struct too small");
	if (!opts->images_dir)
		return snap_fail(ctx, -EINVAL, "snap_restore: no images directory given");

	t0 = stage_begin();
	r = img_set_open(ctx, opts->images_dir, &set);
	if (!r)
		r = read_task(ctx, set, &rt);
	if (!r) {
		/* The new process is a fork of ours: our kernel areas are the ones it will have. */
		struct proc_vma_list self = { 0 };

		r = proc_read_vmas(ctx, getpid(), &self);
		if (!r)
			r = check_specials(ctx, &rt.mem, &self);
		proc_vma_list_free(&self);
	}
	if (!r)
		r = pid_in_use(ctx, rt.pstree->pid);
	stage_end(ctx, SNAP_STAGE_READ, t0);
	if (r)
		goto out;
	want = rt.pstree->pid;

	t0 = stage_begin();
	if (pipe2(status_pipe, O_CLOEXEC) || pipe2(go_pipe, O_CLOEXEC)) {
		r = snap_fail(ctx, -errno, "cannot create pipes: %m");
		goto out;
	}
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)&want;
	ca.set_tid_size = 1;
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		r = -errno;
		pid = -1;
		if (r == -EEXIST)
			r = snap_fail(ctx, r, "pid %d is in use; cannot restore with the same pid", want);
		else
			r = snap_fail(ctx, r, "cannot create pid %d: %s", want, strerror(-r));
		goto out;
	}
	if (pid == 0) {
		close(status_pipe[0]);
		close(go_pipe[1]);
		restore_child(ctx, set, &rt, status_pipe[1], go_pipe[0]);
	}
	close(status_pipe[1]);
	status_pipe[1] = -1;
	close(go_pipe[0]);
	go_pipe[0] = -1;
	/* Traced from the start: if we die, so does the half-restored process. */
	if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD)) {
		r = snap_fail(ctx, -errno, "pid %d: cannot trace the new process: %m", pid);
		goto out;
	}
	if (write(go_pipe[1], "g", 1) != 1) {
		r = snap_fail(ctx, -errno, "pid %d: cannot start the new process: %m", pid);
		goto out;
	}
	stage_end(ctx, SNAP_STAGE_FORK, t0);

	r = read_status(ctx, status_pipe[0], pid, &cs);
	ctx->stats.stage_ns[SNAP_STAGE_PREMAP] = cs.premap_ns;
	ctx->stats.stage_ns[SNAP_STAGE_FILL] = cs.fill_ns;
	ctx->stats.pages_bytes = cs.pages_bytes;
	ctx->stats.vmas = cs.vmas;
	if (r)
		goto out;

	t0 = stage_begin();
	r = finish_child(ctx, pid, &rt, cs.region, cs.region_len);
	stage_end(ctx, SNAP_STAGE_RESTORER, t0);
	if (r)
		goto out;
	if (opts->pidfile)
		r = write_pidfile(ctx, opts->pidfile, pid);
out:
	if (r && pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (status_pipe[i] >= 0)
			close(status_pipe[i]);
		if (go_pipe[i] >= 0)
			close(go_pipe[i]);
	}
	restore_task_free(&rt);
	if (set)
		img_set_close(set);
	if (!r) {
		*ret_pid = pid;
		if (opts->stats_file)
			r = snap_stats_write_json(ctx, opts->stats_file);
	}
	return r;
}
