/*
 * TCP and UDP sockets over IPv4 and IPv6: listeners bound and listening
 * again, bound and connected UDP sockets, and established TCP connections
 * either carried over with TCP_REPAIR (--tcp-established: sequence numbers,
 * queued data, window, options) or given back closed (--tcp-close).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "files.h"
#include "sockdiag.h"

/* Queued bytes of one connection must fit in its image record. */
#define QUEUE_MAX (IMG_MAX_RECORD - (64u << 10))
/* The largest MSS setsockopt(TCP_MAXSEG) takes (the kernel's MAX_TCP_WINDOW). */
#define MAX_USER_MSS 32767u
/* How long restore waits for the peer to take the data the process had not sent yet. */
#define UNSENT_WAIT_MS 5000

static const char *const tcp_states[] = {
	"?",	 "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",    "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT",	"LAST_ACK", "LISTEN",	"CLOSING",   "NEW_SYN_RECV",
};

static const char *state_name(unsigned s)
{
	return s < sizeof(tcp_states) / sizeof(tcp_states[0]) ? tcp_states[s] : "?";
}

/* "1.2.3.4:80" or "[::1]:80" */
static const char *addr_str(int family, const void *addr, unsigned port, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, cap, family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
	return buf;
}

static socklen_t make_sa(struct sockaddr_storage *ss, int family, const uint8_t *addr, size_t len, unsigned port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		memcpy(&in->sin_addr, addr, len < 4 ? len : 4);
		return sizeof(*in);
	}
	{
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		memcpy(&in6->sin6_addr, addr, len < 16 ? len : 16);
		return sizeof(*in6);
	}
}

/* Address and port of a sockaddr as the image stores them. */
static void split_sa(const struct sockaddr_storage *ss, const uint8_t **addr, size_t *len, unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		*addr = (const uint8_t *)&in->sin_addr;
		*len = 4;
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		*addr = (const uint8_t *)&in6->sin6_addr;
		*len = 16;
		*port = ntohs(in6->sin6_port);
	}
}

/* ---- dump ---- */

static int set_queue(int fd, int q)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
}

static int get_u32(int fd, int level, int name, uint32_t *out)
{
	socklen_t len = sizeof(*out);

	return getsockopt(fd, level, name, out, &len);
}

/*
 * Reads one queue of a socket in repair mode: its sequence number and
 * bytes. Packets may still arrive: read until two readings agree.
 */
static int peek_repair_queue(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, int q, uint32_t *ret_seq,
			     ProtobufCBinaryData *ret_data, uint32_t *ret_unsent)
{
	const char *which = q == TCP_SEND_QUEUE ? "send" : "receive";

	for (int attempt = 0; attempt < 100; attempt++) {
		uint32_t seq, seq2;
		int len = 0, unsent = 0, len2 = 0;
		uint8_t *buf = NULL;
		ssize_t n = 0;

		if (set_queue(f->local, q) || get_u32(f->local, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq) ||
		    ioctl(f->local, q == TCP_SEND_QUEUE ? SIOCOUTQ : SIOCINQ, &len) ||
		    (q == TCP_SEND_QUEUE && ioctl(f->local, SIOCOUTQNSD, &unsent)))
			return snap_fail(ctx, -errno, "pid %d: fd %d: cannot read its %s queue in repair mode: %m",
					 f->pid, f->fd, which);
		if (len < 0 || (size_t)len > QUEUE_MAX)
			return snap_fail(ctx, -EFBIG, "pid %d: fd %d: %d bytes in its %s queue, too many", f->pid,
					 f->fd, len, which);
		if (len) {
			buf = arena_alloc(&d->arena, (size_t)len);
			if (!buf)
				return snap_fail(ctx, -ENOMEM, "out of memory");
			n = recv(f->local, buf, (size_t)len, MSG_PEEK | MSG_DONTWAIT);
			if (n < 0)
				return snap_fail(ctx, -errno, "pid %d: fd %d: cannot peek at its %s queue: %m", f->pid,
						 f->fd, which);
		}
		if (get_u32(f->local, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq2) ||
		    ioctl(f->local, q == TCP_SEND_QUEUE ? SIOCOUTQ : SIOCINQ, &len2))
			return snap_fail(ctx, -errno, "pid %d: fd %d: cannot read its %s queue in repair mode: %m",
					 f->pid, f->fd, which);
		if (seq != seq2 || len != len2 || n != len)
			continue;
		/* The kernel gives the number after the last queued byte; the image keeps where the bytes start. */
		*ret_seq = seq - (uint32_t)len;
		ret_data->data = buf;
		ret_data->len = (size_t)len;
		if (ret_unsent)
			*ret_unsent = (uint32_t)unsent;
		return 0;
	}
	return snap_fail(ctx, -EAGAIN, "pid %d: fd %d: its %s queue keeps changing", f->pid, f->fd, which);
}

