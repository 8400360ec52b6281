/*
 * The livemig guest runtime: what every guest program can use.
 * Bare metal, M-mode, RV64IMA + Zicsr + Zifencei, QEMU `virt` memory map (docs/guests.md).
 */
#ifndef RT_H
#define RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "rt-config.h"
#include "rt-info.h"

#define RT_PAGE_SIZE 4096ul
#define RT_MIB (1024ul * 1024ul)

/* Exit codes handed to sifive_test (0x3333 | code << 16); QEMU exits with them. */
#define RT_EXIT_FAIL 1
#define RT_EXIT_BADARGS 2
#define RT_EXIT_TRAP 3

/* ---- machine facts found at boot (rt_main fills these before main()) ---- */
struct rt_machine {
    uint64_t fdt_addr;      /* from a1 at entry */
    uint64_t fdt_size;      /* FDT header totalsize */
    uint64_t ram_base;      /* /memory@... reg */
    uint64_t ram_size;
    uint64_t timebase;      /* /cpus timebase-frequency (10 MHz on virt) */
    uint32_t ncpus;         /* /cpus/cpu@N nodes */
    const char *bootargs;   /* /chosen bootargs, "" if absent (points into the FDT) */
};
extern struct rt_machine rt_machine;
extern uint64_t rt_boot_regs[3];   /* hart 0's a0, a1, a2 at entry */
extern char __image_end[];

/* The guest's own code. Returns the exit code: 0 powers off with success. */
int main(void);
/* Called on harts 1..n-1 once woken by rt_start_secondaries(); weak default parks. */
void rt_secondary(uint64_t hartid);
/* Wakes harts 1..n-1 (n <= RT_MAX_HARTS) with an IPI. */
void rt_start_secondaries(uint32_t n);

/* ---- UART (NS16550A at 0x1000_0000, left in its reset state) ---- */
void rt_putc(char c);
void rt_puts(const char *s);
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_vprintf(const char *fmt, va_list ap);

/* ---- power (sifive_test at 0x0010_0000) ---- */
void rt_poweroff(void) __attribute__((noreturn));
void rt_fail(uint32_t code) __attribute__((noreturn));
void rt_reset(void) __attribute__((noreturn));
void rt_exit(int code) __attribute__((noreturn));
void rt_park(void) __attribute__((noreturn));

/* ---- CLINT (0x0200_0000): msip, mtimecmp, mtime ---- */
uint64_t rt_mtime(void);
void rt_set_mtimecmp(uint64_t hartid, uint64_t value);
uint64_t rt_get_mtimecmp(uint64_t hartid);
void rt_set_msip(uint64_t hartid, uint32_t value);
/* Arms a periodic machine timer interrupt on hart 0: every `period` ticks, starting one
 * period from now; `handler` runs from the trap vector. Enables mie.MTIE and mstatus.MIE. */
void rt_timer_start(uint64_t period, void (*handler)(void));

/* ---- traps ---- */
struct rt_frame {
    uint64_t x[32];        /* x[2] is the pre-trap sp */
    uint64_t mepc, mcause, mtval, pad;
};
/* A guest may install a hook; returning non-zero means "handled, resume at frame->mepc". */
extern int (*rt_trap_hook)(struct rt_frame *frame);
void rt_trap(struct rt_frame *frame);

/* ---- FDT and bootargs ---- */
int rt_fdt_parse(uint64_t fdt_addr, struct rt_machine *out);
/* Looks up `key` in a "k1=v1 k2=v2" string. Returns 1 and sets *value if present and a valid
 * number (decimal or 0x hex, optional K/M/G binary suffix), 0 if absent, -1 if malformed. */
int rt_bootarg_u64(const char *args, const char *key, uint64_t *value);
/* Same, but prints "<guest>: bad value for key=..." and fails with RT_EXIT_BADARGS on -1. */
uint64_t rt_arg_u64(const char *guest, const char *key, uint64_t fallback);
int rt_arg_present(const char *key);

/* ---- guest memory ranges (ab, dirty, idle) ---- */
struct rt_range {
    uint64_t start;        /* page aligned, inclusive */
    uint64_t end;          /* page aligned, exclusive */
};
/* Default range plus start=/end=/size= overrides from bootargs; validated (never covers the
 * image, the stacks or the FDT). Fails with RT_EXIT_BADARGS on a bad range. */
struct rt_range rt_range_from_args(const char *guest);
/* Fills the range with the xorshift64 stream seeded by `seed` and sets byte 0 of every page to
 * 0 (docs/guests.md, "Fill pattern"). Returns the xorshift state after the fill. */
uint64_t rt_fill_range(struct rt_range r, uint64_t seed);
uint64_t rt_xorshift64(uint64_t x);
#define RT_DEFAULT_SEED 0x9e3779b97f4a7c15ull

/* ---- small libc pieces the compiler may call ---- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
size_t strlen(const char *s);

/* ---- CSR access ---- */
#define rt_csr_read(csr) ({ uint64_t v_; __asm__ volatile("csrr %0, " #csr : "=r"(v_)); v_; })
#define rt_csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"r"((uint64_t)(v)))
#define rt_csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" ::"r"((uint64_t)(v)))
#define rt_csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" ::"r"((uint64_t)(v)))

#define RT_MSTATUS_MIE (1ul << 3)
#define RT_MIE_MSIE (1ul << 3)
#define RT_MIE_MTIE (1ul << 7)
#define RT_MCAUSE_INTERRUPT (1ul << 63)
#define RT_IRQ_M_SOFT 3
#define RT_IRQ_M_TIMER 7

static inline void rt_wfi(void) { __asm__ volatile("wfi" ::: "memory"); }
static inline void rt_fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

#endif
