/*
 * Parasite injection: a few system calls run in the frozen task map a memfd
 * shared with us, the parasite blob is copied in and started, and from then
 * on it answers commands over a socket. cure() undoes all of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blob.h"
#include "parasite-blob.h"
#include "ptrace.h"
#include "task.h"

#define PARASITE_TIMEOUT_MS 10000
/* Bytes below the stack pointer we borrow for strings; past the 128-byte red zone. */
#define SCRATCH_BELOW_SP 512

struct parasite_ctl {
	uint64_t syscall_ip;   /* a system call instruction in the task's vDSO */
	struct arch_regs regs; /* registers to use as the base of injected calls */
	uint64_t remote_base;  /* the shared area in the task */
	size_t size;
	uint8_t *local;		    /* the shared area here */
	struct parasite_shared *sh; /* inside local */
	int sock;		    /* our end of the command socket */
	int remote_sock;	    /* the task's end, until the parasite owns (and closes) it */
	bool running;		    /* the parasite owns the task's registers */
};

static size_t page_align(size_t v)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);

	return (v + ps - 1) & ~(ps - 1);
}

static int remote_call(struct snap_ctx *ctx, struct dump_task *t, long nr, uint64_t a0, uint64_t a1, uint64_t a2,
		       uint64_t a3, uint64_t a4, uint64_t a5, long *ret)
{
	const uint64_t args[6] = { a0, a1, a2, a3, a4, a5 };

	return ptrace_remote_syscall(ctx, t->pid, &t->parasite->regs, t->parasite->syscall_ip, nr, args, ret);
}

static int find_syscall_ip(struct snap_ctx *ctx, struct dump_task *t, uint64_t *ret)
{
	long off = vdso_syscall_offset();

	/* The task's vDSO is the kernel's, the same image as ours. */
	for (size_t i = 0; off >= 0 && i < t->vmas.nr; i++) {
		const struct proc_vma *v = &t->vmas.v[i];

		if (v->path && !strcmp(v->path, "[vdso]") && v->start + (uint64_t)off < v->end) {
			*ret = v->start + (uint64_t)off;
			return 0;
		}
	}
	return snap_fail(ctx, -ENOENT, "pid %d: no vDSO to run injected system calls from", t->pid);
}

static int pidfd_getfd_of(struct snap_ctx *ctx, pid_t pid, int remote_fd, int *ret)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int fd;

	if (pidfd < 0)
		return snap_fail(ctx, -errno, "pid %d: pidfd_open: %m", pid);
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, remote_fd, 0);
	if (fd < 0) {
		int r = -errno;

		close(pidfd);
		return snap_fail(ctx, r, "pid %d: cannot take its fd %d: %s", pid, remote_fd, strerror(-r));
	}
	close(pidfd);
	*ret = fd;
	return 0;
}

/* The injected calls need a string in the task: borrow dead stack below sp, and put it back. */
static int with_scratch_name(struct snap_ctx *ctx, struct dump_task *t, uint64_t *addr, char saved[32], bool restore)
{
	static const char name[32] = "snap-parasite";
	uint64_t at = (arch_regs_sp(&t->parasite->regs) - SCRATCH_BELOW_SP) & ~(uint64_t)15;
	struct iovec local = { restore ? saved : (void *)name, 32 }, remote = { (void *)at, 32 };
	struct iovec save = { saved, 32 };

	if (!restore && process_vm_readv(t->pid, &save, 1, &remote, 1, 0) != 32)
		return snap_fail(ctx, -errno, "pid %d: cannot read its stack at 0x%llx: %m", t->pid,
				 (unsigned long long)at);
	if (process_vm_writev(t->pid, &local, 1, &remote, 1, 0) != 32)
		return snap_fail(ctx, -errno, "pid %d: cannot write its stack at 0x%llx: %m", t->pid,
				 (unsigned long long)at);
	*addr = at;
	return 0;
}

