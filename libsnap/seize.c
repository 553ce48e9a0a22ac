/* Freezing every thread of a process with PTRACE_SEIZE + PTRACE_INTERRUPT, and letting them go again. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptrace.h"
#include "task.h"

static struct dump_thread *find_thread(struct dump_task *t, pid_t tid)
{
	for (size_t i = 0; i < t->nr_threads; i++)
		if (t->threads[i].tid == tid)
			return &t->threads[i];
	return NULL;
}

static struct dump_thread *add_thread(struct snap_ctx *ctx, struct dump_task *t, pid_t tid)
{
	if (t->nr_threads == t->cap_threads) {
		size_t cap = t->cap_threads ? t->cap_threads * 2 : 8;
		struct dump_thread *n = realloc(t->threads, cap * sizeof(*n));

		if (!n) {
			snap_fail(ctx, -ENOMEM, "out of memory");
			return NULL;
		}
		t->threads = n;
		t->cap_threads = cap;
	}
	memset(&t->threads[t->nr_threads], 0, sizeof(t->threads[0]));
	t->threads[t->nr_threads].tid = tid;
	return &t->threads[t->nr_threads++];
}

/*
 * Waits for @th's interrupt stop. A signal may be delivered before it: let
 * it through (the handler frame becomes part of what we dump) rather than
 * swallow it; the interrupt stays pending and stops the thread next.
 * Returns 1 if the thread exited meanwhile.
 */
static int wait_interrupt_stop(struct snap_ctx *ctx, pid_t pid, struct dump_thread *th)
{
	char why[96];
	int status, r;

	for (;;) {
		r = ptrace_wait(th->tid, &status);
		if (r)
			return snap_fail(ctx, r, "pid %d: tid %d: wait for the freeze: %s", pid, th->tid, strerror(-r));
		if (!WIFSTOPPED(status)) {
			th->seized = false;
			if (th->tid == pid)
				return snap_fail(ctx, -ESRCH, "pid %d %s while being frozen", pid,
						 ptrace_status_str(status, why, sizeof(why)));
			return 1;
		}
		if ((status >> 16) == PTRACE_EVENT_STOP)
			break;
		if (ptrace(PTRACE_CONT, th->tid, 0, WSTOPSIG(status)))
			return snap_fail(ctx, -errno, "pid %d: tid %d: cannot pass signal %d on: %m", pid, th->tid,
					 WSTOPSIG(status));
	}
	th->stopped = true;
	return 0;
}

/* Whether thread @tid of @pid has exited (or is exiting): no entry, or a zombie or dead state. */
static bool thread_gone(pid_t pid, pid_t tid)
{
	char path[64], buf[512];
	const char *state;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	state = strrchr(buf, ')');
	return !state || !state[1] || state[2] == 'Z' || state[2] == 'X';
}

/* Seizes and interrupts @tid without waiting: many threads stop at once that way. */
static int seize_thread(struct snap_ctx *ctx, struct dump_task *t, pid_t tid)
{
	struct dump_thread *th;
	int r;

	if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)) {
		r = -errno;
		/* It exited between listing and seizing: ESRCH, or EPERM while it is still exiting. */
		if ((r == -ESRCH || r == -EPERM) && tid != t->pid && thread_gone(t->pid, tid))
			return 0;
		if (r == -ESRCH)
			return snap_fail(ctx, r, "pid %d: no such process", t->pid);
		if (r == -EPERM)
			return snap_fail(ctx, r, "pid %d: not permitted to trace it (ptrace: %s)", t->pid,
					 strerror(-r));
		return snap_fail(ctx, r, "pid %d: tid %d: cannot seize: %s", t->pid, tid, strerror(-r));
	}
	th = add_thread(ctx, t, tid);
	if (!th) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return -ENOMEM;
	}
	th->seized = true;
	/* A thread exiting right now cannot be interrupted; the wait then sees it go. */
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) && !(errno == ESRCH && tid != t->pid))
		return snap_fail(ctx, -errno, "pid %d: tid %d: cannot interrupt: %m", t->pid, tid);
	return 0;
}

/* Waits for the stops of threads [@from, nr_threads) and forgets those that exited meanwhile. */
static int wait_new_threads(struct snap_ctx *ctx, struct dump_task *t, size_t from)
{
	size_t keep = from;
	int r = 0;

	/* Every one, even after a failure: only a stopped thread can be detached. */
	for (size_t i = from; i < t->nr_threads; i++) {
		int w = wait_interrupt_stop(ctx, t->pid, &t->threads[i]);

		if (w < 0 && !r)
			r = w;
		if (w == 1)
			continue; /* gone already */
		t->threads[keep++] = t->threads[i];
	}
	t->nr_threads = keep;
	return r;
}

