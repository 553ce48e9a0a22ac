/*
 * Pending signals: both queues read with PTRACE_PEEKSIGINFO, in order and
 * with their siginfo, and the restorer's list of what to queue again and
 * which expiries to let their timers make again.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "attrs.h"
#include "ptrace.h"

#define PEEK_BATCH 64

static int peek_queue(struct snap_ctx *ctx, pid_t tid, bool shared, uint8_t (**ret)[ATTRS_SIGINFO_SIZE], size_t *ret_nr)
{
	uint8_t(*v)[ATTRS_SIGINFO_SIZE] = NULL;
	size_t nr = 0;

	for (;;) {
		struct __ptrace_peeksiginfo_args args = {
			.off = nr,
			.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0,
			.nr = PEEK_BATCH,
		};
		uint8_t(*nv)[ATTRS_SIGINFO_SIZE];
		long n;

		nv = realloc(v, (nr + PEEK_BATCH) * ATTRS_SIGINFO_SIZE);
		if (!nv) {
			free(v);
			return snap_fail(ctx, -ENOMEM, "out of memory");
		}
		v = nv;
		n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, v + nr);
		if (n < 0) {
			int r = -errno;

			free(v);
			return snap_fail(ctx, r, "tid %d: cannot read its %s signal queue: %s", tid,
					 shared ? "process-wide" : "own", strerror(-r));
		}
		if (n == 0)
			break;
		nr += (size_t)n;
		if (nr > ATTRS_MAX_PENDING) {
			free(v);
			return snap_fail(ctx, -EOPNOTSUPP, "tid %d has more than %d signals pending", tid,
					 ATTRS_MAX_PENDING);
		}
	}
	*ret = v;
	*ret_nr = nr;
	return 0;
}

/*
 * SIGTRAP is how the engine stops the restored process, and one pending
 * already would swallow that; SIGKILL and SIGSTOP cannot be queued by a
 * process for itself as they were.
 */
static int check_queue(struct snap_ctx *ctx, pid_t pid, pid_t tid, uint8_t (*q)[ATTRS_SIGINFO_SIZE], size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		int32_t sig;

		memcpy(&sig, q[i], sizeof(sig));
		if (sig == SIGTRAP || sig == SIGKILL || sig == SIGSTOP)
			return snap_fail(ctx, -EOPNOTSUPP, "pid %d: tid %d: a pending %s cannot be restored", pid, tid,
					 sigabbrev_np(sig));
	}
	return 0;
}

/*
 * Runs while the parasite waits for its next command: the thread is
 * stopped for the reading, and resumes into the same wait. Read after the
 * timers, so that an expiry in between is a pending signal here rather
 * than lost between the two.
 */
int signals_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	struct task_attrs *at = t->attrs;
	char why[96];
	int status, r;

	if (ptrace(PTRACE_INTERRUPT, t->pid, 0, 0))
		return snap_fail(ctx, -errno, "pid %d: cannot stop the parasite to read the signal queues: %m", t->pid);
	r = ptrace_wait(t->pid, &status);
	if (r)
		return snap_fail(ctx, r, "pid %d: wait for the parasite to stop: %s", t->pid, strerror(-r));
	if (!WIFSTOPPED(status) || (status >> 16) != PTRACE_EVENT_STOP)
		return snap_fail(ctx, -ECHILD, "pid %d: the parasite %s instead of stopping", t->pid,
				 ptrace_status_str(status, why, sizeof(why)));
	r = peek_queue(ctx, t->pid, false, &at->threads[0].pending, &at->threads[0].nr_pending);
	if (!r)
		r = peek_queue(ctx, t->pid, true, &at->shared, &at->nr_shared);
	if (ptrace(PTRACE_CONT, t->pid, 0, 0) && !r)
		r = snap_fail(ctx, -errno, "pid %d: cannot resume the parasite: %m", t->pid);
	/* The other threads are still in the stop the freeze (or their turn of the parasite) left them in. */
	for (size_t i = 1; !r && i < t->nr_threads; i++)
		r = peek_queue(ctx, t->threads[i].tid, false, &at->threads[i].pending, &at->threads[i].nr_pending);
	if (!r)
		r = check_queue(ctx, t->pid, t->pid, at->shared, at->nr_shared);
	for (size_t i = 0; !r && i < t->nr_threads; i++)
		r = check_queue(ctx, t->pid, t->threads[i].tid, at->threads[i].pending, at->threads[i].nr_pending);
	return r;
}

