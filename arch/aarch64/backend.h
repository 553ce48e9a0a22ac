/* Helpers shared by the files of the aarch64 backend; nothing outside arch/aarch64 includes this. */
#ifndef SNAP_AARCH64_BACKEND_H
#define SNAP_AARCH64_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch.h"

/* struct user_fpsimd_state: vregs[32], fpsr, fpcr, 8 bytes of padding. */
#define FPSIMD_SIZE 528u

/* Reads exactly @len bytes of regset @type; -EIO if the kernel gives another size. */
int aarch64_get_regset(pid_t tid, unsigned type, void *buf, size_t len);
int aarch64_set_regset(pid_t tid, unsigned type, const void *buf, size_t len);

/*
 * SVE (sve.c). The state is NT_ARM_SVE exactly as the kernel gives it: a
 * header with the vector length and flags, then either the FP/SIMD
 * registers or the full Z, P and FFR registers. It goes back through the
 * same regset, which also sets the vector length.
 */
/* *ret is NULL (and 0 returned) where the CPU has no SVE; else malloc'd. */
int sve_get(struct snap_ctx *ctx, pid_t tid, uint8_t **ret, size_t *ret_len);
int sve_set(struct snap_ctx *ctx, pid_t tid, const uint8_t *buf, size_t len);
/* Checks an image's SVE bytes against this CPU, before anything is created. */
int sve_validate(struct snap_ctx *ctx, int tid, const uint8_t *buf, size_t len);

/* Pointer authentication (pac.c): keys and which of them are enabled. */
int pac_get(struct snap_ctx *ctx, pid_t tid, struct aarch64_pac *pac);
int pac_set(struct snap_ctx *ctx, pid_t tid, const struct aarch64_pac *pac);
/* Image form: pac_to_image fills @a (allocating), pac_from_image reads it back. */
int pac_to_image(struct snap_ctx *ctx, const struct aarch64_pac *pac, Aarch64Thread *a);
void pac_image_free(Aarch64Thread *a);
void pac_from_image(const Aarch64Thread *a, struct aarch64_pac *pac);
int pac_validate(struct snap_ctx *ctx, int tid, const Aarch64Thread *a);

/* Tagged address ABI (tagged-addr.c): NT_ARM_TAGGED_ADDR_CTRL, 0 where the kernel has none. */
int tagged_addr_get(struct snap_ctx *ctx, pid_t tid, uint64_t *ret);
int tagged_addr_set(struct snap_ctx *ctx, pid_t tid, uint64_t ctrl);
int tagged_addr_validate(struct snap_ctx *ctx, int tid, uint64_t ctrl);

#endif
