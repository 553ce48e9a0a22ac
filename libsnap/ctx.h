/* The per-operation context: error message, log routing and stage timings. */
#ifndef SNAP_CTX_H
#define SNAP_CTX_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "snap/snap.h"

struct snap_ctx {
	char error[1024];
	snap_log_fn log_fn;
	void *log_opaque;
	enum snap_log_level log_level;
	struct snap_stats stats;
	/* Progress reporting of the running operation (progress.c). */
	snap_progress_fn progress_fn;
	void *progress_opaque;
	uint64_t progress_last_ns, progress_done, progress_total;
	/* Restore: bytes filled so far by the new processes, in memory they share with the engine. */
	_Atomic uint64_t *fill_counter;
};

/* Whether the caller's options struct (which starts with its size) is big enough to hold @field. */
#define OPTS_HAS(opts, field) ((opts)->size >= offsetof(__typeof__(*(opts)), field) + sizeof((opts)->field))

/*
 * Records @fmt as the context's error (the first one of an operation wins
 * unless cleared, so the message comes from the place that knows why) and
 * returns @err, which must be a negative errno.
 */
int snap_fail(struct snap_ctx *ctx, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void snap_clear_error(struct snap_ctx *ctx);
void snap_log(struct snap_ctx *ctx, enum snap_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define snap_warn(ctx, ...)  snap_log(ctx, SNAP_LOG_WARN, __VA_ARGS__)
#define snap_info(ctx, ...)  snap_log(ctx, SNAP_LOG_INFO, __VA_ARGS__)
#define snap_debug(ctx, ...) snap_log(ctx, SNAP_LOG_DEBUG, __VA_ARGS__)

static inline uint64_t snap_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Stage timing: t = stage_begin(); ...; stage_end(ctx, SNAP_STAGE_X, t); */
static inline uint64_t stage_begin(void)
{
	return snap_now_ns();
}

static inline void stage_end(struct snap_ctx *ctx, enum snap_stage stage, uint64_t t0)
{
	ctx->stats.stage_ns[stage] += snap_now_ns() - t0;
}

void snap_stats_reset(struct snap_ctx *ctx);
int snap_stats_write_json(struct snap_ctx *ctx, const char *path);

#endif
