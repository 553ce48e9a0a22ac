/* Entry of both blobs: align the stack, run blob_main(arg), then trap to the tracer. */
	.text
	.globl	blob_start
	.type	blob_start, @function
blob_start:
	andq	$-16, %rsp
	call	blob_main
	int3
1:	jmp	1b
	.size	blob_start, . - blob_start
	.section .note.GNU-stack, "", @progbits
