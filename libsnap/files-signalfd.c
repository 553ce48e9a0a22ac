/* signalfd: the set of signals it reads. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "files.h"
#include "proc-fdinfo.h"

int signalfd_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	uint64_t mask;
	int bad_line, r;

	r = fdinfo_parse_signalfd(f->fdinfo, &mask, &bad_line);
	if (r == -ENOENT)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d: this kernel does not show a signalfd's mask in fdinfo", f->pid, f->fd);
	if (r)
		return snap_fail(ctx, r, "pid %d: fd %d: malformed signalfd fdinfo line %d", f->pid, f->fd, bad_line);
	f->fe->signalfd = arena_alloc(&d->arena, sizeof(*f->fe->signalfd));
	if (!f->fe->signalfd)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	signalfd_entry__init(f->fe->signalfd);
	f->fe->body_case = FILE_ENTRY__BODY_SIGNALFD;
	f->fe->signalfd->sigmask = mask;
	return 0;
}

int signalfd_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		uint64_t mask;
		char what[48];
		int fd, r;

		if (fe->kind != FILE_KIND__FILE_SIGNALFD || !files_wanted(rs, fe->id))
			continue;
		snprintf(what, sizeof(what), "signalfd (file %u)", fe->id);
		mask = fe->signalfd->sigmask;
		/* The raw call takes the kernel's 64-bit mask as is; glibc's sigset_t would need translating. */
		fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
		if (fd < 0)
			return snap_fail(ctx, -errno, "%s: cannot create it with mask 0x%llx: %m", what,
					 (unsigned long long)mask);
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
