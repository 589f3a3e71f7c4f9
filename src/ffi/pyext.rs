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

pub(super) type Obj = *mut c_void;

// ---------------------------------------------------------------------------------------------
// CPython's C API, looked up once

#[repr(C)]
struct PyBuffer {
    buf: *mut c_void,
    obj: Obj,
    len: isize,
    itemsize: isize,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut isize,
    strides: *mut isize,
    suboffsets: *mut isize,
    internal: *mut c_void,
}

#[repr(C)]
struct PyMethodDef {
    name: *const c_char,
    meth: *const c_void,
    flags: c_int,
    doc: *const c_char,
}

#[repr(C)]
struct PyMemberDef {
    name: *const c_char,
    kind: c_int,
    offset: isize,
    flags: c_int,
    doc: *const c_char,
}

#[repr(C)]
struct PyTypeSlot {
    slot: c_int,
    pfunc: *mut c_void,
}

#[repr(C)]
struct PyTypeSpec {
    name: *const c_char,
    basicsize: c_int,
    itemsize: c_int,
    flags: u32,
    slots: *mut PyTypeSlot,
}

const METH_NOARGS: c_int = 0x0004;
const METH_FASTCALL_KEYWORDS: c_int = 0x0080 | 0x0002;
const T_INT: c_int = 1;
const T_BOOL: c_int = 14;
const T_ULONGLONG: c_int = 18;
const READONLY: c_int = 1;
const PY_TP_DEALLOC: c_int = 52;
const PY_TP_DESCR_GET: c_int = 54;
const PY_TP_DOC: c_int = 56;
const PY_TP_METHODS: c_int = 64;
const PY_TP_MEMBERS: c_int = 72;
const PY_TP_FREE: c_int = 74;
const PY_TPFLAGS_DEFAULT: u32 = 1 << 18;
const PY_TPFLAGS_BASETYPE: u32 = 1 << 10;
const PYBUF_RECORDS_RO: c_int = 0x0004 | 0x0008 | 0x0010;

/// The CPython functions and objects this module uses.
pub(super) struct Api {
    inc_ref: unsafe extern "C" fn(Obj),
    dec_ref: unsafe extern "C" fn(Obj),
    type_from_spec: unsafe extern "C" fn(*mut PyTypeSpec) -> Obj,
    type_get_slot: unsafe extern "C" fn(Obj, c_int) -> *mut c_void,
    generic_alloc: unsafe extern "C" fn(Obj, isize) -> Obj,
    cfunction_new: unsafe extern "C" fn(*mut PyMethodDef, Obj, Obj) -> Obj,
    dict_new: unsafe extern "C" fn() -> Obj,
    dict_set_item_string: unsafe extern "C" fn(Obj, *const c_char, Obj) -> c_int,
    tuple_new: unsafe extern "C" fn(isize) -> Obj,
    tuple_set_item: unsafe extern "C" fn(Obj, isize, Obj) -> c_int,
    tuple_get_item: unsafe extern "C" fn(Obj, isize) -> Obj,
    tuple_size: unsafe extern "C" fn(Obj) -> isize,
    long_from_long: unsafe extern "C" fn(c_long) -> Obj,
    long_as_long: unsafe extern "C" fn(Obj) -> c_long,
    long_as_u64: unsafe extern "C" fn(Obj) -> u64,
    object_is_true: unsafe extern "C" fn(Obj) -> c_int,
    unicode_eq_ascii: unsafe extern "C" fn(Obj, *const c_char) -> c_int,
    vectorcall: unsafe extern "C" fn(Obj, *const Obj, usize, Obj) -> Obj,
    get_buffer: unsafe extern "C" fn(Obj, *mut PyBuffer, c_int) -> c_int,
    release_buffer: unsafe extern "C" fn(*mut PyBuffer),
    capsule_new: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_void) -> Obj,
    pub(super) err_set_string: unsafe extern "C" fn(Obj, *const c_char),
    pub(super) type_is_subtype: unsafe extern "C" fn(Obj, Obj) -> c_int,
    err_clear: unsafe extern "C" fn(),
    err_occurred: unsafe extern "C" fn() -> Obj,
    gil_ensure: unsafe extern "C" fn() -> c_int,
    gil_release: unsafe extern "C" fn(c_int),
    is_initialized: unsafe extern "C" fn() -> c_int,
    save_thread: unsafe extern "C" fn() -> *mut c_void,
    restore_thread: unsafe extern "C" fn(*mut c_void),
    none: Obj,
    false_: Obj,
    pub(super) runtime_error: Obj,
    pub(super) buffer_error: Obj,
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
            unicode_eq_ascii: f!(c"PyUnicode_CompareWithASCIIString"),
            vectorcall: f!(c"PyObject_Vectorcall"),
            get_buffer: f!(c"PyObject_GetBuffer"),
            release_buffer: f!(c"PyBuffer_Release"),
            capsule_new: f!(c"PyCapsule_New"),
            err_set_string: f!(c"PyErr_SetString"),
            type_is_subtype: f!(c"PyType_IsSubtype"),
            err_clear: f!(c"PyErr_Clear"),
            err_occurred: f!(c"PyErr_Occurred"),
            gil_ensure: f!(c"PyGILState_Ensure"),
            gil_release: f!(c"PyGILState_Release"),
            is_initialized: f!(c"Py_IsInitialized"),
            save_thread: f!(c"PyEval_SaveThread"),
            restore_thread: f!(c"PyEval_RestoreThread"),
            none: sym(c"_Py_NoneStruct")?,
            false_: sym(c"_Py_FalseStruct")?,
            runtime_error: exception(c"PyExc_RuntimeError")?,
            buffer_error: exception(c"PyExc_BufferError")?,
        })
    })
    .as_ref()
}

