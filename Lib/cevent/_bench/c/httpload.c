/*
 * HTTP/1.1 keep-alive load generator for the server benchmark
 * (cevent._bench.servers), lighter than wrk: CONNS connections to
 * HOST:PORT, each sending "GET / HTTP/1.1", reading the whole response,
 * checking it, then sending the next request (one request in flight per
 * connection, no pipelining).  Runs WARMUP seconds, then counts requests
 * for DURATION seconds, and prints one JSON line in the format of
 * loadgen.c (round_trips are requests):
 *
 *   {"ok": true, "round_trips": N, "seconds": T, "rate": N/T,
 *    "verified_bytes": B, "cpu": C, "p50_us": .., "p90_us": .., "p99_us": ..}
 *
 * A response is checked for: the status line "HTTP/1.1 200 ", a
 * Content-Length header, a body equal to BODY, no byte beyond it (the
 * next request is not sent yet) and no "Connection: close".  Anything
 * else, a closed connection, a socket error or no progress for TIMEOUT
 * seconds prints {"ok": false, "error": "..."} and exits non-zero.
 *
 *   httpload HOST PORT CONNS BODY DURATION [WARMUP [TIMEOUT]]
 */
#define _GNU_SOURCE
#include <strings.h>
#include <unistd.h>

#include "common.h"

#define RESPONSE_MAX 8192

typedef struct Conn {
    int fd;
    long id;
    char buf[RESPONSE_MAX];
    size_t got;
    uint64_t start_ns;
} Conn;

static char request[256];
static size_t request_len;
static const char *body;
static size_t body_len;

static void
send_request(Conn *c)
{
    size_t sent = 0;

    /* A request is far smaller than the socket buffer, which holds no
     * earlier request: it goes in one call unless something is wrong. */
    while (sent < request_len) {
        ssize_t n = send(c->fd, request + sent, request_len - sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("send", c->id, errno);
        }
        sent += (size_t)n;
    }
    c->got = 0;
}

/* The value of header @name in the header block @head (NUL-terminated,
 * lines separated by CRLF), or NULL. */
static const char *
header_value(const char *head, const char *name)
{
    size_t len = strlen(name);
    const char *line = strstr(head, "\r\n");

    while (line) {
        line += 2;
        if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
            const char *v = line + len + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            return v;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/* 1 when the whole response is in and checked, 0 when more is needed. */
static int
check_response(Conn *c)
{
    char *end;
    const char *cl, *conn;
    size_t head_len, want;

    c->buf[c->got] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (!end) {
        if (c->got >= RESPONSE_MAX - 1) {
            fail("response headers too long", c->id, 0);
        }
        return 0;
    }
    head_len = (size_t)(end - c->buf) + 4;
    *end = '\0';
    if (strncmp(c->buf, "HTTP/1.1 200 ", 13) != 0) {
        fail("wrong response: not HTTP/1.1 200", c->id, 0);
    }
    cl = header_value(c->buf, "Content-Length");
    if (!cl) {
        fail("wrong response: no Content-Length", c->id, 0);
    }
    conn = header_value(c->buf, "Connection");
    if (conn && strncasecmp(conn, "close", 5) == 0) {
        fail("wrong response: Connection: close", c->id, 0);
    }
    want = (size_t)strtoull(cl, NULL, 10);
    *end = '\r';
    if (want != body_len) {
        fail("wrong response: Content-Length differs from the body",
             c->id, 0);
    }
    if (c->got < head_len + want) {
        return 0;
    }
    if (c->got > head_len + want) {
        fail("response ahead of the request", c->id, 0);
    }
    if (memcmp(c->buf + head_len, body, body_len) != 0) {
        fail("wrong response: body differs", c->id, 0);
    }
    return 1;
}

/* true when the whole response to the current request is in. */
static bool
recv_some(Conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->got, RESPONSE_MAX - 1 - c->got,
                         0);
        if (n < 0) {
            if (errno == EAGAIN) {
                return false;
            }
            if (errno == EINTR) {
                continue;
            }
            fail("recv", c->id, errno);
        }
        if (n == 0) {
            fail("short response: the server closed the connection", c->id,
                 0);
        }
        c->got += (size_t)n;
        if (check_response(c)) {
            return true;
        }
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
        fprintf(stderr, "usage: %s HOST PORT CONNS BODY DURATION "
                "[WARMUP [TIMEOUT]]\n", argv[0]);
        return 64;
    }
    nconns = atoi(argv[3]);
    body = argv[4];
    body_len = strlen(body);
    run_args(argc, argv, &duration, &warmup, &timeout);
    if (nconns < 1 || duration <= 0 || body_len > RESPONSE_MAX / 2 ||
        strlen(argv[1]) > 64 || !parse_addr(argv[1], atoi(argv[2]), &addr)) {
        fprintf(stderr, "httpload: bad arguments\n");
        return 64;
    }
    request_len = (size_t)snprintf(request, sizeof(request),
                                   "GET / HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
                                   argv[1], argv[2]);

    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (ep < 0 || !conns) {
        fail("setup", -1, errno);
    }
    for (i = 0; i < nconns; i++) {
        conns[i].id = i;
        conns[i].fd = connect_one(&addr, ep, &conns[i], i);
    }

    run_start(&run, warmup, duration, timeout, "no response for the timeout");
    for (i = 0; i < nconns; i++) {
        conns[i].start_ns = now_ns();
        send_request(&conns[i]);
    }
    while (run_tick(&run)) {
        int n = wait_events(ep, events, 256);

        for (int k = 0; k < n; k++) {
            Conn *c = events[k].data.ptr;

            if (!(events[k].events & EPOLLIN)) {
                fail("connection error", c->id, 0);
            }
            if (recv_some(c)) {
                c->start_ns = run_done(&run, c->start_ns, body_len);
                send_request(c);
            }
        }
    }
    run_report(&run, nconns, body_len);
    return 0;
}
