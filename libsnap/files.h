/*
 * Open files of a process: files.c collects, writes, reads, validates and
 * restores them, and hands each kind of file to the file named after it
 * (files-reg.c, files-pipe.c, files-unix.c, ...) through struct file_ops.
 */
#ifndef SNAP_FILES_H
#define SNAP_FILES_H

#include <stdbool.h>
#include <sys/stat.h>

#include "arena.h"
#include "image.h"
#include "task.h"

/* ---- dump ---- */

struct file_ops;
struct unix_diag_table;
struct inet_diag_table;

/* One open file description of the dump, shared by every fd that refers to it. */
struct dump_file {
	uint32_t id; /* 1, 2, ...: its file_entry's id */
	pid_t pid;   /* the first process and fd seen with it, for messages and /proc */
	int fd;
	int local;	/* our own descriptor of it, taken with pidfd_getfd */
	struct stat st; /* fstat of local */
	char *link;	/* /proc/PID/fd/FD */
	char *fdinfo;	/* all of /proc/PID/fdinfo/FD */
	uint32_t flags; /* open(2) flags, O_CLOEXEC removed (it belongs to each fd) */
	uint64_t pos;
	const struct file_ops *ops;
	FileEntry *fe;	 /* its image record, in the dump's arena */
	bool tcp_repair; /* TCP_REPAIR is on: off again unless the process dies */
	int tcp_reuse;	 /* SO_REUSEADDR before repair mode, which resets it */
};

/* A deleted file or memfd whose bytes go to file-data.img. */
struct dump_content {
	FileContentEntry *ce;
	struct dump_file *f; /* read through /proc/PID/fd/FD of this one */
	uint64_t dev, ino;
};

/* The files first seen in one process: d->files[first..end). */
struct files_collected {
	struct dump_task *t;
	size_t first, end;
};

/* Everything the files of one dump share: object ids, pipes, socket tables. */
struct files_dump {
	unsigned flags; /* enum snap_dump_flags */
	struct arena arena;
	struct dump_file **files;
	size_t nr_files;
	PipeEntry **pipes;
	size_t nr_pipes;
	struct dump_content *contents;
	size_t nr_contents, cap_contents;
	pid_t *pids; /* the processes of the dump */
	size_t nr_pids;
	/* The fd table of the process being collected, for epolls looking up their targets. */
	const struct dump_fd *cur_fds;
	size_t cur_nr_fds;
	struct unix_diag_table *unix_table;	/* loaded on first use */
	struct inet_diag_table *inet_tables[4]; /* tcp4, tcp6, udp4, udp6 */
	/* Holders of pipes and sockets outside the dump, found by one scan of /proc on first use. */
	struct outside_holder *outside;
	size_t nr_outside;
	bool outside_scanned;
	struct files_collected *collected; /* per process collected, for files_collect_finish */
	size_t nr_collected;
};