// ---------------------------------------------------------------------------------------------
// the tensor object

/// The instance layout of `TensorBase` (a Python subclass adds its slots after it). The first
/// two fields are CPython's object header; the Python package enables this module only where
/// `object.__basicsize__` is 16, i.e. this header.
#[repr(C)]
pub(super) struct PyTensor {
    ob_refcnt: isize,
    ob_type: Obj,
    pub(super) handle: *mut dlshare_tensor,
    device_type: i32,
    device_id: i32,
    reason: i32,
    shared: u8,
    readonly: u8,
}

pub(super) fn type_of(o: Obj) -> Obj {
    // SAFETY: `o` is a live object; `ob_type` is the second header word (see PyTensor).
    unsafe { (*o.cast::<PyTensor>()).ob_type }
}

/// Objects registered by `_configure`: the Python `Tensor` class, `numpy.ndarray`, and the
/// Python implementations the fast paths fall back to. Strong references, kept for the life of
/// the process.
pub(super) struct State {
    pub(super) tensor_class: Obj,
    ndarray: Obj,
    from_numpy: Obj,
    as_tensor: Obj,
    dlpack: Obj,
    /// `_producers.native_policy`: per type, whether and how the exchange API may be used.
    policy: Obj,
}

static STATE: AtomicPtr<State> = AtomicPtr::new(std::ptr::null_mut());

pub(super) fn state() -> Option<&'static State> {
    // SAFETY: a published State is leaked, never freed.
    unsafe { STATE.load(Ordering::Acquire).as_ref() }
}

/// Runs a callable's body, turning a panic into RuntimeError.
fn callable(api: &Api, body: impl FnOnce() -> Obj) -> Obj {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        // SAFETY: GIL held; a NUL-terminated message.
        unsafe {
            (api.err_set_string)(
                api.runtime_error,
                c"internal error (panic) in dlshare's Python fast path; please report it".as_ptr(),
            )
        };
        std::ptr::null_mut()
    })
}

/// Calls `target(*prefix, *args, **kwargs)` with the vectorcall arguments a callable received.
///
/// # Safety
/// GIL held; `args` holds `nargs` positional values followed by one value per name in
/// `kwnames` (a tuple or NULL).
unsafe fn forward(
    api: &Api,
    target: Obj,
    prefix: Option<Obj>,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
) -> Obj {
    // SAFETY: caller contract.
    unsafe {
        let nkw = if kwnames.is_null() {
            0
        } else {
            (api.tuple_size)(kwnames)
        };
        let given = std::slice::from_raw_parts(args, (nargs + nkw) as usize);
        match prefix {
            None => (api.vectorcall)(target, args, nargs as usize, kwnames),
            Some(first) => {
                let mut all = Vec::with_capacity(given.len() + 1);
                all.push(first);
                all.extend_from_slice(given);
                (api.vectorcall)(target, all.as_ptr(), nargs as usize + 1, kwnames)
            }
        }
    }
}

