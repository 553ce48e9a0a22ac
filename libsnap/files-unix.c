/*
 * Unix sockets: stream, datagram and seqpacket; unnamed, path and abstract
 * names; listeners with the connections waiting on them; connected pairs
 * rebuilt by socketpair or connect + accept; unread messages with their
 * boundaries and senders; shutdown state and options.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "files.h"
#include "sockdiag.h"

/* Unread bytes of one socket must fit in its image record. */
#define QUEUE_MAX     (IMG_MAX_RECORD - (64u << 10))
#define PEEK_BUF      (IMG_MAX_RECORD)
#define RCV_SHUTDOWN  1
#define SEND_SHUTDOWN 2

static bool named(const UnixSkEntry *u)
{
	return u->has_name && u->name.len > 0;
}

static bool path_name(const UnixSkEntry *u)
{
	return named(u) && u->name.data[0] != '\0';
}

static bool same_name(const UnixSkEntry *a, const UnixSkEntry *b)
{
	return named(a) && named(b) && a->name.len == b->name.len && !memcmp(a->name.data, b->name.data, a->name.len);
}

/* The name for messages: a path, or "@name" for an abstract one. */
static const char *name_str(const uint8_t *name, size_t len, char *buf, size_t cap)
{
	size_t n = 0;

	if (!len)
		return "(unnamed)";
	if (name[0] == '\0') {
		buf[n++] = '@';
		name++;
		len--;
	}
	for (size_t i = 0; i < len && n + 1 < cap && name[i]; i++)
		buf[n++] = (char)name[i];
	buf[n] = '\0';
	return buf;
}

static socklen_t make_addr(struct sockaddr_un *sa, const uint8_t *name, size_t len)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

/* ---- dump ---- */

static struct dump_file *dump_sk_by_ino(struct files_dump *d, uint64_t ino)
{
	return ino ? files_dump_find_ino(d, ino, FILE_KIND__FILE_UNIX) : NULL;
}

/* "socket:[N] (name) held by pid P (comm)" for a socket outside the dump. */
static const char *describe_outside(struct snap_ctx *ctx, struct files_dump *d, const struct unix_diag_table *t,
				    uint64_t ino, char *buf, size_t cap)
{
	const struct unix_diag_sk *s = unix_diag_find(t, ino);
	char link[48], nm[120];
	const char *who;

	snprintf(link, sizeof(link), "socket:[%llu]", (unsigned long long)ino);
	who = files_outside_holder(ctx, d, link);
	snprintf(buf, cap, "unix socket %s%s%s%s held by %s", link, s && s->name_len ? " (" : "",
		 s && s->name_len ? name_str((const uint8_t *)s->name, s->name_len, nm, sizeof(nm)) : "",
		 s && s->name_len ? ")" : "", who ? who : "no process (it is being closed, or lives only in a queue)");
	return buf;
}

/* Reads every unread message of the socket without taking it: MSG_PEEK from a moving SO_PEEK_OFF. */
static int peek_queue(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, UnixSkEntry *u)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 253)];
	int old_off = -1, zero = 0, r = 0;
	socklen_t olen = sizeof(old_off);
	size_t total = 0;
	uint8_t *buf;
	UnixMsgEntry *stream = NULL;

	if (getsockopt(f->local, SOL_SOCKET, SO_PEEK_OFF, &old_off, &olen))
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot read SO_PEEK_OFF: %m", f->pid, f->fd);
	buf = malloc(PEEK_BUF);
	if (!buf)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	if (setsockopt(f->local, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero))) {
		r = snap_fail(ctx, -errno, "pid %d: fd %d: cannot set SO_PEEK_OFF: %m", f->pid, f->fd);
		goto out;
	}
	for (;;) {
		struct sockaddr_un from;
		struct iovec iov = { buf, PEEK_BUF };
		struct msghdr mh = { .msg_name = &from,
				     .msg_namelen = sizeof(from),
				     .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		UnixMsgEntry *m;
		ssize_t n = recvmsg(f->local, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			r = snap_fail(ctx, -errno, "pid %d: fd %d: cannot peek at its queue: %m", f->pid, f->fd);
			break;
		}
		if (n == 0 && u->type == SOCK_STREAM)
			break; /* end of stream: the peer shut down */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int *fds = (int *)CMSG_DATA(c);

				/* Peeking installed them here: they are not ours to keep. */
				for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++)
					close(fds[k]);
				r = -EOPNOTSUPP;
			}
		}
		if (r || (mh.msg_flags & MSG_CTRUNC)) {
			r = snap_fail(ctx, -EOPNOTSUPP,
				      "pid %d: fd %d: unix socket has file descriptors in flight (SCM_RIGHTS), which "
				      "cannot be checkpointed yet",
				      f->pid, f->fd);
			break;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			r = snap_fail(ctx, -EFBIG, "pid %d: fd %d: a queued message is larger than %u bytes", f->pid,
				      f->fd, PEEK_BUF);
			break;
		}
		total += (size_t)n;
		if (total > QUEUE_MAX) {
			r = snap_fail(ctx, -EFBIG, "pid %d: fd %d: more than %u unread bytes queued", f->pid, f->fd,
				      QUEUE_MAX);
			break;
		}
		if (u->type == SOCK_STREAM && stream) {
			uint8_t *grown = arena_alloc(&d->arena, stream->data.len + (size_t)n);

			if (!grown) {
				r = snap_fail(ctx, -ENOMEM, "out of memory");
				break;
			}
			memcpy(grown, stream->data.data, stream->data.len);
			memcpy(grown + stream->data.len, buf, (size_t)n);
			stream->data.data = grown;
			stream->data.len += (size_t)n;
			continue;
		}
		m = arena_alloc(&d->arena, sizeof(*m));
		if (!m || arena_push(&d->arena, (void ***)&u->queue, &u->n_queue, m)) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		unix_msg_entry__init(m);
		m->data.len = (size_t)n;
		m->data.data = arena_memdup(&d->arena, buf, (size_t)n);
		if (!m->data.data) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		if (u->type == SOCK_DGRAM && mh.msg_namelen > offsetof(struct sockaddr_un, sun_path)) {
			m->has_from = 1;
			m->from.len = mh.msg_namelen - offsetof(struct sockaddr_un, sun_path);
			m->from.data = arena_memdup(&d->arena, from.sun_path, m->from.len);
			if (!m->from.data) {
				r = snap_fail(ctx, -ENOMEM, "out of memory");
				break;
			}
		}
		if (u->type == SOCK_STREAM)
			stream = m;
	}