int infect(struct snap_ctx *ctx, struct dump_task *t)
{
	struct parasite_ctl *p = calloc(1, sizeof(*p));
	size_t blob_size = blob_map_size(&parasite_blob);
	size_t shared_off = blob_size;
	char saved[32];
	uint64_t name_addr;
	long fd = -1, ret;
	int memfd = -1, r;
	uint64_t mask = ~0ull;
	struct arch_regs regs;

	if (!p)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	t->parasite = p;
	p->sock = -1;
	p->remote_sock = -1;
	p->regs = task_leader(t)->state.regs;
	/* [blob | shared | daemon stack | thread stack] */
	p->size = page_align(shared_off + sizeof(struct parasite_shared)) + 2 * PARASITE_STACK_SIZE;
	r = find_syscall_ip(ctx, t, &p->syscall_ip);
	if (r)
		return r;

	r = with_scratch_name(ctx, t, &name_addr, saved, false);
	if (r)
		return r;
	r = remote_call(ctx, t, SYS_memfd_create, name_addr, MFD_CLOEXEC, 0, 0, 0, 0, &fd);
	if (!r && fd < 0)
		r = snap_fail(ctx, (int)fd, "pid %d: memfd_create in the task failed: %s", t->pid, strerror((int)-fd));
	if (with_scratch_name(ctx, t, &name_addr, saved, true) && !r)
		r = -EIO;
	if (r)
		return r;

	r = pidfd_getfd_of(ctx, t->pid, (int)fd, &memfd);
	if (r)
		goto close_remote;
	if (ftruncate(memfd, (off_t)p->size)) {
		r = snap_fail(ctx, -errno, "pid %d: cannot size the parasite memfd: %m", t->pid);
		goto close_remote;
	}
	r = remote_call(ctx, t, SYS_mmap, 0, p->size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED, (uint64_t)fd, 0,
			&ret);
	if (r)
		goto close_remote;
	if (ret < 0 && ret > -4096) {
		r = snap_fail(ctx, (int)ret, "pid %d: mmap of the parasite in the task failed: %s", t->pid,
			      strerror((int)-ret));
		goto close_remote;
	}
	p->remote_base = (uint64_t)ret;
	p->local = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (p->local == MAP_FAILED) {
		p->local = NULL;
		r = snap_fail(ctx, -errno, "pid %d: cannot map the parasite area here: %m", t->pid);
		goto close_remote;
	}
	blob_relocate(&parasite_blob, p->local, p->remote_base);
	p->sh = (struct parasite_shared *)(p->local + shared_off);

close_remote:
	if (fd >= 0) {
		long ignored;

		if (remote_call(ctx, t, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, &ignored) && !r)
			r = -EIO;
	}
	if (memfd >= 0)
		close(memfd);
	if (r)
		return r;

	/* The command socket: created in the task, our end taken over with pidfd_getfd. */
	r = remote_call(ctx, t, SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
			p->remote_base + shared_off + offsetof(struct parasite_shared, socks), 0, 0, &ret);
	if (!r && ret)
		r = snap_fail(ctx, (int)ret, "pid %d: socketpair in the task failed: %s", t->pid, strerror((int)-ret));
	if (r)
		return r;
	p->remote_sock = p->sh->socks[0];
	r = pidfd_getfd_of(ctx, t->pid, p->sh->socks[1], &p->sock);
	if (!r) {
		long ignored;

		r = remote_call(ctx, t, SYS_close, (uint64_t)p->sh->socks[1], 0, 0, 0, 0, 0, &ignored);
	}
	if (r)
		return r;
	p->sh->sock_fd = p->sh->socks[0];
	p->sh->mode = PARASITE_MODE_DAEMON;

	/* Nothing but SIGKILL may reach the task while the parasite runs. */
	if (ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(mask), &mask))
		return snap_fail(ctx, -errno, "pid %d: cannot block signals: %m", t->pid);
	regs = p->regs;
	arch_prepare_call(&regs, p->remote_base + PARASITE_BLOB_OFF_parasite_entry,
			  p->remote_base + p->size - PARASITE_STACK_SIZE, p->remote_base + shared_off);
	r = arch_set_regs(t->pid, &regs);
	if (r)
		return snap_fail(ctx, r, "pid %d: cannot set registers to start the parasite: %s", t->pid,
				 strerror(-r));
	if (ptrace(PTRACE_CONT, t->pid, 0, 0))
		return snap_fail(ctx, -errno, "pid %d: cannot start the parasite: %m", t->pid);
	p->running = true;
	p->remote_sock = -1;
	return 0;
}