static int dump_repair(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, InetSkEntry *ie)
{
	TcpRepairEntry *re = arena_alloc(&d->arena, sizeof(*re));
	struct tcp_repair_window win;
	struct tcp_info ti;
	socklen_t len;
	int on = 1, r;

	if (!re)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	tcp_repair_entry__init(re);
	len = sizeof(f->tcp_reuse);
	if (getsockopt(f->local, SOL_SOCKET, SO_REUSEADDR, &f->tcp_reuse, &len))
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot read SO_REUSEADDR: %m", f->pid, f->fd);
	/* From here the connection is frozen for the peer too: nothing is sent, nothing taken. */
	if (setsockopt(f->local, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)))
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot put the connection in repair mode: %m%s", f->pid,
				 f->fd, errno == EPERM ? " (needs CAP_NET_ADMIN)" : "");
	f->tcp_repair = true;
	r = peek_repair_queue(ctx, d, f, TCP_SEND_QUEUE, &re->send_seq, &re->send_queue, &re->unsent);
	if (!r)
		r = peek_repair_queue(ctx, d, f, TCP_RECV_QUEUE, &re->recv_seq, &re->recv_queue, NULL);
	if (r)
		return r;
	set_queue(f->local, TCP_NO_QUEUE);
	if (re->unsent > re->send_queue.len)
		re->unsent = (uint32_t)re->send_queue.len;
	len = sizeof(ti);
	if (get_u32(f->local, IPPROTO_TCP, TCP_MAXSEG, &re->mss) ||
	    getsockopt(f->local, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    get_u32(f->local, IPPROTO_TCP, TCP_TIMESTAMP, &re->timestamp))
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot read the connection's options: %m", f->pid, f->fd);
	len = sizeof(win);
	if (getsockopt(f->local, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, &len))
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot read the connection's window: %m", f->pid, f->fd);
	re->timestamps = (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) != 0;
	re->sack = (ti.tcpi_options & TCPI_OPT_SACK) != 0;
	if (ti.tcpi_options & TCPI_OPT_WSCALE) {
		re->snd_wscale = ti.tcpi_snd_wscale;
		re->rcv_wscale = ti.tcpi_rcv_wscale;
	}
	re->snd_wl1 = win.snd_wl1;
	re->snd_wnd = win.snd_wnd;
	re->max_window = win.max_window;
	re->rcv_wnd = win.rcv_wnd;
	re->rcv_wup = win.rcv_wup;
	ie->repair = re;
	return 0;
}

/* The UDP socket of the dump that datagrams from @from came from: bound to that port and address (or any). */
static struct dump_file *udp_sender(struct files_dump *d, const struct sockaddr_storage *from)
{
	const uint8_t *fa, *sa;
	size_t falen, salen;
	unsigned fport, sport;

	split_sa(from, &fa, &falen, &fport);
	for (size_t i = 0; i < d->nr_files; i++) {
		struct dump_file *o = d->files[i];
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		uint32_t proto;
		bool any = true;

		if (o->ops->kind != FILE_KIND__FILE_INET || get_u32(o->local, SOL_SOCKET, SO_PROTOCOL, &proto) ||
		    proto != IPPROTO_UDP || getsockname(o->local, (struct sockaddr *)&ss, &len) ||
		    ss.ss_family != from->ss_family)
			continue;
		split_sa(&ss, &sa, &salen, &sport);
		for (size_t k = 0; k < salen; k++)
			any &= sa[k] == 0;
		if (sport == fport && (any || !memcmp(sa, fa, falen)))
			return o;
	}
	return NULL;
}