struct file_ops {
	FileKind kind;
	const char *name; /* in messages: "pipe", "unix socket", ... */
	/*
	 * Fills the kind-specific part of f->fe from f->local, /proc and
	 * sock_diag, or refuses with a message naming pid and fd. Must leave
	 * the process's objects as they were (a leave-running dump must not
	 * lose a byte).
	 */
	int (*dump)(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
};

/* *ret = the first file of the dump that is the same open file description as @fd of @pid, or NULL. */
int files_dump_find_same(struct snap_ctx *ctx, struct files_dump *d, pid_t pid, int fd, const struct stat *st,
			 struct dump_file **ret);
/* The file that fd @fd of the process being collected refers to, or NULL. */
struct dump_file *files_dump_by_fd(struct files_dump *d, int fd);
/* The file of the dump whose socket inode is @ino, or NULL. */
struct dump_file *files_dump_find_ino(struct files_dump *d, uint64_t ino, FileKind kind);
/*
 * "pid 123 (comm)" of a process outside the dump that holds the pipe or
 * socket whose /proc link is @link, or NULL if none does.
 */
const char *files_outside_holder(struct snap_ctx *ctx, struct files_dump *d, const char *link);
int files_unix_table(struct snap_ctx *ctx, struct files_dump *d, const struct unix_diag_table **ret);
int files_inet_table(struct snap_ctx *ctx, struct files_dump *d, int family, int protocol,
		     const struct inet_diag_table **ret);
/* Registers the bytes of a deleted file or memfd; the same inode is stored once. */
int files_dump_content(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, uint32_t *ret_id);
/* Finds or adds the pipe entry of pipe or FIFO inode @ino, reading its unread data through @f. */
int files_dump_pipe(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, uint32_t *ret_id);

/* dump.c's calls */
/* Counts @pid as a process of the dump: what it holds is not held outside. Every one, before any is collected. */
int files_dump_add_pid(struct snap_ctx *ctx, struct files_dump *d, pid_t pid);
int files_collect(struct snap_ctx *ctx, struct dump_task *t);
/*
 * Once every process of the tree is collected: each kind dumps its files
 * (a peer, a pipe's other end, may be in any process of the tree).
 */
int files_collect_finish(struct snap_ctx *ctx, struct files_dump *d);
/* files-<pid>.img of @t */
int files_dump(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir);
/* open-files.img, pipes.img, file-contents.img and file-data.img of the whole dump */
int files_dump_shared(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir);
/*
 * Before the process is let go: if it lives on (@dies false), every socket
 * put in repair mode leaves it. If it dies, they stay in repair mode until
 * dump_task_free closes our copies, so that closing sends nothing.
 */
void files_dump_finish(struct snap_ctx *ctx, struct dump_task *t, bool dies);
void files_dump_free(struct files_dump *d);

/* ---- restore ---- */

struct files_image {
	FsEntry *fs;
	FdEntry **fds;
	size_t nr_fds;
	FileEntry **files; /* files[i]->id == i + 1 */
	size_t nr_files;
	PipeEntry **pipes;
	size_t nr_pipes;
	FileContentEntry **contents; /* contents[i]->id == i + 1 */
	size_t nr_contents;
	int data_fd; /* file-data.img */
	uint64_t data_size;
	/* The tree's plan of who creates which file (files-share.c), shared by every task's image; or NULL. */
	struct files_share *share;
	size_t share_idx; /* this task's index in the tree */
};

int files_image_read(struct snap_ctx *ctx, struct img_set *set, int pid, struct files_image *ret);
void files_image_free(struct files_image *fi);
/* Checks before any process exists that every file can be opened again as it was. */
int files_image_validate(struct snap_ctx *ctx, const struct files_image *fi);
/* Highest fd number the restore uses in the new process, or -1. */
int files_max_fd(const struct files_image *fi);
/* In the new process, before our own fds move above files_max_fd(): makes sure that many fds fit. */
int files_restore_prepare(struct snap_ctx *ctx, const struct files_image *fi);
/*
 * In the new process: opens every fd at its number with its flags and
 * offset. Our own fds must already sit above files_max_fd(); fds in
 * @keep[0..nr_keep) survive, every other fd is closed.
 */
int files_restore(struct snap_ctx *ctx, const struct files_image *fi, const int *keep, size_t nr_keep);
/*
 * Creates, in this process, the files with @want[id - 1] set (all if
 * @want is NULL), each at or above @base; fds[id - 1] gets our descriptor
 * of each. Files they refer to (pipe ends, peers, epoll targets) must be
 * wanted together.
 */
int files_create(struct snap_ctx *ctx, const struct files_image *fi, int *fds, int base, const bool *want);
/* Raises RLIMIT_NOFILE so that @more descriptors fit above those open now. */
int files_ensure_nofile(struct snap_ctx *ctx, uint64_t more, const char *why);

/* ---- files-share.c: files shared between the processes of a tree ---- */

struct restore_task;
/*
 * In the engine, once every image is read and validated: decides which
 * process creates each file (the nearest common ancestor of the processes
 * holding it, or of those holding anything created with it), checks what
 * the terminal of a --shell-job image becomes (@flags: enum
 * snap_restore_flags), and hangs the plan on every task's files image.
 */
int files_share_plan(struct snap_ctx *ctx, struct restore_task *tasks, const size_t *parent, size_t nr, unsigned flags);
/*
 * In the new process, before it forks its children: creates the files the
 * plan gives it, so that the children inherit them. files_restore then
 * puts each process's own at their numbers and closes the rest.
 */
int files_share_create(struct snap_ctx *ctx, struct files_image *fi);
void files_share_put(struct files_share *sh);
/* Our descriptor of file @id, made by us or an ancestor before the fork, or -1. */
int files_share_fd(const struct files_image *fi, uint32_t id);
/* The plan, for tests: the task index that creates file @id, and the lowest fd number created files take. */
size_t files_share_creator(const struct files_image *fi, uint32_t id);
int files_share_base(const struct files_image *fi);
/* --shell-job: the terminal's descriptor in the new process (inherited from the caller), or -1. */
int files_share_tty_fd(const struct files_image *fi);
/* After placing the fds: makes this process's group the terminal's foreground group if it was. */
int files_share_foreground(struct snap_ctx *ctx, const struct files_image *fi);

/* State of files_restore while it runs, for the kinds. */
struct files_restore {
	const struct files_image *fi;
	int *fds;	  /* fds[id - 1]: our descriptor of file @id once it exists, else -1 */
	int base;	  /* our descriptors live at or above it, out of the image's way */
	const bool *want; /* want[id - 1]: this pass creates file @id; NULL: all */
};

/* Whether this pass creates file @id: the others are another process's, or made already. */
static inline bool files_wanted(const struct files_restore *rs, uint32_t id)
{
	return !rs->want || rs->want[id - 1];
}

/*
 * Moves @fd at or above rs->base, closing the original; returns the new
 * fd, or a negative errno with a message naming @what.
 */
int files_keep(struct snap_ctx *ctx, struct files_restore *rs, int fd, const char *what);
/* Records @fd (already kept) as file @id. */
void files_set(struct files_restore *rs, uint32_t id, int fd);
const PipeEntry *files_pipe(const struct files_image *fi, uint32_t id);
/* Reopens our descriptor @fd through /proc/self/fd with @flags: a new open file description. */
int files_reopen(struct snap_ctx *ctx, struct files_restore *rs, int fd, uint32_t flags, const char *what);
/* Applies the flags fcntl(F_SETFL) can change (O_NONBLOCK, O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME). */
int files_set_fl(struct snap_ctx *ctx, int fd, uint32_t flags, const char *what);

/*
 * The kinds. Each validate checks one entry against this machine before
 * any process exists; each restore creates, in the new process, every
 * file of its kinds (files_set for each).
 */
int reg_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int reg_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int reg_restore(struct snap_ctx *ctx, struct files_restore *rs);
int reg_content_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileContentEntry *ce);

