/*
 * Intrusive list macros under QEMU's names (QLIST, QSLIST, QSIMPLEQ), with
 * QEMU's semantics: QLIST_REMOVE clears the links, so QLIST_IS_INSERTED
 * tells whether an element is on a list; QLIST_SAFE_REMOVE removes only an
 * inserted element.
 *
 * Upstream: include/qemu/queue.h (BSD-derived), QEMU
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07.  Written for cevent; cevent is
 * GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_SYS_QUEUE_H
#define QEMU_SYS_QUEUE_H

#include "qemu/atomic.h"

/* Doubly linked list: le_prev points at the previous element's le_next. */
#define QLIST_HEAD(name, type) \
struct name { \
    struct type *lh_first; \
}

#define QLIST_HEAD_INITIALIZER(head) { NULL }

#define QLIST_ENTRY(type) \
struct { \
    struct type *le_next; \
    struct type **le_prev; \
}

#define QLIST_INIT(head) do { \
    (head)->lh_first = NULL; \
} while (0)

#define QLIST_INSERT_HEAD(head, elm, field) do { \
    if (((elm)->field.le_next = (head)->lh_first) != NULL) { \
        (head)->lh_first->field.le_prev = &(elm)->field.le_next; \
    } \
    (head)->lh_first = (elm); \
    (elm)->field.le_prev = &(head)->lh_first; \
} while (0)

#define QLIST_REMOVE(elm, field) do { \
    if ((elm)->field.le_next != NULL) { \
        (elm)->field.le_next->field.le_prev = (elm)->field.le_prev; \
    } \
    *(elm)->field.le_prev = (elm)->field.le_next; \
    (elm)->field.le_next = NULL; \
    (elm)->field.le_prev = NULL; \
} while (0)

#define QLIST_SAFE_REMOVE(elm, field) do { \
    if ((elm)->field.le_prev != NULL) { \
        QLIST_REMOVE(elm, field); \
    } \
} while (0)

#define QLIST_IS_INSERTED(elm, field) ((elm)->field.le_prev != NULL)

#define QLIST_EMPTY(head) ((head)->lh_first == NULL)
#define QLIST_FIRST(head) ((head)->lh_first)
#define QLIST_NEXT(elm, field) ((elm)->field.le_next)

#define QLIST_FOREACH(var, head, field) \
    for ((var) = ((head)->lh_first); (var); (var) = ((var)->field.le_next))

#define QLIST_FOREACH_SAFE(var, head, field, next_var) \
    for ((var) = ((head)->lh_first); \
         (var) && ((next_var) = ((var)->field.le_next), 1); \
         (var) = (next_var))

/* Singly linked list. */
#define QSLIST_HEAD(name, type) \
struct name { \
    struct type *slh_first; \
}

#define QSLIST_HEAD_INITIALIZER(head) { NULL }

#define QSLIST_ENTRY(type) \
struct { \
    struct type *sle_next; \
}

#define QSLIST_INIT(head) do { \
    (head)->slh_first = NULL; \
} while (0)

#define QSLIST_INSERT_HEAD(head, elm, field) do { \
    (elm)->field.sle_next = (head)->slh_first; \
    (head)->slh_first = (elm); \
} while (0)

/* Lock-free push at the head (any thread). */
#define QSLIST_INSERT_HEAD_ATOMIC(head, elm, field) do { \
    __typeof__(elm) save_sle_next; \
    do { \
        save_sle_next = (elm)->field.sle_next = \
            qatomic_read(&(head)->slh_first); \
    } while (qatomic_cmpxchg(&(head)->slh_first, save_sle_next, (elm)) != \
             save_sle_next); \
} while (0)

/* Atomically take the whole list from @head into @dest. */
#define QSLIST_MOVE_ATOMIC(dest, src) do { \
    (dest)->slh_first = qatomic_xchg(&(src)->slh_first, NULL); \
} while (0)

#define QSLIST_REMOVE_HEAD(head, field) do { \
    __typeof__((head)->slh_first) elm = (head)->slh_first; \
    (head)->slh_first = elm->field.sle_next; \
    elm->field.sle_next = NULL; \
} while (0)

#define QSLIST_EMPTY(head) ((head)->slh_first == NULL)
#define QSLIST_FIRST(head) ((head)->slh_first)
#define QSLIST_NEXT(elm, field) ((elm)->field.sle_next)

#define QSLIST_FOREACH(var, head, field) \
    for ((var) = (head)->slh_first; (var); (var) = (var)->field.sle_next)

#define QSLIST_FOREACH_SAFE(var, head, field, tvar) \
    for ((var) = QSLIST_FIRST((head)); \
         (var) && ((tvar) = QSLIST_NEXT((var), field), 1); \
         (var) = (tvar))

/* Simple queue: singly linked with a tail pointer. */
#define QSIMPLEQ_HEAD(name, type) \
struct name { \
    struct type *sqh_first; \
    struct type **sqh_last; \
}

#define QSIMPLEQ_HEAD_INITIALIZER(head) { NULL, &(head).sqh_first }

#define QSIMPLEQ_ENTRY(type) \
struct { \
    struct type *sqe_next; \
}

#define QSIMPLEQ_INIT(head) do { \
    (head)->sqh_first = NULL; \
    (head)->sqh_last = &(head)->sqh_first; \
} while (0)

#define QSIMPLEQ_INSERT_TAIL(head, elm, field) do { \
    (elm)->field.sqe_next = NULL; \
    *(head)->sqh_last = (elm); \
    (head)->sqh_last = &(elm)->field.sqe_next; \
} while (0)

#define QSIMPLEQ_REMOVE_HEAD(head, field) do { \
    __typeof__((head)->sqh_first) elm = (head)->sqh_first; \
    if (((head)->sqh_first = elm->field.sqe_next) == NULL) { \
        (head)->sqh_last = &(head)->sqh_first; \
    } \
    elm->field.sqe_next = NULL; \
} while (0)

#define QSIMPLEQ_EMPTY(head) ((head)->sqh_first == NULL)
#define QSIMPLEQ_FIRST(head) ((head)->sqh_first)
#define QSIMPLEQ_NEXT(elm, field) ((elm)->field.sqe_next)

#define QSIMPLEQ_FOREACH(var, head, field) \
    for ((var) = ((head)->sqh_first); (var); (var) = ((var)->field.sqe_next))

#endif /* QEMU_SYS_QUEUE_H */
