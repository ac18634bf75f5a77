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

static CEvent_Context *
capi_context_as_context(PyObject *obj)
{
    ContextObject *self;

    if (capi_context_type == NULL ||
        !PyObject_TypeCheck(obj, capi_context_type)) {
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

static const CEvent_CAPI capi = {
    .abi_version = CEVENT_ABI_VERSION,
    .struct_size = sizeof(CEvent_CAPI),
    .Context_AsContext = capi_context_as_context,
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
};

PyObject *
cev_capi_new(cevent_state *state)
{
    capi_context_type = state->ContextType;
    return PyCapsule_New((void *)&capi, CEVENT_CAPSULE_NAME, NULL);
}
