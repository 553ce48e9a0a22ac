/*
 * Open files: the dispatcher. Finds every open file description of a
 * process (several fds may share one), hands each to the code of its kind,
 * writes and reads the images, validates them, and in the new process
 * creates every file and puts each fd at its number.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "files.h"
#include "proc-fdinfo.h"
#include "sockdiag.h"

/* Flags that described how a file was created, not how it is open (an O_TMPFILE file keeps __O_TMPFILE). */
#define OPEN_ONLY_FLAGS (O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | __O_TMPFILE)
/* What fcntl(F_SETFL) can change once a file is open. */
#define SETFL_FLAGS (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK)

/* Files of a dump live in one table; it never needs more. */
#define MAX_FILES (1u << 20)

static const struct file_ops ops_reg = { FILE_KIND__FILE_REG, "regular file", reg_dump };
static const struct file_ops ops_dir = { FILE_KIND__FILE_DIR, "directory", reg_dump };
static const struct file_ops ops_chr = { FILE_KIND__FILE_CHR, "character device", reg_dump };
static const struct file_ops ops_path = { FILE_KIND__FILE_PATH, "O_PATH descriptor", reg_dump };
static const struct file_ops ops_memfd = { FILE_KIND__FILE_MEMFD, "memfd", reg_dump };
static const struct file_ops ops_pipe = { FILE_KIND__FILE_PIPE, "pipe", pipe_dump };
static const struct file_ops ops_fifo = { FILE_KIND__FILE_FIFO, "FIFO", pipe_dump };
static const struct file_ops ops_unix = { FILE_KIND__FILE_UNIX, "unix socket", unix_dump };
static const struct file_ops ops_inet = { FILE_KIND__FILE_INET, "inet socket", inet_dump };
static const struct file_ops ops_eventfd = { FILE_KIND__FILE_EVENTFD, "eventfd", eventfd_dump };
static const struct file_ops ops_epoll = { FILE_KIND__FILE_EPOLL, "epoll instance", epoll_dump };
static const struct file_ops ops_signalfd = { FILE_KIND__FILE_SIGNALFD, "signalfd", signalfd_dump };
static const struct file_ops ops_timerfd = { FILE_KIND__FILE_TIMERFD, "timerfd", timerfd_dump };
static const struct file_ops ops_inotify = { FILE_KIND__FILE_INOTIFY, "inotify instance", inotify_dump };

/* anon_inode files we know to refuse, by the name /proc shows, and what to call them. */
static const struct {
	const char *link;
	const char *what;
} refused_anon[] = {
	{ "anon_inode:[io_uring]", "an io_uring instance" },
	{ "anon_inode:bpf-map", "a BPF map" },
	{ "anon_inode:bpf-prog", "a BPF program" },
	{ "anon_inode:bpf_link", "a BPF link" },
	{ "anon_inode:bpf_iter", "a BPF iterator" },
	{ "anon_inode:[bpf_token]", "a BPF token" },
	{ "anon_inode:btf", "a BPF type object" },
	{ "anon_inode:[perf_event]", "a perf event" },
	{ "anon_inode:[userfaultfd]", "a userfaultfd" },
	{ "anon_inode:[fanotify]", "a fanotify instance" },
	{ "anon_inode:[pidfd]", "a pidfd" },
	{ "anon_inode:[kvm", "a KVM object" },
	{ "anon_inode:sync_file", "a sync file" },
	{ "anon_inode:[dmabuf", "a DMA buffer" },
	{ "anon_inode:[secretmem]", "a memfd_secret area" },
};

/* ---- dump ---- */

static int kcmp(pid_t pid1, pid_t pid2, int type, unsigned long idx1, unsigned long idx2)
{
	return (int)syscall(SYS_kcmp, pid1, pid2, type, idx1, idx2);
}

int files_dump_find_same(struct snap_ctx *ctx, struct files_dump *d, pid_t pid, int fd, const struct stat *st,
			 struct dump_file **ret)
{
	*ret = NULL;
	for (size_t i = 0; i < d->nr_files; i++) {
		struct dump_file *f = d->files[i];
		int r;

		if (f->st.st_dev != st->st_dev || f->st.st_ino != st->st_ino)
			continue;
		r = kcmp(pid, f->pid, KCMP_FILE, (unsigned long)fd, (unsigned long)f->fd);
		/* Without kcmp two fds of one file cannot be told shared or not: better no dump than a wrong one. */
		if (r < 0)
			return snap_fail(ctx, -errno,
					 "pid %d: fds %d and %d: kcmp cannot tell whether they share a file: %m", pid,
					 fd, f->fd);
		if (r == 0) {
			*ret = f;
			return 0;
		}
	}
	return 0;
}

struct dump_file *files_dump_by_fd(struct files_dump *d, int fd)
{
	for (size_t i = 0; i < d->cur_nr_fds; i++)
		if (d->cur_fds[i].fd == fd)
			return d->files[d->cur_fds[i].file_id - 1];
	return NULL;
}

struct dump_file *files_dump_find_ino(struct files_dump *d, uint64_t ino, FileKind kind)
{
	for (size_t i = 0; i < d->nr_files; i++)
		if (d->files[i]->ops->kind == kind && (uint64_t)d->files[i]->st.st_ino == ino)
			return d->files[i];
	return NULL;
}

struct outside_holder {
	char *link;
	pid_t pid;
};

static int cmp_holder(const void *a, const void *b)
{
	return strcmp(((const struct outside_holder *)a)->link, ((const struct outside_holder *)b)->link);
}

