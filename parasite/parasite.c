/* The parasite: runs inside the frozen process and answers the engine's commands. */
#include <linux/personality.h>
#include <linux/prctl.h>
#include <linux/signal.h>

#include "parasite-attrs.h"
#include "protocol.h"
#include "rt.h"

static long dump_sigactions(struct parasite_shared *sh)
{
	for (int sig = 1; sig <= PARASITE_NSIG; sig++) {
		struct parasite_sigaction *a = &sh->sigactions[sig - 1];
		long r;

		memset(a, 0, sizeof(*a));
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		r = sys_rt_sigaction(sig, 0, a);
		if (r)
			return r;
	}
	return 0;
}

static long dump_thread(struct parasite_thread_info *ti)
{
	struct {
		uint64_t sp;
		int32_t flags;
		int32_t pad;
		uint64_t size;
	} ss;
	long r;

	r = sys_prctl(PR_GET_TID_ADDRESS, (long)&ti->clear_child_tid, 0, 0, 0);
	if (r)
		return r;
	r = sys_sigaltstack(0, &ss);
	if (r)
		return r;
	ti->altstack_sp = ss.sp;
	ti->altstack_size = ss.size;
	ti->altstack_flags = ss.flags;
	r = sys_prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (r < 0)
		return r;
	ti->timer_slack_ns = (uint64_t)r;
	return parasite_dump_creds(&ti->creds);
}

static long dump_misc(struct parasite_shared *sh)
{
	struct parasite_misc *m = &sh->misc;
	long r;

	m->brk = (uint64_t)sys1(__NR_brk, 0);
	r = sys1(__NR_personality, 0xffffffff);
	if (r < 0)
		return r;
	m->personality = (uint32_t)r;
	return dump_thread(&sh->leader);
}

static long serve(struct parasite_shared *sh)
{
	int sk = sh->sock_fd;

	for (;;) {
		struct parasite_cmd_msg cmd;
		struct parasite_reply_msg reply;
		long n = sys_recv(sk, &cmd, sizeof(cmd));

		if (n != sizeof(cmd))
			break; /* the engine is gone: return to the trap */
		reply.cmd = cmd.cmd;
		switch (cmd.cmd) {
		case PARASITE_CMD_DUMP_SIGACTIONS:
			reply.ret = (int32_t)dump_sigactions(sh);
			break;
		case PARASITE_CMD_DUMP_MISC:
			reply.ret = (int32_t)dump_misc(sh);
			break;
		case PARASITE_CMD_DUMP_ATTRS:
			reply.ret = (int32_t)parasite_dump_attrs(sh);
			break;
		case PARASITE_CMD_FINI:
			reply.ret = 0;
			break;
		default:
			reply.ret = -22; /* EINVAL */
			break;
		}
		if (sys_send(sk, &reply, sizeof(reply)) != sizeof(reply) || cmd.cmd == PARASITE_CMD_FINI)
			break;
	}
	sys_close(sk);
	return 0;
}

long blob_main(void *arg)
{
	if (*(uint32_t *)arg == PARASITE_MODE_THREAD) {
		struct parasite_thread_args *ta = arg;

		ta->info.ret = (int32_t)dump_thread(&ta->info);
		return 0;
	}
	return serve(arg);
}
