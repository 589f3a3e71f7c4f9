//! Support for Python bindings that hand exported tensors to consumers as DLPack `PyCapsule`s.
//!
//! A capsule that nobody consumed must free its managed tensor when it is garbage-collected;
//! consumers rename the capsules they take ("used_dltensor..."). Running that check in a Python
//! callback costs more than the whole export, so the destructor lives here. It calls CPython's
//! own `PyCapsule_IsValid` / `PyCapsule_GetPointer`, looked up in the running process (nothing
//! links against Python); CPython runs capsule destructors with the GIL held.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use super::guarded;
use crate::dlpack::{DLManagedTensor, DLManagedTensorVersioned};

type IsValid = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type GetPointer = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

/// The address of a symbol of the running process (CPython's C API when this library is used
/// from Python), or None.
pub(crate) fn py_symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Runs the deleter of a managed tensor nobody consumed (versioned or legacy).
///
/// # Safety
/// `managed` is NULL or a managed tensor of the kind `versioned` says, owned by the caller;
/// its deleter runs once, here.
pub(crate) unsafe fn run_deleter(managed: *mut c_void, versioned: bool) {
    // SAFETY: caller contract.
    unsafe {
        if versioned {
            let m = managed.cast::<DLManagedTensorVersioned>();
            if let Some(deleter) = m.as_ref().and_then(|m| m.deleter) {
                deleter(m);
            }
        } else {
            let m = managed.cast::<DLManagedTensor>();
            if let Some(deleter) = m.as_ref().and_then(|m| m.deleter) {
                deleter(m);
            }
        }
    }
}

fn capsule_api() -> Option<(IsValid, GetPointer)> {
    static API: OnceLock<Option<(IsValid, GetPointer)>> = OnceLock::new();
    *API.get_or_init(|| {
        let is_valid = py_symbol(c"PyCapsule_IsValid")?;
        let get = py_symbol(c"PyCapsule_GetPointer")?;
        // SAFETY: these CPython functions have exactly these C signatures (stable ABI).
        Some(unsafe {
            (
                std::mem::transmute::<*mut c_void, IsValid>(is_valid),
                std::mem::transmute::<*mut c_void, GetPointer>(get),
            )
        })
    })
}

/// Binding internals (for Python bindings that export DLPack capsules; applications written in
/// C, C++ or Julia do not need the functions from here to the end of this header).
///
/// Whether `dlshare_pycapsule_destructor` can work in this process (CPython's capsule functions
/// are visible). When false, a binding must use a destructor of its own.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_pycapsule_destructor_available() -> bool {
    guarded(false, || capsule_api().is_some())
}

/// Binding internals. A `PyCapsule_Destructor` for capsules named "dltensor_versioned" (holding a
/// `DLManagedTensorVersioned *`) or "dltensor" (a `DLManagedTensor *`): when the capsule still
/// has that name — nobody consumed it — the managed tensor's deleter runs. A consumed capsule
/// ("used_..." name) is left alone: its consumer owns the tensor. Pass it to `PyCapsule_New`;
/// never call it yourself. Does nothing when `dlshare_pycapsule_destructor_available()` is false.
///
/// # Safety
/// Only CPython may call it, with the GIL held, on a live capsule object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_pycapsule_destructor(capsule: *mut c_void) {
    guarded((), || {
        let Some((is_valid, get_pointer)) = capsule_api() else {
            return;
        };
        // SAFETY: CPython calls this with the GIL held on a live capsule; these calls do not
        // set exceptions for a valid name, and the pointer under that name is the managed
        // tensor the exporter stored, unconsumed, so its deleter must run once, here.
        unsafe {
            for (name, versioned) in [(c"dltensor_versioned", true), (c"dltensor", false)] {
                if is_valid(capsule, name.as_ptr()) != 0 {
                    run_deleter(get_pointer(capsule, name.as_ptr()), versioned);
                    return;
                }
            }
        }
    })
}