const struct parasite_shared *parasite_shared(const struct dump_task *t)
{
	return t->parasite->sh;
}

/* A died or trapped parasite shows as a task state change; report it in words. */
static int parasite_lost(struct snap_ctx *ctx, struct dump_task *t, const char *what)
{
	char why[96];
	int status;

	if (waitpid(t->pid, &status, WNOHANG | __WALL) == t->pid) {
		t->parasite->running = false;
		if (!WIFSTOPPED(status))
			task_leader(t)->seized = false;
		return snap_fail(ctx, -ECHILD, "pid %d: the parasite %s during %s", t->pid,
				 ptrace_status_str(status, why, sizeof(why)), what);
	}
	return snap_fail(ctx, -ETIMEDOUT, "pid %d: the parasite did not answer %s", t->pid, what);
}

int parasite_run(struct snap_ctx *ctx, struct dump_task *t, enum parasite_cmd cmd)
{
	struct parasite_ctl *p = t->parasite;
	struct parasite_cmd_msg msg = { .cmd = cmd };
	struct parasite_reply_msg reply;
	struct pollfd pfd = { .fd = p->sock, .events = POLLIN };
	ssize_t n;

	if (send(p->sock, &msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg))
		return parasite_lost(ctx, t, "a command");
	/* Poll in slices so a dead parasite is noticed quickly. */
	for (int waited = 0; waited < PARASITE_TIMEOUT_MS; waited += 100) {
		int pr = poll(&pfd, 1, 100);

		if (pr > 0)
			break;
		if (pr < 0 && errno != EINTR)
			return snap_fail(ctx, -errno, "pid %d: poll on the parasite socket: %m", t->pid);
		if (waitpid(t->pid, NULL, WNOHANG | WNOWAIT | __WALL) == t->pid)
			return parasite_lost(ctx, t, "a command");
	}
	n = recv(p->sock, &reply, sizeof(reply), MSG_DONTWAIT);
	if (n != sizeof(reply) || reply.cmd != cmd)
		return parasite_lost(ctx, t, "a command");
	if (reply.ret)
		return snap_fail(ctx, reply.ret, "pid %d: parasite command %d failed: %s", t->pid, cmd,
				 strerror(-reply.ret));
	return 0;
}

