/* eventfd: its counter and whether it counts as a semaphore. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "files.h"
#include "proc-fdinfo.h"

int eventfd_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	struct fdinfo_eventfd ev;
	int bad_line, r;

	r = fdinfo_parse_eventfd(f->fdinfo, &ev, &bad_line);
	if (r == -ENOENT)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d: this kernel does not show an eventfd's counter and mode in fdinfo",
				 f->pid, f->fd);
	if (r)
		return snap_fail(ctx, r, "pid %d: fd %d: malformed eventfd fdinfo line %d", f->pid, f->fd, bad_line);
	f->fe->eventfd = arena_alloc(&d->arena, sizeof(*f->fe->eventfd));
	if (!f->fe->eventfd)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	eventfd_entry__init(f->fe->eventfd);
	f->fe->body_case = FILE_ENTRY__BODY_EVENTFD;
	f->fe->eventfd->count = ev.count;
	f->fe->eventfd->semaphore = ev.semaphore;
	return 0;
}

int eventfd_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const EventfdEntry *ev = fe->eventfd;
		char what[48];
		int fd, r;

		if (fe->kind != FILE_KIND__FILE_EVENTFD || !files_wanted(rs, fe->id))
			continue;
		snprintf(what, sizeof(what), "eventfd (file %u)", fe->id);
		if (ev->count == UINT64_MAX)
			return snap_fail(ctx, -EINVAL, "%s: counter out of range in the image", what);
		fd = eventfd(0, EFD_CLOEXEC | (ev->semaphore ? EFD_SEMAPHORE : 0));
		if (fd < 0)
			return snap_fail(ctx, -errno, "%s: cannot create it: %m", what);
		/* The counter is 64 bits; eventfd() takes only 32 of them, a write adds them all. */
		if (ev->count && write(fd, &ev->count, sizeof(ev->count)) != sizeof(ev->count)) {
			r = snap_fail(ctx, -errno, "%s: cannot set its counter to %llu: %m", what,
				      (unsigned long long)ev->count);

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
