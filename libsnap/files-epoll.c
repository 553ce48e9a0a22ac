/* epoll: every registered target with its events and data, registered again once all targets exist. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "files.h"
#include "proc-fdinfo.h"

/* epoll registers a (file, fd number) pair; fd numbers above this are not plausible. */
#define TFD_MAX (1 << 20)

/*
 * Whether fd @cand of @cpid is the file registered in @epfd of @pid as @tfd
 * (the @toff-th registration with that number).
 */
static bool is_target(pid_t cpid, int cand, pid_t pid, int epfd, int tfd, int toff)
{
	struct kcmp_epoll_slot slot = { .efd = (__u32)epfd, .tfd = (__u32)tfd, .toff = (__u32)toff };

	return syscall(SYS_kcmp, cpid, pid, KCMP_EPOLL_TFD, cand, (unsigned long)&slot) == 0;
}

/*
 * The file registered as @tfd: usually still at that number, else at any
 * other fd of the process, else held by another process of the tree (the
 * epoll was shared, and only another holder kept the target open).
 */
static struct dump_file *find_target(struct files_dump *d, struct dump_file *f, int tfd, int toff)
{
	struct dump_file *t = files_dump_by_fd(d, tfd);

	if (t && is_target(f->pid, tfd, f->pid, f->fd, tfd, toff))
		return t;
	for (size_t i = 0; i < d->cur_nr_fds; i++)
		if (is_target(f->pid, d->cur_fds[i].fd, f->pid, f->fd, tfd, toff))
			return d->files[d->cur_fds[i].file_id - 1];
	for (size_t k = 0; k < d->nr_collected; k++) {
		const struct dump_task *o = d->collected[k].t;

		for (size_t i = 0; o->pid != f->pid && i < o->nr_fds; i++)
			if (is_target(o->pid, o->fds[i].fd, f->pid, f->fd, tfd, toff))
				return d->files[o->fds[i].file_id - 1];
	}
	return NULL;
}

int epoll_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	struct fdinfo_epoll_tfd *tfds = NULL;
	EpollEntry *ee;
	size_t nr = 0;
	int bad_line, r;

	r = fdinfo_parse_epoll(f->fdinfo, &tfds, &nr, &bad_line);
	if (r == -ENOMEM)
		return snap_fail(ctx, r, "out of memory");
	if (r)
		return snap_fail(ctx, r, "pid %d: fd %d: malformed epoll fdinfo line %d", f->pid, f->fd, bad_line);
	ee = arena_alloc(&d->arena, sizeof(*ee));
	if (!ee) {
		free(tfds);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	epoll_entry__init(ee);
	f->fe->body_case = FILE_ENTRY__BODY_EPOLL;
	f->fe->epoll = ee;
	for (size_t i = 0; i < nr; i++) {
		EpollTargetEntry *te = arena_alloc(&d->arena, sizeof(*te));
		struct dump_file *target;
		int toff = 0;

		/* The same number registered twice (closed, reused) tells the registrations apart by order. */
		for (size_t k = 0; k < i; k++)
			toff += tfds[k].tfd == tfds[i].tfd;
		if (!te || arena_push(&d->arena, (void ***)&ee->targets, &ee->n_targets, te)) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		if (tfds[i].tfd > TFD_MAX) {
			r = snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: epoll target fd %d is out of range", f->pid,
				      f->fd, tfds[i].tfd);
			break;
		}
		target = find_target(d, f, tfds[i].tfd, toff);
		if (!target) {
			r = snap_fail(ctx, -EOPNOTSUPP,
				      "pid %d: fd %d: epoll watches a file registered as fd %d that no fd of the "
				      "tree holds any more",
				      f->pid, f->fd, tfds[i].tfd);
			break;
		}
		epoll_target_entry__init(te);
		te->tfd = tfds[i].tfd;
		te->file_id = target->id;
		te->events = tfds[i].events;
		te->data = tfds[i].data;
	}
	free(tfds);
	return r;
}

int epoll_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	for (size_t i = 0; i < fe->epoll->n_targets; i++) {
		const EpollTargetEntry *te = fe->epoll->targets[i];

		if (te->tfd < 0 || te->tfd > TFD_MAX || te->file_id < 1 || te->file_id > fi->nr_files)
			return snap_fail(ctx, -EINVAL,
					 "image open-files.img: epoll %u: bad target %zu (fd %d, file %u)", fe->id, i,
					 te->tfd, te->file_id);
	}
	return 0;
}

int epoll_max_tfd(const struct files_image *fi)
{
	int max = -1;

	for (size_t i = 0; i < fi->nr_files; i++) {
		if (fi->files[i]->kind != FILE_KIND__FILE_EPOLL || fi->files[i]->body_case != FILE_ENTRY__BODY_EPOLL)
			continue;
		for (size_t k = 0; k < fi->files[i]->epoll->n_targets; k++)
			if (fi->files[i]->epoll->targets[k]->tfd > max)
				max = fi->files[i]->epoll->targets[k]->tfd;
	}
	return max;
}

int epoll_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		char what[48];
		int fd, r;

		if (fe->kind != FILE_KIND__FILE_EPOLL || !files_wanted(rs, fe->id))
			continue;
		snprintf(what, sizeof(what), "epoll (file %u)", fe->id);
		fd = epoll_create1(EPOLL_CLOEXEC);
		if (fd < 0)
			return snap_fail(ctx, -errno, "%s: cannot create it: %m", what);
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

int epoll_restore_targets(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->kind != FILE_KIND__FILE_EPOLL || !files_wanted(rs, fe->id))
			continue;
		for (size_t k = 0; k < fe->epoll->n_targets; k++) {
			const EpollTargetEntry *te = fe->epoll->targets[k];
			struct epoll_event ev = { .events = te->events, .data.u64 = te->data };

			int saved, fdflags = fcntl(te->tfd, F_GETFD), r = 0;

			/*
			 * epoll keys a registration by file and fd number: put the file at
			 * its number for the call. What sits there now may be the engine's
			 * (this may run before the tree forks): it steps aside and comes
			 * back. The registration outlives the number, as it did at dump.
			 */
			saved = fcntl(te->tfd, F_DUPFD_CLOEXEC, rs->base);
			if (saved < 0 && errno != EBADF)
				return snap_fail(ctx, -errno, "epoll (file %u): cannot move fd %d aside: %m", fe->id,
						 te->tfd);
			if (dup3(rs->fds[te->file_id - 1], te->tfd, O_CLOEXEC) < 0)
				r = snap_fail(ctx, -errno, "epoll (file %u): cannot put file %u at fd %d: %m", fe->id,
					      te->file_id, te->tfd);
			if (!r && epoll_ctl(rs->fds[fe->id - 1], EPOLL_CTL_ADD, te->tfd, &ev))
				r = snap_fail(ctx, -errno, "epoll (file %u): cannot watch fd %d (file %u) for 0x%x: %m",
					      fe->id, te->tfd, te->file_id, te->events);
			if (saved >= 0) {
				if (dup3(saved, te->tfd, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0 &&
				    !r)
					r = snap_fail(ctx, -errno, "epoll (file %u): cannot put fd %d back: %m", fe->id,
						      te->tfd);
				close(saved);
			} else {
				close(te->tfd);
			}
			if (r)
				return r;
		}
	}
	return 0;
}
