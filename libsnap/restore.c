/*
 * snap_restore: read and validate every image, fork the process with its
 * PID, premap and fill its memory, open its files, then hand over to the
 * restorer blob, and finally remove the blob once the process is back in
 * its own registers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app-engine.h"
#include "attrs.h"
#include "blob.h"
#include "files.h"
#include "image.h"
#include "mem.h"
#include "proc.h"
#include "ptrace.h"
#include "restore.h"
#include "restorer-blob.h"
#include "../restorer/restorer.h"

#define REGION_GUARD (1ull << 20)
#define REGION_ALIGN (2ull << 20)

static uint64_t page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

void restore_task_free(struct restore_task *rt)
{
	if (rt->core)
		protobuf_c_message_free_unpacked(&rt->core->base, NULL);
	for (size_t i = 0; i < rt->nr_threads; i++)
		protobuf_c_message_free_unpacked(&rt->threads[i]->base, NULL);
	free(rt->threads);
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
			return snap_fail(
				ctx, -EOPNOTSUPP,
				"the image's %s is %llu bytes, this kernel's is %llu: restore needs the same kernel",
				special_labels[k], (unsigned long long)(img->end - img->start),
				(unsigned long long)(own->end - own->start));
	}
	return 0;
}

int restore_check_specials(struct snap_ctx *ctx, const struct restore_task *rt)
{
	struct proc_vma_list self = { 0 };
	int r = proc_read_vmas(ctx, getpid(), &self);

	if (!r)
		r = check_specials(ctx, &rt->mem, &self);
	proc_vma_list_free(&self);
	return r;
}

int restore_task_read(struct snap_ctx *ctx, struct img_set *set, PstreeEntry *pe, struct restore_task *rt)
{
	struct img_reader *rd;
	int pid = pe->pid, r;

	rt->pstree = pe;
	if (!rt->pstree->n_threads || rt->pstree->n_threads > (1u << 16) || rt->pstree->threads[0] != pid)
		return snap_fail(ctx, -EINVAL, "image pstree.img: pid %d: bad thread list (%zu threads)", pid,
				 rt->pstree->n_threads);

	rt->threads = calloc(rt->pstree->n_threads, sizeof(*rt->threads));
	if (!rt->threads)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	r = img_reader_open(ctx, set, IMG_KIND_CORE, pid, &rd);
	if (r)
		return r;
	r = img_read_one(ctx, rd, &task_core_entry__descriptor, (ProtobufCMessage **)&rt->core);
	for (size_t i = 0; !r && i < rt->pstree->n_threads; i++) {
		ThreadCoreEntry *tc;

		r = img_read_one(ctx, rd, &thread_core_entry__descriptor, (ProtobufCMessage **)&rt->threads[i]);
		if (r)
			break;
		tc = rt->threads[rt->nr_threads++];
		if (tc->tid != rt->pstree->threads[i])
			r = snap_fail(ctx, -EINVAL, "image core-%d.img: thread %zu is tid %d, pstree.img says %d", pid,
				      i, tc->tid, rt->pstree->threads[i]);
		else if (tc->rseq && (tc->rseq->len < 20 || tc->rseq->len > 4096))
			r = snap_fail(ctx, -EINVAL, "image core-%d.img: tid %d: bad rseq area size %u", pid, tc->tid,
				      tc->rseq->len);
		else
			r = arch_thread_validate(ctx, tc);
	}
	img_reader_close(rd);
	if (r)
		return r;
	for (size_t i = 0; i < rt->core->n_sigactions; i++)
		if (rt->core->sigactions[i]->sig < 1 || rt->core->sigactions[i]->sig > RESTORER_NSIG)
			return snap_fail(ctx, -EINVAL, "image core-%d.img: signal number %u out of range", pid,
					 rt->core->sigactions[i]->sig);

	r = mem_image_read(ctx, set, pid, &rt->mem);
	if (!r)
		r = mem_image_validate(ctx, &rt->mem);
	if (!r && rt->mem.mm->n_auxv % 2)
		r = snap_fail(ctx, -EINVAL, "image mm-%d.img: odd auxv length", pid);
	if (!r)
		r = files_image_read(ctx, set, pid, &rt->files);
	if (!r)
		r = files_image_validate(ctx, &rt->files);
	if (!r)
		r = attrs_validate(ctx, rt->core, rt->threads, rt->nr_threads, &rt->files);
	return r;
}

int restore_pid_in_use(struct snap_ctx *ctx, pid_t pid)
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
static int build_args(struct snap_ctx *ctx, struct restore_task *rt, struct restore_layout *L, int status_fd,
		      int exe_fd, const struct proc_vma_list *self)
{
	struct restorer_args *a = (void *)L->args;
	uint8_t *cur = (uint8_t *)L->args + align_up(sizeof(*a), 64);
	uint8_t *end = (uint8_t *)L->args + L->args_len;
	const MmEntry *mm = rt->mem.mm;
	struct restorer_vma *rv;
	struct restorer_range *un;
	struct restorer_special *sp;
	struct restorer_thread *th;
	uint64_t scratch = L->scratch, limit = 0, prev = 0;
	int r;

#define ALLOC(ptr, count)                                                                \
	do {                                                                             \
		(ptr) = (void *)cur;                                                     \
		cur += align_up(sizeof(*(ptr)) * (count), 64);                           \
		if (cur > end)                                                           \
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

	if (rt->mem.nr_map_runs) {
		struct restorer_map_run *mr;

		ALLOC(mr, rt->mem.nr_map_runs);
		for (size_t i = 0; i < rt->mem.nr_map_runs; i++) {
			const struct mem_map_run *m = &rt->mem.map_runs[i];

			mr[i] = (struct restorer_map_run){ m->start, m->len, m->offset, m->prot, m->flags };
		}
		a->map_runs = (uint64_t)mr;
		a->nr_map_runs = (uint32_t)rt->mem.nr_map_runs;
		a->map_fd = rt->mem.map_fd;
	}

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
		struct interval keep[NR_SPECIAL + 1 + 256];
		size_t nk = 0;

		keep[nk++] = (struct interval){ L->region, L->region + L->region_len };
		for (uint32_t k = 0; k < a->nr_special; k++)
			keep[nk++] = (struct interval){ sp[k].cur, sp[k].cur + sp[k].len };
		/* Areas taken over from the parent lie outside our region, where the parent premapped them. */
		for (size_t i = 0; i < rt->mem.nr_vmas; i++) {
			if (!L->inherited_of[i])
				continue;
			if (nk == sizeof(keep) / sizeof(keep[0]))
				return snap_fail(ctx, -EOPNOTSUPP, "too many areas inherited from the parent");
			keep[nk++] = (struct interval){ L->premap_of[i], L->premap_of[i] + rt->mem.vmas[i]->end -
										 rt->mem.vmas[i]->start };
		}
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
	a->umask = rt->core->umask;

	ALLOC(th, rt->nr_threads);
	a->threads = (uint64_t)th;
	a->nr_threads = (uint32_t)rt->nr_threads;
	for (size_t i = 0; i < rt->nr_threads; i++) {
		const ThreadCoreEntry *tc = rt->threads[i];
		struct restorer_thread *t = &th[i];
		uint8_t *frame, *stack;
		size_t frame_size = arch_sigframe_size(tc);

		memset(t, 0, sizeof(*t));
		t->tid = tc->tid;
		t->clear_child_tid = tc->clear_child_tid;
		t->robust_list = tc->robust_list;
		t->robust_list_len = tc->robust_list_len;
		if (tc->rseq) {
			t->has_rseq = 1;
			t->rseq_addr = tc->rseq->addr;
			t->rseq_len = tc->rseq->len;
			t->rseq_sig = tc->rseq->signature;
		}
		snprintf(t->comm, sizeof(t->comm), "%s", tc->comm);
		t->args = (uint64_t)a;
		ALLOC(frame, frame_size);
		r = arch_build_sigframe(ctx, tc, frame, frame_size, (uint64_t)frame, &t->sigreturn_sp, t->tls);
		if (r)
			return r;
		if (i) {
			ALLOC(stack, RESTORER_THREAD_STACK_SIZE);
			t->stack_top = (uint64_t)stack + RESTORER_THREAD_STACK_SIZE;
		}
	}
	r = attrs_fill_args(ctx, rt->core, rt->threads, rt->nr_threads, a, &cur, end);
	if (r)
		return r;
