/*
 * dirty: writes random pages of its range at a steady rate, paced by CLINT mtime.
 *
 * Fills the range like ab, prints "dirty: start=0x... end=0x... rate=R\n", then every guest
 * millisecond (timebase/1000 mtime ticks) writes R pages chosen by xorshift64 (continuing the
 * fill's state). Each write stores one u64 at offset 0 of the page:
 *     DIRTY_TAG | (n & 0xffffffff)     bytes: n0 n1 n2 n3 'D' 'R' 'T' 'Y'
 * where n counts the writes (1, 2, 3, ...); info.counter is set to n just before the store.
 * Every timebase ticks of guest time it prints "tick N\n". Between batches it sleeps in wfi
 * with mie.MTIE set and mstatus.MIE clear: a pending timer wakes wfi without taking a trap. If
 * the guest falls behind (slow host), it catches up at most 10 ms worth of pages.
 *
 * bootargs: start= end= | size= seed= rate= (pages per ms, default 100; 0 = heartbeat only)
 */
#include "rt.h"

#define DIRTY_TAG 0x5954524400000000ull   /* "DRTY" in bytes 4..7 */
#define DEFAULT_RATE 100
#define MAX_BACKLOG_MS 10

int main(void)
{
    rt_info_begin(RT_KIND_DIRTY);
    struct rt_range r = rt_range_from_args("dirty");
    uint64_t seed = rt_arg_u64("dirty", "seed", RT_DEFAULT_SEED);
    uint64_t rate = rt_arg_u64("dirty", "rate", DEFAULT_RATE);
    if (!seed)
        seed = RT_DEFAULT_SEED;

    rt_info.range_start = r.start;
    rt_info.range_end = r.end;
    rt_info.seed = seed;
    rt_info.param = rate;
    rt_fence();
    rt_info.state = RT_STATE_FILLING;
    uint64_t x = rt_fill_range(r, seed);
    rt_fence();
    rt_info.state = RT_STATE_RUNNING;
    rt_printf("dirty: start=0x%lx end=0x%lx rate=%lu\n", r.start, r.end, rate);

    const uint64_t npages = (r.end - r.start) / RT_PAGE_SIZE;
    const uint64_t tb = rt_machine.timebase;
    const uint64_t ms = tb / 1000 ? tb / 1000 : 1;
    const uint64_t t0 = rt_mtime();
    uint64_t done = 0, ticks = 0, next_tick = t0 + tb, n = 0;

    rt_csr_clear(mstatus, RT_MSTATUS_MIE);
    rt_set_mtimecmp(0, t0 + ms);   /* mtimecmp resets to 0: arm it before enabling MTIE */
    rt_csr_set(mie, RT_MIE_MTIE);

    for (;;) {
        uint64_t now = rt_mtime();
        uint64_t elapsed_ms = (now - t0) / ms;
        uint64_t due = elapsed_ms * rate;
        if (due > done + MAX_BACKLOG_MS * rate)
            done = due - MAX_BACKLOG_MS * rate;
        for (; done < due; done++) {
            x = rt_xorshift64(x);
            uint64_t page = r.start + (x % npages) * RT_PAGE_SIZE;
            n++;
            rt_info.counter = n;   /* first, so no page ever carries a tag above the counter */
            *(volatile uint64_t *)page = DIRTY_TAG | (n & 0xffffffffull);
        }
        while (now >= next_tick) {
            ticks++;
            next_tick += tb;
            rt_printf("tick %lu\n", ticks);
        }
        uint64_t wake = rate ? t0 + (elapsed_ms + 1) * ms : next_tick;
        rt_set_mtimecmp(0, wake < next_tick ? wake : next_tick);
        rt_wfi();
    }
}
