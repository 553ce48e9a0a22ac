/* inotify: its watches, by path and mask, with the same watch descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "proc-fdinfo.h"

/* Watch descriptors are reached by adding and removing watches one by one; this many at most. */
#define WD_MAX (1 << 20)
/* Flags the kernel keeps in a mark's mask next to the events. */
#define KEPT_FLAGS (IN_ONESHOT | IN_EXCL_UNLINK)

/* Opens a mount point of the filesystem with kernel device number @sdev, for open_by_handle_at. */
static int open_mount_of(uint32_t sdev)
{
	unsigned want_major = sdev >> 20, want_minor = sdev & 0xfffff;
	char *line = NULL;
	size_t cap = 0;
	int fd = -1;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -1;
	while (fd < 0 && getline(&line, &cap, f) > 0) {
		unsigned ma, mi;
		char mnt[PATH_MAX];

		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &ma, &mi, mnt) != 3 || ma != want_major ||
		    mi != want_minor)
			continue;
		fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	free(line);
	fclose(f);
	return fd;
}

/* The path of the inode a watch is on, found from the file handle fdinfo shows. */
static int watch_path(struct snap_ctx *ctx, struct dump_file *f, const struct fdinfo_inotify_wd *w, char *path,
		      size_t len, bool *ret_nofollow)
{
	struct {
		struct file_handle h;
		unsigned char bytes[FDINFO_FHANDLE_MAX];
	} fh;
	char proc[64];
	struct stat st;
	int mfd, fd;
	ssize_t n;

	if (!w->fhandle_bytes)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d: inotify watch %d: its filesystem gives no file handle", f->pid, f->fd,
				 w->wd);
	mfd = open_mount_of(w->sdev);
	if (mfd < 0)
		return snap_fail(ctx, -ENOENT, "pid %d: fd %d: inotify watch %d: no mount of device %u:%u here", f->pid,
				 f->fd, w->wd, w->sdev >> 20, w->sdev & 0xfffff);
	fh.h.handle_bytes = w->fhandle_bytes;
	fh.h.handle_type = w->fhandle_type;
	memcpy(fh.h.f_handle, w->fhandle, w->fhandle_bytes);
	fd = open_by_handle_at(mfd, &fh.h, O_PATH | O_CLOEXEC);
	close(mfd);
	if (fd < 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d: inotify watch %d: cannot find the watched inode %llu: %m",
				 f->pid, f->fd, w->wd, (unsigned long long)w->ino);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, path, len - 1);
	close(fd);
	if (n <= 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d: inotify watch %d: cannot name the watched inode: %m",
				 f->pid, f->fd, w->wd);
	path[n] = '\0';
	*ret_nofollow = false;
	if (path[0] == '/' && !stat(path, &st) && st.st_ino == w->ino)
		return 0;
	/* A watch added with IN_DONT_FOLLOW may sit on a symlink itself. */
	if (path[0] == '/' && !lstat(path, &st) && st.st_ino == w->ino) {
		*ret_nofollow = true;
		return 0;
	}
	return snap_fail(ctx, -EOPNOTSUPP,
			 "pid %d: fd %d: inotify watch %d is on inode %llu (%s), which has no path any more", f->pid,
			 f->fd, w->wd, (unsigned long long)w->ino, path);
}

int inotify_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	struct fdinfo_inotify_wd *wds = NULL;
	InotifyEntry *ie;
	size_t nr = 0;
	int bad_line, pending = 0, r;

	/* Queued events cannot be put back: they would be lost. */
	if (ioctl(f->local, FIONREAD, &pending))
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot tell how many inotify events are queued: %m",
				 f->pid, f->fd);
	if (pending)
		return snap_fail(
			ctx, -EOPNOTSUPP,
			"pid %d: fd %d: inotify instance has %d bytes of events not read yet, which cannot be restored",
			f->pid, f->fd, pending);
	r = fdinfo_parse_inotify(f->fdinfo, &wds, &nr, &bad_line);
	if (r == -ENOMEM)
		return snap_fail(ctx, r, "out of memory");
	if (r)
		return snap_fail(ctx, r, "pid %d: fd %d: malformed inotify fdinfo line %d", f->pid, f->fd, bad_line);
	ie = arena_alloc(&d->arena, sizeof(*ie));
	if (!ie) {
		free(wds);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	inotify_entry__init(ie);
	f->fe->body_case = FILE_ENTRY__BODY_INOTIFY;
	f->fe->inotify = ie;
	for (size_t i = 0; i < nr; i++) {
		InotifyWatchEntry *we = arena_alloc(&d->arena, sizeof(*we));
		char path[PATH_MAX];
		bool nofollow;

		if (!we || arena_push(&d->arena, (void ***)&ie->watches, &ie->n_watches, we)) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		if (wds[i].wd < 1 || wds[i].wd > WD_MAX) {
			r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: inotify watch descriptor %d is out of range",
				      f->pid, f->fd, wds[i].wd);
			break;
		}
		r = watch_path(ctx, f, &wds[i], path, sizeof(path), &nofollow);
		if (r)
			break;
		inotify_watch_entry__init(we);
		we->wd = wds[i].wd;
		we->mask = wds[i].mask | (nofollow ? IN_DONT_FOLLOW : 0);
		we->ino = wds[i].ino;
		we->path = arena_strdup(&d->arena, path);
		if (!we->path) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
	}
	free(wds);
	return r;
}

