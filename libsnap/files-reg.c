/*
 * Files opened by path: regular files (deleted ones with their content),
 * directories, the stateless character devices, O_PATH descriptors, and
 * memfds (name, content, seals).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "files.h"

#define DELETED_SUFFIX " (deleted)"
#define MEMFD_PREFIX   "/memfd:"
/* memfd_create(2) takes names of up to 249 bytes. */
#define MEMFD_NAME_MAX 249
/* Flags that described how a file was created, not how it is open (an O_TMPFILE file keeps __O_TMPFILE). */
#define OPEN_ONLY_FLAGS (O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | __O_TMPFILE)

static bool has_deleted_suffix(const char *link)
{
	size_t len = strlen(link), n = strlen(DELETED_SUFFIX);

	return len > n && !strcmp(link + len - n, DELETED_SUFFIX);
}

/* The character devices that hold no state, so that opening them again is the same thing. */
static bool stateless_chr(dev_t rdev)
{
	if (major(rdev) != 1)
		return false;
	switch (minor(rdev)) {
	case 3: /* null */
	case 5: /* zero */
	case 7: /* full */
	case 8: /* random */
	case 9: /* urandom */
		return true;
	default:
		return false;
	}
}

/* Terminals: the console, virtual consoles, serial lines, ptys. */
static bool is_tty(dev_t rdev)
{
	unsigned ma = major(rdev);

	return ma == 4 || ma == 5 || (ma >= 136 && ma <= 143) || ma == 2 || ma == 3;
}

/*
 * Whether @rdev is @pid's controlling terminal (tty_nr of /proc/PID/stat),
 * with its foreground group (tpgid, 0 if none) and @pid's session.
 */
static bool tty_of(pid_t pid, dev_t rdev, pid_t *ret_fg, pid_t *ret_sid)
{
	char path[64], buf[1024], *p;
	long tty_nr = 0, tpgid = 0, sid = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* After comm (which may hold anything, so up to the last ')'): state ppid pgrp session tty_nr tpgid. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %ld %ld %ld", &sid, &tty_nr, &tpgid) != 3)
		return false;
	/* tty_nr packs the device number its own way: minor bits 31-20 and 7-0, major bits 15-8. */
	if ((unsigned)((tty_nr >> 8) & 0xfff) != major(rdev) ||
	    (unsigned)((tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)) != minor(rdev))
		return false;
	*ret_fg = tpgid > 0 ? (pid_t)tpgid : 0;
	*ret_sid = (pid_t)sid;
	return true;
}

static int dump_chr(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, RegFileEntry *reg)
{
	dev_t rdev = f->st.st_rdev;

	/* A pty master (/dev/ptmx, 5:2; BSD masters, major 2) is the other side of a terminal, never one's own. */
	if (is_tty(rdev) && (d->flags & SNAP_DUMP_SHELL_JOB) && major(rdev) != 2 &&
	    !(major(rdev) == 5 && minor(rdev) == 2)) {
		pid_t fg = 0, sid = 0;

		/*
		 * The restored tree joins the caller's session, whose terminal this
		 * becomes: a session of the tree would come back without it.
		 */
		if (tty_of(f->pid, rdev, &fg, &sid)) {
			for (size_t i = 0; i < d->nr_pids; i++)
				if (d->pids[i] == sid)
					return snap_fail(
						ctx, -EOPNOTSUPP,
						"pid %d: fd %d is the terminal %s of session %d, which pid %d of "
						"the tree leads: a shell job is not a session leader",
						f->pid, f->fd, f->link, sid, sid);
		}
		/* Whatever terminal it was, it becomes the restoring caller's: two would be merged into one. */
		for (size_t i = 0; i < d->nr_files; i++) {
			const struct dump_file *o = d->files[i];

			if (o != f && o->fe && o->fe->body_case == FILE_ENTRY__BODY_REG && o->fe->reg &&
			    o->fe->reg->has_tty && o->st.st_rdev != rdev)
				return snap_fail(ctx, -EOPNOTSUPP,
						 "pid %d: fd %d is the terminal %s, another than %s (pid %d fd %d); "
						 "--shell-job restores one terminal",
						 f->pid, f->fd, f->link, o->link, o->pid, o->fd);
		}
		reg->has_tty = reg->tty = 1;
		reg->has_rdev = 1;
		reg->rdev = (uint64_t)rdev;
		if (fg) {
			reg->has_tty_fg_pgid = 1;
			reg->tty_fg_pgid = fg;
		}
		return 0;
	}
	if (is_tty(rdev))
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d is a terminal (%s, %u:%u); a process attached to its terminal is "
				 "dumped with --shell-job (a pty master is refused even then)",
				 f->pid, f->fd, f->link, major(rdev), minor(rdev));
	if (!stateless_chr(rdev))
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d is the character device %s (%u:%u), whose state cannot be checkpointed",
				 f->pid, f->fd, f->link, major(rdev), minor(rdev));
	reg->has_rdev = 1;
	reg->rdev = (uint64_t)rdev;
	return 0;
}

