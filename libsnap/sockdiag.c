/* Socket state from the sock_diag netlink interface: unix and inet (TCP, UDP) sockets by inode. */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockdiag.h"

#define RECV_BUF_SIZE ((size_t)32 << 10)

/* Sends @req (a whole netlink message) and calls @fn for every answer until NLMSG_DONE. */
static int diag_dump(struct snap_ctx *ctx, const char *what, void *req, size_t req_len,
		     int (*fn)(void *opaque, const struct nlmsghdr *h), void *opaque)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	char *buf = malloc(RECV_BUF_SIZE);
	int sk, r = 0;

	if (!buf)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	sk = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (sk < 0) {
		r = snap_fail(ctx, -errno, "sock_diag: cannot open a netlink socket: %m");
		goto out;
	}
	if (sendto(sk, req, req_len, 0, (struct sockaddr *)&nl, sizeof(nl)) != (ssize_t)req_len) {
		r = snap_fail(ctx, -errno, "sock_diag: cannot ask for %s sockets: %m", what);
		goto out;
	}
	for (;;) {
		ssize_t n = recv(sk, buf, RECV_BUF_SIZE, 0);
		struct nlmsghdr *h;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = snap_fail(ctx, n < 0 ? -errno : -EIO, "sock_diag: reading %s sockets failed: %s", what,
				      n < 0 ? strerror(errno) : "end of stream");
			goto out;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				r = h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error ? e->error : -EIO;
				r = snap_fail(ctx, r, "sock_diag: the kernel refused to list %s sockets: %s%s", what,
					      strerror(-r), r == -ENOENT ? " (is its sock_diag module loaded?)" : "");
				goto out;
			}
			r = fn(opaque, h);
			if (r) {
				r = snap_fail(ctx, r, "sock_diag: malformed answer about %s sockets", what);
				goto out;
			}
		}
	}
out:
	if (sk >= 0)
		close(sk);
	free(buf);
	return r;
}

/* Attribute walking, bounds-checked: the kernel is trusted, but not to be our size. */
static int for_each_attr(const void *data, size_t len, int (*fn)(void *opaque, int type, const void *p, size_t n),
			 void *opaque)
{
	const struct nlattr *a = data;

	while (len >= NLA_HDRLEN) {
		size_t alen = a->nla_len, step = NLA_ALIGN(alen);
		int r;

		if (alen < NLA_HDRLEN || alen > len)
			return -EBADMSG;
		r = fn(opaque, a->nla_type & NLA_TYPE_MASK, (const char *)a + NLA_HDRLEN, alen - NLA_HDRLEN);
		if (r)
			return r;
		if (step >= len)
			break;
		len -= step;
		a = (const struct nlattr *)((const char *)a + step);
	}
	return 0;
}

struct grow {
	void *v;
	size_t nr, cap, size;
};

static void *grow_add(struct grow *g)
{
	if (g->nr == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		void *v = realloc(g->v, cap * g->size);

		if (!v)
			return NULL;
		g->v = v;
		g->cap = cap;
	}
	return memset((char *)g->v + g->nr++ * g->size, 0, g->size);
}

static int unix_attr(void *opaque, int type, const void *p, size_t n)
{
	struct unix_diag_sk *s = opaque;

	switch (type) {
	case UNIX_DIAG_NAME:
		if (n > sizeof(s->name))
			return -EBADMSG;
		memcpy(s->name, p, n);
		s->name_len = (uint8_t)n;
		s->has_name = true;
		break;
	case UNIX_DIAG_VFS: {
		struct unix_diag_vfs v;

		if (n < sizeof(v))
			return -EBADMSG;
		memcpy(&v, p, sizeof(v));
		s->has_vfs = true;
		s->vfs_ino = v.udiag_vfs_ino;
		s->vfs_dev = v.udiag_vfs_dev;
		break;
	}
	case UNIX_DIAG_PEER: {
		uint32_t peer;

		if (n < sizeof(peer))
			return -EBADMSG;
		memcpy(&peer, p, sizeof(peer));
		s->peer = peer;
		break;
	}
	case UNIX_DIAG_ICONS:
		if (n % 4)
			return -EBADMSG;
		free(s->icons);
		s->icons = calloc(n / 4 ? n / 4 : 1, sizeof(*s->icons));
		if (!s->icons)
			return -ENOMEM;
		for (size_t i = 0; i < n / 4; i++) {
			uint32_t ino;

			memcpy(&ino, (const char *)p + 4 * i, 4);
			s->icons[i] = ino;
		}
		s->nr_icons = n / 4;
		break;
	case UNIX_DIAG_RQLEN: {
		struct unix_diag_rqlen q;

		if (n < sizeof(q))
			return -EBADMSG;
		memcpy(&q, p, sizeof(q));
		s->rqlen = q.udiag_rqueue;
		s->wqlen = q.udiag_wqueue;
		break;
	}
	case UNIX_DIAG_SHUTDOWN:
		if (n < 1)
			return -EBADMSG;
		s->shutdown = *(const uint8_t *)p;
		break;
	}
	return 0;
}

static int unix_msg(void *opaque, const struct nlmsghdr *h)
{
	struct grow *g = opaque;
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	struct unix_diag_sk *s;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return -EBADMSG;
	s = grow_add(g);
	if (!s)
		return -ENOMEM;
	s->ino = m->udiag_ino;
	s->type = m->udiag_type;
	s->state = m->udiag_state;
	return for_each_attr(m + 1, h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)), unix_attr, s);
}

