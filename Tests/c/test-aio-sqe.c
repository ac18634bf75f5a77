/*
 * C tests of aio_add_sqe() and its CqeHandlers (QEMU 10.2's io_uring API,
 * see Modules/PORTING.md), with no Python.  Built and run by
 * Tests/c/Makefile once per fd monitor (CEVENT_TEST_FDMON): with io_uring
 * the requests run; with poll and epoll the API must say it is absent.
 *
 * QEMU's series brings no unit test of the API that could be re-expressed
 * here (its only test change skips test-nested-aio-poll under io_uring,
 * which cevent does not need; Modules/PORTING.md says why), so these test
 * what the API's documentation in Modules/include/block/aio.h promises.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/aio.h"

#include <sys/socket.h>
#include "test-util.h"

#ifdef CONFIG_LINUX_IO_URING

/* A request of the tests: the handler, what prep_sqe needs, what came back */
typedef struct {
    CqeHandler cqe_handler;
    int opcode;                 /* IORING_OP_NOP, _READ or _RECV */
    unsigned sqe_flags;         /* IOSQE_* */
    int fd;
    char *buf;
    unsigned len;
    int calls;
    int order;                  /* value of completion_order when it ran */
    AioContext *nest_ctx;       /* if set, ->cb() runs aio_poll() on it */
} TestReq;

static int completion_order;

static void test_prep_sqe(struct io_uring_sqe *sqe, void *opaque)
{
    TestReq *req = opaque;

    switch (req->opcode) {
    case IORING_OP_NOP:
        io_uring_prep_nop(sqe);
        break;
    case IORING_OP_READ:
        io_uring_prep_read(sqe, req->fd, req->buf, req->len, 0);
        break;
    case IORING_OP_RECV:
        io_uring_prep_recv(sqe, req->fd, req->buf, req->len, 0);
        break;
    default:
        abort();
    }
    sqe->flags |= req->sqe_flags;
}

static void test_cqe_cb(CqeHandler *cqe_handler)
{
    TestReq *req = container_of(cqe_handler, TestReq, cqe_handler);

    req->calls++;
    req->order = completion_order++;
    if (req->nest_ctx) {
        AioContext *ctx = req->nest_ctx;

        req->nest_ctx = NULL;
        while (aio_poll(ctx, false)) {
            /* the nested loop runs the rest of the ready list */
        }
    }
}

static void submit(AioContext *ctx, TestReq *req, int opcode, int fd,
                   char *buf, unsigned len)
{
    req->cqe_handler.cb = test_cqe_cb;
    req->opcode = opcode;
    req->fd = fd;
    req->buf = buf;
    req->len = len;
    req->calls = 0;
    req->order = -1;
    aio_add_sqe(ctx, test_prep_sqe, req, &req->cqe_handler);
}

/* Poll until @req has completed (at most about 5 s of blocking polls) */
static bool wait_for(AioContext *ctx, TestReq *req)
{
    int i;

    for (i = 0; i < 1000 && !req->calls; i++) {
        aio_poll(ctx, true);
    }
    return req->calls == 1;
}

static void test_add_sqe_nop(void)
{
    AioContext *ctx = new_ctx();
    TestReq req = { 0 };

    submit(ctx, &req, IORING_OP_NOP, -1, NULL, 0);
    CHECK(req.calls == 0);          /* never from inside aio_add_sqe() */
    CHECK(aio_poll(ctx, true));     /* running the handler is progress */
    CHECK(req.calls == 1);
    CHECK(req.cqe_handler.cqe.res == 0);
    CHECK(req.cqe_handler.cqe.user_data == (uintptr_t)&req.cqe_handler);
    CHECK(!aio_poll(ctx, false));   /* and it runs only once */
    CHECK(req.calls == 1);
    aio_context_unref(ctx);
    passed++;
}