out:
	/* Put the process's own peek offset back, whether it used one or not. */
	if (setsockopt(f->local, SOL_SOCKET, SO_PEEK_OFF, &old_off, sizeof(old_off)) && !r)
		r = snap_fail(ctx, -errno, "pid %d: fd %d: cannot restore SO_PEEK_OFF: %m", f->pid, f->fd);
	if (!r && old_off >= 0) {
		u->has_peek_off = 1;
		u->peek_off = old_off;
	}
	free(buf);
	return r;
}

/* Whether a listening socket of the table has name @name. */
static bool listener_named(const struct unix_diag_table *t, const struct unix_diag_sk *s)
{
	for (size_t i = 0; i < t->nr; i++) {
		const struct unix_diag_sk *l = &t->v[i];

		if (l->state == TCP_LISTEN && l->type == s->type && l->name_len == s->name_len &&
		    !memcmp(l->name, s->name, s->name_len))
			return true;
	}
	return false;
}

/* Connected stream or seqpacket: which side accept() made, which is fixed by whose name is the listener's. */
static int find_accepted(struct snap_ctx *ctx, struct dump_file *f, const struct unix_diag_table *t,
			 const struct unix_diag_sk *s, UnixSkEntry *u)
{
	const struct unix_diag_sk *p = s->peer ? unix_diag_find(t, s->peer) : NULL;
	bool mine, theirs;

	if (!s->name_len)
		return 0;
	if (!p || !p->name_len) {
		u->has_accepted = u->accepted = 1;
		return 0;
	}
	mine = listener_named(t, s);
	theirs = listener_named(t, p);
	if (mine != theirs) {
		u->has_accepted = 1;
		u->accepted = mine;
		return 0;
	}
	return snap_fail(ctx, -EOPNOTSUPP,
			 "pid %d: fd %d: both ends of this unix connection are named and neither name has a listener, "
			 "so which end was accepted is unknown",
			 f->pid, f->fd);
}

static int check_peers(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, const struct unix_diag_table *t,
		       const struct unix_diag_sk *s)
{
	char what[256];

	if (s->peer && !dump_sk_by_ino(d, s->peer))
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: unix socket is connected to %s, outside the dump",
				 f->pid, f->fd, describe_outside(ctx, d, t, s->peer, what, sizeof(what)));
	for (size_t i = 0; i < s->nr_icons; i++)
		if (!dump_sk_by_ino(d, s->icons[i]))
			return snap_fail(
				ctx, -EOPNOTSUPP,
				"pid %d: fd %d: unix listener has a connection waiting from %s, outside the dump",
				f->pid, f->fd, describe_outside(ctx, d, t, s->icons[i], what, sizeof(what)));
	/* Sockets outside that are connected to this one would be cut off. */
	for (size_t i = 0; i < t->nr; i++)
		if (t->v[i].peer == s->ino && !dump_sk_by_ino(d, t->v[i].ino))
			return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: %s is connected to this unix socket", f->pid,
					 f->fd, describe_outside(ctx, d, t, t->v[i].ino, what, sizeof(what)));
	if (s->state == TCP_ESTABLISHED && !s->peer && s->type != SOCK_DGRAM) {
		const struct unix_diag_sk *l = unix_diag_listener_of(t, s->ino);

		if (l && !dump_sk_by_ino(d, l->ino))
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: fd %d: unix socket waits to be accepted by %s, outside the dump",
					 f->pid, f->fd, describe_outside(ctx, d, t, l->ino, what, sizeof(what)));
		/* What it sent sits in a socket accept() has not made yet: no way to read it. */
		if (l && s->wqlen)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: fd %d: unix socket waiting to be accepted has sent data nobody can "
					 "read before accept()",
					 f->pid, f->fd);
	}
	return 0;
}