/* Reads the datagrams waiting in a UDP socket without taking them, and finds who sent each. */
static int peek_udp(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f, InetSkEntry *ie, const char *name)
{
	int old_off = -1, zero = 0, r = 0;
	socklen_t olen = sizeof(old_off);
	uint8_t *buf = malloc(65536);
	size_t total = 0;

	if (!buf)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	if (getsockopt(f->local, SOL_SOCKET, SO_PEEK_OFF, &old_off, &olen) ||
	    setsockopt(f->local, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero))) {
		free(buf);
		return snap_fail(ctx, -errno, "pid %d: fd %d: cannot use SO_PEEK_OFF: %m", f->pid, f->fd);
	}
	for (;;) {
		struct sockaddr_storage from;
		struct iovec iov = { buf, 65536 };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1 };
		struct dump_file *sender;
		InetMsgEntry *m;
		char who[64];
		const uint8_t *a;
		size_t alen;
		unsigned port;
		ssize_t n = recvmsg(f->local, &mh, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				r = snap_fail(ctx, -errno, "pid %d: fd %d: cannot peek at its datagrams: %m", f->pid,
					      f->fd);
			break;
		}
		split_sa(&from, &a, &alen, &port);
		sender = udp_sender(d, &from);
		if (!sender) {
			r = snap_fail(ctx, -EOPNOTSUPP,
				      "pid %d: fd %d: UDP socket %s holds a datagram from %s, which is no socket of "
				      "the dump, so it cannot be sent again",
				      f->pid, f->fd, name, addr_str(from.ss_family, a, port, who, sizeof(who)));
			break;
		}
		total += (size_t)n;
		m = arena_alloc(&d->arena, sizeof(*m));
		if (total > QUEUE_MAX || !m || arena_push(&d->arena, (void ***)&ie->queue, &ie->n_queue, m)) {
			r = snap_fail(ctx, total > QUEUE_MAX ? -EFBIG : -ENOMEM,
				      "pid %d: fd %d: too many datagrams queued", f->pid, f->fd);
			break;
		}
		inet_msg_entry__init(m);
		m->from_id = sender->id;
		m->data.len = (size_t)n;
		m->data.data = arena_memdup(&d->arena, buf, (size_t)n);
		if (!m->data.data) {
			r = snap_fail(ctx, -ENOMEM, "out of memory");
			break;
		}
	}
	if (setsockopt(f->local, SOL_SOCKET, SO_PEEK_OFF, &old_off, sizeof(old_off)) && !r)
		r = snap_fail(ctx, -errno, "pid %d: fd %d: cannot restore SO_PEEK_OFF: %m", f->pid, f->fd);
	free(buf);
	return r;
}

void inet_dump_finish(struct snap_ctx *ctx, struct dump_file *f, bool dies)
{
	int off = TCP_REPAIR_OFF_NO_WP;

	if (dies || !f->tcp_repair)
		return;
	/* The process lives on: give its connection back untouched, SO_REUSEADDR included (repair mode reset it). */
	if (setsockopt(f->local, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)))
		snap_warn(ctx, "pid %d: fd %d: cannot take the connection out of repair mode: %m", f->pid, f->fd);
	else if (setsockopt(f->local, SOL_SOCKET, SO_REUSEADDR, &f->tcp_reuse, sizeof(f->tcp_reuse)))
		snap_warn(ctx, "pid %d: fd %d: cannot set SO_REUSEADDR back: %m", f->pid, f->fd);
	f->tcp_repair = false;
}

