/*
 * `key=value` bootargs (QEMU -append, found in /chosen/bootargs), separated by spaces or tabs.
 * Values are numbers: decimal or 0x-prefixed hex, with an optional binary suffix K, M or G
 * (either case). Unknown keys are ignored. Example: "start=0x80100000 size=16M seed=42".
 */
#include "rt.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* Points at the value of `key` in `args`, or NULL. */
static const char *find_value(const char *args, const char *key)
{
    const char *p = args;
    while (*p) {
        while (is_space(*p))
            p++;
        const char *k = key, *q = p;
        while (*k && *q == *k)
            k++, q++;
        if (!*k && *q == '=')
            return q + 1;
        while (*p && !is_space(*p))
            p++;
    }
    return NULL;
}

int rt_bootarg_u64(const char *args, const char *key, uint64_t *value)
{
    const char *p = find_value(args, key);
    if (!p)
        return 0;
    uint64_t v = 0;
    int digits = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (p += 2;; p++, digits++) {
            char c = *p;
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                break;
            if (v >> 60)
                return -1;
            v = v * 16 + d;
        }
    } else {
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            if (v > (UINT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (uint64_t)(*p - '0');
        }
    }
    if (!digits)
        return -1;
    unsigned shift = 0;
    if (*p == 'k' || *p == 'K')
        shift = 10;
    else if (*p == 'm' || *p == 'M')
        shift = 20;
    else if (*p == 'g' || *p == 'G')
        shift = 30;
    if (shift) {
        if (v >> (64 - shift))
            return -1;
        v <<= shift;
        p++;
    }
    if (*p && !is_space(*p))
        return -1;
    *value = v;
    return 1;
}

int rt_arg_present(const char *key)
{
    return find_value(rt_machine.bootargs, key) != NULL;
}

uint64_t rt_arg_u64(const char *guest, const char *key, uint64_t fallback)
{
    uint64_t v;
    int r = rt_bootarg_u64(rt_machine.bootargs, key, &v);
    if (r < 0) {
        rt_printf("%s: bad value for %s= in bootargs \"%s\"\n", guest, key, rt_machine.bootargs);
        rt_fail(RT_EXIT_BADARGS);
    }
    return r ? v : fallback;
}