/// A new instance of the registered Tensor class owning `handle` (released if that fails).
///
/// # Safety
/// GIL held; `handle` a live handle whose ownership moves to the new object.
unsafe fn new_object(
    api: &Api,
    st: &State,
    handle: *mut dlshare_tensor,
    device: Device,
    readonly: bool,
    shared: bool,
    reason: i32,
) -> Obj {
    // SAFETY: GIL held; the class is a subclass of TensorBase, so its instances start with a
    // PyTensor (zero-filled by the allocator).
    unsafe {
        let o = (api.generic_alloc)(st.tensor_class, 0);
        if o.is_null() {
            let _ = handles::release(handle);
            return o;
        }
        let p = o.cast::<PyTensor>();
        (*p).handle = handle;
        (*p).device_type = device.device_type;
        (*p).device_id = device.device_id;
        (*p).reason = reason;
        (*p).shared = shared as u8;
        (*p).readonly = readonly as u8;
        o
    }
}

/// Puts a converted tensor in the handle table and wraps it.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn publish(
    api: &Api,
    st: &State,
    reservation: handles::Reservation,
    t: Tensor,
    d: &Decision,
) -> Obj {
    let (device, readonly) = (t.device(), t.is_read_only());
    let reason = super::dlshare_reason::from(d.reason) as i32;
    let handle = reservation.fill(t);
    // SAFETY: GIL held; the handle is new and moves into the object.
    unsafe { new_object(api, st, handle, device, readonly, d.shared, reason) }
}

unsafe extern "C" fn tensor_dealloc(o: Obj) {
    let Some(api) = api() else { return };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: CPython deallocates a TensorBase instance (GIL held). The handle belongs to
        // the object; the object's memory is freed by its own type's tp_free, and a heap type's
        // instance holds a reference to its type, given back here (CPython's subtype_dealloc
        // expects a heap base type to do it).
        unsafe {
            let p = o.cast::<PyTensor>();
            let handle = std::mem::replace(&mut (*p).handle, std::ptr::null_mut());
            if !handle.is_null() {
                let _ = handles::release(handle);
            }
            let tp = type_of(o);
            let free = (api.type_get_slot)(tp, PY_TP_FREE);
            if !free.is_null() {
                std::mem::transmute::<*mut c_void, unsafe extern "C" fn(Obj)>(free)(o);
            }
            (api.dec_ref)(tp);
        }
    }));
}

unsafe extern "C" fn tensor_dlpack_device(o: Obj, _unused: Obj) -> Obj {
    let Some(api) = api() else {
        return std::ptr::null_mut();
    };
    callable(api, || {
        // SAFETY: GIL held; `o` is a TensorBase instance.
        unsafe {
            let p = o.cast::<PyTensor>();
            let t = (api.tuple_new)(2);
            if t.is_null() {
                return t;
            }
            (api.tuple_set_item)(t, 0, (api.long_from_long)((*p).device_type as c_long));
            (api.tuple_set_item)(t, 1, (api.long_from_long)((*p).device_id as c_long));
            t
        }
    })
}

/// `__dlpack__` for CPU tensors asked with the keywords consumers use (max_version, and
/// stream/dl_device/copy that ask for nothing); everything else goes to the Python method.
unsafe extern "C" fn tensor_dlpack(o: Obj, args: *const Obj, nargs: isize, kwnames: Obj) -> Obj {
    configured(|api, st| {
        // SAFETY: GIL held; vectorcall arguments as CPython passes them.
        unsafe {
            let fallback = || forward(api, st.dlpack, Some(o), args, nargs, kwnames);
            let p = o.cast::<PyTensor>();
            if nargs != 0 || (*p).handle.is_null() || (*p).device_type != device_type::CPU {
                return fallback();
            }
            let mut versioned = false;
            let nkw = if kwnames.is_null() {
                0
            } else {
                (api.tuple_size)(kwnames)
            };
            for i in 0..nkw {
                let name = (api.tuple_get_item)(kwnames, i);
                let value = *args.add(i as usize);
                let is = |s: &CStr| (api.unicode_eq_ascii)(name, s.as_ptr()) == 0;
                if is(c"max_version") {
                    if value != api.none {
                        let major = match (api.tuple_size)(value) {
                            n if n >= 1 => (api.long_as_long)((api.tuple_get_item)(value, 0)),
                            _ => -1,
                        };
                        if major == -1 {
                            (api.err_clear)();
                            return fallback();
                        }
                        versioned = major >= 1;
                    }
                } else if is(c"copy") {
                    if value != api.none && value != api.false_ {
                        return fallback();
                    }
                } else if !(is(c"stream") || is(c"dl_device")) || value != api.none {
                    return fallback();
                }
            }
            let Ok(t) = handles::get((*p).handle) else {
                return fallback();
            };
            let (managed, name): (*mut c_void, &CStr) = if versioned {
                (export::to_versioned(&t).cast(), c"dltensor_versioned")
            } else {
                match export::to_legacy(&t) {
                    Ok(m) => (m.cast(), c"dltensor"),
                    Err(_) => return fallback(), // read-only: the Python method explains
                }
            };
            let capsule = (api.capsule_new)(
                managed,
                name.as_ptr(),
                dlshare_pycapsule_destructor as *const c_void,
            );
            if capsule.is_null() {
                run_deleter(managed, versioned);
            }
            capsule
        }
    })
}

