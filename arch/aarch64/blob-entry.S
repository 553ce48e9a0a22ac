/* Entry of both blobs: align the stack, run blob_main(arg), then stop for the tracer. */
	.text
	.globl	blob_start
	.type	blob_start, %function
blob_start:
	mov	x9, sp
	and	sp, x9, #-16
	bl	blob_main
	/* The engine (cure) waits for this SIGTRAP stop and then resets every register. */
	bl	rt_stop_for_tracer
	/* Never falls through: resumed without new registers, it traps again (pc stays on brk). */
1:	brk	#0
	b	1b
	.size	blob_start, . - blob_start
	.section .note.GNU-stack, "", %progbits
