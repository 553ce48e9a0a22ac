/*
 * File locks: flock, POSIX and OFD locks held through the dumped fds, as
 * fdinfo lists them, checked before restore and taken again once the fds
 * are open in the new process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include "attrs.h"

static const char *kind_name(int kind)
{
	return kind == FILE_LOCK_KIND__LOCK_FLOCK ? "flock" : kind == FILE_LOCK_KIND__LOCK_POSIX ? "POSIX" : "OFD";
}

/*
 * A flock or OFD lock shows under every fd of its open file description:
 * it is taken once, through the first of them.
 */
static bool already_listed(pid_t pid, const struct task_attrs *at, int fd, const FileLockEntry *l)
{
	for (size_t i = 0; i < at->nr_locks; i++) {
		const FileLockEntry *o = &at->locks[i];

		if (o->kind != l->kind || o->write != l->write || o->start != l->start || o->has_end != l->has_end ||
		    o->end != l->end || o->fd == fd)
			continue;
		if (syscall(SYS_kcmp, pid, pid, KCMP_FILE, o->fd, fd) == 0)
			return true;
	}
	return false;
}

/* The path a dumped fd's file was opened by, for messages. */
static const char *dump_fd_path(const struct dump_task *t, const struct dump_fd *d)
{
	for (size_t i = 0; t->files && i < t->files->nr_files; i++)
		if (t->files->files[i]->id == d->file_id)
			return t->files->files[i]->link;
	return "?";
}

int locks_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	struct task_attrs *at = t->attrs;

	for (size_t i = 0; i < t->nr_fds; i++) {
		const struct dump_fd *d = &t->fds[i];
		struct proc_file_lock *pl = NULL;
		size_t n = 0;
		int r = proc_read_fd_locks(ctx, t->pid, d->fd, &pl, &n);

		for (size_t k = 0; !r && k < n; k++) {
			FileLockEntry l = FILE_LOCK_ENTRY__INIT, *nl;

			switch (pl[k].kind) {
			case PROC_LOCK_FLOCK:
				l.kind = FILE_LOCK_KIND__LOCK_FLOCK;
				break;
			case PROC_LOCK_POSIX:
				l.kind = FILE_LOCK_KIND__LOCK_POSIX;
				break;
			case PROC_LOCK_OFD:
				l.kind = FILE_LOCK_KIND__LOCK_OFD;
				break;
			default:
				r = snap_fail(ctx, -EOPNOTSUPP,
					      "pid %d: fd %d (%s) holds a %s, which cannot be restored", t->pid, d->fd,
					      dump_fd_path(t, d), pl[k].kind_name);
				continue;
			}
			l.fd = d->fd;
			l.write = pl[k].write;
			l.start = pl[k].start;
			l.has_end = !pl[k].to_eof;
			l.end = pl[k].to_eof ? 0 : pl[k].end;
			if (l.kind != FILE_LOCK_KIND__LOCK_POSIX && already_listed(t->pid, at, d->fd, &l))
				continue;
			nl = realloc(at->locks, (at->nr_locks + 1) * sizeof(*nl));
			if (!nl) {
				r = snap_fail(ctx, -ENOMEM, "out of memory");
				continue;
			}
			at->locks = nl;
			at->locks[at->nr_locks++] = l;
		}
		free(pl);
		if (r)
			return r;
	}
	return 0;
}

static struct flock range_of(const FileLockEntry *l)
{
	return (struct flock){
		.l_type = l->write ? F_WRLCK : F_RDLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)l->start,
		.l_len = l->has_end ? (off_t)(l->end - l->start + 1) : 0,
	};
}

/* The open file behind image fd @fd, or NULL. */
static const FileEntry *find_fd(const struct files_image *files, int fd)
{
	for (size_t i = 0; i < files->nr_fds; i++)
		if (files->fds[i]->fd == fd) {
			uint32_t id = files->fds[i]->file_id;

			return id >= 1 && id <= files->nr_files ? files->files[id - 1] : NULL;
		}
	return NULL;
}

/* The pid holding a flock on @st's file, from /proc/locks; 0 if it cannot be told. */
static int flock_holder(const struct stat *st)
{
	struct proc_file_lock *l = NULL;
	FILE *f = fopen("/proc/locks", "re");
	int pid = 0, bad_line, r;
	size_t n = 0;

	if (!f)
		return 0;
	r = proc_parse_locks(f, &l, &n, &bad_line);
	fclose(f);
	if (r)
		return 0;
	for (size_t i = 0; i < n && !pid; i++)
		if (l[i].kind == PROC_LOCK_FLOCK && l[i].ino == st->st_ino && l[i].dev_major == major(st->st_dev) &&
		    l[i].dev_minor == minor(st->st_dev))
			pid = l[i].pid;
	free(l);
	return pid;
}

