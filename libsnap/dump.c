/* snap_dump: freeze, collect, infect, drain, write, cure, then kill or let run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "app-engine.h"
#include "attrs.h"
#include "files.h"
#include "hooks.h"
#include "image.h"
#include "mem.h"
#include "task.h"

void dump_task_free(struct dump_task *t)
{
	proc_vma_list_free(&t->vmas);
	for (size_t i = 0; i < t->nr_threads; i++) {
		arch_thread_state_free(&t->threads[i].state);
		backtrace_free(&t->threads[i]);
	}
	free(t->threads);
	backtrace_task_free(t);
	free(t->exe);
	free(t->cwd);
	free(t->root);
	free(t->auxv);
	free(t->fds);
	files_dump_free(t->files);
	attrs_free(t);
}

#define for_each_live_task(tree, t)                                                    \
	for (struct dump_task *t = (tree)->tasks; t < (tree)->tasks + (tree)->nr; t++) \
		if (!t->zombie)

/* What ptrace and /proc tell of one frozen thread. */
static int collect_thread(struct snap_ctx *ctx, struct dump_task *t, struct dump_thread *th)
{
	pid_t pid = t->pid;
	pid_t tid = th->tid;
	char name[64];
	FILE *f;
	int r;

	r = arch_get_thread(ctx, tid, &th->state);
	if (r)
		return r;
	if (ptrace(PTRACE_GETSIGMASK, tid, sizeof(th->sigmask), &th->sigmask))
		return snap_fail(ctx, -errno, "pid %d: tid %d: cannot read the signal mask: %m", pid, tid);
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, sizeof(th->rseq), &th->rseq) < 0)
		return snap_fail(ctx, -errno, "pid %d: tid %d: cannot read the rseq registration: %m", pid, tid);
	th->has_rseq = th->rseq.rseq_abi_pointer != 0;
	if (syscall(SYS_get_robust_list, tid, &th->robust_head, &th->robust_len))
		return snap_fail(ctx, -errno, "pid %d: tid %d: cannot read the robust futex list: %m", pid, tid);
	snprintf(name, sizeof(name), "task/%d/comm", tid);
	f = proc_fopen(pid, name);
	if (!f || !fgets(th->comm, sizeof(th->comm), f)) {
		r = snap_fail(ctx, -errno ? -errno : -EIO, "pid %d: cannot read /proc/%d/%s", pid, pid, name);
		if (f)
			fclose(f);
		return r;
	}
	fclose(f);
	th->comm[strcspn(th->comm, "\n")] = '\0';
	backtrace_collect(ctx, t, th);
	return 0;
}

/* What /proc and ptrace tell from outside, while the task is frozen. */
static int collect(struct snap_ctx *ctx, struct dump_task *t)
{
	pid_t pid = t->pid;
	int r;

	r = proc_read_stat(ctx, pid, &t->stat);
	if (!r)
		r = proc_read_vmas(ctx, pid, &t->vmas);
	if (!r)
		r = mem_check_vmas(ctx, t);
	for (size_t i = 0; !r && i < t->nr_threads; i++)
		r = collect_thread(ctx, t, &t->threads[i]);
	if (r)
		return r;
	r = proc_readlink(ctx, pid, "exe", &t->exe);
	if (!r)
		r = proc_readlink(ctx, pid, "cwd", &t->cwd);
	if (!r)
		r = proc_readlink(ctx, pid, "root", &t->root);
	if (!r)
		r = proc_read_auxv(ctx, pid, &t->auxv, &t->nr_auxv);
	if (!r)
		r = files_collect(ctx, t);
	if (!r)
		r = attrs_collect(ctx, t);
	return r;
}

