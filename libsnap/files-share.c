/*
 * Open files shared between the processes of a restored tree: the plan of
 * which process creates each file, so that every process holding it
 * inherits it through fork, and the creation itself, in that process
 * before it forks; also the terminal of a --shell-job restore.
 *
 * Why inheritance and not SCM_RIGHTS: the tree is forked top-down anyway,
 * and a file created by the nearest common ancestor of its holders before
 * it forks reaches each holder with no messages, no ordering between
 * processes and nothing that can block. Files held by siblings only are
 * created by their parent, which holds them just until its own fds are
 * placed (files_restore closes whatever a process does not hold).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "files.h"
#include "restore.h"
#include "snap/snap.h"

struct files_share {
	unsigned refs;
	size_t nr_files;
	size_t *creator;   /* per file: the task index that creates it */
	const char **cwd;  /* per file: where it is created (its first holder's cwd; relative socket names) */
	int *fds;	   /* per file: the creator's descriptor, inherited by the children it forks after */
	int base;	   /* every created descriptor sits at or above it: above every fd any process places */
	int tty_fd;	   /* --shell-job: the caller's terminal, inherited by the new processes; else -1 */
	pid_t fg_pgid;	   /* the terminal's foreground group at dump, 0 if unknown or none */
	uint32_t tty_file; /* a file that is the terminal, 0 if none */
};

/* ---- the plan, in the engine ---- */

static size_t uf_find(size_t *up, size_t i)
{
	while (up[i] != i) {
		up[i] = up[up[i]];
		i = up[i];
	}
	return i;
}

static void uf_join(size_t *up, size_t a, size_t b)
{
	a = uf_find(up, a);
	b = uf_find(up, b);
	/* The lower file leads: groups keep the order of the image. */
	if (a < b)
		up[b] = a;
	else
		up[a] = b;
}

static bool named_unix(const UnixSkEntry *u)
{
	return u->has_name && u->name.len > 0;
}