static bool in_dump(const struct files_dump *d, pid_t pid)
{
	for (size_t i = 0; i < d->nr_pids; i++)
		if (d->pids[i] == pid)
			return true;
	return false;
}

int files_dump_add_pid(struct snap_ctx *ctx, struct files_dump *d, pid_t pid)
{
	if (in_dump(d, pid))
		return 0;
	if (arena_push(&d->arena, (void ***)&d->pids, &d->nr_pids, NULL))
		return snap_fail(ctx, -ENOMEM, "out of memory");
	d->pids[d->nr_pids - 1] = pid;
	return 0;
}

static bool is_dump_fifo(const struct files_dump *d, const char *link)
{
	for (size_t i = 0; i < d->nr_files; i++)
		if (d->files[i]->ops->kind == FILE_KIND__FILE_FIFO && !strcmp(d->files[i]->link, link))
			return true;
	return false;
}

static bool is_our_copy(const struct files_dump *d, int fd)
{
	for (size_t i = 0; i < d->nr_files; i++)
		if (d->files[i]->local == fd)
			return true;
	return false;
}

/* One pass over every fd of every other process, keeping the pipes, sockets and the dump's FIFOs. */
static int scan_outside(struct snap_ctx *ctx, struct files_dump *d)
{
	size_t cap = 0;
	DIR *proc = opendir("/proc");
	struct dirent *de;

	if (!proc)
		return snap_fail(ctx, -errno, "cannot list /proc: %m");
	while ((de = readdir(proc))) {
		char path[64], link[PATH_MAX];
		struct dirent *fe;
		pid_t pid;
		DIR *fds;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (in_dump(d, pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
		fds = opendir(path);
		if (!fds)
			continue; /* gone, or not ours to look at */
		while ((fe = readdir(fds))) {
			char p[300];
			ssize_t n;

			if (!isdigit((unsigned char)fe->d_name[0]))
				continue;
			/* We hold copies of the dump's files ourselves; an embedding program may hold others. */
			if (pid == getpid() && is_our_copy(d, atoi(fe->d_name)))
				continue;
			snprintf(p, sizeof(p), "/proc/%d/fd/%s", (int)pid, fe->d_name);
			n = readlink(p, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strncmp(link, "pipe:[", 6) && strncmp(link, "socket:[", 8) && !is_dump_fifo(d, link))
				continue;
			if (d->nr_outside == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct outside_holder *v = realloc(d->outside, ncap * sizeof(*v));

				if (!v) {
					closedir(fds);
					closedir(proc);
					return snap_fail(ctx, -ENOMEM, "out of memory");
				}
				d->outside = v;
				cap = ncap;
			}
			d->outside[d->nr_outside].link = strdup(link);
			d->outside[d->nr_outside].pid = pid;
			if (d->outside[d->nr_outside].link)
				d->nr_outside++;
		}
		closedir(fds);
	}
	closedir(proc);
	if (d->nr_outside)
		qsort(d->outside, d->nr_outside, sizeof(*d->outside), cmp_holder);
	d->outside_scanned = true;
	return 0;
}

const char *files_outside_holder(struct snap_ctx *ctx, struct files_dump *d, const char *link)
{
	static __thread char who[96];
	struct outside_holder key = { .link = (char *)link }, *hit;
	char comm[32] = "?", path[64];
	FILE *f;

	if (!d->outside_scanned && scan_outside(ctx, d))
		return "an unknown process (cannot scan /proc)";
	hit = d->nr_outside ? bsearch(&key, d->outside, d->nr_outside, sizeof(key), cmp_holder) : NULL;
	if (!hit)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)hit->pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(who, sizeof(who), "pid %d (%s)", (int)hit->pid, comm);
	return who;
}

int files_unix_table(struct snap_ctx *ctx, struct files_dump *d, const struct unix_diag_table **ret)
{
	if (!d->unix_table) {
		struct unix_diag_table *t = calloc(1, sizeof(*t));
		int r;

		if (!t)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		r = sockdiag_unix_load(ctx, t);
		if (r) {
			free(t);
			return r;
		}
		d->unix_table = t;
	}
	*ret = d->unix_table;
	return 0;
}

int files_inet_table(struct snap_ctx *ctx, struct files_dump *d, int family, int protocol,
		     const struct inet_diag_table **ret)
{
	int slot = (protocol == IPPROTO_UDP ? 2 : 0) + (family == AF_INET6 ? 1 : 0);

	if (!d->inet_tables[slot]) {
		struct inet_diag_table *t = calloc(1, sizeof(*t));
		int r;

		if (!t)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		r = sockdiag_inet_load(ctx, family, protocol, t);
		if (r) {
			free(t);
			return r;
		}
		d->inet_tables[slot] = t;
	}
	*ret = d->inet_tables[slot];
	return 0;
}

int files_dump_content(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, uint32_t *ret_id)
{
	struct dump_content *c;
	FileContentEntry *ce;

	for (size_t i = 0; i < d->nr_contents; i++) {
		if (d->contents[i].dev == (uint64_t)f->st.st_dev && d->contents[i].ino == (uint64_t)f->st.st_ino) {
			*ret_id = d->contents[i].ce->id;
			return 0;
		}
	}
	if (d->nr_contents == d->cap_contents) {
		size_t cap = d->cap_contents ? d->cap_contents * 2 : 8;
		struct dump_content *v = realloc(d->contents, cap * sizeof(*v));

		if (!v)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		d->contents = v;
		d->cap_contents = cap;
	}
	ce = arena_alloc(&d->arena, sizeof(*ce));
	if (!ce)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	file_content_entry__init(ce);
	ce->id = (uint32_t)d->nr_contents + 1;
	ce->size = (uint64_t)f->st.st_size;
	ce->mode = f->st.st_mode & 07777;
	ce->uid = f->st.st_uid;
	ce->gid = f->st.st_gid;
	c = &d->contents[d->nr_contents++];
	*c = (struct dump_content){ .ce = ce, .f = f, .dev = (uint64_t)f->st.st_dev, .ino = (uint64_t)f->st.st_ino };
	*ret_id = ce->id;
	return 0;
}

/* The kind of an fd, from what fstat, /proc and the socket itself say; NULL with a message if refused. */
static const struct file_ops *classify(struct snap_ctx *ctx, struct dump_file *f)
{
	mode_t m = f->st.st_mode;
	const char *what = NULL;

	if (f->flags & O_PATH)
		return &ops_path;
	if (S_ISREG(m))
		return !strncmp(f->link, "/memfd:", 7) && f->st.st_nlink == 0 ? &ops_memfd : &ops_reg;
	if (S_ISDIR(m))
		return &ops_dir;
	if (S_ISCHR(m))
		return &ops_chr;
	if (S_ISFIFO(m))
		return !strncmp(f->link, "pipe:[", 6) ? &ops_pipe : &ops_fifo;
	if (S_ISSOCK(m)) {
		int domain = -1, proto = -1;
		socklen_t len = sizeof(domain);

		if (getsockopt(f->local, SOL_SOCKET, SO_DOMAIN, &domain, &len) ||
		    getsockopt(f->local, SOL_SOCKET, SO_PROTOCOL, &proto, &(socklen_t){ sizeof(proto) })) {
			snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot tell what socket it is: %m", f->pid, f->fd,
				  f->link);
			return NULL;
		}
		if (domain == AF_UNIX)
			return &ops_unix;
		if ((domain == AF_INET || domain == AF_INET6) && (proto == IPPROTO_TCP || proto == IPPROTO_UDP))
			return &ops_inet;
		if (domain == AF_NETLINK)
			what = "a netlink socket";
		else if (domain == AF_PACKET)
			what = "a packet socket";
		else if (domain == AF_INET || domain == AF_INET6)
			what = proto == IPPROTO_RAW || proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6
				       ? "a raw or ICMP socket"
				       : "an inet socket of a protocol other than TCP and UDP";
		if (what)
			snap_fail(ctx, -EOPNOTSUPP,
				  "pid %d: fd %d is %s (%s, family %d, protocol %d), which cannot be checkpointed",
				  f->pid, f->fd, what, f->link, domain, proto);
		else
			snap_fail(ctx, -EOPNOTSUPP,
				  "pid %d: fd %d is a socket of family %d (%s), which cannot be checkpointed", f->pid,
				  f->fd, domain, f->link);
		return NULL;
	}
	if (!strcmp(f->link, "anon_inode:[eventfd]"))
		return &ops_eventfd;
	if (!strcmp(f->link, "anon_inode:[eventpoll]"))
		return &ops_epoll;
	if (!strcmp(f->link, "anon_inode:[signalfd]"))
		return &ops_signalfd;
	if (!strcmp(f->link, "anon_inode:[timerfd]"))
		return &ops_timerfd;
	if (!strcmp(f->link, "anon_inode:inotify"))
		return &ops_inotify;
	for (size_t i = 0; i < sizeof(refused_anon) / sizeof(refused_anon[0]); i++)
		if (!strncmp(f->link, refused_anon[i].link, strlen(refused_anon[i].link)))
			what = refused_anon[i].what;
	/* Newer kernels give pidfds an inode of their own, named "pidfd:[N]" or shown as anon_inode. */
	if (!what && !strncmp(f->link, "pidfd:", 6))
		what = "a pidfd";
	if (!what && S_ISBLK(m))
		what = "a block device";
	if (what)
		snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d is %s (%s), which cannot be checkpointed", f->pid, f->fd,
			  what, f->link);
	else
		snap_fail(ctx, -EOPNOTSUPP,
			  "pid %d: fd %d is a kind of file this version cannot checkpoint (%s, mode 0%o)", f->pid,
			  f->fd, f->link, (unsigned)m);
	return NULL;
}

