/*
 * The freestanding runtime shared by the parasite and the restorer: system
 * call wrappers, memory and string helpers, and a tiny formatter for
 * messages sent back to the engine. No libc, no global state.
 */
#ifndef SNAP_BLOB_RT_H
#define SNAP_BLOB_RT_H

#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>

#include "blob-arch.h"

#define sys0(nr)		   arch_syscall6(nr, 0, 0, 0, 0, 0, 0)
#define sys1(nr, a)		   arch_syscall6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b)		   arch_syscall6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c)	   arch_syscall6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d)	   arch_syscall6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(nr, a, b, c, d, e)	   arch_syscall6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define sys6(nr, a, b, c, d, e, f) arch_syscall6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static inline long sys_write(int fd, const void *buf, size_t len)
{
	return sys3(__NR_write, fd, buf, len);
}
static inline long sys_close(int fd)
{
	return sys1(__NR_close, fd);
}
static inline long sys_munmap(uint64_t addr, uint64_t len)
{
	return sys2(__NR_munmap, addr, len);
}
static inline long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, long flags, uint64_t new_addr)
{
	return sys5(__NR_mremap, old, old_len, new_len, flags, new_addr);
}
static inline long sys_mprotect(uint64_t addr, uint64_t len, long prot)
{
	return sys3(__NR_mprotect, addr, len, prot);
}
static inline long sys_madvise(uint64_t addr, uint64_t len, long advice)
{
	return sys3(__NR_madvise, addr, len, advice);
}
static inline long sys_prctl(long op, long a, long b, long c, long d)
{
	return sys5(__NR_prctl, op, a, b, c, d);
}
static inline long sys_rt_sigaction(int sig, const void *act, void *old)
{
	return sys4(__NR_rt_sigaction, sig, act, old, 8);
}
static inline long sys_sigaltstack(const void *ss, void *old)
{
	return sys2(__NR_sigaltstack, ss, old);
}
static inline long sys_recv(int fd, void *buf, size_t len)
{
	return sys6(__NR_recvfrom, fd, buf, len, 0, 0, 0);
}
static inline long sys_send(int fd, const void *buf, size_t len)
{
	return sys6(__NR_sendto, fd, buf, len, 0, 0, 0);
}
static inline __attribute__((noreturn)) void sys_exit_group(int code)
{
	for (;;)
		sys1(__NR_exit_group, code);
}

/*
 * Stops the task for its tracer with a SIGTRAP it sends itself. Not a
 * trap instruction: a fault forced through a blocked mask resets the
 * task's SIGTRAP handler to SIG_DFL, and on some CPUs the trap leaves the
 * instruction pointer on itself. A sent signal waits for the mask, so
 * SIGTRAP is unblocked first; the engine suppresses it and puts the
 * mask back (cure, or rt_sigreturn's frame).
 */
void rt_stop_for_tracer(void);

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/*
 * Formats into @buf (always NUL-terminated): %s, %d, %u, %x, %lx, %lu, %ld,
 * %p. Enough for error messages; returns the length.
 */
size_t rt_format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
