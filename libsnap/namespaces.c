/*
 * Restore into namespaces: many copies of one snapshot at once, each in a
 * PID namespace of its own (processes keep their image PIDs there, with an
 * init of ours as PID 1) and, if asked, a network namespace of its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/nsfs.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "namespaces.h"
#include "restore.h"

/* Shared by the engine, its helper and the init (MAP_SHARED, inherited through fork). */
struct ns_shared {
	_Atomic int32_t init_pid;  /* in the caller's namespace; set by the helper */
	_Atomic uint32_t released; /* futex word: 1 the restore succeeded, 2 the init took note */
	int32_t err;		   /* the helper's error, with its words */
	char msg[512];
};

struct ns_plan {
	unsigned flags; /* SNAP_RESTORE_PIDNS, SNAP_RESTORE_NETNS */
	int netns_fd;	/* the namespace to join, or -1 */
	struct ns_shared *sh;
};

/* Signals that, sent to the init (what the caller knows as the copy), are meant for the service. */
static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

int ns_plan_new(struct snap_ctx *ctx, const struct snap_restore_opts *opts, struct ns_plan **ret)
{
	unsigned flags = opts->flags & (SNAP_RESTORE_PIDNS | SNAP_RESTORE_NETNS);
	const char *path = opts->size >= offsetof(struct snap_restore_opts, netns_path) + sizeof(opts->netns_path)
				   ? opts->netns_path
				   : NULL;
	struct ns_plan *ns;
	int r;

	*ret = NULL;
	if (!flags && !path)
		return 0;
	if ((flags & SNAP_RESTORE_NETNS) && path)
		return snap_fail(ctx, -EINVAL, "a new network namespace and joining %s exclude each other", path);
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	ns->flags = flags;
	ns->netns_fd = -1;
	ns->sh = mmap(NULL, sizeof(*ns->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ns->sh == MAP_FAILED) {
		ns->sh = NULL;
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto fail;
	}
	if (path) {
		ns->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ns->netns_fd < 0) {
			r = snap_fail(ctx, -errno, "network namespace %s: %m", path);
			goto fail;
		}
		r = ioctl(ns->netns_fd, NS_GET_NSTYPE);
		if (r != CLONE_NEWNET) {
			r = snap_fail(ctx, r < 0 ? -errno : -EINVAL, "%s is not a network namespace", path);
			goto fail;
		}
	}
	*ret = ns;
	return 0;
fail:
	ns_plan_free(ns);
	return r;
}

void ns_plan_free(struct ns_plan *ns)
{
	if (!ns)
		return;
	if (ns->netns_fd >= 0)
		close(ns->netns_fd);
	if (ns->sh)
		munmap(ns->sh, sizeof(*ns->sh));
	free(ns);
}

bool ns_pidns(const struct ns_plan *ns)
{
	return ns && (ns->flags & SNAP_RESTORE_PIDNS);
}

int ns_check_pid(struct snap_ctx *ctx, const struct ns_plan *ns, pid_t pid)
{
	/* In a namespace of our own every pid is free, but 1 is the init's. */
	if (!ns_pidns(ns))
		return restore_pid_in_use(ctx, pid);
	if (pid == 1)
		return snap_fail(ctx, -EEXIST,
				 "pid 1 is the init of the new PID namespace; an image with pid 1 cannot go there");
	return 0;
}

/* ---- in the helper ---- */

static int loopback_up(struct snap_ctx *ctx)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (fd < 0)
		return snap_fail(ctx, -errno, "new network namespace: cannot create a socket: %m");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		r = snap_fail(ctx, -errno, "new network namespace: no loopback device: %m");
	ifr.ifr_flags |= IFF_UP;
	if (!r && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		r = snap_fail(ctx, -errno, "new network namespace: cannot bring the loopback device up: %m");
	close(fd);
	return r;
}

int ns_enter_net(struct snap_ctx *ctx, struct ns_plan *ns)
{
	if (!ns)
		return 0;
	if (ns->flags & SNAP_RESTORE_NETNS) {
		if (unshare(CLONE_NEWNET))
			return snap_fail(ctx, -errno, "cannot create a network namespace: %m");
		return loopback_up(ctx);
	}
	if (ns->netns_fd >= 0 && setns(ns->netns_fd, CLONE_NEWNET))
		return snap_fail(ctx, -errno, "cannot join the network namespace: %m");
	return 0;
}

void ns_helper_fail(struct snap_ctx *ctx, struct ns_plan *ns, int err)
{
	ns->sh->err = err < 0 ? err : -EIO;
	snprintf(ns->sh->msg, sizeof(ns->sh->msg), "%s", snap_error(ctx));
	_exit(1);
}

