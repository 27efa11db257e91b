/*
 * arvo_shim.c: the native VapourSynth API4 plugin that gives scripts core.arvo.*.
 *
 * VapourSynth has no Python API for creating a plugin namespace, so this tiny
 * plugin owns the "arvo" namespace and forwards every call to the vsarvo Python
 * package:
 *
 *   core.arvo.RegisterImplementation(func=callable)
 *       stores `callable` (handed to C by VapourSynth as a VSFunction) as the
 *       implementation of Deblur on this core, replacing any earlier one.
 *   core.arvo.Deblur(clip, ...)
 *       calls the implementation with its argument map (Python receives the
 *       arguments the user set as keyword arguments) and returns the clip it
 *       returns. On a core with no implementation yet, it first imports vsarvo
 *       in the running interpreter and calls vsarvo.register_with_core(), which
 *       registers vsarvo's filter through RegisterImplementation.
 *
 * The plugin never links libpython: vspipe loads the interpreter itself and
 * `python` is the interpreter, so the few C API entry points it needs are
 * looked up in the running process when Deblur first needs them.
 *
 * Plugin init runs once per core and the state (the implementation) is per
 * core, so scripts reloaded with new cores in one process (editors, tests) each
 * get their own registration.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#include <pthread.h>
#endif

#include "VapourSynth4.h"

/* The signature is fixed here; vsarvo.filter.Deblur takes the same parameters
   (tests/test_plugin.py checks that they agree). */
#define DEBLUR_ARGS                                                                        \
    "clip:vnode;weights:data:opt;backend:data:opt;device:data:opt;precision:data:opt;"     \
    "tile:int:opt;tile_overlap:int:opt;stages:int:opt;scene_change:int:opt;"               \
    "sc_threshold:float:opt;streams:int:opt;compile:int:opt;compile_mode:data:opt;"        \
    "channels_last:int:opt;threads:int:opt;workspace:int:opt;optimization_level:int:opt;"  \
    "cache_dir:data:opt;nonfinite:data:opt;"
#define DEBLUR_RETURN "clip:vnode;"
#define REGISTER_ARGS "func:func;"

#define ERROR_SIZE 8192

/* ---- a mutex per core ---------------------------------------------------- */

#ifdef _WIN32
typedef SRWLOCK StateLock;
static void lock_init(StateLock *lock) { InitializeSRWLock(lock); }
static void lock_destroy(StateLock *lock) { (void)lock; }
static void lock_acquire(StateLock *lock) { AcquireSRWLockExclusive(lock); }
static void lock_release(StateLock *lock) { ReleaseSRWLockExclusive(lock); }
#else
typedef pthread_mutex_t StateLock;
static void lock_init(StateLock *lock) { pthread_mutex_init(lock, NULL); }
static void lock_destroy(StateLock *lock) { pthread_mutex_destroy(lock); }
static void lock_acquire(StateLock *lock) { pthread_mutex_lock(lock); }
static void lock_release(StateLock *lock) { pthread_mutex_unlock(lock); }
#endif

/* ---- per-core state ------------------------------------------------------- */

typedef struct CoreState {
    StateLock lock;
    const VSAPI *vsapi;          /* set on first use; needed to free the implementation */
    VSFunction *implementation;  /* owned reference, NULL until registered */
    int tied_to_core;            /* whether free_core_state will run when the core is freed */
} CoreState;

/* API4 gives a plugin no per-core teardown callback, but a core frees its log
   handlers (running their free callbacks) when it is freed. So on first use the
   state registers a log handler that ignores messages and whose free callback
   releases the state: the implementation (and with it the Python callable) goes
   when its core goes. A core on which arvo is never used keeps its zeroed state
   (a few dozen bytes) until the process exits. */
static void VS_CC ignore_log_message(int msgType, const char *msg, void *userData) {
    (void)msgType;
    (void)msg;
    (void)userData;
}

