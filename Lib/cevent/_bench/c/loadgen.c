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
    int nconns, ep;
    double duration, warmup = 0.5, timeout = 10.0;
    Conn *conns;
    struct sockaddr_in addr;
    struct epoll_event events[256];
    Run run;
    long i;

    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE DURATION "
                "[WARMUP [TIMEOUT]]\n", argv[0]);
        return 64;
    }
    nconns = atoi(argv[3]);
    msg_size = (size_t)strtoull(argv[4], NULL, 10);
    run_args(argc, argv, &duration, &warmup, &timeout);
    if (nconns < 1 || msg_size < 1 || duration <= 0 ||
        !parse_addr(argv[1], atoi(argv[2]), &addr)) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 64;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (ep < 0 || !conns) {
        fail("setup", -1, errno);
    }
    for (i = 0; i < nconns; i++) {
        Conn *c = &conns[i];

        c->id = (uint64_t)i;
        c->msg = malloc(msg_size);
        c->echo = malloc(msg_size);
        if (!c->msg || !c->echo) {
            fail("malloc", i, ENOMEM);
        }
        memset(c->msg, 0x5a, msg_size);
        c->fd = connect_one(&addr, ep, c, i);
    }

    run_start(&run, warmup, duration, timeout, "no echo for the timeout");
    for (i = 0; i < nconns; i++) {
        make_message(&conns[i]);
        conns[i].start_ns = now_ns();
        send_some(ep, &conns[i]);
    }
    while (run_tick(&run)) {
        int n = wait_events(ep, events, 256);

        for (int k = 0; k < n; k++) {
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
                c->start_ns = run_done(&run, c->start_ns, msg_size);
                c->seq++;
                c->sent = 0;
                c->got = 0;
                make_message(c);
                send_some(ep, c);
            }
        }
    }
    run_report(&run, nconns, msg_size);
    return 0;
}