int inet_dump(struct snap_ctx *ctx, struct files_dump *d, struct dump_file *f)
{
	struct sockaddr_storage src, dst;
	socklen_t slen = sizeof(src), dlen = sizeof(dst);
	static const struct inet_diag_sk unhashed = { .state = TCP_CLOSE };
	const struct inet_diag_table *t;
	const struct inet_diag_sk *s;
	char from[64], to[64];
	const uint8_t *a;
	size_t alen;
	unsigned port;
	int family, type, proto, r;
	InetSkEntry *ie;

	if (get_u32(f->local, SOL_SOCKET, SO_DOMAIN, (uint32_t *)&family) ||
	    get_u32(f->local, SOL_SOCKET, SO_TYPE, (uint32_t *)&type) ||
	    get_u32(f->local, SOL_SOCKET, SO_PROTOCOL, (uint32_t *)&proto) ||
	    getsockname(f->local, (struct sockaddr *)&src, &slen))
		return snap_fail(ctx, -errno, "pid %d: fd %d (%s): cannot tell what socket it is: %m", f->pid, f->fd,
				 f->link);
	r = files_inet_table(ctx, d, family, proto, &t);
	if (r)
		return r;
	s = inet_diag_find(t, (uint64_t)f->st.st_ino);
	if (!s) {
		struct tcp_info ti;
		socklen_t tlen = sizeof(ti);

		/* sock_diag lists hashed sockets only: one never bound nor connected (or bound TCP) is missing. */
		split_sa(&src, &a, &alen, &port);
		if (proto == IPPROTO_TCP && !getsockopt(f->local, IPPROTO_TCP, TCP_INFO, &ti, &tlen) &&
		    ti.tcpi_state == TCP_CLOSE)
			s = &unhashed;
		else if (proto == IPPROTO_UDP && !port)
			s = &unhashed;
		else
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: fd %d: %s socket %s is not in this network namespace", f->pid, f->fd,
					 proto == IPPROTO_TCP ? "TCP" : "UDP", f->link);
	}
	ie = arena_alloc(&d->arena, sizeof(*ie));
	if (!ie)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	inet_sk_entry__init(ie);
	f->fe->body_case = FILE_ENTRY__BODY_INET_SK;
	f->fe->inet_sk = ie;
	ie->family = (uint32_t)family;
	ie->type = (uint32_t)type;
	ie->protocol = (uint32_t)proto;
	ie->state = s->state;
	split_sa(&src, &a, &alen, &port);
	ie->src_addr.len = alen;
	ie->src_addr.data = arena_memdup(&d->arena, a, alen);
	ie->src_port = port;
	addr_str(family, a, port, from, sizeof(from));
	if (!getpeername(f->local, (struct sockaddr *)&dst, &dlen)) {
		split_sa(&dst, &a, &alen, &port);
		ie->has_dst_addr = ie->has_dst_port = 1;
		ie->dst_addr.len = alen;
		ie->dst_addr.data = arena_memdup(&d->arena, a, alen);
		ie->dst_port = port;
		addr_str(family, a, port, to, sizeof(to));
	} else {
		snprintf(to, sizeof(to), "nowhere");
	}
	if (!ie->src_addr.data || (ie->has_dst_addr && !ie->dst_addr.data))
		return snap_fail(ctx, -ENOMEM, "out of memory");
	if (s->has_shutdown && s->shutdown) {
		ie->has_shutdown = 1;
		ie->shutdown = s->shutdown;
	}
	r = sk_dump_opts(ctx, d, f, &ie->opts, &ie->n_opts);
	if (r)
		return r;

	if (proto == IPPROTO_UDP)
		return peek_udp(ctx, d, f, ie, from);
	switch (s->state) {
	case TCP_LISTEN:
		if (s->rqueue)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: fd %d: TCP listener %s has %u connections waiting to be accepted, "
					 "which cannot be checkpointed",
					 f->pid, f->fd, from, s->rqueue);
		ie->has_backlog = 1;
		ie->backlog = s->wqueue;
		return 0;
	case TCP_CLOSE: {
		uint64_t segs = 0;

		/*
		 * A connection that ended but whose fd the process still holds (a server about to close it)
		 * comes back as a closed connection: bound to its port as before, connected nowhere. Bound
		 * again as a plain socket it would take the port from the listener that accepted it.
		 */
		if (proto == IPPROTO_TCP && ie->src_port && !tcp_segments(f->local, &segs) && segs)
			ie->has_restore_closed = ie->restore_closed = 1;
		return 0;
	}
	case TCP_ESTABLISHED:
		if (d->flags & SNAP_DUMP_TCP_ESTABLISHED)
			return dump_repair(ctx, d, f, ie);
		break;
	default:
		break;
	}
	if (d->flags & SNAP_DUMP_TCP_CLOSE) {
		ie->has_restore_closed = ie->restore_closed = 1;
		return 0;
	}
	if (s->state == TCP_ESTABLISHED)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "pid %d: fd %d: TCP connection %s -> %s is established; dump with --tcp-established "
				 "to keep it or --tcp-close to give it back closed",
				 f->pid, f->fd, from, to);
	return snap_fail(ctx, -EOPNOTSUPP,
			 "pid %d: fd %d: TCP connection %s -> %s is in state %s, which only --tcp-close can take (it "
			 "comes back closed)",
			 f->pid, f->fd, from, to, state_name(s->state));
}

