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
};

struct snap_dump_opts {
	size_t size;		/* sizeof(struct snap_dump_opts) */
	pid_t pid;		/* root of the tree to dump */
	const char *images_dir; /* created 0700 if missing; must be empty of images */
	unsigned flags;		/* enum snap_dump_flags */
	const char *stats_file; /* per-stage times as JSON, or NULL */
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
	SNAP_RESTORE_MAP_PAGES = 1u << 3,
};

struct snap_restore_opts {
	size_t size; /* sizeof(struct snap_restore_opts) */
	const char *images_dir;
	unsigned flags;		/* enum snap_restore_flags */
	const char *pidfile;	/* root pid written here once running, or NULL */
	const char *stats_file; /* per-stage times as JSON, or NULL */
	/* Join this network namespace (e.g. /proc/PID/ns/net, /run/netns/NAME) instead; not with SNAP_RESTORE_NETNS. */
	const char *netns_path;
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
