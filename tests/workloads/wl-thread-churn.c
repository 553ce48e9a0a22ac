/*
 * Workload: a thread that creates and ends threads without pause, so the
 * dump happens while threads come and go; afterwards the churn goes on and
 * every created thread is accounted for.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "wl.h"

static atomic_ulong created, finished;
static atomic_int stop;

static void *short_lived(void *arg)
{
	(void)arg;
	finished++;
	return NULL;
}

static void *churner(void *arg)
{
	(void)arg;
	while (!stop) {
		pthread_t t[4];
		int n = 0;

		/* Several at once, so some are always being born or dying. */
		for (; n < 4; n++) {
			if (pthread_create(&t[n], NULL, short_lived, NULL))
				break;
			created++;
		}
		while (n--)
			pthread_join(t[n], NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec settle = { 0, 50 * 1000 * 1000 };
	unsigned long before;
	pthread_t c;

	wl_init(argc, argv, 0, "");
	if (pthread_create(&c, NULL, churner, NULL))
		wl_die("pthread_create failed");
	while (created < 100)
		nanosleep(&settle, NULL);
	wl_ready();
	wl_wait_go();

	before = finished;
	nanosleep(&settle, NULL);
	wl_expect(finished > before, "no thread came and went after go (%lu finished)", before);
	stop = 1;
	pthread_join(c, NULL);
	wl_expect(created == finished, "%lu threads created, %lu finished", (unsigned long)created,
		  (unsigned long)finished);
	return wl_finish();
}