/* Messages from named senders can be sent again only by a socket of the dump with that name. */
static int check_senders(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f,
			 const struct unix_diag_table *t, const UnixSkEntry *u)
{
	for (size_t i = 0; i < u->n_queue; i++) {
		const UnixMsgEntry *m = u->queue[i];
		bool found = false;
		char nm[120];

		if (!m->has_from || !m->from.len)
			continue;
		for (size_t k = 0; k < d->nr_files && !found; k++) {
			const struct unix_diag_sk *s;

			if (d->files[k]->ops->kind != FILE_KIND__FILE_UNIX)
				continue;
			s = unix_diag_find(t, (uint64_t)d->files[k]->st.st_ino);
			found = s && s->name_len == m->from.len && !memcmp(s->name, m->from.data, m->from.len);
		}
		if (!found)
			return snap_fail(
				ctx, -EOPNOTSUPP,
				"pid %d: fd %d: a queued datagram came from %s, which is not a socket of the dump",
				f->pid, f->fd, name_str(m->from.data, m->from.len, nm, sizeof(nm)));
	}
	return 0;
}

static unsigned scm_fds(const char *fdinfo)
{
	const char *p = strstr(fdinfo, "\nscm_fds:");

	return p ? (unsigned)strtoul(p + 9, NULL, 10) : 0;
}

int unix_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	const struct unix_diag_table *t;
	const struct unix_diag_sk *s;
	UnixSkEntry *u;
	int r;

	r = files_unix_table(ctx, d, &t);
	if (r)
		return r;
	s = unix_diag_find(t, (uint64_t)f->st.st_ino);
	if (!s)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: unix socket %s is not in this network namespace",
				 f->pid, f->fd, f->link);
	if (s->type != SOCK_STREAM && s->type != SOCK_DGRAM && s->type != SOCK_SEQPACKET)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: unix socket of type %u", f->pid, f->fd, s->type);
	if (s->state != TCP_LISTEN && s->state != TCP_ESTABLISHED && s->state != TCP_CLOSE)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d: fd %d: unix socket in state %u (connecting?)", f->pid,
				 f->fd, s->state);
	if (scm_fds(f->fdinfo))
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d: unix socket has %u file descriptors in flight (SCM_RIGHTS), which "
				 "cannot be checkpointed yet",
				 f->pid, f->fd, scm_fds(f->fdinfo));
	r = check_peers(ctx, d, f, t, s);
	if (r)
		return r;
	u = arena_alloc(&d->arena, sizeof(*u));
	if (!u)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	unix_sk_entry__init(u);
	f->fe->body_case = FILE_ENTRY__BODY_UNIX_SK;
	f->fe->unix_sk = u;
	u->ino = s->ino;
	u->type = s->type;
	u->state = s->state;
	if (s->name_len) {
		u->has_name = 1;
		u->name.len = s->name_len;
		u->name.data = arena_memdup(&d->arena, s->name, s->name_len);
		if (!u->name.data)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		if (s->name[0]) {
			char path[PATH_MAX + 64];
			struct stat st;

			/* A relative name was bound in the process's cwd. */
			if (s->name[0] == '/')
				snprintf(path, sizeof(path), "%.*s", (int)s->name_len, s->name);
			else
				snprintf(path, sizeof(path), "/proc/%d/cwd/%.*s", (int)f->pid, (int)s->name_len,
					 s->name);
			if (stat(path, &st) || !s->has_vfs || st.st_ino != s->vfs_ino) {
				u->has_name_unlinked = 1;
				u->name_unlinked = 1;
			}
		}
	}
	if (s->peer) {
		u->has_peer_ino = 1;
		u->peer_ino = s->peer;
	}
	if (s->state == TCP_LISTEN) {
		u->has_backlog = 1;
		u->backlog = s->wqlen;
		u->pending = arena_alloc(&d->arena, (s->nr_icons ? s->nr_icons : 1) * sizeof(*u->pending));
		if (!u->pending)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		memcpy(u->pending, s->icons, s->nr_icons * sizeof(*u->pending));
		u->n_pending = s->nr_icons;
	}
	if (s->shutdown) {
		u->has_shutdown = 1;
		u->shutdown = s->shutdown;
	}
	if (s->type != SOCK_DGRAM && s->state == TCP_ESTABLISHED) {
		r = find_accepted(ctx, f, t, s, u);
		if (r)
			return r;
	}
	if (s->state != TCP_LISTEN) {
		r = peek_queue(ctx, d, f, u);
		if (!r)
			r = check_senders(ctx, d, f, t, u);
		if (r)
			return r;
	}
	return sk_dump_opts(ctx, d, f, &u->opts, &u->n_opts);
}

