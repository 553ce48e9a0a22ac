/* What unix and inet sockets share: the socket options a process set, found by comparing with a new socket. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "files.h"

enum opt_fmt {
	OPT_INT,
	OPT_STR,    /* a name: set with its length, without the NUL padding getsockopt adds */
	OPT_BUF,    /* SO_RCVBUF/SO_SNDBUF: the kernel doubles what is set; set half with the FORCE variant */
	OPT_STRUCT, /* copied as it is */
};

/* Which sockets an option applies to. */
enum {
	F_UNIX = 1 << 0,
	F_INET = 1 << 1,
	F_INET6 = 1 << 2,
	F_TCP = 1 << 3,
	F_UDP = 1 << 4,
	F_NOTCP = 1 << 5, /* not on TCP, whose buffers tune themselves */
};

struct sk_opt {
	int level, name;
	enum opt_fmt fmt;
	size_t size;
	unsigned applies;
	const char *label;
};

#define ALL_INET (F_INET | F_INET6)
#define ANY	 (F_UNIX | ALL_INET)

static const struct sk_opt opts[] = {
	{ SOL_SOCKET, SO_REUSEADDR, OPT_INT, sizeof(int), ANY, "SO_REUSEADDR" },
	{ SOL_SOCKET, SO_REUSEPORT, OPT_INT, sizeof(int), ALL_INET, "SO_REUSEPORT" },
	{ SOL_SOCKET, SO_KEEPALIVE, OPT_INT, sizeof(int), ALL_INET, "SO_KEEPALIVE" },
	{ SOL_SOCKET, SO_BROADCAST, OPT_INT, sizeof(int), ALL_INET, "SO_BROADCAST" },
	{ SOL_SOCKET, SO_OOBINLINE, OPT_INT, sizeof(int), ALL_INET, "SO_OOBINLINE" },
	{ SOL_SOCKET, SO_DONTROUTE, OPT_INT, sizeof(int), ALL_INET, "SO_DONTROUTE" },
	{ SOL_SOCKET, SO_PRIORITY, OPT_INT, sizeof(int), ANY, "SO_PRIORITY" },
	{ SOL_SOCKET, SO_MARK, OPT_INT, sizeof(int), ANY, "SO_MARK" },
	{ SOL_SOCKET, SO_RCVLOWAT, OPT_INT, sizeof(int), ANY, "SO_RCVLOWAT" },
	{ SOL_SOCKET, SO_PASSCRED, OPT_INT, sizeof(int), F_UNIX, "SO_PASSCRED" },
	{ SOL_SOCKET, SO_PASSSEC, OPT_INT, sizeof(int), F_UNIX, "SO_PASSSEC" },
	{ SOL_SOCKET, SO_TIMESTAMP, OPT_INT, sizeof(int), ANY, "SO_TIMESTAMP" },
	{ SOL_SOCKET, SO_TIMESTAMPNS, OPT_INT, sizeof(int), ANY, "SO_TIMESTAMPNS" },
	{ SOL_SOCKET, SO_LINGER, OPT_STRUCT, sizeof(struct linger), ANY, "SO_LINGER" },
	{ SOL_SOCKET, SO_RCVTIMEO, OPT_STRUCT, sizeof(struct timeval), ANY, "SO_RCVTIMEO" },
	{ SOL_SOCKET, SO_SNDTIMEO, OPT_STRUCT, sizeof(struct timeval), ANY, "SO_SNDTIMEO" },
	{ SOL_SOCKET, SO_RCVBUF, OPT_BUF, sizeof(int), ANY | F_NOTCP, "SO_RCVBUF" },
	{ SOL_SOCKET, SO_SNDBUF, OPT_BUF, sizeof(int), ANY | F_NOTCP, "SO_SNDBUF" },
	{ SOL_SOCKET, SO_BINDTODEVICE, OPT_STR, IFNAMSIZ, ALL_INET, "SO_BINDTODEVICE" },
	{ IPPROTO_TCP, TCP_NODELAY, OPT_INT, sizeof(int), F_TCP, "TCP_NODELAY" },
	{ IPPROTO_TCP, TCP_CORK, OPT_INT, sizeof(int), F_TCP, "TCP_CORK" },
	{ IPPROTO_TCP, TCP_KEEPIDLE, OPT_INT, sizeof(int), F_TCP, "TCP_KEEPIDLE" },
	{ IPPROTO_TCP, TCP_KEEPINTVL, OPT_INT, sizeof(int), F_TCP, "TCP_KEEPINTVL" },
	{ IPPROTO_TCP, TCP_KEEPCNT, OPT_INT, sizeof(int), F_TCP, "TCP_KEEPCNT" },
	{ IPPROTO_TCP, TCP_USER_TIMEOUT, OPT_INT, sizeof(int), F_TCP, "TCP_USER_TIMEOUT" },
	{ IPPROTO_TCP, TCP_DEFER_ACCEPT, OPT_INT, sizeof(int), F_TCP, "TCP_DEFER_ACCEPT" },
	{ IPPROTO_TCP, TCP_SYNCNT, OPT_INT, sizeof(int), F_TCP, "TCP_SYNCNT" },
	{ IPPROTO_TCP, TCP_LINGER2, OPT_INT, sizeof(int), F_TCP, "TCP_LINGER2" },
	{ IPPROTO_TCP, TCP_FASTOPEN, OPT_INT, sizeof(int), F_TCP, "TCP_FASTOPEN" },
	{ IPPROTO_TCP, TCP_NOTSENT_LOWAT, OPT_INT, sizeof(int), F_TCP, "TCP_NOTSENT_LOWAT" },
	{ IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, OPT_INT, sizeof(int), F_TCP, "TCP_THIN_LINEAR_TIMEOUTS" },
	{ IPPROTO_TCP, TCP_CONGESTION, OPT_STR, 16, F_TCP, "TCP_CONGESTION" },
	{ IPPROTO_IP, IP_TOS, OPT_INT, sizeof(int), F_INET, "IP_TOS" },
	{ IPPROTO_IP, IP_TTL, OPT_INT, sizeof(int), F_INET, "IP_TTL" },
	{ IPPROTO_IP, IP_FREEBIND, OPT_INT, sizeof(int), F_INET, "IP_FREEBIND" },
	{ IPPROTO_IP, IP_TRANSPARENT, OPT_INT, sizeof(int), F_INET, "IP_TRANSPARENT" },
	{ IPPROTO_IP, IP_RECVERR, OPT_INT, sizeof(int), F_INET, "IP_RECVERR" },
	{ IPPROTO_IP, IP_PKTINFO, OPT_INT, sizeof(int), F_INET, "IP_PKTINFO" },
	{ IPPROTO_IP, IP_RECVTOS, OPT_INT, sizeof(int), F_INET, "IP_RECVTOS" },
	{ IPPROTO_IP, IP_RECVTTL, OPT_INT, sizeof(int), F_INET, "IP_RECVTTL" },
	{ IPPROTO_IP, IP_MTU_DISCOVER, OPT_INT, sizeof(int), F_INET, "IP_MTU_DISCOVER" },
	{ IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, OPT_INT, sizeof(int), F_INET, "IP_BIND_ADDRESS_NO_PORT" },
	{ IPPROTO_IP, IP_MULTICAST_TTL, OPT_INT, sizeof(int), F_INET | F_UDP, "IP_MULTICAST_TTL" },
	{ IPPROTO_IP, IP_MULTICAST_LOOP, OPT_INT, sizeof(int), F_INET | F_UDP, "IP_MULTICAST_LOOP" },
	{ IPPROTO_IPV6, IPV6_V6ONLY, OPT_INT, sizeof(int), F_INET6, "IPV6_V6ONLY" },
	{ IPPROTO_IPV6, IPV6_UNICAST_HOPS, OPT_INT, sizeof(int), F_INET6, "IPV6_UNICAST_HOPS" },
	{ IPPROTO_IPV6, IPV6_TCLASS, OPT_INT, sizeof(int), F_INET6, "IPV6_TCLASS" },
	{ IPPROTO_IPV6, IPV6_RECVPKTINFO, OPT_INT, sizeof(int), F_INET6, "IPV6_RECVPKTINFO" },
	{ IPPROTO_IPV6, IPV6_RECVERR, OPT_INT, sizeof(int), F_INET6, "IPV6_RECVERR" },
	{ IPPROTO_IPV6, IPV6_MTU_DISCOVER, OPT_INT, sizeof(int), F_INET6, "IPV6_MTU_DISCOVER" },
	{ IPPROTO_IPV6, IPV6_TRANSPARENT, OPT_INT, sizeof(int), F_INET6, "IPV6_TRANSPARENT" },
};