static void thread_to_image(const struct dump_thread *th, ThreadCoreEntry *tc, RseqEntry *rseq)
{
	tc->tid = th->tid;
	tc->blocked = th->sigmask;
	if (th->has_rseq) {
		rseq->addr = th->rseq.rseq_abi_pointer;
		rseq->len = th->rseq.rseq_abi_size;
		rseq->signature = th->rseq.signature;
		tc->rseq = rseq;
	}
	tc->robust_list = th->robust_head;
	tc->robust_list_len = th->robust_len;
	tc->clear_child_tid = th->info.clear_child_tid;
	tc->has_altstack_sp = tc->has_altstack_size = tc->has_altstack_flags = 1;
	tc->altstack_sp = th->info.altstack_sp;
	tc->altstack_size = th->info.altstack_size;
	tc->altstack_flags = (uint32_t)th->info.altstack_flags;
	tc->comm = (char *)th->comm;
	tc->backtrace = th->backtrace;
	tc->n_backtrace = th->nr_frames;
}

static int write_core(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	SigactionEntry acts[PARASITE_NSIG], *actp[PARASITE_NSIG];
	TaskCoreEntry tce = TASK_CORE_ENTRY__INIT;
	struct img_writer *w;
	int r;

	tce.comm = t->stat.comm;
	tce.umask = t->status.umask;
	tce.personality = t->misc.personality;
	tce.has_exit_signal = 1;
	tce.exit_signal = t->stat.exit_signal;
	for (int i = 0; i < PARASITE_NSIG; i++) {
		sigaction_entry__init(&acts[i]);
		acts[i].sig = (uint32_t)i + 1;
		acts[i].handler = t->sigactions[i].handler;
		acts[i].flags = t->sigactions[i].flags;
		acts[i].restorer = t->sigactions[i].restorer;
		acts[i].mask = t->sigactions[i].mask;
		actp[i] = &acts[i];
	}
	tce.sigactions = actp;
	tce.n_sigactions = PARASITE_NSIG;

	r = img_writer_open(ctx, dir, IMG_KIND_CORE, t->pid, &w);
	if (r)
		return r;
	/* Task-wide attributes; each thread's own go with it. */
	r = attrs_to_image(ctx, t, &tce);
	if (!r)
		r = img_write_msg(ctx, w, &tce.base);
	for (size_t i = 0; !r && i < t->nr_threads; i++) {
		ThreadCoreEntry tc = THREAD_CORE_ENTRY__INIT;
		RseqEntry rseq = RSEQ_ENTRY__INIT;

		tc.attrs = attrs_thread_image(t, i);
		thread_to_image(&t->threads[i], &tc, &rseq);
		r = arch_thread_to_image(ctx, &t->threads[i].state, &tc);
		if (!r)
			r = arch_thread_dump_fixup(ctx, t->threads[i].tid, &tc);
		if (!r)
			r = img_write_msg(ctx, w, &tc.base);
		arch_thread_image_free(&tc);
	}
	if (r) {
		img_writer_close(ctx, w);
		return r;
	}
	return img_writer_close(ctx, w);
}

static int write_pstree(struct snap_ctx *ctx, struct dump_tree *tree, struct img_dir *dir)
{
	struct img_writer *w;
	int r;

	r = img_writer_open(ctx, dir, IMG_KIND_PSTREE, 0, &w);
	for (size_t k = 0; !r && k < tree->nr; k++) {
		const struct dump_task *t = &tree->tasks[k];
		PstreeEntry pe = PSTREE_ENTRY__INIT;
		int32_t *tids = calloc(t->nr_threads + 1, sizeof(*tids));

		if (!tids) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < t->nr_threads; i++)
			tids[i] = t->threads[i].tid;
		pe.pid = t->pid;
		pe.ppid = t->stat.ppid;
		pe.pgid = t->stat.pgrp;
		pe.sid = t->stat.session;
		pe.threads = tids;
		pe.n_threads = t->nr_threads;
		if (t->zombie) {
			pe.has_zombie = pe.has_exit_status = 1;
			pe.zombie = 1;
			pe.exit_status = t->exit_status;
		}
		r = img_write_msg(ctx, w, &pe.base);
		free(tids);
	}
	if (r) {
		if (w)
			img_writer_close(ctx, w);
		return r;
	}
	return img_writer_close(ctx, w);
}

