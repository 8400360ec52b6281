/* Constants shared by crt0.S and the C runtime. Keep in step with link.ld. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#define RT_MAX_HARTS 8          /* harts with mhartid >= this park forever, touching nothing */
#define RT_STACK_SIZE 8192      /* per hart, in .stacks */

#define RT_CLINT_BASE 0x02000000
#define RT_GO_MAGIC 0x6f67      /* "go": hart 0 has finished init; secondaries may run */

/* Trap frame: x0..x31 (x0 slot holds nothing, x2 holds the pre-trap sp), mepc, mcause, mtval. */
#define RT_FRAME_MEPC 32
#define RT_FRAME_MCAUSE 33
#define RT_FRAME_MTVAL 34
#define RT_FRAME_WORDS 36       /* 288 bytes, keeps sp 16-byte aligned */

#endif
