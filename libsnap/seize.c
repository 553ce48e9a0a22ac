/* Freezing a process with PTRACE_SEIZE + PTRACE_INTERRUPT, and letting it go again. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptrace.h"
#include "task.h"

int seize_task(struct snap_ctx *ctx, struct dump_task *t)
{
	pid_t pid = t->pid;
	char why[96];
	int status, r;

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

	if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD)) {
		r = -errno;
		if (r == -ESRCH)
			return snap_fail(ctx, r, "pid %d: no such process", pid);
		if (r == -EPERM)
			return snap_fail(ctx, r, "pid %d: not permitted to trace it (ptrace: %s)", pid, strerror(-r));
		return snap_fail(ctx, r, "pid %d: cannot seize: %s", pid, strerror(-r));
	}
	t->seized = true;
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0))
		return snap_fail(ctx, -errno, "pid %d: cannot interrupt: %m", pid);

	/*
	 * A signal may be delivered before our interrupt is reported. Let it
	 * through (the handler frame becomes part of what we dump) rather than
	 * swallow it; the interrupt stays pending and stops the task next.
	 */
	for (;;) {
		r = ptrace_wait(pid, &status);
		if (r)
			return snap_fail(ctx, r, "pid %d: wait for the freeze: %s", pid, strerror(-r));
		if (!WIFSTOPPED(status)) {
			t->seized = false;
			return snap_fail(ctx, -ESRCH, "pid %d %s while being frozen", pid,
					 ptrace_status_str(status, why, sizeof(why)));
		}
		if ((status >> 16) == PTRACE_EVENT_STOP)
			break;
		if (ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(status)))
			return snap_fail(ctx, -errno, "pid %d: cannot pass signal %d on: %m", pid, WSTOPSIG(status));
	}
	return 0;
}

/* This version dumps one single-threaded process without children. */
int seize_check_alone(struct snap_ctx *ctx, struct dump_task *t)
{
	char name[64];
	int *ids = NULL;
	size_t nr = 0;
	FILE *f;
	int r, child = 0;

	r = proc_list_ids(ctx, t->pid, "task", &ids, &nr);
	if (r)
		return r;
	for (size_t i = 0; i < nr; i++) {
		if (ids[i] != t->pid) {
			r = snap_fail(ctx, -EOPNOTSUPP,
				      "pid %d: thread %d is not supported yet (only single-threaded processes)", t->pid,
				      ids[i]);
			break;
		}
	}
	free(ids);
	if (r)
		return r;

	snprintf(name, sizeof(name), "task/%d/children", t->pid);
	f = proc_fopen(t->pid, name);
	if (!f)
		return snap_fail(ctx, -errno, "pid %d: cannot open /proc/%d/%s: %m", t->pid, t->pid, name);
	if (fscanf(f, "%d", &child) == 1)
		r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: child process %d is not supported yet (only single processes)",
			      t->pid, child);
	fclose(f);
	return r;
}

void seize_release(struct snap_ctx *ctx, struct dump_task *t, bool kill_it)
{
	int status;

	if (!t->seized)
		return;
	if (kill_it) {
		kill(t->pid, SIGKILL);
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
	} else if (ptrace(PTRACE_DETACH, t->pid, 0, 0)) {
		snap_warn(ctx, "pid %d: detach failed: %m", t->pid);
	}
	t->seized = false;
}
