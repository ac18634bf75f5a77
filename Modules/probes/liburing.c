/*
 * The one liburing probe of the build: setup.py, run.sh and
 * Tests/c/Makefile each compile and link this file with -luring, and build
 * the io_uring backend only if that works.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */
#include <liburing.h>

int main(void)
{
    struct io_uring ring;

    if (io_uring_queue_init(1, &ring, 0) == 0) {
        io_uring_queue_exit(&ring);
    }
    return 0;
}