/*
 * Makes room for @more descriptors of ours above those already open: the
 * dump holds a copy of every file of the process, restore places fds up to
 * the highest number the image has. Raises the soft limit up to the hard one
 * when needed (rlimits are not restored yet, so the restored process keeps it).
 */
int files_ensure_nofile(struct snap_ctx *ctx, uint64_t more, const char *why)
{
	struct rlimit rl;
	uint64_t open_now = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return snap_fail(ctx, -errno, "getrlimit(RLIMIT_NOFILE): %m");
	while (d && (de = readdir(d)))
		open_now += isdigit((unsigned char)de->d_name[0]) != 0;
	if (d)
		closedir(d);
	if (open_now + more + 64 <= rl.rlim_cur)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && open_now + more + 64 > rl.rlim_max)
		return snap_fail(ctx, -EMFILE, "%s needs %llu descriptors, more than RLIMIT_NOFILE allows (%llu)", why,
				 (unsigned long long)(open_now + more + 64), (unsigned long long)rl.rlim_max);
	rl.rlim_cur = open_now + more + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return snap_fail(ctx, -errno, "%s: cannot raise RLIMIT_NOFILE to %llu: %m", why,
				 (unsigned long long)rl.rlim_cur);
	return 0;
}

static int read_fdinfo(struct snap_ctx *ctx, pid_t pid, int fd, char **ret_text, struct proc_fdinfo *ret_info)
{
	char name[32];
	size_t len;
	FILE *mf;
	int r;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	r = proc_read_file(ctx, pid, name, ret_text, &len);
	if (r)
		return r;
	mf = fmemopen(*ret_text, len ? len : 1, "r");
	if (!mf) {
		r = snap_fail(ctx, -errno, "pid %d: fd %d: cannot parse fdinfo: %m", pid, fd);
	} else {
		r = proc_parse_fdinfo(mf, ret_info);
		fclose(mf);
		if (r)
			r = snap_fail(ctx, r, "pid %d: fd %d: malformed /proc/%d/fdinfo/%d", pid, fd, pid, fd);
	}
	if (r) {
		free(*ret_text);
		*ret_text = NULL;
	}
	return r;
}