int seize_task(struct snap_ctx *ctx, struct dump_task *t)
{
	pid_t pid = t->pid;
	bool added;
	int r;

	r = proc_read_status(ctx, pid, &t->status);
	if (r) {
		snap_clear_error(ctx);
		if (kill(pid, 0) && errno == ESRCH)
			return snap_fail(ctx, -ESRCH, "pid %d: no such process", pid);
		return proc_read_status(ctx, pid, &t->status);
	}
	if (t->status.tgid != pid)
		return snap_fail(ctx, -EINVAL, "pid %d is a thread of process %d; dump the process", pid,
				 t->status.tgid);
	if (t->status.tracer_pid)
		return snap_fail(ctx, -EBUSY, "pid %d is already traced by pid %d", pid, t->status.tracer_pid);
	if (t->status.state == 'Z' || t->status.state == 'X')
		return snap_fail(ctx, -ESRCH, "pid %d is a zombie", pid);

	/* The leader first: it is threads[0] from here on. */
	r = seize_thread(ctx, t, pid);
	if (!r)
		r = wait_new_threads(ctx, t, 0);
	if (r)
		return r;
	if (!t->nr_threads)
		return snap_fail(ctx, -ESRCH, "pid %d exited while being frozen", pid);

	/*
	 * Every thread the listing shows, again and again until a listing
	 * brings nothing new; each round interrupts all new ones, then waits.
	 */
	do {
		size_t from = t->nr_threads;
		int *ids = NULL;
		size_t nr = 0;

		added = false;
		r = proc_list_ids(ctx, pid, "task", &ids, &nr);
		for (size_t i = 0; !r && i < nr; i++) {
			if (find_thread(t, ids[i]))
				continue;
			r = seize_thread(ctx, t, ids[i]);
			added = true;
		}
		free(ids);
		if (!r)
			r = wait_new_threads(ctx, t, from);
	} while (!r && added);
	return r;
}

static struct dump_task *tree_find(struct dump_tree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (tree->tasks[i].pid == pid)
			return &tree->tasks[i];
	return NULL;
}

static struct dump_task *tree_add(struct snap_ctx *ctx, struct dump_tree *tree, pid_t pid)
{
	if (tree->nr == tree->cap) {
		size_t cap = tree->cap ? tree->cap * 2 : 16;
		struct dump_task *n = realloc(tree->tasks, cap * sizeof(*n));

		if (!n) {
			snap_fail(ctx, -ENOMEM, "out of memory");
			return NULL;
		}
		tree->tasks = n;
		tree->cap = cap;
	}
	memset(&tree->tasks[tree->nr], 0, sizeof(tree->tasks[0]));
	tree->tasks[tree->nr].pid = pid;
	return &tree->tasks[tree->nr++];
}

/* A child that exited and waits for its parent: its ids and wait status are all there is. */
static int add_zombie(struct snap_ctx *ctx, struct dump_task *t)
{
	int r = proc_read_stat(ctx, t->pid, &t->stat);

	if (r)
		return r;
	t->zombie = true;
	t->exit_status = t->stat.exit_code;
	return 0;
}

/* The children of every thread of @t, as the kernel lists them. */
static int list_children(struct snap_ctx *ctx, struct dump_task *t, int **ret, size_t *ret_nr)
{
	size_t nr = 0, cap = 16;
	int *ids = malloc(cap * sizeof(*ids)), child;

	if (!ids)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < t->nr_threads; i++) {
		char name[64];
		FILE *f;

		snprintf(name, sizeof(name), "task/%d/children", t->threads[i].tid);
		f = proc_fopen(t->pid, name);
		if (!f) {
			free(ids);
			return snap_fail(ctx, -errno, "pid %d: cannot open /proc/%d/%s: %m", t->pid, t->pid, name);
		}
		while (fscanf(f, "%d", &child) == 1) {
			if (nr == cap) {
				int *n = realloc(ids, (cap *= 2) * sizeof(*ids));

				if (!n) {
					fclose(f);
					free(ids);
					return snap_fail(ctx, -ENOMEM, "out of memory");
				}
				ids = n;
			}
			ids[nr++] = child;
		}
		fclose(f);
	}
	*ret = ids;
	*ret_nr = nr;
	return 0;
}