/* ---- restore ---- */

static const UnixSkEntry *image_sk(const struct files_image *fi, uint64_t ino, uint32_t *ret_id)
{
	for (size_t i = 0; ino && i < fi->nr_files; i++) {
		if (fi->files[i]->kind == FILE_KIND__FILE_UNIX && fi->files[i]->unix_sk->ino == ino) {
			if (ret_id)
				*ret_id = fi->files[i]->id;
			return fi->files[i]->unix_sk;
		}
	}
	return NULL;
}

static const UnixSkEntry *image_listener(const struct files_image *fi, const UnixSkEntry *u, uint32_t *ret_id)
{
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->kind == FILE_KIND__FILE_UNIX && fe->unix_sk->state == TCP_LISTEN &&
		    fe->unix_sk->type == u->type && same_name(fe->unix_sk, u)) {
			if (ret_id)
				*ret_id = fe->id;
			return fe->unix_sk;
		}
	}
	return NULL;
}

static bool is_pending(const struct files_image *fi, uint64_t ino)
{
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];

		if (fe->kind != FILE_KIND__FILE_UNIX || fe->unix_sk->state != TCP_LISTEN)
			continue;
		for (size_t k = 0; k < fe->unix_sk->n_pending; k++)
			if (fe->unix_sk->pending[k] == ino)
				return true;
	}
	return false;
}

/*
 * Whether @u's name can be bound again: free, or (for a path) a socket
 * file nobody answers on any more, what a dead process leaves behind and
 * restore removes first.
 */
static int check_name_free(struct snap_ctx *ctx, const struct files_image *fi, const UnixSkEntry *u, const char *what)
{
	char path[PATH_MAX + 120];
	struct sockaddr_un sa;
	socklen_t salen = make_addr(&sa, u->name.data, u->name.len);
	struct stat st;
	int sk, r = 0;

	sk = socket(AF_UNIX, (int)u->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sk < 0)
		return snap_fail(ctx, -errno, "%s: cannot create a socket: %m", what);
	if (!path_name(u)) {
		/* An abstract name is free if we can take it; ours goes when we close it. */
		if (bind(sk, (struct sockaddr *)&sa, salen))
			r = snap_fail(ctx, -errno, "%s: its name is %s", what,
				      errno == EADDRINUSE ? "in use by another socket" : strerror(errno));
		close(sk);
		return r;
	}
	/* A relative name is bound in the process's working directory. */
	snprintf(path, sizeof(path), "%s%s%.*s", sa.sun_path[0] == '/' ? "" : fi->fs->cwd,
		 sa.sun_path[0] == '/' ? "" : "/", (int)sizeof(sa.sun_path), sa.sun_path);
	if (lstat(path, &st)) {
		char *slash = strrchr(path, '/');

		if (slash && slash != path) {
			*slash = '\0';
			if (stat(path, &st) || !S_ISDIR(st.st_mode))
				r = snap_fail(ctx, -ENOENT, "%s: directory %s no longer exists", what, path);
		}
	} else if (!S_ISSOCK(st.st_mode)) {
		r = snap_fail(ctx, -EADDRINUSE, "%s: %s exists and is not a socket", what, path);
	} else if (strlen(path) < sizeof(sa.sun_path) &&
		   (!connect(sk, (struct sockaddr *)&sa, make_addr(&sa, (const uint8_t *)path, strlen(path) + 1)) ||
		    errno != ECONNREFUSED)) {
		r = snap_fail(ctx, -EADDRINUSE, "%s: %s belongs to a live socket", what, path);
	}
	close(sk);
	return r;
}

