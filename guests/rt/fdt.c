/*
 * Minimal flattened device tree reader (Devicetree Specification v0.4, ch. 5): one walk over
 * the structure block collecting what the guests need.
 *
 *   header (big-endian u32s): magic 0xd00dfeed, totalsize, off_dt_struct, off_dt_strings, ...
 *   structure block tokens:   BEGIN_NODE name\0 (pad 4) | END_NODE | PROP len nameoff value
 *                             (pad 4) | NOP | END
 *
 *   /#address-cells, /#size-cells     cell counts for /memory reg
 *   /chosen/bootargs                  the -append string
 *   /memory@.../reg                   first (base, size) pair
 *   /cpus/timebase-frequency          CLINT mtime frequency
 *   /cpus/cpu@N                       counted: the number of harts
 */
#include "rt.h"

#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9
#define FDT_MAX_DEPTH 8

static uint32_t be32(const void *p)
{
    const uint8_t *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static uint64_t cells(const uint8_t *p, uint32_t n)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++)
        v = (v << 32) | be32(p + 4 * i);
    return v;
}

static int streq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static int starts_with(const char *s, const char *prefix)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return 0;
    return 1;
}

static uint32_t align4(uint32_t n) { return (n + 3) & ~3u; }

int rt_fdt_parse(uint64_t fdt_addr, struct rt_machine *m)
{
    const uint8_t *fdt = (const uint8_t *)fdt_addr;
    if (!fdt_addr || (fdt_addr & 3) || be32(fdt) != FDT_MAGIC)
        return -1;
    uint32_t total = be32(fdt + 4);
    uint32_t off_struct = be32(fdt + 8);
    uint32_t off_strings = be32(fdt + 12);
    if (off_struct >= total || off_strings >= total)
        return -1;

    m->fdt_addr = fdt_addr;
    m->fdt_size = total;
    m->ram_base = 0;
    m->ram_size = 0;
    m->timebase = 10000000;
    m->ncpus = 0;
    m->bootargs = "";

    const char *strings = (const char *)fdt + off_strings;
    const char *names[FDT_MAX_DEPTH] = { 0 };
    uint32_t addr_cells = 2, size_cells = 1;   /* spec defaults when / does not say */
    int depth = 0, have_mem = 0;
    uint32_t off = off_struct;

    while (off + 4 <= total) {
        uint32_t tok = be32(fdt + off);
        off += 4;
        if (tok == FDT_BEGIN_NODE) {
            const char *name = (const char *)fdt + off;
            off += align4((uint32_t)strlen(name) + 1);
            depth++;
            if (depth < FDT_MAX_DEPTH)
                names[depth] = name;
            if (depth == 3 && streq(names[2], "cpus") && starts_with(name, "cpu@"))
                m->ncpus++;
        } else if (tok == FDT_END_NODE) {
            depth--;
        } else if (tok == FDT_PROP) {
            uint32_t len = be32(fdt + off);
            const char *pname = strings + be32(fdt + off + 4);
            const uint8_t *val = fdt + off + 8;
            off += 8 + align4(len);
            if (depth == 1 && streq(pname, "#address-cells") && len == 4)
                addr_cells = be32(val);
            else if (depth == 1 && streq(pname, "#size-cells") && len == 4)
                size_cells = be32(val);
            else if (depth == 2 && streq(names[2], "chosen") && streq(pname, "bootargs"))
                m->bootargs = (const char *)val;
            else if (depth == 2 && streq(names[2], "cpus") && streq(pname, "timebase-frequency"))
                m->timebase = cells(val, len / 4);
            else if (depth == 2 && !have_mem && starts_with(names[2], "memory") &&
                     streq(pname, "reg") && len >= 4 * (addr_cells + size_cells)) {
                m->ram_base = cells(val, addr_cells);
                m->ram_size = cells(val + 4 * addr_cells, size_cells);
                have_mem = 1;
            }
        } else if (tok == FDT_NOP) {
            continue;
        } else {
            break;   /* FDT_END or garbage */
        }
    }
    return have_mem ? 0 : -1;
}
