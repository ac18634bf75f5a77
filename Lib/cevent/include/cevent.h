/*
 * cevent.h: the C API of cevent, for other C extensions.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * Usage (in a consumer's module init, with the GIL held):
 *
 *     #include "cevent.h"
 *     if (CEvent_Import() < 0) {
 *         return NULL;
 *     }
 *     CEvent_Context *ctx = CEvent_API->Context_AsContext(py_context);
 *
 * Find this header with cevent.get_include().
 *
 * Versioning: CEvent_CAPI starts with abi_version and struct_size.  The
 * struct is append-only and never reordered; abi_version changes only for a
 * breaking change.  CEvent_Import() checks both.
 *
 * Lifetimes: what a consumer registers on a context (fd handlers, BHs,
 * timers) must be removed, deleted or freed before the Python AioContext
 * is closed or collected; keep a reference to the AioContext object for as
 * long as you use its CEvent_Context.
 *
 * Callbacks (CEvent_IOHandler, CEvent_AioPollFn, CEvent_BHFunc,
 * CEvent_TimerCB) run on the context's home thread from inside
 * AioContext.poll(), with the GIL held -- except io_poll functions, which
 * run in the busy-poll spin and may be called WITHOUT the GIL: they must
 * not touch Python objects.
 */
#ifndef CEVENT_H
#define CEVENT_H

#include <Python.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CEVENT_CAPSULE_NAME "cevent._cevent._C_API"
#define CEVENT_ABI_VERSION 1

/* Opaque: QEMU's AioContext, QEMUBH and QEMUTimer. */
typedef struct CEvent_Context CEvent_Context;
typedef struct CEvent_BH CEvent_BH;
typedef struct CEvent_Timer CEvent_Timer;

/* Signature-compatible with QEMU's IOHandler and AioPollFn. */
typedef void CEvent_IOHandler(void *opaque);
typedef bool CEvent_AioPollFn(void *opaque);
typedef void CEvent_BHFunc(void *opaque);
typedef void CEvent_TimerCB(void *opaque);

/* Clock ids, as cevent.CLOCK_* */
#define CEVENT_CLOCK_REALTIME 0
#define CEVENT_CLOCK_VIRTUAL  1
#define CEVENT_CLOCK_HOST     2

typedef struct {
    unsigned int abi_version;   /* CEVENT_ABI_VERSION */
    unsigned int struct_size;   /* sizeof(CEvent_CAPI) of the provider */

    /*
     * The CEvent_Context of a cevent.AioContext.  GIL required.  Returns
     * NULL with TypeError (not an AioContext) or ValueError (closed) set.
     * Borrowed: valid while the AioContext object is open.
     */
    CEvent_Context *(*Context_AsContext)(PyObject *obj);

    /*
     * aio_set_fd_handler.  Any thread; no GIL needed.  All of io_read,
     * io_write and io_poll NULL removes the handler.  io_poll without
     * io_poll_ready is ignored, as in QEMU.
     */
    void (*set_fd_handler)(CEvent_Context *ctx, int fd,
                           CEvent_IOHandler *io_read,
                           CEvent_IOHandler *io_write,
                           CEvent_AioPollFn *io_poll,
                           CEvent_IOHandler *io_poll_ready,
                           void *opaque);

    /* aio_bh_new: no GIL needed; any thread. */
    CEvent_BH *(*bh_new)(CEvent_Context *ctx, CEvent_BHFunc *cb,
                         void *opaque);
    /* qemu_bh_schedule: any thread, no GIL needed, async-signal-unsafe. */
    void (*bh_schedule)(CEvent_BH *bh);
    /* qemu_bh_cancel: any thread (racy against the loop, as QEMU). */
    void (*bh_cancel)(CEvent_BH *bh);
    /* qemu_bh_delete: any thread; the BH is freed by the loop later. */
    void (*bh_delete)(CEvent_BH *bh);
    /* aio_bh_schedule_oneshot: any thread, no GIL needed. */
    void (*bh_schedule_oneshot)(CEvent_Context *ctx, CEvent_BHFunc *cb,
                                void *opaque);

    /* aio_timer_new: clock is CEVENT_CLOCK_*, scale ns per unit (> 0). */
    CEvent_Timer *(*timer_new)(CEvent_Context *ctx, int clock, int scale,
                               CEvent_TimerCB *cb, void *opaque);
    /* timer_mod_ns (absolute ns on the timer's clock): any thread. */
    void (*timer_mod_ns)(CEvent_Timer *ts, int64_t expire_time_ns);
    /* timer_del: any thread. */
    void (*timer_del)(CEvent_Timer *ts);
    /* timer_free: disarm and free; the owner's thread. */
    void (*timer_free)(CEvent_Timer *ts);
    /* qemu_clock_get_ns: any thread. */
    int64_t (*clock_get_ns)(int clock);

    /* aio_notify: any thread, no GIL needed. */
    void (*notify)(CEvent_Context *ctx);
} CEvent_CAPI;

#ifndef CEVENT_PROVIDER
/* Each translation unit that uses the API keeps its own pointer. */
static const CEvent_CAPI *CEvent_API = NULL;

/* Import cevent's C API.  GIL required.  0 on success, -1 with
 * ImportError set. */
static inline int
CEvent_Import(void)
{
    PyObject *module, *capsule;
    const CEvent_CAPI *api;

    module = PyImport_ImportModule("cevent._cevent");
    if (module == NULL) {
        return -1;
    }
    capsule = PyObject_GetAttrString(module, "_C_API");
    Py_DECREF(module);
    if (capsule == NULL) {
        return -1;
    }
    if (!PyCapsule_CheckExact(capsule)) {
        Py_DECREF(capsule);
        PyErr_SetString(PyExc_ImportError,
                        "cevent._cevent._C_API is not a capsule");
        return -1;
    }
    api = (const CEvent_CAPI *)PyCapsule_GetPointer(capsule,
                                                    CEVENT_CAPSULE_NAME);
    Py_DECREF(capsule);
    if (api == NULL) {
        return -1;
    }
    if (api->abi_version != CEVENT_ABI_VERSION ||
        api->struct_size < sizeof(CEvent_CAPI)) {
        PyErr_Format(PyExc_ImportError,
                     "cevent C API mismatch: this module was built against "
                     "ABI version %d (struct size %zu), the installed "
                     "cevent provides version %u (struct size %u)",
                     CEVENT_ABI_VERSION, sizeof(CEvent_CAPI),
                     api->abi_version, api->struct_size);
        return -1;
    }
    CEvent_API = api;
    return 0;
}
#endif /* CEVENT_PROVIDER */

#ifdef __cplusplus
}
#endif

#endif /* CEVENT_H */
