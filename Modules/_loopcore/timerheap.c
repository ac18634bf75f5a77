/*
 * cevent._loopcore: the loop's heap of timer handles, a C array of
 * (deadline ns, sequence, handle) ordered by (deadline, sequence).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "loopcore.h"

bool
loop_timer_before(const LoopTimer *a, const LoopTimer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

void
loopcore_heap_sift_up(LoopTimer *heap, Py_ssize_t i)
{
    LoopTimer item = heap[i];

    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;

        if (!loop_timer_before(&item, &heap[parent])) {
            break;
        }
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = item;
}

void
loopcore_heap_sift_down(LoopTimer *heap, Py_ssize_t n, Py_ssize_t i)
{
    LoopTimer item = heap[i];

    for (;;) {
        Py_ssize_t child = 2 * i + 1;

        if (child >= n) {
            break;
        }
        if (child + 1 < n && loop_timer_before(&heap[child + 1],
                                               &heap[child])) {
            child++;
        }
        if (!loop_timer_before(&heap[child], &item)) {
            break;
        }
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = item;
}

/* Push @handle (a new reference is taken) with deadline @when. */
int
loopcore_heap_push(LoopCoreObject *self, int64_t when, PyObject *handle)
{
    if (self->nheap == self->heap_cap) {
        Py_ssize_t cap = self->heap_cap ? self->heap_cap * 2 : 64;
        LoopTimer *heap = PyMem_Resize(self->heap, LoopTimer, cap);

        if (heap == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->heap = heap;
        self->heap_cap = cap;
    }
    self->heap[self->nheap].when = when;
    self->heap[self->nheap].seq = self->next_seq++;
    self->heap[self->nheap].handle = Py_NewRef(handle);
    loopcore_heap_sift_up(self->heap, self->nheap);
    self->nheap++;
    return 0;
}

/* Remove the earliest entry; its reference passes to the caller. */
PyObject *
loopcore_heap_pop(LoopCoreObject *self)
{
    PyObject *handle = self->heap[0].handle;

    self->nheap--;
    if (self->nheap > 0) {
        self->heap[0] = self->heap[self->nheap];
        loopcore_heap_sift_down(self->heap, self->nheap, 0);
    }
    /* Give back most of the memory a burst of timers took. */
    if (self->heap_cap > 1024 && self->nheap < self->heap_cap / 4) {
        LoopTimer *heap = PyMem_Realloc(self->heap,
                                        (self->heap_cap / 2) *
                                        sizeof(LoopTimer));

        if (heap != NULL) {
            self->heap = heap;
            self->heap_cap /= 2;
        }
    }
    return handle;
}

/*
 * Empty the heap.  The handles are released only once the heap is empty
 * and consistent: releasing one may run Python code that uses the loop.
 */
void
loopcore_heap_clear(LoopCoreObject *self)
{
    LoopTimer *heap = self->heap;
    Py_ssize_t i, n = self->nheap;

    self->heap = NULL;
    self->nheap = self->heap_cap = 0;
    for (i = 0; i < n; i++) {
        Py_DECREF(heap[i].handle);
    }
    PyMem_Free(heap);
}

/*
 * Drop every cancelled handle from the heap, as _run_once() does when they
 * are more than half of it.  The dropped handles are released last.
 */
int
loopcore_purge_cancelled(cev_loop_config *cfg, LoopCoreObject *self)
{
    PyObject **dropped = PyMem_New(PyObject *, self->nheap);
    Py_ssize_t i, kept = 0, ndropped = 0;

    if (dropped == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < self->nheap; i++) {
        PyObject *handle = self->heap[i].handle;

        if (loopcore_timer_cancelled(cfg, handle)) {
            loopcore_timer_set_scheduled(cfg, handle, false);
            dropped[ndropped++] = handle;
        }
        else {
            self->heap[kept++] = self->heap[i];
        }
    }
    self->nheap = kept;
    for (i = kept / 2 - 1; i >= 0; i--) {
        loopcore_heap_sift_down(self->heap, kept, i);
    }
    self->timer_cancelled_count = 0;
    for (i = 0; i < ndropped; i++) {
        Py_DECREF(dropped[i]);
    }
    PyMem_Free(dropped);
    return 0;
}

