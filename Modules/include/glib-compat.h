/*
 * cevent: a glib shim of our own.  The QEMU files we port use a handful of
 * glib names (allocation, GPollFD, G_IO_*); this header provides them with
 * libc so that cevent has no glib dependency.  As in QEMU, a failed
 * allocation aborts the process: callers that allocate on behalf of
 * untrusted input size and validate it first.
 *
 * cevent is GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef CEVENT_GLIB_COMPAT_H
#define CEVENT_GLIB_COMPAT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int gint;
typedef unsigned int guint;
typedef unsigned short gushort;
typedef bool gboolean;
typedef void *gpointer;

/* Same layout as struct pollfd, as in glib on POSIX. */
typedef struct GPollFD {
    gint fd;
    gushort events;
    gushort revents;
} GPollFD;

#define G_IO_IN   POLLIN
#define G_IO_OUT  POLLOUT
#define G_IO_PRI  POLLPRI
#define G_IO_ERR  POLLERR
#define G_IO_HUP  POLLHUP
#define G_IO_NVAL POLLNVAL

static inline void
g_alloc_failed(size_t n)
{
    fprintf(stderr, "cevent: failed to allocate %zu bytes\n", n);
    abort();
}

static inline void *
g_malloc0(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        g_alloc_failed(n);
    }
    return p;
}

static inline void *
g_malloc0_n(size_t count, size_t size)
{
    void *p;

    if (size && count > SIZE_MAX / size) {
        g_alloc_failed(SIZE_MAX);
    }
    p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        g_alloc_failed(count * size);
    }
    return p;
}

static inline void *
g_renew_n(void *mem, size_t count, size_t size)
{
    void *p;

    if (size && count > SIZE_MAX / size) {
        g_alloc_failed(SIZE_MAX);
    }
    p = realloc(mem, (count != 0 && size != 0) ? count * size : 1);
    if (!p) {
        g_alloc_failed(count * size);
    }
    return p;
}

static inline void
g_free(void *mem)
{
    free(mem);
}

#define g_new0(type, n) ((type *)g_malloc0_n((n), sizeof(type)))
#define g_new(type, n)  ((type *)g_malloc0_n((n), sizeof(type)))
#define g_renew(type, mem, n) ((type *)g_renew_n((mem), (n), sizeof(type)))

#endif /* CEVENT_GLIB_COMPAT_H */
