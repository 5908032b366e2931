/* promshm._speedups: the optional C fast path of the Python binding.
 *
 * The update methods of the metric classes (counter inc, gauge
 * inc/dec/set/set_to_current_time, histogram and summary observe) and a
 * family's cached labels() lookup, as C methods. They call the very library
 * promshm._ffi loaded with ctypes: its function addresses are passed to init()
 * at import, so there is one copy of libpromshm in the process and this module
 * links against nothing but Python.
 *
 * Semantics are the Python methods' (promshm/metrics.py): each C method handles
 * the common call shapes (no argument, or one exact int/float; labels() with
 * positional values that are exact str and already cached) and hands every
 * other call to the Python method it replaced, unchanged. A failing library call
 * raises through metrics._fail, as the Python methods do. Nothing here holds a
 * lock or a cache of its own (labels() keeps its cache in the family's `_raw`
 * dict, see cached_child()), so there is nothing to renew after fork(): the
 * handles are read from the objects on every call (metrics.py re-resolves them
 * in a child).
 *
 * Built with the limited API (abi3): one build serves every CPython >= 3.9.
 */
#define Py_LIMITED_API 0x03090000
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef METH_FASTCALL
/* The limited API declares METH_FASTCALL from 3.10 on; CPython has had it,
 * with this value and calling convention, since 3.7, and 3.9 runs its own
 * builtins with it: the abi3 build for 3.9 uses it too. */
#define METH_FASTCALL 0x0080
#endif

typedef uint32_t (*update0_fn)(const void *series);
typedef uint32_t (*update1_fn)(const void *series, double value);

/* The library's hot functions (addresses from ctypes, see init()). */
static update0_fn counter_inc_fn, gauge_inc_fn, gauge_dec_fn, gauge_now_fn;
static update1_fn counter_add_fn, gauge_add_fn, gauge_sub_fn, gauge_set_fn, histogram_observe_fn,
    summary_observe_fn;

/* metrics._fail(obj, rc): raises the exception of a failed update. */
static PyObject *fail_fn;
/* Interned attribute names. */
static PyObject *str_h, *str_raw;
/* The Handle type. */
static PyTypeObject *handle_type;

/* The methods bound by bind(), in this order; their Python originals are the fallbacks. */
enum { M_COUNTER_INC, M_GAUGE_INC, M_GAUGE_DEC, M_GAUGE_SET, M_GAUGE_NOW, M_HISTOGRAM_OBSERVE,
       M_SUMMARY_OBSERVE, M_LABELS, M_COUNT };
static PyObject *fallback[M_COUNT];

/* ---------------------------------------------------------------- Handle */

/* A series handle: the library's `const promshm_series *`. ctypes accepts it
 * wherever metrics.py passes a handle (`_as_parameter_`). */
typedef struct {
    PyObject_HEAD
    void *ptr;
} Handle;

