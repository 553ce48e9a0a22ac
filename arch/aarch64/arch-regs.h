/* aarch64 register set as ptrace regsets give it: NT_PRSTATUS plus the syscall number and TLS registers. */
#ifndef SNAP_ARCH_REGS_H
#define SNAP_ARCH_REGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/user.h>

/*
 * Pointer-authentication state of a thread (arch/aarch64/pac.c). Signed
 * return addresses on its stack verify only under the same keys.
 */
struct aarch64_pac {
	bool has_address;	  /* the CPU has address authentication (HWCAP_PACA) */
	bool has_generic;	  /* the CPU has generic authentication (HWCAP_PACG) */
	uint8_t address_keys[64]; /* struct user_pac_address_keys: APIA, APIB, APDA, APDB */
	uint8_t generic_key[16];  /* struct user_pac_generic_keys: APGA */
	uint64_t enabled_keys;	  /* PR_PAC_AP*KEY bits, with has_address */
};

struct arch_regs {
	struct user_regs_struct r; /* NT_PRSTATUS: x0..x30, sp, pc, pstate */
	/*
	 * NT_ARM_SYSTEM_CALL: the kernel's pt_regs->syscallno. Its restart
	 * logic (do_signal) only runs while this is >= 0, so it is to arm64
	 * what orig_rax is to x86_64: -1 means "not in a system call".
	 */
	int32_t syscallno;
	/* Only arch_get_thread and arch_set_thread touch these: injection leaves them alone. */
	uint64_t tls; /* NT_ARM_TLS: tpidr_el0 */
	struct aarch64_pac pac;
	uint64_t tagged_addr_ctrl; /* NT_ARM_TAGGED_ADDR_CTRL: PR_TAGGED_ADDR_ENABLE */
};

/*
 * True for x0 holding one of the kernel's internal restart codes
 * (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK;
 * -515 is -ENOIOCTLCMD, never a restart).
 */
static inline int aarch64_is_restart(int64_t x0)
{
	return x0 <= -512 && x0 >= -516 && x0 != -515;
}

#endif
