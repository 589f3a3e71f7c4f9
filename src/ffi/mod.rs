//! The C ABI: the only `extern "C"` surface. Every entry point checks its pointers, runs inside
//! one panic boundary, maps `Error` to a status and stores the message for
//! `dlshare_last_error_message`. No conversion logic lives here.

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::convert::Reason;
use crate::error::{Error, Result};

// cbindgen reads the modules in the order they are declared, and the header lists their
// functions in that order: what a reader needs first comes first. (Blank lines keep rustfmt from
// sorting the declarations.)

// Errors, versions and names of codes.
pub mod version;

// Tensor handles: the table, then creating, owning and reading tensors.
pub mod handles;

pub mod tensor;

// Raw views and conversion, dtype and device names.
pub mod convert;

pub mod names;

// DLPack import and export.
pub mod dlpack;

// Tensors in memory shared between processes.
pub mod shm;

// Tabular columns to one tensor; strided views.
pub mod columns;

// Arrow tables and arrays to tensors, tensors to Arrow (the C Data Interface).
pub mod arrow;

// CUDA.
pub mod cuda;

// Tuning: threads for large copies, the buffer cache.
pub mod threads;

pub mod memory;

// Binding internals: PyCapsule support and the CPython fast path of the Python package.
pub mod python;

pub(crate) mod pyext;

pub use pyext::dlshare_python_module;

/// Status of every fallible dlshare function. `DLSHARE_OK` is 0; codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_status {
    /// Success.
    DLSHARE_OK = 0,
    /// A required pointer argument was NULL.
    DLSHARE_ERR_NULL_ARGUMENT = 1,
    /// A tensor handle was NULL, not made by dlshare, or already released.
    DLSHARE_ERR_INVALID_HANDLE = 2,
    /// An argument had an invalid value (negative extent, bad mode, impossible request).
    DLSHARE_ERR_INVALID_ARGUMENT = 3,
    /// A DLPack struct was malformed (NULL shape with ndim > 0, ndim out of range...).
    DLSHARE_ERR_INVALID_DLPACK = 4,
    /// A versioned DLPack tensor had a major version other than 1.
    DLSHARE_ERR_UNSUPPORTED_VERSION = 5,
    /// The dtype is unknown, or cannot be cast/copied as asked.
    DLSHARE_ERR_UNSUPPORTED_DTYPE = 6,
    /// The device type is unknown or cannot be used for this operation.
    DLSHARE_ERR_UNSUPPORTED_DEVICE = 7,
    /// SHARE mode could not share; `dlshare_decision.reason` names the obstacle.
    DLSHARE_ERR_CANNOT_SHARE = 8,
    /// The operation needs writable memory but the tensor is read-only.
    DLSHARE_ERR_READ_ONLY = 9,
    /// Sizes, strides or offsets overflow 64 bits or the address space.
    DLSHARE_ERR_OVERFLOW = 10,
    /// An allocation failed.
    DLSHARE_ERR_OUT_OF_MEMORY = 11,
    /// The device (or its driver) is not available in this process.
    DLSHARE_ERR_DEVICE_UNAVAILABLE = 12,
    /// A CUDA call failed; the message names the CUDA error.
    DLSHARE_ERR_CUDA = 13,
    /// dlshare panicked (a bug); the library state is still consistent.
    DLSHARE_ERR_PANIC = 14,
}

use dlshare_status::*;

/// The status that stands for an error (one variant, one status).
pub fn status_of(e: &Error) -> dlshare_status {
    match e {
        Error::NullArgument(_) => DLSHARE_ERR_NULL_ARGUMENT,
        Error::InvalidHandle(_) => DLSHARE_ERR_INVALID_HANDLE,
        Error::InvalidArgument(_) => DLSHARE_ERR_INVALID_ARGUMENT,
        Error::InvalidDlpack(_) => DLSHARE_ERR_INVALID_DLPACK,
        Error::UnsupportedVersion(_) => DLSHARE_ERR_UNSUPPORTED_VERSION,
        Error::UnsupportedDtype(_) => DLSHARE_ERR_UNSUPPORTED_DTYPE,
        Error::UnsupportedDevice(_) => DLSHARE_ERR_UNSUPPORTED_DEVICE,
        Error::CannotShare(..) => DLSHARE_ERR_CANNOT_SHARE,
        Error::ReadOnly(_) => DLSHARE_ERR_READ_ONLY,
        Error::Overflow(_) => DLSHARE_ERR_OVERFLOW,
        Error::OutOfMemory(_) => DLSHARE_ERR_OUT_OF_MEMORY,
        Error::DeviceUnavailable(_) => DLSHARE_ERR_DEVICE_UNAVAILABLE,
        Error::Cuda(_) => DLSHARE_ERR_CUDA,
        Error::Panic(_) => DLSHARE_ERR_PANIC,
    }
}

