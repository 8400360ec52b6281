/* Ceiling for the fault round trip: the same loop as bench/host.ts, in C with no JS at all.
 * One thread reads the first byte of each page of a MISSING-registered memfd mapping; another
 * poll()s the userfaultfd, reads the fault and resolves it with UFFDIO_COPY. Prints one JSON
 * object: {"faults": N, "p50_us": ..., "p99_us": ..., "mean_us": ...}.
 * Build: cc -O2 -pthread uffd-rtt.c -o uffd-rtt; run: ./uffd-rtt [pages] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "latency.h"

#define PAGE 4096

static int uffd;
static char *ram;
static long pages;
static double *lat;
static char src[PAGE];


static void *faulter(void *arg) {
  (void)arg;
  for (long i = 0; i < pages; i++) {
    double t0 = now_us();
    volatile char c = ram[i * PAGE];
    (void)c;
    lat[i] = now_us() - t0;
  }
  return NULL;
}


int main(int argc, char **argv) {
  pages = argc > 1 ? atol(argv[1]) : 20000;
  lat = calloc(pages, sizeof(double));
  int fd = memfd_create("rtt", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, pages * PAGE) < 0) return perror("memfd"), 1;
  ram = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  struct uffdio_api api = {.api = UFFD_API};
  if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) return perror("uffd"), 1;
  struct uffdio_register reg = {.range = {(unsigned long)ram, pages * PAGE},
                                .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) return perror("register"), 1;
  memset(src, 0x5a, PAGE);

  pthread_t t;
  pthread_create(&t, NULL, faulter, NULL);
  for (long done = 0; done < pages;) {
    struct pollfd p = {.fd = uffd, .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0) return fprintf(stderr, "poll timed out\n"), 1;
    struct uffd_msg msg[64];
    ssize_t n = read(uffd, msg, sizeof(msg));
    for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
      if (msg[i].event != UFFD_EVENT_PAGEFAULT) continue;
      struct uffdio_copy c = {.dst = msg[i].arg.pagefault.address & ~(unsigned long)(PAGE - 1),
                              .src = (unsigned long)src, .len = PAGE};
      if (ioctl(uffd, UFFDIO_COPY, &c) < 0) return perror("copy"), 1;
      done++;
    }
  }
  pthread_join(t, NULL);
  print_latencies(lat, pages);
  return 0;
}
