/* hello: prints one fixed line and powers off with exit status 0. */
#include "rt.h"

int main(void)
{
    rt_info_begin(RT_KIND_HELLO);
    rt_puts("Hello from livemig guest, hart 0\n");
    rt_info.state = RT_STATE_DONE;
    return 0;
}
