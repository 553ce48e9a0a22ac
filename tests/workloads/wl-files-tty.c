/*
 * Workload: a shell job. Started by a "shell" (the test) in the shell's
 * session, in a group of its own in the terminal's foreground, with stdin
 * and stdout on the terminal. Before ready it writes "before"; after go it
 * must still be the foreground group, writes "after-go", reads the line the
 * test types ("ping") and answers "pong <pid>".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "wl.h"

static void say(const char *s)
{
	if (write(1, s, strlen(s)) != (ssize_t)strlen(s))
		wl_fail("cannot write \"%s\" to the terminal: %m", s);
}

int main(int argc, char **argv)
{
	struct stat st0, st1;
	char line[64], msg[64];
	ssize_t n;

	wl_init(argc, argv, 0, "");
	if (!isatty(0) || !isatty(1) || fstat(0, &st0) || fstat(1, &st1) || st0.st_rdev != st1.st_rdev)
		wl_die("stdin and stdout must be one terminal");
	if (getsid(0) == getpid() || getpgrp() != getpid())
		wl_die("a shell job is in its shell's session, in a group of its own");
	if (tcgetpgrp(0) != getpgrp())
		wl_die("not in the terminal's foreground (%d, we are %d)", (int)tcgetpgrp(0), (int)getpgrp());
	say("before\n");
	wl_ready();
	wl_wait_go();

	wl_expect(isatty(0) && isatty(1), "stdin or stdout is no longer a terminal");
	wl_expect(tcgetpgrp(0) == getpgrp(), "the terminal's foreground group is %d, ours %d", (int)tcgetpgrp(0),
		  (int)getpgrp());
	wl_expect(getpgrp() == getpid(), "group %d, expected our own", (int)getpgrp());
	say("after-go\n");
	/* Canonical mode: one read, one line. */
	n = read(0, line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = '\0';
	wl_expect(n == 5 && !strcmp(line, "ping\n"), "read \"%s\" (%zd bytes) from the terminal, expected ping", line,
		  n);
	snprintf(msg, sizeof(msg), "pong %d\n", (int)getpid());
	say(msg);
	return wl_finish();
}
