/* timerfd: its clock, interval, time left and the expirations nobody has read yet. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "proc-fdinfo.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

#define NSEC 1000000000ull

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * NSEC + (uint64_t)ts->tv_nsec;
}

static struct timespec ns_ts(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / NSEC), .tv_nsec = (long)(ns % NSEC) };
}

int timerfd_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	struct fdinfo_timerfd tf;
	struct itimerspec before, after;
	struct timespec now;
	TimerfdEntry *te;
	char name[32];
	int bad_line, r = 0;

	/*
	 * The timer runs while the process is frozen. Ticks (from fdinfo) and
	 * time left (from timerfd_gettime) must describe the same moment: read
	 * the time left on both sides of fdinfo and retry if it expired between.
	 */
	snprintf(name, sizeof(name), "fdinfo/%d", f->fd);
	for (int attempt = 0;; attempt++) {
		char *text = NULL;
		size_t len;

		if (timerfd_gettime(f->local, &before))
			return snap_fail(ctx, -errno, "pid %d: fd %d: timerfd_gettime: %m", f->pid, f->fd);
		r = proc_read_file(ctx, f->pid, name, &text, &len);
		if (r)
			return r;
		r = fdinfo_parse_timerfd(text, &tf, &bad_line);
		free(text);
		if (r == -ENOENT)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: fd %d: this kernel does not show a timerfd's state in fdinfo", f->pid,
					 f->fd);
		if (r)
			return snap_fail(ctx, r, "pid %d: fd %d: malformed timerfd fdinfo line %d", f->pid, f->fd,
					 bad_line);
		if (timerfd_gettime(f->local, &after))
			return snap_fail(ctx, -errno, "pid %d: fd %d: timerfd_gettime: %m", f->pid, f->fd);
		clock_gettime(CLOCK_REALTIME, &now);
		if (ts_ns(&after.it_value) <= ts_ns(&before.it_value) &&
		    (ts_ns(&after.it_value) || !ts_ns(&before.it_value)))
			break;
		if (attempt == 10)
			return snap_fail(ctx, -EAGAIN,
					 "pid %d: fd %d: its timer expires too often to read it consistently", f->pid,
					 f->fd);
	}
	te = arena_alloc(&d->arena, sizeof(*te));
	if (!te)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	timerfd_entry__init(te);
	f->fe->body_case = FILE_ENTRY__BODY_TIMERFD;
	f->fe->timerfd = te;
	te->clockid = tf.clockid;
	te->settime_flags = tf.settime_flags;
	te->ticks = tf.ticks;
	te->value_ns = ts_ns(&after.it_value);
	te->interval_ns = ts_ns(&after.it_interval);
	te->dump_realtime_ns = ts_ns(&now);
	return 0;
}

int timerfd_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	const TimerfdEntry *te = fe->timerfd;

	(void)fi;
	switch (te->clockid) {
	case CLOCK_REALTIME:
	case CLOCK_MONOTONIC:
	case CLOCK_BOOTTIME:
	case CLOCK_REALTIME_ALARM:
	case CLOCK_BOOTTIME_ALARM:
		break;
	default:
		return snap_fail(ctx, -EINVAL, "image open-files.img: timerfd %u: clock %d is not one timerfd takes",
				 fe->id, te->clockid);
	}
	if (te->settime_flags & ~(uint32_t)(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET))
		return snap_fail(ctx, -EINVAL, "image open-files.img: timerfd %u: unknown settime flags 0%o", fe->id,
				 te->settime_flags);
	return 0;
}

int timerfd_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const TimerfdEntry *te = fe->timerfd;
		struct itimerspec its = { 0 };
		char what[48];
		int fd, r = 0;

		if (fe->kind != FILE_KIND__FILE_TIMERFD || !files_wanted(rs, fe->id))
			continue;
		snprintf(what, sizeof(what), "timerfd (file %u)", fe->id);
		fd = timerfd_create(te->clockid, TFD_CLOEXEC);
		if (fd < 0)
			return snap_fail(ctx, -errno, "%s: cannot create it on clock %d: %m", what, te->clockid);
		if (te->value_ns) {
			uint64_t at = te->value_ns;

			/*
			 * An absolute timer is set absolute again: on the wall clock to
			 * the same moment, on the others to as far ahead as it was.
			 */
			if (te->settime_flags & TFD_TIMER_ABSTIME) {
				struct timespec now;

				if (te->clockid == CLOCK_REALTIME || te->clockid == CLOCK_REALTIME_ALARM)
					at += te->dump_realtime_ns;
				else if (!clock_gettime(te->clockid, &now))
					at += ts_ns(&now);
			}
			its.it_value = ns_ts(at);
			its.it_interval = ns_ts(te->interval_ns);
			if (timerfd_settime(fd, (int)te->settime_flags, &its, NULL))
				r = snap_fail(ctx, -errno, "%s: cannot arm it: %m", what);
		}
		/* After settime, which clears them: expirations nobody read yet. */
		if (!r && te->ticks && ioctl(fd, TFD_IOC_SET_TICKS, &te->ticks))
			r = snap_fail(ctx, -errno, "%s: cannot give it %llu pending expirations: %m", what,
				      (unsigned long long)te->ticks);
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
