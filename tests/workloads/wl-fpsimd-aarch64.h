/* Layout shared by wl-fpsimd's C driver and its assembly spinner (aarch64 only). */
#ifndef SNAP_TESTS_WL_FPSIMD_AARCH64_H
#define SNAP_TESTS_WL_FPSIMD_AARCH64_H

/* How the spinner waits. */
#define FP_WAIT_BUSY  0 /* no system call at all until CTLDIR/flag turns non-zero: frozen in user code */
#define FP_WAIT_SLEEP 1 /* raw nanosleep and faccessat for go: mostly frozen inside a system call */

/* What the spinner returns. */
#define FP_RET_OK	0
#define FP_RET_MISMATCH 1 /* a snapshot differed from the expected state */
#define FP_RET_TIMEOUT	2 /* nothing happened in time */
#define FP_RET_READY	3 /* could not publish ready */

/* The largest vector length the architecture allows, in bytes (2048 bits). */
#define FP_MAX_VL 256

/*
 * struct fp_state: register values in a fixed layout; unused bytes stay
 * zero. Every system call zeroes the SVE-only bits, so z, p and ffr are
 * held (and compared) only while the busy spinner makes none.
 */
#define ST_Q	0	/* 32 x 16: q0-q31, also the low 128 bits of z0-z31 */
#define ST_FPCR 512	/* 8, 32 bits used */
#define ST_FPSR 520	/* 8, 32 bits used */
#define ST_GPR	528	/* x19-x28 */
#define ST_CORE 608	/* held in every mode */
#define ST_SVE	ST_CORE /* z0-z31 (vl bytes each), p0-p15 and ffr (vl / 8 each), packed for the vl in use */
#define ST_SIZE (ST_CORE + 32 * FP_MAX_VL + 17 * FP_MAX_VL / 8 + 16)

/* struct fp_ctl */
#define CTL_EXP	      0	      /* struct fp_state: what the registers must hold */
#define CTL_SNAP      ST_SIZE /* struct fp_state: what they held at the last check */
#define CTL_WAIT      (2 * ST_SIZE)
#define CTL_SVE	      (CTL_WAIT + 8)	/* non-zero: the busy spinner loads and checks z, p and ffr */
#define CTL_SVE_LEN   (CTL_SVE + 8)	/* bytes compared beyond ST_CORE while z, p and ffr are held */
#define CTL_EXP_Z     (CTL_SVE_LEN + 8) /* where in exp and snap z0, p0 and ffr are */
#define CTL_EXP_P     (CTL_EXP_Z + 8)
#define CTL_EXP_FFR   (CTL_EXP_P + 8)
#define CTL_SNAP_Z    (CTL_EXP_FFR + 8)
#define CTL_SNAP_P    (CTL_SNAP_Z + 8)
#define CTL_SNAP_FFR  (CTL_SNAP_P + 8)
#define CTL_GO_PATH   (CTL_SNAP_FFR + 8) /* const char * */
#define CTL_READY_TMP (CTL_GO_PATH + 8)	 /* const char *, renamed to CTL_READY */
#define CTL_READY     (CTL_READY_TMP + 8)
#define CTL_FLAG      (CTL_READY + 8)	 /* const volatile uint8_t *: CTLDIR/flag mapped shared */
#define CTL_ITER      (CTL_FLAG + 8)	 /* checks passed so far */
#define CTL_DEADLINE  (CTL_ITER + 8)	 /* cntvct_el0 value at which the spinner gives up */
#define CTL_SLEEP_TS  (CTL_DEADLINE + 8) /* struct timespec for nanosleep */

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <time.h>

struct fp_state {
	uint8_t q[32][16];
	uint64_t fpcr, fpsr;
	uint64_t gpr[10];
	uint8_t sve[32 * FP_MAX_VL + 17 * FP_MAX_VL / 8 + 16];
};

struct fp_ctl {
	struct fp_state exp, snap;
	uint64_t wait, sve, sve_len;
	uint8_t *exp_z, *exp_p, *exp_ffr, *snap_z, *snap_p, *snap_ffr;
	const char *go_path, *ready_tmp, *ready;
	const volatile uint8_t *flag;
	uint64_t iterations, deadline;
	struct timespec sleep_ts;
} __attribute__((aligned(16)));

/*
 * Loads every register from ctl->exp and publishes ready. Busy: then
 * loads z, p and ffr too and spins without a system call until *flag is
 * non-zero. Sleep: polls for go with raw system calls. Checks the
 * registers on every round and once more at the end; returns FP_RET_*.
 */
uint64_t wl_fpsimd_spin(struct fp_ctl *ctl);
#endif

#endif
