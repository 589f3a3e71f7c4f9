//! The producer side of DLPack 1.3's C exchange API: the `DLPackExchangeAPI` table that
//! `dlshare.Tensor.__dlpack_c_exchange_api__` holds (a PyCapsule named "dlpack_exchange_api"),
//! so that consumers speaking it (tvm-ffi, and dlshare itself for other producers) import
//! dlshare tensors without a capsule round trip. The same table is returned to C by
//! `dlshare_dlpack_exchange_api`.
//!
//! Every function follows the table's contract: 0 on success, -1 on failure. The functions that
//! take a Python object need the GIL (the consumer holds it) and set a Python exception on
//! failure; outside a CPython process they fail without one. `managed_tensor_allocator` and
//! `current_work_stream` need no Python.

use std::ffi::CString;

use super::*;
use crate::dlpack::{
    DLDevice, DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION, DLPackExchangeAPI, DLPackVersion,
    DLTensor,
};

/// `SetError(error_ctx, kind, message)` of the allocator.
pub type DLPackSetError = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char);

/// DLPack 1.3 `DLPackExchangeAPIHeader`.
#[repr(C)]
struct TableHeader {
    version: DLPackVersion,
    prev_api: *mut TableHeader,
}

/// DLPack 1.3 `DLPackExchangeAPI` with every entry typed (`crate::dlpack::DLPackExchangeAPI`
/// is the consumer's view of the same layout, and the type the header declares).
#[repr(C)]
struct ProducerTable {
    header: TableHeader,
    managed_tensor_allocator: Option<
        unsafe extern "C" fn(
            *mut DLTensor,
            *mut *mut DLManagedTensorVersioned,
            *mut c_void,
            Option<DLPackSetError>,
        ) -> c_int,
    >,
    managed_tensor_from_py_object_no_sync:
        Option<unsafe extern "C" fn(*mut c_void, *mut *mut DLManagedTensorVersioned) -> c_int>,
    managed_tensor_to_py_object_no_sync:
        Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned, *mut *mut c_void) -> c_int>,
    dltensor_from_py_object_no_sync:
        Option<unsafe extern "C" fn(*mut c_void, *mut DLTensor) -> c_int>,
    current_work_stream: Option<unsafe extern "C" fn(i32, i32, *mut *mut c_void) -> c_int>,
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<TableHeader>() == 16);
    assert!(std::mem::size_of::<ProducerTable>() == std::mem::size_of::<DLPackExchangeAPI>());
    assert!(
        std::mem::offset_of!(ProducerTable, managed_tensor_from_py_object_no_sync)
            == std::mem::offset_of!(DLPackExchangeAPI, managed_tensor_from_py_object_no_sync)
    );
};

struct Table(ProducerTable);
// SAFETY: an immutable table of function pointers (prev_api is NULL).
unsafe impl Sync for Table {}

static TABLE: Table = Table(ProducerTable {
    header: TableHeader {
        version: DLPackVersion {
            major: DLPACK_MAJOR_VERSION,
            minor: DLPACK_MINOR_VERSION,
        },
        prev_api: std::ptr::null_mut(),
    },
    managed_tensor_allocator: Some(allocator),
    managed_tensor_from_py_object_no_sync: Some(from_py_object),
    managed_tensor_to_py_object_no_sync: Some(to_py_object),
    dltensor_from_py_object_no_sync: Some(dltensor_from_py_object),
    current_work_stream: Some(current_work_stream),
});

/// The table (static, never freed).
pub(super) fn table() -> *const DLPackExchangeAPI {
    (&raw const TABLE.0).cast()
}

/// DLPack 1.3's C exchange API table for dlshare tensors, the one
/// `dlshare.Tensor.__dlpack_c_exchange_api__` holds; static, never freed, never NULL. From C,
/// `managed_tensor_allocator` (a new 256-byte-aligned tensor of the prototype's dtype, shape
/// and device, exported as a managed tensor the caller frees with its deleter) and
/// `current_work_stream` (NULL for CPU, dlshare's stream for CUDA) are usable anywhere; the
/// functions taking a `PyObject *` work only inside a CPython process running the dlshare
/// package's native path, with the GIL held, and return -1 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_dlpack_exchange_api() -> *const DLPackExchangeAPI {
    table()
}

