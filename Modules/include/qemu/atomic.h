/*
 * Atomic operations under QEMU's names, on the compiler's __atomic builtins.
 *
 * Upstream: include/qemu/atomic.h, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07
 * (GPL-2.0-or-later).  Written for cevent; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 *
 * As upstream: qatomic_read/qatomic_set are relaxed; the read-modify-write
 * operations are sequentially consistent; smp_mb() is a full barrier and
 * smp_wmb()/smp_rmb() order stores/loads.  cevent: the barriers are fences
 * rather than compiler-only barriers so ThreadSanitizer understands them.
 */
#ifndef QEMU_ATOMIC_H
#define QEMU_ATOMIC_H

#define barrier() __asm__ __volatile__("" ::: "memory")

#define smp_mb()         __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_mb_release() __atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_mb_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb()        smp_mb_release()
#define smp_rmb()        smp_mb_acquire()
#define smp_mb__before_rmw() do { } while (0)
#define smp_mb__after_rmw()  do { } while (0)

#define qatomic_read(ptr)       __atomic_load_n(ptr, __ATOMIC_RELAXED)
#define qatomic_set(ptr, i)     __atomic_store_n(ptr, i, __ATOMIC_RELAXED)

#define qatomic_load_acquire(ptr)      __atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define qatomic_store_release(ptr, i)  __atomic_store_n(ptr, i, __ATOMIC_RELEASE)

/* cevent: consume ordering is promoted to acquire, as compilers do anyway. */
#define qatomic_rcu_read(ptr)    __atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define qatomic_rcu_set(ptr, i)  __atomic_store_n(ptr, i, __ATOMIC_RELEASE)

#define qatomic_xchg(ptr, i)    __atomic_exchange_n(ptr, i, __ATOMIC_SEQ_CST)

#define qatomic_cmpxchg(ptr, old, new) \
    __extension__ ({ \
        __typeof__(*(ptr)) _old = (old); \
        (void)__atomic_compare_exchange_n(ptr, &_old, new, false, \
                                          __ATOMIC_SEQ_CST, \
                                          __ATOMIC_SEQ_CST); \
        _old; \
    })

#define qatomic_fetch_add(ptr, n) __atomic_fetch_add(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_sub(ptr, n) __atomic_fetch_sub(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_and(ptr, n) __atomic_fetch_and(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_or(ptr, n)  __atomic_fetch_or(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_inc(ptr)    qatomic_fetch_add(ptr, 1)
#define qatomic_fetch_dec(ptr)    qatomic_fetch_sub(ptr, 1)

#define qatomic_add_fetch(ptr, n) __atomic_add_fetch(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_sub_fetch(ptr, n) __atomic_sub_fetch(ptr, n, __ATOMIC_SEQ_CST)

#define qatomic_inc(ptr)    ((void)qatomic_fetch_add(ptr, 1))
#define qatomic_dec(ptr)    ((void)qatomic_fetch_sub(ptr, 1))
#define qatomic_add(ptr, n) ((void)qatomic_fetch_add(ptr, n))
#define qatomic_sub(ptr, n) ((void)qatomic_fetch_sub(ptr, n))
#define qatomic_and(ptr, n) ((void)qatomic_fetch_and(ptr, n))
#define qatomic_or(ptr, n)  ((void)qatomic_fetch_or(ptr, n))

#endif /* QEMU_ATOMIC_H */