static int cmp_wd(const void *a, const void *b)
{
	const InotifyWatchEntry *x = *(InotifyWatchEntry *const *)a, *y = *(InotifyWatchEntry *const *)b;

	return (x->wd > y->wd) - (x->wd < y->wd);
}

int inotify_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	(void)fi;
	/* Sorted by wd: fdinfo lists them newest first, and restore makes them in order. */
	if (fe->inotify->n_watches)
		qsort(fe->inotify->watches, fe->inotify->n_watches, sizeof(*fe->inotify->watches), cmp_wd);
	for (size_t i = 0; i < fe->inotify->n_watches; i++) {
		const InotifyWatchEntry *we = fe->inotify->watches[i];
		struct stat st;

		if (we->wd < 1 || we->wd > WD_MAX || (i && we->wd == fe->inotify->watches[i - 1]->wd))
			return snap_fail(ctx, -EINVAL, "image open-files.img: inotify %u: bad or repeated watch %d",
					 fe->id, we->wd);
		if (((we->mask & IN_DONT_FOLLOW) ? lstat(we->path, &st) : stat(we->path, &st)))
			return snap_fail(ctx, -errno, "inotify watch %d: %s no longer exists: %m", we->wd, we->path);
		if (st.st_ino != we->ino)
			snap_warn(ctx, "inotify watch %d: %s is another file than at the dump (inode %llu, was %llu)",
				  we->wd, we->path, (unsigned long long)st.st_ino, (unsigned long long)we->ino);
	}
	return 0;
}

/* Adds the watch as watch descriptor we->wd: the kernel hands them out in turn, so skip up to it. */
static int add_watch(struct snap_ctx *ctx, int fd, const InotifyWatchEntry *we, const char *what)
{
	uint32_t mask = we->mask & (IN_ALL_EVENTS | KEPT_FLAGS | IN_DONT_FOLLOW);

	for (;;) {
		int wd = inotify_add_watch(fd, we->path, mask);

		if (wd < 0)
			return snap_fail(ctx, -errno, "%s: cannot watch %s (mask 0x%x): %m", what, we->path, mask);
		if (wd == we->wd)
			return 0;
		if (wd > we->wd)
			return snap_fail(ctx, -EINVAL, "%s: watch on %s became %d, past %d", what, we->path, wd,
					 we->wd);
		if (inotify_rm_watch(fd, wd))
			return snap_fail(ctx, -errno, "%s: cannot remove watch %d: %m", what, wd);
	}
}

int inotify_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		char what[48], buf[4096];
		int fd, r = 0;

		if (fe->kind != FILE_KIND__FILE_INOTIFY || !files_wanted(rs, fe->id))
			continue;
		snprintf(what, sizeof(what), "inotify (file %u)", fe->id);
		fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (fd < 0)
			return snap_fail(ctx, -errno, "%s: cannot create it: %m", what);
		for (size_t k = 0; !r && k < fe->inotify->n_watches; k++)
			r = add_watch(ctx, fd, fe->inotify->watches[k], what);
		/* Removing the stepping-stone watches queued IN_IGNORED events the process must not see. */
		while (!r && read(fd, buf, sizeof(buf)) > 0)
			;
		if (r) {
			close(fd);
			return r;
		}
		fd = files_keep(ctx, rs, fd, what);
		if (fd < 0)
			return fd;
		files_set(rs, fe->id, fd);
		r = files_set_fl(ctx, fd, fe->flags, what);
		if (r)
			return r;
	}
	return 0;
}