/// The prologue of a callable that needs the registered Python side: the C API, the panic
/// guard, and the state (RuntimeError when `_configure` was not called).
fn configured(body: impl FnOnce(&'static Api, &'static State) -> Obj) -> Obj {
    let Some(api) = api() else {
        return std::ptr::null_mut();
    };
    callable(api, || match state() {
        Some(st) => body(api, st),
        None => not_configured(api),
    })
}

fn not_configured(api: &Api) -> Obj {
    // SAFETY: GIL held; a NUL-terminated message.
    unsafe {
        (api.err_set_string)(
            api.runtime_error,
            c"dlshare's native module is not configured (dlshare._core sets it up)".as_ptr(),
        )
    };
    std::ptr::null_mut()
}

// ---------------------------------------------------------------------------------------------
// conversions

/// Array size above which a conversion that may copy lets other Python threads run.
const RELEASE_GIL_BYTES: usize = 1 << 16;

/// The Python buffer format of a NumPy array (`f`, `>d`, `Zf`, `?`, `l`...) as a dtype, with
/// whether its byte order is not the machine's. None for anything else (structured, object,
/// long double): the Python path handles those.
fn buffer_dtype(format: &[u8], itemsize: isize) -> Option<(DType, bool)> {
    let (swapped, rest) = match format.first()? {
        b'@' | b'=' => (false, &format[1..]),
        b'<' => (cfg!(target_endian = "big"), &format[1..]),
        b'>' | b'!' => (cfg!(target_endian = "little"), &format[1..]),
        _ => (false, format),
    };
    let (complex, rest) = match rest {
        [b'Z', tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let [letter] = rest else { return None };
    let kind = match letter {
        b'?' => b'b',
        b'b' | b'h' | b'i' | b'l' | b'q' | b'n' => b'i',
        b'B' | b'H' | b'I' | b'L' | b'Q' | b'N' => b'u',
        b'e' | b'f' | b'd' if !complex => b'f',
        b'f' | b'd' => b'c',
        _ => return None,
    };
    let typestr = format!("<{}{}", kind as char, itemsize);
    let (dtype, _) = DType::from_typestr(&typestr).ok()?;
    (dtype.item_size() as isize == itemsize).then_some((dtype, swapped && itemsize > 1))
}

/// Keeps a NumPy array's buffer until the library no longer needs the memory.
unsafe extern "C" fn release_py_buffer(ctx: *mut c_void) {
    let Some(api) = api() else { return };
    // SAFETY: `ctx` is the Box<PyBuffer> made by `from_ndarray`, given to exactly one view
    // release. The buffer is released with the GIL (taken: this may run on any thread); after
    // interpreter shutdown it is left alone.
    unsafe {
        let mut buffer = Box::from_raw(ctx.cast::<PyBuffer>());
        if (api.is_initialized)() == 0 {
            std::mem::forget(buffer);
            return;
        }
        let gil = (api.gil_ensure)();
        (api.release_buffer)(&mut *buffer);
        (api.gil_release)(gil);
    }
}

/// Runs `f` without the GIL when `big`.
fn maybe_without_gil<T>(api: &Api, big: bool, f: impl FnOnce() -> T) -> T {
    if !big {
        return f();
    }
    // SAFETY: GIL held on entry; `f` touches no Python object; the thread state is restored
    // even if `f` panics (the guard runs while unwinding).
    struct Restore<'a>(&'a Api, *mut c_void);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            // SAFETY: the state saved below, restored once.
            unsafe { (self.0.restore_thread)(self.1) }
        }
    }
    let _restore = Restore(api, unsafe { (api.save_thread)() });
    f()
}

