/* ptrace plumbing shared by dump and restore: stops, waits and injected system calls. */
#ifndef SNAP_PTRACE_H
#define SNAP_PTRACE_H

#include <stdint.h>
#include <sys/types.h>

#include "arch.h"
#include "ctx.h"

/* waitpid(@pid, __WALL) retried on EINTR; returns 0 with *ret_status, or -errno. */
int ptrace_wait(pid_t pid, int *ret_status);

/* True if @status is a syscall-entry/exit stop (PTRACE_O_TRACESYSGOOD). */
static inline int ptrace_is_syscall_stop(int status)
{
	return (status >> 8) == (0x80 | 5 /* SIGTRAP */);
}

/* Describes a wait status in words for error messages. */
const char *ptrace_status_str(int status, char *buf, size_t size);

/*
 * Runs system call @nr in stopped thread @tid: its registers become @base
 * with the call set up at @syscall_ip (an address holding a system call
 * instruction), it is stepped through syscall entry and exit, and *ret
 * gets the call's return value. The registers are left as the call left
 * them; the caller restores what it wants.
 */
int ptrace_remote_syscall(struct snap_ctx *ctx, pid_t tid, const struct arch_regs *base, uint64_t syscall_ip, long nr,
			  const uint64_t args[6], long *ret);

/* Finds a system call instruction in this process's vDSO; returns its offset or -ENOENT. */
long vdso_syscall_offset(void);

/* Address and size of this process's vDSO (AT_SYSINFO_EHDR), 0 if none. */
uint64_t vdso_self_base(void);

#endif
