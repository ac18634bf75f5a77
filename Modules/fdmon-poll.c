/*
 * File descriptor monitoring with poll(2)
 *
 * Builds an array of pollfds from the context's handler list on every wait
 * and hands it to ppoll(2) (through qemu_poll_ns()).
 *
 * Upstream: util/fdmon-poll.c, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07.
 * Upstream licence: GNU GPL version 2 or (at your option) any later version
 * (SPDX-License-Identifier: GPL-2.0-or-later).  Written for cevent in our
 * own words; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */

#include "qemu/osdep.h"
#include "aio-posix.h"
#include "qemu/rcu_queue.h"

/*
 * Scratch arrays for fdmon_poll_wait(), one set per thread.  They are only
 * touched while that function prepares and performs the poll() call, never
 * while aio_poll() runs callbacks, so nested aio_poll() calls cannot trip
 * over them.
 *
 * Why thread-local: the stack is too small for arbitrary fd counts, a fresh
 * heap allocation on every aio_poll() would cost too much, and the arrays
 * cannot live in the AioContext because poll() runs without any lock held.
 * Per-thread storage avoids all three problems.
 */
static __thread GPollFD *pollfds;
static __thread AioHandler **nodes;
static __thread unsigned npfd, nalloc;

/*
 * cevent: upstream frees the arrays from a QemuThread exit notifier
 * (qemu_thread_atexit_add).  cevent has no QemuThread, so a pthread key
 * destructor does the same job; the key's value only marks that this thread
 * has something to free.
 */
static pthread_key_t pollfds_cleanup_key;
static pthread_once_t pollfds_cleanup_once = PTHREAD_ONCE_INIT;

static void pollfds_cleanup(void *unused G_GNUC_UNUSED)
{
    assert(npfd == 0);
    g_free(pollfds);
    g_free(nodes);
    pollfds = NULL;
    nodes = NULL;
    nalloc = 0;
}

/* cevent: create the key used by pollfds_cleanup(), once per process. */
static void pollfds_cleanup_key_init(void)
{
    if (pthread_key_create(&pollfds_cleanup_key, pollfds_cleanup) != 0) {
        fprintf(stderr, "cevent: fdmon-poll: pthread_key_create failed\n");
        abort();
    }
}

static void add_pollfd(AioHandler *node)
{
    if (npfd == nalloc) {
        if (nalloc == 0) {
            /* cevent: register the thread-exit cleanup (see above) */
            pthread_once(&pollfds_cleanup_once, pollfds_cleanup_key_init);
            pthread_setspecific(pollfds_cleanup_key, &pollfds_cleanup_key);
            nalloc = 8;
        } else {
            assert(nalloc <= INT_MAX);
            nalloc *= 2;
        }
        pollfds = g_renew(GPollFD, pollfds, nalloc);
        nodes = g_renew(AioHandler *, nodes, nalloc);
    }
    nodes[npfd] = node;
    pollfds[npfd] = (GPollFD) {
        .fd = node->pfd.fd,
        .events = node->pfd.events,
    };
    npfd++;
}

static int fdmon_poll_wait(AioContext *ctx, AioHandlerList *ready_list,
                           int64_t timeout)
{
    AioHandler *node;
    int ret;

    assert(npfd == 0);

    QLIST_FOREACH_RCU(node, &ctx->aio_handlers, node) {
        if (!QLIST_IS_INSERTED(node, node_deleted) && node->pfd.events) {
            add_pollfd(node);
        }
    }

    /* Past a certain number of descriptors epoll(7) is the cheaper choice */
    if (fdmon_epoll_try_upgrade(ctx, npfd)) {
        npfd = 0; /* the pollfds[] built above are not used; drop them */
        return ctx->fdmon_ops->wait(ctx, ready_list, timeout);
    }

    /*
     * cevent: when ppoll(2) is interrupted by a signal this returns -1 with
     * errno EINTR and nothing is dispatched, as upstream; aio_poll() carries
     * on and the embedder's hook gets to look at the signal.
     */
    ret = qemu_poll_ns(pollfds, npfd, timeout);
    if (ret > 0) {
        unsigned i;

        for (i = 0; i < npfd; i++) {
            int revents = pollfds[i].revents;

            if (revents) {
                aio_add_ready_handler(ready_list, nodes[i], revents);
            }
        }
    }

    npfd = 0;
    return ret;
}

static void fdmon_poll_update(AioContext *ctx G_GNUC_UNUSED,
                              AioHandler *old_node G_GNUC_UNUSED,
                              AioHandler *new_node G_GNUC_UNUSED)
{
    /* Nothing to do: the AioHandler itself holds everything wait() needs */
}

const FDMonOps fdmon_poll_ops = {
    .update = fdmon_poll_update,
    .wait = fdmon_poll_wait,
    .need_wait = aio_poll_disabled,
};

/*
 * cevent: not in upstream at the pinned revision (a later upstream series
 * adds a function of this name).  Switch the context back to poll(2).
 * list_lock must be held.
 */
void fdmon_poll_downgrade(AioContext *ctx)
{
    ctx->fdmon_ops = &fdmon_poll_ops;
}