static PyObject *handle_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *addr = Py_None;
    static char *names[] = {"address", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:Handle", names, &addr))
        return NULL;
    void *ptr = NULL;
    if (addr != Py_None) {
        ptr = PyLong_AsVoidPtr(addr);
        if (ptr == NULL && PyErr_Occurred())
            return NULL;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    Handle *self = (Handle *)alloc(type, 0);
    if (self)
        self->ptr = ptr;
    return (PyObject *)self;
}

static void handle_dealloc(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    freefunc free_ = (freefunc)PyType_GetSlot(type, Py_tp_free);
    free_(self);
    Py_DECREF(type);
}

/* The address as an int, None for NULL (as ctypes' c_void_p.value). */
static PyObject *handle_value(PyObject *self, void *closure) {
    (void)closure;
    void *ptr = ((Handle *)self)->ptr;
    if (!ptr)
        Py_RETURN_NONE;
    return PyLong_FromVoidPtr(ptr);
}

static PyObject *handle_repr(PyObject *self) {
    return PyUnicode_FromFormat("Handle(%p)", ((Handle *)self)->ptr);
}

static PyGetSetDef handle_getset[] = {
    {"value", handle_value, NULL, "The address (None for NULL).", NULL},
    {"_as_parameter_", handle_value, NULL, "What ctypes passes for this handle.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_new, handle_new},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_repr, handle_repr},
    {Py_tp_getset, handle_getset},
    {Py_tp_doc, "Handle(address): a promshm series handle, passed to ctypes as its address."},
    {0, NULL},
};

static PyType_Spec handle_spec = {"promshm._speedups.Handle", sizeof(Handle), 0, Py_TPFLAGS_DEFAULT,
                                  handle_slots};

/* ---------------------------------------------------------------- helpers */

/* The C methods take CPython's METH_FASTCALL | METH_KEYWORDS arguments: the
 * nargs positional values, then the values of the keywords named in kwnames
 * (NULL, or a tuple that may be empty: none). The interpreter calls such a
 * method descriptor without building an argument tuple (3.11+ specialise the
 * call when the instance's type is exactly the descriptor's class, which is why
 * _native.py binds one descriptor per class). */
typedef PyObject *(*fastcall_fn)(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

static int no_kwargs(PyObject *kwnames) {
    return kwnames == NULL || PyTuple_Size(kwnames) == 0;
}

/* The tuple (first, *args), or (*args) if first is NULL. */
static PyObject *pack(PyObject *first, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t skip = first != NULL;
    PyObject *t = PyTuple_New(nargs + skip);
    if (!t)
        return NULL;
    if (first) {
        Py_INCREF(first);
        PyTuple_SetItem(t, 0, first);
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SetItem(t, i + skip, args[i]);
    }
    return t;
}

/* Call the Python method `which` replaced: fallback(self, *args, **kwargs). */
static PyObject *call_fallback(int which, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    PyObject *kwargs = NULL, *r = NULL;
    PyObject *full = pack(self, args, nargs);
    if (!full)
        return NULL;
    if (!no_kwargs(kwnames)) {
        kwargs = PyDict_New();
        if (!kwargs)
            goto done;
        for (Py_ssize_t i = 0; i < PyTuple_Size(kwnames); i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0)
                goto done;
        }
    }
    r = PyObject_Call(fallback[which], full, kwargs);
done:
    Py_DECREF(full);
    Py_XDECREF(kwargs);
    return r;
}

/* The attribute `name` of `self`. *generic is the last type this caller saw
 * whose attribute lookup is the generic one (no __getattribute__ or
 * __getattr__ of its own): its instances' attributes are read with
 * PyObject_GenericGetAttr directly (what PyObject_GetAttr would call),
 * skipping the dispatch. One per caller (labels() sees families, the update
 * methods series: `labels(...).inc()` alternates them). A strong reference:
 * the address cannot be reused. */
static PyObject *get_attr(PyObject *self, PyObject *name, PyTypeObject **generic) {
    PyTypeObject *type = Py_TYPE(self);
    if (type == *generic)
        return PyObject_GenericGetAttr(self, name);
    if (PyType_GetFlags(type) & Py_TPFLAGS_HEAPTYPE) {
        if (PyType_GetSlot(type, Py_tp_getattro) == (void *)PyObject_GenericGetAttr) {
            Py_INCREF(type);
            Py_XDECREF(*generic);
            *generic = type;
        }
    }
    return PyObject_GetAttr(self, name);
}

/* get_attr()'s type of the update methods (series and unlabelled metrics) and of labels() (families). */
static PyTypeObject *generic_series, *generic_family;

/* The series pointer of `self` (its `_h`: a Handle, or None for NULL).
 * 1: *out set, *keep holds a reference to release after the call; 0: `_h` is
 * something else (or missing): use the Python method. */
static int series_of(PyObject *self, void **out, PyObject **keep) {
    PyObject *h = get_attr(self, str_h, &generic_series);
    if (!h) {
        PyErr_Clear();
        return 0;
    }
    if (h == Py_None) {
        *out = NULL;
    } else if (Py_TYPE(h) == handle_type) {
        *out = ((Handle *)h)->ptr;
    } else {
        Py_DECREF(h);
        return 0;
    }
    *keep = h;
    return 1;
}

/* The result of an update: None, or the exception metrics._fail raises. */
static PyObject *finish(PyObject *self, uint32_t rc, PyObject *keep) {
    Py_DECREF(keep);
    if (rc == 0)
        Py_RETURN_NONE;
    PyObject *r = PyObject_CallFunction(fail_fn, "OI", self, (unsigned int)rc);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* float(value) for an exact float or int: 1 done, 0 another type (use the
 * Python method), -1 error raised (an int too large, as float() raises). */
static int exact_number(PyObject *v, double *out) {
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AsDouble(v);
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        double d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        *out = d;
        return 1;
    }
    return 0;
}

/* `inc(amount=1)` shape: amount == 1 -> one(), else many(float(amount)). */
static PyObject *update_by(int which, update0_fn one, update1_fn many, PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames) {
    double d = 1.0;
    if (nargs > 1 || !no_kwargs(kwnames))
        return call_fallback(which, self, args, nargs, kwnames);
    if (nargs == 1) {
        int ok = exact_number(args[0], &d);
        if (ok < 0)
            return NULL;
        if (ok == 0)
            return call_fallback(which, self, args, nargs, kwnames);
    }
    void *s;
    PyObject *keep;
    if (!series_of(self, &s, &keep))
        return call_fallback(which, self, args, nargs, kwnames);
    return finish(self, d == 1.0 ? one(s) : many(s, d), keep);
}

/* `set(value)` / `observe(amount)` shape: fn(float(value)). */
static PyObject *update_with(int which, update1_fn fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    double d;
    if (nargs != 1 || !no_kwargs(kwnames))
        return call_fallback(which, self, args, nargs, kwnames);
    int ok = exact_number(args[0], &d);
    if (ok < 0)
        return NULL;
    if (ok == 0)
        return call_fallback(which, self, args, nargs, kwnames);
    void *s;
    PyObject *keep;
    if (!series_of(self, &s, &keep))
        return call_fallback(which, self, args, nargs, kwnames);
    return finish(self, fn(s, d), keep);
}

/* ---------------------------------------------------------------- methods */

#define FASTCALL_ARGS PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames

static PyObject *counter_inc(FASTCALL_ARGS) {
    return update_by(M_COUNTER_INC, counter_inc_fn, counter_add_fn, self, args, nargs, kwnames);
}

static PyObject *gauge_inc(FASTCALL_ARGS) {
    return update_by(M_GAUGE_INC, gauge_inc_fn, gauge_add_fn, self, args, nargs, kwnames);
}

static PyObject *gauge_dec(FASTCALL_ARGS) {
    return update_by(M_GAUGE_DEC, gauge_dec_fn, gauge_sub_fn, self, args, nargs, kwnames);
}

static PyObject *gauge_set(FASTCALL_ARGS) {
    return update_with(M_GAUGE_SET, gauge_set_fn, self, args, nargs, kwnames);
}

static PyObject *gauge_set_to_current_time(FASTCALL_ARGS) {
    if (nargs != 0 || !no_kwargs(kwnames))
        return call_fallback(M_GAUGE_NOW, self, args, nargs, kwnames);
    void *s;
    PyObject *keep;
    if (!series_of(self, &s, &keep))
        return call_fallback(M_GAUGE_NOW, self, args, nargs, kwnames);
    return finish(self, gauge_now_fn(s), keep);
}

static PyObject *histogram_observe(FASTCALL_ARGS) {
    return update_with(M_HISTOGRAM_OBSERVE, histogram_observe_fn, self, args, nargs, kwnames);
}

static PyObject *summary_observe(FASTCALL_ARGS) {
    return update_with(M_SUMMARY_OBSERVE, summary_observe_fn, self, args, nargs, kwnames);
}

/* labels()'s own cache, kept in the family's `_raw` dict next to the Python
 * method's entries (a tuple of the values as given -> the series): the first
 * value, a str key (never equal to a tuple), maps to a dict of the second
 * value, and so on; the last value maps to the series. So the lookup hashes no
 * tuple (each str caches its hash), and whatever clears `_raw` (remove(),
 * clear(), unregistering) clears this cache too. */

/* Whether every value is an exact str (the only values either cache holds). */
static int all_str(PyObject *const *args, Py_ssize_t nargs) {
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyUnicode_CheckExact(args[i]))
            return 0;
    }
    return 1;
}

