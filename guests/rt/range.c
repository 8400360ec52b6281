/*
 * The memory range a guest works on (ab, dirty, idle), and the deterministic fill.
 *
 * Default range: [first page above the image and stacks,
 *                 min(RAM end - 2 MiB, page containing the FDT start)).
 * QEMU puts the FDT at align_down(min(RAM end, 0xC000_0000) - fdt size, 2 MiB), so for RAM up
 * to 1 GiB the default ends exactly where the FDT's 2 MiB slot begins.
 */
#include "rt.h"

#define PAGE_MASK (RT_PAGE_SIZE - 1)

static uint64_t page_up(uint64_t a) { return (a + PAGE_MASK) & ~PAGE_MASK; }
static uint64_t page_down(uint64_t a) { return a & ~PAGE_MASK; }

static void __attribute__((noreturn)) bad_range(const char *guest, uint64_t s, uint64_t e,
                                                const char *why)
{
    rt_printf("%s: bad range [0x%lx, 0x%lx): %s\n", guest, s, e, why);
    rt_fail(RT_EXIT_BADARGS);
}

struct rt_range rt_range_from_args(const char *guest)
{
    const struct rt_machine *m = &rt_machine;
    uint64_t ram_end = m->ram_base + m->ram_size;
    uint64_t image_end = (uint64_t)__image_end;
    uint64_t fdt_lo = page_down(m->fdt_addr), fdt_hi = page_up(m->fdt_addr + m->fdt_size);

    uint64_t def_end = ram_end - 2 * RT_MIB;
    if (fdt_lo >= image_end && fdt_lo < def_end)
        def_end = fdt_lo;

    uint64_t start = page_up(rt_arg_u64(guest, "start", image_end));
    uint64_t end;
    int has_end = rt_arg_present("end");
    int has_size = rt_arg_present("size");
    if (has_end && has_size)
        bad_range(guest, start, rt_arg_u64(guest, "end", 0), "give end= or size=, not both");
    if (has_end)
        end = rt_arg_u64(guest, "end", 0);
    else if (has_size)
        end = start + rt_arg_u64(guest, "size", 0);
    else
        end = def_end;
    end = page_down(end);

    if (start < image_end)
        bad_range(guest, start, end, "overlaps the guest image or stacks");
    if (end <= start)
        bad_range(guest, start, end, "empty");
    if (end > ram_end)
        bad_range(guest, start, end, "beyond the end of RAM");
    if (start < fdt_hi && fdt_lo < end)
        bad_range(guest, start, end, "overlaps the FDT");
    return (struct rt_range){ start, end };
}

/* Marsaglia's xorshift64 (13, 7, 17): never yields 0 from a non-zero state. */
uint64_t rt_xorshift64(uint64_t x)
{
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

uint64_t rt_fill_range(struct rt_range r, uint64_t seed)
{
    uint64_t x = seed ? seed : RT_DEFAULT_SEED;
    for (uint64_t page = r.start; page < r.end; page += RT_PAGE_SIZE) {
        volatile uint64_t *w = (volatile uint64_t *)page;
        x = rt_xorshift64(x);
        w[0] = x & ~0xffull;   /* byte 0 of every page starts at 0 (the A/B counter) */
        for (unsigned i = 1; i < RT_PAGE_SIZE / 8; i++) {
            x = rt_xorshift64(x);
            w[i] = x;
        }
    }
    return x;
}