/* ---- restore ---- */

static void describe(const FileEntry *fe, char *what, size_t cap)
{
	const InetSkEntry *ie = fe->inet_sk;
	char from[64], to[64];

	addr_str((int)ie->family, ie->src_addr.data, ie->src_port, from, sizeof(from));
	if (ie->has_dst_addr)
		addr_str((int)ie->family, ie->dst_addr.data, ie->dst_port, to, sizeof(to));
	snprintf(what, cap, "%s socket %s%s%s (file %u)", ie->protocol == IPPROTO_TCP ? "TCP" : "UDP", from,
		 ie->has_dst_addr ? " -> " : "", ie->has_dst_addr ? to : "", fe->id);
}

static int check_addr(struct snap_ctx *ctx, const InetSkEntry *ie, const char *what)
{
	size_t want = ie->family == AF_INET ? 4 : 16;

	if (ie->src_addr.len != want || (ie->has_dst_addr && ie->dst_addr.len != want) || ie->src_port > 65535 ||
	    ie->dst_port > 65535)
		return snap_fail(ctx, -EINVAL, "%s: bad address in the image", what);
	return 0;
}

static int new_socket(struct snap_ctx *ctx, const FileEntry *fe, const char *what)
{
	const InetSkEntry *ie = fe->inet_sk;
	int fd = socket((int)ie->family, (int)ie->type | SOCK_CLOEXEC, (int)ie->protocol), r;

	if (fd < 0)
		return snap_fail(ctx, -errno, "%s: cannot create it: %m", what);
	r = sk_restore_opts(ctx, fd, ie->opts, ie->n_opts, what);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

static int bind_src(struct snap_ctx *ctx, int fd, const InetSkEntry *ie, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t len = make_sa(&ss, (int)ie->family, ie->src_addr.data, ie->src_addr.len, ie->src_port);

	if (bind(fd, (struct sockaddr *)&ss, len))
		return snap_fail(ctx, -errno, "%s: cannot bind it: %m", what);
	return 0;
}

int inet_validate(struct snap_ctx *ctx, const struct files_image *fi, const FileEntry *fe)
{
	const InetSkEntry *ie = fe->inet_sk;
	char what[200];
	int fd, r;

	if ((ie->family != AF_INET && ie->family != AF_INET6) ||
	    !((ie->protocol == IPPROTO_TCP && ie->type == SOCK_STREAM) ||
	      (ie->protocol == IPPROTO_UDP && ie->type == SOCK_DGRAM)))
		return snap_fail(ctx, -EINVAL, "image open-files.img: file %u: bad inet socket kind", fe->id);
	describe(fe, what, sizeof(what));
	r = check_addr(ctx, ie, what);
	if (r)
		return r;
	if (ie->repair && (ie->repair->unsent > ie->repair->send_queue.len || !ie->has_dst_addr))
		return snap_fail(ctx, -EINVAL, "%s: bad repair state in the image", what);
	for (size_t i = 0; i < ie->n_queue; i++) {
		uint32_t from = ie->queue[i]->from_id;

		if (ie->protocol != IPPROTO_UDP || from < 1 || from > fi->nr_files ||
		    fi->files[from - 1]->kind != FILE_KIND__FILE_INET ||
		    fi->files[from - 1]->inet_sk->protocol != IPPROTO_UDP ||
		    fi->files[from - 1]->inet_sk->family != ie->family || !fi->files[from - 1]->inet_sk->src_port)
			return snap_fail(ctx, -EINVAL, "%s: datagram %zu has no sender in the image", what, i);
	}
	/* A listener or bound UDP socket needs its port: try taking it now, before anything exists. */
	if (!(ie->state == TCP_LISTEN || (ie->protocol == IPPROTO_UDP && ie->src_port)))
		return 0;
	fd = new_socket(ctx, fe, what);
	if (fd < 0)
		return fd;
	r = bind_src(ctx, fd, ie, what);
	close(fd);
	return r;
}

static int set_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v));
}