/// A NumPy array (exact type) shared or copied per `opts`; None when the Python path must
/// handle it (no buffer, unusual dtype, refusal, error).
///
/// # Safety
/// GIL held; `arr` a live ndarray.
unsafe fn from_ndarray(api: &Api, st: &State, arr: Obj, opts: &Options) -> Option<Obj> {
    // SAFETY: GIL held; the buffer is released on every path that does not hand it to the
    // library, and the library releases it (once) on the path that does.
    unsafe {
        let mut buffer = Box::new(std::mem::zeroed::<PyBuffer>());
        if (api.get_buffer)(arr, &mut *buffer, PYBUF_RECORDS_RO) != 0 {
            (api.err_clear)();
            return None;
        }
        let give_back = |mut b: Box<PyBuffer>| (api.release_buffer)(&mut *b);
        let parsed = (!buffer.format.is_null())
            .then(|| buffer_dtype(CStr::from_ptr(buffer.format).to_bytes(), buffer.itemsize))
            .flatten();
        let Some((dtype, swapped)) = parsed else {
            give_back(buffer);
            return None;
        };
        let Ok(reservation) = handles::reserve() else {
            give_back(buffer);
            return None;
        };
        let big = buffer.len as usize > RELEASE_GIL_BYTES;
        let view = dlshare_view {
            data: buffer.buf,
            dtype: dtype.into(),
            ndim: buffer.ndim,
            shape: buffer.shape.cast_const().cast(),
            byte_strides: buffer.strides.cast_const().cast(),
            device: Device::CPU.into(),
            flags: if buffer.readonly != 0 {
                DLSHARE_VIEW_READ_ONLY
            } else {
                0
            } | if swapped {
                DLSHARE_VIEW_BYTE_SWAPPED
            } else {
                0
            },
            release: Some(release_py_buffer),
            release_ctx: (&raw mut *buffer).cast(),
        };
        let raw = Box::into_raw(buffer);
        match maybe_without_gil(api, big, || import_view(&view, || Ok((*opts, ())))) {
            Ok((t, d, ())) => Some(publish(api, st, reservation, t, &d)),
            Err(_) => {
                give_back(Box::from_raw(raw));
                None
            }
        }
    }
}

/// How the fast path imports instances of one type through its DLPack C exchange API.
#[derive(Clone, Copy)]
struct Exchange {
    /// The type's `managed_tensor_from_py_object_no_sync`.
    f: ExchangeFn,
    /// PyTorch's export rules, for `torch.Tensor` (exact type).
    torch: Option<TorchChecks>,
}

/// The descriptors of `torch.Tensor.requires_grad` (a getset descriptor, read through its
/// type's `tp_descr_get`), `is_conj` and `is_neg` (method descriptors, called with the tensor
/// as the only argument): called directly, with no attribute lookup per call. When the Python
/// side located the conjugate and negative bits in this PyTorch build's TensorImpl
/// (`_producers._calibrate_lazy_bits`, checked against `is_conj()` / `is_neg()` on sample
/// tensors), they are read from memory instead of calling the two methods.
#[derive(Clone, Copy)]
struct TorchChecks {
    requires_grad: Obj,
    descr_get: unsafe extern "C" fn(Obj, Obj, Obj) -> Obj,
    is_conj: Obj,
    is_neg: Obj,
    /// Byte offset of the dispatch key set in the TensorImpl (the Python object holds the
    /// TensorImpl pointer right after its 16-byte header), or None.
    key_offset: Option<usize>,
    key_mask: u64,
    /// Byte offset of the autograd metadata pointer in the TensorImpl (NULL: no grad), or None.
    meta_offset: Option<usize>,
}

type ExchangeFn = unsafe extern "C" fn(Obj, *mut *mut DLManagedTensorVersioned) -> c_int;