static void dump_file_free(struct dump_file *f)
{
	if (f->local >= 0)
		close(f->local);
	free(f->link);
	free(f->fdinfo);
	free(f);
}

/* Looks at fd @fd of @t: the file it shares with an earlier fd, or a new one. */
static int collect_one(struct snap_ctx *ctx, struct files_dump *d, struct dump_task *t, int pidfd, int fd,
		       struct dump_fd *out)
{
	struct dump_file *f = calloc(1, sizeof(*f)), *same;
	struct proc_fdinfo info;
	char name[32];
	int r;

	if (!f)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	f->local = -1;
	f->pid = t->pid;
	f->fd = fd;
	snprintf(name, sizeof(name), "fd/%d", fd);
	r = proc_readlink(ctx, t->pid, name, &f->link);
	if (!r)
		r = read_fdinfo(ctx, t->pid, fd, &f->fdinfo, &info);
	if (r)
		goto fail;
	f->flags = info.flags & ~(uint32_t)O_CLOEXEC;
	f->pos = info.pos;
	*out = (struct dump_fd){ .fd = fd, .cloexec = (info.flags & O_CLOEXEC) != 0 };
	f->local = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (f->local < 0) {
		r = snap_fail(ctx, -errno, "pid %d: cannot take a copy of its fd %d (%s): %m", t->pid, fd, f->link);
		goto fail;
	}
	if (fstat(f->local, &f->st)) {
		r = snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot stat: %m", t->pid, fd, f->link);
		goto fail;
	}
	r = files_dump_find_same(ctx, d, t->pid, fd, &f->st, &same);
	if (r)
		goto fail;
	if (same) {
		out->file_id = same->id;
		dump_file_free(f);
		return 0;
	}
	if (d->nr_files >= MAX_FILES) {
		r = snap_fail(ctx, -EMFILE, "pid %d: more than %u open files", t->pid, MAX_FILES);
		goto fail;
	}
	f->ops = classify(ctx, f);
	if (!f->ops) {
		r = -EOPNOTSUPP;
		goto fail;
	}
	f->fe = arena_alloc(&d->arena, sizeof(*f->fe));
	if (!f->fe) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto fail;
	}
	file_entry__init(f->fe);
	f->id = (uint32_t)d->nr_files + 1;
	f->fe->id = f->id;
	f->fe->kind = f->ops->kind;
	f->fe->flags = f->flags;
	/* In the table first: a socket may look for its peer, or an epoll for its targets, among the others. */
	if (arena_push(&d->arena, (void ***)&d->files, &d->nr_files, f)) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto fail;
	}
	out->file_id = f->id;
	return 0;
fail:
	dump_file_free(f);
	return r;
}

int files_collect(struct snap_ctx *ctx, struct dump_task *t)
{
	struct files_dump *d = t->files;
	int *ids = NULL, pidfd, r;
	size_t nr = 0, first;

	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		d->flags = t->flags;
		t->files = d;
	}
	r = files_dump_add_pid(ctx, d, t->pid);
	if (r)
		return r;
	pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
	if (pidfd < 0)
		return snap_fail(ctx, -errno, "pid %d: pidfd_open: %m", t->pid);
	r = proc_list_ids(ctx, t->pid, "fd", &ids, &nr);
	if (!r) {
		char why[48];

		snprintf(why, sizeof(why), "pid %d: copying its %zu fds", t->pid, nr);
		r = files_ensure_nofile(ctx, nr, why);
	}
	if (r)
		goto out;
	t->fds = calloc(nr ? nr : 1, sizeof(*t->fds));
	if (!t->fds) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	first = d->nr_files;
	for (size_t i = 0; i < nr; i++) {
		r = collect_one(ctx, d, t, pidfd, ids[i], &t->fds[t->nr_fds]);
		if (r)
			goto out;
		t->nr_fds++;
	}
	/* Each kind looks at its own once every process's files are known: peers may be in any of them. */
	{
		struct files_collected *v = realloc(d->collected, (d->nr_collected + 1) * sizeof(*v));

		if (!v) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			goto out;
		}
		d->collected = v;
		v[d->nr_collected++] = (struct files_collected){ t, first, d->nr_files };
	}
out:
	free(ids);
	close(pidfd);
	return r;
}