/* Whether another process holds a lock that conflicts with @l, tested on a descriptor of our own. */
static int conflicting_holder(const FileEntry *fe, const FileLockEntry *l, int *ret_pid)
{
	int fd = open(fe->reg->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), r = 0;
	struct flock fl = range_of(l);
	struct stat st;

	*ret_pid = 0;
	if (fd < 0)
		return -errno;
	switch (l->kind) {
	case FILE_LOCK_KIND__LOCK_FLOCK:
		/* flock has no test: take it for a moment (closing drops it). */
		if (flock(fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB)) {
			r = errno == EWOULDBLOCK ? 1 : -errno;
			if (r > 0 && !fstat(fd, &st))
				*ret_pid = flock_holder(&st);
		}
		break;
	case FILE_LOCK_KIND__LOCK_POSIX:
	case FILE_LOCK_KIND__LOCK_OFD:
		if (fcntl(fd, l->kind == FILE_LOCK_KIND__LOCK_POSIX ? F_GETLK : F_OFD_GETLK, &fl))
			r = -errno;
		else if (fl.l_type != F_UNLCK)
			r = 1, *ret_pid = fl.l_pid;
		break;
	default:
		r = -EINVAL;
		break;
	}
	close(fd);
	return r;
}

int locks_validate(struct snap_ctx *ctx, const TaskAttrsEntry *ta, const struct files_image *files, int pid)
{
	for (size_t i = 0; i < ta->n_file_locks; i++) {
		const FileLockEntry *l = ta->file_locks[i];
		const FileEntry *fe = find_fd(files, l->fd);
		int holder, r;

		if (!fe || l->kind < FILE_LOCK_KIND__LOCK_FLOCK || l->kind > FILE_LOCK_KIND__LOCK_OFD ||
		    (l->has_end && l->end < l->start) || l->start > INT64_MAX || (l->has_end && l->end > INT64_MAX) ||
		    (l->kind == FILE_LOCK_KIND__LOCK_FLOCK && (l->start || l->has_end)))
			return snap_fail(ctx, -EINVAL, "image core-%d.img: bad %s lock on fd %d", pid,
					 kind_name(l->kind), l->fd);
		/* A deleted file is its own again at restore: nobody else can hold a lock on it. */
		if ((fe->kind != FILE_KIND__FILE_REG && fe->kind != FILE_KIND__FILE_DIR) || !fe->reg ||
		    fe->reg->has_content_id)
			continue;
		r = conflicting_holder(fe, l, &holder);
		if (r < 0)
			return snap_fail(ctx, r, "pid %d: fd %d: cannot test the %s lock on %s: %s", pid, l->fd,
					 kind_name(l->kind), fe->reg->path, strerror(-r));
		if (r > 0 && holder > 0)
			return snap_fail(ctx, -EAGAIN,
					 "pid %d: fd %d: %s is locked by pid %d; its %s lock cannot be taken again",
					 pid, l->fd, fe->reg->path, holder, kind_name(l->kind));
		if (r > 0)
			return snap_fail(
				ctx, -EAGAIN,
				"pid %d: fd %d: %s is locked by someone else; its %s lock cannot be taken again", pid,
				l->fd, fe->reg->path, kind_name(l->kind));
	}
	return 0;
}

int attrs_restore_locks(struct snap_ctx *ctx, const TaskCoreEntry *core)
{
	const TaskAttrsEntry *ta = core->attrs;

	for (size_t i = 0; i < ta->n_file_locks; i++) {
		const FileLockEntry *l = ta->file_locks[i];
		struct flock fl = range_of(l);
		int r;

		if (l->kind == FILE_LOCK_KIND__LOCK_FLOCK)
			r = flock(l->fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
		else
			r = fcntl(l->fd, l->kind == FILE_LOCK_KIND__LOCK_POSIX ? F_SETLK : F_OFD_SETLK, &fl);
		if (r)
			return snap_fail(ctx, -errno, "fd %d: cannot take its %s %s lock again: %m", l->fd,
					 l->write ? "write" : "read", kind_name(l->kind));
	}
	return 0;
}
