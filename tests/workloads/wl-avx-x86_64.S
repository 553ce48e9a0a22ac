/* wl-avx's spinner: holds known vector, mask, x87, MXCSR and callee-saved registers while polling for go. */
#include <sys/syscall.h>

#include "wl-avx-x86_64.h"

/*
 * Register use while spinning:
 *   r8            struct avx_ctl *
 *   r9            poll counter
 *   rbx rbp r12-r15, every vector and mask register, x87, MXCSR: held
 *   rax rcx rdx rsi rdi r10 r11: scratch (syscall clobbers rcx and r11)
 * Nothing else touches the held registers: no calls into C, no libc.
 */

	.text
	.globl	wl_avx_spin
	.type	wl_avx_spin, @function
wl_avx_spin:
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rdi, %r8
	xor	%r9d, %r9d
	cld

	cmpq	$AVX_MODE_AVX512, CTL_MODE(%r8)
	jne	1f
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqu64 (CTL_EXP + ST_VEC + \n * 64)(%r8), %zmm\n
	.endr
	.irp	n, 0,1,2,3,4,5,6,7
	kmovw	(CTL_EXP + ST_K + \n * 8)(%r8), %k\n
	.endr
	jmp	3f
1:	cmpq	$AVX_MODE_AVX, CTL_MODE(%r8)
	jne	2f
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqu	(CTL_EXP + ST_VEC + \n * 64)(%r8), %ymm\n
	.endr
	jmp	3f
2:	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqu	(CTL_EXP + ST_VEC + \n * 64)(%r8), %xmm\n
	.endr
3:	ldmxcsr	(CTL_EXP + ST_MXCSR)(%r8)
	fninit
	fldcw	(CTL_EXP + ST_FCW)(%r8)
	.irp	n, 0,1,2,3,4,5,6,7
	fldl	(CTL_X87_IN + \n * 8)(%r8)
	.endr
	mov	(CTL_EXP + ST_GPR + 0)(%r8), %rbx
	mov	(CTL_EXP + ST_GPR + 8)(%r8), %rbp
	mov	(CTL_EXP + ST_GPR + 16)(%r8), %r12
	mov	(CTL_EXP + ST_GPR + 24)(%r8), %r13
	mov	(CTL_EXP + ST_GPR + 32)(%r8), %r14
	mov	(CTL_EXP + ST_GPR + 40)(%r8), %r15

	/* Only now is the state complete, so only now may the harness see ready. */
	call	.Lcheck
	test	%rax, %rax
	jnz	.Lout
	mov	$SYS_rename, %eax
	mov	CTL_READY_TMP(%r8), %rdi
	mov	CTL_READY(%r8), %rsi
	syscall
	test	%rax, %rax
	mov	$AVX_RET_READY, %eax
	jnz	.Lout

.Lpoll:
	call	.Lcheck
	test	%rax, %rax
	jnz	.Lout
	inc	%r9
	mov	%r9, CTL_ITER(%r8)
	mov	$SYS_access, %eax
	mov	CTL_GO_PATH(%r8), %rdi
	xor	%esi, %esi			/* F_OK */
	syscall
	test	%rax, %rax
	jz	.Lgo

	/* Give up after limit_ns of small clock steps (a restore may make the clock jump). */
	mov	$SYS_clock_gettime, %eax
	mov	$1, %edi			/* CLOCK_MONOTONIC */
	lea	CTL_NOW_TS(%r8), %rsi
	syscall
	mov	CTL_NOW_TS(%r8), %rax
	imul	$1000000000, %rax, %rax
	add	(CTL_NOW_TS + 8)(%r8), %rax
	mov	%rax, %rdx
	sub	CTL_PREV_NS(%r8), %rdx
	mov	%rax, CTL_PREV_NS(%r8)
	cmp	$1000000000, %rdx		/* unsigned: a step back is huge too */
	jae	4f
	add	%rdx, CTL_ELAPSED_NS(%r8)
4:	mov	CTL_ELAPSED_NS(%r8), %rax
	cmp	CTL_LIMIT_NS(%r8), %rax
	jae	.Ltimeout

	cmpq	$AVX_WAIT_SLEEP, CTL_WAIT(%r8)
	je	.Lsleep
	mov	CTL_DELAY(%r8), %rcx
