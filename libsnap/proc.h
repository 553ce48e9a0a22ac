/* Everything libsnap reads from /proc: pure parsers plus thin openers. */
#ifndef SNAP_PROC_H
#define SNAP_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ctx.h"

/* VmFlags from smaps that dump and restore care about. */
enum proc_vmflag {
	VMF_GROWSDOWN = 1u << 0,     /* gd */
	VMF_SHARED = 1u << 1,	     /* sh */
	VMF_MAYSHARE = 1u << 2,	     /* ms */
	VMF_DONTDUMP = 1u << 3,	     /* dd */
	VMF_DONTFORK = 1u << 4,	     /* dc */
	VMF_HUGEPAGE = 1u << 5,	     /* hg */
	VMF_NOHUGEPAGE = 1u << 6,    /* nh */
	VMF_MERGEABLE = 1u << 7,     /* mg */
	VMF_LOCKED = 1u << 8,	     /* lo */
	VMF_IO = 1u << 9,	     /* io */
	VMF_PFNMAP = 1u << 10,	     /* pf */
	VMF_WIPEONFORK = 1u << 11,   /* wf */
	VMF_SEQREAD = 1u << 12,	     /* sr */
	VMF_RANDREAD = 1u << 13,     /* rr */
	VMF_NORESERVE = 1u << 14,    /* nr */
	VMF_HUGETLB = 1u << 15,	     /* ht */
	VMF_UFFD_MISSING = 1u << 16, /* um */
	VMF_UFFD_WP = 1u << 17,	     /* uw */
	VMF_DROPPABLE = 1u << 18,    /* dp (Linux 6.11) */
};

struct proc_vma {
	uint64_t start, end;
	uint32_t prot;	/* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;	/* 's' in maps, else 'p' */
	uint64_t pgoff; /* bytes */
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	char *path;	  /* malloc'd; NULL for anonymous areas without a label */
	bool deleted;	  /* path ended in " (deleted)", which is stripped */
	uint32_t vmflags; /* enum proc_vmflag, from smaps; 0 from plain maps */
};

struct proc_vma_list {
	struct proc_vma *v;
	size_t nr, cap;
};

void proc_vma_list_free(struct proc_vma_list *l);

/*
 * Parses /proc/PID/maps or /proc/PID/smaps text (smaps adds VmFlags; other
 * smaps keys are skipped). Returns 0, or -EINVAL with *ret_bad_line set to
 * the 1-based line that is malformed. On failure @out is left empty.
 */
int proc_parse_maps(FILE *f, struct proc_vma_list *out, int *ret_bad_line);
/* Parses one VmFlags value list ("rd wr mr mw me gd ac") into enum proc_vmflag bits. */
uint32_t proc_parse_vmflags(const char *s);

/* /proc/PID/stat, the fields we use (names as in proc(5)). */
struct proc_stat {
	pid_t pid;
	char comm[64];
	char state;
	pid_t ppid, pgrp, session;
	int tty_nr;
	unsigned long flags;
	long num_threads;
	unsigned long long starttime;
	unsigned long start_code, end_code, start_stack;
	int exit_signal;
	unsigned long start_data, end_data, start_brk;
	unsigned long arg_start, arg_end, env_start, env_end;
	int exit_code;
};

/* Parses the single line of /proc/PID/stat; comm may hold spaces and ')'. */
int proc_parse_stat(const char *buf, struct proc_stat *out);

/* /proc/PID/status, the fields we use. */
struct proc_status {
	pid_t tgid, pid, ppid, tracer_pid;
	uint32_t umask; /* 0 if the kernel did not print it */
	bool has_umask;
	uint32_t uid[4], gid[4]; /* real, effective, saved, fs */
	int threads;
	uint64_t sig_blk, sig_ign, sig_cgt, sig_pnd, shd_pnd;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	int nspid_levels; /* how many ids NSpid lists */
	char state;
	int seccomp; /* 0 none, 1 strict, 2 filters; 0 if the kernel does not print it */
};

int proc_parse_status(FILE *f, struct proc_status *out);

