/* aarch64 pointer authentication: a thread's keys and enabled-key set, dumped and put back through ptrace. */
#include <elf.h>
#include <errno.h>
#include <linux/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "backend.h"

#define PAC_KEY_BITS (PR_PAC_APIAKEY | PR_PAC_APIBKEY | PR_PAC_APDAKEY | PR_PAC_APDBKEY)

_Static_assert(sizeof(((struct aarch64_pac *)0)->address_keys) == 4 * 16, "user_pac_address_keys");
_Static_assert(sizeof(((struct aarch64_pac *)0)->generic_key) == 16, "user_pac_generic_keys");

/*
 * Every process gets random keys at exec and a fork inherits them, so a
 * restored process starts with the engine's keys: return addresses the
 * thread signed before the dump (pac-ret code keeps them on its stack)
 * would fail to authenticate. The kernel shows the keys only where the
 * CPU has the feature, and only to a tracer (CONFIG_CHECKPOINT_RESTORE).
 */
int pac_get(struct snap_ctx *ctx, pid_t tid, struct aarch64_pac *pac)
{
	unsigned long hwcap = getauxval(AT_HWCAP);
	int r;

	memset(pac, 0, sizeof(*pac));
	if (hwcap & HWCAP_PACA) {
		r = aarch64_get_regset(tid, NT_ARM_PACA_KEYS, pac->address_keys, sizeof(pac->address_keys));
		if (r)
			return snap_fail(ctx, r, "tid %d: cannot read the pointer-authentication address keys: %s", tid,
					 strerror(-r));
		/* A thread may have turned keys off (PR_PAC_SET_ENABLED_KEYS): its code then never signed with them. */
		r = aarch64_get_regset(tid, NT_ARM_PAC_ENABLED_KEYS, &pac->enabled_keys, sizeof(pac->enabled_keys));
		if (r)
			return snap_fail(ctx, r,
					 "tid %d: cannot read which pointer-authentication keys are enabled: %s", tid,
					 strerror(-r));
		pac->has_address = true;
	}
	if (hwcap & HWCAP_PACG) {
		r = aarch64_get_regset(tid, NT_ARM_PACG_KEYS, pac->generic_key, sizeof(pac->generic_key));
		if (r)
			return snap_fail(ctx, r, "tid %d: cannot read the pointer-authentication generic key: %s", tid,
					 strerror(-r));
		pac->has_generic = true;
	}
	return 0;
}

/*
 * The kernel loads a stopped thread's keys into the CPU when it next
 * switches to it, so this takes effect before the thread runs again.
 */
int pac_set(struct snap_ctx *ctx, pid_t tid, const struct aarch64_pac *pac)
{
	int r;

	if (pac->has_address) {
		r = aarch64_set_regset(tid, NT_ARM_PACA_KEYS, pac->address_keys, sizeof(pac->address_keys));
		if (r)
			return snap_fail(ctx, r, "tid %d: cannot write the pointer-authentication address keys: %s",
					 tid, strerror(-r));
		r = aarch64_set_regset(tid, NT_ARM_PAC_ENABLED_KEYS, &pac->enabled_keys, sizeof(pac->enabled_keys));
		if (r)
			return snap_fail(ctx, r,
					 "tid %d: cannot set the enabled pointer-authentication keys to %#llx: %s", tid,
					 (unsigned long long)pac->enabled_keys, strerror(-r));
	}
	if (pac->has_generic) {
		r = aarch64_set_regset(tid, NT_ARM_PACG_KEYS, pac->generic_key, sizeof(pac->generic_key));
		if (r)
			return snap_fail(ctx, r, "tid %d: cannot write the pointer-authentication generic key: %s", tid,
					 strerror(-r));
	}
	return 0;
}

static uint8_t *dup_bytes(const void *src, size_t len)
{
	uint8_t *p = malloc(len);

	if (p)
		memcpy(p, src, len);
	return p;
}

