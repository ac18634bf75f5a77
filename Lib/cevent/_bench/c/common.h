/*
 * What the server benchmark's C load generators (loadgen.c, httpload.c)
 * share: the clock, the CPU time, the failure report, the latency
 * histogram, the connections, the measured run and its result line.
 * Each program includes it once.
 */
#ifndef CEVENT_BENCH_COMMON_H
#define CEVENT_BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

/* Connect to @addr: a non-blocking TCP_NODELAY socket in @ep, with
 * @ptr as its event data; @id names it in a failure. */
static int
connect_one(const struct sockaddr_in *addr, int ep, void *ptr, long id)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };

    if (fd < 0) {
        fail("socket", id, errno);
    }
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        fail("connect", id, errno);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        fail("fcntl", id, errno);
    }
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        fail("epoll_ctl", id, errno);
    }
    return fd;
}

/* DURATION [WARMUP [TIMEOUT]], argv[5] on, of both programs. */
static void
run_args(int argc, char **argv, double *duration, double *warmup,
         double *timeout)
{
    *duration = atof(argv[5]);
    if (argc > 6) {
        *warmup = atof(argv[6]);
    }
    if (argc > 7) {
        *timeout = atof(argv[7]);
    }
}

/* HOST (IPv4) and PORT of the command line into @addr; false if bad. */
static bool
parse_addr(const char *host, int port, struct sockaddr_in *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return port > 0 && port < 65536 &&
           inet_pton(AF_INET, host, &addr->sin_addr) == 1;
}

/*
 * The measured run: a warm-up, then the measured window, in which
 * run_done() counts round trips; no round trip for @timeout seconds is a
 * failure (@stall says what was awaited).
 */
typedef struct Run {
    uint64_t t_measure, t_end, last_progress, timeout_ns;
    uint64_t count, verified;
    double cpu0;
    bool measuring;
    const char *stall;
} Run;

static void
run_start(Run *r, double warmup, double duration, double timeout,
          const char *stall)
{
    uint64_t now = now_ns();

    memset(r, 0, sizeof(*r));
    r->t_measure = now + (uint64_t)(warmup * 1e9);
    r->t_end = r->t_measure + (uint64_t)(duration * 1e9);
    r->last_progress = now;
    r->timeout_ns = (uint64_t)(timeout * 1e9);
    r->stall = stall;
}

/* Before each wait: false once the run is over. */
static bool
run_tick(Run *r)
{
    uint64_t now = now_ns();

    if (!r->measuring && now >= r->t_measure) {
        r->measuring = true;
        memset(hist, 0, sizeof(hist));
        hist_n = 0;
        r->cpu0 = cpu_seconds();
        r->t_measure = now;
    }
    if (now >= r->t_end) {
        return false;
    }
    if (now - r->last_progress > r->timeout_ns) {
        fail(r->stall, -1, 0);
    }
    return true;
}

/* epoll_wait() for at most 100 ms; 0 events after EINTR. */
static int
wait_events(int ep, struct epoll_event *events, int max)
{
    int n = epoll_wait(ep, events, max, 100);

    if (n < 0) {
        if (errno != EINTR) {
            fail("epoll_wait", -1, errno);
        }
        n = 0;
    }
    return n;
}

/* A round trip started at @start_ns is complete, @bytes of it checked;
 * returns the time now, the start of the next one. */
static uint64_t
run_done(Run *r, uint64_t start_ns, size_t bytes)
{
    uint64_t now = now_ns();

    r->last_progress = now;
    if (r->measuring) {
        r->count++;
        r->verified += bytes;
        hist_add(now - start_ns);
    }
    return now;
}

/* The result line of the run. */
static void
run_report(const Run *r, int nconns, size_t size)
{
    double wall = (now_ns() - r->t_measure) / 1e9;
    double cpu = cpu_seconds() - r->cpu0;

    printf("{\"ok\": true, \"round_trips\": %llu, \"seconds\": %.6f, "
           "\"rate\": %.1f, \"verified_bytes\": %llu, \"cpu\": %.3f, "
           "\"p50_us\": %.0f, \"p90_us\": %.0f, \"p99_us\": %.0f, "
           "\"conns\": %d, \"size\": %zu}\n",
           (unsigned long long)r->count, wall, r->count / wall,
           (unsigned long long)r->verified, cpu / wall,
           hist_quantile(0.50), hist_quantile(0.90), hist_quantile(0.99),
           nconns, size);
}

#endif /* CEVENT_BENCH_COMMON_H */
