/*
 * The application side of the in-process API (snap/app.h): the control
 * block, the control thread that runs the callbacks when an engine asks,
 * and snap_app_checkpoint(), which has a helper outside the tree dump us.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app-block.h"
#include "snap/app.h"
#include "snap/snap.h"

struct app_hook {
	snap_app_fn before, after;
	void *opaque;
};

/*
 * Process-wide by nature: there is one control thread per process. The
 * engine's rule of no globals is about snap_ctx operations, which this is not.
 */
static struct {
	pthread_mutex_t lock;
	struct app_block *blk;
	struct app_hook *hooks;
	size_t nr, cap;
	bool atfork_set;
	bool helper_fork; /* the fork is ours: the child keeps the block */
	bool checkpointing;
} app = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void futex_wait(uint32_t *w, uint32_t val, const struct timespec *rel)
{
	syscall(SYS_futex, w, FUTEX_WAIT, val, rel, NULL, 0);
}

/* The hooks as they are now: callbacks may register more while we run them. */
static struct app_hook *hooks_copy(size_t *ret_nr)
{
	struct app_hook *h;

	pthread_mutex_lock(&app.lock);
	h = malloc((app.nr ? app.nr : 1) * sizeof(*h));
	*ret_nr = h ? app.nr : 0;
	if (h && app.nr)
		memcpy(h, app.hooks, app.nr * sizeof(*h));
	pthread_mutex_unlock(&app.lock);
	return h;
}

/*
 * The control thread. Between requests it waits on the request word; for
 * one it runs the before-checkpoint callbacks, reports READY and waits on
 * the gate. That wait is where the engine freezes it: in a restored copy
 * the restarted FUTEX_WAIT finds the gate already RESTORED (the engine
 * sets it before letting this thread go), so no wake can be lost.
 */
static void *control_thread(void *arg)
{
	struct app_block *b = arg;
	uint32_t handled;

	app_store((uint32_t *)&b->ctl_tid, (uint32_t)gettid());
	app_futex_wake((uint32_t *)&b->ctl_tid);
	handled = app_load(&b->request);
	for (;;) {
		struct app_hook *h;
		size_t nr, i;
		uint32_t gate;
		enum snap_app_event ev;

		while (app_load(&b->request) == handled)
			futex_wait(&b->request, handled, NULL);
		handled = app_load(&b->request);

		app_store(&b->state, APP_STATE_BEFORE);
		h = hooks_copy(&nr);
		b->refused_err = 0;
		for (i = 0; i < nr; i++) {
			int r = h[i].before ? h[i].before(h[i].opaque, SNAP_APP_BEFORE_CHECKPOINT) : 0;

			if (r) {
				b->refused_err = r;
				b->refused_index = (uint32_t)i;
				break;
			}
		}
		app_store(&b->state, i < nr ? APP_STATE_REFUSED : APP_STATE_READY);
		app_futex_wake(&b->state);

		while ((gate = app_load(&b->gate)) == APP_GATE_CLOSED)
			futex_wait(&b->gate, APP_GATE_CLOSED, NULL);

		app_store(&b->state, APP_STATE_AFTER);
		ev = gate == APP_GATE_RESTORED ? SNAP_APP_AFTER_RESTORE : SNAP_APP_AFTER_CONTINUE;
		for (i = 0; i < nr; i++)
			if (h[i].after)
				h[i].after(h[i].opaque, ev);
		free(h);
		app_store(&b->gate, APP_GATE_CLOSED);
		app_store(&b->state, APP_STATE_IDLE);
		__atomic_add_fetch(&b->done, 1, __ATOMIC_RELEASE);
		app_futex_wake(&b->done);
	}
	return NULL;
}

/* A child of fork() has no control thread and must not share the parent's block. */
static void atfork_child(void)
{
	if (app.helper_fork)
		return;
	pthread_mutex_init(&app.lock, NULL);
	if (app.blk)
		munmap(app.blk, sizeof(*app.blk));
	app.blk = NULL;
	free(app.hooks);
	app.hooks = NULL;
	app.nr = app.cap = 0;
	app.checkpointing = false;
}

/* Creates the block and the control thread once; called with the lock held. */
static int app_start(void)
{
	size_t len = (sizeof(struct app_block) + 4095) & ~(size_t)4095;
	struct app_block *b;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t th;
	int fd, r;

	if (app.blk)
		return 0;
	if (!app.atfork_set) {
		r = pthread_atfork(NULL, NULL, atfork_child);
		if (r)
			return -r;
		app.atfork_set = true;
	}
	fd = memfd_create(APP_BLOCK_NAME, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len)) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Only the mapping stays: an fd would be a second way to the same memfd for the engine to restore. */
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = b == MAP_FAILED ? -errno : 0;
	close(fd);
	if (r)
		return r;
	b->magic = APP_BLOCK_MAGIC;
	b->version = APP_BLOCK_VERSION;
	b->size = sizeof(*b);
	b->time_limit_ms = APP_DEFAULT_LIMIT_MS;

	/* Signals are for the application's threads, never for ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = -pthread_create(&th, &attr, control_thread, b);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		munmap(b, len);
		return r;
	}
	pthread_setname_np(th, "snap-app");
	while (!app_load((uint32_t *)&b->ctl_tid))
		futex_wait((uint32_t *)&b->ctl_tid, 0, NULL);
	app.blk = b;
	return 0;
}

int snap_app_register(snap_app_fn before_checkpoint, snap_app_fn after_restore, void *opaque)
{
	int r;

	pthread_mutex_lock(&app.lock);
	r = app_start();
	if (!r && app.nr == app.cap) {
		size_t cap = app.cap ? app.cap * 2 : 8;
		struct app_hook *n = realloc(app.hooks, cap * sizeof(*n));

		if (n) {
			app.hooks = n;
			app.cap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (!r)
		app.hooks[app.nr++] = (struct app_hook){ before_checkpoint, after_restore, opaque };
	pthread_mutex_unlock(&app.lock);
	return r;
}

int snap_app_set_time_limit(unsigned ms)
{
	int r;

	if (!ms)
		return -EINVAL;
	pthread_mutex_lock(&app.lock);
	r = app_start();
	if (!r)
		app_store(&app.blk->time_limit_ms, ms);
	pthread_mutex_unlock(&app.lock);
	return r;
}

unsigned snap_app_restore_count(void)
{
	struct app_block *b = app.blk;

	return b ? app_load(&b->generation) : 0;
}

/*
 * The grandchild of snap_app_checkpoint(): not in the tree it dumps (its
 * parent is gone, so it belongs to the nearest subreaper or init). It
 * reports through the block, whose MAP_SHARED mapping it inherited.
 */
