/*
 * smp-counter: every hart (2..8, also works with 1) adds 1 to three shared 32-bit counters
 * n times each:
 *   amo   with amoadd.w
 *   lrsc  with an lr.w / sc.w retry loop
 *   lock  with a plain lw/addi/sw inside a spinlock (amoswap.w.aq to take, amoswap.w.rl to drop)
 * The harts start together (an AMO barrier), then each adds 1 to `done`; hart 0 waits for
 * done == harts and checks every counter equals harts * n.
 *
 * Output: "smp-counter: harts=H n=N\n", then "PASS\n" (exit 0) or
 *         "FAIL amo=A lrsc=L lock=K expected=E\n" (exit 1).
 * bootargs: n= (default 100000, at most 2^24)
 */
#include "rt.h"

#define DEFAULT_N 100000
#define MAX_N (1ul << 24)

static volatile uint32_t harts, n_iter;
static volatile uint32_t arrived, done, lock_word;
static volatile uint32_t amo_count, lrsc_count, lock_count;

static inline void amoadd(volatile uint32_t *p, uint32_t v)
{
    __asm__ volatile("amoadd.w zero, %1, (%0)" ::"r"(p), "r"(v) : "memory");
}

static inline void lrsc_inc(volatile uint32_t *p)
{
    uint32_t tmp, fail;
    __asm__ volatile("1: lr.w %0, (%2)\n"
                     "   addiw %0, %0, 1\n"
                     "   sc.w %1, %0, (%2)\n"
                     "   bnez %1, 1b\n"
                     : "=&r"(tmp), "=&r"(fail)
                     : "r"(p)
                     : "memory");
}

static inline void lock_take(volatile uint32_t *l)
{
    uint32_t old;
    do {
        __asm__ volatile("amoswap.w.aq %0, %2, (%1)" : "=r"(old) : "r"(l), "r"(1) : "memory");
    } while (old);
}

static inline void lock_drop(volatile uint32_t *l)
{
    __asm__ volatile("amoswap.w.rl zero, zero, (%0)" ::"r"(l) : "memory");
}

static void work(void)
{
    uint32_t h = harts, n = n_iter;
    amoadd(&arrived, 1);
    while (arrived < h)
        ;
    for (uint32_t i = 0; i < n; i++) {
        amoadd(&amo_count, 1);
        lrsc_inc(&lrsc_count);
        lock_take(&lock_word);
        lock_count = lock_count + 1;
        lock_drop(&lock_word);
    }
    amoadd(&done, 1);
}

void rt_secondary(uint64_t hartid)
{
    if (hartid < harts)
        work();
    rt_park();
}

int main(void)
{
    rt_info_begin(RT_KIND_SMP_COUNTER);
    uint64_t n = rt_arg_u64("smp-counter", "n", DEFAULT_N);
    if (n > MAX_N) {
        rt_printf("smp-counter: n=%lu is above %lu\n", n, MAX_N);
        return RT_EXIT_BADARGS;
    }
    uint32_t h = rt_machine.ncpus;
    if (h == 0)
        h = 1;
    if (h > RT_MAX_HARTS)
        h = RT_MAX_HARTS;
    harts = h;
    n_iter = (uint32_t)n;
    rt_info.param = n;
    rt_info.state = RT_STATE_RUNNING;
    rt_printf("smp-counter: harts=%u n=%u\n", h, (uint32_t)n);

    rt_start_secondaries(h);   /* publishes harts/n_iter (fence) before the IPIs */
    work();
    while (done < h)
        ;
    rt_fence();

    uint32_t expect = h * (uint32_t)n;
    rt_info.counter = amo_count;
    rt_info.state = RT_STATE_DONE;
    if (amo_count == expect && lrsc_count == expect && lock_count == expect) {
        rt_puts("PASS\n");
        return 0;
    }
    rt_printf("FAIL amo=%u lrsc=%u lock=%u expected=%u\n", amo_count, lrsc_count, lock_count,
              expect);
    return RT_EXIT_FAIL;
}
