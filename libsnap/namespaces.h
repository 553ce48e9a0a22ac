/* Restore into new namespaces: a PID namespace with the engine's init as PID 1, a network namespace. */
#ifndef SNAP_NAMESPACES_H
#define SNAP_NAMESPACES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ctx.h"

struct ns_plan;

/*
 * Validates the namespace options of @opts (the network namespace to join
 * must exist) before anything is created. *ret is NULL when none is asked
 * for; every other ns_* function accepts NULL then and does nothing.
 */
int ns_plan_new(struct snap_ctx *ctx, const struct snap_restore_opts *opts, struct ns_plan **ret);
void ns_plan_free(struct ns_plan *ns);
bool ns_pidns(const struct ns_plan *ns);

/* Whether image pid @pid can be taken: in the caller's namespace it must be free, in a new one it must not be 1. */
int ns_check_pid(struct snap_ctx *ctx, const struct ns_plan *ns, pid_t pid);

/* ---- in the engine's single-threaded helper (a fork of the caller) ---- */

/* Enters the new or the given network namespace; what the helper creates next is in it. */
int ns_enter_net(struct snap_ctx *ctx, struct ns_plan *ns);
/*
 * Creates the init of a new PID and mount namespace as the caller's child
 * (CLONE_PARENT). The init mounts its own /proc, creates @root_pid, which
 * runs @root_fn(@arg) and never returns, and then reaps until the root
 * ends; errors on its side go to @status_fd as a child's would. Returns
 * the init's pid (also kept for ns_init_pid()) or a negative errno.
 */
pid_t ns_spawn_init(struct snap_ctx *ctx, struct ns_plan *ns, pid_t root_pid, int status_fd, void (*root_fn)(void *arg),
		    void *arg);
/* Hands the helper's error to the engine and ends the helper. */
__attribute__((noreturn)) void ns_helper_fail(struct snap_ctx *ctx, struct ns_plan *ns, int err);

/* ---- in the engine ---- */

/* The helper's error, if it left one (0 if not), recorded in @ctx. */
int ns_helper_error(struct snap_ctx *ctx, const struct ns_plan *ns);
/* The init's pid in the caller's namespace, or 0. */
pid_t ns_init_pid(const struct ns_plan *ns);
/* The restore succeeded: the init stops dying with the caller and starts reaping. */
void ns_release(struct ns_plan *ns);
/*
 * A failed restore: kills the init, and with it the whole namespace, and
 * waits until every process of it is gone, reaping the @nr tracees in
 * @traced (pids in the caller's namespace, 0 for none) and their threads.
 */
void ns_kill(struct ns_plan *ns, const pid_t *traced, size_t nr);

#endif