static int dump_memfd(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, RegFileEntry *reg)
{
	struct statfs sfs;
	uint32_t id;
	int seals, r;

	if (!fstatfs(f->local, &sfs) && sfs.f_type == HUGETLBFS_MAGIC)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d is a hugetlb memfd (%s), not supported yet", f->pid,
				 f->fd, f->link);
	seals = fcntl(f->local, F_GET_SEALS);
	if (seals < 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot read its seals: %m", f->pid, f->fd, f->link);
	r = files_dump_content(ctx, d, f, &id);
	if (r)
		return r;
	reg->has_content_id = 1;
	reg->content_id = id;
	/* The content entry is shared by every description of the memfd: name it once. */
	if (!d->contents[id - 1].ce->memfd_name) {
		size_t len = strlen(f->link) - strlen(MEMFD_PREFIX) - strlen(DELETED_SUFFIX);
		FileContentEntry *ce = d->contents[id - 1].ce;

		ce->memfd_name = arena_alloc(&d->arena, len + 1);
		if (!ce->memfd_name)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		memcpy(ce->memfd_name, f->link + strlen(MEMFD_PREFIX), len);
		ce->has_seals = 1;
		ce->seals = (uint32_t)seals;
	}
	return 0;
}

static int dump_deleted(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, RegFileEntry *reg)
{
	FileContentEntry *ce;
	uint32_t id;
	int r;

	if (f->st.st_nlink)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d (%s): the name it was opened by is gone but the file has %lu other "
				 "links, which cannot be found",
				 f->pid, f->fd, f->link, (unsigned long)f->st.st_nlink);
	r = files_dump_content(ctx, d, f, &id);
	if (r)
		return r;
	reg->has_content_id = 1;
	reg->content_id = id;
	ce = d->contents[id - 1].ce;
	if (!ce->path)
		ce->path = reg->path;
	return 0;
}

int reg_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	FileKind kind = f->fe->kind;
	bool deleted = has_deleted_suffix(f->link);
	RegFileEntry *reg = arena_alloc(&d->arena, sizeof(*reg));

	if (!reg)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	reg_file_entry__init(reg);
	f->fe->body_case = FILE_ENTRY__BODY_REG;
	f->fe->reg = reg;
	reg->pos = f->pos;
	reg->path = arena_strdup(&d->arena, f->link);
	if (!reg->path)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	if (kind == FILE_KIND__FILE_MEMFD)
		return dump_memfd(ctx, d, f, reg);
	if (f->link[0] != '/')
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d refers to %s, which has no path we can open again",
				 f->pid, f->fd, f->link);
	if (deleted)
		reg->path[strlen(reg->path) - strlen(DELETED_SUFFIX)] = '\0';
	switch (kind) {
	case FILE_KIND__FILE_REG:
		reg->has_size = 1;
		reg->size = (uint64_t)f->st.st_size;
		if (deleted || f->st.st_nlink == 0)
			return dump_deleted(ctx, d, f, reg);
		return 0;
	case FILE_KIND__FILE_CHR:
		if (deleted)
			break;
		return dump_chr(ctx, d, f, reg);
	case FILE_KIND__FILE_DIR:
	case FILE_KIND__FILE_PATH:
		if (deleted)
			break;
		return 0;
	default:
		return snap_fail(ctx, -EINVAL, "pid %d: fd %d: not a file opened by path", f->pid, f->fd);
	}
	return snap_fail(ctx, -EOPNOTSUPP,
			 "pid %d: fd %d refers to %s, which was deleted; only regular files come back deleted", f->pid,
			 f->fd, f->link);
}

