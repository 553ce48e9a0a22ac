/*
 * Seccomp filters: read per thread with PTRACE_SECCOMP_GET_FILTER (oldest
 * first), suspended while the parasite runs, and checked before restore.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "attrs.h"

#define BPF_MAX_INSNS	   4096
#define KNOWN_FILTER_FLAGS (SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW)

/* A filter that returns SECCOMP_RET_USER_NOTIF hands calls to a supervisor we cannot bring back. */
static bool uses_user_notif(const struct sock_filter *f, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (f[i].code == (BPF_RET | BPF_K) && (f[i].k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_USER_NOTIF)
			return true;
	return false;
}

static int collect_thread(struct snap_ctx *ctx, pid_t pid, pid_t tid, struct thread_attrs *at)
{
	struct proc_status st;
	int r;

	/* Read again: the status seize_task() read is from before the freeze, and the mode may have changed since. */
	r = proc_read_status(ctx, tid, &st);
	if (r)
		return r;
	if (st.seccomp == 0)
		return 0;
	if (st.seccomp == 1)
		return snap_fail(
			ctx, -EOPNOTSUPP,
			"pid %d: tid %d runs in seccomp strict mode, which cannot be dumped (the parasite's system "
			"calls would kill it)",
			pid, tid);
	/* The options seize_task() set, plus the suspension; detaching clears it again. */
	if (ptrace(PTRACE_SETOPTIONS, tid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP))
		return snap_fail(
			ctx, -errno,
			"pid %d: tid %d has seccomp filters, which must be suspended for the dump: %m (it needs "
			"CAP_SYS_ADMIN)",
			pid, tid);
	for (unsigned long i = 0;; i++) {
		struct __ptrace_seccomp_metadata md = { .filter_off = i };
		struct dump_seccomp_filter *nf, *f;
		long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)i, NULL);

		if (n < 0 && errno == ENOENT)
			break;
		if (n < 0)
			return snap_fail(ctx, -errno, "pid %d: tid %d: cannot read seccomp filter %lu: %m", pid, tid,
					 i);
		if (i >= ATTRS_MAX_SECCOMP)
			return snap_fail(ctx, -EOPNOTSUPP, "pid %d: tid %d has more than %d seccomp filters", pid, tid,
					 ATTRS_MAX_SECCOMP);
		nf = realloc(at->seccomp, (at->nr_seccomp + 1) * sizeof(*nf));
		if (!nf)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		at->seccomp = nf;
		f = &at->seccomp[at->nr_seccomp];
		memset(f, 0, sizeof(*f));
		f->prog = calloc((size_t)n ? (size_t)n : 1, sizeof(struct sock_filter));
		if (!f->prog)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		at->nr_seccomp++;
		if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)i, f->prog) != n)
			return snap_fail(ctx, -EIO, "pid %d: tid %d: seccomp filter %lu changed while being read", pid,
					 tid, i);
		f->len = (uint32_t)n;
		if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid, sizeof(md), &md) < 0)
			return snap_fail(ctx, -errno, "pid %d: tid %d: cannot read the flags of seccomp filter %lu: %m",
					 pid, tid, i);
		f->flags = md.flags;
		if (uses_user_notif(f->prog, f->len))
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: tid %d: seccomp filter %lu hands system calls to a supervisor "
					 "(SECCOMP_RET_USER_NOTIF), which cannot be restored",
					 pid, tid, i);
	}
	return 0;
}

/* Each thread has its own chain (threads inherit their creator's, then may add their own). */
int seccomp_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	int r = 0;

	for (size_t i = 0; !r && i < t->nr_threads; i++)
		r = collect_thread(ctx, t->pid, t->threads[i].tid, &t->attrs->threads[i]);
	return r;
}

/* Whether this process runs under seccomp itself (then it may not suspend anyone's filters). */
static int own_seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	struct proc_status st = { 0 };
	int r;

	if (!f)
		return -errno;
	r = proc_parse_status(f, &st);
	fclose(f);
	return r < 0 ? r : st.seccomp;
}

int seccomp_validate(struct snap_ctx *ctx, const ThreadAttrsEntry *th, int tid)
{
	struct __user_cap_header_struct {
		uint32_t version;
		int pid;
	} hdr = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	struct {
		uint32_t eff, prm, inh;
	} data[2] = { 0 };

	if (th->seccomp_mode != 0 && th->seccomp_mode != 2)
		return snap_fail(ctx, -EINVAL, "image: tid %d: bad seccomp mode %u", tid, th->seccomp_mode);
	if ((th->seccomp_mode == 2) != (th->n_seccomp > 0) || th->n_seccomp > ATTRS_MAX_SECCOMP)
		return snap_fail(ctx, -EINVAL, "image: tid %d: seccomp mode %u with %zu filters", tid, th->seccomp_mode,
				 th->n_seccomp);
	for (size_t i = 0; i < th->n_seccomp; i++) {
		const SeccompFilterEntry *f = th->seccomp[i];

		if (!f->prog.len || f->prog.len % sizeof(struct sock_filter) ||
		    f->prog.len / sizeof(struct sock_filter) > BPF_MAX_INSNS ||
		    f->flags & ~(uint64_t)KNOWN_FILTER_FLAGS)
			return snap_fail(ctx, -EINVAL, "image: tid %d: bad seccomp filter %zu", tid, i);
	}
	if (!th->n_seccomp)
		return 0;
	/* The engine keeps the filters suspended until the restorer is done: that takes CAP_SYS_ADMIN. */
	if (syscall(SYS_capget, &hdr, data) || !((data[0].eff >> 21) & 1))
		return snap_fail(ctx, -EPERM, "tid %d: restoring its seccomp filters needs CAP_SYS_ADMIN", tid);
	if (own_seccomp_mode() != 0)
		return snap_fail(ctx, -EPERM, "tid %d: restoring its seccomp filters is not possible under seccomp",
				 tid);
	return 0;
}
