/* Pipes and FIFOs: each end as an open file description, each pipe with its capacity and unread data. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"

/* Room left in a record for everything around the data. */
#define PIPE_DATA_MAX (IMG_MAX_RECORD - 4096)

/* Copies the unread bytes of the pipe behind @f without taking them: tee(2) into a pipe of ours. */
static int peek_pipe(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, uint32_t capacity, PipeEntry *pe)
{
	char path[64];
	int src, tmp[2] = { -1, -1 }, avail = 0, r = 0;
	ssize_t n;

	/* Our copy may be the write end: open the same pipe for reading, which never blocks with O_NONBLOCK. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)f->pid, f->fd);
	src = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (src < 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot open it to read its data: %m", f->pid, f->fd,
				 f->link);
	if (ioctl(src, FIONREAD, &avail) || avail < 0) {
		r = snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot tell how much data it holds: %m", f->pid, f->fd,
			      f->link);
		goto out;
	}
	if (!avail)
		goto out;
	if ((unsigned)avail > PIPE_DATA_MAX) {
		r = snap_fail(ctx, -EFBIG, "pid %d: fd %d (%s) holds %d unread bytes, more than an image record takes",
			      f->pid, f->fd, f->link, avail);
		goto out;
	}
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) || fcntl(tmp[1], F_SETPIPE_SZ, capacity) < 0) {
		r = snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot make a pipe to copy its data into: %m", f->pid,
			      f->fd, f->link);
		goto out;
	}
	/* One call: tee always starts at the head of the pipe, so a second one would copy the same bytes. */
	n = tee(src, tmp[1], (size_t)avail, SPLICE_F_NONBLOCK);
	if (n != avail) {
		r = snap_fail(ctx, n < 0 ? -errno : -EIO, "pid %d: fd %d (%s): copied %zd of its %d unread bytes: %s",
			      f->pid, f->fd, f->link, n, avail, n < 0 ? strerror(errno) : "short copy");
		goto out;
	}
	pe->data.data = arena_alloc(&d->arena, (size_t)avail);
	if (!pe->data.data) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	for (int got = 0; got < avail;) {
		n = read(tmp[0], pe->data.data + got, (size_t)(avail - got));
		if (n <= 0) {
			r = snap_fail(ctx, n < 0 ? -errno : -EIO,
				      "pid %d: fd %d (%s): cannot read the copy of its data", f->pid, f->fd, f->link);
			goto out;
		}
		got += (int)n;
	}
	pe->data.len = (size_t)avail;
out:
	close(src);
	if (tmp[0] >= 0) {
		close(tmp[0]);
		close(tmp[1]);
	}
	return r;
}

int files_dump_pipe(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, uint32_t *ret_id)
{
	uint32_t id = (uint32_t)f->st.st_ino;
	PipeEntry *pe;
	int capacity, r;

	for (size_t i = 0; i < d->nr_pipes; i++) {
		if (d->pipes[i]->id == id) {
			*ret_id = id;
			return 0;
		}
	}
	capacity = fcntl(f->local, F_GETPIPE_SZ);
	if (capacity <= 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot read its capacity: %m", f->pid, f->fd,
				 f->link);
	pe = arena_alloc(&d->arena, sizeof(*pe));
	if (!pe)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	pipe_entry__init(pe);
	pe->id = id;
	pe->capacity = (uint32_t)capacity;
	r = peek_pipe(ctx, d, f, (uint32_t)capacity, pe);
	if (r)
		return r;
	if (arena_push(&d->arena, (void ***)&d->pipes, &d->nr_pipes, pe))
		return snap_fail(ctx, -ENOMEM, "out of memory");
	*ret_id = id;
	return 0;
}

int pipe_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	const char *who;
	uint32_t id;
	int r;

	who = files_outside_holder(ctx, d, f->link);
	if (who)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: %s %s is also open in %s, outside the dump", f->pid,
				 f->fd, f->ops->name, f->link, who);
	r = files_dump_pipe(ctx, d, f, &id);
	if (r)
		return r;
	/* Packet mode keeps write boundaries in the pipe; a copy of the bytes does not. */
	if ((f->flags & O_DIRECT) && (f->flags & O_ACCMODE) != O_RDONLY) {
		for (size_t i = 0; i < d->nr_pipes; i++)
			if (d->pipes[i]->id == id && d->pipes[i]->data.len)
				return snap_fail(ctx, -EOPNOTSUPP,
						 "pid %d: fd %d: %s %s is in packet mode (O_DIRECT) and holds unread "
						 "packets, whose boundaries cannot be kept",
						 f->pid, f->fd, f->ops->name, f->link);
	}
	if (f->ops->kind == FILE_KIND__FILE_PIPE) {
		f->fe->body_case = FILE_ENTRY__BODY_PIPE_ID;
		f->fe->pipe_id = id;
		return 0;
	}
	if (f->link[0] != '/' || strstr(f->link, " (deleted)"))
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: FIFO %s has no path we can open again", f->pid,
				 f->fd, f->link);
	f->fe->body_case = FILE_ENTRY__BODY_REG;
	f->fe->reg = arena_alloc(&d->arena, sizeof(*f->fe->reg));
	if (!f->fe->reg)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	reg_file_entry__init(f->fe->reg);
	f->fe->reg->path = arena_strdup(&d->arena, f->link);
	if (!f->fe->reg->path)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	f->fe->reg->has_pipe_id = 1;
	f->fe->reg->pipe_id = id;
	return 0;
}