/* ---- restore ---- */

static const FileContentEntry *content_of(const struct files_image *fi, const RegFileEntry *reg)
{
	if (!reg->has_content_id || reg->content_id < 1 || reg->content_id > fi->nr_contents)
		return NULL;
	return fi->contents[reg->content_id - 1];
}

int reg_content_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileContentEntry *ce)
{
	uint64_t end = 0;

	for (size_t i = 0; i < ce->n_runs; i++) {
		const FileDataRun *run = ce->runs[i];

		if (run->offset < end || run->len > ce->size || run->offset > ce->size - run->len ||
		    run->len > fi->data_size || run->data_off > fi->data_size - run->len)
			return snap_fail(ctx, -EINVAL, "image file-contents.img: content %u: bad data run %zu", ce->id,
					 i);
		end = run->offset + run->len;
	}
	if (ce->memfd_name) {
		if (strlen(ce->memfd_name) > MEMFD_NAME_MAX)
			return snap_fail(ctx, -EINVAL, "image file-contents.img: content %u: memfd name too long",
					 ce->id);
		return 0;
	}
	if (!ce->path || ce->path[0] != '/')
		return snap_fail(ctx, -EINVAL, "image file-contents.img: content %u: neither a memfd nor a path",
				 ce->id);
	{
		char *dir = strdup(ce->path);
		struct stat st;
		int r = 0;

		if (!dir)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		*strrchr(dir, '/') = '\0';
		if (stat(dir[0] ? dir : "/", &st) || !S_ISDIR(st.st_mode))
			r = snap_fail(ctx, -ENOENT,
				      "deleted file %s: its directory %s no longer exists, so it cannot be made again",
				      ce->path, dir[0] ? dir : "/");
		free(dir);
		return r;
	}
}

int reg_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	const RegFileEntry *reg = fe->reg;
	const FileContentEntry *ce = content_of(fi, reg);
	struct stat st;
	int r;

	if (fe->kind == FILE_KIND__FILE_MEMFD || reg->has_content_id) {
		if (!ce || (fe->kind == FILE_KIND__FILE_MEMFD) != (ce->memfd_name != NULL) ||
		    (fe->kind != FILE_KIND__FILE_MEMFD && fe->kind != FILE_KIND__FILE_REG))
			return snap_fail(ctx, -EINVAL, "image open-files.img: file %u: bad content reference", fe->id);
		return 0;
	}
	/* The terminal of a shell job becomes the caller's: files-share.c checks there is one. */
	if (reg->has_tty && reg->tty)
		return fe->kind == FILE_KIND__FILE_CHR
			       ? 0
			       : snap_fail(ctx, -EINVAL, "image open-files.img: file %u: a terminal of kind %d", fe->id,
					   fe->kind);
	r = fe->kind == FILE_KIND__FILE_PATH && (fe->flags & O_NOFOLLOW) ? lstat(reg->path, &st) : stat(reg->path, &st);
	if (r)
		return snap_fail(ctx, -errno, "file %s no longer exists: %m", reg->path);
	switch (fe->kind) {
	case FILE_KIND__FILE_REG:
		if (!S_ISREG(st.st_mode))
			return snap_fail(ctx, -EINVAL, "%s is no longer a regular file", reg->path);
		if (!reg->has_size || (uint64_t)st.st_size == reg->size)
			return 0;
		/* A file read only must be what the process read; a written one may have grown by its own hand. */
		if ((fe->flags & O_ACCMODE) == O_RDONLY || (uint64_t)st.st_size < reg->pos)
			return snap_fail(ctx, -ESTALE,
					 "file %s changed size since the dump: %llu bytes then, %lld now%s", reg->path,
					 (unsigned long long)reg->size, (long long)st.st_size,
					 (uint64_t)st.st_size < reg->pos ? ", below the open file's offset" : "");
		snap_warn(ctx,
			  "file %s changed size since the dump: %llu bytes then, %lld now (it is open for writing)",
			  reg->path, (unsigned long long)reg->size, (long long)st.st_size);
		return 0;
	case FILE_KIND__FILE_DIR:
		if (!S_ISDIR(st.st_mode))
			return snap_fail(ctx, -EINVAL, "%s is no longer a directory", reg->path);
		return 0;
	case FILE_KIND__FILE_CHR:
		if (!S_ISCHR(st.st_mode) || !reg->has_rdev || st.st_rdev != reg->rdev)
			return snap_fail(ctx, -EINVAL, "%s is no longer the same character device", reg->path);
		return 0;
	case FILE_KIND__FILE_PATH:
		return 0;
	default:
		return snap_fail(ctx, -EINVAL, "image open-files.img: file %u: not a file opened by path", fe->id);
	}
}

