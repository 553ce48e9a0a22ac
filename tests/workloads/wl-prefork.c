/*
 * Workload: a pre-fork server. The root fills 64 MiB, forks 8 (or argv[2]) workers that
 * share it copy-on-write; each worker rewrites its own 1 MiB slice, and
 * the root rewrites another slice after the fork (which the workers must
 * not see). The workers inherit the root's TCP listener (127.0.0.1): after
 * go each accepts one of the root's clients and answers with its number.
 * After go everyone checks what it should see.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl.h"

#define DATA	    (64u << 20)
#define SLICE	    (1u << 20)
#define MAX_WORKERS 64
#define SEED	    0xc0ffee
/*
 * What the root rewrites after the fork: the workers keep the old pages,
 * which are then shared among them but no longer with the root, so they
 * are stored once per worker; kept small, like a server's own state.
 */
#define ROOT_OWN (256u << 10)

static uint8_t *data;
static int NR_WORKERS = 8; /* argv[2] */

/*
 * Worker i (self = i) rewrote slice i; the root (self = -1) rewrote the
 * start of slice NR_WORKERS after the fork. Everyone else sees the data
 * as it was before.
 */
static void check_view(int self)
{
	for (int s = 0; s <= NR_WORKERS; s++) {
		bool own = s == self || (self < 0 && s == NR_WORKERS);
		size_t len = s == NR_WORKERS ? ROOT_OWN : SLICE;
		char what[64];

		snprintf(what, sizeof(what), "slice %d as seen by %s %d", s, self < 0 ? "the root" : "worker", self);
		wl_expect_data(what, data + (size_t)s * SLICE, len,
			       own ? SEED + 1 + (uint64_t)s : SEED + 100 + (uint64_t)s);
		if (len < SLICE)
			wl_expect_data(what, data + (size_t)s * SLICE + len, SLICE - len,
				       SEED + 100 + (uint64_t)s + 1000);
	}
	wl_expect_data("the shared rest", data + (NR_WORKERS + 1) * SLICE, DATA - (NR_WORKERS + 1) * SLICE, SEED);
}

/* A worker: one client from the listener every worker shares, answered with our number. */
static void serve_one(int lsn, int self)
{
	int c = accept(lsn, NULL, NULL);

	wl_expect(c >= 0, "worker %d: accept on the shared listener: %m", self);
	if (c >= 0 && write(c, &self, sizeof(self)) != sizeof(self))
		wl_fail("worker %d: cannot answer: %m", self);
	if (c >= 0)
		close(c);
}

/* The root: as many clients as workers, each answered by another worker. */
static void connect_all(const struct sockaddr_in *sa)
{
	bool seen[MAX_WORKERS] = { false };

	for (int i = 0; i < NR_WORKERS; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), who = -1;

		if (c < 0 || connect(c, (const struct sockaddr *)sa, sizeof(*sa)) ||
		    read(c, &who, sizeof(who)) != sizeof(who) || who < 0 || who >= NR_WORKERS)
			wl_fail("client %d: no answer from a worker (%d): %m", i, who);
		else
			wl_expect(!seen[who], "worker %d answered twice", who);
		if (who >= 0 && who < NR_WORKERS)
			seen[who] = true;
		if (c >= 0)
			close(c);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	pid_t workers[MAX_WORKERS];
	int status, lsn;

	wl_init(argc, argv, 0, "[NR_WORKERS]");
	if (argc > 2)
		NR_WORKERS = atoi(argv[2]);
	if (NR_WORKERS < 1 || NR_WORKERS > MAX_WORKERS || (NR_WORKERS + 1) * SLICE > DATA)
		wl_die("NR_WORKERS must be 1..%d", MAX_WORKERS);
	data = mmap(NULL, DATA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (data == MAP_FAILED)
		wl_die("mmap failed: %m");
	for (int s = 0; s < NR_WORKERS; s++)
		wl_fill(data + (size_t)s * SLICE, SLICE, SEED + 100 + (uint64_t)s);
	wl_fill(data + NR_WORKERS * SLICE, ROOT_OWN, SEED + 100 + NR_WORKERS);
	wl_fill(data + NR_WORKERS * SLICE + ROOT_OWN, SLICE - ROOT_OWN, SEED + 100 + NR_WORKERS + 1000);
	wl_fill(data + (NR_WORKERS + 1) * SLICE, DATA - (NR_WORKERS + 1) * SLICE, SEED);
	lsn = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, MAX_WORKERS) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &salen))
		wl_die("listener: %m");
	for (int i = 0; i < NR_WORKERS; i++) {
		workers[i] = fork();
		if (workers[i] < 0)
			wl_die("fork failed: %m");
		if (workers[i] == 0) {
			wl_fill(data + (size_t)i * SLICE, SLICE, SEED + 1 + (uint64_t)i);
			wl_wait_go();
			serve_one(lsn, i);
			check_view(i);
			_exit(wl_finish());
		}
	}
	/* Ours only, after the fork: no worker may see it. */
	wl_fill(data + NR_WORKERS * SLICE, ROOT_OWN, SEED + 1 + NR_WORKERS);
	/* Let the workers write their slices before anyone dumps us. */
	sleep(1);
	wl_ready();
	wl_wait_go();
	check_view(-1);
	connect_all(&sa);
	for (int i = 0; i < NR_WORKERS; i++) {
		waitpid(workers[i], &status, 0);
		wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d ended with %#x", i, status);
	}
	return wl_finish();
}