int unix_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	const UnixSkEntry *u = fe->unix_sk;
	char what[200], nm[120];

	snprintf(what, sizeof(what), "unix socket %s (file %u)",
		 named(u) ? name_str(u->name.data, u->name.len, nm, sizeof(nm)) : "", fe->id);
	if (u->type != SOCK_STREAM && u->type != SOCK_DGRAM && u->type != SOCK_SEQPACKET)
		return snap_fail(ctx, -EINVAL, "%s: bad type %u in the image", what, u->type);
	if (u->state != TCP_LISTEN && u->state != TCP_ESTABLISHED && u->state != TCP_CLOSE)
		return snap_fail(ctx, -EINVAL, "%s: bad state %u in the image", what, u->state);
	if (named(u) && u->name.len > sizeof(((struct sockaddr_un *)0)->sun_path))
		return snap_fail(ctx, -EINVAL, "%s: name too long in the image", what);
	if (u->has_peer_ino && u->peer_ino && !image_sk(fi, u->peer_ino, NULL))
		return snap_fail(ctx, -EINVAL, "%s: its peer %llu is not in the image", what,
				 (unsigned long long)u->peer_ino);
	for (size_t i = 0; i < u->n_pending; i++) {
		const UnixSkEntry *c = image_sk(fi, u->pending[i], NULL);

		if (!c || c->state != TCP_ESTABLISHED || (c->has_peer_ino && c->peer_ino) || c->type != u->type ||
		    c->n_queue)
			return snap_fail(ctx, -EINVAL, "%s: waiting connection %llu is not a client in the image", what,
					 (unsigned long long)u->pending[i]);
	}
	if (u->type == SOCK_DGRAM && u->has_peer_ino && u->peer_ino) {
		const UnixSkEntry *p = image_sk(fi, u->peer_ino, NULL);

		if (!named(p) && !(p->has_peer_ino && p->peer_ino == u->ino))
			return snap_fail(ctx, -EINVAL, "%s: connected to an unnamed socket that is not its pair", what);
	}
	if (u->type != SOCK_DGRAM && u->state == TCP_ESTABLISHED && u->has_accepted && u->accepted && !named(u))
		return snap_fail(ctx, -EINVAL, "%s: accepted but unnamed in the image", what);
	for (size_t i = 0; i < u->n_queue; i++) {
		const UnixMsgEntry *m = u->queue[i];
		bool found = !m->has_from || !m->from.len;

		for (size_t k = 0; !found && k < fi->nr_files; k++) {
			const FileEntry *o = fi->files[k];

			found = o->kind == FILE_KIND__FILE_UNIX && named(o->unix_sk) &&
				o->unix_sk->name.len == m->from.len &&
				!memcmp(o->unix_sk->name.data, m->from.data, m->from.len);
		}
		if (!found || (u->type == SOCK_STREAM && i))
			return snap_fail(ctx, -EINVAL, "%s: queued message %zu has no sender in the image", what, i);
	}
	/* Every named socket binds its name again, but one accepted from a listener of the image. */
	if (named(u) && !(u->has_accepted && u->accepted && image_listener(fi, u, NULL)))
		return check_name_free(ctx, fi, u, what);
	return 0;
}

/* State of one unix restore. */
struct unix_rs {
	struct files_restore *rs;
	int *temp; /* sockets of ours to close at the end (temporary listeners and peers) */
	size_t nr_temp;
	char **unlink; /* names to remove at the end */
	size_t nr_unlink;
};