static void VS_CC free_core_state(void *userData) {
    CoreState *state = (CoreState *)userData;
    if (state->implementation)
        state->vsapi->freeFunction(state->implementation);
    lock_destroy(&state->lock);
    free(state);
}

static void tie_to_core(CoreState *state, VSCore *core, const VSAPI *vsapi) {
    int first_use;
    lock_acquire(&state->lock);
    first_use = !state->tied_to_core;
    state->tied_to_core = 1;
    state->vsapi = vsapi;
    lock_release(&state->lock);
    /* Outside the lock: adding a handler may itself log. */
    if (first_use)
        vsapi->addLogHandler(ignore_log_message, free_core_state, state, core);
}

/* Returns a new reference to the registered implementation, or NULL. */
static VSFunction *acquire_implementation(CoreState *state, const VSAPI *vsapi) {
    VSFunction *implementation;
    lock_acquire(&state->lock);
    implementation = state->implementation ? vsapi->addFunctionRef(state->implementation) : NULL;
    lock_release(&state->lock);
    return implementation;
}

/* ---- the running Python interpreter ------------------------------------- */

typedef void PyObjectRef;  /* PyObject, opaque here */
typedef int GILState;      /* PyGILState_STATE */

typedef struct PythonAPI {
    int (*IsInitialized)(void);
    GILState (*GILStateEnsure)(void);
    void (*GILStateRelease)(GILState);
    PyObjectRef *(*ImportModule)(const char *);
    PyObjectRef *(*GetAttrString)(PyObjectRef *, const char *);
    PyObjectRef *(*CallObject)(PyObjectRef *, PyObjectRef *);
    PyObjectRef *(*GetRaisedException)(void);
    PyObjectRef *(*Type)(PyObjectRef *);
    PyObjectRef *(*Str)(PyObjectRef *);
    const char *(*AsUTF8AndSize)(PyObjectRef *, ptrdiff_t *);
    void (*ErrClear)(void);
    void (*DecRef)(PyObjectRef *);
} PythonAPI;

#ifdef _WIN32
/* python3.dll forwards the stable ABI (every function used here) to the
   versioned DLL; it is loaded whenever an abi3 module such as vapoursynth is. */
static void *python_symbol(const char *name) {
    static const char *const dlls[] = {"python3.dll", "python315.dll", "python314.dll", "python313.dll", "python312.dll"};
    size_t i;
    for (i = 0; i < sizeof(dlls) / sizeof(dlls[0]); i++) {
        HMODULE module = GetModuleHandleA(dlls[i]);
        if (module) {
            FARPROC symbol = GetProcAddress(module, name);
            if (symbol)
                return (void *)symbol;
        }
    }
    return NULL;
}
#else
static void *python_symbol(const char *name) {
    return dlsym(RTLD_DEFAULT, name);
}
#endif

/* Fills `py`; returns 0 (and names the missing entry point in `error`) when
   the process has no usable Python interpreter. */
static int find_python(PythonAPI *py, char *error, size_t size) {
    const char *missing = NULL;
#define FIND(field, name)                                     \
    do {                                                      \
        *(void **)(&py->field) = python_symbol(name);         \
        if (!py->field && !missing)                           \
            missing = name;                                   \
    } while (0)
    FIND(IsInitialized, "Py_IsInitialized");
    FIND(GILStateEnsure, "PyGILState_Ensure");
    FIND(GILStateRelease, "PyGILState_Release");
    FIND(ImportModule, "PyImport_ImportModule");
    FIND(GetAttrString, "PyObject_GetAttrString");
    FIND(CallObject, "PyObject_CallObject");
    FIND(GetRaisedException, "PyErr_GetRaisedException");
    FIND(Type, "PyObject_Type");
    FIND(Str, "PyObject_Str");
    FIND(AsUTF8AndSize, "PyUnicode_AsUTF8AndSize");
    FIND(ErrClear, "PyErr_Clear");
    FIND(DecRef, "Py_DecRef");
#undef FIND
    if (missing) {
        snprintf(error, size,
                 "Deblur: no Python 3.12+ interpreter in this process (%s not found). core.arvo.Deblur runs "
                 "the vsarvo Python package: use it from vspipe or Python, or register an implementation "
                 "with core.arvo.RegisterImplementation first", missing);
        return 0;
    }
    if (!py->IsInitialized()) {
        snprintf(error, size, "Deblur: the Python interpreter in this process is not initialized");
        return 0;
    }
    return 1;
}