/// Why a conversion copied, or why SHARE mode refused. Codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_reason {
    /// Shared; nothing stood in the way.
    DLSHARE_REASON_NONE = 0,
    /// The memory is read-only.
    DLSHARE_REASON_READ_ONLY = 1,
    /// A stride is negative on an axis of extent > 1.
    DLSHARE_REASON_NEGATIVE_STRIDE = 2,
    /// A byte stride is not a multiple of the item size.
    DLSHARE_REASON_STRIDE_NOT_ITEM_MULTIPLE = 3,
    /// The data is in non-native byte order.
    DLSHARE_REASON_BYTE_ORDER = 4,
    /// The data is not aligned to its element type.
    DLSHARE_REASON_MISALIGNED = 5,
    /// The caller asked for another dtype.
    DLSHARE_REASON_DTYPE_CHANGE = 6,
    /// The caller asked for another device.
    DLSHARE_REASON_DEVICE_CHANGE = 7,
    /// COPY mode always copies.
    DLSHARE_REASON_COPY_REQUESTED = 8,
    /// An Arrow array a tensor cannot view (nulls, several chunks, bit-packed bools,
    /// dictionary or date/time values, NaN to fill). Arrow tables, always written into a new
    /// tensor, report DLSHARE_REASON_COPY_REQUESTED as the pandas helpers do.
    DLSHARE_REASON_ARROW_LAYOUT = 13,
}

impl From<Reason> for dlshare_reason {
    fn from(r: Reason) -> Self {
        use dlshare_reason::*;
        match r {
            Reason::None => DLSHARE_REASON_NONE,
            Reason::ReadOnly => DLSHARE_REASON_READ_ONLY,
            Reason::NegativeStride => DLSHARE_REASON_NEGATIVE_STRIDE,
            Reason::StrideNotItemMultiple => DLSHARE_REASON_STRIDE_NOT_ITEM_MULTIPLE,
            Reason::ByteOrder => DLSHARE_REASON_BYTE_ORDER,
            Reason::Misaligned => DLSHARE_REASON_MISALIGNED,
            Reason::DtypeChange => DLSHARE_REASON_DTYPE_CHANGE,
            Reason::DeviceChange => DLSHARE_REASON_DEVICE_CHANGE,
            Reason::CopyRequested => DLSHARE_REASON_COPY_REQUESTED,
            Reason::ArrowLayout => DLSHARE_REASON_ARROW_LAYOUT,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|cell| *cell.borrow_mut() = text);
}

/// Pointer to this thread's last error message (valid until the next failing call here).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|cell| cell.borrow().as_ptr())
}

/// Runs an entry point's body: catches panics, records the message of a failure, and maps the
/// outcome to a status.
pub(crate) fn boundary(body: impl FnOnce() -> Result<()>) -> dlshare_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => DLSHARE_OK,
        Ok(Err(e)) => {
            set_last_error(e.message());
            status_of(&e)
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!(
                "internal error (panic) in dlshare: {what}; please report it with the inputs"
            ));
            DLSHARE_ERR_PANIC
        }
    }
}

/// Like `boundary` for functions without a status: a panic yields `fallback`.
pub(crate) fn guarded<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A borrowed required input.
///
/// # Safety
/// `p`, when not NULL, must point to a valid `T` for the duration of the call.
pub(crate) unsafe fn arg<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    // SAFETY: forwarded caller contract.
    unsafe { p.as_ref() }.ok_or_else(|| Error::NullArgument(format!("{name} is NULL")))
}

/// A required output, checked before any work is done so that failures leave it untouched.
///
/// # Safety
/// `p`, when not NULL, must point to writable memory for a `T`.
pub(crate) unsafe fn out<'a, T>(p: *mut T, name: &str) -> Result<&'a mut std::mem::MaybeUninit<T>> {
    // SAFETY: forwarded caller contract; MaybeUninit lets us accept uninitialised storage.
    unsafe { p.cast::<std::mem::MaybeUninit<T>>().as_mut() }.ok_or_else(|| {
        Error::NullArgument(format!("{name} is NULL; pass where to store the result"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Besides the real panic path in the catalogue (docs/hardening.md), one is injected here:
    /// the boundary turns it into DLSHARE_ERR_PANIC with the payload in the message,
    /// a handle slot reserved before the panic is given back while unwinding, and the handle
    /// table keeps working.
    #[test]
    fn a_panic_inside_dlshare_becomes_a_status() {
        let s = boundary(|| {
            let _slot = handles::reserve()?;
            panic!("injected {}", "panic");
        });
        assert_eq!(s, DLSHARE_ERR_PANIC);
        // SAFETY: a NUL-terminated thread-local string.
        let msg = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert_eq!(
            msg.to_str().unwrap(),
            "internal error (panic) in dlshare: injected panic; please report it with the inputs"
        );
        let s = boundary(|| std::panic::panic_any(7u8));
        assert_eq!(s, DLSHARE_ERR_PANIC);
        // SAFETY: as above.
        let msg = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert!(msg.to_str().unwrap().contains("unknown panic"));
        assert_eq!(guarded(5, || panic!("in a function without a status")), 5);

        let t = crate::tensor::Tensor::empty(
            crate::dtype::DType::F32,
            &[3],
            crate::device::Device::CPU,
            true,
        )
        .unwrap();
        let h = handles::insert(t).unwrap();
        assert_eq!(handles::get(h).unwrap().shape(), [3]);
        handles::release(h).unwrap();
        assert!(handles::get(h).is_err());
    }
}
