/*
 * Workload: a 3-level tree of 13 processes in two sessions and several
 * groups, one group whose leader has exited, and two zombies (one exited,
 * one killed). Every process checks its own pid, parent, group, session
 * and private data after go; parents reap their children and zombies and
 * check how they ended.
 *
 *   root (session leader S, group S)
 *   ├── a1 ─┬── b1
 *   │       ├── b2
 *   │       ├── z1   zombie: exit(7)
 *   │       └── z2   zombie: killed by SIGTERM
 *   ├── a2 ─┬── d    leader of group D, exits and is reaped before ready
 *   │       ├── e1   in group D
 *   │       └── e2   in group D
 *   ├── a3 ── b3     new session T (setsid)
 *   │         ├── c1 in T, group T
 *   │         └── c2 in T, own group C2
 *   └── a4 ── b4     own group B4
 *             └── c3 joins group B4
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

struct expect {
	pid_t pid, ppid, pgid, sid;
};

static struct expect me;
static pid_t zombies[2];
static int nr_zombies;
static pid_t kids[8];
static int nr_kids;
static uint64_t *data;
#define DATA_WORDS 4096

static void record(void)
{
	char path[PATH_MAX], name[64];
	FILE *f;

	me.pid = getpid();
	me.ppid = getppid();
	me.pgid = getpgid(0);
	me.sid = getsid(0);
	data = malloc(DATA_WORDS * sizeof(*data));
	if (!data)
		wl_die("out of memory");
	wl_fill(data, DATA_WORDS * sizeof(*data), (uint64_t)me.pid);
	snprintf(name, sizeof(name), "up-%d", (int)me.pid);
	wl_path(path, name);
	f = fopen(path, "w");
	if (!f)
		wl_die("cannot create %s: %m", path);
	fclose(f);
}

static void check(void)
{
	wl_expect(getpid() == me.pid, "pid %d, was %d", (int)getpid(), (int)me.pid);
	wl_expect(getppid() == me.ppid, "pid %d: parent %d, was %d", (int)me.pid, (int)getppid(), (int)me.ppid);
	wl_expect(getpgid(0) == me.pgid, "pid %d: group %d, was %d", (int)me.pid, (int)getpgid(0), (int)me.pgid);
	wl_expect(getsid(0) == me.sid, "pid %d: session %d, was %d", (int)me.pid, (int)getsid(0), (int)me.sid);
	wl_expect_data("private data", data, DATA_WORDS * sizeof(*data), (uint64_t)me.pid);
}

/* Checks, reaps children (all must pass) and zombies (as they ended), and exits. */
__attribute__((noreturn)) static void finish(void)
{
	int status;

	check();
	for (int i = 0; i < nr_kids; i++) {
		if (waitpid(kids[i], &status, 0) != kids[i])
			wl_fail("pid %d: child %d cannot be reaped: %m", (int)me.pid, (int)kids[i]);
		else
			wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
				  "pid %d: child %d ended with status %#x", (int)me.pid, (int)kids[i], status);
	}
	for (int i = 0; i < nr_zombies; i++) {
		int want_exit = i == 0;

		if (waitpid(zombies[i], &status, WNOHANG) != zombies[i])
			wl_fail("pid %d: zombie %d is not there to reap: %m", (int)me.pid, (int)zombies[i]);
		else if (want_exit)
			wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 7,
				  "zombie %d: status %#x, expected exit 7", (int)zombies[i], status);
		else
			wl_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
				  "zombie %d: status %#x, expected killed by SIGTERM", (int)zombies[i], status);
	}
	exit(wl_finish());
}

/* Forks a process that runs @fn; the parent keeps it in kids[] to reap. */
static pid_t spawn(void (*fn)(void))
{
	pid_t p = fork();

	if (p < 0)
		wl_die("fork failed: %m");
	if (p == 0) {
		nr_kids = nr_zombies = 0;
		fn();
		record();
		wl_wait_go();
		finish();
	}
	kids[nr_kids++] = p;
	return p;
}

static void nothing(void)
{
}

static pid_t group_d;

/* Moved into group D by its parent; records itself only once there. */
static void wait_for_group_d(void)
{
	struct timespec ms = { 0, 1000000 };

	while (getpgid(0) != group_d)
		nanosleep(&ms, NULL);
}

static void own_group(void)
{
	if (setpgid(0, 0))
		wl_die("setpgid failed: %m");
}

static void new_session(void)
{
	if (setsid() < 0)
		wl_die("setsid failed: %m");
}

static pid_t b4;

static void join_b4(void)
{
	if (setpgid(0, b4))
		wl_die("setpgid(0, %d) failed: %m", (int)b4);
}

static void a1(void)
{
	spawn(nothing);
	spawn(nothing);
	/* Two zombies, never reaped before go (SIGCHLD is left at its default: ignored, not discarded). */
	zombies[0] = fork();
	if (zombies[0] == 0)
		_exit(7);
	zombies[1] = fork();
	if (zombies[1] == 0) {
		for (;;)
			pause();
	}
	kill(zombies[1], SIGTERM);
	nr_zombies = 2;
	for (int i = 0; i < 2; i++) {
		siginfo_t si;

		waitid(P_PID, (id_t)zombies[i], &si, WEXITED | WNOWAIT);
	}
}

static void a2(void)
{
	int status;
	pid_t d;

	/* d makes group D and leaves; e1 and e2 stay in it. */
	d = fork();
	if (d == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(d, d);
	group_d = d;
	/* Moved by us, not by themselves: they must be in D before d goes. */
	setpgid(spawn(wait_for_group_d), d);
	setpgid(spawn(wait_for_group_d), d);
	kill(d, SIGKILL);
	waitpid(d, &status, 0);
}

static void b3_children(void)
{
	spawn(nothing);
	spawn(own_group);
}

static void b3(void)
{
	new_session();
	b3_children();
}

static void a3(void)
{
	spawn(b3);
}

static void b4_child(void)
{
	own_group();
	b4 = getpid();
	spawn(join_b4);
}

static void a4(void)
{
	spawn(b4_child);
}

int main(int argc, char **argv)
{
	struct timespec ms = { 0, 1000000 };
	int live_expected = 14; /* root, a1 b1 b2, a2 e1 e2, a3 b3 c1 c2, a4 b4 c3 */

	wl_init(argc, argv, 0, "");
	if (getsid(0) != getpid() && setsid() < 0)
		wl_die("setsid failed: %m");
	spawn(a1);
	spawn(a2);
	spawn(a3);
	spawn(a4);
	record();
	/* Ready once every process has recorded itself. */
	for (;;) {
		DIR *d = opendir(wl_ctldir);
		struct dirent *e;
		int n = 0;

		while (d && (e = readdir(d)))
			n += !strncmp(e->d_name, "up-", 3);
		if (d)
			closedir(d);
		if (n >= live_expected)
			break;
		nanosleep(&ms, NULL);
	}
	wl_ready();
	wl_wait_go();
	finish();
}
