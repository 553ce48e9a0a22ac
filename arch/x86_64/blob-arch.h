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