/* /proc/PID/fdinfo/FD */
struct proc_fdinfo {
	uint64_t pos;
	uint32_t flags; /* octal in the file */
	int mnt_id;
	uint64_t ino;
};

int proc_parse_fdinfo(FILE *f, struct proc_fdinfo *out);

/*
 * Parses an auxv blob (pairs of native unsigned longs) up to and including
 * AT_NULL into a malloc'd array of @*ret_nr uint64 values (pairs).
 */
int proc_parse_auxv(const void *buf, size_t len, uint64_t **ret_vals, size_t *ret_nr);

/* Thin openers for a live pid; errors are reported through @ctx naming the pid. */
FILE *proc_fopen(pid_t pid, const char *name);
int proc_read_vmas(struct snap_ctx *ctx, pid_t pid, struct proc_vma_list *ret_vmas);
int proc_read_stat(struct snap_ctx *ctx, pid_t pid, struct proc_stat *ret);
int proc_read_status(struct snap_ctx *ctx, pid_t pid, struct proc_status *ret);
int proc_read_fdinfo(struct snap_ctx *ctx, pid_t pid, int fd, struct proc_fdinfo *ret);
int proc_read_auxv(struct snap_ctx *ctx, pid_t pid, uint64_t **ret_vals, size_t *ret_nr);
/* readlink of /proc/PID/NAME into a malloc'd string ("exe", "cwd", "root", "fd/3"). */
int proc_readlink(struct snap_ctx *ctx, pid_t pid, const char *name, char **ret);
/* A whole /proc/PID/NAME file, NUL-terminated, malloc'd. */
int proc_read_file(struct snap_ctx *ctx, pid_t pid, const char *name, char **ret_buf, size_t *ret_len);
/* Lists numeric entries of /proc/PID/DIR ("task", "fd") in ascending order. */
int proc_list_ids(struct snap_ctx *ctx, pid_t pid, const char *dir, int **ret_ids, size_t *ret_nr);

/* /proc/PID/timers: one POSIX timer. */
enum {
	PROC_SIGEV_SIGNAL = 0,
	PROC_SIGEV_NONE = 1,
	PROC_SIGEV_THREAD = 2,
	PROC_SIGEV_THREAD_ID = 4, /* or'ed in */
};

struct proc_posix_timer {
	int id;
	int signo;
	uint64_t sigval; /* sigev_value */
	int notify;	 /* PROC_SIGEV_* */
	int target;	 /* the pid, or with PROC_SIGEV_THREAD_ID the tid, signals go to */
	int clock_id;
};

/* Parses /proc/PID/timers into a malloc'd array; on -EINVAL *ret_bad_line is the line. */
int proc_parse_posix_timers(FILE *f, struct proc_posix_timer **ret, size_t *ret_nr, int *ret_bad_line);
int proc_read_posix_timers(struct snap_ctx *ctx, pid_t pid, struct proc_posix_timer **ret, size_t *ret_nr);

/* A file lock as the "lock:" lines of /proc/PID/fdinfo/FD show it. */
enum proc_lock_kind { PROC_LOCK_FLOCK = 1, PROC_LOCK_POSIX, PROC_LOCK_OFD, PROC_LOCK_OTHER };

struct proc_file_lock {
	enum proc_lock_kind kind;
	char kind_name[16]; /* as printed: "LEASE", "DELEG", ... */
	bool write;	    /* WRITE, else READ */
	int pid;	    /* -1 for OFD locks */
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	uint64_t start, end; /* bytes; end is the last byte */
	bool to_eof;	     /* "EOF": to the end of the file, whatever its size */
};

/* Parses the "lock:" lines of fdinfo text (others are skipped) into a malloc'd array. */
int proc_parse_fd_locks(FILE *f, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line);
int proc_read_fd_locks(struct snap_ctx *ctx, pid_t pid, int fd, struct proc_file_lock **ret, size_t *ret_nr);
/* Parses /proc/locks (every lock of the system, waiters left out) into a malloc'd array. */
int proc_parse_locks(FILE *f, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line);
int proc_read_locks(struct snap_ctx *ctx, struct proc_file_lock **ret, size_t *ret_nr);

#endif