int files_collect_finish(struct snap_ctx *ctx, struct files_dump *d)
{
	int r = 0;

	for (size_t k = 0; d && !r && k < d->nr_collected; k++) {
		const struct files_collected *c = &d->collected[k];

		/* The files first seen in a process look it up among that process's fds (epoll targets). */
		d->cur_fds = c->t->fds;
		d->cur_nr_fds = c->t->nr_fds;
		for (size_t i = c->first; !r && i < c->end; i++)
			r = d->files[i]->ops->dump(ctx, d, d->files[i]);
	}
	if (d) {
		d->cur_fds = NULL;
		d->cur_nr_fds = 0;
	}
	return r;
}

int files_dump(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	FsEntry fs = FS_ENTRY__INIT;
	struct img_writer *w;
	int r;

	fs.cwd = t->cwd;
	fs.root = t->root;
	fs.nr_fds = (uint32_t)t->nr_fds;
	r = img_writer_open(ctx, dir, IMG_KIND_FILES, t->pid, &w);
	if (r)
		return r;
	r = img_write_msg(ctx, w, &fs.base);
	for (size_t i = 0; !r && i < t->nr_fds; i++) {
		FdEntry fe = FD_ENTRY__INIT;

		fe.fd = t->fds[i].fd;
		fe.file_id = t->fds[i].file_id;
		fe.cloexec = t->fds[i].cloexec;
		r = img_write_msg(ctx, w, &fe.base);
	}
	return img_writer_close(ctx, w) ?: r;
}

/* Copies the data of one deleted file or memfd into file-data.img, run by run, skipping holes. */
static int write_content(struct snap_ctx *ctx, struct files_dump *d, struct dump_content *c, struct img_pages_writer *w,
			 uint64_t *data_off)
{
	const size_t chunk = 1 << 20;
	FileContentEntry *ce = c->ce;
	char path[64];
	char *buf;
	off_t at = 0;
	int fd, r = 0;

	/* Through /proc: our copy may be write-only, this opens the same inode for reading. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)c->f->pid, c->f->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot open it to read its content: %m", c->f->pid,
				 c->f->fd, c->f->link);
	buf = malloc(chunk);
	if (!buf) {
		close(fd);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	while (!r && at < (off_t)ce->size) {
		off_t data = lseek(fd, at, SEEK_DATA), hole;
		FileDataRun *run;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole up to the end */
		if (data < 0) {
			r = snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot find its data: %m", c->f->pid, c->f->fd,
				      c->f->link);
			break;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > (off_t)ce->size)
			hole = (off_t)ce->size;
		run = arena_alloc(&d->arena, sizeof(*run));
		if (!run || arena_push(&d->arena, (void ***)&ce->runs, &ce->n_runs, run)) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		file_data_run__init(run);
		run->offset = (uint64_t)data;
		run->len = (uint64_t)(hole - data);
		run->data_off = *data_off;
		for (off_t p = data; !r && p < hole;) {
			size_t want = (size_t)(hole - p) < chunk ? (size_t)(hole - p) : chunk;
			ssize_t n = pread(fd, buf, want, p);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = snap_fail(ctx, n < 0 ? -errno : -EIO,
					      "pid %d: fd %d (%s): cannot read its content: %s", c->f->pid, c->f->fd,
					      c->f->link, n < 0 ? strerror(errno) : "it shrank");
				break;
			}
			r = img_pages_write(ctx, w, buf, (size_t)n, NULL);
			p += n;
			*data_off += (uint64_t)n;
		}
		at = hole;
	}
	free(buf);
	close(fd);
	return r;
}

int files_dump_shared(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir)
{
	struct files_dump *d = t->files;
	struct img_pages_writer *dw = NULL;
	struct img_writer *w = NULL;
	uint64_t data_off = 0;
	int r;

	r = img_raw_open(ctx, dir, IMG_KIND_FILE_DATA, 0, &dw);
	for (size_t i = 0; !r && i < d->nr_contents; i++)
		r = write_content(ctx, d, &d->contents[i], dw, &data_off);
	r = img_pages_close(ctx, dw) ?: r;
	if (r)
		return r;

	r = img_writer_open(ctx, dir, IMG_KIND_FILE_CONTENTS, 0, &w);
	for (size_t i = 0; !r && i < d->nr_contents; i++)
		r = img_write_msg(ctx, w, &d->contents[i].ce->base);
	r = img_writer_close(ctx, w) ?: r;
	if (r)
		return r;

	r = img_writer_open(ctx, dir, IMG_KIND_PIPES, 0, &w);
	for (size_t i = 0; !r && i < d->nr_pipes; i++)
		r = img_write_msg(ctx, w, &d->pipes[i]->base);
	r = img_writer_close(ctx, w) ?: r;
	if (r)
		return r;

	r = img_writer_open(ctx, dir, IMG_KIND_OPEN_FILES, 0, &w);
	for (size_t i = 0; !r && i < d->nr_files; i++)
		r = img_write_msg(ctx, w, &d->files[i]->fe->base);
	return img_writer_close(ctx, w) ?: r;
}

void files_dump_finish(struct snap_ctx *ctx, struct dump_task *t, bool dies)
{
	struct files_dump *d = t->files;

	for (size_t i = 0; d && i < d->nr_files; i++)
		if (d->files[i]->tcp_repair)
			inet_dump_finish(ctx, d->files[i], dies);
}

