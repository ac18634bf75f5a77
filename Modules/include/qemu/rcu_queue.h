/*
 * The RCU-publishing list variants under QEMU's names.  cevent has no RCU
 * reclamation: memory safety of the handler lists comes from QemuLockCnt
 * (a node is freed only with the visit counter at zero and the lock held),
 * exactly as in QEMU's AioContext.  What remains of RCU here is publication:
 * an insertion stores the new head with release ordering so that a reader
 * walking without the lock sees a fully initialised node.
 *
 * Upstream: include/qemu/rcu_queue.h, QEMU
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07 (GPL-2.0-or-later).  Written for
 * cevent; cevent is GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_RCU_QUEUE_H
#define QEMU_RCU_QUEUE_H

#include "qemu/queue.h"
#include "qemu/atomic.h"

#define QLIST_EMPTY_RCU(head) (qatomic_read(&(head)->lh_first) == NULL)
#define QLIST_FIRST_RCU(head) (qatomic_rcu_read(&(head)->lh_first))
#define QLIST_NEXT_RCU(elm, field) (qatomic_rcu_read(&(elm)->field.le_next))

#define QLIST_INSERT_HEAD_RCU(head, listelm, field) do { \
    (listelm)->field.le_prev = &(head)->lh_first; \
    (listelm)->field.le_next = (head)->lh_first; \
    if ((listelm)->field.le_next != NULL) { \
        (listelm)->field.le_next->field.le_prev = \
            &(listelm)->field.le_next; \
    } \
    qatomic_rcu_set(&(head)->lh_first, (listelm)); \
} while (0)

#define QLIST_REMOVE_RCU(elm, field) do { \
    if ((elm)->field.le_next != NULL) { \
        (elm)->field.le_next->field.le_prev = (elm)->field.le_prev; \
    } \
    qatomic_set((elm)->field.le_prev, (elm)->field.le_next); \
} while (0)

#define QLIST_FOREACH_RCU(var, head, field) \
    for ((var) = qatomic_rcu_read(&(head)->lh_first); \
         (var); \
         (var) = qatomic_rcu_read(&(var)->field.le_next))

#define QLIST_FOREACH_SAFE_RCU(var, head, field, next_var) \
    for ((var) = (qatomic_rcu_read(&(head)->lh_first)); \
         (var) && \
             ((next_var) = qatomic_rcu_read(&(var)->field.le_next), 1); \
         (var) = (next_var))

/* cevent: added for fdmon-io_uring.c (upstream has it in this header) */
#define QSLIST_EMPTY_RCU(head) (qatomic_read(&(head)->slh_first) == NULL)
#define QSLIST_FIRST_RCU(head) (qatomic_rcu_read(&(head)->slh_first))
#define QSLIST_NEXT_RCU(elm, field) (qatomic_rcu_read(&(elm)->field.sle_next))

#define QSLIST_FOREACH_RCU(var, head, field) \
    for ((var) = qatomic_rcu_read(&(head)->slh_first); \
         (var); \
         (var) = qatomic_rcu_read(&(var)->field.sle_next))

#endif /* QEMU_RCU_QUEUE_H */
