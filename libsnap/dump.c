/* snap_dump: freeze, collect, infect, drain, write, cure, then kill or let run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "image.h"
#include "mem.h"
#include "task.h"

void dump_task_free(struct dump_task *t)
{
	proc_vma_list_free(&t->vmas);
	arch_thread_state_free(&t->thread);
	free(t->exe);
	free(t->cwd);
	free(t->root);
	free(t->auxv);
	free(t->fds);
	files_dump_free(t->files);
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
	if (!r)
		r = arch_get_thread(ctx, pid, &t->thread);
	if (r)
		return r;
	if (ptrace(PTRACE_GETSIGMASK, pid, sizeof(t->sigmask), &t->sigmask))
		return snap_fail(ctx, -errno, "tid %d: cannot read the signal mask: %m", pid);
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, sizeof(t->rseq), &t->rseq) < 0)
		return snap_fail(ctx, -errno, "tid %d: cannot read the rseq registration: %m", pid);
	t->has_rseq = t->rseq.rseq_abi_pointer != 0;
	if (syscall(SYS_get_robust_list, pid, &t->robust_head, &t->robust_len))
		return snap_fail(ctx, -errno, "tid %d: cannot read the robust futex list: %m", pid);
	r = proc_readlink(ctx, pid, "exe", &t->exe);
	if (!r)
		r = proc_readlink(ctx, pid, "cwd", &t->cwd);
	if (!r)
		r = proc_readlink(ctx, pid, "root", &t->root);
	if (!r)
		r = proc_read_auxv(ctx, pid, &t->auxv, &t->nr_auxv);
	if (!r)
		r = files_collect(ctx, t);
	return r;
}

static int write_core(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	SigactionEntry acts[PARASITE_NSIG], *actp[PARASITE_NSIG];
	TaskCoreEntry tce = TASK_CORE_ENTRY__INIT;
	ThreadCoreEntry tc = THREAD_CORE_ENTRY__INIT;
	RseqEntry rseq = RSEQ_ENTRY__INIT;
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

	tc.tid = t->pid;
	tc.blocked = t->sigmask;
	if (t->has_rseq) {
		rseq.addr = t->rseq.rseq_abi_pointer;
		rseq.len = t->rseq.rseq_abi_size;
		rseq.signature = t->rseq.signature;
		tc.rseq = &rseq;
	}
	tc.robust_list = t->robust_head;
	tc.robust_list_len = t->robust_len;
	tc.clear_child_tid = t->misc.clear_child_tid;
	tc.has_altstack_sp = tc.has_altstack_size = tc.has_altstack_flags = 1;
	tc.altstack_sp = t->misc.altstack_sp;
	tc.altstack_size = t->misc.altstack_size;
	tc.altstack_flags = (uint32_t)t->misc.altstack_flags;
	tc.comm = t->stat.comm;
	r = arch_thread_to_image(ctx, &t->thread, &tc);
	if (r)
		return r;

	r = img_writer_open(ctx, dir, IMG_KIND_CORE, t->pid, &w);
	if (!r) {
		r = img_write_msg(ctx, w, &tce.base);
		if (!r)
			r = img_write_msg(ctx, w, &tc.base);
		if (!r)
			r = img_writer_close(ctx, w);
		else
			img_writer_close(ctx, w);
	}
	arch_thread_image_free(&tc);
	return r;
}

static int write_pstree(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	PstreeEntry pe = PSTREE_ENTRY__INIT;
	int32_t tid = t->pid;
	struct img_writer *w;
	int r;

	pe.pid = t->pid;
	pe.ppid = t->stat.ppid;
	pe.pgid = t->stat.pgrp;
	pe.sid = t->stat.session;
	pe.threads = &tid;
	pe.n_threads = 1;
	r = img_writer_open(ctx, dir, IMG_KIND_PSTREE, 0, &w);
	if (r)
		return r;
	r = img_write_msg(ctx, w, &pe.base);
	if (r) {
		img_writer_close(ctx, w);
		return r;
	}
	return img_writer_close(ctx, w);
}

static int finish_inventory(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
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
	inv.root_pid = t->pid;
	inv.dump_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	return img_dir_finish(ctx, dir, &inv);
}

int snap_dump(snap_ctx *ctx, const struct snap_dump_opts *opts)
{
	struct dump_task t = { 0 };
	struct img_dir *dir = NULL;
	bool leave_running;
	uint64_t t0;
	int r, cr;

	snap_clear_error(ctx);
	snap_stats_reset(ctx);
	if (!opts || opts->size < offsetof(struct snap_dump_opts, stats_file) + sizeof(opts->stats_file))
		return snap_fail(ctx, -EINVAL, "snap_dump: options struct too small");
	if (opts->pid <= 0)
		return snap_fail(ctx, -EINVAL, "snap_dump: no pid given");
	if (!opts->images_dir)
		return snap_fail(ctx, -EINVAL, "snap_dump: no images directory given");
	t.pid = opts->pid;
	t.flags = opts->flags;
	leave_running = opts->flags & SNAP_DUMP_LEAVE_RUNNING;

	t0 = stage_begin();
	r = seize_task(ctx, &t);
	if (!r)
		r = seize_check_alone(ctx, &t);
	stage_end(ctx, SNAP_STAGE_FREEZE, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = collect(ctx, &t);
	stage_end(ctx, SNAP_STAGE_COLLECT, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = infect(ctx, &t);
	stage_end(ctx, SNAP_STAGE_INFECT, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = parasite_run(ctx, &t, PARASITE_CMD_DUMP_SIGACTIONS);
	if (!r)
		r = parasite_run(ctx, &t, PARASITE_CMD_DUMP_MISC);
	if (!r) {
		memcpy(t.sigactions, parasite_shared(&t)->sigactions, sizeof(t.sigactions));
		t.misc = parasite_shared(&t)->misc;
	}
	if (!r && !t.status.has_umask)
		r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: the kernel does not report its umask", t.pid);
	stage_end(ctx, SNAP_STAGE_DRAIN, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = img_dir_create(ctx, opts->images_dir, &dir);
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
	if (!r)
		r = mem_dump(ctx, &t, dir); /* times itself: drain and write */
	t0 = stage_begin();
	if (!r)
		r = write_core(ctx, &t, dir);
	if (!r)
		r = files_dump(ctx, &t, dir);
	if (!r)
		r = files_dump_shared(ctx, &t, dir);
	if (!r)
		r = write_pstree(ctx, &t, dir);
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = cure(ctx, &t);
	stage_end(ctx, SNAP_STAGE_CURE, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	r = finish_inventory(ctx, &t, dir);
	dir = NULL;
	stage_end(ctx, SNAP_STAGE_WRITE, t0);
out:
	/* On any failure the task runs on exactly as it was. */
	cr = cure(ctx, &t);
	if (!r)
		r = cr;
	t0 = stage_begin();
	files_dump_finish(ctx, &t, !r && !leave_running);
	seize_release(ctx, &t, !r && !leave_running);
	stage_end(ctx, SNAP_STAGE_CURE, t0);
	if (dir)
		img_dir_abort(dir);
	dump_task_free(&t);
	if (!r && opts->stats_file)
		r = snap_stats_write_json(ctx, opts->stats_file);
	return r;
}
