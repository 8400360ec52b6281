/*
 * crt0: the first code every hart runs.
 *
 * QEMU's `virt` reset vector (mrom at 0x1000) jumps here in M-mode with a0 = mhartid,
 * a1 = FDT address, a2 = &fw_dynamic_info; every other register is zero. All harts arrive at
 * once. Hart 0 clears the BSS and runs rt_main(). The others wait (wfi with only MSIE enabled)
 * until hart 0 has published RT_GO_MAGIC in rt_go; a guest that wants them wakes them with an
 * IPI (rt_start_secondaries), and they call rt_secondary(hartid). Harts >= RT_MAX_HARTS have no
 * stack and park forever.
 */
#include "rt-config.h"

    .file   "crt0.S"    /* else the symbol table names a random temporary: not reproducible */

#define REG_SIZE 8
#define FRAME_SIZE (RT_FRAME_WORDS * REG_SIZE)

    .section .text.entry, "ax", @progbits
    .globl _start
_start:
    csrr    t0, mhartid
    la      t1, rt_trap_entry
    csrw    mtvec, t1
    csrw    mie, zero
    li      t1, RT_MAX_HARTS
    bgeu    t0, t1, rt_park

    /* sp = __stacks_end - hartid * RT_STACK_SIZE */
    la      sp, __stacks_end
    li      t1, RT_STACK_SIZE
    mul     t1, t1, t0
    sub     sp, sp, t1
    bnez    t0, secondary

    /* hart 0: keep the boot registers, clear the BSS, enter C */
    mv      s0, a0
    mv      s1, a1
    mv      s2, a2
    la      t1, __bss_start
    la      t2, __bss_end
1:  bgeu    t1, t2, 2f
    sd      zero, 0(t1)
    addi    t1, t1, 8
    j       1b
2:  la      t1, rt_boot_regs
    sd      s0, 0(t1)
    sd      s1, 8(t1)
    sd      s2, 16(t1)
    mv      a0, s1
    call    rt_main
    call    rt_exit             /* does not return */

secondary:
    li      t1, 8               /* mie.MSIE: a software interrupt wakes wfi (mstatus.MIE stays 0) */
    csrw    mie, t1
    la      t2, rt_go
    li      t3, RT_GO_MAGIC
3:  wfi
    fence   r, r
    lw      t1, 0(t2)
    bne     t1, t3, 3b
    csrw    mie, zero
    li      t1, RT_CLINT_BASE   /* clear our msip: CLINT + 4 * hartid */
    slli    t2, t0, 2
    add     t1, t1, t2
    sw      zero, 0(t1)
    fence   rw, rw
    mv      a0, t0
    call    rt_secondary
    /* fall through: park */

    .globl rt_park
rt_park:
    csrw    mie, zero
4:  wfi
    j       4b

/*
 * Trap vector (mtvec direct mode, so 4-byte alignment suffices). Saves every register in a
 * frame on the current stack, calls rt_trap(frame), restores (rt_trap may edit the frame,
 * e.g. advance mepc past a faulting instruction) and returns with mret.
 */
    .balign 4
    .globl rt_trap_entry
rt_trap_entry:
    addi    sp, sp, -FRAME_SIZE
    sd      x1, 1*REG_SIZE(sp)
    sd      x3, 3*REG_SIZE(sp)
    sd      x4, 4*REG_SIZE(sp)
    sd      x5, 5*REG_SIZE(sp)
    sd      x6, 6*REG_SIZE(sp)
    sd      x7, 7*REG_SIZE(sp)
    sd      x8, 8*REG_SIZE(sp)
    sd      x9, 9*REG_SIZE(sp)
    sd      x10, 10*REG_SIZE(sp)
    sd      x11, 11*REG_SIZE(sp)
    sd      x12, 12*REG_SIZE(sp)
    sd      x13, 13*REG_SIZE(sp)
    sd      x14, 14*REG_SIZE(sp)
    sd      x15, 15*REG_SIZE(sp)
    sd      x16, 16*REG_SIZE(sp)
    sd      x17, 17*REG_SIZE(sp)
    sd      x18, 18*REG_SIZE(sp)
    sd      x19, 19*REG_SIZE(sp)
    sd      x20, 20*REG_SIZE(sp)
    sd      x21, 21*REG_SIZE(sp)
    sd      x22, 22*REG_SIZE(sp)
    sd      x23, 23*REG_SIZE(sp)
    sd      x24, 24*REG_SIZE(sp)
    sd      x25, 25*REG_SIZE(sp)
    sd      x26, 26*REG_SIZE(sp)
    sd      x27, 27*REG_SIZE(sp)
    sd      x28, 28*REG_SIZE(sp)
    sd      x29, 29*REG_SIZE(sp)
    sd      x30, 30*REG_SIZE(sp)
    sd      x31, 31*REG_SIZE(sp)
    addi    t0, sp, FRAME_SIZE
    sd      t0, 2*REG_SIZE(sp)
    csrr    t0, mepc
    sd      t0, RT_FRAME_MEPC*REG_SIZE(sp)
    csrr    t0, mcause
    sd      t0, RT_FRAME_MCAUSE*REG_SIZE(sp)
    csrr    t0, mtval
    sd      t0, RT_FRAME_MTVAL*REG_SIZE(sp)

    mv      a0, sp
    call    rt_trap

    ld      t0, RT_FRAME_MEPC*REG_SIZE(sp)
    csrw    mepc, t0
    ld      x1, 1*REG_SIZE(sp)
    ld      x3, 3*REG_SIZE(sp)
    ld      x4, 4*REG_SIZE(sp)
    ld      x5, 5*REG_SIZE(sp)
    ld      x6, 6*REG_SIZE(sp)
    ld      x7, 7*REG_SIZE(sp)
    ld      x8, 8*REG_SIZE(sp)
    ld      x9, 9*REG_SIZE(sp)
    ld      x10, 10*REG_SIZE(sp)
    ld      x11, 11*REG_SIZE(sp)
    ld      x12, 12*REG_SIZE(sp)
    ld      x13, 13*REG_SIZE(sp)
    ld      x14, 14*REG_SIZE(sp)
    ld      x15, 15*REG_SIZE(sp)
    ld      x16, 16*REG_SIZE(sp)
    ld      x17, 17*REG_SIZE(sp)
    ld      x18, 18*REG_SIZE(sp)
    ld      x19, 19*REG_SIZE(sp)
    ld      x20, 20*REG_SIZE(sp)
    ld      x21, 21*REG_SIZE(sp)
    ld      x22, 22*REG_SIZE(sp)
    ld      x23, 23*REG_SIZE(sp)
    ld      x24, 24*REG_SIZE(sp)
    ld      x25, 25*REG_SIZE(sp)
    ld      x26, 26*REG_SIZE(sp)
    ld      x27, 27*REG_SIZE(sp)
    ld      x28, 28*REG_SIZE(sp)
    ld      x29, 29*REG_SIZE(sp)
    ld      x30, 30*REG_SIZE(sp)
    ld      x31, 31*REG_SIZE(sp)
    addi    sp, sp, FRAME_SIZE
    mret
