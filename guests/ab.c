/*
 * ab: QEMU's migration-test guest (the a-b boot blocks under tests/migration), for our layout.
 *
 * Fills its range (rt_fill_range: random words, byte 0 of every page = 0), publishes the range
 * in the info block, prints 'A', then forever: increments byte 0 of every 4 KiB page in
 * address order, counts the pass in info.counter, prints 'B'. The A/B invariant a checker
 * tests on a stopped guest's RAM is stated in docs/guests.md.
 *
 * bootargs: start= end= | size= seed=
 */
#include "rt.h"

int main(void)
{
    rt_info_begin(RT_KIND_AB);
    struct rt_range r = rt_range_from_args("ab");
    uint64_t seed = rt_arg_u64("ab", "seed", RT_DEFAULT_SEED);
    if (!seed)
        seed = RT_DEFAULT_SEED;

    rt_info.range_start = r.start;
    rt_info.range_end = r.end;
    rt_info.seed = seed;
    rt_info.counter = 0;
    rt_fence();
    rt_info.state = RT_STATE_FILLING;
    rt_fill_range(r, seed);
    rt_fence();
    rt_info.state = RT_STATE_RUNNING;
    rt_putc('A');

    for (;;) {
        for (uint64_t p = r.start; p < r.end; p += RT_PAGE_SIZE)
            (*(volatile uint8_t *)p)++;
        rt_info.counter = rt_info.counter + 1;   /* after the last page of the pass */
        rt_putc('B');
    }
}
