//! Version, status names and the last error message.

use std::ffi::{CStr, c_char};

use super::dlshare_status::{self, *};
use super::{dlshare_reason, guarded, last_error_ptr};

/// Major version of this header; the shared library's SONAME carries it (`libdlshare.so.0`).
pub const DLSHARE_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const DLSHARE_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const DLSHARE_VERSION_PATCH: u32 = 0;

const VERSION: &CStr = c"0.1.0";

/// The library's version as "MAJOR.MINOR.PATCH". Static string; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The message of the last failed dlshare call on the calling thread ("" if none failed yet).
/// Owned by dlshare; valid until the next failing dlshare call on this thread. Never free it.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_last_error_message() -> *const c_char {
    guarded(c"".as_ptr(), last_error_ptr)
}

/// The name of a status code, e.g. "DLSHARE_ERR_READ_ONLY"; "DLSHARE_UNKNOWN_STATUS" for a value
/// that is not a status. Static string; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_status_name(status: i32) -> *const c_char {
    const ALL: [(dlshare_status, &CStr); 15] = [
        (DLSHARE_OK, c"DLSHARE_OK"),
        (DLSHARE_ERR_NULL_ARGUMENT, c"DLSHARE_ERR_NULL_ARGUMENT"),
        (DLSHARE_ERR_INVALID_HANDLE, c"DLSHARE_ERR_INVALID_HANDLE"),
        (
            DLSHARE_ERR_INVALID_ARGUMENT,
            c"DLSHARE_ERR_INVALID_ARGUMENT",
        ),
        (DLSHARE_ERR_INVALID_DLPACK, c"DLSHARE_ERR_INVALID_DLPACK"),
        (
            DLSHARE_ERR_UNSUPPORTED_VERSION,
            c"DLSHARE_ERR_UNSUPPORTED_VERSION",
        ),
        (
            DLSHARE_ERR_UNSUPPORTED_DTYPE,
            c"DLSHARE_ERR_UNSUPPORTED_DTYPE",
        ),
        (
            DLSHARE_ERR_UNSUPPORTED_DEVICE,
            c"DLSHARE_ERR_UNSUPPORTED_DEVICE",
        ),
        (DLSHARE_ERR_CANNOT_SHARE, c"DLSHARE_ERR_CANNOT_SHARE"),
        (DLSHARE_ERR_READ_ONLY, c"DLSHARE_ERR_READ_ONLY"),
        (DLSHARE_ERR_OVERFLOW, c"DLSHARE_ERR_OVERFLOW"),
        (DLSHARE_ERR_OUT_OF_MEMORY, c"DLSHARE_ERR_OUT_OF_MEMORY"),
        (
            DLSHARE_ERR_DEVICE_UNAVAILABLE,
            c"DLSHARE_ERR_DEVICE_UNAVAILABLE",
        ),
        (DLSHARE_ERR_CUDA, c"DLSHARE_ERR_CUDA"),
        (DLSHARE_ERR_PANIC, c"DLSHARE_ERR_PANIC"),
    ];
    ALL.iter()
        .find(|(s, _)| *s as i32 == status)
        .map_or(c"DLSHARE_UNKNOWN_STATUS", |(_, name)| name)
        .as_ptr()
}

/// The stable code of a reason, e.g. "negative_stride" ("unknown" for a value that is not a
/// reason). Static string; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_reason_name(reason: i32) -> *const c_char {
    crate::convert::Reason::ALL
        .iter()
        .find(|r| dlshare_reason::from(**r) as i32 == reason)
        .map_or(c"unknown", |r| r.c_code())
        .as_ptr()
}

/// Number of tensor storages alive in the library (owned copies, shared foreign memory, and
/// memory kept alive by exported DLPack tensors). For leak tests: it returns to its start value
/// when every handle is released and every exported tensor's deleter has run.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_live_tensor_count() -> usize {
    crate::storage::live_storage_count()
}
