/*
 * Workload: many threads in mixed states across the dump — spinning, in a
 * futex wait, in nanosleep (whose remaining time must be kept), in poll,
 * in a raw FUTEX_WAIT with a timeout — each with its own TID, TLS value,
 * name, signal mask and (some) sigaltstack, checked by the thread itself.
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

/*
 * Usage: wl-threads CTLDIR [NTHREADS]   (default 64)
 * Readiness comes only after every sleeper has slept PRE_DUMP_SLEEP_S: a
 * sleeper restarted with its full time instead of what was left would then
 * report more remaining time than it can have.
 */
#define MAX_THREADS	 256
#define LONG_SLEEP_S	 1000
#define PRE_DUMP_SLEEP_S 1

enum kind { SPIN, CONDWAIT, SLEEP, POLL, FUTEX, READ, EPOLL, ACCEPT, NR_KINDS };
static const char *const kind_names[] = { "spin", "condwait", "sleep", "poll", "futex", "read", "epoll", "accept" };

/*
 * What the READ, EPOLL and ACCEPT threads block on: a pipe nobody writes
 * to, an epoll set over a second such pipe, and a unix listener nobody
 * connects to — until go. A call interrupted by the freeze may come
 * back with EINTR (epoll_wait does): like any program, they call again.
 */
static int wake_pipe[2] = { -1, -1 };
static int epfd = -1, epoll_pipe[2] = { -1, -1 }, listener = -1;
static struct sockaddr_un listen_addr = { .sun_family = AF_UNIX };

struct thread {
	pthread_t handle;
	int index;
	enum kind kind;
	pid_t tid;
	uint64_t tls_expect;
	char name[16];
	sigset_t mask;
	void *altstack; /* NULL: none */
	char failure[256];
	struct timespec rem;
	atomic_ulong spins;
	atomic_int done;
};

static struct thread threads[MAX_THREADS];
static int nr_threads = 64;
static atomic_int in_position;
static atomic_int stop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static _Atomic uint32_t futex_word;
static __thread uint64_t tls_value;

static void on_usr1(int sig)
{
	(void)sig;
}