int pac_to_image(struct snap_ctx *ctx, const struct aarch64_pac *pac, Aarch64Thread *a)
{
	if (pac->has_address) {
		a->pac_address_keys.data = dup_bytes(pac->address_keys, sizeof(pac->address_keys));
		if (!a->pac_address_keys.data)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		a->pac_address_keys.len = sizeof(pac->address_keys);
		a->has_pac_address_keys = 1;
		a->pac_enabled_keys = pac->enabled_keys;
		a->has_pac_enabled_keys = 1;
	}
	if (pac->has_generic) {
		a->pac_generic_key.data = dup_bytes(pac->generic_key, sizeof(pac->generic_key));
		if (!a->pac_generic_key.data)
			return snap_fail(ctx, -ENOMEM, "out of memory");
		a->pac_generic_key.len = sizeof(pac->generic_key);
		a->has_pac_generic_key = 1;
	}
	return 0;
}

void pac_image_free(Aarch64Thread *a)
{
	free(a->pac_address_keys.data);
	free(a->pac_generic_key.data);
	a->pac_address_keys.data = a->pac_generic_key.data = NULL;
}

/* The image must have passed pac_validate(). */
void pac_from_image(const Aarch64Thread *a, struct aarch64_pac *pac)
{
	memset(pac, 0, sizeof(*pac));
	if (a->has_pac_address_keys) {
		memcpy(pac->address_keys, a->pac_address_keys.data, sizeof(pac->address_keys));
		pac->enabled_keys = a->pac_enabled_keys;
		pac->has_address = true;
	}
	if (a->has_pac_generic_key) {
		memcpy(pac->generic_key, a->pac_generic_key.data, sizeof(pac->generic_key));
		pac->has_generic = true;
	}
}

/*
 * Keys without the feature here: the authentication instructions of
 * pac-ret code are no-ops on such a CPU, so the signature bits the dumped
 * thread put into its saved return addresses would stay and break them.
 * An image without keys is fine anywhere: nothing in it was signed.
 */
int pac_validate(struct snap_ctx *ctx, int tid, const Aarch64Thread *a)
{
	unsigned long hwcap = getauxval(AT_HWCAP);
	struct aarch64_pac pac;

	if (a->has_pac_address_keys) {
		if (a->pac_address_keys.len != sizeof(pac.address_keys) || !a->pac_address_keys.data)
			return snap_fail(ctx, -EINVAL,
					 "tid %d: pointer-authentication address keys of %zu bytes instead of %zu", tid,
					 a->pac_address_keys.len, sizeof(pac.address_keys));
		if (!a->has_pac_enabled_keys || (a->pac_enabled_keys & ~(uint64_t)PAC_KEY_BITS))
			return snap_fail(ctx, -EINVAL, "tid %d: no valid set of enabled pointer-authentication keys",
					 tid);
		if (!(hwcap & HWCAP_PACA))
			return snap_fail(ctx, -EOPNOTSUPP,
					 "tid %d: the image holds pointer-authentication keys, but this CPU has no "
					 "address authentication",
					 tid);
	} else if (a->has_pac_enabled_keys) {
		return snap_fail(ctx, -EINVAL, "tid %d: enabled pointer-authentication keys without the keys", tid);
	}
	if (a->has_pac_generic_key) {
		if (a->pac_generic_key.len != sizeof(pac.generic_key) || !a->pac_generic_key.data)
			return snap_fail(ctx, -EINVAL,
					 "tid %d: pointer-authentication generic key of %zu bytes instead of %zu", tid,
					 a->pac_generic_key.len, sizeof(pac.generic_key));
		if (!(hwcap & HWCAP_PACG))
			return snap_fail(ctx, -EOPNOTSUPP,
					 "tid %d: the image holds a generic authentication key, but this CPU has no "
					 "generic authentication",
					 tid);
	}
	return 0;
}
