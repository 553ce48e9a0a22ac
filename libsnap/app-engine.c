/*
 * The engine's side of the in-process API (snap/app.h): before a dump it
 * has each registered process run its before-checkpoint callbacks, after
 * a restore it lets the control thread run the after-restore callbacks
 * before any other thread. The protocol is the control block of
 * app-block.h, reached through /proc/PID/map_files.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "app-block.h"
#include "app-engine.h"
#include "proc.h"
#include "restore.h"

struct app_proc {
	pid_t pid;
	struct app_block *b;
	size_t len;
	bool requested;	    /* we posted a request and own the block */
	uint32_t done_seen; /* the done count when we opened the gate */
};

struct app_engine {
	struct app_proc *procs;
	size_t nr;
};

/* Waits until *@w != @val or @deadline_ns passes; 0 or -ETIMEDOUT. */
static int wait_change(uint32_t *w, uint32_t val, uint64_t deadline_ns)
{
	while (app_load(w) == val) {
		uint64_t now = snap_now_ns();
		struct timespec rel;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		rel.tv_sec = (time_t)((deadline_ns - now) / 1000000000ull);
		rel.tv_nsec = (long)((deadline_ns - now) % 1000000000ull);
		syscall(SYS_futex, w, FUTEX_WAIT, val, &rel, NULL, 0);
	}
	return 0;
}

static uint64_t limit_ns(struct app_block *b)
{
	uint32_t ms = app_load(&b->time_limit_ms);

	return (uint64_t)(ms ? ms : APP_DEFAULT_LIMIT_MS) * 1000000ull;
}

/*
 * Maps @pid's control block, if it has one (0 with *ret_b NULL if not).
 * The mapping name is only a hint; the magic, version and size decide.
 */
static int map_block(struct snap_ctx *ctx, pid_t pid, uint64_t start, uint64_t end, struct app_block **ret_b)
{
	char path[96];
	struct app_block *b;
	size_t len = end - start;
	int fd;

	*ret_b = NULL;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", pid, (unsigned long long)start,
		 (unsigned long long)end);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return snap_fail(ctx, -errno, "pid %d: cannot open its libsnap-app block (%s): %m", pid, path);
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (b == MAP_FAILED)
		return snap_fail(ctx, -errno, "pid %d: cannot map its libsnap-app block: %m", pid);
	if (len < sizeof(*b) || b->magic != APP_BLOCK_MAGIC || b->version != APP_BLOCK_VERSION ||
	    b->size < sizeof(*b) || b->size > len) {
		munmap(b, len);
		return snap_fail(ctx, -EPROTO,
				 "pid %d: its libsnap-app block at 0x%llx has an unknown layout (another libsnap "
				 "version?)",
				 pid, (unsigned long long)start);
	}
	*ret_b = b;
	return 0;
}

static int find_block(struct snap_ctx *ctx, pid_t pid, struct app_proc *p)
{
	struct proc_vma_list vmas = { 0 };
	char path[64];
	FILE *f;
	int r, bad = 0;

	/* maps, not smaps: it is cheap, and the dump reads smaps itself once the process is frozen. */
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno; /* not ours to report: the seize says why it cannot have the process */
	r = proc_parse_maps(f, &vmas, &bad);
	fclose(f);
	if (r)
		r = snap_fail(ctx, r, "pid %d: malformed maps line %d", pid, bad);
	for (size_t i = 0; !r && i < vmas.nr; i++) {
		const struct proc_vma *v = &vmas.v[i];

		if (!v->shared || !v->deleted || !v->path || strcmp(v->path, APP_BLOCK_PATH))
			continue;
		r = map_block(ctx, pid, v->start, v->end, &p->b);
		p->len = v->end - v->start;
		break;
	}
	proc_vma_list_free(&vmas);
	return r;
}

