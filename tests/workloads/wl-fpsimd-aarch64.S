/* wl-fpsimd's spinner: holds known FP/SIMD, SVE, FPCR, FPSR and callee-saved registers while it waits. */
#include <asm/unistd.h>

#include "wl-fpsimd-aarch64.h"

/*
 * Register use while spinning:
 *   x9            struct fp_ctl *
 *   x15           bytes compared beyond ST_CORE: non-zero while z, p and ffr are held
 *   x19-x28, v0-v31 (z0-z31, p0-p15, ffr while x15 != 0), FPCR, FPSR: held
 *   x0-x8, x10-x14: scratch (the kernel preserves everything but x0 across svc)
 * Nothing else touches the held registers: no calls into C, no libc.
 * SVE instructions run only when ctl->sve says the CPU has SVE.
 */

#define AT_FDCWD -100

	.arch	armv8.2-a+sve
	.text
	.globl	wl_fpsimd_spin
	.type	wl_fpsimd_spin, %function
wl_fpsimd_spin:
	stp	x29, x30, [sp, #-160]!
	mov	x29, sp
	stp	x19, x20, [sp, #16]
	stp	x21, x22, [sp, #32]
	stp	x23, x24, [sp, #48]
	stp	x25, x26, [sp, #64]
	stp	x27, x28, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mov	x9, x0
	mov	x15, #0

	add	x10, x9, #(CTL_EXP + ST_Q)
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ldr	q\n, [x10, #(\n * 16)]
	.endr
	ldr	x10, [x9, #(CTL_EXP + ST_FPCR)]
	msr	fpcr, x10
	ldr	x10, [x9, #(CTL_EXP + ST_FPSR)]
	msr	fpsr, x10
	add	x10, x9, #(CTL_EXP + ST_GPR)
	ldp	x19, x20, [x10, #0]
	ldp	x21, x22, [x10, #16]
	ldp	x23, x24, [x10, #32]
	ldp	x25, x26, [x10, #48]
	ldp	x27, x28, [x10, #64]

	/* Only now is the state complete, so only now may the harness see ready. */
	bl	.Lcheck
	cbnz	x0, .Lout
	mov	x0, #AT_FDCWD
	ldr	x1, [x9, #CTL_READY_TMP]
	mov	x2, #AT_FDCWD
	ldr	x3, [x9, #CTL_READY]
	mov	x4, #0
	mov	x8, #__NR_renameat2
	svc	#0
	mov	x10, x0
	mov	x0, #FP_RET_READY
	cbnz	x10, .Lout

	ldr	x10, [x9, #CTL_WAIT]
	cmp	x10, #FP_WAIT_SLEEP
	b.eq	.Lsleep

	/* Busy: from here on no system call, so the SVE-only bits stay. */
	ldr	x10, [x9, #CTL_SVE]
	cbz	x10, .Lbusy
	bl	.Lload_sve
	ldr	x15, [x9, #CTL_SVE_LEN]
.Lbusy:
	bl	.Lcheck
	cbnz	x0, .Lout
	ldr	x10, [x9, #CTL_ITER]
	add	x10, x10, #1
	str	x10, [x9, #CTL_ITER]
	ldr	x10, [x9, #CTL_FLAG]
	ldrb	w10, [x10]
	cbnz	w10, .Lend
	mrs	x10, cntvct_el0
	ldr	x11, [x9, #CTL_DEADLINE]
	cmp	x10, x11
	b.hs	.Ltimeout
	yield
	b	.Lbusy

.Lsleep:
	bl	.Lcheck
	cbnz	x0, .Lout
	ldr	x10, [x9, #CTL_ITER]
	add	x10, x10, #1
	str	x10, [x9, #CTL_ITER]
	mov	x0, #AT_FDCWD
	ldr	x1, [x9, #CTL_GO_PATH]
	mov	x2, #0				/* F_OK */
	mov	x3, #0
	mov	x8, #__NR_faccessat
	svc	#0
	cbz	x0, .Lend
	mrs	x10, cntvct_el0
	ldr	x11, [x9, #CTL_DEADLINE]
	cmp	x10, x11
	b.hs	.Ltimeout
	mov	x0, #CTL_SLEEP_TS
	add	x0, x9, x0
	mov	x1, #0
	mov	x8, #__NR_nanosleep
	svc	#0
	b	.Lsleep

.Lend:
	bl	.Lcheck
	b	.Lout
.Ltimeout:
	mov	x0, #FP_RET_TIMEOUT

.Lout:
	/* Hand C the default rounding and no sticky exception flags. */
	msr	fpcr, xzr
	msr	fpsr, xzr
	ldp	d14, d15, [sp, #144]
	ldp	d12, d13, [sp, #128]
	ldp	d10, d11, [sp, #112]
	ldp	d8, d9, [sp, #96]
	ldp	x27, x28, [sp, #80]
	ldp	x25, x26, [sp, #64]
	ldp	x23, x24, [sp, #48]
	ldp	x21, x22, [sp, #32]
	ldp	x19, x20, [sp, #16]
	ldp	x29, x30, [sp], #160
	ret

/* z0-z31 from exp (their low halves are exp's q0-q31), then ffr by way of p0, then p0-p15. */
.Lload_sve:
	ldr	x10, [x9, #CTL_EXP_Z]
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ldr	z\n, [x10, #\n, mul vl]
	.endr
	ldr	x10, [x9, #CTL_EXP_FFR]
	ldr	p0, [x10]
	wrffr	p0.b
	ldr	x10, [x9, #CTL_EXP_P]
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	ldr	p\n, [x10, #\n, mul vl]
	.endr
	ret

/*
 * Stores every held register into ctl->snap (stores leave registers as they
 * are; p0 is put back after ffr went through it) and compares snap with exp
 * over ST_CORE + x15 bytes: x0 = FP_RET_OK if equal, else FP_RET_MISMATCH.
 * Clobbers x0, x10-x14.
 */
.Lcheck:
	mov	x10, #CTL_SNAP
	add	x10, x9, x10
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	str	q\n, [x10, #(ST_Q + \n * 16)]
	.endr
	mrs	x11, fpcr
	str	x11, [x10, #ST_FPCR]
	mrs	x11, fpsr
	str	x11, [x10, #ST_FPSR]
	add	x11, x10, #ST_GPR
	stp	x19, x20, [x11, #0]
	stp	x21, x22, [x11, #16]
	stp	x23, x24, [x11, #32]
	stp	x25, x26, [x11, #48]
	stp	x27, x28, [x11, #64]
	mov	x12, #ST_CORE
	cbz	x15, 1f
	ldr	x11, [x9, #CTL_SNAP_Z]
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	str	z\n, [x11, #\n, mul vl]
	.endr
	ldr	x11, [x9, #CTL_SNAP_P]
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	str	p\n, [x11, #\n, mul vl]
	.endr
	rdffr	p0.b
	ldr	x11, [x9, #CTL_SNAP_FFR]
	str	p0, [x11]
	ldr	x11, [x9, #CTL_SNAP_P]
	ldr	p0, [x11]
	add	x12, x12, x15
1:	add	x10, x9, #CTL_EXP
	mov	x11, #CTL_SNAP
	add	x11, x9, x11
2:	ldr	x13, [x10], #8
	ldr	x14, [x11], #8
	cmp	x13, x14
	b.ne	3f
	subs	x12, x12, #8
	b.ne	2b
	mov	x0, #FP_RET_OK
	ret
3:	mov	x0, #FP_RET_MISMATCH
	ret
	.size	wl_fpsimd_spin, . - wl_fpsimd_spin

	.section .note.GNU-stack, "", %progbits
