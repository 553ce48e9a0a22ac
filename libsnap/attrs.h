/*
 * Process and thread attributes beyond memory and files: pending signals,
 * timers, credentials, seccomp, resource limits, scheduling, prctl state
 * and file locks. dump.c and restore.c call the functions at the top; the
 * rest is shared by the files that handle each kind (attrs.c, creds.c,
 * timers.c, signals.c, seccomp.c, locks.c).
 */
#ifndef SNAP_ATTRS_H
#define SNAP_ATTRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "files.h"
#include "image.h"
#include "images/attrs.pb-c.h"
#include "task.h"
#include "../restorer/restorer.h"

/* ---- what dump.c and restore.c call ---- */

/* While frozen, before the parasite: /proc, ptrace, prlimit, sched_getattr; suspends seccomp for the parasite. */
int attrs_collect(struct snap_ctx *ctx, struct dump_task *t);
/* With the parasite running: its attributes command, then the signal queues (read last, see signals.c). */
int attrs_drain(struct snap_ctx *ctx, struct dump_task *t);
/* Points tce->attrs at messages that live until attrs_free(), and builds those of every thread. */
int attrs_to_image(struct snap_ctx *ctx, struct dump_task *t, TaskCoreEntry *tce);
/* The attributes of t->threads[i] for its thread_core_entry, once attrs_to_image() built them. */
ThreadAttrsEntry *attrs_thread_image(const struct dump_task *t, size_t i);
void attrs_free(struct dump_task *t);

/* Before anything is created: can this kernel and this user restore them, is the image sane? */
int attrs_validate(struct snap_ctx *ctx, const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads,
		   const struct files_image *files);
/* SNAP_RESTORE_DETACH: the root outlives its new parent, so its parent-death signal is not set again. */
void attrs_detach(struct snap_ctx *ctx, TaskCoreEntry *core, int pid);
/* Options the engine traces the new process with (PTRACE_O_SUSPEND_SECCOMP if it gets filters). */
unsigned long attrs_ptrace_options(const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads);
/* Bytes attrs_fill_args() may take from the restorer's argument area. */
size_t attrs_args_size(const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads);
/* Builds a->attrs from *cur on (64-byte aligned pieces), advancing *cur; fails if past @end. */
int attrs_fill_args(struct snap_ctx *ctx, const TaskCoreEntry *core, ThreadCoreEntry *const *threads, size_t nr_threads,
		    struct restorer_args *a, uint8_t **cur, uint8_t *end);
/* In the new process once its fds are open: takes the file locks again. */
int attrs_restore_locks(struct snap_ctx *ctx, const TaskCoreEntry *core);
/* In the new process right before the restorer: oom_score_adj, then the root directory. */
int attrs_restore_child(struct snap_ctx *ctx, const TaskCoreEntry *core, const FsEntry *fs);

/* ---- shared by the attribute files ---- */

#define ATTRS_SIGINFO_SIZE 128
/* Pending signals per queue; more is refused (the kernel's default RLIMIT_SIGPENDING is far lower). */
#define ATTRS_MAX_PENDING   65536
#define ATTRS_MAX_SECCOMP   512
#define ATTRS_CPUMASK_BYTES 1024

struct dump_seccomp_filter {
	void *prog; /* struct sock_filter[len] */
	uint32_t len;
	uint64_t flags;
};

/* What the dump collects of one thread (scheduling from outside, filters and signal queue through ptrace). */
struct thread_attrs {
	struct restorer_sched_attr sched;
	uint8_t affinity[ATTRS_CPUMASK_BYTES];
	size_t affinity_len;
	uint32_t ioprio;
	struct dump_seccomp_filter *seccomp;
	size_t nr_seccomp;
	uint8_t (*pending)[ATTRS_SIGINFO_SIZE]; /* the thread's own queue */
	size_t nr_pending;
};

/* What the dump collects; the image messages are built in img. */
struct task_attrs {
	int oom_score_adj;
	struct thread_attrs *threads;	 /* [i] of dump_task.threads[i]; [0] the main thread */
	struct proc_posix_timer *timers; /* from /proc/PID/timers */
	size_t nr_timers;
	FileLockEntry *locks;
	size_t nr_locks;
	struct parasite_attrs *pa;	       /* copied out of the parasite's area */
	uint8_t (*shared)[ATTRS_SIGINFO_SIZE]; /* the process-wide queue */
	size_t nr_shared;
	struct attrs_img *img;
};

/* attrs.c: limits, scheduling, oom_score_adj (from outside) */
int sched_collect(struct snap_ctx *ctx, pid_t tid, struct thread_attrs *ta);
/* creds.c */
int creds_check(struct snap_ctx *ctx, struct dump_task *t);
int creds_to_image(struct snap_ctx *ctx, const struct parasite_creds *pc, CredsEntry *ce, uint32_t **groups);
/* Whether a thread's credentials differ from the main thread's (then the image holds its own). */
bool creds_differ(const struct parasite_creds *a, const struct parasite_creds *b);
int creds_validate(struct snap_ctx *ctx, const CredsEntry *c, int pid);
int creds_fill_args(struct snap_ctx *ctx, const CredsEntry *c, struct restorer_creds *rc, uint32_t *groups);
/* timers.c */
int timers_collect(struct snap_ctx *ctx, struct dump_task *t);
int timers_validate(struct snap_ctx *ctx, const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads, size_t nr_threads);
/*
 * Decides how each POSIX timer is restored (RESTORER_TIMER_* into @how,
 * which may be NULL) and fails, naming @pid, if one cannot be as it was.
 */
int timers_plan(struct snap_ctx *ctx, const TaskAttrsEntry *ta, ThreadAttrsEntry *const *ths, size_t nr_threads,
		int pid, uint32_t *how);
/* Index of the timer whose expiry @info is, or -1. */
int timers_find_expiry(const TaskAttrsEntry *ta, const uint8_t *info);
/* signals.c */
int signals_collect(struct snap_ctx *ctx, struct dump_task *t);
int signals_validate(struct snap_ctx *ctx, const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads,
		     size_t nr_threads);
/*
 * Fills @out (room for every pending signal plus one) in queue order, the
 * process-wide queue first, then each thread's (a thread without
 * attributes, from an older image, has none), deciding which expiries their timers make
 * again, and sets how each timer of @timers is restored.
 */
size_t signals_fill_args(const TaskAttrsEntry *ta, ThreadCoreEntry *const *threads, size_t nr_threads,
			 struct restorer_siginfo *out, const struct restorer_posix_timer *timers);
/* seccomp.c */
int seccomp_collect(struct snap_ctx *ctx, struct dump_task *t);
int seccomp_validate(struct snap_ctx *ctx, const ThreadAttrsEntry *th, int tid);
/* locks.c */
int locks_collect(struct snap_ctx *ctx, struct dump_task *t);
int locks_validate(struct snap_ctx *ctx, const TaskAttrsEntry *ta, const struct files_image *files, int pid);
/* Whether the process had this capability in its effective set. */
static inline bool creds_has_cap(const CredsEntry *c, int cap)
{
	return (c->cap_eff >> cap) & 1;
}

#endif
