/*
 * snap_app_checkpoint(): the process dumps itself into CTLDIR/img and
 * reports which copy it is; every restored copy logs bytes it reads from
 * getrandom(), from the vDSO's getrandom and from two user-space PRNGs
 * (one reseeded by an after-restore callback, one not) to CTLDIR/unique.log,
 * so that a test can compare copies.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "snap/app.h"
#include "vdso-getrandom.h"
#include "wl.h"

static uint64_t prng_reseeded, prng_stale;
static char events[64];
static unsigned nevents;
static struct vgetrandom vgr;

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t seed(void)
{
	uint64_t v = 0;

	while (!v)
		if (getrandom(&v, sizeof(v), 0) != sizeof(v))
			wl_die("getrandom failed");
	return v;
}

static int before(void *opaque, enum snap_app_event ev)
{
	(void)opaque;
	if (nevents < sizeof(events) - 1)
		events[nevents++] = ev == SNAP_APP_BEFORE_CHECKPOINT ? 'b' : '?';
	return 0;
}

/* What an application does after a restore: new per-instance randomness. */
static int after(void *opaque, enum snap_app_event ev)
{
	(void)opaque;
	if (nevents < sizeof(events) - 1)
		events[nevents++] = ev == SNAP_APP_AFTER_RESTORE ? 'r' : ev == SNAP_APP_AFTER_CONTINUE ? 'c' : '?';
	if (ev == SNAP_APP_AFTER_RESTORE)
		prng_reseeded = seed();
	return 0;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* Whether the area holding @addr is droppable ("dp" in its VmFlags), as the vDSO asked for it. */
static bool droppable(const void *addr)
{
	char line[512];
	bool in = false, dp = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (unsigned long)addr >= lo && (unsigned long)addr < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			dp = strstr(line, " dp") != NULL;
	}
	if (f)
		fclose(f);
	return dp;
}

static void log_unique(void)
{
	uint8_t sys[16], vd[16];
	char line[256], hs[33], hv[33] = "none";
	char path[4096];
	int fd, n;

	if (getrandom(sys, sizeof(sys), 0) != sizeof(sys))
		wl_fail("getrandom failed after restore");
	hex(hs, sys, sizeof(sys));
	if (vgr.fn) {
		wl_expect(droppable(vgr.state), "the vDSO getrandom state at %p is no longer droppable", vgr.state);
		if (vgetrandom_read(&vgr, vd, sizeof(vd)))
			wl_fail("the vDSO getrandom failed after restore");
		hex(hv, vd, sizeof(vd));
	}
	n = snprintf(line, sizeof(line), "%s %s %016llx %016llx\n", hs, hv,
		     (unsigned long long)xorshift(&prng_reseeded), (unsigned long long)xorshift(&prng_stale));
	wl_path(path, "unique.log");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		wl_fail("cannot append to %s", path);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	char dir[4096], err[1024];
	uint8_t warm[16];
	int outcome = 0, r;

	wl_init(argc, argv, 0, "");
	prng_reseeded = prng_stale = seed();
	/* Seeded now, so that its state (key and generation) is in the image. */
	if (!vgetrandom_init(&vgr) && vgetrandom_read(&vgr, warm, sizeof(warm)))
		wl_die("the vDSO getrandom failed");
	if (snap_app_register(before, after, NULL))
		wl_die("snap_app_register failed");
	wl_path(dir, "img");
	r = snap_app_checkpoint(dir, 0, &outcome, err, sizeof(err));
	if (r)
		wl_die("snap_app_checkpoint: %s (%d)", err, r);
	if (outcome == SNAP_APP_ORIGINAL) {
		wl_expect(snap_app_restore_count() == 0, "the original counts %u restores", snap_app_restore_count());
		wl_expect(!strcmp(events, "bc"), "the original saw events \"%s\", not \"bc\"", events);
		wl_ready();
		wl_wait_go();
		return wl_finish();
	}
	wl_expect(outcome == SNAP_APP_RESTORED, "snap_app_checkpoint returned outcome %d", outcome);
	wl_expect(snap_app_restore_count() == 1, "a restored copy counts %u restores", snap_app_restore_count());
	wl_expect(!strcmp(events, "br"), "a restored copy saw events \"%s\", not \"br\"", events);
	log_unique();
	return wl_finish();
}
