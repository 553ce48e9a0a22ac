/* libsnap public API: checkpoint a Linux process tree to images and restore it. */
#ifndef SNAP_SNAP_H
#define SNAP_SNAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNAP_API __attribute__((visibility("default")))

typedef struct snap_ctx snap_ctx;

/* Log levels, most severe first. */
enum snap_log_level {
	SNAP_LOG_ERROR = 0,
	SNAP_LOG_WARN = 1,
	SNAP_LOG_INFO = 2,
	SNAP_LOG_DEBUG = 3,
};

typedef void (*snap_log_fn)(void *opaque, enum snap_log_level level, const char *msg);

/*
 * Stages of dump and restore. Each is timed in every operation; the names
 * are those written by --stats.
 */
enum snap_stage {
	SNAP_STAGE_FREEZE,
	SNAP_STAGE_COLLECT,
	SNAP_STAGE_INFECT,
	SNAP_STAGE_DRAIN,
	SNAP_STAGE_WRITE,
	SNAP_STAGE_CURE,
	SNAP_STAGE_READ,
	SNAP_STAGE_FORK,
	SNAP_STAGE_PREMAP,
	SNAP_STAGE_FILL,
	SNAP_STAGE_RESTORER,
	SNAP_STAGE__COUNT
};

struct snap_stats {
	size_t size;			      /* sizeof(struct snap_stats), set by caller */
	uint64_t stage_ns[SNAP_STAGE__COUNT]; /* 0 for stages that did not run */
	uint64_t pages_bytes;		      /* page data written (dump) or read (restore) */
	uint64_t vmas;			      /* memory areas dumped or restored */
};

enum snap_dump_flags {
	SNAP_DUMP_LEAVE_RUNNING = 1u << 0, /* cure and let the tree run on */
	/*
	 * Established TCP connections are dumped with TCP_REPAIR and restored
	 * so that the peer never notices (the peer must not send while the
	 * process is gone: nothing holds the connection in between).
	 */
	SNAP_DUMP_TCP_ESTABLISHED = 1u << 1,
	/* Connected TCP sockets come back closed, so the application's own reconnect logic runs. */
	SNAP_DUMP_TCP_CLOSE = 1u << 2,
	/*
	 * A shell job: its terminal fds are recorded as "the terminal" (not
	 * refused), to become the restoring caller's terminal.
	 */
	SNAP_DUMP_SHELL_JOB = 1u << 3,
};

/*
 * Progress of the long stages (the memory of a dump: SNAP_STAGE_DRAIN,
 * which includes its writing; of a restore: SNAP_STAGE_FILL), in bytes.
 * Called from the calling thread at most about ten times a second, and
 * once more with @done == @total when the stage ends. @total is exact for
 * a restore and an estimate (resident memory) for a dump; it grows if
 * @done passes it.
 */
typedef void (*snap_progress_fn)(void *opaque, enum snap_stage stage, uint64_t done, uint64_t total);

/* Where a hook runs; the names (snap_hook_stage_name) are those of snapcr --hook. */
enum snap_hook_stage {
	SNAP_HOOK_PRE_DUMP,	/* before the tree is seized: failing aborts, the tree runs on untouched */
	SNAP_HOOK_POST_DUMP,	/* after a complete dump, the tree killed or (leave running) running */
	SNAP_HOOK_PRE_RESTORE,	/* images read and checked, nothing created yet: failing aborts */
	SNAP_HOOK_POST_RESTORE, /* the tree runs: failing kills it and fails the restore */
	SNAP_HOOK__COUNT
};

/*
 * A command run with /bin/sh -c at its stage, with SNAP_STAGE (its name),
 * SNAP_PID (root of the tree) and SNAP_IMAGES_DIR in its environment and
 * the caller's stdin, stdout and stderr. The operation waits for it; any
 * exit status but 0 is a failure.
 */
struct snap_hook {
	enum snap_hook_stage stage;
	const char *command;
};