static int send_queue_data(struct snap_ctx *ctx, int fd, const uint8_t *p, size_t len, bool wait, const char *what)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && wait) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, UNSENT_WAIT_MS) > 0)
				continue;
			return snap_fail(ctx, -ETIMEDOUT, "%s: the peer did not take the %zu bytes never sent", what,
					 len);
		}
		if (n <= 0)
			return snap_fail(ctx, n < 0 ? -errno : -EIO, "%s: cannot queue %zu bytes again: %s", what, len,
					 n < 0 ? strerror(errno) : "nothing taken");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * An established connection, rebuilt in repair mode so that the peer sees
 * nothing; repair_finish lets it go once every connection exists (a peer
 * of the dump must be there before our first packet reaches it).
 */
static int repair_build(struct snap_ctx *ctx, int fd, const InetSkEntry *ie, const char *what)
{
	const TcpRepairEntry *re = ie->repair;
	struct tcp_repair_window win = { re->snd_wl1, re->snd_wnd, re->max_window, re->rcv_wnd, re->rcv_wup };
	struct tcp_repair_opt opts[4];
	struct sockaddr_storage ss;
	size_t sent = re->send_queue.len - re->unsent, nopts = 0;
	int r;

	if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON))
		return snap_fail(ctx, -errno, "%s: cannot enter repair mode: %m", what);
	if (set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) ||
	    set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)re->send_seq) ||
	    set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE) ||
	    set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)re->recv_seq))
		return snap_fail(ctx, -errno, "%s: cannot set its sequence numbers: %m", what);
	if (re->timestamps && set_int(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)re->timestamp))
		return snap_fail(ctx, -errno, "%s: cannot set its timestamp clock: %m", what);
	r = bind_src(ctx, fd, ie, what);
	if (r)
		return r;
	/*
	 * connect() sizes segments from the MSS clamp it has then (536 on a new
	 * socket), and the repair options set later do not size them again:
	 * give connect the clamp through TCP_MAXSEG (which takes at most 32767,
	 * so a loopback connection starts below its old size until the path MTU
	 * is next looked at), and take that user setting away afterwards.
	 */
	if (set_int(fd, IPPROTO_TCP, TCP_MAXSEG, (int)(re->mss < MAX_USER_MSS ? re->mss : MAX_USER_MSS)))
		return snap_fail(ctx, -errno, "%s: cannot set its MSS to %u: %m", what, re->mss);
	/* In repair mode connect sends nothing: the socket simply is connected. */
	if (connect(fd, (struct sockaddr *)&ss,
		    make_sa(&ss, (int)ie->family, ie->dst_addr.data, ie->dst_addr.len, ie->dst_port)))
		return snap_fail(ctx, -errno, "%s: cannot reconnect it in repair mode: %m", what);
	if (set_int(fd, IPPROTO_TCP, TCP_MAXSEG, 0))
		return snap_fail(ctx, -errno, "%s: cannot clear its MSS setting: %m", what);
	opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_MAXSEG, re->mss };
	if (re->snd_wscale || re->rcv_wscale)
		opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_WINDOW, re->snd_wscale | (re->rcv_wscale << 16) };
	if (re->sack)
		opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERMITTED, 0 };
	if (re->timestamps)
		opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(nopts * sizeof(opts[0]))))
		return snap_fail(ctx, -errno, "%s: cannot set its TCP options: %m", what);
	/* Bytes the peer has not acknowledged go back as sent: they are retransmitted if need be. */
	if (sent) {
		if (set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE))
			return snap_fail(ctx, -errno, "%s: cannot select its send queue: %m", what);
		r = send_queue_data(ctx, fd, re->send_queue.data, sent, false, what);
		if (r)
			return r;
	}
	if (re->recv_queue.len) {
		if (set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE))
			return snap_fail(ctx, -errno, "%s: cannot select its receive queue: %m", what);
		r = send_queue_data(ctx, fd, re->recv_queue.data, re->recv_queue.len, false, what);
		if (r)
			return r;
	}
	if (set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE))
		return snap_fail(ctx, -errno, "%s: cannot leave its queues: %m", what);
	/* Last: the kernel checks the window against the receive queue's end, which the data just moved. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, sizeof(win)))
		return snap_fail(ctx, -errno, "%s: cannot set its window: %m", what);
	return 0;
}

static int repair_finish(struct snap_ctx *ctx, int fd, const InetSkEntry *ie, const char *what)
{
	const TcpRepairEntry *re = ie->repair;
	int r;

	/* Leaving repair mode sends a window probe: the peer learns we are back, and ACKs. */
	if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF))
		return snap_fail(ctx, -errno, "%s: cannot leave repair mode: %m", what);
	/* Repair mode reset SO_REUSEADDR when it ended: set the process's options once more. */
	r = sk_restore_opts(ctx, fd, ie->opts, ie->n_opts, what);
	/* Bytes the process had queued but TCP had not sent yet are sent now, like any write. */
	if (!r && re->unsent)
		r = send_queue_data(ctx, fd, re->send_queue.data + re->send_queue.len - re->unsent, re->unsent, true,
				    what);
	return r;
}

