/*
 * The demo's "serverless function": a slow initialization (a prime sieve
 * and a table built from it), then it answers requests. Requests and
 * answers are files, so the demo needs nothing but regular files:
 * DIR/req-N asks for the number of primes below N, DIR/ans-N gets it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LIMIT 150000000u

int main(int argc, char **argv)
{
	uint8_t *composite;
	uint32_t *prefix;
	char path[4096], tmp[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: demo-app DIR\n");
		return 2;
	}
	/* Initialization: what every cold start pays. */
	composite = calloc(LIMIT + 1, 1);
	prefix = calloc(LIMIT / 1024 + 1, sizeof(*prefix));
	if (!composite || !prefix)
		return 1;
	for (uint64_t i = 2; i * i <= LIMIT; i++)
		if (!composite[i])
			for (uint64_t j = i * i; j <= LIMIT; j += i)
				composite[j] = 1;
	for (uint32_t i = 2, count = 0; i <= LIMIT; i++) {
		count += !composite[i];
		if (i % 1024 == 0)
			prefix[i / 1024] = count;
	}
	snprintf(path, sizeof(path), "%s/ready", argv[1]);
	fclose(fopen(path, "w"));

	/* Serving: poll for requests. */
	for (;;) {
		DIR *d = opendir(argv[1]);
		struct dirent *e;
		struct timespec ts = { 0, 200000 };

		while (d && (e = readdir(d))) {
			unsigned long n;
			uint32_t count;
			FILE *f;

			if (strncmp(e->d_name, "req-", 4))
				continue;
			n = strtoul(e->d_name + 4, NULL, 10);
			if (n > LIMIT)
				n = LIMIT;
			count = prefix[n / 1024];
			for (unsigned long i = n / 1024 * 1024 + 1; i < n; i++)
				count += i >= 2 && !composite[i];
			snprintf(tmp, sizeof(tmp), "%s/.ans-%lu", argv[1], n);
			snprintf(path, sizeof(path), "%s/ans-%lu", argv[1], n);
			f = fopen(tmp, "w");
			if (f) {
				fprintf(f, "%u\n", count);
				fclose(f);
				rename(tmp, path);
			}
			snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
			unlink(path);
		}
		if (d)
			closedir(d);
		nanosleep(&ts, NULL);
	}
}