static bool process_exists(pid_t pid)
{
	return !(kill(pid, 0) && errno == ESRCH);
}

/*
 * A session or group id must name a process of the tree, one that is gone
 * (its leader exited: restored with a stand-in), or be the root's own
 * (inherited from outside at restore, as the root's is).
 */
static int check_ids(struct snap_ctx *ctx, struct dump_tree *tree)
{
	const struct dump_task *root = &tree->tasks[0];

	for (size_t i = 1; i < tree->nr; i++) {
		const struct dump_task *t = &tree->tasks[i];
		const struct {
			const char *what;
			pid_t id, root_id;
		} ids[] = { { "session", t->stat.session, root->stat.session },
			    { "process group", t->stat.pgrp, root->stat.pgrp } };

		for (int k = 0; k < 2; k++) {
			if (ids[k].id == ids[k].root_id || tree_find(tree, ids[k].id) || !process_exists(ids[k].id))
				continue;
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: its %s %d belongs to pid %d outside the dumped tree (root %d)",
					 t->pid, ids[k].what, ids[k].id, ids[k].id, root->pid);
		}
	}
	return 0;
}

int seize_tree(struct snap_ctx *ctx, struct dump_tree *tree, pid_t root)
{
	struct dump_task *t = tree_add(ctx, tree, root);
	int r;

	if (!t)
		return -ENOMEM;
	r = seize_task(ctx, t);
	/* Breadth first: a frozen process forks no more, so its children are final once listed. */
	for (size_t i = 0; !r && i < tree->nr; i++) {
		int *kids = NULL;
		size_t nr = 0;

		if (tree->tasks[i].zombie)
			continue;
		r = list_children(ctx, &tree->tasks[i], &kids, &nr);
		for (size_t k = 0; !r && k < nr; k++) {
			struct dump_task *c;

			if (tree_find(tree, kids[k]))
				continue;
			c = tree_add(ctx, tree, kids[k]);
			if (!c) {
				r = -ENOMEM;
				break;
			}
			r = proc_read_status(ctx, c->pid, &c->status);
			if (!r && (c->status.state == 'Z' || c->status.state == 'X'))
				r = add_zombie(ctx, c);
			else if (!r)
				r = seize_task(ctx, c);
		}
		free(kids);
	}
	for (size_t i = 0; !r && i < tree->nr; i++)
		if (!tree->tasks[i].zombie)
			r = proc_read_stat(ctx, tree->tasks[i].pid, &tree->tasks[i].stat);
	if (!r)
		r = check_ids(ctx, tree);
	return r;
}

void dump_tree_free(struct dump_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++)
		dump_task_free(&tree->tasks[i]);
	free(tree->tasks);
	memset(tree, 0, sizeof(*tree));
}

void seize_release(struct snap_ctx *ctx, struct dump_task *t, bool kill_it)
{
	int status;
	bool any = false;

	for (size_t i = 0; i < t->nr_threads; i++)
		any |= t->threads[i].seized;
	if (!any)
		return;
	if (kill_it) {
		kill(t->pid, SIGKILL);
		/* As tracer we see every thread go; a non-leader thread is reaped by us. */
		for (size_t i = 1; i < t->nr_threads; i++)
			if (t->threads[i].seized)
				while (ptrace_wait(t->threads[i].tid, &status) == 0 && !WIFEXITED(status) &&
				       !WIFSIGNALED(status))
					;
		if (t->stat.ppid == getpid()) {
			/* We are its parent too: leave the zombie for the caller to reap. */
			siginfo_t si;

			while (waitid(P_PID, t->pid, &si, WEXITED | WNOWAIT | __WALL) && errno == EINTR)
				;
		} else {
			/* A tracer sees the exit first; the real parent reaps it after us. */
			while (ptrace_wait(t->pid, &status) == 0 && !WIFEXITED(status) && !WIFSIGNALED(status))
				;
		}
	} else {
		for (size_t i = 0; i < t->nr_threads; i++)
			if (t->threads[i].seized && ptrace(PTRACE_DETACH, t->threads[i].tid, 0, 0))
				snap_warn(ctx, "pid %d: tid %d: detach failed: %m", t->pid, t->threads[i].tid);
	}
	for (size_t i = 0; i < t->nr_threads; i++)
		t->threads[i].seized = t->threads[i].stopped = false;
}
