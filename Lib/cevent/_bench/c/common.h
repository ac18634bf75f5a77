/*
 * What the server benchmark's C load generators (loadgen.c, httpload.c)
 * share: the clock, the CPU time, the failure report, the latency
 * histogram and the result line.  Each program includes it once.
 */
#ifndef CEVENT_BENCH_COMMON_H
#define CEVENT_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double
cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* {"ok": false, "error": ...} and exit: every failure is loud. */
static void
fail(const char *what, long conn, int err)
{
    printf("{\"ok\": false, \"error\": \"%s (connection %ld%s%s)\"}\n",
           what, conn, err ? ": " : "", err ? strerror(err) : "");
    fflush(stdout);
    exit(2);
}

/* Latency histogram: 1 us buckets up to 10 ms, then 100 us up to 1 s. */
#define FINE_BUCKETS 10000
#define COARSE_BUCKETS 9900
static uint64_t hist[FINE_BUCKETS + COARSE_BUCKETS + 1];
static uint64_t hist_n;

static void
hist_add(uint64_t ns)
{
    uint64_t us = ns / 1000;
    size_t i;

    if (us < FINE_BUCKETS) {
        i = us;
    } else if (us < 1000000) {
        i = FINE_BUCKETS + (us - FINE_BUCKETS) / 100;
    } else {
        i = FINE_BUCKETS + COARSE_BUCKETS;
    }
    hist[i]++;
    hist_n++;
}

static double
hist_quantile(double q)
{
    uint64_t want = (uint64_t)(q * hist_n), seen = 0;
    size_t i;

    for (i = 0; i <= FINE_BUCKETS + COARSE_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) {
            return i < FINE_BUCKETS ? (double)i
                   : FINE_BUCKETS + (double)(i - FINE_BUCKETS) * 100;
        }
    }
    return 1e6;
}

/* The result line of a run: @count round trips in @wall seconds. */
static void
print_result(uint64_t count, double wall, uint64_t verified, double cpu,
             int nconns, size_t size)
{
    printf("{\"ok\": true, \"round_trips\": %llu, \"seconds\": %.6f, "
           "\"rate\": %.1f, \"verified_bytes\": %llu, \"cpu\": %.3f, "
           "\"p50_us\": %.0f, \"p90_us\": %.0f, \"p99_us\": %.0f, "
           "\"conns\": %d, \"size\": %zu}\n",
           (unsigned long long)count, wall, count / wall,
           (unsigned long long)verified, cpu / wall,
           hist_quantile(0.50), hist_quantile(0.90), hist_quantile(0.99),
           nconns, size);
}

#endif /* CEVENT_BENCH_COMMON_H */
