/*
 * idle: fills its range like ab once, then sleeps. A machine timer interrupt, armed through
 * mie.MTIE + mstatus.MIE, fires once per second of guest time (timebase ticks, 10 MHz on virt);
 * the handler re-arms mtimecmp += timebase and counts. The main loop prints "tick N\n" for
 * every count. This is the guest that proves timers survive a save/restore.
 *
 * Output: "idle: start=0x... end=0x...\n", then "tick 1\n", "tick 2\n", ...
 * bootargs: start= end= | size= seed=
 */
#include "rt.h"

static volatile uint64_t ticks;

static void on_tick(void) { ticks = ticks + 1; }

int main(void)
{
    rt_info_begin(RT_KIND_IDLE);
    struct rt_range r = rt_range_from_args("idle");
    uint64_t seed = rt_arg_u64("idle", "seed", RT_DEFAULT_SEED);
    if (!seed)
        seed = RT_DEFAULT_SEED;

    rt_info.range_start = r.start;
    rt_info.range_end = r.end;
    rt_info.seed = seed;
    rt_fence();
    rt_info.state = RT_STATE_FILLING;
    rt_fill_range(r, seed);
    rt_fence();
    rt_info.state = RT_STATE_RUNNING;
    rt_printf("idle: start=0x%lx end=0x%lx\n", r.start, r.end);

    rt_timer_start(rt_machine.timebase, on_tick);
    uint64_t shown = 0;
    for (;;) {
        /* Check-then-sleep with interrupts masked, so a tick between the check and the wfi
         * cannot be slept through: wfi still wakes on a pending enabled interrupt. */
        rt_csr_clear(mstatus, RT_MSTATUS_MIE);
        if (ticks == shown)
            rt_wfi();
        rt_csr_set(mstatus, RT_MSTATUS_MIE);   /* the pending tick is taken here */
        while (shown != ticks) {
            shown++;
            rt_info.counter = shown;
            rt_printf("tick %lu\n", shown);
        }
    }
}
