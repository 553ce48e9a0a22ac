/* Socket state from the sock_diag netlink interface: unix and inet (TCP, UDP) sockets by inode. */
#ifndef SNAP_SOCKDIAG_H
#define SNAP_SOCKDIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctx.h"

struct unix_diag_sk {
	uint64_t ino;
	uint8_t type, state;
	uint8_t shutdown; /* RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2 */
	bool has_name;
	uint8_t name_len; /* bytes of name; an abstract name starts with NUL */
	char name[108];
	bool has_vfs; /* bound to a path: the socket file's inode */
	uint64_t vfs_ino, vfs_dev;
	uint64_t peer;	 /* inode of the peer; 0 if none, or an embryo not yet accepted */
	uint64_t *icons; /* listening: inodes of the clients waiting to be accepted */
	size_t nr_icons;
	uint32_t rqlen; /* listening: connections waiting; else bytes in the receive queue */
	uint32_t wqlen; /* listening: backlog; else bytes sent and not yet read by the peer */
};

/* Every unix socket of our network namespace, sorted by inode. */
struct unix_diag_table {
	struct unix_diag_sk *v;
	size_t nr;
};

int sockdiag_unix_load(struct snap_ctx *ctx, struct unix_diag_table *out);
void unix_diag_table_free(struct unix_diag_table *t);
const struct unix_diag_sk *unix_diag_find(const struct unix_diag_table *t, uint64_t ino);
/* The listening socket that holds client @ino in its accept queue, or NULL. */
const struct unix_diag_sk *unix_diag_listener_of(const struct unix_diag_table *t, uint64_t ino);

struct inet_diag_sk {
	uint64_t ino;
	uint8_t family, protocol, state;
	bool has_shutdown;
	uint8_t shutdown;
	uint16_t sport, dport; /* host order */
	uint8_t src[16], dst[16];
	uint32_t rqueue, wqueue; /* listening: connections waiting and backlog; else queued bytes */
};

/* Every socket of one family and protocol in our network namespace, sorted by inode. */
struct inet_diag_table {
	int family, protocol;
	struct inet_diag_sk *v;
	size_t nr;
};

int sockdiag_inet_load(struct snap_ctx *ctx, int family, int protocol, struct inet_diag_table *out);
void inet_diag_table_free(struct inet_diag_table *t);
const struct inet_diag_sk *inet_diag_find(const struct inet_diag_table *t, uint64_t ino);

/*
 * Segments TCP socket @fd has sent and received (the kernel's tcp_info, which glibc's header
 * shows only in part); 0 for a socket that never carried a connection. -errno on failure.
 */
int tcp_segments(int fd, uint64_t *ret_segs);

#endif