/// The exchange import of type `tp` (None when the type publishes no exchange API, its table is
/// malformed, or the Python side keeps the type: see `_producers.native_policy`). Decided once
/// per type by the registered policy; the cache holds a reference to each type and to the
/// descriptors it keeps.
///
/// # Safety
/// GIL held; `tp` a live type object.
unsafe fn exchange_import(api: &Api, st: &State, tp: Obj) -> Option<Exchange> {
    use std::sync::Mutex;
    struct Cache(Vec<(usize, Option<Exchange>)>);
    // SAFETY: the cached objects are used only with the GIL held.
    unsafe impl Send for Cache {}
    static CACHE: Mutex<Cache> = Mutex::new(Cache(Vec::new()));
    let cached = |tp: Obj| {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .0
            .iter()
            .find(|(t, _)| *t == tp as usize)
            .map(|(_, x)| *x)
    };
    if let Some(x) = cached(tp) {
        return x;
    }
    // The policy runs Python code, which may let another thread take the GIL and come here:
    // the lock is not held across it.
    // SAFETY: GIL held; the policy's result is read per its documented shape and every other
    // shape (or an exception, cleared) means "no fast path"; references kept are owned.
    let found = unsafe {
        let result = (api.vectorcall)(st.policy, &tp, 1, std::ptr::null_mut());
        let found = if result.is_null() {
            (api.err_clear)();
            None
        } else {
            let x = read_policy(api, result);
            (api.dec_ref)(result);
            x
        };
        if found.is_none() {
            (api.err_clear)();
        }
        found
    };
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0.len() < 64 && !cache.0.iter().any(|(t, _)| *t == tp as usize) {
        // SAFETY: GIL held; the cache keeps the type (so its address stays its own) and the
        // descriptors alive.
        unsafe {
            (api.inc_ref)(tp);
            if let Some(Exchange { torch: Some(c), .. }) = found {
                (api.inc_ref)(c.requires_grad);
                (api.inc_ref)(c.is_conj);
                (api.inc_ref)(c.is_neg);
            }
        }
        cache.0.push((tp as usize, found));
    }
    found
}

/// Reads `None` or `(address, None | (requires_grad, is_conj, is_neg))` (borrowed references
/// inside `result`, which the caller keeps until the cache has taken its own).
///
/// # Safety
/// GIL held; `result` a live object.
unsafe fn read_policy(api: &Api, result: Obj) -> Option<Exchange> {
    // SAFETY: GIL held; tuple items are read only after their tuple's size is checked.
    unsafe {
        if result == api.none || (api.tuple_size)(result) != 2 {
            return None;
        }
        let address = (api.long_as_u64)((api.tuple_get_item)(result, 0));
        if address == u64::MAX || address == 0 {
            return None;
        }
        let f = std::mem::transmute::<usize, ExchangeFn>(address as usize);
        let checks = (api.tuple_get_item)(result, 1);
        if checks == api.none {
            return Some(Exchange { f, torch: None });
        }
        if (api.tuple_size)(checks) != 6 {
            return None;
        }
        let meta = (api.long_as_long)((api.tuple_get_item)(checks, 5));
        let offset = (api.long_as_long)((api.tuple_get_item)(checks, 3));
        let mask = (api.long_as_u64)((api.tuple_get_item)(checks, 4));
        if (offset == -1 || mask == u64::MAX) && !(api.err_occurred)().is_null() {
            return None;
        }
        let key_offset = (offset >= 0 && offset % 8 == 0 && offset < 256 && mask != 0)
            .then_some(offset as usize);
        let meta_offset = (key_offset.is_some() && meta >= 0 && meta % 8 == 0 && meta < 256)
            .then_some(meta as usize);
        (api.err_clear)();
        let requires_grad = (api.tuple_get_item)(checks, 0);
        let get = (api.type_get_slot)(type_of(requires_grad), PY_TP_DESCR_GET);
        if get.is_null() {
            return None;
        }
        Some(Exchange {
            f,
            torch: Some(TorchChecks {
                requires_grad,
                descr_get: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(Obj, Obj, Obj) -> Obj,
                >(get),
                is_conj: (api.tuple_get_item)(checks, 1),
                is_neg: (api.tuple_get_item)(checks, 2),
                key_offset,
                key_mask: mask,
                meta_offset,
            }),
        })
    }
}

/// Whether a torch tensor may be imported as it is: no conjugate or negative bit, no autograd.
/// False also when a check fails (its exception cleared): the Python path then decides.
///
/// # Safety
/// GIL held; `obj` a live torch.Tensor; `complex` / `floating` from its DLPack dtype (the
/// conjugate bit exists only on complex tensors, `requires_grad` only on floating ones).
unsafe fn torch_plain(api: &Api, c: &TorchChecks, obj: Obj, complex: bool, floating: bool) -> bool {
    // SAFETY: GIL held; each result is a new reference, compared with True/False and released.
    unsafe {
        let is_false = |r: Obj| {
            if r.is_null() {
                (api.err_clear)();
                return false;
            }
            (api.dec_ref)(r);
            r == api.false_
        };
        if let Some(offset) = c.key_offset {
            // The calibrated layout: the TensorImpl pointer after the object header, the key
            // set `offset` bytes into the TensorImpl and the autograd metadata pointer
            // `meta_offset` bytes into it (both inside it: the calibration searched the first
            // 208 bytes only).
            let imp = *obj.cast::<u8>().add(16).cast::<*const u8>();
            if imp.is_null() {
                return false;
            }
            if imp.add(offset).cast::<u64>().read_unaligned() & c.key_mask != 0 {
                return false;
            }
            let no_autograd = c
                .meta_offset
                .is_some_and(|m| imp.add(m).cast::<u64>().read_unaligned() == 0);
            return !floating
                || no_autograd
                || is_false((c.descr_get)(c.requires_grad, obj, type_of(obj)));
        }
        if floating && !is_false((c.descr_get)(c.requires_grad, obj, type_of(obj))) {
            return false;
        }
        if complex && !is_false((api.vectorcall)(c.is_conj, &obj, 1, std::ptr::null_mut())) {
            return false;
        }
        is_false((api.vectorcall)(c.is_neg, &obj, 1, std::ptr::null_mut()))
    }
}

