/*
 * CLINT (SiFive layout, QEMU's ACLINT MSWI + MTIMER) at 0x0200_0000:
 *   +0x0000 + 4*hart   msip      (bit 0 drives mip.MSIP)
 *   +0x4000 + 8*hart   mtimecmp  (mip.MTIP = mtime >= mtimecmp; reset value 0, so MTIP is
 *                                 pending at boot until a guest writes mtimecmp)
 *   +0xbff8            mtime     (10 MHz on virt; /cpus timebase-frequency)
 * All 64-bit registers are accessed with single 8-byte loads and stores.
 */
#include "rt.h"

#define CLINT_MSIP(h) (RT_CLINT_BASE + 4ul * (h))
#define CLINT_MTIMECMP(h) (RT_CLINT_BASE + 0x4000ul + 8ul * (h))
#define CLINT_MTIME (RT_CLINT_BASE + 0xbff8ul)

uint64_t rt_mtime(void) { return *(volatile uint64_t *)CLINT_MTIME; }

void rt_set_mtimecmp(uint64_t hartid, uint64_t value)
{
    *(volatile uint64_t *)CLINT_MTIMECMP(hartid) = value;
}

uint64_t rt_get_mtimecmp(uint64_t hartid) { return *(volatile uint64_t *)CLINT_MTIMECMP(hartid); }

void rt_set_msip(uint64_t hartid, uint32_t value)
{
    *(volatile uint32_t *)CLINT_MSIP(hartid) = value;
}

static uint64_t timer_period;
static void (*timer_handler)(void);

/* Called from rt_trap on a machine timer interrupt: re-arm one period later, then notify. */
int rt_timer_interrupt(void);
int rt_timer_interrupt(void)
{
    if (!timer_handler)
        return 0;
    rt_set_mtimecmp(0, rt_get_mtimecmp(0) + timer_period);
    timer_handler();
    return 1;
}

void rt_timer_start(uint64_t period, void (*handler)(void))
{
    timer_period = period;
    timer_handler = handler;
    rt_set_mtimecmp(0, rt_mtime() + period);
    rt_csr_set(mie, RT_MIE_MTIE);
    rt_csr_set(mstatus, RT_MSTATUS_MIE);
}
