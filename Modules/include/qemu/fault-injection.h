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
#endif

#endif /* QEMU_FAULT_INJECTION_H */