#undef ALLOC
	return 0;
}

void restore_child_fail(struct snap_ctx *ctx, int status_fd, int err)
{
	char msg[STATUS_MSG_MAX];
	int32_t e = err < 0 ? err : -EIO;
	int len;

	memcpy(msg, &e, sizeof(e));
	len = snprintf(msg + sizeof(e), sizeof(msg) - sizeof(e), "pid %d: %s", (int)getpid(), snap_error(ctx));
	if (len < 0 || (size_t)len >= sizeof(msg) - sizeof(e))
		len = (int)(sizeof(msg) - sizeof(e) - 1);
	send_status(status_fd, STATUS_ERROR, msg, sizeof(e) + (size_t)len);
	_exit(1);
}

/* Runs in the new process: premap, fill, files, then into the restorer. */
/*
 * Which of our private anonymous areas we take over from the parent (the
 * very same range in its image, premapped and filled by it before it
 * forked us): those with pages still shared copy-on-write.
 */
static void find_inherited(const struct restore_task *rt, const struct restore_task *parent, bool *ret)
{
	const struct mem_image *mi = &rt->mem;

	memset(ret, 0, mi->nr_vmas * sizeof(*ret));
	if (!parent || !parent->layout)
		return;
	for (size_t i = 0; i < mi->nr_pages; i++) {
		const PagemapEntry *pe = mi->pages[i];
		const VmaEntry *v;

		if (!(pe->has_inherited && pe->inherited) || !(v = mem_find_vma(mi, pe->vaddr)))
			continue;
		for (size_t k = 0; k < mi->nr_vmas; k++)
			if (mi->vmas[k] == v)
				ret[k] = true;
	}
}