static void fail_thread(struct thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_thread(struct thread *t, const char *fmt, ...)
{
	va_list ap;

	if (t->failure[0])
		return;
	va_start(ap, fmt);
	vsnprintf(t->failure, sizeof(t->failure), fmt, ap);
	va_end(ap);
}

/* Everything a thread knows about itself, checked by itself. */
static void check_self(struct thread *t)
{
	char name[16] = "";
	sigset_t mask;
	stack_t ss;

	if ((pid_t)syscall(SYS_gettid) != t->tid)
		fail_thread(t, "tid is %d, was %d", (int)syscall(SYS_gettid), (int)t->tid);
	if (tls_value != t->tls_expect)
		fail_thread(t, "TLS value %#llx, expected %#llx", (unsigned long long)tls_value,
			    (unsigned long long)t->tls_expect);
	pthread_getname_np(pthread_self(), name, sizeof(name));
	if (strcmp(name, t->name))
		fail_thread(t, "name \"%s\", expected \"%s\"", name, t->name);
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	for (int s = 1; s < 65; s++)
		if (s != SIGKILL && s != SIGSTOP && sigismember(&mask, s) != sigismember(&t->mask, s))
			fail_thread(t, "signal %d is %sblocked", s, sigismember(&mask, s) ? "" : "not ");
	sigaltstack(NULL, &ss);
	if (t->altstack ? (ss.ss_sp != t->altstack || ss.ss_flags) : !(ss.ss_flags & SS_DISABLE))
		fail_thread(t, "sigaltstack %p/%d, expected %p", ss.ss_sp, ss.ss_flags, t->altstack);
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	struct timespec sleep_for = { LONG_SLEEP_S, 0 };

	t->tid = (pid_t)syscall(SYS_gettid);
	tls_value = t->tls_expect;
	pthread_setname_np(pthread_self(), t->name);
	pthread_sigmask(SIG_SETMASK, &t->mask, NULL);
	if (t->altstack) {
		stack_t ss = { .ss_sp = t->altstack, .ss_size = 64 << 10 };

		sigaltstack(&ss, NULL);
	}
	in_position++;

	switch (t->kind) {
	case SPIN:
		while (!stop) {
			t->spins++;
			if (tls_value != t->tls_expect)
				fail_thread(t, "TLS value changed while spinning");
		}
		break;
	case CONDWAIT:
		pthread_mutex_lock(&lock);
		while (!stop)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
		break;
	case SLEEP:
		/* Woken by SIGUSR1 after go; what is left must account for the sleep before the dump. */
		if (nanosleep(&sleep_for, &t->rem) == 0)
			fail_thread(t, "slept %d s without being woken", LONG_SLEEP_S);
		else if (errno != EINTR)
			fail_thread(t, "nanosleep failed: %m");
		else if (LONG_SLEEP_S - (t->rem.tv_sec + t->rem.tv_nsec / 1e9) < PRE_DUMP_SLEEP_S)
			fail_thread(t, "nanosleep had %lld.%09ld s left of %d: the time slept before the dump was lost",
				    (long long)t->rem.tv_sec, t->rem.tv_nsec, LONG_SLEEP_S);
		break;
	case POLL:
		if (poll(NULL, 0, -1) != -1 || errno != EINTR)
			fail_thread(t, "poll returned other than EINTR: %m");
		break;
	case READ: {
		char c;
		ssize_t n;

		while ((n = read(wake_pipe[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (n != 1)
			fail_thread(t, "read on the pipe returned %zd: %m", n);
		break;
	}
	case EPOLL: {
		struct epoll_event ev;
		int n;

		while ((n = epoll_wait(epfd, &ev, 1, -1)) < 0 && errno == EINTR)
			;
		if (n != 1 || ev.data.u64 != 0xe9011)
			fail_thread(t, "epoll_wait returned %d (data %#llx): %m", n, (unsigned long long)ev.data.u64);
		break;
	}
	case ACCEPT: {
		int c;

		while ((c = accept(listener, NULL, NULL)) < 0 && errno == EINTR)
			;
		if (c < 0)
			fail_thread(t, "accept failed: %m");
		else
			close(c);
		break;
	}
	case FUTEX: {
		struct timespec rel = { LONG_SLEEP_S, 0 };

		while (!stop) {
			long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &rel, NULL, 0);

			if (r && errno != EAGAIN && errno != EINTR) {
				fail_thread(t, "FUTEX_WAIT failed: %m");
				break;
			}
		}
		break;
	}
	default:
		break;
	}
	check_self(t);
	t->done = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART: sleepers see EINTR */
	struct timespec pause_before_ready = { PRE_DUMP_SLEEP_S, 100 * 1000 * 1000 };

	wl_init(argc, argv, 0, "[NTHREADS]");
	if (argc > 2)
		nr_threads = atoi(argv[2]);
	if (nr_threads < 1 || nr_threads > MAX_THREADS)
		wl_die("NTHREADS must be 1..%d", MAX_THREADS);
	sigaction(SIGUSR1, &sa, NULL);
	{
		/* Level-triggered: once the byte is there, every waiter sees it. */
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xe9011 };

		snprintf(listen_addr.sun_path, sizeof(listen_addr.sun_path), "%s/listener", wl_ctldir);
		if (pipe(wake_pipe) || pipe(epoll_pipe) || (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    epoll_ctl(epfd, EPOLL_CTL_ADD, epoll_pipe[0], &ev) ||
		    (listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    bind(listener, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) || listen(listener, 64))
			wl_die("cannot make the objects threads block on: %m");
	}

	for (int i = 0; i < nr_threads; i++) {
		struct thread *t = &threads[i];
		pthread_attr_t attr;

		t->index = i;
		t->kind = (enum kind)(i % NR_KINDS);
		t->tls_expect = wl_word(0x7e57, (uint64_t)i);
		snprintf(t->name, sizeof(t->name), "wlt-%s-%d", kind_names[t->kind], i);
		t->name[15] = '\0';
		sigemptyset(&t->mask);
		sigaddset(&t->mask, SIGRTMIN + 1 + i % 8);
		if (i % 3 == 0)
			sigaddset(&t->mask, SIGHUP);
		if (i % 4 == 0 && !(t->altstack = malloc(64 << 10)))
			wl_die("out of memory");
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 256 << 10);
		if (pthread_create(&t->handle, &attr, thread_main, t))
			wl_die("pthread_create %d failed", i);
		pthread_attr_destroy(&attr);
	}
	while (in_position < nr_threads) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	nanosleep(&pause_before_ready, NULL);
	wl_ready();
	wl_wait_go();

	stop = 1;
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	futex_word = 1;
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, MAX_THREADS, NULL, NULL, 0);
	/* One byte for the epoll waiters; one byte and one connection for each reader and acceptor. */
	if (write(epoll_pipe[1], "e", 1) != 1)
		wl_fail("cannot write to the epoll pipe: %m");
	for (int i = 0; i < nr_threads; i++) {
		int c;

		switch (threads[i].kind) {
		case READ:
			if (write(wake_pipe[1], "x", 1) != 1)
				wl_fail("cannot write to the pipe: %m");
			break;
		case ACCEPT:
			c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (c < 0 || connect(c, (struct sockaddr *)&listen_addr, sizeof(listen_addr)))
				wl_fail("cannot connect to the listener: %m");
			if (c >= 0)
				close(c);
			break;
		default:
			break;
		}
	}
	/* Again until they are out: a signal that lands just before the call is restarted is not enough. */
	for (int i = 0; i < nr_threads; i++) {
		while ((threads[i].kind == SLEEP || threads[i].kind == POLL) && !threads[i].done) {
			struct timespec ms = { 0, 5000000 };

			pthread_kill(threads[i].handle, SIGUSR1);
			nanosleep(&ms, NULL);
		}
	}
	for (int i = 0; i < nr_threads; i++) {
		pthread_join(threads[i].handle, NULL);
		wl_expect(!threads[i].failure[0], "thread %d (%s, tid %d): %s", i, kind_names[threads[i].kind],
			  (int)threads[i].tid, threads[i].failure);
		if (threads[i].kind == SPIN)
			wl_expect(threads[i].spins > 0, "thread %d never spun", i);
	}
	return wl_finish();
}
