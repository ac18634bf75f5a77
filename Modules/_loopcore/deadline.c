/*
 * cevent._loopcore: deadlines, from float seconds to integer ns.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "loopcore.h"

#include <math.h>

/*
 * ceil(x * 1e9) exactly, for a finite double x, clamped to
 * [-LOOPCORE_NEVER_NS, LOOPCORE_NEVER_NS].  x = M * 2^sh with M the 53-bit
 * integer mantissa, so x * 1e9 = (M * 1e9) * 2^sh, with M * 1e9 < 2^83.
 */
int64_t
loopcore_ns_ceil_double(double x)
{
    int e;
    double m = frexp(x, &e);            /* x = m * 2^e, 0.5 <= |m| < 1 */
    int64_t mant = (int64_t)ldexp(m, 53);
    int sh = e - 53;
    __int128 p = (__int128)mant * 1000000000;

    if (mant == 0) {
        return 0;
    }
    if (sh >= 0) {
        if (sh >= 62) {
            return mant > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        }
        p *= (__int128)1 << sh;
    }
    else if (-sh >= 100) {
        /* |x * 1e9| < 2^83 * 2^-100: ceil is 1 or 0 */
        return p > 0 ? 1 : 0;
    }
    else {
        int k = -sh;
        __int128 mask = ((__int128)1 << k) - 1;

        if (p >= 0) {
            p = (p >> k) + ((p & mask) != 0);
        }
        else {
            p = -((-p) >> k);           /* ceil of a negative: truncate */
        }
    }
    if (p >= LOOPCORE_NEVER_NS) {
        return LOOPCORE_NEVER_NS;
    }
    if (p <= -LOOPCORE_NEVER_NS) {
        return -LOOPCORE_NEVER_NS;
    }
    return (int64_t)p;
}

int64_t
loopcore_clamp_ns(int64_t ns)
{
    if (ns >= LOOPCORE_NEVER_NS) {
        return LOOPCORE_NEVER_NS;
    }
    if (ns <= -LOOPCORE_NEVER_NS) {
        return -LOOPCORE_NEVER_NS;
    }
    return ns;
}

/*
 * seconds (an int exactly, anything else through float()) as ns, rounded
 * up and clamped to +-LOOPCORE_NEVER_NS, into *ns.  NaN raises ValueError.
 */
int
loopcore_seconds_to_ns(PyObject *seconds, int64_t *ns)
{
    double x;

    if (PyLong_Check(seconds)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(seconds, &overflow);

        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow != 0) {
            *ns = overflow > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        }
        else if (v >= LOOPCORE_NEVER_NS / 1000000000) {
            *ns = LOOPCORE_NEVER_NS;
        }
        else if (v <= -LOOPCORE_NEVER_NS / 1000000000) {
            *ns = -LOOPCORE_NEVER_NS;
        }
        else {
            *ns = (int64_t)v * 1000000000;
        }
        return 0;
    }
    x = PyFloat_AsDouble(seconds);
    if (x == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (isnan(x)) {
        PyErr_Format(PyExc_ValueError, "invalid time: %R", seconds);
        return -1;
    }
    if (isinf(x)) {
        *ns = x > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        return 0;
    }
    *ns = loopcore_ns_ceil_double(x);
    return 0;
}

/*
 * _ns_ceil(seconds): the smallest integer number of ns >= seconds exactly
 * (no float rounding: the float 0.1 is slightly more than 100 ms, so it
 * gives 100000001).  An int is scaled exactly; anything else goes through
 * float().  +-inf and finite values beyond +-2**62 ns give +-2**62; NaN
 * raises ValueError.
 */
PyObject *
cev_loopcore_ns_ceil(PyObject *Py_UNUSED(module), PyObject *seconds)
{
    int64_t ns;

    if (PyLong_CheckExact(seconds)) {
        PyObject *scale = PyLong_FromLong(1000000000L);
        PyObject *res;

        if (scale == NULL) {
            return NULL;
        }
        res = PyNumber_Multiply(seconds, scale);
        Py_DECREF(scale);
        return res;
    }
    if (loopcore_seconds_to_ns(seconds, &ns) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(ns);
}
