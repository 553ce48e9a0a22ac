/* The restorer's part of process and thread attributes (restorer/attrs.c). */
#ifndef SNAP_RESTORER_ATTRS_H
#define SNAP_RESTORER_ATTRS_H

#include "compat.h"
#include "restorer.h"

/* Everything of a->attrs, for the process and the thread running it; ends the process on failure. */
void restorer_attrs(const struct restorer_args *a);
/* Scheduling, affinity, I/O priority and timer slack of the calling thread. */
void restorer_thread_attrs(const struct restorer_args *a, const struct restorer_thread_attrs *th);

#endif