static int copy_runs(struct snap_ctx *ctx, const struct files_image *fi, const FileContentEntry *ce, int fd,
		     const char *what)
{
	const size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	int r = 0;

	if (!buf)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; !r && i < ce->n_runs; i++) {
		const FileDataRun *run = ce->runs[i];

		for (uint64_t done = 0; !r && done < run->len;) {
			size_t want = run->len - done < chunk ? (size_t)(run->len - done) : chunk;
			ssize_t n = pread(fi->data_fd, buf, want, (off_t)(run->data_off + done));

			if (n <= 0) {
				r = snap_fail(ctx, n < 0 ? -errno : -EIO,
					      "%s: cannot read its content from file-data.img: %s", what,
					      n < 0 ? strerror(errno) : "short file");
				break;
			}
			if (pwrite(fd, buf, (size_t)n, (off_t)(run->offset + done)) != n) {
				r = snap_fail(ctx, -errno, "%s: cannot write its content: %m", what);
				break;
			}
			done += (uint64_t)n;
		}
	}
	free(buf);
	return r;
}

static int make_memfd(struct snap_ctx *ctx, const FileContentEntry *ce, const char *what)
{
	unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int fd;

	/* Exec permission is fixed at creation since 6.3: ask for exactly what the original had. */
	flags |= (ce->seals & F_SEAL_EXEC) ? MFD_NOEXEC_SEAL : MFD_EXEC;
	fd = memfd_create(ce->memfd_name, flags);
	if (fd < 0 && errno == EINVAL && !(ce->seals & F_SEAL_EXEC))
		fd = memfd_create(ce->memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return snap_fail(ctx, -errno, "%s: memfd_create(\"%s\"): %m", what, ce->memfd_name);
	return fd;
}

/* A deleted file: made again where it was (or next to it if the name is taken now), then unlinked. */
static int make_deleted(struct snap_ctx *ctx, const FileContentEntry *ce, const char *what)
{
	size_t len = strlen(ce->path) + 32;
	char *name = malloc(len);
	int fd = -1;

	if (!name)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	snprintf(name, len, "%s", ce->path);
	for (int attempt = 0; attempt < 100; attempt++) {
		fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
		snprintf(name, len, "%s.snap-%d-%d", ce->path, (int)getpid(), attempt);
	}
	if (fd < 0) {
		int r = snap_fail(ctx, -errno, "%s: cannot make the deleted file again at %s: %m", what, name);

		free(name);
		return r;
	}
	if (unlink(name)) {
		int r = snap_fail(ctx, -errno, "%s: cannot delete %s again: %m", what, name);

		close(fd);
		free(name);
		return r;
	}
	free(name);
	return fd;
}

/* Creates the inode of a deleted file or memfd with its content, owner, mode and seals. */
static int make_content(struct snap_ctx *ctx, struct files_restore *rs, const FileContentEntry *ce)
{
	char what[64];
	int fd, r = 0;

	snprintf(what, sizeof(what), "%s %u", ce->memfd_name ? "memfd" : "deleted file", ce->id);
	fd = ce->memfd_name ? make_memfd(ctx, ce, what) : make_deleted(ctx, ce, what);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)ce->size))
		r = snap_fail(ctx, -errno, "%s: cannot size it to %llu bytes: %m", what, (unsigned long long)ce->size);
	if (!r)
		r = copy_runs(ctx, rs->fi, ce, fd, what);
	if (!r && fchown(fd, ce->uid, ce->gid))
		r = snap_fail(ctx, -errno, "%s: cannot give it owner %u:%u: %m", what, ce->uid, ce->gid);
	if (!r && fchmod(fd, ce->mode & 07777))
		r = snap_fail(ctx, -errno, "%s: cannot give it mode 0%o: %m", what, ce->mode & 07777);
	if (!r && ce->memfd_name && (ce->seals & ~(uint32_t)F_SEAL_EXEC) &&
	    fcntl(fd, F_ADD_SEALS, (int)(ce->seals & ~(uint32_t)F_SEAL_EXEC)))
		r = snap_fail(ctx, -errno, "%s: cannot seal it (0x%x): %m", what, ce->seals);
	if (r) {
		close(fd);
		return r;
	}
	return files_keep(ctx, rs, fd, what);
}