/// Sets a Python exception of class `BufferError` (or RuntimeError when the class is not
/// found) with `message`.
fn raise(api: &Api, message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: GIL held by the caller of the exchange function (its contract).
    unsafe { (api.err_set_string)(api.buffer_error, text.as_ptr()) };
}

/// Runs an exchange function's body: a panic becomes -1 with RuntimeError set.
fn guard(body: impl FnOnce(&'static Api) -> c_int) -> c_int {
    let Some(api) = api() else { return -1 };
    catch_unwind(AssertUnwindSafe(|| body(api))).unwrap_or_else(|_| {
        // SAFETY: GIL held (contract); a NUL-terminated message.
        unsafe {
            (api.err_set_string)(
                api.runtime_error,
                c"internal error (panic) in dlshare's DLPack exchange API; please report it"
                    .as_ptr(),
            )
        };
        -1
    })
}

/// The live tensor behind a `dlshare.Tensor` object, or an error message.
///
/// # Safety
/// GIL held; `obj` NULL or a live object.
unsafe fn tensor_of(
    api: &Api,
    obj: Obj,
) -> Result<(*mut dlshare_tensor, std::sync::Arc<Tensor>), String> {
    let Some(st) = state() else {
        return Err("dlshare's native module is not configured (import dlshare first)".into());
    };
    if obj.is_null() {
        return Err("py_object is NULL".into());
    }
    let tp = type_of(obj);
    // SAFETY: GIL held; both are live type objects.
    if tp != st.tensor_class && unsafe { (api.type_is_subtype)(tp, st.tensor_class) } == 0 {
        return Err("this DLPack exchange API exports dlshare.Tensor objects only".into());
    }
    // SAFETY: an instance of the Tensor class starts with a PyTensor.
    let handle = unsafe { (*obj.cast::<PyTensor>()).handle };
    handles::get(handle)
        .map(|t| (handle, t))
        .map_err(|_| "this dlshare.Tensor has been released".into())
}

unsafe extern "C" fn from_py_object(
    py_object: *mut c_void,
    out: *mut *mut DLManagedTensorVersioned,
) -> c_int {
    guard(|api| {
        if out.is_null() {
            raise(api, "managed_tensor_from_py_object_no_sync: out is NULL");
            return -1;
        }
        // SAFETY: GIL held (contract); `out` checked non-NULL and writable (contract).
        unsafe {
            match tensor_of(api, py_object) {
                Ok((_, t)) => {
                    *out = export::share_versioned(t);
                    0
                }
                Err(e) => {
                    raise(api, &e);
                    -1
                }
            }
        }
    })
}

unsafe extern "C" fn dltensor_from_py_object(py_object: *mut c_void, out: *mut DLTensor) -> c_int {
    guard(|api| {
        if out.is_null() {
            raise(api, "dltensor_from_py_object_no_sync: out is NULL");
            return -1;
        }
        // SAFETY: GIL held (contract). The shape and strides point into the tensor the
        // object's handle keeps alive, valid as long as the object (DLPack's contract for this
        // non-owning view).
        unsafe {
            match tensor_of(api, py_object) {
                Ok((_, t)) => {
                    let ptr = |v: &[i64]| {
                        if v.is_empty() {
                            std::ptr::null_mut()
                        } else {
                            v.as_ptr().cast_mut()
                        }
                    };
                    *out = DLTensor {
                        data: t.raw_data().cast(),
                        device: t.device().into(),
                        ndim: t.ndim() as i32,
                        dtype: t.dtype().into(),
                        shape: ptr(t.shape()),
                        strides: ptr(t.strides()),
                        byte_offset: t.byte_offset(),
                    };
                    0
                }
                Err(e) => {
                    raise(api, &e);
                    -1
                }
            }
        }
    })
}

unsafe extern "C" fn to_py_object(
    tensor: *mut DLManagedTensorVersioned,
    out: *mut *mut c_void,
) -> c_int {
    guard(|api| {
        let Some(st) = state() else {
            raise(
                api,
                "dlshare's native module is not configured (import dlshare first)",
            );
            return -1;
        };
        if tensor.is_null() || out.is_null() {
            raise(
                api,
                "managed_tensor_to_py_object_no_sync: tensor or out is NULL",
            );
            return -1;
        }
        let Ok(reservation) = handles::reserve() else {
            raise(api, "too many live dlshare tensors");
            return -1;
        };
        let mut opts = Options::new(Mode::Share);
        opts.allow_read_only = true;
        // SAFETY: the caller owns `tensor` (contract); on success dlshare does, on failure the
        // caller still does. GIL held for the new object.
        unsafe {
            let imported = import::import_versioned(tensor).and_then(|imported| {
                crate::convert::convert(&imported.source, &opts, || imported.owner.storage())
            });
            match imported {
                Ok((t, d)) => {
                    let o = publish(api, st, reservation, t, &d);
                    if o.is_null() {
                        return -1; // the allocation's exception is set; the handle is released
                    }
                    *out = o;
                    0
                }
                Err(e) => {
                    raise(api, &e.to_string());
                    -1
                }
            }
        }
    })
}

unsafe extern "C" fn allocator(
    prototype: *mut DLTensor,
    out: *mut *mut DLManagedTensorVersioned,
    error_ctx: *mut c_void,
    set_error: Option<DLPackSetError>,
) -> c_int {
    let fail = |kind: &CStr, message: &str| {
        if let Some(set) = set_error {
            let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
            // SAFETY: the consumer's callback with its context, as the table's contract says.
            unsafe { set(error_ctx, kind.as_ptr(), text.as_ptr()) };
        }
        -1
    };
    catch_unwind(AssertUnwindSafe(|| {
        if prototype.is_null() || out.is_null() {
            return fail(
                c"ValueError",
                "managed_tensor_allocator: prototype or out is NULL",
            );
        }
        // SAFETY: the consumer passes a valid prototype (contract); its shape is read only for
        // ndim entries when non-NULL.
        let (dtype, shape, device) = unsafe {
            let p = &*prototype;
            if p.ndim < 0 || p.ndim > 64 || (p.ndim > 0 && p.shape.is_null()) {
                return fail(
                    c"ValueError",
                    "managed_tensor_allocator: bad ndim or NULL shape",
                );
            }
            let shape = if p.ndim == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p.shape, p.ndim as usize).to_vec()
            };
            (DType::from(p.dtype), shape, Device::from(p.device))
        };
        match Tensor::empty(dtype, &shape, device, false) {
            Ok(t) => {
                // SAFETY: checked non-NULL, writable (contract).
                unsafe { *out = export::into_versioned(t) };
                0
            }
            Err(e) => {
                let kind = match e {
                    crate::error::Error::OutOfMemory(_) => c"MemoryError",
                    _ => c"BufferError",
                };
                fail(kind, &e.to_string())
            }
        }
    }))
    .unwrap_or_else(|_| {
        fail(
            c"RuntimeError",
            "internal error (panic) in dlshare's allocator",
        )
    })
}

unsafe extern "C" fn current_work_stream(
    device_type_: i32,
    device_id: i32,
    out_current_stream: *mut *mut c_void,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        if out_current_stream.is_null() {
            return -1;
        }
        let stream = match device_type_ {
            device_type::CPU | device_type::CUDA_HOST => Ok(0),
            device_type::CUDA => crate::cuda::stream(device_id),
            _ => Err(crate::error::Error::UnsupportedDevice(format!(
                "{} has no dlshare stream",
                Device::from(DLDevice {
                    device_type: device_type_,
                    device_id
                })
            ))),
        };
        match stream {
            Ok(s) => {
                // SAFETY: checked non-NULL, writable (contract).
                unsafe { *out_current_stream = s as *mut c_void };
                0
            }
            // no exception: a C caller may not hold the GIL (or run Python at all)
            Err(_) => -1,
        }
    }))
    .unwrap_or(-1)
}
