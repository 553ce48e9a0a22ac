/*
 * libsnap-app callbacks around an external dump: three registered pairs
 * log their events in order, a spinner thread checks that no restored
 * copy runs it before the after-restore callbacks are done, and modes
 * make a before-checkpoint callback hang or refuse, or hold a memfd both
 * mapped and open (refused by the engine), or make an after-restore
 * callback outlast its time limit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "snap/app.h"
#include "wl.h"

#define NR_HOOKS   3
#define MAX_ROUNDS 4 /* dumps a copy may have been through */

static const char *mode = "plain";
static char before_log[MAX_ROUNDS * NR_HOOKS + 1];
static int after_event[MAX_ROUNDS * NR_HOOKS];
static unsigned after_gen[MAX_ROUNDS * NR_HOOKS];
static _Atomic unsigned befores, afters;
static _Atomic uint64_t spins;
/* Restores whose after-restore callbacks have finished; the spinner compares it with the restore count. */
static _Atomic unsigned callbacks_done_gen;
static _Atomic unsigned early_runs; /* spinner iterations in a restored copy before the callbacks finished */
static uint64_t spins_cb_start, spins_cb_end;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int before(void *opaque, enum snap_app_event ev)
{
	int i = (int)(long)opaque;

	if (ev != SNAP_APP_BEFORE_CHECKPOINT)
		wl_fail("before-checkpoint callback %d called with event %d", i, ev);
	if (befores < MAX_ROUNDS * NR_HOOKS)
		before_log[befores] = (char)('A' + i);
	befores++;
	if (i == 1 && !strcmp(mode, "hang"))
		while (!wl_go_exists())
			sleep_ms(1);
	if (i == 1 && !strcmp(mode, "refuse"))
		return 7;
	return 0;
}

static int after(void *opaque, enum snap_app_event ev)
{
	int i = (int)(long)opaque;
	unsigned n = afters;

	if (n < MAX_ROUNDS * NR_HOOKS) {
		after_event[n] = ev * 10 + i;
		after_gen[n] = snap_app_restore_count();
	}
	/* Past the time limit the engine lets the other threads go anyway. */
	if (i == 0 && ev == SNAP_APP_AFTER_RESTORE && !strcmp(mode, "slowafter"))
		while (!wl_go_exists())
			sleep_ms(1);
	if (i == 0) {
		/* The spinner must stay where the dump froze it while we run: 20 ms would show it moving. */
		spins_cb_start = atomic_load(&spins);
		sleep_ms(20);
		spins_cb_end = atomic_load(&spins);
	}
	if (i == NR_HOOKS - 1)
		atomic_store(&callbacks_done_gen, snap_app_restore_count());
	afters++;
	return 0;
}