/* A connection dumped with --tcp-close: connected in repair mode, then dropped without a word to the peer. */
static int restore_closed(struct snap_ctx *ctx, int fd, const InetSkEntry *ie, const char *what)
{
	struct sockaddr_storage ss;
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	int r;

	if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON))
		return snap_fail(ctx, -errno, "%s: cannot enter repair mode: %m", what);
	/* In repair mode the port may be bound although the listener that accepted the connection holds it. */
	r = ie->src_port ? bind_src(ctx, fd, ie, what) : 0;
	if (r)
		return r;
	if (!ie->has_dst_addr) {
		if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP))
			return snap_fail(ctx, -errno, "%s: cannot leave repair mode: %m", what);
		return 0;
	}
	if (connect(fd, (struct sockaddr *)&ss,
		    make_sa(&ss, (int)ie->family, ie->dst_addr.data, ie->dst_addr.len, ie->dst_port)))
		return snap_fail(ctx, -errno, "%s: cannot reconnect it in repair mode: %m", what);
	/* Disconnecting in repair mode sends no reset and leaves ECONNABORTED for the process to find. */
	if (connect(fd, &unspec, sizeof(unspec)))
		return snap_fail(ctx, -errno, "%s: cannot drop the connection: %m", what);
	if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP))
		return snap_fail(ctx, -errno, "%s: cannot leave repair mode: %m", what);
	return 0;
}

static int restore_one(struct snap_ctx *ctx, struct files_restore *rs, const FileEntry *fe)
{
	const InetSkEntry *ie = fe->inet_sk;
	char what[200];
	int fd, r = 0;

	describe(fe, what, sizeof(what));
	fd = new_socket(ctx, fe, what);
	if (fd < 0)
		return fd;
	fd = files_keep(ctx, rs, fd, what);
	if (fd < 0)
		return fd;
	files_set(rs, fe->id, fd);
	if (ie->repair) {
		/* Finished by repair_finish, with its flags, once every connection exists. */
		return repair_build(ctx, fd, ie, what);
	} else if (ie->has_restore_closed && ie->restore_closed) {
		r = restore_closed(ctx, fd, ie, what);
	} else {
		if (ie->src_port)
			r = bind_src(ctx, fd, ie, what);
		if (!r && ie->state == TCP_LISTEN && listen(fd, (int)ie->backlog))
			r = snap_fail(ctx, -errno, "%s: cannot listen: %m", what);
		/* A UDP socket connects once its datagrams are back: connected, it would take them from its peer only.
		 */
		if (ie->protocol == IPPROTO_UDP)
			return r;
	}
	/* Repair mode resets SO_REUSEADDR when it ends: set the process's options once more. */
	if (!r && ie->restore_closed)
		r = sk_restore_opts(ctx, fd, ie->opts, ie->n_opts, what);
	if (!r && ie->has_shutdown && (ie->shutdown & 1) && shutdown(fd, SHUT_RD))
		r = snap_fail(ctx, -errno, "%s: cannot shut down its receiving side: %m", what);
	if (!r)
		r = files_set_fl(ctx, fd, fe->flags, what);
	return r;
}

