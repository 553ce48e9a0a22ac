/*
 * Process and thread attributes: the steps dump.c and restore.c call, and
 * the simple ones handled here (resource limits, scheduling, CPU affinity,
 * I/O priority, oom_score_adj, prctl state, the root directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/ioprio.h>
#include <linux/sched.h>

#include "attrs.h"

#define ALIGN64(v)	 (((v) + 63) & ~(size_t)63)
#define DEFAULT_UTIL_MAX 1024 /* SCHED_CAPACITY_SCALE: no clamp */

static const char *const rlimit_names[RLIM_NLIMITS] = {
	[RLIMIT_CPU] = "RLIMIT_CPU",	       [RLIMIT_FSIZE] = "RLIMIT_FSIZE",
	[RLIMIT_DATA] = "RLIMIT_DATA",	       [RLIMIT_STACK] = "RLIMIT_STACK",
	[RLIMIT_CORE] = "RLIMIT_CORE",	       [RLIMIT_RSS] = "RLIMIT_RSS",
	[RLIMIT_NPROC] = "RLIMIT_NPROC",       [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
	[RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",   [RLIMIT_AS] = "RLIMIT_AS",
	[RLIMIT_LOCKS] = "RLIMIT_LOCKS",       [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
	[RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
	[RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",     [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
};

/* The image messages of one thread. */
struct thread_img {
	ThreadAttrsEntry th;
	SchedEntry sched;
	CredsEntry creds;
	uint32_t *groups;
	ProtobufCBinaryData *pending;
	SeccompFilterEntry *filters, **filtersp;
};

/* Everything the image messages of one dump point to. */
struct attrs_img {
	TaskAttrsEntry ta;
	CredsEntry creds;
	uint32_t *groups;
	ItimerEntry itimers[3];
	RlimitEntry rl[RLIM_NLIMITS], *rlp[RLIM_NLIMITS];
	PosixTimerEntry *timers, **timersp;
	ProtobufCBinaryData *shared;
	FileLockEntry **locksp;
	struct thread_img *threads;
	ThreadAttrsEntry **thp;
	size_t nr_threads;
};

/* ---- dump ---- */

static int read_oom_score_adj(struct snap_ctx *ctx, pid_t pid, int *ret)
{
	FILE *f = proc_fopen(pid, "oom_score_adj");
	int ok;

	if (!f)
		return snap_fail(ctx, -errno, "pid %d: cannot open /proc/%d/oom_score_adj: %m", pid, pid);
	ok = fscanf(f, "%d", ret) == 1;
	fclose(f);
	if (!ok)
		return snap_fail(ctx, -EINVAL, "pid %d: malformed /proc/%d/oom_score_adj", pid, pid);
	return 0;
}

int sched_collect(struct snap_ctx *ctx, pid_t tid, struct thread_attrs *ta)
{
	long n;

	memset(&ta->sched, 0, sizeof(ta->sched));
	if (syscall(SYS_sched_getattr, tid, &ta->sched, sizeof(ta->sched), 0))
		return snap_fail(ctx, -errno, "tid %d: cannot read its scheduling policy: %m", tid);
	n = syscall(SYS_sched_getaffinity, tid, sizeof(ta->affinity), ta->affinity);
	if (n < 0)
		return snap_fail(ctx, -errno, "tid %d: cannot read its CPU affinity: %m", tid);
	ta->affinity_len = (size_t)n;
	n = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid);
	if (n < 0)
		return snap_fail(ctx, -errno, "tid %d: cannot read its I/O priority: %m", tid);
	ta->ioprio = (uint32_t)n;
	return 0;
}

int attrs_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	struct task_attrs *at = calloc(1, sizeof(*at));
	int r;

	if (!at)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	t->attrs = at;
	at->threads = calloc(t->nr_threads, sizeof(*at->threads));
	if (!at->threads)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	r = read_oom_score_adj(ctx, t->pid, &at->oom_score_adj);
	for (size_t i = 0; !r && i < t->nr_threads; i++)
		r = sched_collect(ctx, t->threads[i].tid, &at->threads[i]);
	if (!r)
		r = seccomp_collect(ctx, t);
	if (!r)
		r = timers_collect(ctx, t);
	if (!r)
		r = locks_collect(ctx, t);
	return r;
}

int attrs_drain(struct snap_ctx *ctx, struct dump_task *t)
{
	struct task_attrs *at = t->attrs;
	/* The timer ids are input to the command. */
	struct parasite_attrs *sh = &((struct parasite_shared *)parasite_shared(t))->attrs;
	int r;

	sh->nr_timers = (uint32_t)at->nr_timers;
	for (size_t i = 0; i < at->nr_timers; i++)
		sh->timers[i].id = at->timers[i].id;
	r = parasite_run(ctx, t, PARASITE_CMD_DUMP_ATTRS);
	if (r)
		return r;
	at->pa = malloc(sizeof(*at->pa));
	if (!at->pa)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	memcpy(at->pa, sh, sizeof(*at->pa));
	r = creds_check(ctx, t);
	/* Last, so that an expiry during the dump is in a queue rather than lost. */
	if (!r)
		r = signals_collect(ctx, t);
	return r;
}

static void itimer_to_image(const struct parasite_itimer *v, ItimerEntry *e)
{
	itimer_entry__init(e);
	e->value_us = v->value_sec * 1000000 + v->value_usec;
	e->interval_us = v->interval_sec * 1000000 + v->interval_usec;
}

/* @creds: the main thread's, or NULL for the main thread itself. */
static int thread_to_image(struct snap_ctx *ctx, const struct dump_thread *dt, const struct thread_attrs *ta,
			   const struct parasite_creds *creds, struct thread_img *ti)
{
	const struct restorer_sched_attr *s = &ta->sched;

	thread_attrs_entry__init(&ti->th);
	ti->pending = calloc(ta->nr_pending ? ta->nr_pending : 1, sizeof(*ti->pending));
	ti->filters = calloc(ta->nr_seccomp ? ta->nr_seccomp : 1, sizeof(*ti->filters));
	ti->filtersp = calloc(ta->nr_seccomp ? ta->nr_seccomp : 1, sizeof(*ti->filtersp));
	if (!ti->pending || !ti->filters || !ti->filtersp)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	sched_entry__init(&ti->sched);
	ti->sched.policy = s->policy;
	ti->sched.flags = s->flags;
	ti->sched.nice = s->nice;
	ti->sched.priority = s->priority;
	ti->sched.runtime = s->runtime;
	ti->sched.deadline = s->deadline;
	ti->sched.period = s->period;
	ti->sched.util_min = s->util_min;
	ti->sched.util_max = s->util_max;
	ti->th.sched = &ti->sched;
	ti->th.affinity = (ProtobufCBinaryData){ ta->affinity_len, (uint8_t *)ta->affinity };
	ti->th.ioprio = ta->ioprio;
	ti->th.timer_slack_ns = dt->info.timer_slack_ns;
	for (size_t i = 0; i < ta->nr_pending; i++)
		ti->pending[i] = (ProtobufCBinaryData){ ATTRS_SIGINFO_SIZE, ta->pending[i] };
	ti->th.pending = ti->pending;
	ti->th.n_pending = ta->nr_pending;
	ti->th.seccomp_mode = ta->nr_seccomp ? 2 : 0;
	for (size_t i = 0; i < ta->nr_seccomp; i++) {
		seccomp_filter_entry__init(&ti->filters[i]);
		ti->filters[i].prog = (ProtobufCBinaryData){ ta->seccomp[i].len * 8ul, ta->seccomp[i].prog };
		ti->filters[i].flags = ta->seccomp[i].flags;
		ti->filtersp[i] = &ti->filters[i];
	}
	ti->th.seccomp = ti->filtersp;
	ti->th.n_seccomp = ta->nr_seccomp;
	/* Credentials are per thread in the kernel; glibc changes them in all threads at once, so mostly alike. */
	if (creds && creds_differ(&dt->info.creds, creds)) {
		int r;

		creds_entry__init(&ti->creds);
		r = creds_to_image(ctx, &dt->info.creds, &ti->creds, &ti->groups);
		if (r)
			return r;
		ti->th.creds = &ti->creds;
	}
	return 0;
}

int attrs_to_image(struct snap_ctx *ctx, struct dump_task *t, TaskCoreEntry *tce)
{
	struct task_attrs *at = t->attrs;
	const struct parasite_attrs *pa = at->pa;
	struct attrs_img *img = calloc(1, sizeof(*img));
	size_t n;
	int r;

	if (!img)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	at->img = img;
	task_attrs_entry__init(&img->ta);

	creds_entry__init(&img->creds);
	r = creds_to_image(ctx, &pa->creds, &img->creds, &img->groups);
	if (r)
		return r;
	img->ta.creds = &img->creds;
	_Static_assert(RLIM_NLIMITS == PARASITE_NR_RLIMITS, "the parasite reads every resource limit");
	for (int i = 0; i < RLIM_NLIMITS; i++) {
		rlimit_entry__init(&img->rl[i]);
		img->rl[i].resource = (uint32_t)i;
		img->rl[i].cur = pa->rlimits[i].cur;
		img->rl[i].max = pa->rlimits[i].max;
		img->rlp[i] = &img->rl[i];
	}
	img->ta.rlimits = img->rlp;
	img->ta.n_rlimits = RLIM_NLIMITS;
	img->ta.oom_score_adj = at->oom_score_adj;
	img->ta.dumpable = pa->dumpable;
	img->ta.pdeathsig = pa->pdeathsig;
	img->ta.child_subreaper = pa->child_subreaper != 0;
	img->ta.thp_disable = pa->thp_disable;
	itimer_to_image(&pa->itimers[0], &img->itimers[0]);
	itimer_to_image(&pa->itimers[1], &img->itimers[1]);
	itimer_to_image(&pa->itimers[2], &img->itimers[2]);
	img->ta.itimer_real = &img->itimers[0];
	img->ta.itimer_virtual = &img->itimers[1];
	img->ta.itimer_prof = &img->itimers[2];

	n = at->nr_timers;
	img->timers = calloc(n ? n : 1, sizeof(*img->timers));
	img->timersp = calloc(n ? n : 1, sizeof(*img->timersp));
	img->shared = calloc(at->nr_shared ? at->nr_shared : 1, sizeof(*img->shared));
	img->locksp = calloc(at->nr_locks ? at->nr_locks : 1, sizeof(*img->locksp));
	img->threads = calloc(t->nr_threads, sizeof(*img->threads));
	img->thp = calloc(t->nr_threads, sizeof(*img->thp));
	if (!img->timers || !img->timersp || !img->shared || !img->locksp || !img->threads || !img->thp)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct proc_posix_timer *pt = &at->timers[i];
		const struct parasite_posix_timer *v = &pa->timers[i];
		PosixTimerEntry *e = &img->timers[i];

		posix_timer_entry__init(e);
		e->id = pt->id;
		e->clock_id = pt->clock_id;
		e->notify = pt->notify;
		e->signo = pt->signo;
		e->sigval = pt->sigval;
		if (pt->notify & PROC_SIGEV_THREAD_ID) {
			e->has_notify_tid = 1;
			e->notify_tid = pt->target;
		}
		e->value_ns = v->value_sec * 1000000000ull + v->value_nsec;
		e->interval_ns = v->interval_sec * 1000000000ull + v->interval_nsec;
		e->overrun = v->overrun;
		img->timersp[i] = e;
	}
	img->ta.posix_timers = img->timersp;
	img->ta.n_posix_timers = n;
	for (size_t i = 0; i < at->nr_shared; i++)
		img->shared[i] = (ProtobufCBinaryData){ ATTRS_SIGINFO_SIZE, at->shared[i] };
	img->ta.shared_pending = img->shared;
	img->ta.n_shared_pending = at->nr_shared;
	for (size_t i = 0; i < at->nr_locks; i++)
		img->locksp[i] = &at->locks[i];
	img->ta.file_locks = img->locksp;
	img->ta.n_file_locks = at->nr_locks;

	for (size_t i = 0; i < t->nr_threads; i++) {
		img->nr_threads++;
		r = thread_to_image(ctx, &t->threads[i], &at->threads[i], i ? &pa->creds : NULL, &img->threads[i]);
		if (r)
			return r;
		img->thp[i] = &img->threads[i].th;
	}
	tce->attrs = &img->ta;
	/* What restore would refuse, refused now while the process can still run on. */
	return timers_plan(ctx, &img->ta, img->thp, t->nr_threads, t->pid, NULL);
}

ThreadAttrsEntry *attrs_thread_image(const struct dump_task *t, size_t i)
{
	const struct attrs_img *img = t->attrs ? t->attrs->img : NULL;

	return img && i < img->nr_threads ? img->thp[i] : NULL;
}

void attrs_free(struct dump_task *t)
{
	struct task_attrs *at = t->attrs;

	if (!at)
		return;
	if (at->img) {
		free(at->img->groups);
		free(at->img->timers);
		free(at->img->timersp);
		free(at->img->shared);
		free(at->img->locksp);
		for (size_t i = 0; i < at->img->nr_threads; i++) {
			free(at->img->threads[i].pending);
			free(at->img->threads[i].filters);
			free(at->img->threads[i].filtersp);
			free(at->img->threads[i].groups);
		}
		free(at->img->threads);
		free(at->img->thp);
		free(at->img);
	}
	for (size_t k = 0; at->threads && k < t->nr_threads; k++) {
		struct thread_attrs *ta = &at->threads[k];

		for (size_t i = 0; i < ta->nr_seccomp; i++)
			free(ta->seccomp[i].prog);
		free(ta->seccomp);
		free(ta->pending);
	}
	free(at->threads);
	free(at->timers);
	free(at->locks);
	free(at->pa);
	free(at->shared);
	free(at);
	t->attrs = NULL;
}

/* ---- restore ---- */

/* This process's capabilities, to tell what the user running the restore may do. */
static bool own_cap(int cap)
{
	struct __user_cap_header_struct {
		uint32_t version;
		int pid;
	} hdr = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	struct {
		uint32_t eff, prm, inh;
	} data[2] = { 0 };

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return (data[cap / 32].eff >> (cap % 32)) & 1;
}

static int validate_rlimits(struct snap_ctx *ctx, const TaskAttrsEntry *ta, int pid)
{
	bool may_raise = own_cap(24 /* CAP_SYS_RESOURCE */);

	for (size_t i = 0; i < ta->n_rlimits; i++) {
		const RlimitEntry *e = ta->rlimits[i];
		struct rlimit own;

		if (e->resource >= RLIM_NLIMITS || e->cur > e->max)
			return snap_fail(ctx, -EINVAL, "image core-%d.img: bad resource limit %u (%llu/%llu)", pid,
					 e->resource, (unsigned long long)e->cur, (unsigned long long)e->max);
		if (getrlimit((int)e->resource, &own))
			return snap_fail(ctx, -errno, "cannot read our own %s: %m", rlimit_names[e->resource]);
		if (e->max > own.rlim_max && !may_raise)
			return snap_fail(ctx, -EPERM,
					 "pid %d: its hard %s of %llu exceeds ours (%llu), and raising it needs "
					 "CAP_SYS_RESOURCE",
					 pid, rlimit_names[e->resource], (unsigned long long)e->max,
					 (unsigned long long)own.rlim_max);
		if (e->resource == RLIMIT_NOFILE && e->max != RLIM_INFINITY) {
			FILE *f = fopen("/proc/sys/fs/nr_open", "re");
			unsigned long long nr_open = 0;

			if (f) {
				if (fscanf(f, "%llu", &nr_open) != 1)
					nr_open = 0;
				fclose(f);
			}
			if (nr_open && e->max > nr_open)
				return snap_fail(ctx, -EPERM,
						 "pid %d: its RLIMIT_NOFILE of %llu exceeds fs.nr_open (%llu)", pid,
						 (unsigned long long)e->max, nr_open);
		}
	}
	return 0;
}

static int validate_thread(struct snap_ctx *ctx, const ThreadAttrsEntry *th, int tid)
{
	const SchedEntry *s = th->sched;
	uint8_t own[ATTRS_CPUMASK_BYTES] = { 0 };
	long n;

	switch (s->policy) {
	case SCHED_OTHER:
	case SCHED_BATCH:
	case SCHED_IDLE:
		if (s->nice < -20 || s->nice > 19)
			return snap_fail(ctx, -EINVAL, "image: tid %d: bad nice value %d", tid, s->nice);
		break;
	case SCHED_FIFO:
	case SCHED_RR:
		if (s->priority < 1 || s->priority > 99)
			return snap_fail(ctx, -EINVAL, "image: tid %d: bad real-time priority %u", tid, s->priority);
		break;
	case SCHED_DEADLINE:
		break;
	default:
		return snap_fail(ctx, -EOPNOTSUPP, "tid %d: scheduling policy %u is unknown here", tid, s->policy);
	}
	if ((s->util_max && s->util_min > s->util_max) || s->util_max > DEFAULT_UTIL_MAX)
		return snap_fail(ctx, -EINVAL, "image: tid %d: bad utilization clamp %u..%u", tid, s->util_min,
				 s->util_max);
	if (!th->affinity.len || th->affinity.len > ATTRS_CPUMASK_BYTES || th->affinity.len % 8)
		return snap_fail(ctx, -EINVAL, "image: tid %d: bad CPU mask of %zu bytes", tid, th->affinity.len);
	/* The kernel would drop CPUs it cannot offer without a word: refuse instead. */
	n = syscall(SYS_sched_getaffinity, 0, sizeof(own), own);
	if (n < 0)
		return snap_fail(ctx, -errno, "cannot read our own CPU affinity: %m");
	for (size_t i = 0; i < th->affinity.len; i++) {
		uint8_t extra = th->affinity.data[i] & (i < (size_t)n ? (uint8_t)~own[i] : 0xff);

		if (extra)
			return snap_fail(
				ctx, -EOPNOTSUPP,
				"tid %d: its CPU affinity includes CPU %zu, which this machine does not offer us", tid,
				i * 8 + (size_t)__builtin_ctz(extra));
	}
	switch (IOPRIO_PRIO_CLASS(th->ioprio)) {
	case IOPRIO_CLASS_NONE:
	case IOPRIO_CLASS_RT:
	case IOPRIO_CLASS_BE:
	case IOPRIO_CLASS_IDLE:
		break;
	default:
		return snap_fail(ctx, -EINVAL, "image: tid %d: bad I/O priority 0x%x", tid, th->ioprio);
	}
	return 0;
}

int attrs_validate(struct snap_ctx *ctx, const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads,
		   const struct files_image *files)
{
	const FsEntry *fs = files->fs;
	const TaskAttrsEntry *ta = core->attrs;
	int pid = threads[0]->tid, own_oom = 0, r;
	struct stat st;

	/* Other threads have none in images of a version that refused their own signals and filters. */
	if (!ta || !threads[0]->attrs)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: no attributes (signals, timers, credentials)", pid);
	if (strcmp(fs->root, "/") && (fs->root[0] != '/' || stat(fs->root, &st) || !S_ISDIR(st.st_mode)))
		return snap_fail(ctx, -ENOENT, "pid %d: its root directory %s no longer exists", pid, fs->root);
	r = validate_rlimits(ctx, ta, pid);
	if (r)
		return r;
	if (ta->oom_score_adj < -1000 || ta->oom_score_adj > 1000)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: bad oom_score_adj %d", pid, ta->oom_score_adj);
	r = read_oom_score_adj(ctx, getpid(), &own_oom);
	if (r)
		return r;
	if (ta->oom_score_adj < own_oom && !own_cap(24 /* CAP_SYS_RESOURCE */))
		return snap_fail(ctx, -EPERM,
				 "pid %d: its oom_score_adj %d is below ours (%d), which needs CAP_SYS_RESOURCE", pid,
				 ta->oom_score_adj, own_oom);
	if (ta->dumpable > 1)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: bad dumpable mode %u", pid, ta->dumpable);
	if (ta->pdeathsig > 64)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: bad parent death signal %u", pid, ta->pdeathsig);
	if (ta->thp_disable & ~(1u | PR_THP_DISABLE_EXCEPT_ADVISED) || (!(ta->thp_disable & 1) && ta->thp_disable))
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: THP disable mode 0x%x is unknown here", pid,
				 ta->thp_disable);
	for (size_t i = 0; !r && i < nr_threads; i++) {
		const ThreadAttrsEntry *th = threads[i]->attrs;

		if (!th)
			continue;
		r = validate_thread(ctx, th, threads[i]->tid);
		if (!r)
			r = seccomp_validate(ctx, th, threads[i]->tid);
		if (!r && th->creds)
			r = creds_validate(ctx, th->creds, threads[i]->tid);
	}
	if (!r)
		r = creds_validate(ctx, ta->creds, pid);
	if (!r)
		r = timers_validate(ctx, ta, threads, nr_threads);
	if (!r)
		r = signals_validate(ctx, ta, threads, nr_threads);
	if (!r)
		r = locks_validate(ctx, ta, files, pid);
	return r;
}

void attrs_detach(struct snap_ctx *ctx, TaskCoreEntry *core, int pid)
{
	/* The kernel sends it when the parent exits, which for snapcr -d is at once. */
	if (core->attrs && core->attrs->pdeathsig) {
		snap_info(ctx, "pid %d: detached, so its parent-death signal %u is not set again", pid,
			  core->attrs->pdeathsig);
		core->attrs->pdeathsig = 0;
	}
}

unsigned long attrs_ptrace_options(const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads)
{
	(void)core;
	/* The filters are installed before the restorer's last system calls and the engine's cleanup. */
	for (size_t i = 0; i < nr_threads; i++)
		if (threads[i]->attrs && threads[i]->attrs->n_seccomp)
			return PTRACE_O_SUSPEND_SECCOMP;
	return 0;
}

/*
 * How many filters, oldest first, every thread has alike: those the leader
 * installs before it creates the others, which inherit them, so that they
 * stay one filter shared as before (SECCOMP_FILTER_FLAG_TSYNC from any
 * thread needs that). The kernel does not tell a shared filter from equal
 * ones installed by each thread: equal ones at the bottom of every chain
 * are taken for shared, the rest are installed by each thread for itself.
 */
static size_t shared_seccomp(ThreadCoreEntry *const *threads, size_t nr_threads)
{
	const ThreadAttrsEntry *lead = threads[0]->attrs;
	size_t n = lead->n_seccomp;

	for (size_t i = 1; i < nr_threads && n; i++) {
		const ThreadAttrsEntry *th = threads[i]->attrs;
		size_t k = 0;

		if (!th) {
			n = 0;
			break;
		}
		while (k < n && k < th->n_seccomp && th->seccomp[k]->flags == lead->seccomp[k]->flags &&
		       th->seccomp[k]->prog.len == lead->seccomp[k]->prog.len &&
		       !memcmp(th->seccomp[k]->prog.data, lead->seccomp[k]->prog.data, th->seccomp[k]->prog.len))
			k++;
		n = k;
	}
	return n;
}

static size_t nr_pending_all(const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads, size_t nr_threads)
{
	size_t n = ta->n_shared_pending;

	for (size_t i = 0; i < nr_threads; i++)
		if (threads[i]->attrs)
			n += threads[i]->attrs->n_pending;
	return n;
}

size_t attrs_args_size(const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads)
{
	const TaskAttrsEntry *ta = core->attrs;
	size_t n;

	if (!ta || !threads[0]->attrs)
		return 0;
	n = ALIGN64(sizeof(struct restorer_attrs)) + ALIGN64(ta->n_rlimits * sizeof(struct restorer_rlimit)) +
	    ALIGN64(ta->n_posix_timers * sizeof(struct restorer_posix_timer)) +
	    ALIGN64((nr_pending_all(ta, threads, nr_threads) + 1) * sizeof(struct restorer_siginfo)) +
	    ALIGN64(ta->creds->n_groups * sizeof(uint32_t)) +
	    ALIGN64(nr_threads * sizeof(struct restorer_thread_attrs)) +
	    ALIGN64(threads[0]->attrs->n_seccomp * sizeof(struct restorer_seccomp_filter));
	for (size_t k = 0; k < nr_threads; k++) {
		const ThreadAttrsEntry *th = threads[k]->attrs;

		if (!th)
			continue;
		n += ALIGN64(th->affinity.len) + ALIGN64(th->n_seccomp * sizeof(struct restorer_seccomp_filter));
		if (th->creds)
			n += ALIGN64(th->creds->n_groups * sizeof(uint32_t));
		for (size_t i = 0; i < th->n_seccomp; i++)
			n += ALIGN64(th->seccomp[i]->prog.len);
	}
	return n + 64;
}

/*
 * The tick setitimer() adds to a CPU-time itimer, measured on our own
 * ITIMER_PROF: this runs in the new process, whose itimers the restorer
 * sets anyway. 0 if it cannot be told.
 */
static uint64_t cpu_itimer_tick_us(void)
{
	struct itimerval set = { { 0, 0 }, { 1, 0 } }, off = { 0 };
	int64_t tick = 0;

	/* A tick of CPU time accounted in between reads short: the largest of a few is the one. */
	for (int i = 0; i < 3; i++) {
		struct itimerval got = { 0 };
		int64_t t;

		if (setitimer(ITIMER_PROF, &set, NULL) || getitimer(ITIMER_PROF, &got))
			break;
		t = (int64_t)got.it_value.tv_sec * 1000000 + got.it_value.tv_usec - 1000000;
		if (t > tick)
			tick = t;
	}
	setitimer(ITIMER_PROF, &off, NULL);
	return tick > 0 && tick <= 100000 ? (uint64_t)tick : 0;
}

static int cmp_timer_id(const void *a, const void *b)
{
	const struct restorer_posix_timer *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static void *take(uint8_t **cur, uint8_t *end, size_t size)
{
	void *p = *cur;

	if ((size_t)(end - *cur) < ALIGN64(size))
		return NULL;
	*cur += ALIGN64(size);
	return p;
}

/* Copies filters [from, to) of @th into the argument area as @sf[]. */
static int fill_seccomp(struct snap_ctx *ctx, const ThreadAttrsEntry *th, size_t from, size_t to,
			struct restorer_seccomp_filter *sf, uint8_t **cur, uint8_t *end)
{
	for (size_t i = from; i < to; i++) {
		void *prog = take(cur, end, th->seccomp[i]->prog.len);

		if (!prog)
			return snap_fail(ctx, -ENOMEM, "restorer arguments for the seccomp filters do not fit");
		memcpy(prog, th->seccomp[i]->prog.data, th->seccomp[i]->prog.len);
		sf[i - from] =
			(struct restorer_seccomp_filter){ (uint64_t)prog, (uint32_t)(th->seccomp[i]->prog.len / 8),
							  (uint32_t)th->seccomp[i]->flags };
	}
	return 0;
}

/* Scheduling, affinity, I/O priority, timer slack and the filters of its own of one thread. */
static int fill_thread(struct snap_ctx *ctx, const TaskAttrsEntry *ta, const ThreadCoreEntry *thread, size_t shared,
		       struct restorer_thread_attrs *rth, uint8_t **cur, uint8_t *end)
{
	const ThreadAttrsEntry *th = thread->attrs;
	const CredsEntry *creds = th->creds ? th->creds : ta->creds;
	const SchedEntry *s = th->sched;
	uint8_t *mask = take(cur, end, th->affinity.len);
	struct restorer_seccomp_filter *sf = take(cur, end, (th->n_seccomp - shared) * sizeof(*sf));
	uint32_t *groups = take(cur, end, th->creds ? th->creds->n_groups * sizeof(uint32_t) : 0);
	int r;

	if (!mask || !sf || !groups)
		return snap_fail(ctx, -ENOMEM, "restorer arguments for the attributes do not fit");
	memset(rth, 0, sizeof(*rth));
	if (th->creds) {
		r = creds_fill_args(ctx, th->creds, &rth->creds, groups);
		if (r)
			return r;
		rth->has_creds = 1;
	}
	rth->tid = thread->tid;
	rth->ioprio = th->ioprio;
	rth->timer_slack_ns = th->timer_slack_ns;
	rth->sched = (struct restorer_sched_attr){
		.size = sizeof(rth->sched),
		.policy = s->policy,
		.flags = s->flags & (SCHED_FLAG_RESET_ON_FORK | SCHED_FLAG_RECLAIM | SCHED_FLAG_DL_OVERRUN),
		.nice = s->nice,
		.priority = s->priority,
		.runtime = s->runtime,
		.deadline = s->deadline,
		.period = s->period,
		.util_min = s->util_min,
		.util_max = s->util_max,
	};
	/*
	 * For the fair policies runtime is the time slice (Linux 6.12), and
	 * setting it pins it. What we run with is the default one: keep that.
	 */
	if (s->policy != SCHED_DEADLINE && s->policy != SCHED_FIFO && s->policy != SCHED_RR) {
		struct restorer_sched_attr own = { 0 };

		if (!syscall(SYS_sched_getattr, 0, &own, sizeof(own), 0) && own.runtime == s->runtime)
			rth->sched.runtime = 0;
	}
	/*
	 * Clamps are set only where the thread had them: setting the defaults
	 * would pin them. A kernel without CONFIG_UCLAMP_TASK reports 0 for both.
	 */
	if (s->util_min)
		rth->sched.flags |= SCHED_FLAG_UTIL_CLAMP_MIN;
	if (s->util_max && s->util_max != DEFAULT_UTIL_MAX)
		rth->sched.flags |= SCHED_FLAG_UTIL_CLAMP_MAX;
	memcpy(mask, th->affinity.data, th->affinity.len);
	rth->affinity = (uint64_t)mask;
	rth->affinity_len = (uint32_t)th->affinity.len;
	rth->nr_seccomp = (uint32_t)(th->n_seccomp - shared);
	rth->seccomp = (uint64_t)sf;
	/*
	 * Installing filters needs no_new_privs or CAP_SYS_ADMIN: if the
	 * restored credentials have neither, before them.
	 */
	rth->seccomp_before_creds = rth->nr_seccomp && !creds->no_new_privs && !creds_has_cap(creds, 21);
	return fill_seccomp(ctx, th, shared, th->n_seccomp, sf, cur, end);
}

int attrs_fill_args(struct snap_ctx *ctx, const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads,
		    struct restorer_args *a, uint8_t **cur, uint8_t *end)
{
	const TaskAttrsEntry *ta = core->attrs;
	size_t nr_pending = nr_pending_all(ta, threads, nr_threads), shared = shared_seccomp(threads, nr_threads);
	struct restorer_attrs *ra = take(cur, end, sizeof(*ra));
	struct restorer_rlimit *rl = take(cur, end, ta->n_rlimits * sizeof(*rl));
	struct restorer_posix_timer *pt = take(cur, end, ta->n_posix_timers * sizeof(*pt));
	struct restorer_siginfo *sig = take(cur, end, (nr_pending + 1) * sizeof(*sig));
	uint32_t *groups = take(cur, end, ta->creds->n_groups * sizeof(uint32_t));
	struct restorer_thread_attrs *rth = take(cur, end, nr_threads * sizeof(*rth));
	struct restorer_seccomp_filter *ssf = take(cur, end, shared * sizeof(*ssf));
	uint32_t *how = calloc(ta->n_posix_timers + 1, sizeof(*how));
	ThreadAttrsEntry **ths = calloc(nr_threads, sizeof(*ths));
	int r;

	if (!ra || !rl || !pt || !sig || !groups || !rth || !ssf || !how || !ths) {
		free(how);
		free(ths);
		return snap_fail(ctx, -ENOMEM, "restorer arguments for the attributes do not fit");
	}
	memset(ra, 0, sizeof(*ra));
	ra->personality = core->personality;
	ra->dumpable = ta->dumpable;
	ra->pdeathsig = ta->pdeathsig;
	ra->child_subreaper = ta->child_subreaper;
	ra->thp_disable = ta->thp_disable;
	for (size_t i = 0; i < ta->n_rlimits; i++)
		rl[i] = (struct restorer_rlimit){ ta->rlimits[i]->resource, 0, ta->rlimits[i]->cur,
						  ta->rlimits[i]->max };
	ra->nr_rlimits = (uint32_t)ta->n_rlimits;
	ra->rlimits = (uint64_t)rl;
	{
		const ItimerEntry *it[3] = { ta->itimer_real, ta->itimer_virtual, ta->itimer_prof };
		uint64_t tick = cpu_itimer_tick_us();

		for (int i = 0; i < 3; i++) {
			uint64_t v = it[i]->value_us;

			/* setitimer adds a tick to CPU-time timers; what getitimer read already has it. */
			if (i && v > tick)
				v -= tick;
			ra->itimers[i] =
				(struct restorer_itimer){ v / 1000000, v % 1000000, it[i]->interval_us / 1000000,
							  it[i]->interval_us % 1000000 };
		}
	}
	for (size_t i = 0; i < nr_threads; i++)
		ths[i] = threads[i]->attrs;
	r = timers_plan(ctx, ta, ths, nr_threads, threads[0]->tid, how);
	free(ths);
	if (r) {
		free(how);
		return r;
	}
	for (size_t i = 0; i < ta->n_posix_timers; i++) {
		const PosixTimerEntry *e = ta->posix_timers[i];

		pt[i] = (struct restorer_posix_timer){
			.id = e->id,
			.clock_id = e->clock_id,
			.notify = e->notify,
			.signo = e->signo,
			.notify_tid = e->has_notify_tid ? e->notify_tid : 0,
			.overrun = e->overrun,
			.sigval = e->sigval,
			.value_ns = e->value_ns,
			.interval_ns = e->interval_ns,
			.how = how[i],
		};
	}
	free(how);
	/* Ascending ids: without PR_TIMER_CREATE_RESTORE_IDS the kernel hands out 0, 1, 2, ... */
	qsort(pt, ta->n_posix_timers, sizeof(*pt), cmp_timer_id);
	ra->nr_timers = (uint32_t)ta->n_posix_timers;
	ra->timers = (uint64_t)pt;
	ra->timer_ids_prctl = prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) >= 0;
	ra->nr_pending = (uint32_t)signals_fill_args(ta, threads, nr_threads, sig, pt);
	ra->pending = (uint64_t)sig;

	r = creds_fill_args(ctx, ta->creds, &ra->creds, groups);
	if (r)
		return r;

	ra->nr_threads = 0;
	for (size_t i = 0; i < nr_threads; i++) {
		if (!threads[i]->attrs)
			continue;
		r = fill_thread(ctx, ta, threads[i], shared, &rth[ra->nr_threads], cur, end);
		if (r)
			return r;
		ra->nr_threads++;
	}
	ra->threads = (uint64_t)rth;
	r = fill_seccomp(ctx, threads[0]->attrs, 0, shared, ssf, cur, end);
	ra->nr_shared_seccomp = (uint32_t)shared;
	ra->shared_seccomp = (uint64_t)ssf;
	a->attrs = (uint64_t)ra;
	return r;
}

int attrs_restore_child(struct snap_ctx *ctx, const TaskCoreEntry *core, const FsEntry *fs)
{
	char buf[16];
	int fd, n;

	/* Plain open and write: a stdio buffer would be a mapping the restorer does not know to drop. */
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return snap_fail(ctx, -errno, "cannot open /proc/self/oom_score_adj: %m");
	n = snprintf(buf, sizeof(buf), "%d", core->attrs->oom_score_adj);
	if (write(fd, buf, (size_t)n) != n) {
		int r = -errno;

		close(fd);
		return snap_fail(ctx, r, "cannot set oom_score_adj to %d: %s", core->attrs->oom_score_adj,
				 strerror(-r));
	}
	close(fd);
	/* Last: no path is looked up after this. The working directory was entered before. */
	if (strcmp(fs->root, "/") && chroot(fs->root))
		return snap_fail(ctx, -errno, "cannot change the root directory to %s: %m", fs->root);
	return 0;
}
