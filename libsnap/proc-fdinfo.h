/* Parsers of the kind-specific lines of /proc/PID/fdinfo/FD (eventfd, signalfd, timerfd, epoll, inotify, locks). */
#ifndef SNAP_PROC_FDINFO_H
#define SNAP_PROC_FDINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Each parser takes the whole fdinfo text (NUL-terminated) and returns 0,
 * -ENOENT if the lines it needs are missing, or -EINVAL if one of them is
 * malformed (*ret_bad_line = its 1-based number when not NULL).
 */

struct fdinfo_eventfd {
	uint64_t count;
	bool semaphore;
};
int fdinfo_parse_eventfd(const char *text, struct fdinfo_eventfd *out, int *ret_bad_line);

int fdinfo_parse_signalfd(const char *text, uint64_t *ret_sigmask, int *ret_bad_line);

struct fdinfo_timerfd {
	int clockid;
	uint64_t ticks;
	uint32_t settime_flags;
	uint64_t value_sec, value_nsec;
	uint64_t interval_sec, interval_nsec;
};
int fdinfo_parse_timerfd(const char *text, struct fdinfo_timerfd *out, int *ret_bad_line);

struct fdinfo_epoll_tfd {
	int tfd;
	uint32_t events;
	uint64_t data;
	uint64_t pos;
	uint64_t ino;
	uint32_t sdev; /* the kernel's dev_t encoding: major << 20 | minor */
};
/* *ret_tfds is malloc'd (NULL when there are none). */
int fdinfo_parse_epoll(const char *text, struct fdinfo_epoll_tfd **ret_tfds, size_t *ret_nr, int *ret_bad_line);

#define FDINFO_FHANDLE_MAX 128

struct fdinfo_inotify_wd {
	int wd;
	uint64_t ino;
	uint32_t sdev; /* the kernel's dev_t encoding: major << 20 | minor */
	uint32_t mask;
	uint32_t ignored_mask;
	uint32_t fhandle_bytes; /* 0: the kernel gave no handle */
	int fhandle_type;
	unsigned char fhandle[FDINFO_FHANDLE_MAX];
};
/* *ret_wds is malloc'd (NULL when there are none). */
int fdinfo_parse_inotify(const char *text, struct fdinfo_inotify_wd **ret_wds, size_t *ret_nr, int *ret_bad_line);

#endif
