/*
 * cevent._cevent: the C API capsule (Lib/cevent/include/cevent.h).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#define CEVENT_PROVIDER 1
#include "module.h"
#include "cevent.h"

/* The AioContext type of the (single) module instance. */
static PyTypeObject *capi_context_type = NULL;

/* Whether @obj is a cevent.AioContext (open or not). */
static bool
capi_is_context(PyObject *obj)
{
    return capi_context_type != NULL &&
           PyObject_TypeCheck(obj, capi_context_type);
}

static CEvent_Context *
capi_as_context(PyObject *obj)
{
    ContextObject *self;

    if (!capi_is_context(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "expected a cevent.AioContext, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    self = (ContextObject *)obj;
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return (CEvent_Context *)self->ctx;
}

/* The open AioContext object @obj, or NULL with TypeError/ValueError. */
static ContextObject *
capi_context_check(PyObject *obj)
{
    if (capi_as_context(obj) == NULL) {
        return NULL;
    }
    return (ContextObject *)obj;
}

static int
capi_context_poll(PyObject *obj, int64_t deadline_ns)
{
    ContextObject *self = capi_context_check(obj);

    if (self == NULL) {
        return -1;
    }
    return cev_context_poll_until(self, deadline_ns);
}

static int
capi_context_notify(PyObject *obj)
{
    ContextObject *self = capi_context_check(obj);

    if (self == NULL) {
        return -1;
    }
    return cev_context_notify(self);
}

static int
capi_context_exception_pending(PyObject *obj)
{
    return capi_is_context(obj) && ((ContextObject *)obj)->exc_type != NULL;
}

static int
capi_context_store_exception(PyObject *obj, PyObject *culprit)
{
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_SystemError,
                        "Context_StoreException() needs an exception set");
        return -1;
    }
    if (!capi_is_context(obj)) {
        PyErr_WriteUnraisable(culprit);
        return -1;
    }
    if (((ContextObject *)obj)->poll_depth == 0) {
        PyErr_WriteUnraisable(culprit);     /* no poll() to raise it */
        return 0;
    }
    cev_context_store_exception((ContextObject *)obj, culprit);
    return 0;
}

static void
capi_set_fd_handler(CEvent_Context *ctx, int fd, CEvent_IOHandler *io_read,
                    CEvent_IOHandler *io_write, CEvent_AioPollFn *io_poll,
                    CEvent_IOHandler *io_poll_ready, void *opaque)
{
    aio_set_fd_handler((AioContext *)ctx, fd, io_read, io_write, io_poll,
                       io_poll_ready, opaque);
}

static CEvent_BH *
capi_bh_new(CEvent_Context *ctx, CEvent_BHFunc *cb, void *opaque)
{
    return (CEvent_BH *)aio_bh_new_full((AioContext *)ctx, cb, opaque,
                                        "capi", NULL);
}

static void
capi_bh_schedule(CEvent_BH *bh)
{
    qemu_bh_schedule((QEMUBH *)bh);
}

static void
capi_bh_cancel(CEvent_BH *bh)
{
    qemu_bh_cancel((QEMUBH *)bh);
}

static void
capi_bh_delete(CEvent_BH *bh)
{
    qemu_bh_delete((QEMUBH *)bh);
}

static void
capi_bh_schedule_oneshot(CEvent_Context *ctx, CEvent_BHFunc *cb,
                         void *opaque)
{
    aio_bh_schedule_oneshot_full((AioContext *)ctx, cb, opaque,
                                 "capi-oneshot", NULL);
}

static CEvent_Timer *
capi_timer_new(CEvent_Context *ctx, int clock, int scale,
               CEvent_TimerCB *cb, void *opaque)
{
    if (clock < 0 || clock >= QEMU_CLOCK_MAX || scale <= 0) {
        return NULL;
    }
    return (CEvent_Timer *)aio_timer_new((AioContext *)ctx,
                                         (QEMUClockType)clock, scale, cb,
                                         opaque);
}

static void
capi_timer_mod_ns(CEvent_Timer *ts, int64_t expire_time_ns)
{
    timer_mod_ns((QEMUTimer *)ts, expire_time_ns);
}

static void
capi_timer_del(CEvent_Timer *ts)
{
    timer_del((QEMUTimer *)ts);
}