void files_dump_free(struct files_dump *d)
{
	if (!d)
		return;
	/* Sockets still in repair mode belong to a process that died: closing them sends nothing. */
	for (size_t i = 0; i < d->nr_files; i++)
		dump_file_free(d->files[i]);
	if (d->unix_table) {
		unix_diag_table_free(d->unix_table);
		free(d->unix_table);
	}
	for (int i = 0; i < 4; i++) {
		if (d->inet_tables[i]) {
			inet_diag_table_free(d->inet_tables[i]);
			free(d->inet_tables[i]);
		}
	}
	for (size_t i = 0; i < d->nr_outside; i++)
		free(d->outside[i].link);
	free(d->outside);
	free(d->collected);
	free(d->contents);
	arena_free(&d->arena);
	free(d);
}

/* ---- restore: reading and validating ---- */

/* Reads every record of a per-dump image of @kind into a malloc'd array. */
static int read_all(struct snap_ctx *ctx, struct img_set *set, enum img_kind kind,
		    const ProtobufCMessageDescriptor *desc, ProtobufCMessage ***ret, size_t *ret_nr)
{
	ProtobufCMessage **v = NULL, *m;
	struct img_reader *rd;
	size_t nr = 0, cap = 0;
	int r;

	r = img_reader_open(ctx, set, kind, 0, &rd);
	if (r)
		return r;
	while ((r = img_read_msg(ctx, rd, desc, &m)) == 1) {
		if (nr == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			ProtobufCMessage **nv = nr < MAX_FILES ? realloc(v, ncap * sizeof(*nv)) : NULL;

			if (!nv) {
				protobuf_c_message_free_unpacked(m, NULL);
				r = snap_fail(ctx, -ENOMEM, "image %s: out of memory or too many records",
					      img_reader_name(rd));
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[nr++] = m;
	}
	img_reader_close(rd);
	if (r < 0) {
		for (size_t i = 0; i < nr; i++)
			protobuf_c_message_free_unpacked(v[i], NULL);
		free(v);
		return r;
	}
	*ret = v;
	*ret_nr = nr;
	return 0;
}

int files_image_read(struct snap_ctx *ctx, struct img_set *set, int pid, struct files_image *ret)
{
	struct files_image fi = { .data_fd = -1 };
	struct img_reader *rd;
	int r;

	r = img_reader_open(ctx, set, IMG_KIND_FILES, pid, &rd);
	if (r)
		return r;
	r = img_read_one(ctx, rd, &fs_entry__descriptor, (ProtobufCMessage **)&fi.fs);
	if (!r && fi.fs->nr_fds > 1u << 20)
		r = snap_fail(ctx, -EINVAL, "image %s: implausible fd count %u", img_reader_name(rd), fi.fs->nr_fds);
	if (!r) {
		fi.fds = calloc(fi.fs->nr_fds ? fi.fs->nr_fds : 1, sizeof(*fi.fds));
		if (!fi.fds)
			r = snap_fail(ctx, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; !r && i < fi.fs->nr_fds; i++) {
		r = img_read_one(ctx, rd, &fd_entry__descriptor, (ProtobufCMessage **)&fi.fds[i]);
		if (!r)
			fi.nr_fds++;
	}
	img_reader_close(rd);
	if (!r)
		r = read_all(ctx, set, IMG_KIND_OPEN_FILES, &file_entry__descriptor, (ProtobufCMessage ***)&fi.files,
			     &fi.nr_files);
	if (!r)
		r = read_all(ctx, set, IMG_KIND_PIPES, &pipe_entry__descriptor, (ProtobufCMessage ***)&fi.pipes,
			     &fi.nr_pipes);
	if (!r)
		r = read_all(ctx, set, IMG_KIND_FILE_CONTENTS, &file_content_entry__descriptor,
			     (ProtobufCMessage ***)&fi.contents, &fi.nr_contents);
	if (!r) {
		fi.data_fd = img_set_open_raw(ctx, set, IMG_KIND_FILE_DATA, 0, &fi.data_size);
		if (fi.data_fd < 0)
			r = fi.data_fd;
	}
	if (r) {
		files_image_free(&fi);
		return r;
	}
	*ret = fi;
	return 0;
}

void files_image_free(struct files_image *fi)
{
	for (size_t i = 0; i < fi->nr_fds; i++)
		protobuf_c_message_free_unpacked(&fi->fds[i]->base, NULL);
	free(fi->fds);
	for (size_t i = 0; i < fi->nr_files; i++)
		protobuf_c_message_free_unpacked(&fi->files[i]->base, NULL);
	free(fi->files);
	for (size_t i = 0; i < fi->nr_pipes; i++)
		protobuf_c_message_free_unpacked(&fi->pipes[i]->base, NULL);
	free(fi->pipes);
	for (size_t i = 0; i < fi->nr_contents; i++)
		protobuf_c_message_free_unpacked(&fi->contents[i]->base, NULL);
	free(fi->contents);
	if (fi->fs)
		protobuf_c_message_free_unpacked(&fi->fs->base, NULL);
	if (fi->data_fd >= 0)
		close(fi->data_fd);
	files_share_put(fi->share);
	memset(fi, 0, sizeof(*fi));
	fi->data_fd = -1;
}

int files_max_fd(const struct files_image *fi)
{
	int max = epoll_max_tfd(fi);

	for (size_t i = 0; i < fi->nr_fds; i++)
		if (fi->fds[i]->fd > max)
			max = fi->fds[i]->fd;
	return max;
}

const PipeEntry *files_pipe(const struct files_image *fi, uint32_t id)
{
	for (size_t i = 0; i < fi->nr_pipes; i++)
		if (fi->pipes[i]->id == id)
			return fi->pipes[i];
	return NULL;
}

/* The body each kind must carry. */
static bool body_fits(const FileEntry *fe)
{
	switch (fe->kind) {
	case FILE_KIND__FILE_REG:
	case FILE_KIND__FILE_DIR:
	case FILE_KIND__FILE_CHR:
	case FILE_KIND__FILE_PATH:
	case FILE_KIND__FILE_FIFO:
	case FILE_KIND__FILE_MEMFD:
		return fe->body_case == FILE_ENTRY__BODY_REG;
	case FILE_KIND__FILE_PIPE:
		return fe->body_case == FILE_ENTRY__BODY_PIPE_ID;
	case FILE_KIND__FILE_UNIX:
		return fe->body_case == FILE_ENTRY__BODY_UNIX_SK;
	case FILE_KIND__FILE_INET:
		return fe->body_case == FILE_ENTRY__BODY_INET_SK;
	case FILE_KIND__FILE_EVENTFD:
		return fe->body_case == FILE_ENTRY__BODY_EVENTFD;
	case FILE_KIND__FILE_EPOLL:
		return fe->body_case == FILE_ENTRY__BODY_EPOLL;
	case FILE_KIND__FILE_SIGNALFD:
		return fe->body_case == FILE_ENTRY__BODY_SIGNALFD;
	case FILE_KIND__FILE_TIMERFD:
		return fe->body_case == FILE_ENTRY__BODY_TIMERFD;
	case FILE_KIND__FILE_INOTIFY:
		return fe->body_case == FILE_ENTRY__BODY_INOTIFY;
	default:
		return false;
	}
}

static int validate_file(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	switch (fe->kind) {
	case FILE_KIND__FILE_REG:
	case FILE_KIND__FILE_DIR:
	case FILE_KIND__FILE_CHR:
	case FILE_KIND__FILE_PATH:
	case FILE_KIND__FILE_MEMFD:
		return reg_validate(ctx, fi, fe);
	case FILE_KIND__FILE_PIPE:
	case FILE_KIND__FILE_FIFO:
		return pipe_validate(ctx, fi, fe);
	case FILE_KIND__FILE_UNIX:
		return unix_validate(ctx, fi, fe);
	case FILE_KIND__FILE_INET:
		return inet_validate(ctx, fi, fe);
	case FILE_KIND__FILE_EPOLL:
		return epoll_validate(ctx, fi, fe);
	case FILE_KIND__FILE_TIMERFD:
		return timerfd_validate(ctx, fi, fe);
	case FILE_KIND__FILE_INOTIFY:
		return inotify_validate(ctx, fi, fe);
	default:
		return 0;
	}
}

int files_image_validate(struct snap_ctx *ctx, const struct files_image *fi)
{
	struct stat st;
	int r;

	if (fi->fs->cwd[0] != '/' || stat(fi->fs->cwd, &st) || !S_ISDIR(st.st_mode))
		return snap_fail(ctx, -ENOENT, "working directory %s no longer exists", fi->fs->cwd);
	/* The root directory is checked and entered with the other attributes (attrs.c). */
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->id != i + 1)
			return snap_fail(ctx, -EINVAL, "image open-files.img: record %zu has id %u, expected %zu", i,
					 fe->id, i + 1);
		if (!body_fits(fe))
			return snap_fail(ctx, -EINVAL, "image open-files.img: file %u: kind %d with the wrong details",
					 fe->id, fe->kind);
	}
	for (size_t i = 0; i < fi->nr_contents; i++) {
		if (fi->contents[i]->id != i + 1)
			return snap_fail(ctx, -EINVAL, "image file-contents.img: record %zu has id %u, expected %zu", i,
					 fi->contents[i]->id, i + 1);
		r = reg_content_validate(ctx, fi, fi->contents[i]);
		if (r)
			return r;
	}
	for (size_t i = 0; i < fi->nr_pipes; i++) {
		const PipeEntry *p = fi->pipes[i];

		if (files_pipe(fi, p->id) != p)
			return snap_fail(ctx, -EINVAL, "image pipes.img: pipe %u appears twice", p->id);
		if (p->data.len > p->capacity || p->capacity > (1u << 30))
			return snap_fail(ctx, -EINVAL, "image pipes.img: pipe %u holds %zu bytes, capacity %u", p->id,
					 p->data.len, p->capacity);
	}
	for (size_t i = 0; i < fi->nr_fds; i++) {
		const FdEntry *fd = fi->fds[i];

		if (fd->fd < 0 || fd->fd > 1 << 20 || (i && fd->fd <= fi->fds[i - 1]->fd))
			return snap_fail(ctx, -EINVAL, "fd %d: bad or repeated fd number in the image", fd->fd);
		if (fd->file_id < 1 || fd->file_id > fi->nr_files)
			return snap_fail(ctx, -EINVAL, "fd %d: refers to file %u, which the image does not have",
					 fd->fd, fd->file_id);
	}
	for (size_t i = 0; i < fi->nr_files; i++) {
		r = validate_file(ctx, fi, fi->files[i]);
		if (r)
			return r;
	}
	return 0;
}

/* ---- restore: in the new process ---- */

int files_keep(struct snap_ctx *ctx, struct files_restore *rs, int fd, const char *what)
{
	int hi;

	if (fd >= rs->base)
		return fd;
	hi = fcntl(fd, F_DUPFD_CLOEXEC, rs->base);
	if (hi < 0)
		hi = snap_fail(ctx, -errno, "%s: cannot move it out of the way: %m", what);
	close(fd);
	return hi;
}

void files_set(struct files_restore *rs, uint32_t id, int fd)
{
	rs->fds[id - 1] = fd;
}

int files_reopen(struct snap_ctx *ctx, struct files_restore *rs, int fd, uint32_t flags, const char *what)
{
	char path[64];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, (int)(flags & ~(uint32_t)(OPEN_ONLY_FLAGS | O_CLOEXEC)) | O_CLOEXEC);
	if (nfd < 0)
		return snap_fail(ctx, -errno, "%s: cannot open it again: %m", what);
	return files_keep(ctx, rs, nfd, what);
}