/* @pid and its descendants, parents first (the tree may still change: the dump itself rescans it). */
static int list_tree(struct snap_ctx *ctx, pid_t root, pid_t **ret, size_t *ret_nr)
{
	size_t nr = 1, cap = 16;
	pid_t *pids = malloc(cap * sizeof(*pids));

	if (!pids)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	pids[0] = root;
	for (size_t i = 0; i < nr; i++) {
		int *tids = NULL;
		size_t nt = 0;

		/* A process that is gone is the dump's business, not ours. */
		if (proc_list_ids(ctx, pids[i], "task", &tids, &nt)) {
			snap_clear_error(ctx);
			continue;
		}
		for (size_t k = 0; k < nt; k++) {
			char name[64];
			FILE *f;
			int child;

			snprintf(name, sizeof(name), "/proc/%d/task/%d/children", pids[i], tids[k]);
			f = fopen(name, "re");
			while (f && fscanf(f, "%d", &child) == 1) {
				if (nr == cap) {
					pid_t *n = realloc(pids, (cap *= 2) * sizeof(*pids));

					if (!n) {
						fclose(f);
						free(tids);
						free(pids);
						return snap_fail(ctx, -ENOMEM, "out of memory");
					}
					pids = n;
				}
				pids[nr++] = child;
			}
			if (f)
				fclose(f);
		}
		free(tids);
	}
	*ret = pids;
	*ret_nr = nr;
	return 0;
}

/* Claims the block for this engine; a claim by an engine that is gone does not count. */
static int claim(struct snap_ctx *ctx, struct app_proc *p)
{
	int32_t me = getpid(), cur = 0;

	while (!__atomic_compare_exchange_n(&p->b->engine_pid, &cur, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (cur > 0 && !(kill(cur, 0) && errno == ESRCH))
			return snap_fail(ctx, -EBUSY, "pid %d: another engine (pid %d) is checkpointing it", p->pid,
					 cur);
		/* cur now holds the stale claim: try to replace it. */
	}
	return 0;
}

/* Posts a checkpoint request to every block, then waits for each to park. */
static int run_before(struct snap_ctx *ctx, struct app_engine *ae)
{
	int r = 0;

	for (size_t i = 0; !r && i < ae->nr; i++) {
		struct app_proc *p = &ae->procs[i];
		uint32_t st = app_load(&p->b->state);

		if (st != APP_STATE_IDLE)
			return snap_fail(ctx, -EBUSY,
					 "pid %d: its libsnap-app control thread (tid %d) is busy (state %u)", p->pid,
					 p->b->ctl_tid, st);
		r = claim(ctx, p);
		if (r)
			break;
		p->requested = true;
		app_store(&p->b->gate, APP_GATE_CLOSED);
		app_store(&p->b->state, APP_STATE_BEFORE);
		__atomic_add_fetch(&p->b->request, 1, __ATOMIC_RELEASE);
		app_futex_wake(&p->b->request);
	}
	for (size_t i = 0; !r && i < ae->nr; i++) {
		struct app_proc *p = &ae->procs[i];
		uint64_t t0 = snap_now_ns(), lim = limit_ns(p->b);
		uint32_t st;

		r = wait_change(&p->b->state, APP_STATE_BEFORE, t0 + lim);
		st = app_load(&p->b->state);
		if (r)
			r = snap_fail(ctx, -ETIMEDOUT,
				      "pid %d: its before-checkpoint callbacks did not finish within %llu ms (control "
				      "thread tid %d); the process runs on",
				      p->pid, (unsigned long long)(lim / 1000000ull), p->b->ctl_tid);
		else if (st == APP_STATE_REFUSED)
			r = snap_fail(
				ctx, -ECANCELED,
				"pid %d: before-checkpoint callback #%u refused the checkpoint (returned %d); the "
				"process runs on",
				p->pid, p->b->refused_index + 1, p->b->refused_err);
		else if (st != APP_STATE_READY)
			r = snap_fail(ctx, -EPROTO, "pid %d: its libsnap-app control thread reports state %u", p->pid,
				      st);
		else
			snap_info(ctx, "pid %d: before-checkpoint callbacks done in %llu us", p->pid,
				  (unsigned long long)((snap_now_ns() - t0) / 1000));
	}
	return r;
}

int app_engine_prepare(struct snap_ctx *ctx, pid_t root, struct app_engine **ret)
{
	struct app_engine *ae = calloc(1, sizeof(*ae));
	pid_t *pids = NULL;
	size_t nr = 0;
	int r;

	*ret = ae;
	if (!ae)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	r = list_tree(ctx, root, &pids, &nr);
	if (!r && !(ae->procs = calloc(nr, sizeof(*ae->procs))))
		r = snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; !r && i < nr; i++) {
		struct app_proc p = { .pid = pids[i] };

		r = find_block(ctx, pids[i], &p);
		if (r == -ENOENT || r == -ESRCH || r == -EACCES || r == -EPERM) {
			/* Exited meanwhile, or not ours to trace: the seize reports that itself. */
			snap_clear_error(ctx);
			r = 0;
		}
		if (!r && p.b)
			ae->procs[ae->nr++] = p;
	}
	free(pids);
	if (!r && ae->nr)
		r = run_before(ctx, ae);
	return r;
}

