/* The control block an application shares with the engine: layout and states (libsnap/app.c, app-engine.c). */
#ifndef SNAP_APP_BLOCK_H
#define SNAP_APP_BLOCK_H

#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The memfd's name, which is how the engine finds the block in /proc/PID/maps. */
#define APP_BLOCK_NAME	     "libsnap-app"
#define APP_BLOCK_PATH	     "/memfd:" APP_BLOCK_NAME
#define APP_BLOCK_MAGIC	     0x50414e53u /* "SNAP" */
#define APP_BLOCK_VERSION    1u
#define APP_DEFAULT_LIMIT_MS 10000u

/* What the control thread is doing (state). */
enum app_state {
	APP_STATE_IDLE = 0,    /* waiting for a request */
	APP_STATE_BEFORE = 1,  /* running the before-checkpoint callbacks */
	APP_STATE_READY = 2,   /* done, parked on the gate: the engine may freeze it */
	APP_STATE_REFUSED = 3, /* a callback refused; parked on the gate */
	APP_STATE_AFTER = 4,   /* running the after-restore callbacks */
};

/* How the engine lets the parked control thread go (gate). */
enum app_gate {
	APP_GATE_CLOSED = 0,
	APP_GATE_CONTINUED = 1, /* the original goes on */
	APP_GATE_RESTORED = 2,	/* this is a restored copy */
};

/* A self-checkpoint in progress (self). */
enum app_self {
	APP_SELF_NONE = 0,
	APP_SELF_ARMING = 1,   /* the helper waits until the caller reaped the helper's parent */
	APP_SELF_PENDING = 2,  /* the helper dumps; the caller waits */
	APP_SELF_DONE = 3,     /* dumped; the original goes on */
	APP_SELF_FAILED = 4,   /* self_err, self_msg */
	APP_SELF_RESTORED = 5, /* set by the restoring engine */
};

/*
 * One page of a MAP_SHARED memfd. Every word the two sides wait on is a
 * 32-bit futex word: shared futexes are keyed by the memfd's inode and
 * offset, so a wake through the engine's own mapping of the memfd reaches
 * the process. Fields are only ever added at the end (size tells).
 */
struct app_block {
	uint32_t magic;
	uint32_t version;
	uint32_t size;
	int32_t ctl_tid;	/* the control thread, as the process sees it */
	uint32_t time_limit_ms; /* for the callbacks of either side */
	uint32_t request;	/* bumped by the engine for each checkpoint */
	uint32_t state;		/* enum app_state, written by the control thread */
	uint32_t gate;		/* enum app_gate, written by the engine */
	uint32_t generation;	/* restores so far, bumped by the restoring engine */
	uint32_t done;		/* bumped by the control thread after the after-restore callbacks */
	int32_t engine_pid;	/* the engine serving a request, 0 when none */
	int32_t refused_err;	/* the refusing callback's value */
	uint32_t refused_index; /* and its registration index */
	uint32_t self;		/* enum app_self */
	int32_t self_err;
	char self_msg[1024];
};

/* The words of the block are shared by the process and the engine: every access is atomic. */
static inline uint32_t app_load(uint32_t *w)
{
	return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}

static inline void app_store(uint32_t *w, uint32_t v)
{
	__atomic_store_n(w, v, __ATOMIC_RELEASE);
}

/* Shared (not FUTEX_PRIVATE) on purpose: the engine wakes the process through its own mapping of the block. */
static inline void app_futex_wake(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

#endif