static ssize_t parent_twin(const struct restore_task *parent, const VmaEntry *v)
{
	for (size_t j = 0; j < parent->mem.nr_vmas; j++) {
		const VmaEntry *p = parent->mem.vmas[j];

		if (p->start == v->start && p->end == v->end && p->kind == VMA_KIND__VMA_ANON_PRIVATE)
			return (ssize_t)j;
	}
	return -1;
}

/*
 * What to drop from an area taken over from the parent: every page that
 * is neither inherited nor ours in the image (the parent's own pages
 * there must not show through).
 */
static int drop_foreign_pages(struct snap_ctx *ctx, const struct mem_image *mi, size_t vi, uint64_t premap)
{
	const VmaEntry *v = mi->vmas[vi];
	uint64_t ps = page_size(), npages = (v->end - v->start) / ps;
	uint8_t *keep = calloc(npages, 1);
	int r = 0;

	if (!keep)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < mi->nr_pages; i++) {
		const PagemapEntry *pe = mi->pages[i];

		if (pe->has_shmem_id || pe->vaddr < v->start || pe->vaddr >= v->end)
			continue;
		memset(keep + (pe->vaddr - v->start) / ps, 1, pe->nr_pages);
	}
	for (uint64_t p = 0; !r && p < npages;) {
		uint64_t q = p;

		if (keep[p]) {
			p++;
			continue;
		}
		while (q < npages && !keep[q])
			q++;
		if (madvise((void *)(premap + p * ps), (q - p) * ps, MADV_DONTNEED))
			r = snap_fail(ctx, -errno, "area 0x%llx: cannot drop the parent's pages: %m",
				      (unsigned long long)v->start);
		p = q;
	}
	free(keep);
	return r;
}

void restore_task_premap(struct snap_ctx *ctx, struct img_set *set, struct restore_task *rt,
			 const struct restore_task *parent, int status_fd)
{
	struct mem_image *mi = &rt->mem;
	struct proc_vma_list self = { 0 };
	struct restore_layout *lp = calloc(1, sizeof(*lp));
	uint64_t ps = page_size(), t0, premap_total = 0, special_total = 0, blob_len = blob_map_size(&restorer_blob);
	int pages_fd = -1, r;

	snap_clear_error(ctx);
	if (!lp) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		restore_child_fail(ctx, status_fd, r);
	}
	rt->layout = lp;
