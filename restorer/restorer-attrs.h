/* The restorer's part of process and thread attributes (restorer/attrs.c). */
#ifndef SNAP_RESTORER_ATTRS_H
#define SNAP_RESTORER_ATTRS_H

#include "compat.h"
#include "restorer.h"

/*
 * Process-wide attributes of a->attrs (personality, timers, the pending
 * signals of the process and of the leader, limits, prctl state), once, by
 * the leader, after every thread exists; it meets the other threads in
 * restorer_attrs_thread() (see restorer_attrs.queue_phase). Ends the
 * process on failure.
 */
void restorer_attrs_process(const struct restorer_args *a);
/* In the leader before it creates the other threads: the seccomp filters all of them share. */
void restorer_attrs_before_threads(const struct restorer_args *a);
/* Then, in every thread: its own scheduling, pending signals, credentials and seccomp filters (last). */
void restorer_attrs_thread(const struct restorer_args *a, int32_t tid);
/* Scheduling, affinity, I/O priority and timer slack of the calling thread. */
void restorer_thread_attrs(const struct restorer_args *a, const struct restorer_thread_attrs *th);

#endif
