/*
 * The raw unix-socket ceiling for bench/precopy.ts and bench/postcopy.ts: BYTES through one
 * unix stream socket between two processes, each end as little as the migration's could do.
 *
 *   unix-stream SOCK BYTES BUFFER SOCKBUF
 *
 * The parent listens on SOCK and reads straight into a faulted-in BUFFER-byte buffer (one
 * read(2) of up to 1 MiB at a time, wrapping), as the destination's receiver lands bytes in
 * memory; a forked child connects and writes 1 MiB slices of its own faulted-in buffer, as the
 * source sends from guest RAM. Both sockets get SOCKBUF bytes of kernel buffer (the migration
 * sockets' size). Prints {"bytes": N, "ms": T}, T from accept to the writer's EOF.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "unix-stream: %s: %s\n", what, strerror(errno));
  exit(1);
}

static char *faulted_in(size_t n, int fill) {
  char *b = malloc(n);
  if (!b) die("malloc");
  memset(b, fill, n);
  return b;
}

static void buffers(int fd, int size) {
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: unix-stream SOCK BYTES BUFFER SOCKBUF\n");
    return 2;
  }
  const char *path = argv[1];
  long long bytes = atoll(argv[2]);
  size_t bufsize = (size_t)atoll(argv[3]);
  int sockbuf = atoi(argv[4]);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  unlink(path);
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 1) < 0) die("listen");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(ls);
    char *src = faulted_in(bufsize, 0x5a);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    buffers(s, sockbuf);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    size_t off = 0;
    for (long long left = bytes; left > 0;) {
      size_t n = CHUNK;
      if ((long long)n > left) n = (size_t)left;
      if (n > bufsize - off) n = bufsize - off;
      ssize_t w = write(s, src + off, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        die("write");
      }
      left -= w;
      off = (off + (size_t)w) % bufsize;
    }
    close(s);
    _exit(0);
  }

  // After the fork: pages faulted in before it would be copy-on-write shared with the child,
  // and the first read into each would copy it.
  char *ram = faulted_in(bufsize, 0x11);
  int c = accept(ls, NULL, NULL);
  if (c < 0) die("accept");
  buffers(c, sockbuf);
  double t0 = now_ms();
  long long got = 0;
  size_t off = 0;
  for (;;) {
    size_t n = CHUNK;
    if (n > bufsize - off) n = bufsize - off;
    ssize_t r = read(c, ram + off, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("read");
    }
    if (r == 0) break;
    got += r;
    off = (off + (size_t)r) % bufsize;
  }
  double ms = now_ms() - t0;
  waitpid(child, NULL, 0);
  unlink(path);
  printf("{\"bytes\": %lld, \"ms\": %.3f}\n", got, ms);
  return got == bytes ? 0 : 1;
}