#define L  (*lp)
#define cs (lp->stats)
	L.inherited_of = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*L.inherited_of));
	if (!L.inherited_of) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		restore_child_fail(ctx, status_fd, r);
	}
	find_inherited(rt, parent, L.inherited_of);

	t0 = stage_begin();
	r = proc_read_vmas(ctx, getpid(), &self);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	for (size_t i = 0; i < mi->nr_vmas; i++)
		if (mem_vma_premapped(mi->vmas[i]) && !L.inherited_of[i])
			premap_total += mi->vmas[i]->end - mi->vmas[i]->start;
	for (size_t i = 0; i < self.nr; i++)
		for (int k = 0; k < NR_SPECIAL; k++)
			if (self.v[i].path && !strcmp(self.v[i].path, special_labels[k]))
				special_total += self.v[i].end - self.v[i].start;

	L.args_len = sizeof(struct restorer_args) + 64 * 8 + (mi->nr_vmas + 1) * sizeof(struct restorer_vma) +
		     (self.nr + 64) * sizeof(struct restorer_range) + mi->mm->n_auxv * 8 + 4096 +
		     mi->nr_map_runs * sizeof(struct restorer_map_run);
	for (size_t i = 0; i < rt->nr_threads; i++)
		L.args_len += sizeof(struct restorer_thread) + arch_sigframe_size(rt->threads[i]) + 128 +
			      (i ? RESTORER_THREAD_STACK_SIZE : 0);
	L.args_len += attrs_args_size(rt->core, rt->threads, rt->nr_threads);
	L.args_len = align_up(L.args_len, ps);
	L.region_len = blob_len + L.args_len + RESTORER_STACK_SIZE + align_up(special_total, ps) + premap_total;
	r = find_hole(ctx, &self, mi, L.region_len, &L.region);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	/* Reserve it all at once so nothing of ours lands there meanwhile. */
	if (mmap((void *)L.region, L.region_len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0) != (void *)L.region) {
		r = snap_fail(ctx, -errno, "cannot reserve 0x%llx bytes at 0x%llx: %m",
			      (unsigned long long)L.region_len, (unsigned long long)L.region);
		restore_child_fail(ctx, status_fd, r);
	}
	L.blob = L.region;
	L.args = L.blob + blob_len;
	L.stack_top = L.args + L.args_len + RESTORER_STACK_SIZE;
	L.scratch = L.stack_top;
	if (mmap((void *)L.blob, blob_len + L.args_len + RESTORER_STACK_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		r = snap_fail(ctx, -errno, "cannot map the restorer: %m");
		restore_child_fail(ctx, status_fd, r);
	}
	blob_relocate(&restorer_blob, (void *)L.blob, L.blob);

	L.premap_of = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*L.premap_of));
	L.premap_prot_of = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*L.premap_prot_of));
	if (!L.premap_of || !L.premap_prot_of) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		restore_child_fail(ctx, status_fd, r);
	}
	{
		uint64_t at = L.scratch + align_up(special_total, ps);
		bool *has_pages = calloc(mi->nr_vmas ? mi->nr_vmas : 1, sizeof(*has_pages));

		if (!has_pages) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			restore_child_fail(ctx, status_fd, r);
		}
		mem_vmas_with_pages(mi, has_pages);
		for (size_t i = 0; i < mi->nr_vmas; i++) {
			const VmaEntry *v = mi->vmas[i];
			uint64_t shmem_src = 0;
			int fd = -1;

			if (!mem_vma_premapped(v))
				continue;
			if (L.inherited_of[i]) {
				ssize_t j = parent_twin(parent, v);

				if (j < 0) {
					r = snap_fail(ctx, -EINVAL,
						      "area 0x%llx: inherited, but the parent has no such area",
						      (unsigned long long)v->start);
					restore_child_fail(ctx, status_fd, r);
				}
				L.premap_of[i] = parent->layout->premap_of[j];
				L.premap_prot_of[i] = parent->layout->premap_prot_of[j];
				continue;
			}
			if (v->kind == VMA_KIND__VMA_ANON_SHARED) {
				for (size_t k = 0; k < rt->nr_shmem; k++)
					if (rt->shmem[k].id == v->shmem_id)
						shmem_src = rt->shmem[k].addr;
				if (!shmem_src) {
					r = snap_fail(ctx, -EINVAL, "no shared memory object %llu for area 0x%llx",
						      (unsigned long long)v->shmem_id, (unsigned long long)v->start);
					restore_child_fail(ctx, status_fd, r);
				}
			} else if (v->kind != VMA_KIND__VMA_ANON_PRIVATE) {
				fd = mem_open_mapped_file(ctx, v);
				if (fd < 0)
					restore_child_fail(ctx, status_fd, fd);
			}
			L.premap_prot_of[i] = mem_premap_prot(v, has_pages[i]);
			r = mem_premap_one(ctx, v, at, L.premap_prot_of[i], fd, shmem_src);
			if (fd >= 0)
				close(fd);
			if (r)
				restore_child_fail(ctx, status_fd, r);
			L.premap_of[i] = at;
			at += v->end - v->start;
		}
		free(has_pages);
	}
	cs.premap_ns = snap_now_ns() - t0;

	t0 = stage_begin();
	pages_fd = img_set_open_pages(ctx, set, mi->head->pages_file, &cs.pages_bytes);
	if (pages_fd < 0)
		restore_child_fail(ctx, status_fd, pages_fd);
	ctx->stats.pages_bytes = 0;
	r = mem_fill(ctx, mi, L.premap_of, pages_fd);
	for (size_t i = 0; !r && i < mi->nr_vmas; i++)
		if (L.inherited_of[i])
			r = drop_foreign_pages(ctx, mi, i, L.premap_of[i]);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	/* The restorer maps the rest from it. */
	if (mi->nr_map_runs)
		mi->map_fd = pages_fd;
	else
		close(pages_fd);
	cs.fill_ns = snap_now_ns() - t0;
	cs.pages_bytes = ctx->stats.pages_bytes;
	cs.vmas = mi->nr_vmas;
	cs.region = L.region;
	cs.region_len = L.region_len;
	proc_vma_list_free(&self);
