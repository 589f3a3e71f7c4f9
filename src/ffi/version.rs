//! Version, status names and the last error message.

use std::ffi::{CStr, c_char};

use super::dlshare_status::{self, *};
use super::{dlshare_reason, guarded, last_error_ptr};

/// Major version of this header. The shared library's SONAME carries the ABI version: MAJOR
/// from 1.0 on (`libdlshare.so.1`), `0.MINOR` before (`libdlshare.so.0.1`); see docs/abi.md.
pub const DLSHARE_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const DLSHARE_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const DLSHARE_VERSION_PATCH: u32 = 0;

// The version comes from Cargo.toml alone: the string is the crate's, and the header's macros
// above (plain literals, as cbindgen needs them) must match it or the crate does not compile.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("CARGO_PKG_VERSION contains a NUL byte"),
    };

// Used only by the const assertion below, which rustc 1.88 (the MSRV) does not count as a use.
#[allow(dead_code)]
const fn parse_u32(digits: &str) -> u32 {
    let bytes = digits.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "a version field is not a number");
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

const _: () = assert!(
    DLSHARE_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR"))
        && DLSHARE_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR"))
        && DLSHARE_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
    "DLSHARE_VERSION_MAJOR/MINOR/PATCH in src/ffi/version.rs must equal the version in \
     Cargo.toml (then regenerate the header: DLSHARE_UPDATE_HEADER=1 cargo test --test header)"
);

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