int pipe_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	uint32_t id = fe->kind == FILE_KIND__FILE_PIPE ? fe->pipe_id : fe->reg->pipe_id;
	struct stat st;

	if (!files_pipe(fi, id) || (fe->kind == FILE_KIND__FILE_FIFO && !fe->reg->has_pipe_id))
		return snap_fail(ctx, -EINVAL, "image open-files.img: file %u refers to pipe %u, which the image lacks",
				 fe->id, id);
	if (fe->kind == FILE_KIND__FILE_PIPE)
		return 0;
	if (stat(fe->reg->path, &st))
		return snap_fail(ctx, -errno, "FIFO %s no longer exists: %m", fe->reg->path);
	if (!S_ISFIFO(st.st_mode))
		return snap_fail(ctx, -EINVAL, "%s is no longer a FIFO", fe->reg->path);
	return 0;
}

/* Gives the new pipe behind @fd the capacity and data of @pe. */
static int fill_pipe(struct snap_ctx *ctx, int fd, const PipeEntry *pe, const char *what)
{
	int cur = fcntl(fd, F_GETPIPE_SZ);

	if (cur < 0 || ((uint32_t)cur != pe->capacity && fcntl(fd, F_SETPIPE_SZ, pe->capacity) < 0))
		return snap_fail(ctx, -errno, "%s: cannot give it a capacity of %u bytes: %m", what, pe->capacity);
	for (size_t done = 0; done < pe->data.len;) {
		ssize_t n = write(fd, pe->data.data + done, pe->data.len - done);

		if (n <= 0)
			return snap_fail(ctx, n < 0 ? -errno : -EIO, "%s: cannot put its %zu unread bytes back: %s",
					 what, pe->data.len, n < 0 ? strerror(errno) : "no room");
		done += (size_t)n;
	}
	return 0;
}

/* One pipe of the image: made with its data, then every description of it opened from our copy. */
static int restore_one(struct snap_ctx *ctx, struct files_restore *rs, const PipeEntry *pe, bool fifo, const char *path)
{
	const struct files_image *fi = rs->fi;
	char what[PATH_MAX + 32];
	int p[2] = { -1, -1 }, holder, r;

	snprintf(what, sizeof(what), "%s %s", fifo ? "FIFO" : "pipe", fifo ? path : "");
	if (fifo) {
		/* Read-write: never waits for a peer, and keeps the FIFO's buffer alive until all ends exist. */
		holder = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (holder < 0)
			return snap_fail(ctx, -errno, "%s: cannot open it: %m", what);
		r = fill_pipe(ctx, holder, pe, what);
	} else {
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
			return snap_fail(ctx, -errno, "cannot create a pipe: %m");
		r = fill_pipe(ctx, p[1], pe, what);
		holder = p[0];
		p[0] = -1;
	}
	if (r) {
		close(holder);
		if (p[1] >= 0)
			close(p[1]);
		return r;
	}
	holder = files_keep(ctx, rs, holder, what);
	if (holder < 0) {
		if (p[1] >= 0)
			close(p[1]);
		return holder;
	}
	/* The write end stays ours until the end too: a pipe with no writer reads as ended. */
	if (p[1] >= 0 && (p[1] = files_keep(ctx, rs, p[1], what)) < 0)
		return p[1];
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		int fd;

		if (!files_wanted(rs, fe->id))
			continue;
		if (fifo ? (fe->kind != FILE_KIND__FILE_FIFO || fe->reg->pipe_id != pe->id)
			 : (fe->kind != FILE_KIND__FILE_PIPE || fe->pipe_id != pe->id))
			continue;
		fd = files_reopen(ctx, rs, holder, fe->flags, what);
		if (fd < 0)
			return fd;
		files_set(rs, fe->id, fd);
	}
	return 0;
}

int pipe_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t k = 0; k < fi->nr_pipes; k++) {
		const PipeEntry *pe = fi->pipes[k];
		const char *fifo_path = NULL;
		bool used = false;
		int r;

		for (size_t i = 0; i < fi->nr_files; i++) {
			const FileEntry *fe = fi->files[i];

			if (!files_wanted(rs, fe->id))
				continue;
			if (fe->kind == FILE_KIND__FILE_PIPE && fe->pipe_id == pe->id)
				used = true;
			if (fe->kind == FILE_KIND__FILE_FIFO && fe->reg->pipe_id == pe->id)
				fifo_path = fe->reg->path;
		}
		if (used && fifo_path)
			return snap_fail(ctx, -EINVAL, "image: pipe %u is both a pipe and the FIFO %s", pe->id,
					 fifo_path);
		if (!used && !fifo_path)
			continue;
		r = restore_one(ctx, rs, pe, fifo_path != NULL, fifo_path);
		if (r)
			return r;
	}
	return 0;
}