/* Writes "<what>: <ExceptionType>: <message>" for the pending Python exception
   into `error` and clears it. Called with the GIL held. */
static void describe_exception(const PythonAPI *py, const char *what, char *error, size_t size) {
    const char *type_name = "exception";
    const char *message = "";
    PyObjectRef *type = NULL, *name = NULL, *text = NULL;
    PyObjectRef *exception = py->GetRaisedException();
    if (exception) {
        type = py->Type(exception);
        name = type ? py->GetAttrString(type, "__name__") : NULL;
        text = py->Str(exception);
        if (name)
            type_name = py->AsUTF8AndSize(name, NULL);
        if (text)
            message = py->AsUTF8AndSize(text, NULL);
        if (!type_name)
            type_name = "exception";
        if (!message)
            message = "";
    }
    snprintf(error, size, "%s: %s: %s", what, type_name, message);
    if (text)
        py->DecRef(text);
    if (name)
        py->DecRef(name);
    if (type)
        py->DecRef(type);
    if (exception)
        py->DecRef(exception);
    /* Anything raised while describing the exception is dropped with it. */
    py->ErrClear();
}

/* Imports vsarvo and calls vsarvo.register_with_core(), which registers the
   filter on the current environment's core through RegisterImplementation.
   Returns 0 with a message in `error` on failure. */
static int register_from_python(char *error, size_t size) {
    PythonAPI py;
    PyObjectRef *module, *register_with_core = NULL, *result = NULL;
    GILState gil;

    if (!find_python(&py, error, size))
        return 0;
    gil = py.GILStateEnsure();
    module = py.ImportModule("vsarvo");
    if (module)
        register_with_core = py.GetAttrString(module, "register_with_core");
    if (register_with_core)
        result = py.CallObject(register_with_core, NULL);
    if (!result)
        describe_exception(&py, "Deblur: importing vsarvo and calling vsarvo.register_with_core() failed", error, size);
    if (result)
        py.DecRef(result);
    if (register_with_core)
        py.DecRef(register_with_core);
    if (module)
        py.DecRef(module);
    py.GILStateRelease(gil);
    return result != NULL;
}

/* The prefix that makes `message` name the filter: none when it already starts
   with "Deblur: " or "<namespace>.Deblur: " (as vsarvo's own messages do),
   "Deblur: " otherwise. */
static const char *deblur_prefix(const char *message, size_t length) {
    static const char name[] = "Deblur";
    const char *colon = memchr(message, ':', length);
    size_t head = colon ? (size_t)(colon - message) : 0;
    int named = colon && head >= sizeof(name) - 1 && !memchr(message, ' ', head) &&
                !strncmp(colon - (sizeof(name) - 1), name, sizeof(name) - 1) &&
                (head == sizeof(name) - 1 || colon[-(int)sizeof(name)] == '.');
    return named ? "" : "Deblur: ";
}

/* VapourSynth hands an exception raised by a Python implementation back as
   "\n" + its formatted traceback. Writes "<Type>: <message>" followed by the
   traceback, or just the message for a vapoursynth.Error (raised on purpose,
   with a message meant for the user), into `error`, named after the filter
   (deblur_prefix). Error text without a traceback is passed on the same way. */