static void *spinner(void *arg)
{
	(void)arg;
	for (;;) {
		if (snap_app_restore_count() != atomic_load(&callbacks_done_gen))
			early_runs++;
		atomic_fetch_add(&spins, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th;
	unsigned gen, nb, rounds;
	char want_log[sizeof(before_log)] = "";
	uint64_t s0;

	wl_init(argc, argv, 0, "[plain|hang|refuse|memfd|slowafter [DUMPS]]");
	if (argc > 2)
		mode = argv[2];
	for (long i = 0; i < NR_HOOKS; i++)
		if (snap_app_register(before, after, (void *)i))
			wl_die("snap_app_register failed");
	if (snap_app_set_time_limit(!strcmp(mode, "hang") || !strcmp(mode, "slowafter") ? 500 : 10000))
		wl_die("snap_app_set_time_limit failed");
	/* A memfd both mapped shared and open: the engine must refuse it (before any callback runs, it cannot). */
	if (!strcmp(mode, "memfd")) {
		int fd = memfd_create("wl-shared", MFD_CLOEXEC);

		if (fd < 0 || ftruncate(fd, 4096) ||
		    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED)
			wl_die("memfd: %m");
	}
	if (pthread_create(&th, NULL, spinner, NULL))
		wl_die("pthread_create failed");
	wl_ready();
	wl_wait_go();

	gen = snap_app_restore_count();
	nb = atomic_load(&befores);
	rounds = (nb + NR_HOOKS - 1) / NR_HOOKS;
	/* A hung or refusing callback was left running: its after-restore callbacks follow once it is out. */
	for (int i = 0; i < 10000 && nb && atomic_load(&afters) < rounds * NR_HOOKS; i++)
		sleep_ms(1);
	s0 = atomic_load(&spins);
	for (int i = 0; i < 10000 && atomic_load(&spins) == s0; i++)
		sleep_ms(1);
	wl_expect(atomic_load(&spins) > s0, "the spinner thread does not run");
	if (!nb) {
		wl_expect(gen == 0 && afters == 0, "no dump, yet %u after-restore callbacks ran (restores %u)",
			  (unsigned)afters, gen);
		return wl_finish();
	}
	if (!strcmp(mode, "memfd")) {
		/* Refused after the before-checkpoint callbacks ran: the original goes on as after any failed dump. */
		wl_expect(!strcmp(before_log, "ABC") && gen == 0, "memfd mode: befores \"%s\", restores %u", before_log,
			  gen);
	}
	/* The harness may say how many dumps (each followed by a restore) there were. */
	if (argc > 3)
		wl_expect(rounds == (unsigned)atoi(argv[3]) && gen == rounds,
			  "%u dumps ran the callbacks and the restore count is %u, expected %s of each", rounds, gen,
			  argv[3]);
	/* Every dump ran ABC; a refusal stops the before-checkpoint callbacks, a hung one is only late. */
	wl_expect(rounds <= MAX_ROUNDS, "%u dumps", rounds);
	for (unsigned k = 0; k < rounds && k < MAX_ROUNDS; k++)
		strcat(want_log, strcmp(mode, "refuse") ? "ABC" : "AB");
	wl_expect(!strcmp(before_log, want_log), "before-checkpoint callbacks ran as \"%s\" in mode %s, not %s",
		  before_log, mode, want_log);
	wl_expect(afters == rounds * NR_HOOKS, "%u after-restore callbacks ran, not %u", (unsigned)afters,
		  rounds * NR_HOOKS);
	/* Earlier rounds were dumps that killed the process, each followed by a restore; the last one is ours. */
	for (unsigned i = 0; i < rounds * NR_HOOKS && i < MAX_ROUNDS * NR_HOOKS; i++) {
		bool last = i / NR_HOOKS == rounds - 1;
		unsigned want_gen = last ? gen : i / NR_HOOKS + 1;
		int want = (want_gen ? SNAP_APP_AFTER_RESTORE : SNAP_APP_AFTER_CONTINUE) * 10 + (int)(i % NR_HOOKS);

		wl_expect(after_event[i] == want, "after-restore call %u was event/hook %d, expected %d", i,
			  after_event[i], want);
		wl_expect(after_gen[i] == want_gen, "after-restore call %u saw restore count %u, expected %u", i,
			  after_gen[i], want_gen);
	}
	if (gen && !strcmp(mode, "slowafter")) {
		wl_expect(early_runs > gen, "the spinner waited for after-restore callbacks past their time limit");
	} else if (gen) {
		wl_expect(!strcmp(mode, "plain"), "restored in mode %s", mode);
		/*
		 * One iteration per restore may compare a value it loaded before
		 * the freeze with one stored by the callbacks; a thread let go
		 * with the control thread makes it thousands.
		 */
		wl_expect(early_runs <= gen, "the spinner ran %u times before the after-restore callbacks were done",
			  (unsigned)early_runs);
		wl_expect(spins_cb_start == spins_cb_end,
			  "the spinner moved from %llu to %llu while an after-restore callback ran",
			  (unsigned long long)spins_cb_start, (unsigned long long)spins_cb_end);
	}
	return wl_finish();
}