static void test_add_sqe_read_file(void)
{
    char path[] = "/tmp/cevent-test-aio-sqe-XXXXXX";
    static const char text[] = "read through the AioContext's ring";
    char buf[64];
    AioContext *ctx = new_ctx();
    TestReq req = { 0 };
    int fd = mkstemp(path);

    CHECK(fd >= 0);
    unlink(path);
    CHECK(write(fd, text, sizeof(text)) == (ssize_t)sizeof(text));

    memset(buf, 'x', sizeof(buf));
    submit(ctx, &req, IORING_OP_READ, fd, buf, sizeof(buf));
    CHECK(wait_for(ctx, &req));
    CHECK(req.cqe_handler.cqe.res == (int)sizeof(text));
    CHECK(memcmp(buf, text, sizeof(text)) == 0);

    /* An error comes back as a negative errno in the cqe */
    submit(ctx, &req, IORING_OP_READ, -1, buf, sizeof(buf));
    CHECK(wait_for(ctx, &req));
    CHECK(req.cqe_handler.cqe.res == -EBADF);

    close(fd);
    aio_context_unref(ctx);
    passed++;
}

static void test_add_sqe_recv_socket(void)
{
    AioContext *ctx = new_ctx();
    TestReq req = { 0 };
    char buf[16];
    int sv[2];

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);

    submit(ctx, &req, IORING_OP_RECV, sv[0], buf, sizeof(buf));
    aio_poll(ctx, false);
    aio_poll(ctx, false);
    CHECK(req.calls == 0);          /* nothing to receive yet */

    CHECK(write(sv[1], "ping", 4) == 4);
    CHECK(wait_for(ctx, &req));
    CHECK(req.cqe_handler.cqe.res == 4);
    CHECK(memcmp(buf, "ping", 4) == 0);

    /* The peer's close is a zero-length receive */
    submit(ctx, &req, IORING_OP_RECV, sv[0], buf, sizeof(buf));
    close(sv[1]);
    CHECK(wait_for(ctx, &req));
    CHECK(req.cqe_handler.cqe.res == 0);

    close(sv[0]);
    aio_context_unref(ctx);
    passed++;
}

/* fd handlers and CqeHandlers share the ring: each gets its own events */
static int fd_reads;

static void count_read(void *opaque)
{
    int fd = *(int *)opaque;
    char c;

    if (read(fd, &c, 1) == 1) {
        fd_reads++;
    }
}

static void test_add_sqe_with_fd_handler(void)
{
    AioContext *ctx = new_ctx();
    TestReq req = { 0 };
    char buf[8];
    int a[2], b[2];
    int i;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
    fd_reads = 0;
    aio_set_fd_handler(ctx, a[0], count_read, NULL, NULL, NULL, &a[0]);
    submit(ctx, &req, IORING_OP_RECV, b[0], buf, sizeof(buf));

    CHECK(write(a[1], "1", 1) == 1);
    for (i = 0; i < 1000 && fd_reads == 0; i++) {
        aio_poll(ctx, true);
    }
    CHECK(fd_reads == 1);
    CHECK(req.calls == 0);

    CHECK(write(b[1], "2", 1) == 1);
    CHECK(wait_for(ctx, &req));
    CHECK(req.cqe_handler.cqe.res == 1 && buf[0] == '2');
    CHECK(fd_reads == 1);

    aio_set_fd_handler(ctx, a[0], NULL, NULL, NULL, NULL, NULL);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    aio_context_unref(ctx);
    passed++;
}

/*
 * Completions run in order, and a handler that runs a nested aio_poll()
 * lets the nested loop run the rest (why upstream has CqeHandler lists).
 */
static void test_add_sqe_nested_aio_poll(void)
{
    AioContext *ctx = new_ctx();
    TestReq req[3];
    int i;

    memset(req, 0, sizeof(req));
    completion_order = 0;
    for (i = 0; i < 3; i++) {
        submit(ctx, &req[i], IORING_OP_NOP, -1, NULL, 0);
    }
    req[0].nest_ctx = ctx;
    for (i = 0; i < 100 && req[2].calls == 0; i++) {
        aio_poll(ctx, true);
    }
    for (i = 0; i < 3; i++) {
        CHECK(req[i].calls == 1);
        CHECK(req[i].order == i);
    }
    aio_context_unref(ctx);
    passed++;
}

/*
 * More requests than the sq ring has entries, queued in one go: get_sqe()
 * submits what is queued when the ring is full.
 */
