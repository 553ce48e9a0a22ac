/*
 * POSIX timers and itimers: the timers /proc lists, what the parasite read
 * of them, and how each is brought back (armed, made to expire into its
 * pending signal, or expired in the past to reproduce its overrun count).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "attrs.h"

#define NSEC_PER_SEC 1000000000ll
/* Room left when the clock must reach back to reproduce an overrun count. */
#define OVERRUN_MARGIN_NS NSEC_PER_SEC

/* The pid a CPU-time clock id names (0: the caller), or -1 for other clocks. */
static int cpu_clock_pid(int clock_id)
{
	return clock_id < 0 ? ~(clock_id >> 3) : -1;
}

static bool is_thread_of(const int *tids, size_t nr, int tid)
{
	for (size_t i = 0; i < nr; i++)
		if (tids[i] == tid)
			return true;
	return false;
}

int timers_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	struct task_attrs *at = t->attrs;
	int *tids = NULL, r;
	size_t nr_tids = 0;

	r = proc_read_posix_timers(ctx, t->pid, &at->timers, &at->nr_timers);
	if (r)
		return r;
	if (at->nr_timers > PARASITE_MAX_TIMERS)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d has %zu POSIX timers; at most %d are supported", t->pid,
				 at->nr_timers, PARASITE_MAX_TIMERS);
	r = proc_list_ids(ctx, t->pid, "task", &tids, &nr_tids);
	if (r)
		return r;
	for (size_t i = 0; i < at->nr_timers && !r; i++) {
		const struct proc_posix_timer *pt = &at->timers[i];
		int base = pt->notify & ~PROC_SIGEV_THREAD_ID, cpu = cpu_clock_pid(pt->clock_id);

		if (base != PROC_SIGEV_SIGNAL && base != PROC_SIGEV_NONE)
			r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: POSIX timer %d has notification %d, unknown here",
				      t->pid, pt->id, pt->notify);
		else if ((pt->notify & PROC_SIGEV_THREAD_ID) && !is_thread_of(tids, nr_tids, pt->target))
			r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: POSIX timer %d signals tid %d, not one of its threads",
				      t->pid, pt->id, pt->target);
		else if (cpu > 0 && cpu != t->pid && !is_thread_of(tids, nr_tids, cpu))
			r = snap_fail(ctx, -EOPNOTSUPP,
				      "pid %d: POSIX timer %d measures the CPU time of pid %d, another process", t->pid,
				      pt->id, cpu);
	}
	free(tids);
	return r;
}

int timers_find_expiry(const TaskAttrsEntry *ta, const uint8_t *info)
{
	int32_t signo, code, id;

	memcpy(&signo, info, 4);
	memcpy(&code, info + 8, 4);
	memcpy(&id, info + 16, 4); /* si_timerid */
	if (code != SI_TIMER)
		return -1;
	for (size_t i = 0; i < ta->n_posix_timers; i++)
		if (ta->posix_timers[i]->id == id && ta->posix_timers[i]->signo == signo)
			return (int)i;
	return -1;
}

/*
 * Whether a pending expiry of @e is the timer's current one. A one-shot
 * timer that fired is disarmed, a periodic one due within an interval;
 * otherwise it was set again since, and the kernel drops the old signal
 * when it comes to deliver it.
 */
static bool expiry_is_current(const PosixTimerEntry *e)
{
	if (!e->interval_ns)
		return !e->value_ns;
	return e->value_ns && e->value_ns <= e->interval_ns;
}

