/*
 * cevent._cevent: version compatibility shims.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */
#ifndef CEVENT_COMPAT_H
#define CEVENT_COMPAT_H

#include <Python.h>

/*
 * Method tables hold PyCFunction pointers; METH_FASTCALL/METH_KEYWORDS
 * functions have other signatures.  -Wextra turns on -Wcast-function-type,
 * so cast through void (*)(void) in one place.
 */
#define CEV_METH(fn) ((PyCFunction)(void (*)(void))(fn))

/* Py_IsFinalizing() became public in 3.13. */
#if PY_VERSION_HEX < 0x030D0000
#  define CEV_IS_FINALIZING() _Py_IsFinalizing()
#else
#  define CEV_IS_FINALIZING() Py_IsFinalizing()
#endif

/* PyLong_AsInt became public in 3.13. */
#if PY_VERSION_HEX < 0x030D0000
#  define PyLong_AsInt _PyLong_AsInt
#endif

/* Weak references: a member on 3.11, a managed slot from 3.12. */
#if PY_VERSION_HEX >= 0x030C0000
#  define CEV_WEAKREF_FLAG Py_TPFLAGS_MANAGED_WEAKREF
#  define CEV_WEAKREF_MEMBER(type)
#else
#  define CEV_WEAKREF_FLAG 0
#  define CEV_WEAKREF_MEMBER(type) \
    {"__weaklistoffset__", T_PYSSIZET, offsetof(type, weakreflist), \
     READONLY, NULL},
#endif

/* Clear weak references in dealloc, where the type supports them. */
#define CEV_CLEAR_WEAKREFS(self) \
    do { \
        if (((PyObject *)(self))->ob_type->tp_weaklistoffset || \
            (PY_VERSION_HEX >= 0x030C0000)) { \
            PyObject_ClearWeakRefs((PyObject *)(self)); \
        } \
    } while (0)

#endif /* CEVENT_COMPAT_H */
