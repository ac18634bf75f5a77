/*
 * EventNotifier: an eventfd (or a pipe where eventfd is missing) used to
 * wake a thread blocked in poll().  See Modules/event_notifier-posix.c.
 *
 * Upstream: include/qemu/event_notifier.h, QEMU
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07 (GPL-2.0-or-later).  Written for
 * cevent; cevent is GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_EVENT_NOTIFIER_H
#define QEMU_EVENT_NOTIFIER_H

#include <stdbool.h>

struct EventNotifier {
    int rfd;
    int wfd;
    bool initialized;
};

typedef void EventNotifierHandler(EventNotifier *);

int event_notifier_init(EventNotifier *, int active);
void event_notifier_cleanup(EventNotifier *);
int event_notifier_set(EventNotifier *);
int event_notifier_test_and_clear(EventNotifier *);
int event_notifier_init_fd(EventNotifier *, int fd);
int event_notifier_get_fd(const EventNotifier *);
int event_notifier_get_wfd(const EventNotifier *);

#endif /* QEMU_EVENT_NOTIFIER_H */