static int finish_inventory(struct snap_ctx *ctx, pid_t root, struct img_dir *dir)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	char boot_id[64] = "";
	struct utsname u;
	struct timespec now;
	FILE *f;

	uname(&u);
	f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (f) {
		if (!fgets(boot_id, sizeof(boot_id), f))
			boot_id[0] = '\0';
		boot_id[strcspn(boot_id, "\n")] = '\0';
		fclose(f);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	inv.format_version = IMG_FORMAT_VERSION;
	inv.arch = (char *)arch_name();
	inv.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	inv.kernel_release = u.release;
	inv.boot_id = boot_id;
	inv.root_pid = root;
	inv.dump_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	return img_dir_finish(ctx, dir, &inv);
}

/* What the parasite tells of one task: signal actions, process-wide state, and every thread's own. */
static int drain_task(struct snap_ctx *ctx, struct dump_task *t)
{
	int r;

	r = parasite_run(ctx, t, PARASITE_CMD_DUMP_SIGACTIONS);
	if (!r)
		r = parasite_run(ctx, t, PARASITE_CMD_DUMP_MISC);
	if (!r) {
		memcpy(t->sigactions, parasite_shared(t)->sigactions, sizeof(t->sigactions));
		t->misc = parasite_shared(t)->misc;
		task_leader(t)->info = parasite_shared(t)->leader;
	}
	for (size_t i = 1; !r && i < t->nr_threads; i++)
		r = parasite_run_thread(ctx, t, &t->threads[i]);
	if (!r)
		r = attrs_drain(ctx, t);
	if (!r && !t->status.has_umask)
		r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: the kernel does not report its umask", t->pid);
	return r;
}

static int write_task(struct snap_ctx *ctx, struct dump_tree *tree, struct dump_task *t, struct img_dir *dir,
		      struct shmem_set *shmem)
{
	const struct dump_task *parent = NULL;
	uint64_t t0;
	int r;

	for (size_t i = 0; t != tree->tasks && i < tree->nr; i++)
		if (tree->tasks[i].pid == t->stat.ppid)
			parent = &tree->tasks[i];
	r = mem_dump(ctx, t, dir, shmem, parent); /* times itself: drain and write */
	t0 = stage_begin();
	if (!r)
		r = write_core(ctx, t, dir);
	if (!r)
		r = files_dump(ctx, t, dir);
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
	return r;
}