struct snap_dump_opts {
	size_t size;		/* sizeof(struct snap_dump_opts) */
	pid_t pid;		/* root of the tree to dump */
	const char *images_dir; /* created 0700 if missing; must be empty of images */
	unsigned flags;		/* enum snap_dump_flags */
	const char *stats_file; /* per-stage times as JSON, or NULL */
	/* Pre-dump and post-dump hooks run; others are ignored. */
	const struct snap_hook *hooks;
	size_t nr_hooks;
	/* Progress reports, or NULL. */
	snap_progress_fn progress;
	void *progress_opaque;
};

enum snap_restore_flags {
	/*
	 * Without it the caller is the restored root's parent and must reap it
	 * (waitpid); with it the same holds, but the root is meant to outlive
	 * the caller (snapcr's -d): its parent-death signal (PR_SET_PDEATHSIG)
	 * is not set again, since it would fire when the caller exits.
	 */
	SNAP_RESTORE_DETACH = 1u << 0,
	/*
	 * Restore into a new PID namespace (and a new mount namespace with its
	 * own /proc), where every process keeps its image PID, so that any
	 * number of copies of one snapshot can run at once. PID 1 there is a
	 * small init of the engine's: it reaps orphans and, when the restored
	 * root ends, ends with the root's exit status (128 + signal number if
	 * the root was killed). *ret_pid and the pid file then name that init
	 * (in the caller's namespace): wait for it to see the copy end; SIGKILL
	 * to it ends every process of the copy; SIGTERM, SIGINT, SIGHUP,
	 * SIGQUIT, SIGUSR1 and SIGUSR2 sent to it are passed on to the root.
	 */
	SNAP_RESTORE_PIDNS = 1u << 1,
	/* Restore into a new network namespace with only the loopback device, up. */
	SNAP_RESTORE_NETNS = 1u << 2,
	/*
	 * The image's terminal fds become the caller's terminal (the first of
	 * its fds 0, 1, 2 that is one), reopened; a group that was in the
	 * foreground is made the foreground group again.
	 */
	SNAP_RESTORE_SHELL_JOB = 1u << 3,
	/*
	 * Map the stored pages of private anonymous memory copy-on-write from
	 * the image's page files (mmap MAP_PRIVATE) instead of copying them:
	 * restore copies no such page, and every copy restored from one
	 * snapshot shares those page-cache pages until it writes them. Runs
	 * of at least 16 pages qualify; stacks, executable or wipe-on-fork
	 * memory, memory a child shares with its parent, shared memory and
	 * file mappings are filled as without it. What the process sees:
	 * - the page files must stay in place and unchanged while any copy
	 *   runs (restore checks them as always; a file rewritten later
	 *   changes the copies' unwritten pages, a truncated one is SIGBUS);
	 * - MADV_DONTNEED on such memory gives back the snapshot's bytes, not
	 *   zeros: an allocator relying on zero-after-DONTNEED (jemalloc)
	 *   would read stale data; glibc malloc and the JVM do not rely on it.
	 *   MADV_FREE, MADV_WIPEONFORK, MADV_MERGEABLE and userfaultfd, for
	 *   anonymous memory only, fail there with EINVAL;
	 * - /proc/PID/maps names the page file for those ranges, and a later
	 *   dump of such a copy records them as private mappings of that file,
	 *   storing only the pages the copy wrote (the new images need the old
	 *   page files too).
	 */
	SNAP_RESTORE_MAP_PAGES = 1u << 4,
};

struct snap_restore_opts {
	size_t size; /* sizeof(struct snap_restore_opts) */
	const char *images_dir;
	unsigned flags;		/* enum snap_restore_flags */
	const char *pidfile;	/* root pid written here once running, or NULL */
	const char *stats_file; /* per-stage times as JSON, or NULL */
	/* Join this network namespace (e.g. /proc/PID/ns/net, /run/netns/NAME) instead; not with SNAP_RESTORE_NETNS. */
	const char *netns_path;
	/* Pre-restore and post-restore hooks run; others are ignored. */
	const struct snap_hook *hooks;
	size_t nr_hooks;
	/* Progress reports, or NULL. */
	snap_progress_fn progress;
	void *progress_opaque;
};