#undef L
#undef cs
}

void restore_task_child(struct snap_ctx *ctx, struct img_set *set, struct restore_task *rt, int status_fd,
			struct restore_ctl *ctl, size_t index)
{
	struct mem_image *mi = &rt->mem;
	struct restore_layout L = *rt->layout;
	struct child_stats cs = rt->layout->stats;
	struct proc_vma_list self = { 0 };
	int exe_fd, keep[3], high, r;
	size_t nr_keep = 2;
	sigset_t all;

	(void)set;

	/* Our own fds move above the image's, then the image's fds are opened. */
	exe_fd = open(mi->mm->exe, O_RDONLY | O_CLOEXEC);
	if (exe_fd < 0) {
		r = snap_fail(ctx, -errno, "cannot open executable %s: %m", mi->mm->exe);
		restore_child_fail(ctx, status_fd, r);
	}
	r = files_restore_prepare(ctx, &rt->files);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	high = files_max_fd(&rt->files) + 1;
	if (high < 3)
		high = 3;
	keep[0] = fcntl(status_fd, F_DUPFD_CLOEXEC, high);
	keep[1] = fcntl(exe_fd, F_DUPFD_CLOEXEC, high);
	if (mi->nr_map_runs) {
		keep[nr_keep++] = fcntl(mi->map_fd, F_DUPFD_CLOEXEC, high);
		close(mi->map_fd);
		mi->map_fd = keep[2];
	}
	if (keep[0] < 0 || keep[1] < 0 || (nr_keep > 2 && keep[2] < 0)) {
		r = snap_fail(ctx, -errno, "cannot move our descriptors out of the way: %m");
		restore_child_fail(ctx, status_fd, r);
	}
	close(exe_fd);
	close(status_fd);
	status_fd = keep[0];
	exe_fd = keep[1];
	r = files_restore(ctx, &rt->files, keep, nr_keep);
	if (!r && chdir(rt->files.fs->cwd))
		r = snap_fail(ctx, -errno, "cannot enter working directory %s: %m", rt->files.fs->cwd);
	if (!r)
		r = attrs_restore_locks(ctx, rt->core);
	if (r)
		restore_child_fail(ctx, status_fd, r);

	/* The layout as it is now, with every mapping of ours the steps above made. */
	r = proc_read_vmas(ctx, getpid(), &self);
	if (!r)
		r = build_args(ctx, rt, &L, status_fd, exe_fd, &self);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	r = rseq_unregister_self();
	if (r) {
		r = snap_fail(ctx, r, "cannot unregister the engine's rseq area: %s", strerror(-r));
		restore_child_fail(ctx, status_fd, r);
	}
	r = attrs_restore_child(ctx, rt->core, rt->files.fs);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	cs.pid = getpid();
	send_status(status_fd, STATUS_STATS, &cs, sizeof(cs));
	/* The restorer stops for the engine: it must be tracing us first. */
	while (!atomic_load(&ctl->go[index]))
		syscall(SYS_futex, &ctl->go[index], FUTEX_WAIT, 0, NULL, NULL, 0);
	arch_jump(L.blob + RESTORER_BLOB_OFF_restorer_entry, L.stack_top, L.args);
}

