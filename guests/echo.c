/*
 * echo: reads the UART and writes each byte back, upper-casing letters, so a test can prove
 * that input reaches the guest (stdin, a socket) and survives a migration. A line "quit"
 * powers off. Polls LSR.DR and sleeps in wfi on a 1 ms timer between polls.
 */
#include "rt.h"

#define UART_RBR 0x00
#define UART_LSR 0x05
#define LSR_DR 0x01

static volatile uint8_t *const uart = (volatile uint8_t *)0x10000000ul;

/* Sleep about 1 ms: a timer interrupt enabled in mie (not mstatus.MIE) ends wfi untaken. */
static void nap(void)
{
    rt_set_mtimecmp(0, rt_mtime() + rt_machine.timebase / 1000);
    rt_csr_set(mie, RT_MIE_MTIE);
    rt_wfi();
    rt_csr_clear(mie, RT_MIE_MTIE);
}

int main(void)
{
    char line[8];
    unsigned n = 0;
    rt_info_begin(RT_KIND_ECHO);
    rt_puts("echo: ready\n");
    for (;;) {
        if (!(uart[UART_LSR] & LSR_DR)) {
            nap();
            continue;
        }
        char c = (char)uart[UART_RBR];
        rt_putc(c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c);
        if (c == '\n' || c == '\r') {
            if (n == 4 && line[0] == 'q' && line[1] == 'u' && line[2] == 'i' && line[3] == 't')
                return 0;
            n = 0;
        } else if (n < sizeof line) {
            line[n++] = c;
        }
    }
}
