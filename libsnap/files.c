/* Open files: regular files, directories and character devices, by path, flags and offset. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "files.h"

/* Flags that described how a file was created, not how it is open. */
#define OPEN_ONLY_FLAGS (O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)

static const char *fd_kind_name(mode_t mode, const char *link)
{
	if (S_ISSOCK(mode))
		return "socket";
	if (S_ISFIFO(mode))
		return "pipe or FIFO";
	if (S_ISBLK(mode))
		return "block device";
	if (!strncmp(link, "anon_inode:", 11))
		return link + 11;
	return "special file";
}

static int collect_one(struct snap_ctx *ctx, struct dump_task *t, int fd, struct dump_fd *out)
{
	struct proc_fdinfo info;
	char name[32], *link = NULL;
	struct stat st;
	int r;

	snprintf(name, sizeof(name), "fd/%d", fd);
	r = proc_readlink(ctx, t->pid, name, &link);
	if (r)
		return r;
	snprintf(name, sizeof(name), "/proc/%d/fd/%d", t->pid, fd);
	if (stat(name, &st)) {
		r = snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot stat: %m", t->pid, fd, link);
		goto fail;
	}
	r = proc_read_fdinfo(ctx, t->pid, fd, &info);
	if (r)
		goto fail;
	if (info.flags & O_PATH) {
		r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d (%s) is an O_PATH descriptor, not supported yet", t->pid,
			      fd, link);
		goto fail;
	}
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISCHR(st.st_mode)) {
		size_t len = strlen(link);

		if (link[0] != '/' || (len > 10 && !strcmp(link + len - 10, " (deleted)")) || st.st_nlink == 0) {
			r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d refers to a deleted or unreachable file (%s), not supported yet",
				      t->pid, fd, link);
			goto fail;
		}
		out->fd = fd;
		out->kind = S_ISREG(st.st_mode) ? FD_KIND__FD_REG : S_ISDIR(st.st_mode) ? FD_KIND__FD_DIR : FD_KIND__FD_CHR;
		out->path = link;
		out->flags = info.flags;
		out->pos = info.pos;
		out->rdev = st.st_rdev;
		out->size = (uint64_t)st.st_size;
		return 0;
	}
	r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d is a %s (%s), not supported yet", t->pid, fd,
		      fd_kind_name(st.st_mode, link), link);
fail:
	free(link);
	return r;
}

int files_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	int *ids = NULL, r;
	size_t nr = 0;

	r = proc_list_ids(ctx, t->pid, "fd", &ids, &nr);
	if (r)
		return r;
	t->fds = calloc(nr ? nr : 1, sizeof(*t->fds));
	if (!t->fds) {
		free(ids);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nr; i++) {
		r = collect_one(ctx, t, ids[i], &t->fds[t->nr_fds]);
		if (r)
			break;
		t->nr_fds++;
	}
	free(ids);
	return r;
}

int files_dump(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	FsEntry fs = FS_ENTRY__INIT;
	struct img_writer *w;
	int r;

	fs.cwd = t->cwd;
	fs.root = t->root;
	fs.nr_fds = (uint32_t)t->nr_fds;
	r = img_writer_open(ctx, dir, IMG_KIND_FILES, t->pid, &w);
	if (r)
		return r;
	r = img_write_msg(ctx, w, &fs.base);
	for (size_t i = 0; !r && i < t->nr_fds; i++) {
		const struct dump_fd *d = &t->fds[i];
		FdEntry fe = FD_ENTRY__INIT;

		fe.fd = d->fd;
		fe.kind = d->kind;
		fe.path = d->path;
		fe.flags = d->flags;
		fe.pos = d->pos;
		if (d->kind == FD_KIND__FD_CHR) {
			fe.has_rdev = 1;
			fe.rdev = d->rdev;
		}
		if (d->kind == FD_KIND__FD_REG) {
			fe.has_file_size = 1;
			fe.file_size = d->size;
		}
		r = img_write_msg(ctx, w, &fe.base);
	}
	if (r) {
		img_writer_close(ctx, w);
		return r;
	}
	return img_writer_close(ctx, w);
}

