/*
 * EventNotifier on POSIX: an eventfd, or a non-blocking pipe where the
 * kernel has no eventfd, used by one thread to wake another from poll().
 *
 * Port of QEMU's util/event_notifier-posix.c at revision
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07, restated in cevent's own words.
 * Upstream (Copyright Red Hat, Inc. 2010, by Michael S. Tsirkin) is
 * distributed under the GNU GPL, version 2 or (at your option) any later
 * version, as stated in its header.  cevent is GPL-2.0-or-later.
 *
 * Only the POSIX part is ported; the functions built on
 * qemu_set_fd_handler are not.
 *
 * Divergences: see Modules/PORTING.md
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/event_notifier.h"
#include "qemu/fault-injection.h"

/*
 * cevent: there is no configure step to probe for eventfd; every Linux
 * that cevent supports has it.
 */
#if defined(CONFIG_LINUX) && !defined(CONFIG_EVENTFD)
#define CONFIG_EVENTFD 1
#endif

#ifdef CONFIG_EVENTFD
#include <sys/eventfd.h>
#endif

#ifdef CEVENT_FAULT_INJECTION
/*
 * cevent: when nonzero, event_notifier_init() behaves as if eventfd()
 * had failed with this (positive) errno; ENOSYS exercises the pipe
 * fallback.  Declared in qemu/fault-injection.h.
 */
int cevent_fault_eventfd_errno;
#endif

#ifdef CONFIG_EVENTFD
/*
 * Make @e use the file descriptor @fd, which the caller already owns.
 * @fd has to be a real eventfd: a pipe cannot stand in for one here.
 *
 * cevent: returns int (always 0), as cevent's header declares; upstream
 * returns void.
 */
int event_notifier_init_fd(EventNotifier *e, int fd)
{
    e->rfd = fd;
    e->wfd = fd;
    e->initialized = true;
    return 0;
}

/*
 * cevent: the eventfd() call of event_notifier_init(), behind a hook that
 * the reliability tests can make fail.
 */
static int event_notifier_eventfd(void)
{
#ifdef CEVENT_FAULT_INJECTION
    int fault = qatomic_read(&cevent_fault_eventfd_errno);

    if (fault) {
        errno = fault;
        return -1;
    }
#endif
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}
#endif

/*
 * cevent: upstream's fcntl_setfl() from util/oslib-posix.c, which cevent
 * does not port: add @flag to the status flags of @fd.  Returns 0, or
 * -errno on failure (with errno left set).
 */
static int event_notifier_setfl(int fd, int flag)
{
    int flags;

    flags = fcntl(fd, F_GETFL);
    if (flags == -1) {
        return -errno;
    }
    if (fcntl(fd, F_SETFL, flags | flag) == -1) {
        return -errno;
    }
    return 0;
}

int event_notifier_init(EventNotifier *e, int active)
{
    int fds[2];
    int ret;

#ifdef CONFIG_EVENTFD
    ret = event_notifier_eventfd();
#else
    ret = -1;
    errno = ENOSYS;
#endif
    if (ret >= 0) {
        e->rfd = e->wfd = ret;
    } else {
        if (errno != ENOSYS) {
            return -errno;
        }
        /* cevent: pipe2() stands for upstream's qemu_pipe() */
        if (pipe2(fds, O_CLOEXEC) < 0) {
            return -errno;
        }
        ret = event_notifier_setfl(fds[0], O_NONBLOCK);
        if (ret < 0) {
            ret = -errno;
            goto fail;
        }
        ret = event_notifier_setfl(fds[1], O_NONBLOCK);
        if (ret < 0) {
            ret = -errno;
            goto fail;
        }
        e->rfd = fds[0];
        e->wfd = fds[1];
    }
    e->initialized = true;
    if (active) {
        event_notifier_set(e);
    }
    return 0;

fail:
    close(fds[0]);
    close(fds[1]);
    return ret;
}

void event_notifier_cleanup(EventNotifier *e)
{
    if (!e->initialized) {
        return;
    }

    if (e->rfd != e->wfd) {
        close(e->rfd);
    }

    e->rfd = -1;
    close(e->wfd);
    e->wfd = -1;
    e->initialized = false;
}

int event_notifier_get_fd(const EventNotifier *e)
{
    return e->rfd;
}

int event_notifier_get_wfd(const EventNotifier *e)
{
    return e->wfd;
}

int event_notifier_set(EventNotifier *e)
{
    static const uint64_t value = 1;
    ssize_t ret;

    if (!e->initialized) {
        return -1;
    }

    do {
        ret = write(e->wfd, &value, sizeof(value));
    } while (ret < 0 && errno == EINTR);

    /*
     * EAGAIN means the counter or the pipe is already full, so a wake-up
     * is pending anyway: that is a success.
     */
    if (ret < 0 && errno != EAGAIN) {
        return -errno;
    }
    return 0;
}

int event_notifier_test_and_clear(EventNotifier *e)
{
    int value;
    ssize_t len;
    char buffer[512];

    if (!e->initialized) {
        return 0;
    }

    /*
     * Empty the descriptor.  An eventfd hands out its whole counter in a
     * single 8-byte read; a pipe may need several reads.
     */
    value = 0;
    do {
        len = read(e->rfd, buffer, sizeof(buffer));
        value |= (len > 0);
    } while ((len == -1 && errno == EINTR) || len == sizeof(buffer));

    return value;
}
