/* Layout shared by wl-avx's C driver and its assembly spinner (x86_64 only). */
#ifndef SNAP_TESTS_WL_AVX_X86_64_H
#define SNAP_TESTS_WL_AVX_X86_64_H

/* Vector register sets, widest first; the spinner loads what the CPU has. */
#define AVX_MODE_SSE	0 /* xmm0-15 */
#define AVX_MODE_AVX	1 /* ymm0-15 */
#define AVX_MODE_AVX512 2 /* zmm0-31 and k0-7 */

/* How the spinner waits between two polls for go. */
#define AVX_WAIT_BUSY  0 /* a busy loop: mostly frozen in user code */
#define AVX_WAIT_SLEEP 1 /* nanosleep: mostly frozen inside a system call */

/* What the spinner returns. */
#define AVX_RET_OK	 0
#define AVX_RET_MISMATCH 1 /* a snapshot differed from the expected state */
#define AVX_RET_TIMEOUT	 2 /* no go in time */
#define AVX_RET_READY	 3 /* could not publish ready */

/* struct avx_state: register values in a fixed layout; unused bytes stay zero. */
#define ST_VEC	 0    /* 32 x 64 bytes */
#define ST_K	 2048 /* 8 x 8 bytes, 16 bits used (kmovw) */
#define ST_MXCSR 2112 /* 4 */
#define ST_FCW	 2116 /* 2 */
#define ST_FSW	 2118 /* 2 */
#define ST_FTW	 2120 /* 1, abridged tag word as in FXSAVE */
#define ST_ST	 2128 /* 8 x 16 bytes, 10 used: ST(0)..ST(7) */
#define ST_GPR	 2256 /* rbx, rbp, r12, r13, r14, r15 */
#define ST_SIZE	 2304

/* struct avx_ctl */
#define CTL_EXP	       0		 /* struct avx_state: what the registers must hold */
#define CTL_SNAP       ST_SIZE		 /* struct avx_state: what they held at the last check */
#define CTL_FXBUF      (2 * ST_SIZE)	 /* 512, 16-byte aligned FXSAVE area */
#define CTL_X87_IN     (CTL_FXBUF + 512) /* 8 doubles pushed onto the x87 stack in order */
#define CTL_MODE       (CTL_X87_IN + 64)
#define CTL_WAIT       (CTL_MODE + 8)
#define CTL_DELAY      (CTL_WAIT + 8)	 /* busy loop iterations between polls */
#define CTL_GO_PATH    (CTL_DELAY + 8)	 /* const char * */
#define CTL_READY_TMP  (CTL_GO_PATH + 8) /* const char *, renamed to CTL_READY */
#define CTL_READY      (CTL_READY_TMP + 8)
#define CTL_ITER       (CTL_READY + 8)	   /* polls done */
#define CTL_SLEEP_TS   (CTL_ITER + 8)	   /* struct timespec for nanosleep */
#define CTL_NOW_TS     (CTL_SLEEP_TS + 16) /* struct timespec from clock_gettime */
#define CTL_PREV_NS    (CTL_NOW_TS + 16)
#define CTL_ELAPSED_NS (CTL_PREV_NS + 8) /* sum of small clock steps: jumps do not count */
#define CTL_LIMIT_NS   (CTL_ELAPSED_NS + 8)
#define CTL_SIZE       (CTL_LIMIT_NS + 8)

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <time.h>

struct avx_state {
	uint8_t vec[32][64];
	uint64_t k[8];
	uint32_t mxcsr;
	uint16_t fcw, fsw;
	uint8_t ftw, pad[7];
	uint8_t st[8][16];
	uint64_t gpr[6];
} __attribute__((aligned(64)));

struct avx_ctl {
	struct avx_state exp, snap;
	uint8_t fxbuf[512] __attribute__((aligned(16)));
	double x87_in[8];
	uint64_t mode, wait, delay;
	const char *go_path, *ready_tmp, *ready;
	uint64_t iterations;
	struct timespec sleep_ts, now_ts;
	uint64_t prev_ns, elapsed_ns, limit_ns;
} __attribute__((aligned(64)));

/*
 * Loads every register from ctl->exp, renames ready_tmp to ready and spins
 * until go exists, checking the registers before every poll and once more
 * after go; returns AVX_RET_*. Only raw syscall instructions run in between.
 */
uint64_t wl_avx_spin(struct avx_ctl *ctl);
#endif

#endif
