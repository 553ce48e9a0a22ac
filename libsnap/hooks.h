/* Hooks (commands run at the stages of dump and restore) and progress reporting, for dump.c, pstree.c and prepare.c. */
#ifndef SNAP_HOOKS_H
#define SNAP_HOOKS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctx.h"

/*
 * Runs every hook of @stage in @hooks, in order, and waits for each; the
 * first that does not exit 0 fails (naming it and how it ended, followed
 * by @after, which says what became of the tree).
 */
int hooks_run(struct snap_ctx *ctx, const struct snap_hook *hooks, size_t nr, enum snap_hook_stage stage, pid_t pid,
	      const char *images_dir, const char *after);

/* Starts reporting @stage with @total bytes to do (0 if no callback is set: nothing is reported). */
void progress_begin(struct snap_ctx *ctx, enum snap_stage stage, uint64_t total);
/* @bytes more done; reports if the last report is old enough. */
void progress_add(struct snap_ctx *ctx, enum snap_stage stage, uint64_t bytes);
/* Reports @done (absolute) if the last report is old enough, or always with @force. */
void progress_set(struct snap_ctx *ctx, enum snap_stage stage, uint64_t done, bool force);
/* The last report of @stage: done == total. */
void progress_end(struct snap_ctx *ctx, enum snap_stage stage);
/* Resident anonymous and shared memory of @pid (RssAnon + RssShmem), 0 if unknown: a dump's estimate. */
uint64_t progress_resident(pid_t pid);

#endif