static int add_temp(struct snap_ctx *ctx, struct unix_rs *us, int fd)
{
	int *v = realloc(us->temp, (us->nr_temp + 1) * sizeof(*v));

	if (!v) {
		close(fd);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	us->temp = v;
	us->temp[us->nr_temp++] = fd;
	return 0;
}

static int add_unlink(struct snap_ctx *ctx, struct unix_rs *us, const UnixSkEntry *u)
{
	char **v = realloc(us->unlink, (us->nr_unlink + 1) * sizeof(*v));

	if (!v || !(v[us->nr_unlink] = strndup((const char *)u->name.data, u->name.len))) {
		if (v)
			us->unlink = v;
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	us->unlink = v;
	us->nr_unlink++;
	return 0;
}

/*
 * Every socket is made non-blocking, so that no connect or send can hang
 * the restore; each gets its own flags back at the end.
 */
static int new_sk(struct snap_ctx *ctx, struct unix_rs *us, const FileEntry *fe, const char *what)
{
	int fd = socket(AF_UNIX, (int)fe->unix_sk->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;

	if (fd < 0)
		return snap_fail(ctx, -errno, "%s: cannot create it: %m", what);
	fd = files_keep(ctx, us->rs, fd, what);
	if (fd < 0)
		return fd;
	files_set(us->rs, fe->id, fd);
	r = sk_restore_opts(ctx, fd, fe->unix_sk->opts, fe->unix_sk->n_opts, what);
	return r ? r : fd;
}

/* Binds @fd to @u's name, removing the socket file a dead process left there. */
static int bind_name(struct snap_ctx *ctx, struct unix_rs *us, int fd, const UnixSkEntry *u, const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = make_addr(&sa, u->name.data, u->name.len);
	struct stat st;

	if (path_name(u) && !lstat(sa.sun_path, &st) && S_ISSOCK(st.st_mode))
		unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, len))
		return snap_fail(ctx, -errno, "%s: cannot bind it: %m", what);
	if (path_name(u) && u->has_name_unlinked && u->name_unlinked)
		return add_unlink(ctx, us, u);
	return 0;
}

static int connect_name(struct snap_ctx *ctx, int fd, const UnixSkEntry *to, const char *what)
{
	struct sockaddr_un sa;

	if (connect(fd, (struct sockaddr *)&sa, make_addr(&sa, to->name.data, to->name.len)))
		return snap_fail(ctx, -errno, "%s: cannot connect it: %m", what);
	return 0;
}

static void describe(const FileEntry *fe, char *what, size_t cap)
{
	char nm[120];

	snprintf(what, cap, "unix socket %s (file %u)",
		 named(fe->unix_sk) ? name_str(fe->unix_sk->name.data, fe->unix_sk->name.len, nm, sizeof(nm)) : "",
		 fe->id);
}

/* Listeners, and sockets that are bound or unconnected: each made on its own. */
static int make_alone(struct snap_ctx *ctx, struct unix_rs *us, const FileEntry *fe)
{
	const UnixSkEntry *u = fe->unix_sk;
	char what[200];
	int fd, r = 0;

	describe(fe, what, sizeof(what));
	fd = new_sk(ctx, us, fe, what);
	if (fd < 0)
		return fd;
	if (named(u))
		r = bind_name(ctx, us, fd, u, what);
	if (!r && u->state == TCP_LISTEN && listen(fd, (int)u->backlog))
		r = snap_fail(ctx, -errno, "%s: cannot listen: %m", what);
	return r;
}

/*
 * A connected stream or seqpacket pair: @a accepted (named) or not. With
 * @b NULL, @a's peer was closed: a peer of ours stands in until the end.
 */
static int make_pair(struct snap_ctx *ctx, struct unix_rs *us, const FileEntry *a, const FileEntry *b, int *ret_standin)
{
	const struct files_image *fi = us->rs->fi;
	const UnixSkEntry *ua = a->unix_sk;
	char what[200];
	int fa, fb, r;

	describe(a, what, sizeof(what));
	if (!(ua->has_accepted && ua->accepted)) {
		int sv[2];

		if (socketpair(AF_UNIX, (int)ua->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
			return snap_fail(ctx, -errno, "%s: socketpair: %m", what);
		fa = files_keep(ctx, us->rs, sv[0], what);
		fb = files_keep(ctx, us->rs, sv[1], what);
		if (fa < 0 || fb < 0)
			return fa < 0 ? fa : fb;
		files_set(us->rs, a->id, fa);
		r = sk_restore_opts(ctx, fa, ua->opts, ua->n_opts, what);
		if (r)
			return r;
	} else {
		uint32_t lid = 0;
		const UnixSkEntry *l = image_listener(fi, ua, &lid);
		int lfd, c;

		/* accept() gives the new socket the listener's name: from the real one, or one of ours. */
		if (l) {
			lfd = us->rs->fds[lid - 1];
		} else {
			lfd = socket(AF_UNIX, (int)ua->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (lfd < 0)
				return snap_fail(ctx, -errno, "%s: cannot create a socket: %m", what);
			r = add_temp(ctx, us, lfd);
			if (!r)
				r = bind_name(ctx, us, lfd, ua, what);
			if (!r && listen(lfd, 1))
				r = snap_fail(ctx, -errno, "%s: cannot listen: %m", what);
			if (r)
				return r;
		}
		if (b) {
			char bwhat[200];

			describe(b, bwhat, sizeof(bwhat));
			fb = new_sk(ctx, us, b, bwhat);
			if (fb < 0)
				return fb;
			if (named(b->unix_sk) && (r = bind_name(ctx, us, fb, b->unix_sk, bwhat)))
				return r;
		} else {
			fb = socket(AF_UNIX, (int)ua->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fb < 0)
				return snap_fail(ctx, -errno, "%s: cannot create a socket: %m", what);
		}
		r = connect_name(ctx, fb, ua, what);
		if (r)
			return r;
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			return snap_fail(ctx, -errno, "%s: cannot accept it: %m", what);
		fa = files_keep(ctx, us->rs, c, what);
		if (fa < 0)
			return fa;
		files_set(us->rs, a->id, fa);
		r = sk_restore_opts(ctx, fa, ua->opts, ua->n_opts, what);
		if (r)
			return r;
		if (!b) {
			fb = files_keep(ctx, us->rs, fb, what);
			if (fb < 0)
				return fb;
			*ret_standin = fb;
			return add_temp(ctx, us, fb);
		}
		return 0;
	}
	if (!b) {
		*ret_standin = fb;
		return add_temp(ctx, us, fb);
	}
	files_set(us->rs, b->id, fb);
	describe(b, what, sizeof(what));
	return sk_restore_opts(ctx, fb, b->unix_sk->opts, b->unix_sk->n_opts, what);
}

/* The sender of queued datagram @m of @u: a socket of the image, its pair, or an unnamed one of ours. */
static int dgram_sender(struct snap_ctx *ctx, struct unix_rs *us, const UnixSkEntry *u, const UnixMsgEntry *m,
			int *ret_fd, bool *ret_to_peer)
{
	const struct files_image *fi = us->rs->fi;

	*ret_to_peer = !named(u);
	if (m->has_from && m->from.len) {
		for (size_t i = 0; i < fi->nr_files; i++) {
			const FileEntry *o = fi->files[i];

			if (o->kind == FILE_KIND__FILE_UNIX && o->unix_sk->type == SOCK_DGRAM && named(o->unix_sk) &&
			    o->unix_sk->name.len == m->from.len &&
			    !memcmp(o->unix_sk->name.data, m->from.data, m->from.len)) {
				*ret_fd = us->rs->fds[o->id - 1];
				return 0;
			}
		}
		return snap_fail(ctx, -EINVAL, "a queued datagram's sender is not in the image");
	}
	if (!named(u)) {
		uint32_t pid = 0;

		/* Nobody can name it: what it holds came from its pair. */
		if (!u->has_peer_ino || !image_sk(fi, u->peer_ino, &pid))
			return snap_fail(ctx, -EINVAL, "an unnamed datagram socket holds messages but has no pair");
		*ret_fd = us->rs->fds[pid - 1];
		return 0;
	}
	*ret_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (*ret_fd < 0)
		return snap_fail(ctx, -errno, "cannot create a socket: %m");
	return add_temp(ctx, us, *ret_fd);
}

/* Lets @fd queue @bytes more, whatever its send buffer was; returns the old size to put back. */
static int widen_sndbuf(int fd, size_t bytes)
{
	int old = 0, want = (int)(bytes * 2 + (256 << 10));
	socklen_t len = sizeof(old);

	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &old, &len))
		return -1;
	if (old < want)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want));
	return old;
}

