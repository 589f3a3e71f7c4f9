//! The tensor object (`TensorBase`): its instance layout, the configured state, creating and
//! deallocating instances, `__dlpack__` / `__dlpack_device__`, and forwarding to the Python
//! implementation.

use super::*;

/// The instance layout of `TensorBase` (a Python subclass adds its slots after it). The first
/// two fields are CPython's object header; the Python package enables this module only where
/// `object.__basicsize__` is 16, i.e. this header.
#[repr(C)]
pub(super) struct PyTensor {
    pub(super) ob_refcnt: isize,
    pub(super) ob_type: Obj,
    pub(super) handle: *mut dlshare_tensor,
    pub(super) device_type: i32,
    pub(super) device_id: i32,
    pub(super) reason: i32,
    pub(super) shared: u8,
    pub(super) readonly: u8,
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
    pub(super) ndarray: Obj,
    pub(super) from_numpy: Obj,
    pub(super) as_tensor: Obj,
    pub(super) dlpack: Obj,
}

pub(super) static STATE: AtomicPtr<State> = AtomicPtr::new(std::ptr::null_mut());

pub(super) fn state() -> Option<&'static State> {
    // SAFETY: a published State is leaked, never freed.
    unsafe { STATE.load(Ordering::Acquire).as_ref() }
}

/// Runs a callable's body, turning a panic into RuntimeError.
pub(super) fn callable(api: &Api, body: impl FnOnce() -> Obj) -> Obj {
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
pub(super) unsafe fn forward(
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
pub(super) unsafe fn new_object(
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
    let reason = crate::ffi::dlshare_reason::from(d.reason) as i32;
    let handle = reservation.fill(t);
    // SAFETY: GIL held; the handle is new and moves into the object.
    unsafe { new_object(api, st, handle, device, readonly, d.shared, reason) }
}

pub(super) unsafe extern "C" fn tensor_dealloc(o: Obj) {
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

pub(super) unsafe extern "C" fn tensor_dlpack_device(o: Obj, _unused: Obj) -> Obj {
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
pub(super) unsafe extern "C" fn tensor_dlpack(
    o: Obj,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
) -> Obj {
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
pub(super) fn configured(body: impl FnOnce(&'static Api, &'static State) -> Obj) -> Obj {
    let Some(api) = api() else {
        return std::ptr::null_mut();
    };
    callable(api, || match state() {
        Some(st) => body(api, st),
        None => not_configured(api),
    })
}

pub(super) fn not_configured(api: &Api) -> Obj {
    // SAFETY: GIL held; a NUL-terminated message.
    unsafe {
        (api.err_set_string)(
            api.runtime_error,
            c"dlshare's native module is not configured (dlshare._core sets it up)".as_ptr(),
        )
    };
    std::ptr::null_mut()
}