5:	pause
	dec	%rcx
	jnz	5b
	jmp	.Lpoll
.Lsleep:
	mov	$SYS_nanosleep, %eax
	lea	CTL_SLEEP_TS(%r8), %rdi
	xor	%esi, %esi
	syscall
	jmp	.Lpoll

.Lgo:
	call	.Lcheck
	jmp	.Lout
.Ltimeout:
	mov	$AVX_RET_TIMEOUT, %eax

.Lout:
	/* Hand C a default FPU: an x87 stack full of our values would break it. */
	mov	%rax, %rdx
	fninit
	sub	$8, %rsp
	movl	$0x1f80, (%rsp)
	ldmxcsr	(%rsp)
	add	$8, %rsp
	cmpq	$AVX_MODE_SSE, CTL_MODE(%r8)
	je	6f
	vzeroupper
6:	mov	%rdx, %rax
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret

/*
 * Stores every held register into ctl->snap (stores leave registers as they
 * are; FXSAVE too) and compares snap with exp: rax = 0 if equal, else
 * AVX_RET_MISMATCH. Clobbers rax, rcx, rsi, rdi.
 */
.Lcheck:
	cmpq	$AVX_MODE_AVX512, CTL_MODE(%r8)
	jne	1f
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqu64 %zmm\n, (CTL_SNAP + ST_VEC + \n * 64)(%r8)
	.endr
	.irp	n, 0,1,2,3,4,5,6,7
	kmovw	%k\n, (CTL_SNAP + ST_K + \n * 8)(%r8)
	.endr
	jmp	3f
1:	cmpq	$AVX_MODE_AVX, CTL_MODE(%r8)
	jne	2f
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqu	%ymm\n, (CTL_SNAP + ST_VEC + \n * 64)(%r8)
	.endr
	jmp	3f
2:	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqu	%xmm\n, (CTL_SNAP + ST_VEC + \n * 64)(%r8)
	.endr
3:	stmxcsr	(CTL_SNAP + ST_MXCSR)(%r8)
	fxsave	CTL_FXBUF(%r8)
	movzwl	(CTL_FXBUF + 0)(%r8), %eax
	mov	%ax, (CTL_SNAP + ST_FCW)(%r8)
	movzwl	(CTL_FXBUF + 2)(%r8), %eax
	mov	%ax, (CTL_SNAP + ST_FSW)(%r8)
	movzbl	(CTL_FXBUF + 4)(%r8), %eax
	mov	%al, (CTL_SNAP + ST_FTW)(%r8)
	/* ST(i) sits at 32 + 16 i in the FXSAVE area; its upper 6 bytes are reserved. */
	.irp	n, 0,1,2,3,4,5,6,7
	mov	(CTL_FXBUF + 32 + \n * 16)(%r8), %rax
	mov	%rax, (CTL_SNAP + ST_ST + \n * 16)(%r8)
	movzwl	(CTL_FXBUF + 40 + \n * 16)(%r8), %eax
	mov	%ax, (CTL_SNAP + ST_ST + 8 + \n * 16)(%r8)
	.endr
	mov	%rbx, (CTL_SNAP + ST_GPR + 0)(%r8)
	mov	%rbp, (CTL_SNAP + ST_GPR + 8)(%r8)
	mov	%r12, (CTL_SNAP + ST_GPR + 16)(%r8)
	mov	%r13, (CTL_SNAP + ST_GPR + 24)(%r8)
	mov	%r14, (CTL_SNAP + ST_GPR + 32)(%r8)
	mov	%r15, (CTL_SNAP + ST_GPR + 40)(%r8)
	lea	CTL_EXP(%r8), %rsi
	lea	CTL_SNAP(%r8), %rdi
	mov	$ST_SIZE, %ecx
	repe cmpsb
	setne	%al
	movzbl	%al, %eax
	ret
	.size	wl_avx_spin, . - wl_avx_spin

	.section .note.GNU-stack, "", @progbits
