/* C side of the trap vector (crt0.S rt_trap_entry). */
#include "rt.h"

int (*rt_trap_hook)(struct rt_frame *frame);
int rt_timer_interrupt(void);

void rt_trap(struct rt_frame *f)
{
    if (f->mcause == (RT_MCAUSE_INTERRUPT | RT_IRQ_M_TIMER) && rt_timer_interrupt())
        return;
    if (rt_trap_hook && rt_trap_hook(f))
        return;
    rt_printf("\nunexpected trap: mcause=0x%lx mepc=0x%lx mtval=0x%lx\n", f->mcause, f->mepc,
              f->mtval);
    rt_fail(RT_EXIT_TRAP);
}