/* The series cached for exact-str `args` (borrowed), or NULL (error cleared). */
static PyObject *cached_child(PyObject *raw, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *v = raw;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyDict_CheckExact(v))
            return NULL;
        v = PyDict_GetItemWithError(v, args[i]);
        if (!v) {
            PyErr_Clear();
            return NULL;
        }
    }
    return PyDict_CheckExact(v) ? NULL : v; /* a dict: fewer values than labels */
}

/* After the Python method returned `child` for exact-str `args`: cache it in
 * the nested dicts if the Python method cached it for `args` as given (so the
 * C cache holds what the Python one does, and nothing a clear() since removed). */
static void remember(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *child) {
    PyObject *raw = get_attr(self, str_raw, &generic_family);
    PyObject *key = pack(NULL, args, nargs);
    PyObject *d = raw;
    if (!raw || !key || !PyDict_CheckExact(raw))
        goto done;
    if (PyDict_GetItemWithError(raw, key) != child)
        goto done;
    for (Py_ssize_t i = 0; i + 1 < nargs; i++) {
        PyObject *next = PyDict_GetItemWithError(d, args[i]); /* borrowed */
        if (!next && !PyErr_Occurred()) {
            next = PyDict_New();
            if (!next || PyDict_SetItem(d, args[i], next) < 0) {
                Py_XDECREF(next);
                goto done;
            }
            Py_DECREF(next); /* d holds it */
        }
        if (!next || !PyDict_CheckExact(next))
            goto done;
        d = next;
    }
    PyDict_SetItem(d, args[nargs - 1], child);
done:
    Py_XDECREF(key);
    Py_XDECREF(raw);
    PyErr_Clear(); /* a cache that could not be filled is only slower */
}