static void format_implementation_error(const char *raw, char *error, size_t size) {
    static const char header[] = "Traceback (most recent call last):\n";
    static const char vs_error[] = "vapoursynth.Error: ";
    const char *last = NULL, *found = raw, *exception, *trace = raw;
    size_t length, trace_length;

    while ((found = strstr(found, header)) != NULL) {
        last = found;
        found += sizeof(header) - 1;
    }
    if (!last) {
        snprintf(error, size, "%s%s", deblur_prefix(raw, strlen(raw)), raw);
        return;
    }
    /* In the last (outermost) traceback the frame lines are indented; the
       exception's "Type: message" starts at the first line that is not. */
    exception = last + sizeof(header) - 1;
    while (*exception == ' ') {
        const char *newline = strchr(exception, '\n');
        if (!newline)
            break;
        exception = newline + 1;
    }
    length = strlen(exception);
    while (length && exception[length - 1] == '\n')
        length--;
    if (!strncmp(exception, vs_error, sizeof(vs_error) - 1)) {
        exception += sizeof(vs_error) - 1;
        length -= sizeof(vs_error) - 1;
        snprintf(error, size, "%s%.*s", deblur_prefix(exception, length), (int)length, exception);
        return;
    }
    while (*trace == '\n')
        trace++;
    trace_length = strlen(trace);
    while (trace_length && trace[trace_length - 1] == '\n')
        trace_length--;
    snprintf(error, size, "Deblur: %.*s\n\n%.*s", (int)length, exception, (int)trace_length, trace);
}

/* ---- the public functions ---------------------------------------------- */

static void VS_CC register_implementation(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    CoreState *state = (CoreState *)userData;
    VSFunction *previous;
    VSFunction *implementation = vsapi->mapGetFunction(in, "func", 0, NULL);
    (void)out;

    tie_to_core(state, core, vsapi);
    lock_acquire(&state->lock);
    previous = state->implementation;
    state->implementation = implementation;
    lock_release(&state->lock);
    /* Outside the lock: freeing a Python callable takes the GIL. */
    if (previous)
        vsapi->freeFunction(previous);
}

static void VS_CC deblur(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    CoreState *state = (CoreState *)userData;
    char error[ERROR_SIZE];
    VSFunction *implementation;
    VSMap *result;
    const char *result_error;
    int type;

    tie_to_core(state, core, vsapi);
    implementation = acquire_implementation(state, vsapi);
    if (!implementation) {
        if (!register_from_python(error, sizeof(error))) {
            vsapi->mapSetError(out, error);
            return;
        }
        implementation = acquire_implementation(state, vsapi);
        if (!implementation) {
            /* register_with_core() registers on the current environment's core,
               which is not this one when a script calls Deblur through a core
               object of another environment. */
            vsapi->mapSetError(out, "Deblur: vsarvo.register_with_core() registered no implementation on this core; "
                                    "call vsarvo.register_with_core(core) with this core first");
            return;
        }
    }

    result = vsapi->createMap();
    vsapi->callFunction(implementation, in, result);
    vsapi->freeFunction(implementation);

    /* A Python callable's return value arrives under the key "val"; an
       exception it raised arrives as the map's error. */
    result_error = vsapi->mapGetError(result);
    type = vsapi->mapGetType(result, "val");
    if (result_error) {
        format_implementation_error(result_error, error, sizeof(error));
        vsapi->mapSetError(out, error);
    } else if (type != ptVideoNode) {
        vsapi->mapSetError(out, "Deblur: the registered implementation returned no video clip; "
                                "it must return the output VideoNode");
    } else {
        vsapi->mapConsumeNode(out, "clip", vsapi->mapGetNode(result, "val", 0, NULL), maReplace);
    }
    vsapi->freeMap(result);
}

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    CoreState *state = (CoreState *)calloc(1, sizeof(CoreState));
    if (!state)
        return;
    lock_init(&state->lock);
    vspapi->configPlugin("vsarvo.arvo", "arvo", "ARVo video deblurring (forwards to the vsarvo Python package)",
                         VS_MAKE_VERSION(0, 1), VAPOURSYNTH_API_VERSION, 0, plugin);
    vspapi->registerFunction("Deblur", DEBLUR_ARGS, DEBLUR_RETURN, deblur, state, plugin);
    vspapi->registerFunction("RegisterImplementation", REGISTER_ARGS, "", register_implementation, state, plugin);
}
