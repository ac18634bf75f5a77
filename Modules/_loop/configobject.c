/*
 * cevent's asyncio face: _LoopConfig, its types and configuration.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * One _LoopConfig object per cevent._cevent module (cevent._cevent.
 * _loop_config): cev_loop_exec() makes it with the face's types, and
 * Lib/cevent/_loop.py calls its configure() once, at import, with the
 * asyncio classes and Python fallbacks that the face's C code relies on.
 * The binding's module state holds it as an opaque object (loop_face).
 */

#include "loop.h"

LoopConfigObject *
cev_loop_face(PyTypeObject *type)
{
    cevent_state *state = (cevent_state *)PyType_GetModuleState(type);

    return (LoopConfigObject *)state->loop_face;
}

cev_loop_config *
loopcore_config(PyTypeObject *defining_class)
{
    return &cev_loop_face(defining_class)->loop;
}

int
loopcore_check_configured(cev_loop_config *cfg)
{
    if (cfg->handle_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cevent._cevent._loop_config.configure() was not called");
        return -1;
    }
    return 0;
}
/* ---- the configuration ------------------------------------------------- */

static int
loopconfig_init_names(cev_loop_config *cfg)
{
#define INTERN(field, text) \
    do { \
        cfg->field = PyUnicode_InternFromString(text); \
        if (cfg->field == NULL) { \
            return -1; \
        } \
    } while (0)

    INTERN(str_append, "append");
    INTERN(str_popleft, "popleft");
    INTERN(str_appendleft, "appendleft");
    INTERN(str__when_ns, "_when_ns");
    INTERN(str_notify, "notify");
    INTERN(str_mod_ns, "mod_ns");
    INTERN(str__run_ready_debug, "_run_ready_debug");
    INTERN(str_call_later, "call_later");
    INTERN(str_call_at, "call_at");
#undef INTERN
    cfg->kwnames_loop = Py_BuildValue("(s)", "loop");
    if (cfg->kwnames_loop == NULL) {
        return -1;
    }
    return 0;
}

/* Applies @op to every object field of @cfg. */
#define LOOP_CONFIG_OBJECTS(op, cfg)            \
    do {                                        \
        op((cfg)->handle_type);                 \
        op((cfg)->timer_type);                  \
        op((cfg)->plain_handle_types);          \
        op((cfg)->exc_hook);                    \
        op((cfg)->py_call_soon);                \
        op((cfg)->py_call_soon_threadsafe);     \
        op((cfg)->new_timer_debug);             \
        op((cfg)->future_type);                 \
        op((cfg)->kwnames_loop);                \
        op((cfg)->str_append);                  \
        op((cfg)->str_popleft);                 \
        op((cfg)->str_appendleft);              \
        op((cfg)->str__run);                    \
        op((cfg)->str__cancelled);              \
        op((cfg)->str__when);                   \
        op((cfg)->str__scheduled);              \
        op((cfg)->str__when_ns);                \
        op((cfg)->str_notify);                  \
        op((cfg)->str_mod_ns);                  \
        op((cfg)->str__run_ready_debug);        \
        op((cfg)->str_call_later);              \
        op((cfg)->str_call_at);                 \
    } while (0)


/*
 * @names: a tuple of @count str, or None.  The offsets of @type's object
 * slots @names into @offsets; 0 without doing anything for None.
 */
static int
loopcore_slot_offsets(PyObject *type, PyObject *names, int count,
                      Py_ssize_t *offsets)
{
    if (names == Py_None) {
        return 0;
    }
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != count) {
        PyErr_Format(PyExc_TypeError, "slot names: a tuple of %d str or "
                     "None", count);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *descr;
        PyMemberDef *member;

        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "slot names must be str");
            return -1;
        }
        descr = PyObject_GetAttr(type, name);
        if (descr == NULL) {
            return -1;
        }
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%R.%U is not a slot", type, name);
            return -1;
        }
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%R.%U is not an object slot",
                         type, name);
            return -1;
        }
        offsets[i] = member->offset;
        Py_DECREF(descr);
    }
    return 0;
}