/// An object with the DLPack C exchange API (a torch.Tensor) imported per `opts`, CPU only;
/// None when the Python path must handle it.
///
/// # Safety
/// GIL held; `obj` live; `f` the exchange function of its type.
unsafe fn from_exchange(
    api: &Api,
    st: &State,
    obj: Obj,
    x: &Exchange,
    opts: &Options,
) -> Option<Obj> {
    // SAFETY: GIL held; the managed tensor handed out is ours: imported (the library then
    // owns it) or deleted here.
    unsafe {
        let mut managed: *mut DLManagedTensorVersioned = std::ptr::null_mut();
        if (x.f)(obj, &mut managed) != 0 || managed.is_null() {
            (api.err_clear)();
            return None;
        }
        let dl = &(*managed).dl_tensor;
        if let Some(checks) = &x.torch {
            use crate::dtype::code;
            let c_ = dl.dtype.code;
            let complex = c_ == code::COMPLEX;
            // torch lets only floating-point and complex tensors require grad
            let floating = !matches!(c_, code::INT | code::UINT | code::BOOL);
            if !torch_plain(api, checks, obj, complex, floating) {
                run_deleter(managed.cast(), true); // the Python path applies torch's rules
                return None;
            }
        }
        let Ok(reservation) = handles::reserve() else {
            run_deleter(managed.cast(), true);
            return None;
        };
        if dl.device.device_type != device_type::CPU {
            run_deleter(managed.cast(), true);
            return None;
        }
        let shape = if dl.ndim > 0 && !dl.shape.is_null() {
            std::slice::from_raw_parts(dl.shape, dl.ndim as usize)
        } else {
            &[]
        };
        let bytes = shape.iter().map(|&n| n.max(0) as u128).product::<u128>()
            * (dl.dtype.bits as u128 * dl.dtype.lanes as u128 / 8);
        match maybe_without_gil(api, bytes > RELEASE_GIL_BYTES as u128, || {
            import::import_versioned(managed, opts)
        }) {
            Ok((t, d)) => Some(publish(api, st, reservation, t, &d)),
            Err(_) => {
                run_deleter(managed.cast(), true);
                None
            }
        }
    }
}

/// Reads the keyword arguments of `from_numpy` / `as_tensor` that the fast path accepts.
/// Returns None when the call has any other form.
///
/// # Safety
/// GIL held; vectorcall arguments.
unsafe fn simple_call(
    api: &Api,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
    mode: Mode,
) -> Option<(Obj, Options)> {
    // SAFETY: caller contract.
    unsafe {
        let mut opts = Options::new(mode);
        let max_positional = if mode == Mode::Share { 1 } else { 3 };
        if nargs < 1 || nargs > max_positional {
            return None;
        }
        for i in 1..nargs {
            if *args.add(i as usize) != api.none {
                return None; // dtype / device: the Python path parses them
            }
        }
        let nkw = if kwnames.is_null() {
            0
        } else {
            (api.tuple_size)(kwnames)
        };
        for i in 0..nkw {
            let name = (api.tuple_get_item)(kwnames, i);
            let value = *args.add((nargs + i) as usize);
            let is = |s: &CStr| (api.unicode_eq_ascii)(name, s.as_ptr()) == 0;
            if mode == Mode::Share && is(c"readonly") {
                match (api.object_is_true)(value) {
                    1 => opts.allow_read_only = true,
                    0 => {}
                    _ => {
                        (api.err_clear)();
                        return None;
                    }
                }
            } else if mode == Mode::Share
                || value != api.none
                || !(is(c"dtype") || is(c"device") || is(c"stream"))
            {
                return None;
            }
        }
        Some((*args, opts))
    }
}

