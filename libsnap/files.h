/* Open files of a process: dump them as paths with flags and offsets, open them again. */
#ifndef SNAP_FILES_H
#define SNAP_FILES_H

#include "image.h"
#include "task.h"

int files_dump(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir);

struct files_image {
	FsEntry *fs;
	FdEntry **fds;
	size_t nr_fds;
};

int files_image_read(struct snap_ctx *ctx, struct img_set *set, int pid, struct files_image *ret);
void files_image_free(struct files_image *fi);
/* Checks before any process exists that every file can be opened again as it was. */
int files_image_validate(struct snap_ctx *ctx, const struct files_image *fi);
/* Highest fd number the image uses, or -1. */
int files_max_fd(const struct files_image *fi);
/*
 * In the new process: opens every fd at its number with its flags and
 * offset. Our own fds must already sit above files_max_fd(); fds in
 * @keep[0..nr_keep) survive, every other fd is closed.
 */
int files_restore(struct snap_ctx *ctx, const struct files_image *fi, const int *keep, size_t nr_keep);

#endif