/* ---- in the engine ---- */

/*
 * Reads the child's status records until it reports its stats (1: it is
 * about to enter the restorer), reports an error (<0), or is gone (0).
 */
int restore_read_status(struct snap_ctx *ctx, int fd, struct child_stats *cs, pid_t *ret_sender)
{
	char buf[STATUS_MSG_MAX + 2];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} cbuf;

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) - 1 };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cbuf, .msg_controllen = sizeof(cbuf)
		};
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		struct cmsghdr *c;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (buf[0] == STATUS_STATS && (size_t)n == 1 + sizeof(*cs)) {
			memcpy(cs, buf + 1, sizeof(*cs));
			/* With SO_PASSCRED the kernel names the sender in our PID namespace, whatever its own says. */
			*ret_sender = cs->pid;
			for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
					*ret_sender = ((struct ucred *)CMSG_DATA(c))->pid;
			return 1;
		}
		buf[n] = '\0';
		if (buf[0] == STATUS_ERROR && (size_t)n > 1 + sizeof(int32_t)) {
			int32_t e;

			memcpy(&e, buf + 1, sizeof(e));
			return snap_fail(ctx, e < 0 ? e : -EIO, "%s", buf + 1 + sizeof(e));
		}
		/* The restorer blob writes plain text, its pid first. */
		return snap_fail(ctx, -EIO, "%s", buf);
	}
}

/* Something other than the expected stop: the restorer's own words if it left any, else the status. */
static int restorer_failed(struct snap_ctx *ctx, pid_t pid, pid_t tid, int status_fd, int status, const char *waiting)
{
	char buf[STATUS_MSG_MAX + 1], why[96];
	ssize_t n;

	fcntl(status_fd, F_SETFL, O_NONBLOCK);
	n = read(status_fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		return snap_fail(ctx, -EIO, "%s", buf);
	}
	return snap_fail(ctx, -ECHILD, "pid %d: tid %d %s while %s", pid, tid,
			 ptrace_status_str(status, why, sizeof(why)), waiting);
}

/* Waits for @tid's next stop and checks it is the one wanted: a signal (@sig), or an event stop (@event). */
static int expect_stop(struct snap_ctx *ctx, pid_t pid, pid_t tid, int status_fd, int sig, int event,
		       const char *waiting)
{
	int status, r = ptrace_wait(tid, &status);

	if (r)
		return snap_fail(ctx, r, "pid %d: tid %d: wait: %s", pid, tid, strerror(-r));
	if (!WIFSTOPPED(status) || (event ? (status >> 16) != event : (WSTOPSIG(status) != sig || (status >> 16))))
		return restorer_failed(ctx, pid, tid, status_fd, status, waiting);
	return 0;
}

static int step_through_sigreturn(struct snap_ctx *ctx, pid_t pid, pid_t tid, int status_fd)
{
	for (int i = 0; i < 2; i++) {
		int r;

		if (ptrace(PTRACE_SYSCALL, tid, 0, 0))
			return snap_fail(ctx, -errno, "pid %d: tid %d: cannot step into rt_sigreturn: %m", pid, tid);
		r = expect_stop(ctx, pid, tid, status_fd, SIGTRAP | 0x80, 0, "in rt_sigreturn");
		if (r)
			return r;
	}
	return 0;
}

/*
 * The restorer runs under our eyes: it stops once before creating the
 * threads (so that we follow the clones), each thread stops right before
 * its rt_sigreturn, we step every thread through it, and then remove the
 * restorer region, which no thread executes any more.
 */
