/* Harness of the C/R tests and benchmark: runs workloads as children, dumps, restores, reaps, cleans up. */
#ifndef SNAP_TESTS_HARNESS_H
#define SNAP_TESTS_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snap/snap.h"

/*
 * Every function returning int returns 0 on success and a negative errno
 * on failure, with the reason in h_error() (workload stderr included when
 * it helps). Nothing here asserts, so the benchmark can use it too.
 */

#define H_READY_TIMEOUT_MS (10 * 1000)
#define H_EXIT_TIMEOUT_MS  (60 * 1000)
/*
 * snap_dump/snap_restore cannot be interrupted; past this the watchdog kills
 * every child and ends the process (h_set_lib_timeout() changes it).
 */
#define H_LIB_TIMEOUT_S 60

/* A workload under test. */
struct h_wl {
	char name[64];
	char ctldir[PATH_MAX];
	pid_t orig_pid;	 /* pid it was started with */
	pid_t pid;	 /* the live process (original or restored); 0 when none */
	int wake_signal; /* sent after creating go (wl-sleep suspend waits for it) */
	int ready_timeout_ms;
	int exit_timeout_ms;
};

const char *h_error(void);
/* Sets h_error() and returns @err (a negative errno). */
int h_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Per test: makes this process a child subreaper (so processes restored by
 * `snapcr restore -d` come back to us), installs the watchdog and resets
 * the harness state. h_cleanup() kills and reaps every child (ours and
 * reparented ones) and removes every directory made by h_tmpdir(); it must
 * run however the test ends.
 */
void h_setup(void);
void h_cleanup(void);

/* A fresh empty directory, removed by h_cleanup(). */
int h_tmpdir(char out[PATH_MAX], const char *tag);
/* Copies the files of directory @from into the existing directory @to. */
int h_copy_dir(const char *from, const char *to);

/* Paths of the build tree, from -D defines set by meson. */
const char *h_workload_path(const char *name, char out[PATH_MAX]);
const char *h_snapcr_path(void);

/*
 * Spawns tests/workloads/@name with CTLDIR = a new temp dir and @args
 * (NULL-terminated, may be NULL), stdin /dev/null, stdout and stderr to
 * CTLDIR/stdout and CTLDIR/stderr, and waits for CTLDIR/ready.
 */
int h_start(struct h_wl *w, const char *name, const char *const *args);
/* Creates CTLDIR/go and sends w->wake_signal if set. */
int h_go(struct h_wl *w);
/* Waits for the live process to exit and requires status 0. */
int h_expect_exit_ok(struct h_wl *w);
/* h_go() then h_expect_exit_ok(). */
int h_finish(struct h_wl *w);

/* CTLDIR/@file of the workload, read whole (NUL-terminated); free() it. */
char *h_read_ctl(const struct h_wl *w, const char *file, size_t *ret_len);
/* Reads a whole file (NUL-terminated); free() it. NULL with errno on failure. */
char *h_read_file(const char *path, size_t *ret_len);

/*
 * A context whose log goes to stderr: warnings by default, everything with
 * SNAP_TEST_LOG=debug in the environment.
 */
int h_ctx_new(snap_ctx **ret_ctx);

/*
 * snap_dump of the live process into @imgdir. Without
 * SNAP_DUMP_LEAVE_RUNNING the original must be gone afterwards; it is
 * reaped here so that its pid is free for the restore. @ctx may be NULL.
 */
int h_dump(struct h_wl *w, const char *imgdir, unsigned flags, snap_ctx *ctx);
/* snap_restore from @imgdir; the restored root must have w->orig_pid. */
int h_restore(struct h_wl *w, const char *imgdir, snap_ctx *ctx);

/* Wall time of the last snap_dump or snap_restore call made by h_dump/h_restore. */
uint64_t h_last_lib_ns(void);
void h_set_lib_timeout(unsigned seconds);

/* Whole cycles: start, [dump, restore,] go, exit status 0. */
int h_run_nocr(const char *name, const char *const *args, int wake_signal);
int h_run_cr(const char *name, const char *const *args, int wake_signal);

/*
 * Runs @argv (argv[0] a path) with stdin /dev/null and stdout/stderr to
 * the given files, waits up to @timeout_ms, returns its wait status in
 * *ret_status.
 */
int h_run_cmd(const char *const *argv, const char *out, const char *err, int timeout_ms, int *ret_status);

/* waitpid with a timeout; on timeout the child is killed and reaped, -ETIMEDOUT. */
int h_wait_pid(pid_t pid, int timeout_ms, int *ret_status);
/* "exited with status N" / "killed by signal N (name)". */
const char *h_describe_status(int status, char *buf, size_t len);

/* Children of this process, sorted; returns their number (<= @max) or -errno. */
int h_children(pid_t *out, int max);
/* A pid that no process has right now (a reaped child's). */
pid_t h_unused_pid(void);

#endif