static int cmp_unix(const void *a, const void *b)
{
	const struct unix_diag_sk *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

int sockdiag_unix_load(struct snap_ctx *ctx, struct unix_diag_table *out)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = {
		.h = { .nlmsg_len = sizeof(req),
		       .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		       .nlmsg_seq = 1 },
		.r = { .sdiag_family = AF_UNIX,
		       .udiag_states = ~0u,
		       .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS |
				     UDIAG_SHOW_RQLEN },
	};
	struct grow g = { .size = sizeof(struct unix_diag_sk) };
	struct unix_diag_table t;
	int r;

	/* The shutdown state has no UDIAG_SHOW_ flag: the kernel always sends it. */
	r = diag_dump(ctx, "unix", &req, sizeof(req), unix_msg, &g);
	t.v = g.v;
	t.nr = g.nr;
	if (r) {
		unix_diag_table_free(&t);
		return r;
	}
	if (t.nr)
		qsort(t.v, t.nr, sizeof(*t.v), cmp_unix);
	*out = t;
	return 0;
}

void unix_diag_table_free(struct unix_diag_table *t)
{
	for (size_t i = 0; i < t->nr; i++)
		free(t->v[i].icons);
	free(t->v);
	t->v = NULL;
	t->nr = 0;
}

const struct unix_diag_sk *unix_diag_find(const struct unix_diag_table *t, uint64_t ino)
{
	struct unix_diag_sk key = { .ino = ino };

	if (!t->nr)
		return NULL;
	return bsearch(&key, t->v, t->nr, sizeof(*t->v), cmp_unix);
}

const struct unix_diag_sk *unix_diag_listener_of(const struct unix_diag_table *t, uint64_t ino)
{
	for (size_t i = 0; i < t->nr; i++)
		for (size_t k = 0; k < t->v[i].nr_icons; k++)
			if (t->v[i].icons[k] == ino)
				return &t->v[i];
	return NULL;
}

static int inet_attr(void *opaque, int type, const void *p, size_t n)
{
	struct inet_diag_sk *s = opaque;

	if (type == INET_DIAG_SHUTDOWN && n >= 1) {
		s->has_shutdown = true;
		s->shutdown = *(const uint8_t *)p;
	}
	return 0;
}

struct inet_ctx {
	struct grow g;
	int protocol;
};

static int inet_msg(void *opaque, const struct nlmsghdr *h)
{
	struct inet_ctx *ic = opaque;
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	struct inet_diag_sk *s;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return -EBADMSG;
	/* Time-wait and request sockets have no inode: no fd can refer to them. */
	if (!m->idiag_inode)
		return 0;
	s = grow_add(&ic->g);
	if (!s)
		return -ENOMEM;
	s->ino = m->idiag_inode;
	s->family = m->idiag_family;
	s->protocol = (uint8_t)ic->protocol;
	s->state = m->idiag_state;
	s->sport = ntohs(m->id.idiag_sport);
	s->dport = ntohs(m->id.idiag_dport);
	memcpy(s->src, m->id.idiag_src, 16);
	memcpy(s->dst, m->id.idiag_dst, 16);
	s->rqueue = m->idiag_rqueue;
	s->wqueue = m->idiag_wqueue;
	return for_each_attr(m + 1, h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)), inet_attr, s);
}

static int cmp_inet(const void *a, const void *b)
{
	const struct inet_diag_sk *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

int sockdiag_inet_load(struct snap_ctx *ctx, int family, int protocol, struct inet_diag_table *out)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req = {
		.h = { .nlmsg_len = sizeof(req),
		       .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		       .nlmsg_seq = 1 },
		.r = { .sdiag_family = (uint8_t)family, .sdiag_protocol = (uint8_t)protocol, .idiag_states = ~0u },
	};
	struct inet_ctx ic = { .g = { .size = sizeof(struct inet_diag_sk) }, .protocol = protocol };
	struct inet_diag_table t = { .family = family, .protocol = protocol };
	int r;

	r = diag_dump(ctx, protocol == IPPROTO_TCP ? "TCP" : "UDP", &req, sizeof(req), inet_msg, &ic);
	t.v = ic.g.v;
	t.nr = ic.g.nr;
	if (r) {
		inet_diag_table_free(&t);
		return r;
	}
	if (t.nr)
		qsort(t.v, t.nr, sizeof(*t.v), cmp_inet);
	*out = t;
	return 0;
}

void inet_diag_table_free(struct inet_diag_table *t)
{
	free(t->v);
	t->v = NULL;
	t->nr = 0;
}

const struct inet_diag_sk *inet_diag_find(const struct inet_diag_table *t, uint64_t ino)
{
	struct inet_diag_sk key = { .ino = ino };

	if (!t->nr)
		return NULL;
	return bsearch(&key, t->v, t->nr, sizeof(*t->v), cmp_inet);
}

int tcp_segments(int fd, uint64_t *ret_segs)
{
	struct tcp_info ti = { 0 };
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -errno;
	if (len < offsetof(struct tcp_info, tcpi_segs_in) + sizeof(ti.tcpi_segs_in))
		return -EOPNOTSUPP;
	*ret_segs = (uint64_t)ti.tcpi_segs_in + ti.tcpi_segs_out;
	return 0;
}