static void test_add_sqe_many(void)
{
    enum { N = 1000 };
    AioContext *ctx = new_ctx();
    TestReq *req = g_new0(TestReq, N);
    int i, done = 0;

    for (i = 0; i < N; i++) {
        submit(ctx, &req[i], IORING_OP_NOP, -1, NULL, 0);
    }
    for (i = 0; i < 1000 && done < N; i++) {
        int j;

        aio_poll(ctx, true);
        for (done = 0, j = 0; j < N; j++) {
            done += req[j].calls;
        }
    }
    for (i = 0; i < N; i++) {
        CHECK(req[i].calls == 1);
    }
    aio_context_unref(ctx);
    g_free(req);
    passed++;
}

/*
 * A request in flight when the context goes: its handler does not run, and
 * once aio_context_unref() has returned the kernel no longer writes into
 * its buffer.  @sqe_flags IOSQE_ASYNC puts the receive on one of the
 * kernel's io-wq worker threads, which a closed ring stops only
 * asynchronously.
 */
static void destroy_in_flight(unsigned sqe_flags)
{
    enum { N = 8 };
    AioContext *ctx = new_ctx();
    TestReq req[N];
    char *buf[N];
    int sv[N][2];
    int i;

    memset(req, 0, sizeof(req));
    for (i = 0; i < N; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) == 0);
        buf[i] = g_malloc0(16);
        memset(buf[i], 'x', 16);
        req[i].sqe_flags = sqe_flags;
        submit(ctx, &req[i], IORING_OP_RECV, sv[i][0], buf[i], 16);
    }
    aio_poll(ctx, false);           /* the receives are with the kernel */
    usleep(10 * 1000);
    aio_context_unref(ctx);

    for (i = 0; i < N; i++) {
        CHECK(write(sv[i][1], "late", 4) == 4);
    }
    usleep(50 * 1000);
    for (i = 0; i < N; i++) {
        char got[4];

        CHECK(req[i].calls == 0);
        CHECK(memcmp(buf[i], "xxxx", 4) == 0);
        g_free(buf[i]);
        /* The data is still there for whoever reads the socket next */
        CHECK(read(sv[i][0], got, 4) == 4 && memcmp(got, "late", 4) == 0);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    passed++;
}

static void test_add_sqe_destroy_in_flight(void)
{
    destroy_in_flight(0);
    destroy_in_flight(IOSQE_ASYNC);
}

/* A request queued but never submitted before the context goes */
static void test_add_sqe_destroy_unsubmitted(void)
{
    AioContext *ctx = new_ctx();
    TestReq req = { 0 };

    submit(ctx, &req, IORING_OP_NOP, -1, NULL, 0);
    aio_context_unref(ctx);
    CHECK(req.calls == 0);
    passed++;
}

/* The task-work flags the ring was set up with (Linux 5.19+ has them) */
static void test_setup_flags(void)
{
    AioContext *ctx = new_ctx();
    unsigned flags = aio_context_io_uring_setup_flags(ctx);

    CHECK((flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG))
          == (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG));
    CHECK(!(flags & IORING_SETUP_DEFER_TASKRUN));
    aio_context_unref(ctx);
    passed++;
}

#endif /* CONFIG_LINUX_IO_URING */

static void test_has_io_uring(void)
{
    AioContext *ctx = new_ctx();
    bool uring = !strcmp(aio_context_fdmon_name(ctx), "io_uring");

    CHECK(uring == (test_kind() == AIO_FDMON_IO_URING) ||
          test_kind() == AIO_FDMON_AUTO);
#ifdef CONFIG_LINUX_IO_URING
    CHECK(aio_has_io_uring(ctx) == uring);
    CHECK(uring || aio_context_io_uring_setup_flags(ctx) == 0);
#else
    CHECK(!uring);
#endif
    aio_context_unref(ctx);
    passed++;
}

int main(void)
{
    test_has_io_uring();
#ifdef CONFIG_LINUX_IO_URING
    {
        AioContext *ctx = new_ctx();
        bool uring = aio_has_io_uring(ctx);

        aio_context_unref(ctx);
        if (uring) {
            test_add_sqe_nop();
            test_add_sqe_read_file();
            test_add_sqe_recv_socket();
            test_add_sqe_with_fd_handler();
            test_add_sqe_nested_aio_poll();
            test_add_sqe_many();
            test_add_sqe_destroy_in_flight();
            test_add_sqe_destroy_unsubmitted();
            test_setup_flags();
        }
    }
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
