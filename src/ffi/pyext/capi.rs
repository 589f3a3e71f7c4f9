//! CPython's C API, looked up once in the running process with `dlsym`: the structs and
//! constants of the limited API this module uses and the table of functions and objects.

use super::*;

#[repr(C)]
pub(super) struct PyBuffer {
    pub(super) buf: *mut c_void,
    pub(super) obj: Obj,
    pub(super) len: isize,
    pub(super) itemsize: isize,
    pub(super) readonly: c_int,
    pub(super) ndim: c_int,
    pub(super) format: *mut c_char,
    pub(super) shape: *mut isize,
    pub(super) strides: *mut isize,
    pub(super) suboffsets: *mut isize,
    pub(super) internal: *mut c_void,
}

#[repr(C)]
pub(super) struct PyMethodDef {
    pub(super) name: *const c_char,
    pub(super) meth: *const c_void,
    pub(super) flags: c_int,
    pub(super) doc: *const c_char,
}

#[repr(C)]
pub(super) struct PyMemberDef {
    pub(super) name: *const c_char,
    pub(super) kind: c_int,
    pub(super) offset: isize,
    pub(super) flags: c_int,
    pub(super) doc: *const c_char,
}

#[repr(C)]
pub(super) struct PyTypeSlot {
    pub(super) slot: c_int,
    pub(super) pfunc: *mut c_void,
}

#[repr(C)]
pub(super) struct PyTypeSpec {
    pub(super) name: *const c_char,
    pub(super) basicsize: c_int,
    pub(super) itemsize: c_int,
    pub(super) flags: u32,
    pub(super) slots: *mut PyTypeSlot,
}

pub(super) const METH_NOARGS: c_int = 0x0004;
pub(super) const METH_FASTCALL_KEYWORDS: c_int = 0x0080 | 0x0002;
pub(super) const T_INT: c_int = 1;
pub(super) const T_BOOL: c_int = 14;
pub(super) const T_ULONGLONG: c_int = 18;
pub(super) const READONLY: c_int = 1;
pub(super) const PY_TP_DEALLOC: c_int = 52;
pub(super) const PY_TP_DOC: c_int = 56;
pub(super) const PY_TP_METHODS: c_int = 64;
pub(super) const PY_TP_MEMBERS: c_int = 72;
pub(super) const PY_TP_FREE: c_int = 74;
pub(super) const PY_TPFLAGS_DEFAULT: u32 = 1 << 18;
pub(super) const PY_TPFLAGS_BASETYPE: u32 = 1 << 10;
pub(super) const PYBUF_RECORDS_RO: c_int = 0x0004 | 0x0008 | 0x0010;

/// The CPython functions and objects this module uses.
pub(super) struct Api {
    pub(super) inc_ref: unsafe extern "C" fn(Obj),
    pub(super) dec_ref: unsafe extern "C" fn(Obj),
    pub(super) type_from_spec: unsafe extern "C" fn(*mut PyTypeSpec) -> Obj,
    pub(super) type_get_slot: unsafe extern "C" fn(Obj, c_int) -> *mut c_void,
    pub(super) generic_alloc: unsafe extern "C" fn(Obj, isize) -> Obj,
    pub(super) cfunction_new: unsafe extern "C" fn(*mut PyMethodDef, Obj, Obj) -> Obj,
    pub(super) dict_new: unsafe extern "C" fn() -> Obj,
    pub(super) dict_set_item_string: unsafe extern "C" fn(Obj, *const c_char, Obj) -> c_int,
    pub(super) tuple_new: unsafe extern "C" fn(isize) -> Obj,
    pub(super) tuple_set_item: unsafe extern "C" fn(Obj, isize, Obj) -> c_int,
    pub(super) tuple_get_item: unsafe extern "C" fn(Obj, isize) -> Obj,
    pub(super) tuple_size: unsafe extern "C" fn(Obj) -> isize,
    pub(super) long_from_long: unsafe extern "C" fn(c_long) -> Obj,
    pub(super) long_as_long: unsafe extern "C" fn(Obj) -> c_long,
    pub(super) long_as_u64: unsafe extern "C" fn(Obj) -> u64,
    pub(super) object_is_true: unsafe extern "C" fn(Obj) -> c_int,
    pub(super) object_get_attr_string: unsafe extern "C" fn(Obj, *const c_char) -> Obj,
    pub(super) unicode_eq_ascii: unsafe extern "C" fn(Obj, *const c_char) -> c_int,
    pub(super) vectorcall: unsafe extern "C" fn(Obj, *const Obj, usize, Obj) -> Obj,
    pub(super) get_buffer: unsafe extern "C" fn(Obj, *mut PyBuffer, c_int) -> c_int,
    pub(super) release_buffer: unsafe extern "C" fn(*mut PyBuffer),
    pub(super) capsule_new: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_void) -> Obj,
    pub(super) capsule_get_pointer: unsafe extern "C" fn(Obj, *const c_char) -> *mut c_void,
    pub(super) err_set_string: unsafe extern "C" fn(Obj, *const c_char),
    pub(super) err_clear: unsafe extern "C" fn(),
    pub(super) gil_ensure: unsafe extern "C" fn() -> c_int,
    pub(super) gil_release: unsafe extern "C" fn(c_int),
    pub(super) is_initialized: unsafe extern "C" fn() -> c_int,
    pub(super) save_thread: unsafe extern "C" fn() -> *mut c_void,
    pub(super) restore_thread: unsafe extern "C" fn(*mut c_void),
    pub(super) none: Obj,
    pub(super) false_: Obj,
    pub(super) runtime_error: Obj,
}

