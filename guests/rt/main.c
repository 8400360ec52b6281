/* Hart 0's C entry, the info block, waking secondary harts, exit. */
#include "rt.h"

struct rt_machine rt_machine;
uint64_t rt_boot_regs[3];
volatile uint32_t rt_go;   /* crt0's secondaries spin on this (RT_GO_MAGIC) */

__attribute__((section(".guest_info"), aligned(4096))) volatile struct rt_info rt_info;

int rt_main(uint64_t fdt_addr);

int rt_main(uint64_t fdt_addr)
{
    /* The block survives a 0x7777 reset with the previous boot's contents: start clean. */
    volatile uint64_t *w = (volatile uint64_t *)&rt_info;
    for (size_t i = 0; i < sizeof(rt_info) / 8; i++)
        w[i] = 0;

    if (rt_fdt_parse(fdt_addr, &rt_machine) != 0) {
        rt_printf("rt: no valid FDT at a1=0x%lx\n", fdt_addr);
        return RT_EXIT_FAIL;
    }
    return main();
}

void rt_info_begin(enum rt_kind kind)
{
    rt_info.version = RT_INFO_VERSION;
    rt_info.kind = kind;
    rt_info.state = RT_STATE_BOOT;
    rt_info.page_size = RT_PAGE_SIZE;
    rt_info.ram_base = rt_machine.ram_base;
    rt_info.ram_size = rt_machine.ram_size;
    rt_info.fdt_addr = rt_machine.fdt_addr;
    rt_info.fdt_size = rt_machine.fdt_size;
    rt_info.image_end = (uint64_t)__image_end;
    rt_info.harts = rt_machine.ncpus;
    rt_fence();
    rt_info.magic = RT_INFO_MAGIC;   /* last: a checker trusts nothing before the magic */
}

void rt_start_secondaries(uint32_t n)
{
    if (n > RT_MAX_HARTS)
        n = RT_MAX_HARTS;
    rt_fence();
    rt_go = RT_GO_MAGIC;
    rt_fence();
    for (uint32_t h = 1; h < n; h++)
        rt_set_msip(h, 1);
}

__attribute__((weak)) void rt_secondary(uint64_t hartid)
{
    (void)hartid;
    rt_park();
}

void rt_exit(int code)
{
    if (code == 0)
        rt_poweroff();
    rt_fail((uint32_t)code);
}