static unsigned sock_class(int family, int type, int protocol)
{
	unsigned c = family == AF_UNIX ? F_UNIX : family == AF_INET ? F_INET : F_INET6;

	if (family != AF_UNIX)
		c |= protocol == IPPROTO_TCP ? F_TCP : protocol == IPPROTO_UDP ? F_UDP : 0;
	(void)type;
	return c;
}

static bool applies(const struct sk_opt *o, unsigned cls)
{
	unsigned fam = o->applies & (F_UNIX | F_INET | F_INET6), proto = o->applies & (F_TCP | F_UDP);

	if (fam && !(fam & cls))
		return false;
	if ((o->applies & F_NOTCP) && (cls & F_TCP))
		return false;
	/* Options of a protocol apply to that protocol only. */
	if (proto && !(proto & cls))
		return false;
	return true;
}

int sk_dump_opts(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, SkOptEntry ***ret, size_t *ret_nr)
{
	int family, type, protocol, fresh, r = 0;
	socklen_t len = sizeof(int);
	unsigned cls;

	if (getsockopt(f->local, SOL_SOCKET, SO_DOMAIN, &family, &len) ||
	    getsockopt(f->local, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){ sizeof(int) }) ||
	    getsockopt(f->local, SOL_SOCKET, SO_PROTOCOL, &protocol, &(socklen_t){ sizeof(int) }))
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot tell what socket it is: %m", f->pid, f->fd,
				 f->link);
	cls = sock_class(family, type, protocol);
	/* What the kernel gives a new socket is the default; only what differs was set. */
	fresh = socket(family, type | SOCK_CLOEXEC, protocol);
	if (fresh < 0)
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot make a socket like it to compare options: %m",
				 f->pid, f->fd, f->link);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct sk_opt *o = &opts[i];
		unsigned char cur[64] = { 0 }, def[64] = { 0 };
		socklen_t clen = (socklen_t)o->size, dlen = (socklen_t)o->size;
		SkOptEntry *e;

		if (!applies(o, cls))
			continue;
		if (getsockopt(f->local, o->level, o->name, cur, &clen))
			continue; /* not supported here: then it cannot have been set either */
		if (getsockopt(fresh, o->level, o->name, def, &dlen))
			dlen = 0;
		if (clen == dlen && !memcmp(cur, def, clen))
			continue;
		if (o->fmt == OPT_STR && !cur[0] && !def[0])
			continue;
		e = arena_alloc(&d->arena, sizeof(*e));
		if (!e || arena_push(&d->arena, (void ***)ret, ret_nr, e)) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
		sk_opt_entry__init(e);
		e->level = (uint32_t)o->level;
		e->name = (uint32_t)o->name;
		e->value.len = clen;
		e->value.data = arena_memdup(&d->arena, cur, clen);
		if (!e->value.data) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
	}
	close(fresh);
	return r;
}

