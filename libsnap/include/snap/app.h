/* libsnap's in-process API: checkpoint and restore callbacks of an application, and checkpointing oneself. */
#ifndef SNAP_APP_H
#define SNAP_APP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SNAP_API
#define SNAP_API __attribute__((visibility("default")))
#endif

/*
 * Why a callback runs. After-restore callbacks run with
 * SNAP_APP_AFTER_RESTORE in each restored copy, before any other thread
 * of the process runs again; in the original they run with
 * SNAP_APP_AFTER_CONTINUE once it goes on after the dump (a dump that let
 * it run, failed, was refused or timed out), so that what the
 * before-checkpoint callbacks closed is reopened in both.
 */
enum snap_app_event {
	SNAP_APP_BEFORE_CHECKPOINT = 1,
	SNAP_APP_AFTER_CONTINUE = 2,
	SNAP_APP_AFTER_RESTORE = 3,
};

/* Which copy returned from snap_app_checkpoint(). */
enum snap_app_outcome {
	SNAP_APP_ORIGINAL = 1, /* the process that was dumped, running on */
	SNAP_APP_RESTORED = 2, /* a copy restored from the images */
};

/*
 * A callback. A before-checkpoint callback that returns non-zero refuses
 * the checkpoint: the dump fails with its value in the message, and the
 * after-restore callbacks run with SNAP_APP_AFTER_CONTINUE.
 */
typedef int (*snap_app_fn)(void *opaque, enum snap_app_event event);

/*
 * Registers a pair of callbacks (either may be NULL). Both kinds run in
 * registration order, on a control thread the library starts at the first
 * registration, one at a time. The first call also creates the control
 * block the engine finds at dump (a memfd mapping named "libsnap-app").
 * Registration does not carry over fork(): a child starts unregistered.
 * 0 or a negative errno.
 */
SNAP_API int snap_app_register(snap_app_fn before_checkpoint, snap_app_fn after_restore, void *opaque);

/*
 * How long the engine waits for the before-checkpoint callbacks (the dump
 * then fails and the process runs on) and for the after-restore callbacks
 * (the other threads are then let go anyway, with a warning). Default
 * 10000 ms.
 */
SNAP_API int snap_app_set_time_limit(unsigned ms);

/* How many restores this process has been through (0 in one that never was restored). */
SNAP_API unsigned snap_app_restore_count(void);

/*
 * Checkpoints the calling process (and its children) into @images_dir
 * and returns twice, as CRaC's checkpointRestore does: once in the
 * original after the dump (*ret_outcome = SNAP_APP_ORIGINAL) and once in
 * every copy restored from the images (SNAP_APP_RESTORED), each time
 * after the after-restore callbacks ran. @flags are snap_dump flags
 * (snap.h); SNAP_DUMP_LEAVE_RUNNING is implied. A helper process outside
 * the tree dumps it. On failure the original runs on, the return value
 * is a negative errno and @errbuf (if not NULL) holds the reason.
 * Not callable from a callback.
 */
SNAP_API int snap_app_checkpoint(const char *images_dir, unsigned flags, int *ret_outcome, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
