/*
 * Request/response load generator for the server benchmark
 * (cevent._bench.servers): CONNS connections to HOST:PORT, each sending a
 * SIZE-byte message, reading back the whole echo, checking every byte of
 * it against what was sent, then sending the next.  Runs WARMUP seconds,
 * then counts round trips for DURATION seconds, and prints one JSON line:
 *
 *   {"ok": true, "round_trips": N, "seconds": T, "rate": N/T,
 *    "verified_bytes": B, "cpu": C, "p50_us": .., "p90_us": .., "p99_us": ..}
 *
 * where "cpu" is this process's CPU time over the measured window divided
 * by its wall time (1.0: the load generator itself was the bottleneck).
 * A short read (EOF), a wrong byte, a socket error or no progress for
 * TIMEOUT seconds prints {"ok": false, "error": "..."} and exits non-zero.
 *
 *   loadgen HOST PORT CONNS SIZE DURATION [WARMUP [TIMEOUT]]
 *
 * Every message starts with a 16-byte header (connection number, sequence
 * number); every 61st byte after it depends on both too, so a stale or
 * misrouted echo is caught as well as a corrupted one.  The whole echo is
 * compared with the whole message.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

typedef struct Conn {
    int fd;
    uint64_t id;
    uint64_t seq;
    unsigned char *msg;         /* what was sent */
    unsigned char *echo;        /* what came back */
    size_t sent;
    size_t got;
    bool want_out;              /* EPOLLOUT registered */
    uint64_t start_ns;          /* when the message was started */
} Conn;

static size_t msg_size;

/* Fill c->msg for message c->seq: header, then the pattern. */
static void
make_message(Conn *c)
{
    size_t i;
    unsigned char k = (unsigned char)(c->id * 131 + c->seq * 7);

    memset(c->msg, 0, msg_size < 16 ? msg_size : 16);
    if (msg_size >= 16) {
        memcpy(c->msg, &c->id, 8);
        memcpy(c->msg + 8, &c->seq, 8);
    }
    /* Only the bytes that change with seq: cheap for large messages. */
    for (i = 16; i < msg_size; i += 61) {
        c->msg[i] = (unsigned char)(k + i);
    }
}

static int
fcntl_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void
set_events(int ep, Conn *c, bool want_out)
{
    struct epoll_event ev = {
        .events = EPOLLIN | (want_out ? EPOLLOUT : 0),
        .data.ptr = c,
    };

    if (c->want_out == want_out) {
        return;
    }
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        fail("epoll_ctl", (long)c->id, errno);
    }
    c->want_out = want_out;
}

static void
send_some(int ep, Conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, c->msg + c->sent, msg_size - c->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) {
                set_events(ep, c, true);
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            fail("send", (long)c->id, errno);
        }
        c->sent += (size_t)n;
    }
    set_events(ep, c, false);
}

/* Returns true when the whole echo of the current message is in. */
static bool
recv_some(Conn *c)
{
    for (;;) {
        ssize_t n;

        if (c->got == msg_size) {
            return true;
        }
        /* Never read past this message: the next one is not sent yet. */
        n = recv(c->fd, c->echo + c->got, msg_size - c->got, 0);
        if (n < 0) {
            if (errno == EAGAIN) {
                return false;
            }
            if (errno == EINTR) {
                continue;
            }
            fail("recv", (long)c->id, errno);
        }
        if (n == 0) {
            fail("short echo: the server closed the connection", (long)c->id,
                 0);
        }
        if (c->got + (size_t)n > c->sent) {
            fail("echo ahead of what was sent", (long)c->id, 0);
        }
        c->got += (size_t)n;
    }
}

int
main(int argc, char **argv)
{
    const char *host;
    int port, nconns, ep;
    double duration, warmup = 0.5, timeout = 10.0;
    Conn *conns;
    struct sockaddr_in addr;
    struct epoll_event events[256];
    uint64_t t_start, t_measure, t_end, last_progress, count = 0;
    uint64_t verified = 0;
    double cpu0 = 0;
    bool measuring = false;
    long i;

    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE DURATION "
                "[WARMUP [TIMEOUT]]\n", argv[0]);
        return 64;
    }
    host = argv[1];
    port = atoi(argv[2]);
    nconns = atoi(argv[3]);
    msg_size = (size_t)strtoull(argv[4], NULL, 10);
    duration = atof(argv[5]);
    if (argc > 6) {
        warmup = atof(argv[6]);
    }
    if (argc > 7) {
        timeout = atof(argv[7]);
    }
    if (nconns < 1 || msg_size < 1 || duration <= 0 || port <= 0) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 64;
    }

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: bad IPv4 address %s\n", host);
        return 64;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (ep < 0 || !conns) {
        fail("setup", -1, errno);
    }
    for (i = 0; i < nconns; i++) {
        Conn *c = &conns[i];
        int one = 1;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

        c->id = (uint64_t)i;
        c->msg = malloc(msg_size);
        c->echo = malloc(msg_size);
        if (!c->msg || !c->echo) {
            fail("malloc", i, ENOMEM);
        }
        memset(c->msg, 0x5a, msg_size);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            fail("socket", i, errno);
        }
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            fail("connect", i, errno);
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (fcntl_nonblock(c->fd) < 0) {
            fail("fcntl", i, errno);
        }
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fail("epoll_ctl", i, errno);
        }
    }

    t_start = now_ns();
    t_measure = t_start + (uint64_t)(warmup * 1e9);
    t_end = t_measure + (uint64_t)(duration * 1e9);
    last_progress = t_start;
    for (i = 0; i < nconns; i++) {
        make_message(&conns[i]);
        conns[i].start_ns = t_start;
        send_some(ep, &conns[i]);
    }

    for (;;) {
        uint64_t now = now_ns();
        int n, k;

        if (!measuring && now >= t_measure) {
            measuring = true;
            count = 0;
            verified = 0;
            memset(hist, 0, sizeof(hist));
            hist_n = 0;
            cpu0 = cpu_seconds();
            t_measure = now;
        }
        if (now >= t_end) {
            break;
        }
        if (now - last_progress > (uint64_t)(timeout * 1e9)) {
            fail("no echo for the timeout", -1, 0);
        }
        n = epoll_wait(ep, events, 256, 100);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("epoll_wait", -1, errno);
        }
        for (k = 0; k < n; k++) {
            Conn *c = events[k].data.ptr;

            if (events[k].events & (EPOLLERR | EPOLLHUP) &&
                !(events[k].events & EPOLLIN)) {
                fail("connection error", (long)c->id, 0);
            }
            if (events[k].events & EPOLLOUT) {
                send_some(ep, c);
            }
            if (events[k].events & EPOLLIN && recv_some(c)) {
                if (c->sent != msg_size ||
                    memcmp(c->msg, c->echo, msg_size) != 0) {
                    fail("wrong echo: bytes differ from what was sent",
                         (long)c->id, 0);
                }
                now = now_ns();
                last_progress = now;
                if (measuring) {
                    count++;
                    verified += msg_size;
                    hist_add(now - c->start_ns);
                }
                c->seq++;
                c->sent = 0;
                c->got = 0;
                make_message(c);
                c->start_ns = now;
                send_some(ep, c);
            }
        }
    }
    print_result(count, (now_ns() - t_measure) / 1e9, verified,
                 cpu_seconds() - cpu0, nconns, msg_size);
    return 0;
}
