/*
 * The restorer: runs in the new process after the engine premapped and
 * filled its memory. It tears down the engine's address space, moves every
 * area to its final place, sets the mm fields and per-task state, and
 * returns into the saved registers through rt_sigreturn.
 */
#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/signal.h>

#include "restorer.h"
#include "restorer-attrs.h"
#include "rt.h"

#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef MREMAP_MAYMOVE
#define MREMAP_MAYMOVE 1
#endif
#define RSEQ_FLAG_UNREGISTER_NONE 0
#define EEXIST			  17

__attribute__((noreturn)) static void fail(const struct restorer_args *a, const char *what, uint64_t addr, long err)
{
	char msg[256];
	size_t n = rt_format(msg, sizeof(msg), "pid %ld: restorer: %s at 0x%lx failed: error %ld", sys0(__NR_getpid),
			     what, (unsigned long)addr, -err);

	sys_write(a->status_fd, msg, n < sizeof(msg) ? n : sizeof(msg) - 1);
	sys_exit_group(1);
}

static void move_area(const struct restorer_args *a, uint64_t from, uint64_t len, uint64_t to, const char *what)
{
	long r = sys_mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);

	if (r != (long)to)
		fail(a, what, to, r < 0 ? r : -14);
}

/* Per-thread state, set by the thread itself, then into its saved registers. */
__attribute__((noreturn)) static void thread_main(void *arg)
{
	const struct restorer_thread *t = arg;
	const struct restorer_args *a = (const void *)t->args;
	long r;

	sys_prctl(PR_SET_NAME, (long)t->comm, 0, 0, 0);
	sys1(__NR_set_tid_address, t->clear_child_tid);
	if (t->robust_list) {
		r = sys2(__NR_set_robust_list, t->robust_list, t->robust_list_len);
		if (r)
			fail(a, "set_robust_list", t->robust_list, r);
	}
	if (t->has_rseq) {
		r = sys4(__NR_rseq, t->rseq_addr, t->rseq_len, RSEQ_FLAG_UNREGISTER_NONE, t->rseq_sig);
		if (r)
			fail(a, "rseq registration", t->rseq_addr, r);
	}
	r = arch_blob_set_tls(t->tls);
	if (r)
		fail(a, "setting TLS", t->tls[0], r);
	/*
	 * The leader makes the process-wide attributes once every thread
	 * exists (signals may be queued to any of them); then each thread its
	 * own, credentials and seccomp last, as both are per thread.
	 */
	if (t == (const struct restorer_thread *)a->threads)
		restorer_attrs_process(a);
	restorer_attrs_thread(a, t->tid);
	/* Kept open until here so that a failure of the attributes still reaches the engine. */
	if (t == (const struct restorer_thread *)a->threads)
		sys_close(a->status_fd);
	/* The engine steps us through rt_sigreturn; once every thread is through, it removes this blob. */
	rt_stop_for_tracer();
	arch_blob_sigreturn(t->sigreturn_sp);
}

long blob_main(struct restorer_args *a)
{
	const struct restorer_thread *threads = (const void *)a->threads;
	const struct restorer_vma *vmas = (const void *)a->vmas;
	const struct restorer_range *unmap = (const void *)a->unmap;
	const struct restorer_special *special = (const void *)a->special;
	const struct restorer_map_run *map_runs = (const void *)a->map_runs;
	uint32_t mr = 0;
	long r;

	/* Park the kernel's areas where nothing of either layout lives. */
	for (uint32_t i = 0; i < a->nr_special; i++)
		move_area(a, special[i].cur, special[i].len, special[i].scratch, "parking a vDSO area");

	/* Drop everything of the engine: libc, heap, stack, the snapcr binary. */
	for (uint32_t i = 0; i < a->nr_unmap; i++) {
		r = sys_munmap(unmap[i].start, unmap[i].end - unmap[i].start);
		if (r)
			fail(a, "unmapping the engine", unmap[i].start, r);
	}

	for (uint32_t i = 0; i < a->nr_vmas; i++) {
		const struct restorer_vma *v = &vmas[i];
		uint64_t len = v->end - v->start;

		move_area(a, v->premap, len, v->start, "moving a memory area");
		/* Splits the area into several VMAs; the mprotect and madvise below take a range, not a VMA. */
		for (; mr < a->nr_map_runs && map_runs[mr].start < v->end; mr++) {
			const struct restorer_map_run *m = &map_runs[mr];

			r = sys6(__NR_mmap, m->start, m->len, m->prot, MAP_PRIVATE | MAP_FIXED | m->flags, a->map_fd,
				 m->offset);
			if (r != (long)m->start)
				fail(a, "mapping pages from the page file", m->start, r < 0 ? r : -14);
		}
		if (v->prot != v->premap_prot) {
			r = sys_mprotect(v->start, len, v->prot);
			if (r)
				fail(a, "mprotect", v->start, r);
		}
		for (int adv = 0; adv < 64; adv++) {
			if (!(v->madv & (1ull << adv)))
				continue;
			r = sys_madvise(v->start, len, adv);
			if (r)
				fail(a, "madvise", v->start, r);
		}
	}

	if (a->nr_map_runs)
		sys_close(a->map_fd);

	for (uint32_t i = 0; i < a->nr_special; i++) {
		if (special[i].target)
			move_area(a, special[i].scratch, special[i].len, special[i].target, "placing a vDSO area");
		else if ((r = sys_munmap(special[i].scratch, special[i].len)))
			fail(a, "dropping a vDSO area", special[i].scratch, r);
	}

	r = sys_prctl(PR_SET_MM, PR_SET_MM_MAP, (long)&a->mm, sizeof(a->mm), 0);
	if (r)
		fail(a, "PR_SET_MM_MAP", a->mm.start_brk, r);
	sys_close(a->exe_fd);

	for (uint32_t sig = 1; sig <= a->nr_sigactions; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		r = sys_rt_sigaction((int)sig, &a->sigactions[sig - 1], 0);
		if (r)
			fail(a, "rt_sigaction", sig, r);
	}

	sys1(__NR_umask, a->umask);

	/* The engine now follows thread creation; then the other threads, each into its own state. */
	rt_stop_for_tracer();
	restorer_attrs_before_threads(a);
	for (uint32_t i = 1; i < a->nr_threads; i++) {
		const struct restorer_thread *t = &threads[i];
		struct clone_args ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
			.stack = t->stack_top - RESTORER_THREAD_STACK_SIZE,
			.stack_size = RESTORER_THREAD_STACK_SIZE,
			.set_tid = (uint64_t)&t->tid,
			.set_tid_size = 1,
		};

		r = arch_blob_clone_thread(&ca, sizeof(ca), thread_main, (void *)t);
		if (r != t->tid)
			fail(a, "creating thread", (uint64_t)t->tid, r < 0 ? r : -EEXIST);
	}
	thread_main((void *)&threads[0]);
}