/*
 * snap_prepare: start a command, wait until it is ready, warm it up, dump it.
 *
 * The command runs in a new session, as the caller's child, with stdin
 * from /dev/null and stdout and stderr appended to @log_file (opened
 * O_APPEND, so the restored process appends too) or to /dev/null: a
 * terminal or a pipe to the caller could not be restored.
 *
 * @ready says when it is ready: "tcp:HOST:PORT" (a connection is
 * accepted), "http://HOST[:PORT][/PATH]" (a GET answers 2xx) or
 * "file:PATH" (the file exists). Then @warmup_count GET requests go to
 * @warmup_url (each must answer 2xx). Every connection prepare opened is
 * closed and, before the dump, the server must have closed its side of
 * each too (or, with SNAP_DUMP_TCP_CLOSE, the engine drops what it still
 * holds).
 */
struct snap_prepare_opts {
	size_t size;			   /* sizeof(struct snap_prepare_opts) */
	const char *const *argv;	   /* the command, NULL-terminated; argv[0] is looked up in PATH */
	const char *ready;		   /* the readiness probe, see above */
	const char *warmup_url;		   /* or NULL */
	unsigned warmup_count;		   /* requests to warmup_url; 0 means 1 */
	unsigned timeout_ms;		   /* to become ready, and for each warm-up request; 0 means 300 s */
	const char *log_file;		   /* the command's stdout and stderr, or NULL for /dev/null */
	const struct snap_dump_opts *dump; /* images_dir, flags, hooks...; its pid is ignored */
};

/* One kernel feature the engine relies on, as reported by snap_check(). */
struct snap_feature {
	const char *name;
	const char *what;
	int required; /* 1 if dump or restore cannot work without it */
	int present;
};

SNAP_API int snap_ctx_new(snap_ctx **ret_ctx);
SNAP_API void snap_ctx_free(snap_ctx *ctx);

/* Route log messages of at most @level to @fn (default: nowhere). */
SNAP_API void snap_set_log(snap_ctx *ctx, enum snap_log_level level, snap_log_fn fn, void *opaque);

/* The last error in words, naming what failed and on what; "" if none. */
SNAP_API const char *snap_error(const snap_ctx *ctx);

SNAP_API int snap_dump(snap_ctx *ctx, const struct snap_dump_opts *opts);

/*
 * Restores the tree; on success *ret_pid is the root, a child of the caller,
 * already running. The caller reaps it. With SNAP_RESTORE_PIDNS it is the
 * namespace's init instead, also a child of the caller, which ends when
 * the root does.
 */
SNAP_API int snap_restore(snap_ctx *ctx, const struct snap_restore_opts *opts, pid_t *ret_pid);

/*
 * Starts @opts->argv, waits until it is ready, warms it up and dumps it.
 * On success *ret_pid is the pid it had (and has in the images); with
 * SNAP_DUMP_LEAVE_RUNNING it still runs, the caller's child to reap.
 * Otherwise, and on any failure, nothing of it is left: its whole tree
 * and session are killed and reaped. A command that exits or is not ready
 * in time fails with its exit status or signal, or the last probe's answer.
 * While it runs, the caller is a child subreaper (as during snap_restore).
 */
SNAP_API int snap_prepare(snap_ctx *ctx, const struct snap_prepare_opts *opts, pid_t *ret_pid);

/* "pre-dump", "post-dump", "pre-restore", "post-restore"; NULL for others. */
SNAP_API const char *snap_hook_stage_name(enum snap_hook_stage stage);
/* The stage named @name; -EINVAL if none is. */
SNAP_API int snap_hook_stage_parse(const char *name, enum snap_hook_stage *ret_stage);

/* Timings of the last dump or restore of @ctx. */
SNAP_API int snap_get_stats(const snap_ctx *ctx, struct snap_stats *ret_stats);
SNAP_API const char *snap_stage_name(enum snap_stage stage);

/*
 * Probes the running kernel. Calls @fn once per feature; returns 0 if all
 * required ones are present, -ENOSYS otherwise.
 */
SNAP_API int snap_check(snap_ctx *ctx, void (*fn)(void *opaque, const struct snap_feature *f), void *opaque);

/*
 * Prints an image file, or every image of a directory, as JSON to @fd.
 * The files are validated exactly as restore validates them.
 */
SNAP_API int snap_show(snap_ctx *ctx, const char *path, int fd);

#ifdef __cplusplus
}
#endif

#endif
