/* Ceiling for the postcopy remote fault (bench/postcopy.ts): the same round trip as a postcopy
 * destination with a preempt channel, between two processes, in C with no JS at all.
 *
 *   process A (destination)                               process B (source)
 *   faulter thread: touch page i of a MISSING-registered
 *     memfd mapping, blocks in the kernel
 *   fault thread: poll(uffd, page socket)
 *     uffd readable → read the fault, write an 8-byte
 *       request (offset) on the request socket ─────────▶ read the request, write offset + the
 *                                                           page from its own filled memfd on
 *     page socket readable ◀──────────────────────────── the page socket
 *       → read offset + page, UFFDIO_COPY (wakes the faulter)
 *
 * Two unix stream sockets (socketpairs made before fork), as the return path and the preempt
 * channel are two sockets. The faulter times each touch; prints one JSON object:
 * {"faults": N, "p50_us": ..., "p99_us": ..., "mean_us": ...}.
 * Build: cc -O2 -pthread uffd-remote-rtt.c -o uffd-remote-rtt; run: ./uffd-remote-rtt [pages] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "latency.h"

#define PAGE 4096

static char *ram;
static long pages;
static double *lat;


static int io_all(int fd, void *buf, size_t len, int writing) {
  for (size_t done = 0; done < len;) {
    ssize_t n = writing ? write(fd, (char *)buf + done, len - done) : read(fd, (char *)buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    done += n;
  }
  return 0;
}

static void *faulter(void *arg) {
  (void)arg;
  for (long i = 0; i < pages; i++) {
    double t0 = now_us();
    ram[i * PAGE] = 1;
    lat[i] = now_us() - t0;
  }
  return NULL;
}


/* B: answers each request with the page, until the request socket closes. */
static int source(int req, int pg) {
  int fd = memfd_create("rtt-src", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, pages * PAGE) < 0) return perror("memfd"), 1;
  char *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) return perror("mmap"), 1;
  memset(mem, 0x5a, pages * PAGE);
  char rec[8 + PAGE];
  for (uint64_t off; io_all(req, &off, 8, 0) == 0;) {
    if (off >= (uint64_t)pages * PAGE) return fprintf(stderr, "bad request\n"), 1;
    memcpy(rec, &off, 8);
    memcpy(rec + 8, mem + off, PAGE);
    if (io_all(pg, rec, sizeof(rec), 1) < 0) return perror("write page"), 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  pages = argc > 1 ? atol(argv[1]) : 20000;
  int reqp[2], pgp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, reqp) < 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pgp) < 0)
    return perror("socketpair"), 1;
  pid_t pid = fork();
  if (pid < 0) return perror("fork"), 1;
  if (pid == 0) {
    close(reqp[0]);
    close(pgp[0]);
    _exit(source(reqp[1], pgp[1]));
  }
  close(reqp[1]);
  close(pgp[1]);
  int req = reqp[0], pg = pgp[0];

  lat = calloc(pages, sizeof(double));
  int fd = memfd_create("rtt-dst", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, pages * PAGE) < 0) return perror("memfd"), 1;
  ram = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  struct uffdio_api api = {.api = UFFD_API};
  if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) return perror("uffd"), 1;
  struct uffdio_register reg = {.range = {(unsigned long)ram, pages * PAGE},
                                .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) return perror("register"), 1;

  pthread_t t;
  pthread_create(&t, NULL, faulter, NULL);
  static char rec[8 + PAGE];
  for (long done = 0; done < pages;) {
    struct pollfd p[2] = {{.fd = uffd, .events = POLLIN}, {.fd = pg, .events = POLLIN}};
    if (poll(p, 2, 5000) <= 0) return fprintf(stderr, "poll timed out\n"), 1;
    if (p[0].revents & POLLIN) {
      struct uffd_msg msg[64];
      ssize_t n = read(uffd, msg, sizeof(msg));
      for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
        if (msg[i].event != UFFD_EVENT_PAGEFAULT) continue;
        uint64_t off = (msg[i].arg.pagefault.address & ~(uint64_t)(PAGE - 1)) - (uint64_t)ram;
        if (io_all(req, &off, 8, 1) < 0) return perror("write request"), 1;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      if (io_all(pg, rec, sizeof(rec), 0) < 0) return fprintf(stderr, "page socket closed\n"), 1;
      uint64_t off;
      memcpy(&off, rec, 8);
      struct uffdio_copy c = {.dst = (unsigned long)ram + off, .src = (unsigned long)(rec + 8), .len = PAGE};
      if (ioctl(uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST) return perror("copy"), 1;
      done++;
    }
  }
  pthread_join(t, NULL);
  close(req);
  waitpid(pid, NULL, 0);
  print_latencies(lat, pages);
  return 0;
}