static void
capi_timer_free(CEvent_Timer *ts)
{
    timer_free((QEMUTimer *)ts);
}

static int64_t
capi_clock_get_ns(int clock)
{
    if (clock < 0 || clock >= QEMU_CLOCK_MAX) {
        return -1;
    }
    return qemu_clock_get_ns((QEMUClockType)clock);
}

static void
capi_notify(CEvent_Context *ctx)
{
    aio_notify((AioContext *)ctx);
}

/*
 * io_uring requests.  The port's CqeHandler lives in the consumer's
 * CEvent_CqeHandler (cevent_private), so a request costs no allocation;
 * capi_cqe_trampoline() turns the port's callback into the consumer's.
 */
#ifdef CONFIG_LINUX_IO_URING
static_assert(sizeof(CqeHandler) <=
              sizeof(((CEvent_CqeHandler *)NULL)->cevent_private),
              "CEvent_CqeHandler.cevent_private cannot hold a CqeHandler");
static_assert(_Alignof(CqeHandler) <= _Alignof(void *),
              "CEvent_CqeHandler.cevent_private is not aligned enough");

static void
capi_cqe_trampoline(CqeHandler *cqe_handler)
{
    CEvent_CqeHandler *handler = (CEvent_CqeHandler *)
        ((char *)cqe_handler - offsetof(CEvent_CqeHandler, cevent_private));

    handler->res = cqe_handler->cqe.res;
    handler->flags = cqe_handler->cqe.flags;
    handler->cb(handler);
}
#endif

static int
capi_has_io_uring(CEvent_Context *ctx)
{
#ifdef CONFIG_LINUX_IO_URING
    return aio_has_io_uring((AioContext *)ctx);
#else
    (void)ctx;
    return 0;
#endif
}

static int
capi_add_sqe(CEvent_Context *ctx, CEvent_PrepSqe *prep_sqe, void *opaque,
             CEvent_CqeHandler *handler)
{
#ifdef CONFIG_LINUX_IO_URING
    CqeHandler *cqe_handler;

    if (prep_sqe == NULL || handler == NULL || handler->cb == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (!aio_has_io_uring((AioContext *)ctx)) {
        errno = EOPNOTSUPP;
        return -1;
    }
    /* so its user_data is CEVENT_SQE_USER_DATA(handler) (cevent.h) */
    cqe_handler = (CqeHandler *)(void *)handler->cevent_private;
    memset(cqe_handler, 0, sizeof(*cqe_handler));
    cqe_handler->cb = capi_cqe_trampoline;
    aio_add_sqe((AioContext *)ctx, prep_sqe, opaque, cqe_handler);
    return 0;
#else
    (void)ctx;
    (void)opaque;
    errno = (prep_sqe == NULL || handler == NULL || handler->cb == NULL)
            ? EINVAL : EOPNOTSUPP;
    return -1;
#endif
}

static const CEvent_CAPI capi = {
    .abi_version = CEVENT_ABI_VERSION,
    .struct_size = sizeof(CEvent_CAPI),
    .Context_AsContext = capi_as_context,
    .set_fd_handler = capi_set_fd_handler,
    .bh_new = capi_bh_new,
    .bh_schedule = capi_bh_schedule,
    .bh_cancel = capi_bh_cancel,
    .bh_delete = capi_bh_delete,
    .bh_schedule_oneshot = capi_bh_schedule_oneshot,
    .timer_new = capi_timer_new,
    .timer_mod_ns = capi_timer_mod_ns,
    .timer_del = capi_timer_del,
    .timer_free = capi_timer_free,
    .clock_get_ns = capi_clock_get_ns,
    .notify = capi_notify,
    .has_io_uring = capi_has_io_uring,
    .add_sqe = capi_add_sqe,
    .Context_Poll = capi_context_poll,
    .Context_ExceptionPending = capi_context_exception_pending,
    .Context_StoreException = capi_context_store_exception,
    .Context_Notify = capi_context_notify,
};

PyObject *
cev_capi_new(cevent_state *state)
{
    capi_context_type = state->ContextType;
    return PyCapsule_New((void *)&capi, CEVENT_CAPSULE_NAME, NULL);
}