static void narrow_sndbuf(int fd, int old)
{
	int half = old / 2;

	if (old > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof(half));
}

static int send_all(struct snap_ctx *ctx, int fd, const void *buf, size_t len, const struct sockaddr_un *to,
		    socklen_t tolen, const char *what)
{
	const uint8_t *p = buf;
	int old = widen_sndbuf(fd, len);
	int r = 0;

	do {
		ssize_t n = sendto(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)to, tolen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = snap_fail(ctx, -errno, "%s: cannot put its unread data back: %m", what);
			break;
		}
		p += n;
		len -= (size_t)n;
	} while (len);
	narrow_sndbuf(fd, old);
	return r;
}

/* Puts the unread messages of @fe back into its receive queue, sent by whoever sent them. */
static int fill_queue(struct snap_ctx *ctx, struct unix_rs *us, const FileEntry *fe, int peer_fd)
{
	const UnixSkEntry *u = fe->unix_sk;
	char what[200];

	describe(fe, what, sizeof(what));
	for (size_t i = 0; i < u->n_queue; i++) {
		const UnixMsgEntry *m = u->queue[i];
		struct sockaddr_un sa;
		socklen_t salen = 0;
		bool to_peer = true;
		int from = peer_fd, r;

		if (u->type == SOCK_DGRAM) {
			r = dgram_sender(ctx, us, u, m, &from, &to_peer);
			if (r)
				return r;
			if (!to_peer)
				salen = make_addr(&sa, u->name.data, u->name.len);
		}
		if (from < 0)
			return snap_fail(ctx, -EINVAL, "%s: no peer to send its unread data from", what);
		r = send_all(ctx, from, m->data.data, m->data.len, salen ? &sa : NULL, salen, what);
		if (r)
			return r;
	}
	return 0;
}

static int shutdown_how(uint32_t bits)
{
	return (bits & 3) == 3 ? SHUT_RDWR : (bits & RCV_SHUTDOWN) ? SHUT_RD : SHUT_WR;
}

