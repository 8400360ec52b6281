/*
 * stride: touches one fresh page at a time and times each touch itself, by mtime. It is the
 * guest behind the postcopy fault-latency benchmark: on a postcopy destination the first touch
 * of a page that has not arrived is exactly one remote fault, and the time the store takes is
 * the time the vCPU waited for the page, as the vCPU sees it.
 *
 * Fills its range like ab (every page carries data: none travels as a zero page), prints
 * "stride: start=0x... end=0x... gap=G\n", then forever walks the pages above its log from the
 * top down, wrapping, and for the i-th touch (i = 0, 1, ...):
 *
 *     t0 = mtime; store byte 0 of the page; t1 = mtime; store it again; t2 = mtime
 *     log[i % STRIDE_LOG_ENTRIES] = { t1 - t0, t2 - t1 }     two u32, mtime ticks
 *     info.counter = i + 1
 *     sleep (wfi) until t0 + gap µs
 *
 * t2 - t1 is the same store on a page that is now present: what the timing itself costs.
 * Downwards, because a background migration stream sends pages upwards: the pages ahead of the
 * guest are the last to arrive. The log is the first STRIDE_LOG_ENTRIES * 8 bytes of the range
 * (docs/guests.md, "stride"); a reader takes the counter from the info block and the entries of
 * the touches it wants.
 *
 * bootargs: start= end= | size= seed= gap= (µs from one touch to the next, default 1000;
 * 0 = back to back)
 */
#include "rt.h"

#define STRIDE_LOG_ENTRIES 16384
#define DEFAULT_GAP_US 1000

struct stride_entry {
    uint32_t first;    /* ticks of the first store to the page */
    uint32_t again;    /* ticks of the second store */
};

static uint32_t ticks32(uint64_t t) { return t > 0xffffffffull ? 0xffffffffu : (uint32_t)t; }

int main(void)
{
    rt_info_begin(RT_KIND_STRIDE);
    struct rt_range r = rt_range_from_args("stride");
    uint64_t seed = rt_arg_u64("stride", "seed", RT_DEFAULT_SEED);
    uint64_t gap_us = rt_arg_u64("stride", "gap", DEFAULT_GAP_US);
    if (!seed)
        seed = RT_DEFAULT_SEED;
    const uint64_t log_bytes = STRIDE_LOG_ENTRIES * sizeof(struct stride_entry);
    if (r.end - r.start < log_bytes + RT_PAGE_SIZE) {
        rt_printf("stride: range too small for the log (%lu bytes) and one page\n", log_bytes);
        rt_fail(RT_EXIT_BADARGS);
    }

    rt_info.range_start = r.start;
    rt_info.range_end = r.end;
    rt_info.seed = seed;
    rt_info.param = gap_us;
    rt_fence();
    rt_info.state = RT_STATE_FILLING;
    rt_fill_range(r, seed);
    rt_fence();
    rt_info.state = RT_STATE_RUNNING;
    rt_printf("stride: start=0x%lx end=0x%lx gap=%lu\n", r.start, r.end, gap_us);

    volatile struct stride_entry *log = (volatile struct stride_entry *)r.start;
    const uint64_t first = r.start + log_bytes;
    const uint64_t gap = gap_us * rt_machine.timebase / 1000000;
    uint64_t page = r.end;

    rt_csr_clear(mstatus, RT_MSTATUS_MIE);   /* wfi wakes on a pending MTIP; no trap taken */
    rt_set_mtimecmp(0, ~0ull);               /* mtimecmp resets to 0: arm it before MTIE */
    rt_csr_set(mie, RT_MIE_MTIE);

    for (uint64_t i = 0;; i++) {
        page = page - RT_PAGE_SIZE < first ? r.end - RT_PAGE_SIZE : page - RT_PAGE_SIZE;
        volatile uint8_t *p = (volatile uint8_t *)page;
        uint64_t t0 = rt_mtime();
        *p = (uint8_t)i;
        uint64_t t1 = rt_mtime();
        *p = (uint8_t)(i + 1);
        uint64_t t2 = rt_mtime();
        volatile struct stride_entry *e = &log[i % STRIDE_LOG_ENTRIES];
        e->first = ticks32(t1 - t0);
        e->again = ticks32(t2 - t1);
        rt_info.counter = i + 1;
        if (!gap)
            continue;
        uint64_t due = t0 + gap;
        rt_set_mtimecmp(0, due);
        while (rt_mtime() < due)
            rt_wfi();
    }
}