unsafe extern "C" fn py_from_numpy(_m: Obj, args: *const Obj, nargs: isize, kwnames: Obj) -> Obj {
    // SAFETY: called by CPython as a METH_FASTCALL|METH_KEYWORDS function.
    unsafe { convert_call(args, nargs, kwnames, Mode::Share) }
}

unsafe extern "C" fn py_as_tensor(_m: Obj, args: *const Obj, nargs: isize, kwnames: Obj) -> Obj {
    // SAFETY: called by CPython as a METH_FASTCALL|METH_KEYWORDS function.
    unsafe { convert_call(args, nargs, kwnames, Mode::ShareOrCopy) }
}

/// # Safety
/// GIL held; vectorcall arguments.
unsafe fn convert_call(args: *const Obj, nargs: isize, kwnames: Obj, mode: Mode) -> Obj {
    configured(|api, st| {
        let fallback_target = if mode == Mode::Share {
            st.from_numpy
        } else {
            st.as_tensor
        };
        // SAFETY: GIL held; vectorcall arguments as CPython passes them.
        unsafe {
            let fast = simple_call(api, args, nargs, kwnames, mode).and_then(|(obj, opts)| {
                let tp = type_of(obj);
                if tp == st.ndarray {
                    from_ndarray(api, st, obj, &opts)
                } else if mode != Mode::Share && tp != st.tensor_class {
                    let x = exchange_import(api, st, tp)?;
                    from_exchange(api, st, obj, &x, &opts)
                } else {
                    None
                }
            });
            match fast {
                Some(o) => o,
                None => forward(api, fallback_target, None, args, nargs, kwnames),
            }
        }
    })
}

/// `_wrap(address, shared, reason)`: a Tensor object taking ownership of the handle at
/// `address` (made by a cffi call in the Python package).
unsafe extern "C" fn py_wrap(_m: Obj, args: *const Obj, nargs: isize, kwnames: Obj) -> Obj {
    configured(|api, st| {
        // SAFETY: GIL held; vectorcall arguments.
        unsafe {
            if nargs != 3 || !kwnames.is_null() {
                (api.err_set_string)(
                    api.runtime_error,
                    c"_wrap(address, shared, reason)".as_ptr(),
                );
                return std::ptr::null_mut();
            }
            let address = (api.long_as_u64)(*args);
            let shared = (api.object_is_true)(*args.add(1));
            let reason = (api.long_as_long)(*args.add(2));
            if address == u64::MAX || shared < 0 || reason == -1 {
                return std::ptr::null_mut(); // the conversion's exception is set
            }
            let handle = address as usize as *mut dlshare_tensor;
            let Ok(t) = handles::get(handle) else {
                (api.err_set_string)(
                    api.runtime_error,
                    c"_wrap: not a live dlshare handle".as_ptr(),
                );
                return std::ptr::null_mut();
            };
            new_object(
                api,
                st,
                handle,
                t.device(),
                t.is_read_only(),
                shared == 1,
                reason as i32,
            )
        }
    })
}

/// `_configure(tensor_class, ndarray, from_numpy, as_tensor, dlpack, policy)`: registers the
/// Python side.
unsafe extern "C" fn py_configure(_m: Obj, args: *const Obj, nargs: isize, kwnames: Obj) -> Obj {
    let Some(api) = api() else {
        return std::ptr::null_mut();
    };
    callable(api, || {
        // SAFETY: GIL held; vectorcall arguments; the references taken are never given back
        // (the state lives as long as the process).
        unsafe {
            if nargs != 6 || !kwnames.is_null() {
                (api.err_set_string)(
                    api.runtime_error,
                    c"_configure(tensor_class, ndarray, from_numpy, as_tensor, dlpack, policy)"
                        .as_ptr(),
                );
                return std::ptr::null_mut();
            }
            let a = std::slice::from_raw_parts(args, 6);
            for &o in a {
                (api.inc_ref)(o);
            }
            let st = Box::new(State {
                tensor_class: a[0],
                ndarray: a[1],
                from_numpy: a[2],
                as_tensor: a[3],
                dlpack: a[4],
                policy: a[5],
            });
            STATE.store(Box::into_raw(st), Ordering::Release);
            (api.inc_ref)(api.none);
            api.none
        }
    })
}

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
            super::pyexchange::table().cast_mut().cast(),
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