int timers_plan(struct snap_ctx *ctx, const TaskAttrsEntry *ta, ThreadAttrsEntry *const *ths, size_t nr_threads,
		int pid, uint32_t *how)
{
	size_t n = ta->n_posix_timers;
	bool *fired = calloc(n ? n : 1, sizeof(*fired));
	int r = 0;

	if (!fired)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	/* The process-wide queue, then each thread's own. */
	for (size_t q = 0; q <= nr_threads; q++) {
		const ThreadAttrsEntry *th = q ? ths[q - 1] : NULL;
		ProtobufCBinaryData *p = q ? (th ? th->pending : NULL) : ta->shared_pending;
		size_t np = q ? (th ? th->n_pending : 0) : ta->n_shared_pending;

		for (size_t i = 0; i < np; i++) {
			int k = p[i].len == ATTRS_SIGINFO_SIZE ? timers_find_expiry(ta, p[i].data) : -1;

			if (k >= 0 && expiry_is_current(ta->posix_timers[k]))
				fired[k] = true;
		}
	}
	for (size_t i = 0; i < n && !r; i++) {
		const PosixTimerEntry *e = ta->posix_timers[i];
		uint32_t h = RESTORER_TIMER_ARM;

		if (fired[i] && e->overrun > 0) {
			r = snap_fail(
				ctx, -EOPNOTSUPP,
				"pid %d: POSIX timer %d has an expiry pending and its last one counted %d overruns; "
				"only one of the two can be made again",
				pid, e->id, e->overrun);
		} else if (fired[i]) {
			h = RESTORER_TIMER_FIRED;
		} else if (e->overrun > 0) {
			struct timespec now;
			int64_t back;

			h = RESTORER_TIMER_OVERRUN;
			if (!e->interval_ns || !e->value_ns || e->value_ns > e->interval_ns)
				r = snap_fail(
					ctx, -EOPNOTSUPP,
					"pid %d: POSIX timer %d counted %d overruns but is not running periodically",
					pid, e->id, e->overrun);
			else if (cpu_clock_pid(e->clock_id) >= 0)
				r = snap_fail(ctx, -EOPNOTSUPP,
					      "pid %d: POSIX timer %d counted %d overruns of a CPU-time clock, which "
					      "starts anew in a restored process",
					      pid, e->id, e->overrun);
			else if (clock_gettime(e->clock_id, &now))
				r = snap_fail(ctx, -errno, "pid %d: POSIX timer %d: clock %d: %m", pid, e->id,
					      e->clock_id);
			else if ((back = ((int64_t)e->overrun + 1) * (int64_t)e->interval_ns - (int64_t)e->value_ns) >
				 now.tv_sec * NSEC_PER_SEC + now.tv_nsec - OVERRUN_MARGIN_NS)
				r = snap_fail(ctx, -EOPNOTSUPP,
					      "pid %d: POSIX timer %d counted %d overruns of %llu ns; clock %d would "
					      "have to reach back %lld ns",
					      pid, e->id, e->overrun, (unsigned long long)e->interval_ns, e->clock_id,
					      (long long)back);
		}
		if (how)
			how[i] = h;
	}
	free(fired);
	return r;
}

/* Whether @tid is one of the threads of the image. */
static bool image_has_thread(ThreadCoreEntry *const *threads, size_t nr, int tid)
{
	for (size_t i = 0; i < nr; i++)
		if (threads[i]->tid == tid)
			return true;
	return false;
}

int timers_validate(struct snap_ctx *ctx, const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads, size_t nr_threads)
{
	size_t n = ta->n_posix_timers;
	int pid = threads[0]->tid, r;
	ThreadAttrsEntry **ths;
	bool linear = true;

	if (!ta->itimer_real || !ta->itimer_virtual || !ta->itimer_prof)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: itimers missing", pid);
	if (n > PARASITE_MAX_TIMERS)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: %zu POSIX timers", pid, n);
	for (size_t i = 0; i < n; i++) {
		const PosixTimerEntry *e = ta->posix_timers[i];
		int base = e->notify & ~PROC_SIGEV_THREAD_ID, cpu = cpu_clock_pid(e->clock_id);

		/* A SIGEV_THREAD_ID timer, or a thread's CPU-time clock, names one of the threads. */
		if (e->id < 0 || (base != PROC_SIGEV_SIGNAL && base != PROC_SIGEV_NONE) ||
		    (base == PROC_SIGEV_SIGNAL && (e->signo < 1 || e->signo > 64)) ||
		    ((e->notify & PROC_SIGEV_THREAD_ID) &&
		     (!e->has_notify_tid || !image_has_thread(threads, nr_threads, e->notify_tid))) ||
		    (cpu > 0 && !image_has_thread(threads, nr_threads, cpu)) || e->overrun < 0)
			return snap_fail(ctx, -EINVAL, "image core-%d.img: bad POSIX timer %d", pid, e->id);
		for (size_t j = 0; j < i; j++)
			if (ta->posix_timers[j]->id == e->id)
				return snap_fail(ctx, -EINVAL, "image core-%d.img: POSIX timer %d twice", pid, e->id);
		/* Without the prctl a new process hands out 0, 1, 2, ... */
		{
			size_t below = 0;

			for (size_t j = 0; j < n; j++)
				below += ta->posix_timers[j]->id < e->id;
			if ((size_t)e->id != below)
				linear = false;
		}
	}
	/* Linux 6.15. */
	if (n && prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) < 0 && !linear)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: its POSIX timer ids cannot be reproduced: this kernel lacks "
				 "PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15)",
				 pid);
	ths = calloc(nr_threads, sizeof(*ths));
	if (!ths)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < nr_threads; i++)
		ths[i] = threads[i]->attrs;
	r = timers_plan(ctx, ta, ths, nr_threads, pid, NULL);
	free(ths);
	return r;
}