static __attribute__((noreturn)) void helper_main(struct app_block *b, pid_t target, const char *dir, unsigned flags)
{
	struct snap_dump_opts o = { .size = sizeof(o) };
	struct timespec second = { 1, 0 };
	snap_ctx *ctx = NULL;
	int r;

	/* Nothing of the original's but the block: its fds must not look shared with us. */
	syscall(SYS_close_range, 3, ~0u, 0);
	while (app_load(&b->self) == APP_SELF_ARMING) {
		futex_wait(&b->self, APP_SELF_ARMING, &second);
		if (kill(target, 0) && errno == ESRCH)
			_exit(1);
	}
	o.pid = target;
	o.images_dir = dir;
	o.flags = flags | SNAP_DUMP_LEAVE_RUNNING;
	r = snap_ctx_new(&ctx);
	if (!r)
		r = snap_dump(ctx, &o);
	if (r) {
		snprintf(b->self_msg, sizeof(b->self_msg), "%s", ctx ? snap_error(ctx) : "out of memory");
		b->self_err = r;
	}
	app_store(&b->self, r ? APP_SELF_FAILED : APP_SELF_DONE);
	app_futex_wake(&b->self);
	_exit(0);
}

static int fail(char *errbuf, size_t errlen, int err, const char *msg)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", msg);
	return err;
}

int snap_app_checkpoint(const char *images_dir, unsigned flags, int *ret_outcome, char *errbuf, size_t errlen)
{
	struct app_block *b;
	pid_t self = getpid(), child;
	uint32_t s;
	int status, r, sub = 0;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!images_dir || !ret_outcome)
		return fail(errbuf, errlen, -EINVAL, "snap_app_checkpoint: no images directory or outcome given");
	if (!prctl(PR_GET_CHILD_SUBREAPER, &sub) && sub)
		return fail(errbuf, errlen, -EOPNOTSUPP,
			    "this process is a child subreaper: the dumping helper would stay in its tree");
	pthread_mutex_lock(&app.lock);
	r = app_start();
	b = app.blk;
	if (!r && gettid() == b->ctl_tid)
		r = fail(errbuf, errlen, -EDEADLK, "snap_app_checkpoint: called from a checkpoint callback");
	else if (!r && app.checkpointing)
		r = fail(errbuf, errlen, -EBUSY, "snap_app_checkpoint: another thread is checkpointing");
	if (r) {
		pthread_mutex_unlock(&app.lock);
		if (errbuf && errlen && !*errbuf)
			fail(errbuf, errlen, r, "snap_app_checkpoint: cannot start the control thread");
		return r;
	}
	app.checkpointing = true;
	b->self_err = 0;
	b->self_msg[0] = '\0';
	app_store(&b->self, APP_SELF_ARMING);
	app.helper_fork = true;
	child = fork();
	if (child == 0) {
		pid_t g = fork();

		if (g)
			_exit(g < 0 ? 1 : 0);
		helper_main(b, self, images_dir, flags);
	}
	app.helper_fork = false;
	pthread_mutex_unlock(&app.lock);
	r = child < 0 ? -errno : 0;
	/* Reaped before the dump starts, so that it is not part of the tree. */
	while (!r && waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			r = -errno;
	if (!r && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		r = -ECHILD;
	if (r) {
		pthread_mutex_lock(&app.lock);
		app_store(&b->self, APP_SELF_NONE);
		app.checkpointing = false;
		pthread_mutex_unlock(&app.lock);
		return fail(errbuf, errlen, r, "snap_app_checkpoint: cannot start the dumping helper");
	}
	app_store(&b->self, APP_SELF_PENDING);
	app_futex_wake(&b->self);
	/* Frozen here by the dump: in a restored copy the engine has turned PENDING into RESTORED. */
	while ((s = app_load(&b->self)) == APP_SELF_PENDING)
		futex_wait(&b->self, APP_SELF_PENDING, NULL);
	r = s == APP_SELF_FAILED ? (b->self_err < 0 ? b->self_err : -EIO) : 0;
	if (r)
		fail(errbuf, errlen, r, b->self_msg);
	*ret_outcome = s == APP_SELF_RESTORED ? SNAP_APP_RESTORED : SNAP_APP_ORIGINAL;
	pthread_mutex_lock(&app.lock);
	app_store(&b->self, APP_SELF_NONE);
	app.checkpointing = false;
	pthread_mutex_unlock(&app.lock);
	return r;
}
