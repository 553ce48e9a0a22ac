/* Shared helper of the C/R workloads: the ready/go protocol, seeded data and failure reporting. */
#ifndef SNAP_TESTS_WL_H
#define SNAP_TESTS_WL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses; the harness prints the workload's stderr for any but WL_EXIT_OK. */
enum {
	WL_EXIT_OK = 0,
	WL_EXIT_CHECK_FAILED = 1, /* state was wrong after go */
	WL_EXIT_SETUP = 2,	  /* could not build its state, never became ready */
	WL_EXIT_NO_GO = 3,	  /* gave up waiting for go */
};

/*
 * A workload that never sees go gives up after this long, so that nothing
 * is left spinning when a harness dies without killing it (a restored
 * process has no parent-death signal to stop it).
 */
#define WL_GO_TIMEOUT_MS (300 * 1000)

/* The control directory given as argv[1]; ready and go live there. */
extern const char *wl_ctldir;
/* Basename of argv[0], the prefix of every message. */
extern const char *wl_name;

/*
 * Parses "wl-NAME CTLDIR [args]": sets wl_ctldir and wl_name, and exits with
 * WL_EXIT_SETUP and @usage if fewer than @min_args arguments follow CTLDIR.
 */
void wl_init(int argc, char **argv, int min_args, const char *usage);

/* Joins CTLDIR and @name into @buf (PATH_MAX bytes); exits on overflow. */
void wl_path(char *buf, const char *name);

/* Publishes CTLDIR/ready atomically (written as a temp file, then renamed). */
void wl_ready(void);

/* Whether CTLDIR/go exists. */
bool wl_go_exists(void);

/*
 * Polls for CTLDIR/go with access() and 1 ms sleeps; no pipes, sockets or
 * signals, so nothing but memory and registers carry the wait across C/R.
 * Exits with WL_EXIT_NO_GO after WL_GO_TIMEOUT_MS.
 */
void wl_wait_go(void);

/* Setup failed (before ready): prints the message and exits WL_EXIT_SETUP. */
void wl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A check failed: prints the message and remembers it for wl_finish(). */
void wl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define wl_expect(cond, ...)                  \
	do {                                  \
		if (!(cond))                  \
			wl_fail(__VA_ARGS__); \
	} while (0)

/* Number of failed checks so far. */
unsigned wl_failures(void);

/* Prints the verdict and returns the exit status for main(). */
int wl_finish(void);

/*
 * Seeded data. Word i of the stream of @seed depends only on (seed, i), so
 * any area can be filled and verified independently and a page that moved
 * to another address is caught as well as a lost or zeroed one.
 */
uint64_t wl_word(uint64_t seed, uint64_t i);
void wl_fill(void *buf, size_t len, uint64_t seed);
/* Offset of the first byte that differs from the stream, or SIZE_MAX. */
size_t wl_verify(const void *buf, size_t len, uint64_t seed);
/* wl_verify() that reports a mismatch through wl_fail(), naming @what. */
bool wl_expect_data(const char *what, const void *buf, size_t len, uint64_t seed);
/* Offset of the first non-zero byte, or SIZE_MAX. */
size_t wl_find_nonzero(const void *buf, size_t len);

/* 64-bit FNV-1a, for checksums of large areas. */
uint64_t wl_hash(const void *buf, size_t len);

/* Page size, cached. */
size_t wl_page_size(void);

#endif