/* A file under a key it shares with the files created with it. */
struct keyed {
	uint64_t key;
	const uint8_t *name; /* unix names: compared as bytes after the key (their length) */
	size_t idx;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->name && y->name) {
		int c = memcmp(x->name, y->name, x->key);

		if (c)
			return c;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorts @v and joins the files of each run of one key. */
static void join_runs(size_t *up, struct keyed *v, size_t nr)
{
	qsort(v, nr, sizeof(*v), cmp_keyed);
	for (size_t i = 1; i < nr; i++) {
		struct keyed a = v[i - 1], b = v[i];

		a.idx = b.idx = 0;
		if (!cmp_keyed(&a, &b))
			uf_join(up, v[i - 1].idx, v[i].idx);
	}
}

/* The first of sorted @v not below @key (whose idx is 0), or NULL. */
static struct keyed *lower_bound(struct keyed *v, size_t nr, const struct keyed *key)
{
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp_keyed(&v[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nr ? &v[lo] : NULL;
}

/* The unix socket of inode @ino among @by_ino (sorted), or SIZE_MAX. */
static size_t unix_by_ino(struct keyed *by_ino, size_t nr, uint64_t ino)
{
	struct keyed key = { .key = ino }, *hit = lower_bound(by_ino, nr, &key);

	return hit && hit->key == ino ? hit->idx : SIZE_MAX;
}

/*
 * Joins every file to those created with it: ends of one pipe or FIFO, the
 * descriptions of one deleted file or memfd, unix peers, a listener and its
 * clients, sockets of one name (a listener and what it accepted, datagram
 * senders and receivers), UDP senders, epoll targets. Sorted keys, so that
 * a tree with many thousands of sockets plans in n log n.
 */
static int join_related(struct snap_ctx *ctx, const struct files_image *fi, size_t *up)
{
	size_t n = fi->nr_files, nr_pipe = 0, nr_content = 0, nr_ino = 0, nr_name = 0;
	struct keyed *pipe = calloc(n ? n : 1, sizeof(*pipe)), *content = calloc(n ? n : 1, sizeof(*content));
	struct keyed *ino = calloc(n ? n : 1, sizeof(*ino)), *name = calloc(n ? n : 1, sizeof(*name));
	int r = 0;

	if (!pipe || !content || !ino || !name) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->kind == FILE_KIND__FILE_PIPE)
			pipe[nr_pipe++] = (struct keyed){ fe->pipe_id, NULL, i };
		if (fe->body_case == FILE_ENTRY__BODY_REG && fe->reg->has_pipe_id)
			pipe[nr_pipe++] = (struct keyed){ fe->reg->pipe_id, NULL, i };
		if (fe->body_case == FILE_ENTRY__BODY_REG && fe->reg->has_content_id)
			content[nr_content++] = (struct keyed){ fe->reg->content_id, NULL, i };
		if (fe->kind == FILE_KIND__FILE_UNIX) {
			ino[nr_ino++] = (struct keyed){ fe->unix_sk->ino, NULL, i };
			if (named_unix(fe->unix_sk))
				name[nr_name++] = (struct keyed){ fe->unix_sk->name.len, fe->unix_sk->name.data, i };
		}
	}
	join_runs(up, pipe, nr_pipe);
	join_runs(up, content, nr_content);
	join_runs(up, name, nr_name);
	qsort(ino, nr_ino, sizeof(*ino), cmp_keyed);
	for (size_t i = 0; !r && i < n; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->kind == FILE_KIND__FILE_UNIX) {
			const UnixSkEntry *u = fe->unix_sk;
			size_t j = u->has_peer_ino ? unix_by_ino(ino, nr_ino, u->peer_ino) : SIZE_MAX;

			if (j != SIZE_MAX)
				uf_join(up, i, j);
			for (size_t k = 0; k < u->n_pending; k++)
				if ((j = unix_by_ino(ino, nr_ino, u->pending[k])) != SIZE_MAX)
					uf_join(up, i, j);
			/* Named datagram senders of its queue: the sockets of that name. */
			for (size_t k = 0; k < u->n_queue; k++) {
				const UnixMsgEntry *m = u->queue[k];
				struct keyed *hit, key;

				if (!m->has_from || !m->from.len)
					continue;
				key = (struct keyed){ m->from.len, m->from.data, 0 };
				hit = lower_bound(name, nr_name, &key);
				if (hit && hit->key == key.key && !memcmp(hit->name, key.name, key.key))
					uf_join(up, i, hit->idx);
			}
		}
		if (fe->kind == FILE_KIND__FILE_INET) {
			for (size_t k = 0; k < fe->inet_sk->n_queue; k++) {
				uint32_t from = fe->inet_sk->queue[k]->from_id;

				if (from < 1 || from > n) {
					r = snap_fail(ctx, -EINVAL, "image open-files.img: file %u: bad sender %u",
						      fe->id, from);
					break;
				}
				uf_join(up, i, from - 1);
			}
		}
		if (fe->kind == FILE_KIND__FILE_EPOLL) {
			/* epoll_ctl needs every target in the process that registers it. */
			for (size_t k = 0; k < fe->epoll->n_targets; k++)
				uf_join(up, i, fe->epoll->targets[k]->file_id - 1);
		}
	}
out:
	free(pipe);
	free(content);
	free(ino);
	free(name);
	return r;
}

/* The nearest common ancestor of tasks @a and @b (parents come before their children). */
static size_t common_ancestor(const size_t *parent, size_t a, size_t b)
{
	while (a != b) {
		if (a > b)
			a = parent[a];
		else
			b = parent[b];
	}
	return a;
}

static bool live(const struct restore_task *t)
{
	return t->files.fs != NULL;
}