/* A tuple of @count str, interned into @out (new references). */
static int
loopconfig_names(PyObject *names, Py_ssize_t count, const char *what,
                 PyObject **out)
{
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != count) {
        PyErr_Format(PyExc_TypeError, "%s: a tuple of %zd str", what, count);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_Format(PyExc_TypeError, "%s: a tuple of %zd str", what,
                         count);
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = Py_NewRef(PyTuple_GET_ITEM(names, i));

        PyUnicode_InternInPlace(&name);
        Py_XSETREF(out[i], name);
    }
    return 0;
}

/* key_fields: (index of fd, index of data, length), or None. */
static int
loopconfig_key_fields(cev_loop_config *cfg, PyObject *fields)
{
    Py_ssize_t v[3];

    if (fields == Py_None) {
        cfg->key_size = 0;
        return 0;
    }
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "key_fields: (fd index, data index, length) or None");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        v[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(fields, i));
        if (v[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (v[2] < 2 || v[0] < 0 || v[0] >= v[2] || v[1] < 0 || v[1] >= v[2] ||
        v[0] == v[1]) {
        PyErr_SetString(PyExc_ValueError, "key_fields: bad indexes");
        return -1;
    }
    cfg->key_fd = v[0];
    cfg->key_data = v[1];
    cfg->key_size = v[2];
    return 0;
}

PyDoc_STRVAR(loopconfig_configure_doc,
"configure($self, /, *, handle_type, timer_type, plain_handle_types,\n"
"          exc_hook, call_soon, call_soon_threadsafe, new_timer_debug,\n"
"          future_type, handle_slots, timer_slots, handle_attrs,\n"
"          key_fields, transport_attrs)\n--\n\n"
"Tell the face what it builds on: the Handle type that call_soon()\n"
"makes; the TimerHandle subclass that call_later() makes (with a\n"
"_when_ns slot); the handle types whose _run is Handle._run (run\n"
"natively); exc_hook(handle, exc) for a callback that raised;\n"
"BaseEventLoop's call_soon and call_soon_threadsafe for debug mode;\n"
"new_timer_debug(loop, name, when, when_ns, callback, args, context),\n"
"which makes a timer handle in debug mode; and the Future type that\n"
"create_future() makes.  The rest is what the C code knows of asyncio's\n"
"private layout (cevent._asyncio_layout): the Handle and TimerHandle\n"
"slots it writes (None: make handles in Python), the names of a\n"
"handle's _run, _cancelled, _when and _scheduled, the SelectorKey\n"
"positions (None:\n"
"no _FdWatch) and the socket transport's attributes.  Called once by\n"
"cevent._loop at import.");

static PyObject *
loopconfig_configure(LoopConfigObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "handle_type", "timer_type", "plain_handle_types", "exc_hook",
        "call_soon", "call_soon_threadsafe", "new_timer_debug",
        "future_type", "handle_slots", "timer_slots", "handle_attrs",
        "key_fields", "transport_attrs", NULL
    };
    cev_loop_config *cfg = &self->loop;
    PyObject *handle_type = NULL, *timer_type = NULL, *plain = NULL;
    PyObject *exc_hook = NULL, *call_soon = NULL, *call_soon_ts = NULL;
    PyObject *new_timer_debug = NULL, *future_type = NULL;
    PyObject *handle_slots = NULL, *timer_slots = NULL, *handle_attrs = NULL;
    PyObject *key_fields = NULL, *transport_attrs = NULL;
    PyObject *attrs[4] = {NULL, NULL, NULL, NULL};
    Py_ssize_t handle_offsets[CEV_LOOP_HANDLE_SLOTS] = {0};
    Py_ssize_t timer_offsets[CEV_LOOP_TIMER_SLOTS] = {0};

    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "|$O!O!O!OOOOO!OOOOO:configure", kwlist,
            &PyType_Type, &handle_type, &PyType_Type, &timer_type,
            &PyTuple_Type, &plain, &exc_hook, &call_soon, &call_soon_ts,
            &new_timer_debug, &PyType_Type, &future_type, &handle_slots,
            &timer_slots, &handle_attrs, &key_fields, &transport_attrs)) {
        return NULL;
    }
    /* Keyword-only arguments are optional for PyArg_Parse*: all needed */
    if (handle_type == NULL || timer_type == NULL || plain == NULL ||
        exc_hook == NULL || call_soon == NULL || call_soon_ts == NULL ||
        new_timer_debug == NULL || future_type == NULL ||
        handle_slots == NULL || timer_slots == NULL || handle_attrs == NULL ||
        key_fields == NULL || transport_attrs == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "configure() needs all 13 keyword arguments");
        return NULL;
    }
    if ((handle_slots == Py_None) != (timer_slots == Py_None)) {
        PyErr_SetString(PyExc_TypeError,
                        "handle_slots and timer_slots: both or neither");
        return NULL;
    }
    if (!PyCallable_Check(exc_hook) || !PyCallable_Check(call_soon) ||
        !PyCallable_Check(call_soon_ts) || !PyCallable_Check(new_timer_debug)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(): exc_hook, call_soon, "
                        "call_soon_threadsafe and new_timer_debug must be "
                        "callable");
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)timer_type,
                          (PyTypeObject *)handle_type) ||
        ((PyTypeObject *)timer_type)->tp_base == NULL ||
        ((PyTypeObject *)timer_type)->tp_base ==
        (PyTypeObject *)handle_type) {
        PyErr_SetString(PyExc_TypeError,
                        "the timer type must subclass a subclass of the "
                        "handle type (TimerHandle)");
        return NULL;
    }
    if (loopcore_slot_offsets(handle_type, handle_slots,
                              CEV_LOOP_HANDLE_SLOTS, handle_offsets) < 0 ||
        loopcore_slot_offsets(timer_type, timer_slots,
                              CEV_LOOP_TIMER_SLOTS, timer_offsets) < 0 ||
        loopconfig_names(handle_attrs, 4, "handle_attrs", attrs) < 0 ||
        loopconfig_key_fields(cfg, key_fields) < 0 ||
        loopconfig_names(transport_attrs, CEV_TRANSPORT_NAMES,
                         "transport_attrs", self->transport.names) < 0) {
        for (int i = 0; i < 4; i++) {
            Py_XDECREF(attrs[i]);
        }
        return NULL;
    }
    Py_XSETREF(cfg->str__run, attrs[0]);
    Py_XSETREF(cfg->str__cancelled, attrs[1]);
    Py_XSETREF(cfg->str__when, attrs[2]);
    Py_XSETREF(cfg->str__scheduled, attrs[3]);
    cfg->native_handles = handle_slots != Py_None;
    memcpy(cfg->handle_offsets, handle_offsets, sizeof(handle_offsets));
    memcpy(cfg->timer_offsets, timer_offsets, sizeof(timer_offsets));
    Py_XSETREF(cfg->handle_type, Py_NewRef(handle_type));
    Py_XSETREF(cfg->timer_type, Py_NewRef(timer_type));
    Py_XSETREF(cfg->plain_handle_types, Py_NewRef(plain));
    Py_XSETREF(cfg->exc_hook, Py_NewRef(exc_hook));
    Py_XSETREF(cfg->py_call_soon, Py_NewRef(call_soon));
    Py_XSETREF(cfg->py_call_soon_threadsafe, Py_NewRef(call_soon_ts));
    Py_XSETREF(cfg->new_timer_debug, Py_NewRef(new_timer_debug));
    Py_XSETREF(cfg->future_type, Py_NewRef(future_type));
    Py_RETURN_NONE;
}

