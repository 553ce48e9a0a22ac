/* x86_64 pieces of the blobs' freestanding runtime: syscalls, TLS, the final sigreturn. */
#ifndef SNAP_BLOB_ARCH_H
#define SNAP_BLOB_ARCH_H

#include <stdint.h>
#include <asm/prctl.h>
#include <asm/unistd.h>

static inline long arch_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

/* Thread pointer registers; values come from arch_build_sigframe(). */
static inline long arch_blob_set_tls(const uint64_t tls[2])
{
	long r = arch_syscall6(__NR_arch_prctl, ARCH_SET_FS, (long)tls[0], 0, 0, 0, 0);

	if (r)
		return r;
	return arch_syscall6(__NR_arch_prctl, ARCH_SET_GS, (long)tls[1], 0, 0, 0, 0);
}

/*
 * clone3() for a thread of the restorer: the parent gets the new tid (or
 * -errno); the child starts on the stack clone_args gives it, calls
 * @fn(@arg) and never returns. Only registers the kernel keeps across the
 * call carry fn and arg into the child.
 */
static inline long arch_blob_clone_thread(void *clone_args, unsigned long size, void (*fn)(void *), void *arg)
{
	register long r12 __asm__("r12") = (long)fn;
	register long r13 __asm__("r13") = (long)arg;
	long ret;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "mov %%r13, %%rdi\n\t"
			 "call *%%r12\n\t"
			 "ud2\n\t"
			 "1:\n\t"
			 : "=a"(ret)
			 : "a"(__NR_clone3), "D"(clone_args), "S"(size), "r"(r12), "r"(r13)
			 : "rcx", "r11", "memory");
	return ret;
}

/* Enters the saved registers: the frame at @sp was built by arch_build_sigframe(). */
__attribute__((noreturn)) static inline void arch_blob_sigreturn(uint64_t sp)
{
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "mov %1, %%eax\n\t"
			 "syscall\n\t"
			 :
			 : "r"(sp), "i"(__NR_rt_sigreturn)
			 : "memory");
	__builtin_unreachable();
}

#endif