int reg_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;
	int *holder = malloc((fi->nr_contents ? fi->nr_contents : 1) * sizeof(*holder));
	int r = 0;

	if (!holder)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < fi->nr_contents; i++)
		holder[i] = -1;
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const RegFileEntry *reg = fe->reg;
		const FileContentEntry *ce;
		char what[PATH_MAX + 32];
		uint32_t flags;
		int fd;

		if (fe->body_case != FILE_ENTRY__BODY_REG || fe->kind == FILE_KIND__FILE_FIFO ||
		    !files_wanted(rs, fe->id))
			continue;
		snprintf(what, sizeof(what), "file %u (%s)", fe->id, reg->path);
		ce = content_of(fi, reg);
		/* O_TMPFILE is __O_TMPFILE | O_DIRECTORY, and such a file keeps both in its flags. */
		flags = fe->flags;
		if (fe->kind == FILE_KIND__FILE_REG || fe->kind == FILE_KIND__FILE_MEMFD)
			flags &= ~(uint32_t)(__O_TMPFILE | O_DIRECTORY);
		if (ce) {
			if (holder[ce->id - 1] < 0) {
				holder[ce->id - 1] = make_content(ctx, rs, ce);
				if (holder[ce->id - 1] < 0) {
					r = holder[ce->id - 1];
					break;
				}
			}
			/* Each description of the inode is opened anew: its own flags and offset. */
			fd = files_reopen(ctx, rs, holder[ce->id - 1], flags, what);
		} else {
			const char *path = reg->path;
			char tty[64];

			/* --shell-job: the caller's terminal, which the new process inherited from it. */
			if (reg->has_tty && reg->tty) {
				snprintf(tty, sizeof(tty), "/proc/self/fd/%d", files_share_tty_fd(fi));
				path = tty;
			}
			fd = open(path, (int)(flags & ~(uint32_t)(OPEN_ONLY_FLAGS | O_CLOEXEC)) | O_CLOEXEC |
						(path == tty ? O_NOCTTY : 0));
			if (fd < 0)
				fd = snap_fail(ctx, -errno, "%s: cannot open it again: %m", what);
			else
				fd = files_keep(ctx, rs, fd, what);
		}
		if (fd < 0) {
			r = fd;
			break;
		}
		files_set(rs, fe->id, fd);
		if (reg->pos && fe->kind != FILE_KIND__FILE_CHR && fe->kind != FILE_KIND__FILE_PATH &&
		    lseek(fd, (off_t)reg->pos, SEEK_SET) < 0)
			r = snap_fail(ctx, -errno, "%s: cannot seek to %llu: %m", what, (unsigned long long)reg->pos);
	}
	/* The holders are ours: they go with everything else files_restore does not keep. */
	free(holder);
	return r;
}
