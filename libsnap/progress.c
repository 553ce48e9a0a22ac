/* Progress of the long stages (a dump's memory, a restore's fill), reported to the caller's callback at a bounded rate.
 */
#include <stdio.h>
#include <string.h>

#include "hooks.h"

/* At most this often, so a terminal line or a log is not flooded and the work is not slowed. */
#define PROGRESS_INTERVAL_NS (100ull * 1000 * 1000)

static void report(struct snap_ctx *ctx, enum snap_stage stage)
{
	if (ctx->progress_done > ctx->progress_total)
		ctx->progress_total = ctx->progress_done;
	ctx->progress_last_ns = snap_now_ns();
	ctx->progress_fn(ctx->progress_opaque, stage, ctx->progress_done, ctx->progress_total);
}

void progress_begin(struct snap_ctx *ctx, enum snap_stage stage, uint64_t total)
{
	ctx->progress_done = 0;
	ctx->progress_total = total;
	if (ctx->progress_fn)
		report(ctx, stage);
}

void progress_set(struct snap_ctx *ctx, enum snap_stage stage, uint64_t done, bool force)
{
	ctx->progress_done = done;
	if (ctx->progress_fn && (force || snap_now_ns() - ctx->progress_last_ns >= PROGRESS_INTERVAL_NS))
		report(ctx, stage);
}

void progress_add(struct snap_ctx *ctx, enum snap_stage stage, uint64_t bytes)
{
	progress_set(ctx, stage, ctx->progress_done + bytes, false);
}

void progress_end(struct snap_ctx *ctx, enum snap_stage stage)
{
	ctx->progress_total = ctx->progress_done;
	if (ctx->progress_fn)
		report(ctx, stage);
}

uint64_t progress_resident(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb, sum = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if ((sscanf(line, "RssAnon: %llu kB", &kb) == 1 || sscanf(line, "RssShmem: %llu kB", &kb) == 1))
			sum += kb;
	fclose(f);
	return sum * 1024;
}