/* ---- the object ----------------------------------------------------------- */

static int
loopconfig_traverse(LoopConfigObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->LoopCoreType);
    Py_VISIT(self->FdWatchType);
    Py_VISIT(self->TransportType);
    Py_VISIT(self->RingReaderType);
    LOOP_CONFIG_OBJECTS(Py_VISIT, &self->loop);
    return 0;
}

static int
loopconfig_clear(LoopConfigObject *self)
{
    Py_CLEAR(self->LoopCoreType);
    Py_CLEAR(self->FdWatchType);
    Py_CLEAR(self->TransportType);
    Py_CLEAR(self->RingReaderType);
    LOOP_CONFIG_OBJECTS(Py_CLEAR, &self->loop);
    cev_transport_state_clear(&self->transport);
    return 0;
}

static void
loopconfig_dealloc(LoopConfigObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void)loopconfig_clear(self);
    cev_transport_state_free(&self->transport);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef loopconfig_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))loopconfig_configure,
     METH_VARARGS | METH_KEYWORDS, loopconfig_configure_doc},
    {NULL, NULL, 0, NULL}
};

PyDoc_STRVAR(loopconfig_doc,
"The asyncio face's types and configuration (cevent._cevent._loop_config;\n"
"one per module, made at import).");

static PyType_Slot loopconfig_slots[] = {
    {Py_tp_dealloc, loopconfig_dealloc},
    {Py_tp_traverse, loopconfig_traverse},
    {Py_tp_clear, loopconfig_clear},
    {Py_tp_methods, loopconfig_methods},
    {Py_tp_doc, (void *)loopconfig_doc},
    {0, NULL}
};