static int restore_finish_threads(struct snap_ctx *ctx, const struct restore_task *rt, pid_t pid, pid_t *tids,
				  uint64_t region, uint64_t region_len, int status_fd)
{
	const VmaEntry *vdso = find_special(&rt->mem, VMA_KIND__VMA_VDSO);
	long off = vdso_syscall_offset(), ret;
	uint64_t args[6] = { region, region_len, 0, 0, 0, 0 };
	struct arch_regs regs;
	uint64_t mask, all = ~0ull;
	size_t first = (size_t)-1;
	int r;

	r = expect_stop(ctx, pid, pid, status_fd, SIGTRAP, 0, "waiting for the restorer");
	if (r)
		return r;
	if (ptrace(PTRACE_SETOPTIONS, pid, 0,
		   PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE |
			   attrs_ptrace_options(rt->core, rt->threads, rt->nr_threads)) ||
	    ptrace(PTRACE_CONT, pid, 0, 0))
		return snap_fail(ctx, -errno, "pid %d: cannot follow thread creation: %m", pid);
	for (size_t i = 1; i < rt->nr_threads; i++) {
		unsigned long msg = 0;
		pid_t tid;

		r = expect_stop(ctx, pid, pid, status_fd, 0, PTRACE_EVENT_CLONE, "creating threads");
		if (!r && ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg))
			r = snap_fail(ctx, -errno, "pid %d: cannot learn the new thread's id: %m", pid);
		tid = tids[i] = (pid_t)msg;
		if (!r && ptrace(PTRACE_CONT, pid, 0, 0))
			r = snap_fail(ctx, -errno, "pid %d: cannot resume: %m", pid);
		if (!r)
			r = expect_stop(ctx, pid, tid, status_fd, 0, PTRACE_EVENT_STOP, "starting a thread");
		if (!r && ptrace(PTRACE_CONT, tid, 0, 0))
			r = snap_fail(ctx, -errno, "pid %d: tid %d: cannot resume: %m", pid, tid);
		if (r)
			return r;
	}
	/* Only now: a thread may wait for the leader's part of the attributes (restorer/attrs.c). */
	for (size_t i = 1; !r && i < rt->nr_threads; i++)
		r = expect_stop(ctx, pid, rt->threads[i]->tid, status_fd, SIGTRAP, 0, "restoring a thread");
	r = expect_stop(ctx, pid, pid, status_fd, SIGTRAP, 0, "restoring the main thread");
	for (size_t i = 0; !r && i < rt->nr_threads; i++)
		r = step_through_sigreturn(ctx, pid, tids[i], status_fd);
	if (r)
		return r;

	r = arch_get_regs(pid, &regs);
	if (r)
		return snap_fail(ctx, r, "pid %d: cannot read the restored registers: %s", pid, strerror(-r));
	if (!vdso || off < 0)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: no vDSO to remove the restorer from", pid);
	/* Pending signals it does not block would be delivered into the injected call: hold them back. */
	if (ptrace(PTRACE_GETSIGMASK, pid, sizeof(mask), &mask) || ptrace(PTRACE_SETSIGMASK, pid, sizeof(all), &all))
		return snap_fail(ctx, -errno, "pid %d: cannot block signals for the cleanup: %m", pid);
	r = ptrace_remote_syscall(ctx, pid, &regs, vdso->start + (uint64_t)off, SYS_munmap, args, &ret);
	if (!r && ret)
		r = snap_fail(ctx, (int)ret, "pid %d: cannot unmap the restorer: %s", pid, strerror((int)-ret));
	if (!r && ptrace(PTRACE_SETSIGMASK, pid, sizeof(mask), &mask))
		r = snap_fail(ctx, -errno, "pid %d: cannot restore the signal mask: %m", pid);
	if (!r && (r = arch_set_regs(pid, &regs)))
		snap_fail(ctx, r, "pid %d: cannot put the restored registers back: %s", pid, strerror(-r));
	/* Per-thread state only ptrace can set (aarch64: pointer authentication keys). */
	for (size_t i = 0; !r && i < rt->nr_threads; i++)
		r = arch_thread_restore_late(ctx, tids[i], rt->threads[i]);
	/* A libsnap-app control thread goes first and runs its after-restore callbacks alone (app-engine.c). */
	if (!r)
		r = app_engine_restore(ctx, rt, pid, tids, &first);
	for (size_t i = 0; !r && i < rt->nr_threads; i++)
		if (i != first && ptrace(PTRACE_DETACH, tids[i], 0, 0))
			r = snap_fail(ctx, -errno, "pid %d: tid %d: cannot detach: %m", pid, tids[i]);
	return r;
}

/*
 * @pid and the thread ids are ours, which differ from the image's when the
 * tree is in a PID namespace of its own: the threads' come from the clone
 * events as the restorer creates them.
 */
int restore_task_finish(struct snap_ctx *ctx, const struct restore_task *rt, pid_t pid, uint64_t region,
			uint64_t region_len, int status_fd)
{
	pid_t *tids = calloc(rt->nr_threads, sizeof(*tids));
	int r;

	if (!tids)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	tids[0] = pid;
	r = restore_finish_threads(ctx, rt, pid, tids, region, region_len, status_fd);
	free(tids);
	return r;
}
