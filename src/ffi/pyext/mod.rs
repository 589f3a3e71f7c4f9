//! The CPython fast path of the Python package, inside the library itself.
//!
//! The Python package talks to the library through cffi (ABI mode) over the header. A cffi call
//! plus the Python around it costs a few microseconds, several times what `torch.from_numpy`
//! costs; for the per-call hot paths (`from_numpy`, `as_tensor` of NumPy arrays and of objects
//! publishing the DLPack C exchange API, `Tensor.__dlpack__`/`__dlpack_device__`, tensor
//! creation and deallocation) this module provides native Python callables instead. Nothing
//! links against Python: CPython's C API is looked up in the running process with `dlsym`, as
//! `ffi::python` does for capsules, so the library still loads in C programs.
//!
//! Every fast path handles only the plain, successful case. Anything else (other argument
//! forms, refusals, errors, CUDA streams) is passed, untouched, to the Python implementation
//! registered with `_configure`, so messages and exceptions are the ones the Python package
//! raises. The Python package decides whether to use this module (CPython with the classic
//! 16-byte object header only) and keeps a pure-Python path for other interpreters.
//!
//! Conventions: every function here is called by CPython with the GIL held; every callable
//! catches panics and turns them into `RuntimeError`.

use std::ffi::{CStr, c_char, c_int, c_long, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::convert::{
    DLSHARE_VIEW_BYTE_SWAPPED, DLSHARE_VIEW_READ_ONLY, dlshare_view, import_view,
};
use super::guarded;
use super::handles::{self, dlshare_tensor};
use super::python::{dlshare_pycapsule_destructor, py_symbol, run_deleter};
use crate::convert::{Decision, Mode, Options};
use crate::device::{Device, device_type};
use crate::dlpack::{DLManagedTensorVersioned, export, import};
use crate::dtype::DType;
use crate::tensor::Tensor;

mod buffer;
mod calls;
mod capi;
mod exchange;
mod object;
mod producer;
pub use producer::dlshare_dlpack_exchange_api;

use buffer::*;
use calls::*;
use capi::*;
use exchange::*;
use object::*;

type Obj = *mut c_void;

/// A method table entry; an empty name makes the table's end marker (all NULL).
fn method(
    name: &'static CStr,
    meth: *const c_void,
    flags: c_int,
    doc: Option<&'static CStr>,
) -> PyMethodDef {
    PyMethodDef {
        name: if name.is_empty() {
            std::ptr::null()
        } else {
            name.as_ptr()
        },
        meth,
        flags,
        doc: doc.map_or(std::ptr::null(), CStr::as_ptr),
    }
}

/// Builds the module's namespace once: {"TensorBase", "from_numpy", "as_tensor", "_wrap",
/// "_configure"}.
///
/// # Safety
/// GIL held.
unsafe fn build(api: &Api) -> Obj {
    macro_rules! leak {
        ($v:expr) => {
            Box::leak(Box::new($v)).as_mut_ptr()
        };
    }
    // SAFETY: GIL held; the definitions are leaked, so they outlive the objects made from them.
    unsafe {
        let methods = leak!([
            method(c"__dlpack__", tensor_dlpack as *const c_void, METH_FASTCALL_KEYWORDS, Some(c"__dlpack__($self, /, *, stream=None, max_version=None, dl_device=None, copy=None)\n--\n\nDLPack export (Array API standard): a capsule sharing the tensor's memory.")),
            method(c"__dlpack_device__", tensor_dlpack_device as *const c_void, METH_NOARGS, Some(c"__dlpack_device__($self, /)\n--\n\n(device_type, device_id) as DLPack numbers them.")),
            method(c"", std::ptr::null(), 0, None), // the end marker (NULL name)
        ]);
        let offset = |field: usize| field as isize;
        let members = leak!([
            PyMemberDef {
                name: c"_address".as_ptr(),
                kind: T_ULONGLONG,
                offset: offset(std::mem::offset_of!(PyTensor, handle)),
                flags: READONLY,
                doc: std::ptr::null(),
            },
            PyMemberDef {
                name: c"_reason_code".as_ptr(),
                kind: T_INT,
                offset: offset(std::mem::offset_of!(PyTensor, reason)),
                flags: READONLY,
                doc: std::ptr::null(),
            },
            PyMemberDef {
                name: c"_device_type".as_ptr(),
                kind: T_INT,
                offset: offset(std::mem::offset_of!(PyTensor, device_type)),
                flags: READONLY,
                doc: std::ptr::null(),
            },
            PyMemberDef {
                name: c"_device_id".as_ptr(),
                kind: T_INT,
                offset: offset(std::mem::offset_of!(PyTensor, device_id)),
                flags: READONLY,
                doc: std::ptr::null(),
            },
            PyMemberDef {
                name: c"shared".as_ptr(),
                kind: T_BOOL,
                offset: offset(std::mem::offset_of!(PyTensor, shared)),
                flags: READONLY,
                doc: c"True when the tensor shares its source's memory.".as_ptr(),
            },
            PyMemberDef {
                name: c"readonly".as_ptr(),
                kind: T_BOOL,
                offset: offset(std::mem::offset_of!(PyTensor, readonly)),
                flags: READONLY,
                doc: c"True when the memory must not be written.".as_ptr(),
            },
            PyMemberDef {
                name: std::ptr::null(),
                kind: 0,
                offset: 0,
                flags: 0,
                doc: std::ptr::null(),
            },
        ]);
        let slots = leak!([
            PyTypeSlot {
                slot: PY_TP_DEALLOC,
                pfunc: tensor_dealloc as *mut c_void
            },
            PyTypeSlot {
                slot: PY_TP_METHODS,
                pfunc: methods.cast()
            },
            PyTypeSlot {
                slot: PY_TP_MEMBERS,
                pfunc: members.cast()
            },
            PyTypeSlot {
                slot: PY_TP_DOC,
                pfunc: c"The native part of dlshare.Tensor: the handle and how it was made."
                    .as_ptr()
                    .cast_mut()
                    .cast(),
            },
            PyTypeSlot {
                slot: 0,
                pfunc: std::ptr::null_mut()
            },
        ]);
        let spec = Box::leak(Box::new(PyTypeSpec {
            name: c"dlshare._native.TensorBase".as_ptr(),
            basicsize: std::mem::size_of::<PyTensor>() as c_int,
            itemsize: 0,
            flags: PY_TPFLAGS_DEFAULT | PY_TPFLAGS_BASETYPE,
            slots,
        }));
        let base = (api.type_from_spec)(spec);
        if base.is_null() {
            return base;
        }
        let functions = leak!([
            method(c"from_numpy", py_from_numpy as *const c_void, METH_FASTCALL_KEYWORDS, Some(c"from_numpy(arr, /, *, readonly=False)\n--\n\nShare a NumPy array's memory, or raise CannotShareError (with .reason). Like torch.from_numpy; readonly=True shares read-only memory as a read-only tensor.")),
            method(c"as_tensor", py_as_tensor as *const c_void, METH_FASTCALL_KEYWORDS, Some(c"as_tensor(obj, dtype=None, device=None, *, stream=None)\n--\n\nShare when possible, otherwise copy (always copies for a dtype or device change). Like torch.as_tensor. device: \"cpu\", \"cuda:N\", \"cuda_host:N\" (pinned) or a DLPack tuple; stream (CUDA copies): order the copy on that stream (an int cudaStream_t or a torch/CuPy stream) instead of completing it before returning.")),
            method(c"_wrap", py_wrap as *const c_void, METH_FASTCALL_KEYWORDS, None),
            method(c"_configure", py_configure as *const c_void, METH_FASTCALL_KEYWORDS, None),
        ]);
        let dict = (api.dict_new)();
        if dict.is_null() {
            return dict;
        }
        let mut ok = (api.dict_set_item_string)(dict, c"TensorBase".as_ptr(), base) == 0;
        (api.dec_ref)(base);
        // DLPack 1.3's C exchange API of dlshare tensors (a static table: no destructor)
        let table = (api.capsule_new)(
            producer::table().cast_mut().cast(),
            c"dlpack_exchange_api".as_ptr(),
            std::ptr::null(),
        );
        ok = ok
            && !table.is_null()
            && (api.dict_set_item_string)(dict, c"exchange_api".as_ptr(), table) == 0;
        if !table.is_null() {
            (api.dec_ref)(table);
        }
        for i in 0..4 {
            let def = functions.add(i);
            let f = (api.cfunction_new)(def, std::ptr::null_mut(), std::ptr::null_mut());
            ok = ok && !f.is_null() && (api.dict_set_item_string)(dict, (*def).name, f) == 0;
            if !f.is_null() {
                (api.dec_ref)(f);
            }
        }
        if !ok {
            (api.dec_ref)(dict);
            return std::ptr::null_mut();
        }
        dict
    }
}

/// In a Python process whose C API lacks a function this module needs (CPython before 3.11 has
/// no exported `PyObject_Vectorcall`), sets RuntimeError so that the caller gets an exception
/// rather than a bare NULL; outside Python does nothing.
fn explain_missing_api() {
    let (Some(set), Some(error)) = (
        py_symbol(c"PyErr_SetString"),
        py_symbol(c"PyExc_RuntimeError"),
    ) else {
        return;
    };
    // SAFETY: CPython's PyErr_SetString(PyObject *, const char *) and its PyExc_RuntimeError
    // variable; the caller holds the GIL (documented contract).
    unsafe {
        let set = std::mem::transmute::<*mut c_void, unsafe extern "C" fn(Obj, *const c_char)>(set);
        set(
            *error.cast::<Obj>(),
            c"dlshare's native fast path needs CPython 3.11 or newer (a C-API function it uses \
              is missing here); the package runs on cffi alone"
                .as_ptr(),
        );
    }
}

/// Binding internals: the CPython fast path of the Python package, not a public API (it may
/// change with any release of the package and the library together).
///
/// CPython only: the native part of the Python package, a dict of callables and the
/// `TensorBase` type, as a new reference to a Python object (`PyObject *`). Call it through
/// `ctypes.PyDLL(...).dlshare_python_module` with `restype = ctypes.py_object`, with the GIL
/// held; it is built once per process. Returns NULL with a Python exception set on failure
/// (also when this CPython is older than 3.11), or NULL without one when CPython's C API is not
/// visible in this process (not a CPython process). C programs have no use for it.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_python_module() -> *mut c_void {
    let Some(api) = api() else {
        guarded((), explain_missing_api);
        return std::ptr::null_mut();
    };
    struct Module(Obj);
    // SAFETY: a Python object used only with the GIL held.
    unsafe impl Send for Module {}
    // SAFETY: as above.
    unsafe impl Sync for Module {}
    static MODULE: OnceLock<Module> = OnceLock::new();
    callable(api, || {
        // SAFETY: GIL held (documented contract): the GIL serialises the first build; the
        // cached namespace is kept alive by the reference the cache holds.
        unsafe {
            let m = match MODULE.get() {
                Some(m) => m.0,
                None => {
                    let m = build(api);
                    if m.is_null() {
                        return m;
                    }
                    MODULE.get_or_init(|| Module(m)).0
                }
            };
            (api.inc_ref)(m);
            m
        }
    })
}