int files_set_fl(struct snap_ctx *ctx, int fd, uint32_t flags, const char *what)
{
	int cur = fcntl(fd, F_GETFL);

	if (cur < 0)
		return snap_fail(ctx, -errno, "%s: F_GETFL: %m", what);
	if (((uint32_t)cur & SETFL_FLAGS) == (flags & SETFL_FLAGS))
		return 0;
	if (fcntl(fd, F_SETFL, (cur & ~SETFL_FLAGS) | (int)(flags & SETFL_FLAGS)))
		return snap_fail(ctx, -errno, "%s: cannot set its flags 0%o: %m", what, flags & SETFL_FLAGS);
	return 0;
}

int files_restore_prepare(struct snap_ctx *ctx, const struct files_image *fi)
{
	/* The image's fds, then our copy of every file above them until each is placed. */
	return files_ensure_nofile(ctx,
				   (uint64_t)files_max_fd(fi) + 16 + fi->nr_files + fi->nr_contents + 2 * fi->nr_pipes,
				   "restoring the fds");
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int files_create(struct snap_ctx *ctx, const struct files_image *fi, int *fds, int base, const bool *want)
{
	struct files_restore rs = { .fi = fi, .fds = fds, .base = base, .want = want };
	/* Kinds in the order they need each other: sockets may bind in the cwd, epolls watch the others. */
	int (*const steps[])(struct snap_ctx *, struct files_restore *) = {
		reg_restore,	 pipe_restore,	eventfd_restore, signalfd_restore, timerfd_restore,
		inotify_restore, epoll_restore, unix_restore,	 inet_restore,	   epoll_restore_targets,
	};
	int r = 0;

	for (size_t s = 0; !r && s < sizeof(steps) / sizeof(steps[0]); s++)
		r = steps[s](ctx, &rs);
	for (size_t i = 0; !r && i < fi->nr_files; i++)
		if (files_wanted(&rs, (uint32_t)i + 1) && fds[i] < 0)
			r = snap_fail(ctx, -EINVAL, "file %zu of the image was not created (kind %d)", i + 1,
				      fi->files[i]->kind);
	return r;
}

int files_restore(struct snap_ctx *ctx, const struct files_image *fi, const int *keep, size_t nr_keep)
{
	struct files_restore rs = { .fi = fi };
	size_t nr_live = 0;
	int *live = malloc((fi->nr_fds + nr_keep + 1) * sizeof(*live)), prev = -1, r = 0;

	rs.fds = malloc((fi->nr_files ? fi->nr_files : 1) * sizeof(*rs.fds));
	if (!live || !rs.fds) {
		free(live);
		free(rs.fds);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < fi->nr_files; i++)
		rs.fds[i] = -1;
	rs.base = files_max_fd(fi) + 1;
	for (size_t i = 0; i < nr_keep; i++)
		if (keep[i] >= rs.base)
			rs.base = keep[i] + 1;
	if (fi->share) {
		/* Made before the tree forked, by us or an ancestor (files-share.c): ours by inheritance. */
		for (size_t i = 0; i < fi->nr_files; i++)
			rs.fds[i] = files_share_fd(fi, (uint32_t)i + 1);
		for (size_t i = 0; !r && i < fi->nr_fds; i++)
			if (rs.fds[fi->fds[i]->file_id - 1] < 0)
				r = snap_fail(ctx, -EINVAL, "fd %d: file %u was not created for it", fi->fds[i]->fd,
					      fi->fds[i]->file_id);
	} else {
		/* Relative socket names were bound there. */
		if (chdir(fi->fs->cwd))
			r = snap_fail(ctx, -errno, "cannot enter working directory %s: %m", fi->fs->cwd);
		if (!r)
			r = files_create(ctx, fi, rs.fds, rs.base, NULL);
	}
	for (size_t i = 0; !r && i < fi->nr_fds; i++) {
		const FdEntry *fe = fi->fds[i];

		if (dup3(rs.fds[fe->file_id - 1], fe->fd, fe->cloexec ? O_CLOEXEC : 0) < 0)
			r = snap_fail(ctx, -errno, "fd %d: cannot put file %u there: %m", fe->fd, fe->file_id);
		live[nr_live++] = fe->fd;
	}
	free(rs.fds);
	if (!r)
		r = files_share_foreground(ctx, fi);
	if (r) {
		free(live);
		return r;
	}
	/* Everything else we hold goes, but the few fds the engine still needs. */
	for (size_t i = 0; i < nr_keep; i++)
		live[nr_live++] = keep[i];
	qsort(live, nr_live, sizeof(*live), cmp_int);
	for (size_t i = 0; i < nr_live; i++) {
		if (live[i] > prev + 1)
			close_range((unsigned)prev + 1, (unsigned)live[i] - 1, 0);
		prev = live[i];
	}
	close_range((unsigned)prev + 1, ~0u, 0);
	free(live);
	return 0;
}