int sk_restore_opts(struct snap_ctx *ctx, int fd, SkOptEntry *const *entries, size_t nr, const char *what)
{
	for (size_t i = 0; i < nr; i++) {
		const SkOptEntry *e = entries[i];
		const struct sk_opt *o = NULL;
		int level, name, r;

		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (opts[k].level == (int)e->level && opts[k].name == (int)e->name)
				o = &opts[k];
		if (!o || e->value.len > 64)
			return snap_fail(ctx, -EINVAL, "%s: unknown socket option %u/%u in the image", what, e->level,
					 e->name);
		level = o->level;
		name = o->name;
		if (o->fmt == OPT_BUF) {
			int v;

			if (e->value.len != sizeof(v))
				return snap_fail(ctx, -EINVAL, "%s: bad %s in the image", what, o->label);
			memcpy(&v, e->value.data, sizeof(v));
			v /= 2;
			/* The FORCE variant passes rmem_max/wmem_max, which the original may have done too. */
			name = name == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
			r = setsockopt(fd, level, name, &v, sizeof(v));
		} else if (o->fmt == OPT_STR) {
			r = setsockopt(fd, level, name, e->value.data,
				       (socklen_t)strnlen((const char *)e->value.data, e->value.len));
		} else {
			r = setsockopt(fd, level, name, e->value.data, (socklen_t)e->value.len);
		}
		if (r)
			return snap_fail(ctx, -errno, "%s: cannot set %s again: %m", what, o->label);
	}
	return 0;
}
