/*
 * cevent: fault injection knobs for tests, only compiled in with
 * CEVENT_FAULT_INJECTION.  cevent's own header; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_FAULT_INJECTION_H
#define QEMU_FAULT_INJECTION_H

#ifdef CEVENT_FAULT_INJECTION
/*
 * Nonzero: fdmon_io_uring_setup() behaves as if io_uring_queue_init()
 * failed with this (positive) errno.  Defined in Modules/fdmon-io_uring.c.
 */
extern int cevent_fault_io_uring_init_errno;

/*
 * cevent: nonzero: event_notifier_init() behaves as if eventfd() failed
 * with this (positive) errno; ENOSYS selects the pipe fallback.  Defined
 * in Modules/event_notifier-posix.c.
 */
extern int cevent_fault_eventfd_errno;

/*
 * cevent: fault injection.  Nonzero: fdmon_epoll_setup() behaves as if
 * epoll_create1() failed with this (positive) errno.  Defined in
 * Modules/fdmon-epoll.c.
 */
extern int cevent_fault_epoll_create_errno;

/*
 * cevent: fault injection.  N > 0: the Nth epoll_ctl() call of
 * Modules/fdmon-epoll.c from now on (upgrade or update) fails with
 * cevent_fault_epoll_ctl_errno (EPERM when that is 0), once; the counter
 * then stays at 0.  Defined in Modules/fdmon-epoll.c.
 */
extern int cevent_fault_epoll_ctl_countdown;
extern int cevent_fault_epoll_ctl_errno;
#endif

#endif /* QEMU_FAULT_INJECTION_H */