/* Ends the way the root ended, as far as an init can: it cannot be killed by a signal of its own. */
__attribute__((noreturn)) static void exit_like(int status)
{
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

__attribute__((noreturn)) static void init_main(struct snap_ctx *ctx, struct ns_plan *ns, pid_t root_pid, int status_fd,
						void (*root_fn)(void *), void *arg)
{
	struct clone_args ca = { .exit_signal = SIGCHLD, .set_tid = (uint64_t)&root_pid, .set_tid_size = 1 };
	sigset_t mask, old;
	pid_t root;
	int sfd, null, r;

	/* Until the restore succeeds, the engine's death ends the namespace. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "snap-init");
	/*
	 * A /proc of this namespace: the engine's own code in the new processes
	 * reads /proc/<getpid()>/..., and so do restored programs (a JVM reads
	 * /proc/self/... and /proc/<pid>/... a lot). With the caller's /proc,
	 * /proc/self is the right process but shows its outer pid, and
	 * /proc/<getpid()> is some other process of the caller's namespace.
	 * Host mounts still propagate in (slave); ours never propagate out.
	 */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL)) {
		r = snap_fail(ctx, -errno, "namespace init: cannot make its mounts private: %m");
		restore_child_fail(ctx, status_fd, r);
	}
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) {
		r = snap_fail(ctx, -errno, "namespace init: cannot mount /proc: %m");
		restore_child_fail(ctx, status_fd, r);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&mask, forwarded[i]);
	sigprocmask(SIG_BLOCK, &mask, &old);
	/* The namespace has its reaper now, so another pid can be asked for. */
	root = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (root == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		root_fn(arg);
		_exit(1);
	}
	if (root < 0) {
		r = snap_fail(ctx, -errno, "cannot create pid %d in the new PID namespace: %m", root_pid);
		restore_child_fail(ctx, status_fd, r);
	}
	/* Nothing of the caller's may stay open for as long as the copy runs. */
	syscall(SYS_close_range, 3, ~0u, 0);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; null >= 0 && fd < 3; fd++)
		dup2(null, fd);
	if (null > 2)
		close(null);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);

	while (!atomic_load(&ns->sh->released))
		syscall(SYS_futex, &ns->sh->released, FUTEX_WAIT, 0, NULL, NULL, 0);
	prctl(PR_SET_PDEATHSIG, 0);
	atomic_store(&ns->sh->released, 2);
	syscall(SYS_futex, &ns->sh->released, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);

	for (;;) {
		struct signalfd_siginfo si;
		int status;
		pid_t p;

		if (sfd < 0) {
			/* No signalfd: reap only, nothing is forwarded. */
			p = waitpid(-1, &status, __WALL);
			if (p == root)
				exit_like(status);
			if (p < 0 && errno == ECHILD)
				_exit(1);
			continue;
		}
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			kill(root, (int)si.ssi_signo);
			continue;
		}
		/*
		 * Orphans of the copy are reparented to us, its PID 1, and no one
		 * else can reap them (nor would this machine's PID 1 reap its own).
		 */
		while ((p = waitpid(-1, &status, WNOHANG | __WALL)) > 0)
			if (p == root)
				exit_like(status);
	}
}

pid_t ns_spawn_init(struct snap_ctx *ctx, struct ns_plan *ns, pid_t root_pid, int status_fd, void (*root_fn)(void *arg),
		    void *arg)
{
	/* With CLONE_PARENT the exit signal is the caller's own (SIGCHLD); clone3 wants 0 here. */
	struct clone_args ca = { .flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_PARENT };
	pid_t p = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));

	if (p == 0)
		init_main(ctx, ns, root_pid, status_fd, root_fn, arg);
	if (p < 0)
		return snap_fail(ctx, -errno, "cannot create a new PID namespace: %m");
	atomic_store(&ns->sh->init_pid, p);
	return p;
}

/* ---- in the engine ---- */

int ns_helper_error(struct snap_ctx *ctx, const struct ns_plan *ns)
{
	if (!ns || !ns->sh->err)
		return 0;
	return snap_fail(ctx, ns->sh->err, "%s", ns->sh->msg);
}

pid_t ns_init_pid(const struct ns_plan *ns)
{
	return ns ? atomic_load(&ns->sh->init_pid) : 0;
}

void ns_release(struct ns_plan *ns)
{
	pid_t init = ns_init_pid(ns);

	if (init <= 0)
		return;
	atomic_store(&ns->sh->released, 1);
	syscall(SYS_futex, &ns->sh->released, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	/* The caller may exit at once (snapcr -d): the init must have dropped its parent-death signal by then. */
	while (atomic_load(&ns->sh->released) == 1) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		siginfo_t si = { 0 };

		/* Gone already (killed by someone): then there is nothing to wait for; the caller reaps it. */
		if (!waitid(P_PID, (id_t)init, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) && si.si_pid == init)
			break;

		syscall(SYS_futex, &ns->sh->released, FUTEX_WAIT, 1, &ts, NULL, 0);
	}
}

/* Reaps @pid and whatever of its threads have ended while we trace them. */
static void reap_traced(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;

	waitpid(pid, NULL, WNOHANG | __WALL);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		pid_t tid = (pid_t)atoi(d->d_name);

		if (tid > 0 && tid != pid)
			waitpid(tid, NULL, WNOHANG | __WALL);
	}
	closedir(dir);
}

void ns_kill(struct ns_plan *ns, const pid_t *traced, size_t nr)
{
	pid_t init = ns_init_pid(ns);

	if (init <= 0)
		return;
	kill(init, SIGKILL);
	/*
	 * The init's exit waits until every process of its namespace is
	 * released, and a process we trace is released only once we reap it:
	 * so reap our tracees (and their threads) until the init is gone.
	 */
	for (int round = 0; round < 60000; round++) {
		pid_t p = waitpid(init, NULL, WNOHANG | __WALL);

		if (p == init || (p < 0 && errno != EINTR))
			return;
		for (size_t i = 0; i < nr; i++)
			if (traced[i] > 0)
				reap_traced(traced[i]);
		usleep(1000);
	}
}