int parasite_run_thread(struct snap_ctx *ctx, struct dump_task *t, struct dump_thread *th)
{
	struct parasite_ctl *p = t->parasite;
	struct parasite_thread_args *ta = &p->sh->thread;
	uint64_t all = ~0ull, ta_remote = p->remote_base + (uint64_t)((uint8_t *)ta - p->local);
	struct arch_regs regs = th->state.regs;
	char why[96];
	int status, r, rr;

	memset(ta, 0, sizeof(*ta));
	ta->mode = PARASITE_MODE_THREAD;
	ta->info.ret = -EINPROGRESS;
	if (ptrace(PTRACE_SETSIGMASK, th->tid, sizeof(all), &all))
		return snap_fail(ctx, -errno, "pid %d: tid %d: cannot block signals: %m", t->pid, th->tid);
	arch_prepare_call(&regs, p->remote_base + PARASITE_BLOB_OFF_parasite_entry, p->remote_base + p->size,
			  ta_remote);
	r = arch_set_regs(th->tid, &regs);
	if (r)
		return snap_fail(ctx, r, "pid %d: tid %d: cannot set registers: %s", t->pid, th->tid, strerror(-r));
	if (ptrace(PTRACE_CONT, th->tid, 0, 0))
		return snap_fail(ctx, -errno, "pid %d: tid %d: cannot run the parasite: %m", t->pid, th->tid);
	th->stopped = false;
	r = ptrace_wait(th->tid, &status);
	if (r)
		return snap_fail(ctx, r, "pid %d: tid %d: wait for the parasite: %s", t->pid, th->tid, strerror(-r));
	if (!WIFSTOPPED(status)) {
		th->seized = false;
		return snap_fail(ctx, -ECHILD, "pid %d: tid %d %s in the parasite", t->pid, th->tid,
				 ptrace_status_str(status, why, sizeof(why)));
	}
	th->stopped = true;
	if (WSTOPSIG(status) != SIGTRAP)
		r = snap_fail(ctx, -ECHILD, "pid %d: tid %d: the parasite %s", t->pid, th->tid,
			      ptrace_status_str(status, why, sizeof(why)));
	else if (ta->info.ret)
		r = snap_fail(ctx, ta->info.ret, "pid %d: tid %d: the parasite failed: %s", t->pid, th->tid,
			      strerror(-ta->info.ret));
	else
		th->info = ta->info;
	/* Back as it was, whatever happened. */
	rr = arch_set_regs(th->tid, &th->state.regs);
	if (!rr && ptrace(PTRACE_SETSIGMASK, th->tid, sizeof(th->sigmask), &th->sigmask))
		rr = -errno;
	if (rr && !r)
		r = snap_fail(ctx, rr, "pid %d: tid %d: cannot put registers back: %s", t->pid, th->tid, strerror(-rr));
	return r;
}

int cure(struct snap_ctx *ctx, struct dump_task *t)
{
	struct parasite_ctl *p = t->parasite;
	int r = 0, status;
	long ret;

	if (!p)
		return 0;
	if (p->running) {
		r = parasite_run(ctx, t, PARASITE_CMD_FINI);
		if (!r) {
			r = ptrace_wait(t->pid, &status);
			if (!r && !(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP))
				r = -ECHILD;
			if (r)
				r = snap_fail(ctx, r, "pid %d: the parasite did not stop after finishing", t->pid);
		}
		if (r) {
			/* Stop it by force; its registers are ours to reset anyway. */
			ptrace(PTRACE_INTERRUPT, t->pid, 0, 0);
			ptrace_wait(t->pid, &status);
		}
		p->running = false;
	}
	if (p->remote_sock >= 0 && task_leader(t)->seized) {
		if (remote_call(ctx, t, SYS_close, (uint64_t)p->remote_sock, 0, 0, 0, 0, 0, &ret) && !r)
			r = -EIO;
		p->remote_sock = -1;
	}
	if (p->remote_base && task_leader(t)->seized) {
		int ur = remote_call(ctx, t, SYS_munmap, p->remote_base, p->size, 0, 0, 0, 0, &ret);

		if (!ur && ret)
			ur = snap_fail(ctx, (int)ret, "pid %d: cannot unmap the parasite: %s", t->pid,
				       strerror((int)-ret));
		if (ur && !r)
			r = ur;
		p->remote_base = 0;
	}
	if (task_leader(t)->seized) {
		struct dump_thread *leader = task_leader(t);
		int sr = arch_set_thread(ctx, t->pid, &leader->state);

		if (ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(leader->sigmask), &leader->sigmask) && !sr)
			sr = snap_fail(ctx, -errno, "pid %d: cannot restore the signal mask: %m", t->pid);
		if (sr && !r)
			r = sr;
	}
	if (p->local)
		munmap(p->local, p->size);
	if (p->sock >= 0)
		close(p->sock);
	free(p);
	t->parasite = NULL;
	return r;
}