int files_image_read(struct snap_ctx *ctx, struct img_set *set, int pid, struct files_image *ret)
{
	struct files_image fi = { 0 };
	struct img_reader *rd;
	int r;

	r = img_reader_open(ctx, set, IMG_KIND_FILES, pid, &rd);
	if (r)
		return r;
	r = img_read_one(ctx, rd, &fs_entry__descriptor, (ProtobufCMessage **)&fi.fs);
	if (!r && fi.fs->nr_fds > 1u << 20)
		r = snap_fail(ctx, -EINVAL, "image %s: implausible fd count %u", img_reader_name(rd), fi.fs->nr_fds);
	if (!r) {
		fi.fds = calloc(fi.fs->nr_fds ? fi.fs->nr_fds : 1, sizeof(*fi.fds));
		if (!fi.fds)
			r = snap_fail(ctx, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; !r && i < fi.fs->nr_fds; i++) {
		r = img_read_one(ctx, rd, &fd_entry__descriptor, (ProtobufCMessage **)&fi.fds[i]);
		if (!r)
			fi.nr_fds++;
	}
	img_reader_close(rd);
	if (r) {
		files_image_free(&fi);
		return r;
	}
	*ret = fi;
	return 0;
}

void files_image_free(struct files_image *fi)
{
	for (size_t i = 0; i < fi->nr_fds; i++)
		protobuf_c_message_free_unpacked(&fi->fds[i]->base, NULL);
	free(fi->fds);
	if (fi->fs)
		protobuf_c_message_free_unpacked(&fi->fs->base, NULL);
	memset(fi, 0, sizeof(*fi));
}

int files_max_fd(const struct files_image *fi)
{
	int max = -1;

	for (size_t i = 0; i < fi->nr_fds; i++)
		if (fi->fds[i]->fd > max)
			max = fi->fds[i]->fd;
	return max;
}

int files_image_validate(struct snap_ctx *ctx, const struct files_image *fi)
{
	struct stat st;

	if (fi->fs->cwd[0] != '/' || stat(fi->fs->cwd, &st) || !S_ISDIR(st.st_mode))
		return snap_fail(ctx, -ENOENT, "working directory %s no longer exists", fi->fs->cwd);
	/* The root directory is checked and entered with the other attributes (attrs.c). */
	for (size_t i = 0; i < fi->nr_fds; i++) {
		const FdEntry *fe = fi->fds[i];

		if (fe->fd < 0 || fe->fd > 1 << 20 || (i && fe->fd <= fi->fds[i - 1]->fd))
			return snap_fail(ctx, -EINVAL, "fd %d: bad or repeated fd number in the image", fe->fd);
		if (stat(fe->path, &st))
			return snap_fail(ctx, -errno, "fd %d: file %s no longer exists: %m", fe->fd, fe->path);
		switch (fe->kind) {
		case FD_KIND__FD_REG:
			if (!S_ISREG(st.st_mode))
				return snap_fail(ctx, -EINVAL, "fd %d: %s is no longer a regular file", fe->fd, fe->path);
			if (fe->has_file_size && (uint64_t)st.st_size < fe->pos && fe->pos <= fe->file_size)
				return snap_fail(ctx, -EINVAL,
						 "fd %d: file %s shrank from %llu to %lld bytes since the dump (offset %llu)",
						 fe->fd, fe->path, (unsigned long long)fe->file_size, (long long)st.st_size,
						 (unsigned long long)fe->pos);
			break;
		case FD_KIND__FD_DIR:
			if (!S_ISDIR(st.st_mode))
				return snap_fail(ctx, -EINVAL, "fd %d: %s is no longer a directory", fe->fd, fe->path);
			break;
		case FD_KIND__FD_CHR:
			if (!S_ISCHR(st.st_mode) || (fe->has_rdev && st.st_rdev != fe->rdev))
				return snap_fail(ctx, -EINVAL, "fd %d: %s is no longer the same character device", fe->fd,
						 fe->path);
			break;
		default:
			return snap_fail(ctx, -EINVAL, "fd %d: unknown kind %d in the image", fe->fd, fe->kind);
		}
	}
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int files_restore(struct snap_ctx *ctx, const struct files_image *fi, const int *keep, size_t nr_keep)
{
	size_t nr_live = 0;
	int *live = malloc((fi->nr_fds + nr_keep + 1) * sizeof(*live)), prev = -1;

	if (!live)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < fi->nr_fds; i++) {
		const FdEntry *fe = fi->fds[i];
		int flags = (int)(fe->flags & ~(uint32_t)OPEN_ONLY_FLAGS);
		int fd = open(fe->path, flags), r = 0;

		if (fd < 0)
			r = snap_fail(ctx, -errno, "fd %d: cannot open %s again: %m", fe->fd, fe->path);
		else if (fe->kind == FD_KIND__FD_REG && lseek(fd, (off_t)fe->pos, SEEK_SET) < 0)
			r = snap_fail(ctx, -errno, "fd %d: cannot seek %s to %llu: %m", fe->fd, fe->path,
				      (unsigned long long)fe->pos);
		else if (fd != fe->fd && dup3(fd, fe->fd, flags & O_CLOEXEC) < 0)
			r = snap_fail(ctx, -errno, "fd %d: cannot place %s: %m", fe->fd, fe->path);
		if (fd >= 0 && fd != fe->fd)
			close(fd);
		if (r) {
			free(live);
			return r;
		}
		live[nr_live++] = fe->fd;
	}
	/* Everything else we hold goes, but the few fds the engine still needs. */
	for (size_t i = 0; i < nr_keep; i++)
		live[nr_live++] = keep[i];
	qsort(live, nr_live, sizeof(*live), cmp_int);
	for (size_t i = 0; i < nr_live; i++) {
		if (live[i] > prev + 1)
			close_range((unsigned)prev + 1, (unsigned)live[i] - 1, 0);
		prev = live[i];
	}
	close_range((unsigned)prev + 1, ~0u, 0);
	free(live);
	return 0;
}
