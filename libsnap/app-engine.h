/* The engine's side of the in-process API: let registered processes run their callbacks around a dump and a restore. */
#ifndef SNAP_APP_ENGINE_H
#define SNAP_APP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ctx.h"

struct app_engine;
struct restore_task;

/*
 * Before seizing: finds the control block of @root and of each of its
 * descendants, asks each to run its before-checkpoint callbacks and waits
 * (within the process's time limit) until all are parked. On failure the
 * processes run on, and *ret is still set for app_engine_release().
 */
int app_engine_prepare(struct snap_ctx *ctx, pid_t root, struct app_engine **ret);

/*
 * After the dump: unless the dump killed the tree (@killed), opens the
 * gates so that the originals run their after-restore callbacks
 * (SNAP_APP_AFTER_CONTINUE) and waits for them. Frees @ae.
 */
void app_engine_release(struct snap_ctx *ctx, struct app_engine *ae, bool killed);

/*
 * At restore, with every thread of @rt stopped in its restored registers:
 * @pid and @tids are the process's and its threads' ids as we see them
 * (they differ from the image's in a PID namespace of its own); if the
 * process has a parked control block, marks it RESTORED, lets only
 * the control thread go and waits for its after-restore callbacks.
 * *ret_first is the index of the thread already detached, or (size_t)-1.
 */
int app_engine_restore(struct snap_ctx *ctx, const struct restore_task *rt, pid_t pid, const pid_t *tids,
		       size_t *ret_first);

#endif