/* --shell-job: the caller's terminal, which the image's terminal becomes. */
static int plan_tty(struct snap_ctx *ctx, struct files_share *sh, const struct files_image *fi, unsigned flags)
{
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->body_case != FILE_ENTRY__BODY_REG || !fe->reg->has_tty || !fe->reg->tty)
			continue;
		if (!(flags & SNAP_RESTORE_SHELL_JOB))
			return snap_fail(ctx, -EOPNOTSUPP,
					 "the image holds a terminal (file %u, %s), dumped with --shell-job: restore "
					 "it with --shell-job",
					 fe->id, fe->reg->path);
		if (!sh->tty_file)
			sh->tty_file = fe->id;
		if (fe->reg->has_tty_fg_pgid && fe->reg->tty_fg_pgid > 0)
			sh->fg_pgid = fe->reg->tty_fg_pgid;
	}
	if (!sh->tty_file)
		return 0;
	for (int fd = 0; fd < 3 && sh->tty_fd < 0; fd++)
		if (isatty(fd))
			sh->tty_fd = fd;
	if (sh->tty_fd < 0)
		return snap_fail(ctx, -ENOTTY,
				 "--shell-job: the image holds a terminal, but none of the caller's fds 0, 1, 2 is "
				 "a terminal to give it");
	return 0;
}

int files_share_plan(struct snap_ctx *ctx, struct restore_task *tasks, const size_t *parent, size_t nr, unsigned flags)
{
	const struct files_image *fi = &tasks[0].files;
	struct files_share *sh = calloc(1, sizeof(*sh));
	size_t n = fi->nr_files, *up = NULL, *first = NULL, *nca = NULL;
	int r = 0;

	if (!sh)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	sh->refs = 1;
	sh->nr_files = n;
	sh->tty_fd = -1;
	sh->creator = calloc(n ? n : 1, sizeof(*sh->creator));
	sh->cwd = calloc(n ? n : 1, sizeof(*sh->cwd));
	sh->fds = calloc(n ? n : 1, sizeof(*sh->fds));
	up = calloc(n ? n : 1, sizeof(*up));
	first = calloc(n ? n : 1, sizeof(*first));
	nca = calloc(n ? n : 1, sizeof(*nca));
	if (!sh->creator || !sh->cwd || !sh->fds || !up || !first || !nca) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		up[i] = i;
		first[i] = nca[i] = SIZE_MAX;
		sh->fds[i] = -1;
	}
	sh->base = 3;
	for (size_t t = 0; t < nr; t++) {
		if (!live(&tasks[t]))
			continue;
		/* Every process read the same open-files.img. */
		if (tasks[t].files.nr_files != n) {
			r = snap_fail(ctx, -EINVAL, "image: pid %d sees %zu open files, the root %zu",
				      tasks[t].pstree->pid, tasks[t].files.nr_files, n);
			goto out;
		}
		if (files_max_fd(&tasks[t].files) + 1 > sh->base)
			sh->base = files_max_fd(&tasks[t].files) + 1;
	}
	r = join_related(ctx, fi, up);
	if (!r)
		r = plan_tty(ctx, sh, fi, flags);
	if (r)
		goto out;
	/* Each group is created by the nearest common ancestor of everyone holding any of it. */
	for (size_t t = 0; t < nr; t++) {
		for (size_t k = 0; live(&tasks[t]) && k < tasks[t].files.nr_fds; k++) {
			size_t g = uf_find(up, tasks[t].files.fds[k]->file_id - 1);

			if (first[g] == SIZE_MAX)
				first[g] = t;
			nca[g] = nca[g] == SIZE_MAX ? t : common_ancestor(parent, nca[g], t);
		}
	}
	for (size_t i = 0; i < n; i++) {
		size_t g = uf_find(up, i);

		/* Held by nobody (an epoll target under a closed number is joined to its epoll): the root's. */
		sh->creator[i] = nca[g] == SIZE_MAX ? 0 : nca[g];
		sh->cwd[i] = tasks[first[g] == SIZE_MAX ? 0 : first[g]].files.fs->cwd;
	}
	for (size_t t = 0; t < nr; t++) {
		if (!live(&tasks[t]))
			continue;
		tasks[t].files.share = sh;
		tasks[t].files.share_idx = t;
		sh->refs++;
	}
