/* The few libc functions GCC may emit calls to even with -ffreestanding. */
#include "rt.h"

void *memset(void *dst, int c, size_t n)
{
    volatile uint8_t *d = dst;   /* volatile: stop GCC turning this loop into a memset call */
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    volatile uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}
