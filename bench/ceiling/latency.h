/*
 * What the C ceilings that time page faults share (uffd-rtt.c, uffd-remote-rtt.c): the clock,
 * and the one JSON line they print.
 */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* {"faults", "p50_us", "p99_us", "mean_us"} of lat[0, n) (sorted in place). */
static void print_latencies(double *lat, long n) {
  double sum = 0;
  for (long i = 0; i < n; i++) sum += lat[i];
  qsort(lat, n, sizeof(double), cmp_double);
  printf("{\"faults\": %ld, \"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f}\n", n, lat[n / 2], lat[n * 99 / 100], sum / n);
}