int pipe_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int pipe_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int pipe_restore(struct snap_ctx *ctx, struct files_restore *rs);

int eventfd_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int eventfd_restore(struct snap_ctx *ctx, struct files_restore *rs);
int signalfd_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int signalfd_restore(struct snap_ctx *ctx, struct files_restore *rs);
int timerfd_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int timerfd_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int timerfd_restore(struct snap_ctx *ctx, struct files_restore *rs);
int inotify_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int inotify_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int inotify_restore(struct snap_ctx *ctx, struct files_restore *rs);
int epoll_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int epoll_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int epoll_restore(struct snap_ctx *ctx, struct files_restore *rs);
/* After every other file exists: registers the targets of every epoll. */
int epoll_restore_targets(struct snap_ctx *ctx, struct files_restore *rs);
/* Highest tfd an epoll registers, or -1. */
int epoll_max_tfd(const struct files_image *fi);

int unix_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int unix_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int unix_restore(struct snap_ctx *ctx, struct files_restore *rs);

int inet_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f);
int inet_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe);
int inet_restore(struct snap_ctx *ctx, struct files_restore *rs);
/* See files_dump_finish. */
void inet_dump_finish(struct snap_ctx *ctx, struct dump_file *f, bool dies);

/* files-sock.c: what unix and inet sockets share. */
/* Options the process set on socket @fd (those differing from a new socket's); in @d's arena. */
int sk_dump_opts(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, SkOptEntry ***ret, size_t *ret_nr);
int sk_restore_opts(struct snap_ctx *ctx, int fd, SkOptEntry *const *opts, size_t nr, const char *what);

#endif