int snap_dump(snap_ctx *ctx, const struct snap_dump_opts *opts)
{
	struct dump_tree tree = { 0 };
	struct app_engine *app = NULL;
	struct shmem_set *shmem = NULL;
	struct img_dir *dir = NULL;
	bool leave_running;
	uint64_t t0;
	int r;

	snap_clear_error(ctx);
	snap_stats_reset(ctx);
	if (!opts || opts->size < offsetof(struct snap_dump_opts, stats_file) + sizeof(opts->stats_file))
		return snap_fail(ctx, -EINVAL, "snap_dump: options struct too small");
	if (opts->pid <= 0)
		return snap_fail(ctx, -EINVAL, "snap_dump: no pid given");
	if (!opts->images_dir)
		return snap_fail(ctx, -EINVAL, "snap_dump: no images directory given");
	leave_running = opts->flags & SNAP_DUMP_LEAVE_RUNNING;
	ctx->progress_fn = OPTS_HAS(opts, progress_opaque) ? opts->progress : NULL;
	ctx->progress_opaque = OPTS_HAS(opts, progress_opaque) ? opts->progress_opaque : NULL;
	/* Before anything touches the tree: a failure leaves it running untouched. */
	if (OPTS_HAS(opts, nr_hooks)) {
		r = hooks_run(ctx, opts->hooks, opts->nr_hooks, SNAP_HOOK_PRE_DUMP, opts->pid, opts->images_dir,
			      "; nothing was dumped, the process runs on untouched");
		if (r)
			return r;
	}

	t0 = stage_begin();
	/* Registered processes run their before-checkpoint callbacks while they still run (app-engine.c). */
	r = app_engine_prepare(ctx, opts->pid, &app);
	if (!r)
		r = seize_tree(ctx, &tree, opts->pid);
	stage_end(ctx, SNAP_STAGE_FREEZE, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	/* One set of open files for the whole tree: fds of several processes may share them. */
	if (tree.nr) {
		struct files_dump *files = calloc(1, sizeof(*files));

		if (!files)
			r = snap_fail(ctx, -ENOMEM, "out of memory");
		else
			files->flags = opts->flags;
		for_each_live_task(&tree, t)
		{
			t->files = files;
			t->flags = opts->flags;
			if (!r && files)
				r = files_dump_add_pid(ctx, files, t->pid);
		}
	}
	/* Files shared between processes are one object of the tree (files-share.c creates each once). */
	for_each_live_task(&tree, t) if (!r) r = collect(ctx, t);
	if (!r && tree.nr)
		r = files_collect_finish(ctx, tree.tasks[0].files);
	for_each_live_task(&tree, t) if (!r) r = mem_check_memfd_fds(ctx, t);
	stage_end(ctx, SNAP_STAGE_COLLECT, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	for_each_live_task(&tree, t) if (!r) r = infect(ctx, t);
	stage_end(ctx, SNAP_STAGE_INFECT, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	for_each_live_task(&tree, t) if (!r) r = drain_task(ctx, t);
	stage_end(ctx, SNAP_STAGE_DRAIN, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = img_dir_create(ctx, opts->images_dir, &dir);
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
	shmem = calloc(1, sizeof(*shmem));
	if (!r && !shmem)
		r = snap_fail(ctx, -ENOMEM, "out of memory");
	if (ctx->progress_fn) {
		uint64_t total = 0;

		for_each_live_task(&tree, t) total += progress_resident(t->pid);
		progress_begin(ctx, SNAP_STAGE_DRAIN, total);
	}
	for_each_live_task(&tree, t) if (!r) r = write_task(ctx, &tree, t, dir, shmem);
	if (!r && ctx->progress_fn)
		progress_end(ctx, SNAP_STAGE_DRAIN);
	if (!r) {
		t0 = stage_begin();
		/* The open files of the whole tree, which the processes' fd tables refer to. */
		r = files_dump_shared(ctx, &tree.tasks[0], dir);
		if (!r)
			r = write_pstree(ctx, &tree, dir);
		stage_end(ctx, SNAP_STAGE_WRITE, t0);
	}
	if (r)
		goto out;

	t0 = stage_begin();
	for_each_live_task(&tree, t) if (!r) r = cure(ctx, t);
	stage_end(ctx, SNAP_STAGE_CURE, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = finish_inventory(ctx, opts->pid, dir);
	dir = NULL;
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
out:
	t0 = stage_begin();
	/* On any failure every task runs on exactly as it was. */
	for_each_live_task(&tree, t)
	{
		int cr = cure(ctx, t);

		if (!r)
			r = cr;
	}
	if (tree.nr && tree.tasks[0].files)
		files_dump_finish(ctx, &tree.tasks[0], !r && !leave_running);
	for_each_live_task(&tree, t) seize_release(ctx, t, !r && !leave_running);
	app_engine_release(ctx, app, !r && !leave_running);
	stage_end(ctx, SNAP_STAGE_CURE, t0);
	if (dir)
		img_dir_abort(dir);
	/* The tree's files belong to the root's entry only. */
	for (size_t i = 1; i < tree.nr; i++)
		tree.tasks[i].files = NULL;
	dump_tree_free(&tree);
	free(shmem);
	if (!r && opts->stats_file)
		r = snap_stats_write_json(ctx, opts->stats_file);
	if (!r && OPTS_HAS(opts, nr_hooks))
		r = hooks_run(ctx, opts->hooks, opts->nr_hooks, SNAP_HOOK_POST_DUMP, opts->pid, opts->images_dir,
			      leave_running ? "; the dump is complete and the process runs on"
					    : "; the dump is complete and the process was killed");
	return r;
}