/* Sends the datagrams that waited in UDP socket @fe again, each from its sender, and checks they all arrived. */
static int udp_fill(struct snap_ctx *ctx, struct files_restore *rs, const FileEntry *fe)
{
	static const uint8_t lo4[4] = { 127, 0, 0, 1 }, lo6[16] = { [15] = 1 };
	const InetSkEntry *ie = fe->inet_sk;
	const uint8_t *to = ie->src_addr.data;
	struct sockaddr_storage ss;
	socklen_t len;
	char what[200];
	int fd = rs->fds[fe->id - 1], zero = 0, off = -1;
	size_t n = 0;
	uint8_t *buf;
	bool any = true;

	describe(fe, what, sizeof(what));
	for (size_t k = 0; k < ie->src_addr.len; k++)
		any &= to[k] == 0;
	/* Bound to any address: the datagrams came to one of ours, the loopback will do. */
	if (any)
		to = ie->family == AF_INET ? lo4 : lo6;
	len = make_sa(&ss, (int)ie->family, to, ie->src_addr.len, ie->src_port);
	for (size_t i = 0; i < ie->n_queue; i++) {
		const InetMsgEntry *m = ie->queue[i];

		if (sendto(rs->fds[m->from_id - 1], m->data.data, m->data.len, MSG_DONTWAIT, (struct sockaddr *)&ss,
			   len) != (ssize_t)m->data.len)
			return snap_fail(ctx, -errno, "%s: cannot send datagram %zu again: %m", what, i);
	}
	/* UDP drops what does not fit: count what arrived, whole datagrams at a time (the peek offset counts bytes). */
	buf = malloc(65536);
	if (!buf)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
	while (recv(fd, buf, 65536, MSG_PEEK | MSG_DONTWAIT) >= 0)
		n++;
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	free(buf);
	if (n != ie->n_queue)
		return snap_fail(ctx, -EIO, "%s: %zu of its %zu datagrams arrived again", what, n, ie->n_queue);
	return 0;
}

int inet_restore(struct snap_ctx *ctx, struct files_restore *rs)
{
	const struct files_image *fi = rs->fi;

	/* Listeners and plain sockets first: a repaired connection may share a listener's port, the other way not. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < fi->nr_files; i++) {
			const FileEntry *fe = fi->files[i];
			bool conn;
			int r;

			if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_INET)
				continue;
			conn = fe->inet_sk->repair || (fe->inet_sk->has_restore_closed && fe->inet_sk->restore_closed);
			if (conn != (pass == 1))
				continue;
			r = restore_one(ctx, rs, fe);
			if (r)
				return r;
		}
	}
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		int r;

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_INET ||
		    fe->inet_sk->protocol != IPPROTO_UDP || !fe->inet_sk->n_queue)
			continue;
		r = udp_fill(ctx, rs, fe);
		if (r)
			return r;
	}
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		const InetSkEntry *ie = fe->inet_sk;
		char what[200];
		int r = 0;

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_INET || ie->protocol != IPPROTO_UDP)
			continue;
		describe(fe, what, sizeof(what));
		if (ie->has_dst_addr && ie->state == TCP_ESTABLISHED) {
			struct sockaddr_storage ss;

			if (connect(rs->fds[i], (struct sockaddr *)&ss,
				    make_sa(&ss, (int)ie->family, ie->dst_addr.data, ie->dst_addr.len, ie->dst_port)))
				r = snap_fail(ctx, -errno, "%s: cannot connect it: %m", what);
		}
		if (!r)
			r = files_set_fl(ctx, rs->fds[i], fe->flags, what);
		if (r)
			return r;
	}
	for (size_t i = 0; i < fi->nr_files; i++) {
		const FileEntry *fe = fi->files[i];
		char what[200];
		int r;

		if (!files_wanted(rs, fe->id) || fe->kind != FILE_KIND__FILE_INET || !fe->inet_sk->repair)
			continue;
		describe(fe, what, sizeof(what));
		r = repair_finish(ctx, rs->fds[i], fe->inet_sk, what);
		if (!r && fe->inet_sk->has_shutdown && (fe->inet_sk->shutdown & 1) && shutdown(rs->fds[i], SHUT_RD))
			r = snap_fail(ctx, -errno, "%s: cannot shut down its receiving side: %m", what);
		if (!r)
			r = files_set_fl(ctx, rs->fds[i], fe->flags, what);
		if (r)
			return r;
	}
	return 0;
}