static PyType_Spec loopconfig_spec = {
    .name = "cevent._cevent._LoopConfig",
    .basicsize = sizeof(LoopConfigObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_DISALLOW_INSTANTIATION),
    .slots = loopconfig_slots,
};

/* ---- the face in the module ------------------------------------------- */

static PyMethodDef loop_functions[] = {
    {"_ns_ceil", cev_loopcore_ns_ceil, METH_O,
     "_ns_ceil($module, seconds, /)\n--\n\n"
     "The smallest integer number of ns that is >= seconds exactly."},
    {"_sock_recv_nowait", (PyCFunction)(void (*)(void))cev_sock_recv_nowait,
     METH_FASTCALL,
     "_sock_recv_nowait($module, fd, n, /)\n--\n\n"
     "recv(fd, n) without blocking: the bytes read (b'' at EOF), or None\n"
     "if nothing is there; OSError for an error."},
    {NULL, NULL, 0, NULL}
};

int
cev_loop_exec(PyObject *module)
{
    cevent_state *state = get_cevent_state(module);
    PyTypeObject *config_type;
    LoopConfigObject *self;

    config_type = cev_add_type(module, &loopconfig_spec, NULL);
    if (config_type == NULL) {
        return -1;
    }
    self = PyObject_GC_New(LoopConfigObject, config_type);
    Py_DECREF(config_type);             /* the module holds it */
    if (self == NULL) {
        return -1;
    }
    memset(&self->loop, 0, sizeof(self->loop));
    memset(&self->transport, 0, sizeof(self->transport));
    self->LoopCoreType = NULL;
    self->FdWatchType = NULL;
    self->TransportType = NULL;
    self->RingReaderType = NULL;
    PyObject_GC_Track(self);
    state->loop_face = (PyObject *)self;
    if (loopconfig_init_names(&self->loop) < 0 ||
        cev_transport_state_init(&self->transport) < 0) {
        return -1;
    }
    self->LoopCoreType = cev_add_type(module, &cev_loopcore_spec, NULL);
    if (self->LoopCoreType == NULL) {
        return -1;
    }
    self->FdWatchType = cev_add_type(module, &cev_fdwatch_spec, NULL);
    if (self->FdWatchType == NULL) {
        return -1;
    }
    self->TransportType = cev_add_type(module, &cev_transport_spec, NULL);
    if (self->TransportType == NULL) {
        return -1;
    }
#ifdef CONFIG_LINUX_IO_URING
    self->RingReaderType = cev_add_type(module, &cev_ringreader_spec, NULL);
    if (self->RingReaderType == NULL) {
        return -1;
    }
#endif
    if (PyModule_AddObjectRef(module, "_loop_config", (PyObject *)self) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, loop_functions);
}
