/* ptrace plumbing: waiting for stops and running injected system calls. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <elf.h>

#include "ptrace.h"

int ptrace_wait(pid_t pid, int *ret_status)
{
	for (;;) {
		pid_t r = waitpid(pid, ret_status, __WALL);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

const char *ptrace_status_str(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WIFSTOPPED(status))
		snprintf(buf, size, "stopped with signal %d, event %d", WSTOPSIG(status), status >> 16);
	else
		snprintf(buf, size, "changed state 0x%x", status);
	return buf;
}

/* Resumes to the next syscall stop; other stops are errors (signals are blocked meanwhile). */
static int step_to_syscall_stop(struct snap_ctx *ctx, pid_t tid, const char *what)
{
	char why[96];
	int status, r;

	if (ptrace(PTRACE_SYSCALL, tid, 0, 0))
		return snap_fail(ctx, -errno, "tid %d: cannot resume for %s: %m", tid, what);
	r = ptrace_wait(tid, &status);
	if (r)
		return snap_fail(ctx, r, "tid %d: wait during %s: %s", tid, what, strerror(-r));
	if (!WIFSTOPPED(status) || !ptrace_is_syscall_stop(status))
		return snap_fail(ctx, -ECHILD, "tid %d: %s during %s", tid, ptrace_status_str(status, why, sizeof(why)),
				 what);
	return 0;
}

int ptrace_remote_syscall(struct snap_ctx *ctx, pid_t tid, const struct arch_regs *base, uint64_t syscall_ip, long nr,
			  const uint64_t args[6], long *ret)
{
	struct arch_regs regs = *base;
	int r;

	arch_prepare_syscall(&regs, syscall_ip, nr, args);
	r = arch_set_regs(tid, &regs);
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot set registers for syscall %ld: %s", tid, nr, strerror(-r));
	r = step_to_syscall_stop(ctx, tid, "an injected syscall (entry)");
	if (r)
		return r;
	r = step_to_syscall_stop(ctx, tid, "an injected syscall (exit)");
	if (r)
		return r;
	r = arch_get_regs(tid, &regs);
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read registers after syscall %ld: %s", tid, nr, strerror(-r));
	*ret = arch_syscall_result(&regs);
	return 0;
}

uint64_t vdso_self_base(void)
{
	return getauxval(AT_SYSINFO_EHDR);
}

long vdso_syscall_offset(void)
{
	const uint8_t *base = (const uint8_t *)vdso_self_base();
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;

	if (!base)
		return -ENOENT;
	/* Only executable segments: a match in data would be no instruction. */
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff + (size_t)i * eh->e_phentsize);

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		for (uint64_t off = ph->p_vaddr; off + arch_syscall_insn_len <= ph->p_vaddr + ph->p_filesz;
		     off += arch_insn_align)
			if (!memcmp(base + off, arch_syscall_insn, arch_syscall_insn_len))
				return (long)off;
	}
	return -ENOENT;
}