/* A family's labels(*values): the series cached for these exact-str values
 * as given, else the Python method (which resolves and caches). */
static PyObject *labels(FASTCALL_ARGS) {
    if (nargs == 0 || !no_kwargs(kwnames) || !all_str(args, nargs))
        return call_fallback(M_LABELS, self, args, nargs, kwnames);
    PyObject *raw = get_attr(self, str_raw, &generic_family);
    if (!raw) {
        PyErr_Clear();
        return call_fallback(M_LABELS, self, args, nargs, kwnames);
    }
    PyObject *child = cached_child(raw, args, nargs); /* borrowed */
    Py_XINCREF(child);
    Py_DECREF(raw);
    if (child)
        return child;
    child = call_fallback(M_LABELS, self, args, nargs, kwnames);
    if (child)
        remember(self, args, nargs, child);
    return child;
}

#define FASTCALL_METHOD(name, fn) {name, (PyCFunction)(void (*)(void))(fastcall_fn)fn, METH_FASTCALL | METH_KEYWORDS, NULL}

static PyMethodDef method_defs[M_COUNT] = {
    [M_COUNTER_INC] = FASTCALL_METHOD("inc", counter_inc),
    [M_GAUGE_INC] = FASTCALL_METHOD("inc", gauge_inc),
    [M_GAUGE_DEC] = FASTCALL_METHOD("dec", gauge_dec),
    [M_GAUGE_SET] = FASTCALL_METHOD("set", gauge_set),
    [M_GAUGE_NOW] = FASTCALL_METHOD("set_to_current_time", gauge_set_to_current_time),
    [M_HISTOGRAM_OBSERVE] = FASTCALL_METHOD("observe", histogram_observe),
    [M_SUMMARY_OBSERVE] = FASTCALL_METHOD("observe", summary_observe),
    [M_LABELS] = FASTCALL_METHOD("labels", labels),
};