void app_engine_release(struct snap_ctx *ctx, struct app_engine *ae, bool killed)
{
	if (!ae)
		return;
	for (size_t i = 0; i < ae->nr; i++) {
		struct app_proc *p = &ae->procs[i];

		if (!p->requested || killed)
			continue;
		p->done_seen = app_load(&p->b->done);
		app_store((uint32_t *)&p->b->engine_pid, 0);
		app_store(&p->b->gate, APP_GATE_CONTINUED);
		app_futex_wake(&p->b->gate);
	}
	for (size_t i = 0; i < ae->nr; i++) {
		struct app_proc *p = &ae->procs[i];
		uint32_t st = app_load(&p->b->state);

		/* A control thread still in its before-checkpoint callbacks runs the others once it is out. */
		if (p->requested && !killed &&
		    (st == APP_STATE_READY || st == APP_STATE_REFUSED || st == APP_STATE_AFTER) &&
		    wait_change(&p->b->done, p->done_seen, snap_now_ns() + limit_ns(p->b)))
			snap_warn(ctx, "pid %d: its after-restore callbacks did not finish within the time limit",
				  p->pid);
		munmap(p->b, p->len);
	}
	free(ae->procs);
	free(ae);
}

int app_engine_restore(struct snap_ctx *ctx, const struct restore_task *rt, pid_t pid, const pid_t *tids,
		       size_t *ret_first)
{
	const VmaEntry *v = NULL;
	struct app_block *b;
	size_t first = (size_t)-1;
	uint32_t done;
	uint64_t lim;
	int r;

	*ret_first = first;
	for (size_t i = 0; i < rt->mem.nr_vmas && !v; i++)
		if (rt->mem.vmas[i]->kind == VMA_KIND__VMA_ANON_SHARED && rt->mem.vmas[i]->path &&
		    !strcmp(rt->mem.vmas[i]->path, APP_BLOCK_PATH))
			v = rt->mem.vmas[i];
	if (!v)
		return 0;
	r = map_block(ctx, pid, v->start, v->end, &b);
	if (r)
		return r;
	/* Dumped while parked by an engine that asked it first; anything else has no callbacks to run. */
	if (app_load(&b->state) != APP_STATE_READY) {
		snap_info(ctx, "pid %d: its libsnap-app block was not parked at dump (state %u)", pid, b->state);
		goto out;
	}
	for (size_t i = 0; i < rt->nr_threads; i++)
		if (rt->threads[i]->tid == b->ctl_tid)
			first = i;
	if (first == (size_t)-1) {
		r = snap_fail(ctx, -EINVAL, "pid %d: its libsnap-app control thread %d is not among its threads", pid,
			      b->ctl_tid);
		goto out;
	}
	done = app_load(&b->done);
	lim = limit_ns(b);
	app_store((uint32_t *)&b->engine_pid, 0);
	__atomic_add_fetch(&b->generation, 1, __ATOMIC_RELEASE);
	if (app_load(&b->self) == APP_SELF_PENDING)
		app_store(&b->self, APP_SELF_RESTORED);
	/* Before the thread runs: its restarted FUTEX_WAIT on the gate then returns at once. */
	app_store(&b->gate, APP_GATE_RESTORED);
	if (ptrace(PTRACE_DETACH, tids[first], 0, 0)) {
		r = snap_fail(ctx, -errno, "pid %d: tid %d: cannot detach the libsnap-app control thread: %m", pid,
			      tids[first]);
		goto out;
	}
	*ret_first = first;
	app_futex_wake(&b->gate);
	if (wait_change(&b->done, done, snap_now_ns() + lim))
		snap_warn(ctx,
			  "pid %d: its after-restore callbacks did not finish within %llu ms; the other threads go on "
			  "anyway",
			  pid, (unsigned long long)(lim / 1000000ull));
out:
	munmap(b, v->end - v->start);
	return r;
}
