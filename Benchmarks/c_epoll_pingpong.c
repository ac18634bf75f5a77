/*
 * c_epoll_pingpong: the plain C reference for Benchmarks/capi_pingpong.py.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * One AF_UNIX socketpair, both ends non-blocking and registered
 * level-triggered for EPOLLIN in one epoll instance, in one thread: the
 * handler of a reads the echo and sends the next byte, the handler of b
 * echoes what it reads.  One round trip = 2 epoll_wait() calls with one
 * ready fd each, 2 read() and 2 write() calls (one read per readiness,
 * level-triggered) -- the same work that the C handlers of
 * Tests/capi/testcapi.c do under cevent, and the workload of the "fd
 * ping-pong" anchor.
 *
 * Usage: c_epoll_pingpong ROUND_TRIPS [WARMUP]
 * Prints one line: "<round trips> <seconds> <round trips per second>".
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fd_a, fd_b, epfd;

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

/* One read() per readiness, as the consumer's handlers do. */
static ssize_t
read_once(int fd)
{
    char buf[64];
    ssize_t r;

    do {
        r = read(fd, buf, sizeof(buf));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        errno = EPIPE;
        die("read");
    }
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        die("read");
    }
    return r;
}

static void
send_byte(int fd)
{
    char c = 'x';

    while (write(fd, &c, 1) != 1) {
        if (errno != EINTR) {
            die("write");
        }
    }
}

static void
run(long n)
{
    struct epoll_event events[8];
    long done = 0;

    send_byte(fd_a);
    while (done < n) {
        int nev = epoll_wait(epfd, events, 8, -1);
        if (nev < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (int i = 0; i < nev; i++) {
            int fd = events[i].data.fd;
            ssize_t r = read_once(fd);

            if (fd == fd_b) {
                for (ssize_t k = 0; k < r; k++) {
                    send_byte(fd_b);
                }
            }
            else {
                done += r;
                if (r > 0 && done < n) {
                    send_byte(fd_a);
                }
            }
        }
    }
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
    struct epoll_event ev = {.events = EPOLLIN};
    long n, warmup;
    int sv[2];
    double t0, t1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s ROUND_TRIPS [WARMUP]\n", argv[0]);
        return 2;
    }
    n = atol(argv[1]);
    warmup = argc > 2 ? atol(argv[2]) : n / 10;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) < 0) {
        die("socketpair");
    }
    fd_a = sv[0];
    fd_b = sv[1];
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        die("epoll_create1");
    }
    ev.data.fd = fd_a;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd_a, &ev) < 0) {
        die("epoll_ctl");
    }
    ev.data.fd = fd_b;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd_b, &ev) < 0) {
        die("epoll_ctl");
    }
    if (warmup > 0) {
        run(warmup);
    }
    t0 = now();
    run(n);
    t1 = now();
    printf("%ld %.6f %.1f\n", n, t1 - t0, n / (t1 - t0));
    return 0;
}
