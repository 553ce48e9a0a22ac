/* aarch64 pieces of the blobs' freestanding runtime: syscalls, TLS, the final sigreturn. */
#ifndef SNAP_BLOB_ARCH_H
#define SNAP_BLOB_ARCH_H

#include <stdint.h>
#include <asm/unistd.h>

/* The kernel preserves every register but x0 across svc. */
static inline long arch_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a1;
	register long x1 __asm__("x1") = a2;
	register long x2 __asm__("x2") = a3;
	register long x3 __asm__("x3") = a4;
	register long x4 __asm__("x4") = a5;
	register long x5 __asm__("x5") = a6;

	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
	return x0;
}

/* The thread pointer is a user-writable register here; values come from arch_build_sigframe(). */
static inline long arch_blob_set_tls(const uint64_t tls[2])
{
	__asm__ volatile("msr tpidr_el0, %0" : : "r"(tls[0]) : "memory");
	return 0;
}

/*
 * clone3() for a thread of the restorer: the parent gets the new tid (or
 * -errno); the child starts on the stack clone_args gives it, calls
 * @fn(@arg) and never returns. Only registers the kernel keeps across the
 * call carry fn and arg into the child.
 */
static inline long arch_blob_clone_thread(void *clone_args, unsigned long size, void (*fn)(void *), void *arg)
{
	register long x8 __asm__("x8") = __NR_clone3;
	register long x0 __asm__("x0") = (long)clone_args;
	register long x1 __asm__("x1") = (long)size;
	register long x19 __asm__("x19") = (long)fn;
	register long x20 __asm__("x20") = (long)arg;

	__asm__ volatile("svc #0\n\t"
			 "cbnz x0, 1f\n\t"
			 "mov x0, x20\n\t"
			 "blr x19\n\t"
			 "brk #0\n\t"
			 "1:\n\t"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x19), "r"(x20)
			 : "memory");
	return x0;
}

/* Enters the saved registers: the frame at @sp was built by arch_build_sigframe(). */
__attribute__((noreturn)) static inline void arch_blob_sigreturn(uint64_t sp)
{
	__asm__ volatile("mov sp, %0\n\t"
			 "mov x8, %1\n\t"
			 "svc #0\n\t"
			 :
			 : "r"(sp), "i"(__NR_rt_sigreturn)
			 : "memory");
	__builtin_unreachable();
}

#endif
