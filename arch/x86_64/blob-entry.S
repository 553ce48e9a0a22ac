/* Entry of both blobs: align the stack, run blob_main(arg), then stop for the tracer. */
	.text
	.globl	blob_start
	.type	blob_start, @function
blob_start:
	andq	$-16, %rsp
	call	blob_main
	/* The engine (cure) waits for this SIGTRAP stop and then resets every register. */
	call	rt_stop_for_tracer
	/* Never falls through: resumed without new registers, it traps again. */
1:	int3
	jmp	1b
	.size	blob_start, . - blob_start
	.section .note.GNU-stack, "", @progbits
