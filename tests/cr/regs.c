/* Registers of a live thread read from outside with ptrace, for before/after comparisons in tests. */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "regs.h"

static int get_regset(pid_t tid, unsigned note, void *buf, size_t cap, size_t *ret_len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = cap };

	if (ptrace(PTRACE_GETREGSET, tid, (void *)(unsigned long)note, &iov) != 0)
		return h_fail(-errno, "tid %d: PTRACE_GETREGSET %#x: %m", (int)tid, note);
	*ret_len = iov.iov_len;
	return 0;
}

int tregs_read(pid_t tid, struct tregs *out)
{
	const struct timespec ms = { .tv_nsec = 1000 * 1000 };
	int status = 0, r = 0, sig = 0;
	pid_t w = 0;

	memset(out, 0, sizeof(*out));
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0)
		return h_fail(-errno, "tid %d: PTRACE_SEIZE: %m", (int)tid);
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) {
		r = h_fail(-errno, "tid %d: PTRACE_INTERRUPT: %m", (int)tid);
		goto detach;
	}
	for (int i = 0; i < 5000 && w == 0; i++) {
		w = waitpid(tid, &status, WNOHANG | __WALL);
		if (w == 0)
			nanosleep(&ms, NULL);
	}
	if (w != tid) {
		r = h_fail(w < 0 ? -errno : -ETIMEDOUT, "tid %d: no stop after PTRACE_INTERRUPT", (int)tid);
		goto detach;
	}
	if (!WIFSTOPPED(status)) {
		return h_fail(-ESRCH, "tid %d: ended while being interrupted (status %#x)", (int)tid, status);
	}
	if (status >> 16 != PTRACE_EVENT_STOP) {
		/* A signal arrived first: hand it back on detach, and report. */
		sig = WSTOPSIG(status);
		r = h_fail(-EAGAIN, "tid %d: signal %d arrived while reading registers", (int)tid, sig);
		goto detach;
	}
	r = get_regset(tid, NT_PRSTATUS, out->gp, sizeof(out->gp), &out->gp_len);
	if (r == 0)
		r = get_regset(tid, tregs_arch_fp_note, out->fp, sizeof(out->fp), &out->fp_len);
detach:
	if (ptrace(PTRACE_DETACH, tid, 0, (void *)(long)sig) != 0 && r == 0)
		r = h_fail(-errno, "tid %d: PTRACE_DETACH: %m", (int)tid);
	return r;
}

int tregs_compare(const struct tregs *a, const struct tregs *b, char *why, size_t len)
{
	if (a->gp_len != b->gp_len || a->fp_len != b->fp_len) {
		snprintf(why, len, "regset sizes differ: gp %zu/%zu, fp %zu/%zu", a->gp_len, b->gp_len, a->fp_len,
			 b->fp_len);
		return -1;
	}
	return tregs_arch_compare(a, b, why, len);
}