/* The method kinds bind() accepts, by name (index into method_defs). */
static const char *const method_kinds[M_COUNT] = {
    [M_COUNTER_INC] = "counter_inc",
    [M_GAUGE_INC] = "gauge_inc",
    [M_GAUGE_DEC] = "gauge_dec",
    [M_GAUGE_SET] = "gauge_set",
    [M_GAUGE_NOW] = "gauge_set_to_current_time",
    [M_HISTOGRAM_OBSERVE] = "histogram_observe",
    [M_SUMMARY_OBSERVE] = "summary_observe",
    [M_LABELS] = "labels",
};

/* ---------------------------------------------------------------- module functions */

static int address(PyObject *functions, const char *name, void **out) {
    PyObject *v = PyDict_GetItemString(functions, name); /* borrowed */
    if (!v) {
        PyErr_Format(PyExc_KeyError, "init(): no address for %s", name);
        return -1;
    }
    *out = PyLong_AsVoidPtr(v);
    if (*out == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "init(): NULL address for %s", name);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(init_doc, "init(functions, fail): the library's hot functions as {name: address} "
                       "(from ctypes) and metrics._fail.");

static PyObject *init(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *functions, *fail;
    if (!PyArg_ParseTuple(args, "O!O:init", &PyDict_Type, &functions, &fail))
        return NULL;
    struct {
        const char *name;
        void **slot;
    } table[] = {
        {"counter_inc", (void **)&counter_inc_fn},
        {"counter_add", (void **)&counter_add_fn},
        {"gauge_inc", (void **)&gauge_inc_fn},
        {"gauge_dec", (void **)&gauge_dec_fn},
        {"gauge_add", (void **)&gauge_add_fn},
        {"gauge_sub", (void **)&gauge_sub_fn},
        {"gauge_set", (void **)&gauge_set_fn},
        {"gauge_set_to_current_time", (void **)&gauge_now_fn},
        {"histogram_observe", (void **)&histogram_observe_fn},
        {"summary_observe", (void **)&summary_observe_fn},
    };
    void *got[sizeof table / sizeof table[0]];
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (address(functions, table[i].name, &got[i]) < 0)
            return NULL;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        *table[i].slot = got[i];
    Py_INCREF(fail);
    Py_XDECREF(fail_fn);
    fail_fn = fail;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bind_doc, "bind(cls, kind, original): a method descriptor of cls running the C method "
                       "`kind`, which hands the calls it does not handle to `original`.");

static PyObject *bind(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *cls, *original;
    const char *kind;
    if (!PyArg_ParseTuple(args, "O!sO:bind", &PyType_Type, &cls, &kind, &original))
        return NULL;
    if (!fail_fn) {
        PyErr_SetString(PyExc_RuntimeError, "bind(): call init() first");
        return NULL;
    }
    for (int i = 0; i < M_COUNT; i++) {
        if (strcmp(method_kinds[i], kind) != 0)
            continue;
        Py_INCREF(original);
        Py_XDECREF(fallback[i]);
        fallback[i] = original;
        if (!method_defs[i].ml_doc) {
            /* The original's docstring (kept for the process's life). */
            PyObject *doc = PyObject_GetAttrString(original, "__doc__");
            PyObject *utf8 = doc && PyUnicode_Check(doc) ? PyUnicode_AsUTF8String(doc) : NULL;
            if (utf8)
                method_defs[i].ml_doc = strdup(PyBytes_AsString(utf8));
            Py_XDECREF(utf8);
            Py_XDECREF(doc);
            PyErr_Clear();
        }
        return PyDescr_NewMethod((PyTypeObject *)cls, &method_defs[i]);
    }
    PyErr_Format(PyExc_ValueError, "bind(): unknown method kind %s", kind);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"init", init, METH_VARARGS, init_doc},
    {"bind", bind, METH_VARARGS, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "promshm._speedups",
    "The optional C fast path of promshm's update methods (see promshm/_native.py).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    str_h = PyUnicode_InternFromString("_h");
    str_raw = PyUnicode_InternFromString("_raw");
    handle_type = (PyTypeObject *)PyType_FromSpec(&handle_spec);
    if (!str_h || !str_raw || !handle_type) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(handle_type);
    if (PyModule_AddObject(m, "Handle", (PyObject *)handle_type) < 0) {
        Py_DECREF(handle_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
