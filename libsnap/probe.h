/* Readiness probes and a minimal HTTP/1.0 client for snap_prepare, and the connections they leave behind. */
#ifndef SNAP_PROBE_H
#define SNAP_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctx.h"

enum probe_kind { PROBE_TCP, PROBE_HTTP, PROBE_FILE };

struct probe {
	enum probe_kind kind;
	char host[256]; /* tcp, http: a name or address ([] removed from an IPv6 one) */
	char port[8];
	char path[4096]; /* http: the request target; file: the path */
};

/* One TCP connection a probe or request made: the server's port and our end's. */
struct probe_conn {
	uint16_t server_port, client_port;
};

struct probe_conns {
	struct probe_conn *v;
	size_t nr, cap;
};

/* Parses "tcp:HOST:PORT", "http://HOST[:PORT][/PATH]" or "file:PATH". */
int probe_parse(struct snap_ctx *ctx, const char *spec, struct probe *ret);
/* Parses "http://HOST[:PORT][/PATH]" only. */
int probe_parse_url(struct snap_ctx *ctx, const char *url, struct probe *ret);

/*
 * One attempt, giving up at @deadline_ns (CLOCK_MONOTONIC): 1 if ready, 0
 * if not yet (@why says what happened), <0 on a local error (in ctx).
 * Connections it made are added to @conns.
 */
int probe_once(struct snap_ctx *ctx, const struct probe *p, uint64_t deadline_ns, struct probe_conns *conns, char *why,
	       size_t why_len);

/*
 * GET of @p's path, reading the whole answer: its status in *ret_status,
 * or 0 with @why set if there was no answer.
 */
int probe_http_get(struct snap_ctx *ctx, const struct probe *p, uint64_t deadline_ns, struct probe_conns *conns,
		   int *ret_status, char *why, size_t why_len);

/*
 * Whether the server end of one of @conns is still held by one of @pids
 * (the command's processes; [0] gives the network namespace) or waits to
 * be accepted: 1 with its TCP state in @state, 0 if none, <0 on error.
 */
int probe_conns_held(struct snap_ctx *ctx, const pid_t *pids, size_t nr_pids, const struct probe_conns *conns,
		     unsigned *state);

void probe_conns_free(struct probe_conns *conns);

#endif