out:
	free(up);
	free(first);
	free(nca);
	files_share_put(sh);
	return r;
}

void files_share_put(struct files_share *sh)
{
	if (!sh || --sh->refs)
		return;
	free(sh->creator);
	free(sh->cwd);
	free(sh->fds);
	free(sh);
}

/* ---- in the new processes ---- */

int files_share_create(struct snap_ctx *ctx, struct files_image *fi)
{
	struct files_share *sh = fi->share;
	size_t n = fi->nr_files, idx = fi->share_idx, left = 0;
	bool *want, *done;
	int r = 0;

	if (!sh)
		return 0;
	for (size_t i = 0; i < n; i++)
		left += sh->creator[i] == idx;
	if (!left)
		return 0;
	/* Created descriptors sit above @base, up to one per file, content and pipe end. */
	r = files_ensure_nofile(ctx, (uint64_t)sh->base + 2 * n + fi->nr_contents + 2 * fi->nr_pipes + 16,
				"creating the shared files");
	if (r)
		return r;
	want = calloc(n, sizeof(*want));
	done = calloc(n, sizeof(*done));
	if (!want || !done) {
		free(want);
		free(done);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	/* One pass per working directory the groups are created in: relative socket names bind there. */
	while (!r && left) {
		const char *cwd = NULL;

		for (size_t i = 0; i < n; i++) {
			want[i] = false;
			if (sh->creator[i] != idx || done[i] || (cwd && strcmp(cwd, sh->cwd[i])))
				continue;
			cwd = sh->cwd[i];
			want[i] = done[i] = true;
			left--;
		}
		if (chdir(cwd))
			r = snap_fail(ctx, -errno, "cannot enter working directory %s: %m", cwd);
		if (!r)
			r = files_create(ctx, fi, sh->fds, sh->base, want);
	}
	free(want);
	free(done);
	return r;
}

int files_share_fd(const struct files_image *fi, uint32_t id)
{
	return fi->share && id >= 1 && id <= fi->share->nr_files ? fi->share->fds[id - 1] : -1;
}

size_t files_share_creator(const struct files_image *fi, uint32_t id)
{
	return fi->share && id >= 1 && id <= fi->share->nr_files ? fi->share->creator[id - 1] : SIZE_MAX;
}

int files_share_base(const struct files_image *fi)
{
	return fi->share ? fi->share->base : -1;
}

int files_share_tty_fd(const struct files_image *fi)
{
	return fi->share ? fi->share->tty_fd : -1;
}

int files_share_foreground(struct snap_ctx *ctx, const struct files_image *fi)
{
	const struct files_share *sh = fi->share;
	sigset_t ttou, old;
	int fd = -1, r = 0;

	/* The group's leader does it, once its group exists; a group inherited from outside is the caller's. */
	if (!sh || !sh->tty_file || !sh->fg_pgid || getpid() != sh->fg_pgid)
		return 0;
	for (size_t i = 0; i < fi->nr_fds && fd < 0; i++)
		if (fi->fds[i]->file_id == sh->tty_file)
			fd = fi->fds[i]->fd;
	/* Not one of its fds: the copy it inherited, if its creator is an ancestor. */
	if (fd < 0)
		fd = files_share_fd(fi, sh->tty_file);
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return 0;
	/* From a background group tcsetpgrp raises SIGTTOU: held back for the call. */
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &old);
	if (tcsetpgrp(fd, getpgrp()))
		r = snap_fail(ctx, -errno,
			      "--shell-job: cannot make group %d the terminal's foreground group (is the terminal "
			      "the caller's controlling terminal?): %m",
			      (int)getpgrp());
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}