static int validate_queue(struct snap_ctx *ctx, const ProtobufCBinaryData *q, size_t nr, int tid)
{
	if (nr > ATTRS_MAX_PENDING)
		return snap_fail(ctx, -EINVAL, "image: tid %d: %zu pending signals", tid, nr);
	for (size_t i = 0; i < nr; i++) {
		int32_t sig;

		if (q[i].len != ATTRS_SIGINFO_SIZE)
			return snap_fail(ctx, -EINVAL, "image: tid %d: pending signal %zu has %zu bytes of siginfo",
					 tid, i, q[i].len);
		memcpy(&sig, q[i].data, sizeof(sig));
		if (sig < 1 || sig > 64 || sig == SIGTRAP || sig == SIGKILL || sig == SIGSTOP)
			return snap_fail(ctx, -EINVAL, "image: tid %d: pending signal %d cannot be restored", tid, sig);
	}
	return 0;
}

int signals_validate(struct snap_ctx *ctx, const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads, size_t nr_threads)
{
	int r = validate_queue(ctx, ta->shared_pending, ta->n_shared_pending, threads[0]->tid);

	for (size_t i = 0; !r && i < nr_threads; i++)
		if (threads[i]->attrs)
			r = validate_queue(ctx, threads[i]->attrs->pending, threads[i]->attrs->n_pending,
					   threads[i]->tid);
	return r;
}

static bool itimer_real_expired(const TaskAttrsEntry *ta)
{
	/* Since Linux 6.13 an expired ITIMER_REAL reads 0 left until its SIGALRM is taken. */
	return !ta->itimer_real->value_us && ta->itimer_real->interval_us;
}

static int timer_index(const struct restorer_posix_timer *timers, size_t n, int id)
{
	for (size_t i = 0; i < n; i++)
		if (timers[i].id == id)
			return (int)i;
	return -1;
}

size_t signals_fill_args(const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads, size_t nr_threads,
			 struct restorer_siginfo *out, const struct restorer_posix_timer *timers)
{
	size_t n = 0, nt = ta->n_posix_timers;
	bool *done = calloc(nt ? nt : 1, sizeof(*done)), alarm_done = false;

	/* Order counts within a queue only: the process-wide one, then each thread's own. */
	for (size_t q = 0; q <= nr_threads; q++) {
		const ThreadCoreEntry *thread = q ? threads[q - 1] : NULL;
		const ProtobufCBinaryData *p = q ? (thread->attrs ? thread->attrs->pending : NULL) : ta->shared_pending;
		size_t np = q ? (thread->attrs ? thread->attrs->n_pending : 0) : ta->n_shared_pending;

		for (size_t i = 0; i < np; i++) {
			int k = timers_find_expiry(ta, p[i].data);
			struct restorer_siginfo *o = &out[n];
			int32_t sig;

			memcpy(&sig, p[i].data, sizeof(sig));
			memset(o, 0, sizeof(*o));
			memcpy(o->info, p[i].data, ATTRS_SIGINFO_SIZE);
			o->tid = q ? thread->tid : 0;
			o->fire = RESTORER_FIRE_NONE;
			o->queue = 1;
			if (k >= 0) {
				int idx = timer_index(timers, nt, ta->posix_timers[k]->id);

				/* Stale expiries are dropped by the kernel on delivery: leave them out. */
				if (idx < 0 || timers[idx].how != RESTORER_TIMER_FIRED || !done || done[idx])
					continue;
				done[idx] = true;
				o->fire = idx;
				o->queue = 0;
			} else if (!q && sig == SIGALRM && itimer_real_expired(ta) && !alarm_done) {
				/* Queued with its own siginfo; the expiry then merges into it. */
				o->fire = RESTORER_FIRE_ITIMER_REAL;
				alarm_done = true;
			}
			n++;
		}
	}
	/* Expired with its SIGALRM in no queue (ignored): expire it again, so that it is rearmed the same way. */
	if (itimer_real_expired(ta) && !alarm_done) {
		int32_t sig = SIGALRM;

		memset(&out[n], 0, sizeof(out[n]));
		memcpy(out[n].info, &sig, sizeof(sig));
		out[n].fire = RESTORER_FIRE_ITIMER_REAL;
		n++;
	}
	free(done);
	return n;
}