int unix_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;
	struct unix_rs us = { .rs = rs };
	int *closed_peer = calloc(fi->nr_files ? fi->nr_files : 1, sizeof(*closed_peer));
	int r = 0;

	if (!closed_peer)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < fi->nr_files; i++)
		closed_peer[i] = -1;
	/* 1. On their own: listeners first (accept and the waiting clients need them), bound and unconnected ones. */
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const UnixSkEntry *u = fe->unix_sk;

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_UNIX)
			continue;
		if (u->state == TCP_LISTEN || (u->type == SOCK_DGRAM && !(u->has_peer_ino && u->peer_ino)) ||
		    (u->type == SOCK_DGRAM && named(u)) || u->state == TCP_CLOSE)
			r = make_alone(ctx, &us, fe);
	}
	/* 2. Connected pairs, and sockets whose peer was closed. */
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const UnixSkEntry *u = fe->unix_sk;
		uint32_t pid = 0;
		const UnixSkEntry *p;

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_UNIX || rs->fds[i] >= 0 ||
		    u->state != TCP_ESTABLISHED)
			continue;
		if (u->type == SOCK_DGRAM) {
			/* Unnamed mutual datagram pairs can only come from socketpair(). */
			p = image_sk(fi, u->peer_ino, &pid);
			if (p && !named(u) && !named(p) && p->has_peer_ino && p->peer_ino == u->ino) {
				int sv[2];
				char what[200];

				describe(fe, what, sizeof(what));
				if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv)) {
					r = snap_fail(ctx, -errno, "%s: socketpair: %m", what);
					break;
				}
				sv[0] = files_keep(ctx, rs, sv[0], what);
				sv[1] = files_keep(ctx, rs, sv[1], what);
				if (sv[0] < 0 || sv[1] < 0) {
					r = sv[0] < 0 ? sv[0] : sv[1];
					break;
				}
				files_set(rs, fe->id, sv[0]);
				files_set(rs, pid, sv[1]);
				r = sk_restore_opts(ctx, sv[0], u->opts, u->n_opts, what);
				if (!r)
					r = sk_restore_opts(ctx, sv[1], p->opts, p->n_opts, what);
			} else {
				/* Connected to a named socket later, once its queue is filled. */
				char what[200];

				describe(fe, what, sizeof(what));
				r = new_sk(ctx, &us, fe, what);
				r = r < 0 ? r : 0;
			}
			continue;
		}
		if (is_pending(fi, u->ino))
			continue;
		p = u->has_peer_ino ? image_sk(fi, u->peer_ino, &pid) : NULL;
		if (!p) {
			r = make_pair(ctx, &us, fe, NULL, &closed_peer[i]);
			continue;
		}
		/* The accepted end leads; an unnamed pair is symmetric. */
		if (p->has_accepted && p->accepted)
			r = make_pair(ctx, &us, fi->files[pid - 1], fe, NULL);
		else
			r = make_pair(ctx, &us, fe, fi->files[pid - 1], NULL);
	}
	/* 3. Clients still waiting to be accepted, in queue order. */
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_UNIX || fe->unix_sk->state != TCP_LISTEN)
			continue;
		for (size_t k = 0; !r && k < fe->unix_sk->n_pending; k++) {
			uint32_t cid = 0;
			const UnixSkEntry *c = image_sk(fi, fe->unix_sk->pending[k], &cid);
			char what[200];
			int fd;

			describe(fi->files[cid - 1], what, sizeof(what));
			fd = new_sk(ctx, &us, fi->files[cid - 1], what);
			if (fd < 0) {
				r = fd;
				break;
			}
			if (named(c))
				r = bind_name(ctx, &us, fd, c, what);
			if (!r)
				r = connect_name(ctx, fd, fe->unix_sk, what);
		}
	}
	/* 4. Unread data, sent again by its senders; then datagram sockets connect (which filters senders). */
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const UnixSkEntry *u = fe->unix_sk;
		uint32_t pid = 0;
		int peer_fd = closed_peer[i];

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_UNIX || !u->n_queue)
			continue;
		if (peer_fd < 0 && u->has_peer_ino && image_sk(fi, u->peer_ino, &pid))
			peer_fd = rs->fds[pid - 1];
		r = fill_queue(ctx, &us, fe, peer_fd);
	}
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const UnixSkEntry *u = fe->unix_sk, *p;
		char what[200];

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_UNIX || u->type != SOCK_DGRAM ||
		    !(u->has_peer_ino && u->peer_ino))
			continue;
		p = image_sk(fi, u->peer_ino, NULL);
		if (!named(p))
			continue; /* a socketpair, connected from the start */
		describe(fe, what, sizeof(what));
		r = connect_name(ctx, rs->fds[i], p, what);
	}
	/* 5. Shutdown state, peek offsets; stand-in peers go, which shuts their partners down as the originals did. */
	for (size_t i = 0; !r && i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const UnixSkEntry *u = fe->unix_sk;
		char what[200];

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_UNIX)
			continue;
		describe(fe, what, sizeof(what));
		if (u->has_shutdown && u->shutdown && closed_peer[i] < 0 && u->state != TCP_LISTEN &&
		    shutdown(rs->fds[i], shutdown_how(u->shutdown)))
			r = snap_fail(ctx, -errno, "%s: cannot shut it down (%u): %m", what, u->shutdown);
		if (!r && u->has_peek_off &&
		    setsockopt(rs->fds[i], SOL_SOCKET, SO_PEEK_OFF, &u->peek_off, sizeof(u->peek_off)))
			r = snap_fail(ctx, -errno, "%s: cannot set SO_PEEK_OFF: %m", what);
		if (!r)
			r = files_set_fl(ctx, rs->fds[i], fe->flags, what);
	}
	for (size_t i = 0; i < us.nr_temp; i++)
		close(us.temp[i]);
	for (size_t i = 0; i < us.nr_unlink; i++) {
		if (!r)
			unlink(us.unlink[i]);
		free(us.unlink[i]);
	}
	free(us.temp);
	free(us.unlink);
	free(closed_peer);
	return r;
}
