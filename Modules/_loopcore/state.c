/*
 * cevent._loopcore: the module state, found from a type; the C API pointer.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * The types of module.c find the module's state through
 * PyType_GetModuleByDef(), which needs the module's PyModuleDef.  The def
 * lives in module.c, which uses every other file; module.c hands it over
 * here when the module is made, so that no file below it uses it.
 */

#define CEVENT_API_DEFINE 1
#include "loopcore.h"

/* The same static PyModuleDef for every module object (module.c). */
static PyModuleDef *loopcore_module_def;

void
loopcore_set_module_def(PyModuleDef *def)
{
    loopcore_module_def = def;
}

loopcore_state *
loopcore_state_by_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, loopcore_module_def);

    assert(module != NULL);
    return (loopcore_state *)PyModule_GetState(module);
}

cev_loop_config *
loopcore_config(PyTypeObject *defining_class)
{
    return &((loopcore_state *)PyType_GetModuleState(defining_class))->loop;
}

int
loopcore_check_configured(cev_loop_config *cfg)
{
    if (cfg->handle_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cevent._loopcore.configure() was not called");
        return -1;
    }
    return 0;
}