// SAFETY: function pointers and the addresses of immortal interpreter objects; using them
// requires the GIL, which every caller here holds.
unsafe impl Send for Api {}
// SAFETY: as above; the table is never written after it is built.
unsafe impl Sync for Api {}

// Each transmute's target type is the type of the struct field it initialises.
#[allow(clippy::missing_transmute_annotations)]
pub(super) fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        let sym = py_symbol;
        macro_rules! f {
            ($name:literal) => {
                // SAFETY: each name is a CPython C-API function whose C signature is the one
                // declared for the field it fills (checked against CPython's headers).
                unsafe { std::mem::transmute::<*mut c_void, _>(sym($name)?) }
            };
        }
        // SAFETY: PyExc_* is a `PyObject *` variable; its value is read once the interpreter
        // runs (we are called from Python).
        let exception = |name: &CStr| sym(name).map(|p| unsafe { *p.cast::<Obj>() });
        Some(Api {
            inc_ref: f!(c"Py_IncRef"),
            dec_ref: f!(c"Py_DecRef"),
            type_from_spec: f!(c"PyType_FromSpec"),
            type_get_slot: f!(c"PyType_GetSlot"),
            generic_alloc: f!(c"PyType_GenericAlloc"),
            cfunction_new: f!(c"PyCFunction_NewEx"),
            dict_new: f!(c"PyDict_New"),
            dict_set_item_string: f!(c"PyDict_SetItemString"),
            tuple_new: f!(c"PyTuple_New"),
            tuple_set_item: f!(c"PyTuple_SetItem"),
            tuple_get_item: f!(c"PyTuple_GetItem"),
            tuple_size: f!(c"PyTuple_Size"),
            long_from_long: f!(c"PyLong_FromLong"),
            long_as_long: f!(c"PyLong_AsLong"),
            long_as_u64: f!(c"PyLong_AsUnsignedLongLong"),
            object_is_true: f!(c"PyObject_IsTrue"),
            object_get_attr_string: f!(c"PyObject_GetAttrString"),
            unicode_eq_ascii: f!(c"PyUnicode_CompareWithASCIIString"),
            vectorcall: f!(c"PyObject_Vectorcall"),
            get_buffer: f!(c"PyObject_GetBuffer"),
            release_buffer: f!(c"PyBuffer_Release"),
            capsule_new: f!(c"PyCapsule_New"),
            capsule_get_pointer: f!(c"PyCapsule_GetPointer"),
            err_set_string: f!(c"PyErr_SetString"),
            err_clear: f!(c"PyErr_Clear"),
            gil_ensure: f!(c"PyGILState_Ensure"),
            gil_release: f!(c"PyGILState_Release"),
            is_initialized: f!(c"Py_IsInitialized"),
            save_thread: f!(c"PyEval_SaveThread"),
            restore_thread: f!(c"PyEval_RestoreThread"),
            none: sym(c"_Py_NoneStruct")?,
            false_: sym(c"_Py_FalseStruct")?,
            runtime_error: exception(c"PyExc_RuntimeError")?,
        })
    })
    .as_ref()
}
