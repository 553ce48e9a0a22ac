/* Context lifetime, error messages, logging and the --stats JSON writer. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"

static const char *const stage_names[SNAP_STAGE__COUNT] = {
	[SNAP_STAGE_FREEZE] = "freeze", [SNAP_STAGE_COLLECT] = "collect",   [SNAP_STAGE_INFECT] = "infect",
	[SNAP_STAGE_DRAIN] = "drain",	[SNAP_STAGE_WRITE] = "write",	    [SNAP_STAGE_CURE] = "cure",
	[SNAP_STAGE_READ] = "read",	[SNAP_STAGE_FORK] = "fork",	    [SNAP_STAGE_PREMAP] = "premap",
	[SNAP_STAGE_FILL] = "fill",	[SNAP_STAGE_RESTORER] = "restorer",
};

int snap_ctx_new(snap_ctx **ret_ctx)
{
	struct snap_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return -ENOMEM;
	ctx->log_level = SNAP_LOG_ERROR;
	ctx->stats.size = sizeof(ctx->stats);
	*ret_ctx = ctx;
	return 0;
}

void snap_ctx_free(snap_ctx *ctx)
{
	free(ctx);
}

void snap_set_log(snap_ctx *ctx, enum snap_log_level level, snap_log_fn fn, void *opaque)
{
	ctx->log_level = level;
	ctx->log_fn = fn;
	ctx->log_opaque = opaque;
}

const char *snap_error(const snap_ctx *ctx)
{
	return ctx->error;
}

void snap_clear_error(struct snap_ctx *ctx)
{
	ctx->error[0] = '\0';
}

int snap_fail(struct snap_ctx *ctx, int err, const char *fmt, ...)
{
	va_list ap;

	if (!ctx->error[0]) {
		va_start(ap, fmt);
		vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
		va_end(ap);
		if (ctx->log_fn)
			ctx->log_fn(ctx->log_opaque, SNAP_LOG_ERROR, ctx->error);
	}
	return err < 0 ? err : -EINVAL;
}

void snap_log(struct snap_ctx *ctx, enum snap_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!ctx->log_fn || level > ctx->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctx->log_fn(ctx->log_opaque, level, buf);
}

const char *snap_stage_name(enum snap_stage stage)
{
	return (unsigned)stage < SNAP_STAGE__COUNT ? stage_names[stage] : "?";
}

void snap_stats_reset(struct snap_ctx *ctx)
{
	memset(&ctx->stats, 0, sizeof(ctx->stats));
	ctx->stats.size = sizeof(ctx->stats);
}

int snap_get_stats(const snap_ctx *ctx, struct snap_stats *ret_stats)
{
	size_t n = ret_stats->size;

	if (n < sizeof(size_t))
		return -EINVAL;
	if (n > sizeof(ctx->stats))
		n = sizeof(ctx->stats);
	memcpy((char *)ret_stats + sizeof(size_t), (const char *)&ctx->stats + sizeof(size_t), n - sizeof(size_t));
	return 0;
}

int snap_stats_write_json(struct snap_ctx *ctx, const char *path)
{
	FILE *f = fopen(path, "we");
	uint64_t total = 0;

	if (!f)
		return snap_fail(ctx, -errno, "cannot write stats file %s: %m", path);
	fprintf(f, "{\n  \"stages_ms\": {");
	for (int i = 0, first = 1; i < SNAP_STAGE__COUNT; i++) {
		if (!ctx->stats.stage_ns[i])
			continue;
		total += ctx->stats.stage_ns[i];
		fprintf(f, "%s\n    \"%s\": %.3f", first ? "" : ",", stage_names[i], ctx->stats.stage_ns[i] / 1e6);
		first = 0;
	}
	fprintf(f, "\n  },\n  \"total_ms\": %.3f,\n  \"pages_bytes\": %llu,\n  \"vmas\": %llu\n}\n", total / 1e6,
		(unsigned long long)ctx->stats.pages_bytes, (unsigned long long)ctx->stats.vmas);
	if (fclose(f) != 0)
		return snap_fail(ctx, -errno, "cannot write stats file %s: %m", path);
	return 0;
}
