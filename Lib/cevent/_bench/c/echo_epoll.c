/*
 * The physical floor of the echo rows of the server benchmark
 * (cevent._bench.servers): a single-threaded epoll echo server in plain C,
 * doing per message what any event loop must do at least (epoll_wait,
 * recv, send), with nothing else.
 *
 *   echo_epoll [PORT]     listens on 127.0.0.1:PORT (0: any free port),
 *                         prints "READY <port>" and serves until killed.
 *
 * Readable: recv up to 256 KiB and send it back.  A partial send keeps the
 * rest in the connection's buffer, stops reading and waits for EPOLLOUT,
 * as an asyncio transport does with its write buffer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

typedef struct Conn {
    int fd;
    char *pending;              /* unsent part of the last echo */
    size_t off, len;
} Conn;

static char buf[BUF_SIZE];

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

static void
conn_close(Conn *c)
{
    close(c->fd);
    free(c->pending);
    free(c);
}

static void
watch(int ep, int op, Conn *c, unsigned events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    if (epoll_ctl(ep, op, c->fd, &ev) < 0) {
        die("epoll_ctl");
    }
}

/* Send what is pending; 1: all sent, 0: would block, -1: error. */
static int
flush(Conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->pending + c->off, c->len - c->off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            return errno == EAGAIN ? 0 : -1;
        }
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 1;
}

static void
on_readable(int ep, Conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        ssize_t w;

        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) {
                return;
            }
            conn_close(c);
            return;
        }
        w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            conn_close(c);
            return;
        }
        if (w < 0) {
            w = 0;
        }
        if (w < n) {
            char *p = realloc(c->pending, (size_t)(n - w));
            if (!p) {
                die("realloc");
            }
            memcpy(p, buf + w, (size_t)(n - w));
            c->pending = p;
            c->off = 0;
            c->len = (size_t)(n - w);
            watch(ep, EPOLL_CTL_MOD, c, EPOLLOUT);
            return;
        }
        if ((size_t)n < sizeof(buf)) {
            return;
        }
    }
}

int
main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int lfd, ep, one = 1;
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    struct epoll_event events[256], lev;

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        die("socket");
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        die("bind/listen");
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("epoll_create1");
    }
    lev.events = EPOLLIN;
    lev.data.ptr = NULL;        /* the listening socket */
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        die("epoll_ctl");
    }
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (;;) {
        int n = epoll_wait(ep, events, 256, -1), k;

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (k = 0; k < n; k++) {
            Conn *c = events[k].data.ptr;

            if (c == NULL) {
                int fd;

                while ((fd = accept4(lfd, NULL, NULL,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    c = calloc(1, sizeof(*c));
                    if (!c) {
                        die("calloc");
                    }
                    c->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                               sizeof(one));
                    watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
                }
                continue;
            }
            if (events[k].events & EPOLLOUT) {
                int r = flush(c);
                if (r < 0) {
                    conn_close(c);
                } else if (r > 0) {
                    watch(ep, EPOLL_CTL_MOD, c, EPOLLIN);
                    on_readable(ep, c);
                }
                continue;
            }
            on_readable(ep, c);
        }
    }
}
