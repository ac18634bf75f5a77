/*
 * cevent._loopcore: the module, its types, configure() and functions.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * The C part of cevent's asyncio face (loopcore.h).  At import it imports
 * cevent's C API (CEvent_Import()) and makes its types; Lib/cevent/_loop.py
 * then calls configure() once, with the asyncio classes and Python
 * fallbacks that the C code relies on.  All of it is kept in the module
 * state (loopcore_state).
 */

#include "loopcore.h"

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

PyDoc_STRVAR(loopcore_configure_doc,
"configure($module, /, *, handle_type, timer_type, plain_handle_types,\n"
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
loopcore_configure(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "handle_type", "timer_type", "plain_handle_types", "exc_hook",
        "call_soon", "call_soon_threadsafe", "new_timer_debug",
        "future_type", "handle_slots", "timer_slots", "handle_attrs",
        "key_fields", "transport_attrs", NULL
    };
    loopcore_state *state = PyModule_GetState(module);
    cev_loop_config *cfg = &state->loop;
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
                         "transport_attrs", state->transport.names) < 0) {
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

/* ---- the module ---------------------------------------------------------- */

static PyMethodDef loopcore_functions[] = {
    {"configure", CEV_METH(loopcore_configure),
     METH_VARARGS | METH_KEYWORDS, loopcore_configure_doc},
    {"_ns_ceil", cev_loopcore_ns_ceil, METH_O,
     "_ns_ceil($module, seconds, /)\n--\n\n"
     "The smallest integer number of ns that is >= seconds exactly."},
    {"_sock_recv_nowait", CEV_METH(cev_sock_recv_nowait), METH_FASTCALL,
     "_sock_recv_nowait($module, fd, n, /)\n--\n\n"
     "recv(fd, n) without blocking: the bytes read (b'' at EOF), or None\n"
     "if nothing is there; OSError for an error."},
    {NULL, NULL, 0, NULL}
};

static int
loopcore_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    loopcore_state *state = PyModule_GetState(module);

    Py_VISIT(state->LoopCoreType);
    Py_VISIT(state->FdWatchType);
    Py_VISIT(state->TransportType);
    Py_VISIT(state->RingReaderType);
    LOOP_CONFIG_OBJECTS(Py_VISIT, &state->loop);
    return 0;
}

static int
loopcore_module_clear(PyObject *module)
{
    loopcore_state *state = PyModule_GetState(module);

    Py_CLEAR(state->LoopCoreType);
    Py_CLEAR(state->FdWatchType);
    Py_CLEAR(state->TransportType);
    Py_CLEAR(state->RingReaderType);
    LOOP_CONFIG_OBJECTS(Py_CLEAR, &state->loop);
    cev_transport_state_clear(&state->transport);
    return 0;
}

static void
loopcore_module_free(void *module)
{
    loopcore_state *state = PyModule_GetState((PyObject *)module);

    (void)loopcore_module_clear((PyObject *)module);
    cev_transport_state_free(&state->transport);
}

/* A type from @spec for @module, added to it (new reference, or NULL). */
static PyTypeObject *
loopcore_add_type(PyObject *module, PyType_Spec *spec)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);

    if (type == NULL) {
        return NULL;
    }
    if (PyModule_AddType(module, (PyTypeObject *)type) < 0) {
        Py_DECREF(type);
        return NULL;
    }
    return (PyTypeObject *)type;
}

static PyModuleDef loopcore_module;

static int
loopcore_module_exec(PyObject *module)
{
    loopcore_state *state = PyModule_GetState(module);
    PyObject *never;
    int rc;

    /* cevent._cevent refuses subinterpreters, and so does its C API. */
    if (CEvent_Import() < 0) {
        return -1;
    }
    loopcore_set_module_def(&loopcore_module);
    never = PyLong_FromLongLong(LOOPCORE_NEVER_NS);
    if (never == NULL) {
        return -1;
    }
    rc = PyModule_AddObjectRef(module, "NEVER_NS", never);
    Py_DECREF(never);
    if (rc < 0) {
        return -1;
    }
    if (loopconfig_init_names(&state->loop) < 0 ||
        cev_transport_state_init(&state->transport) < 0) {
        return -1;
    }
    state->LoopCoreType = loopcore_add_type(module, &cev_loopcore_spec);
    if (state->LoopCoreType == NULL) {
        return -1;
    }
    state->FdWatchType = loopcore_add_type(module, &cev_fdwatch_spec);
    if (state->FdWatchType == NULL) {
        return -1;
    }
    state->TransportType = loopcore_add_type(module, &cev_transport_spec);
    if (state->TransportType == NULL) {
        return -1;
    }
#ifdef CONFIG_LINUX_IO_URING
    state->RingReaderType = loopcore_add_type(module, &cev_ringreader_spec);
    if (state->RingReaderType == NULL) {
        return -1;
    }
#endif
    return 0;
}

static PyModuleDef_Slot loopcore_slots[] = {
    {Py_mod_exec, loopcore_module_exec},
#ifdef Py_mod_multiple_interpreters
    /* 3.12+: as cevent._cevent, whose C API it uses */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* 3.13+: the loop's state relies on the GIL */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL}
};

PyDoc_STRVAR(loopcore_doc,
"The C core of cevent.Loop, built on cevent's C API (cevent.h).");

static PyModuleDef loopcore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cevent._loopcore",
    .m_doc = loopcore_doc,
    .m_size = sizeof(loopcore_state),
    .m_methods = loopcore_functions,
    .m_slots = loopcore_slots,
    .m_traverse = loopcore_module_traverse,
    .m_clear = loopcore_module_clear,
    .m_free = loopcore_module_free,
};

PyMODINIT_FUNC
PyInit__loopcore(void)
{
    return PyModuleDef_Init(&loopcore_module);
}
