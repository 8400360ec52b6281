/*
 * sifive_test at 0x0010_0000 (QEMU hw/misc/sifive_test.c): a 32-bit write of
 *   0x5555              powers off, QEMU exits with status 0
 *   0x3333 | code<<16   powers off, QEMU exits with status `code`
 *   0x7777              system reset: every hart restarts at the reset vector, RAM is kept
 */
#include "rt.h"

#define TEST_BASE 0x00100000ul
#define TEST_PASS 0x5555u
#define TEST_FAIL 0x3333u
#define TEST_RESET 0x7777u

static void __attribute__((noreturn)) test_write(uint32_t v)
{
    rt_fence();
    *(volatile uint32_t *)TEST_BASE = v;
    for (;;)
        rt_wfi();
}

void rt_poweroff(void) { test_write(TEST_PASS); }
void rt_fail(uint32_t code) { test_write(TEST_FAIL | ((code & 0xffffu) << 16)); }
void rt_reset(void) { test_write(TEST_RESET); }
