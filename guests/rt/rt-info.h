/*
 * The guest info block: 256 bytes at guest physical 0x8000_1000 (RAM offset 0x1000), in a page
 * of its own. Guests that own a memory range (ab, dirty, idle) describe it here so a checker can
 * verify a RAM dump (e.g. the destination's RAM after a migration) without knowing the
 * command line. All fields little-endian. Layout and meaning: docs/guests.md, "Info block".
 *
 *   off  size  field
 *   0x00  8    magic       "LVMGINFO" (bytes 4c 56 4d 47 49 4e 46 4f)
 *   0x08  4    version     1
 *   0x0c  4    kind        RT_KIND_*
 *   0x10  4    state       RT_STATE_*
 *   0x14  4    page_size   4096
 *   0x18  8    range_start guest physical, page aligned, inclusive
 *   0x20  8    range_end   guest physical, page aligned, exclusive
 *   0x28  8    seed        fill seed actually used
 *   0x30  8    counter     ab: completed passes; dirty: pages written; idle: timer ticks
 *   0x38  8    ram_base    from the FDT
 *   0x40  8    ram_size
 *   0x48  8    fdt_addr
 *   0x50  8    fdt_size
 *   0x58  8    image_end   first page above the guest's code, data and stacks
 *   0x60  8    param       dirty: rate (pages/ms); smp-counter: n; otherwise 0
 *   0x68  4    harts       /cpus/cpu@N nodes in the FDT
 *   0x6c  4    reserved    0
 */
#ifndef RT_INFO_H
#define RT_INFO_H

#include <stdint.h>

#define RT_INFO_ADDR 0x80001000ul
#define RT_INFO_MAGIC 0x4f464e49474d564cull   /* "LVMGINFO" read as a little-endian u64 */
#define RT_INFO_VERSION 1

enum rt_kind {
    RT_KIND_NONE = 0,
    RT_KIND_HELLO = 1,
    RT_KIND_AB = 2,
    RT_KIND_DIRTY = 3,
    RT_KIND_IDLE = 4,
    RT_KIND_SMP_COUNTER = 5,
    RT_KIND_TRAP = 6,
    RT_KIND_ECHO = 7,
    RT_KIND_STRIDE = 8,
};

enum rt_state {
    RT_STATE_BOOT = 0,      /* info block valid, range not yet filled: nothing to check */
    RT_STATE_FILLING = 1,   /* range is being filled */
    RT_STATE_RUNNING = 2,   /* range filled, workload running: invariants hold */
    RT_STATE_DONE = 3,      /* workload finished (deterministic guests) */
};

struct rt_info {
    uint64_t magic;
    uint32_t version;
    uint32_t kind;
    uint32_t state;
    uint32_t page_size;
    uint64_t range_start;
    uint64_t range_end;
    uint64_t seed;
    uint64_t counter;
    uint64_t ram_base;
    uint64_t ram_size;
    uint64_t fdt_addr;
    uint64_t fdt_size;
    uint64_t image_end;
    uint64_t param;
    uint32_t harts;
    uint32_t reserved;
};

_Static_assert(sizeof(struct rt_info) == 0x70, "info block layout");

/* The block, at RT_INFO_ADDR (link.ld places .guest_info there). Written through volatile. */
extern volatile struct rt_info rt_info;

/* Sets magic, version, kind, machine facts; state = RT_STATE_BOOT. */
void rt_info_begin(enum rt_kind kind);

#endif
