//! The CUDA driver, loaded at run time through cudarc: the symbols dlshare needs, error
//! descriptions, and the per-process driver state with its devices (`device`), their memory
//! (`memory`) and streams (`stream`). Compiled with the `cuda` feature only.

use std::ffi::{CStr, c_char, c_void};
use std::marker::PhantomData;
use std::panic::catch_unwind;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cudarc::driver::sys::{self, CUresult};

use crate::device::{Device, device_type};
use crate::error::{Error, Result};
use crate::storage::{Release, Storage};

use super::cuda_device;

mod device;
mod ipc;
mod memory;
mod stream;

pub(crate) use device::*;
pub(crate) use ipc::*;
pub(crate) use memory::*;
pub(crate) use stream::*;

/// Every driver function dlshare calls: checked at load time, so that an old driver gives
/// DEVICE_UNAVAILABLE instead of cudarc's panic on a missing symbol later.
pub(crate) const SYMBOLS: &[&str] = &[
    "cuInit",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxPushCurrent_v2",
    "cuCtxPopCurrent_v2",
    "cuCtxSynchronize",
    "cuCtxEnablePeerAccess",
    "cuDeviceCanAccessPeer",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuStreamWaitEvent",
    "cuEventCreate",
    "cuEventDestroy_v2",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventQuery",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuMemHostRegister_v2",
    "cuMemHostUnregister",
    "cuMemsetD8Async",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoDAsync_v2",
    "cuMemcpyPeerAsync",
    "cuPointerGetAttribute",
];

/// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
pub(crate) fn describe(code: CUresult) -> String {
    let (mut name, mut text): (*const c_char, *const c_char) = (std::ptr::null(), std::ptr::null());
    // SAFETY: both functions only write a pointer to a static string (or fail, leaving
    // NULL); the library is loaded whenever a CUresult exists.
    unsafe {
        sys::cuGetErrorName(code, &mut name);
        sys::cuGetErrorString(code, &mut text);
    }
    let read = |p: *const c_char| {
        // SAFETY: non-NULL pointers from the calls above are static NUL-terminated strings.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    match (read(name), read(text)) {
        (Some(n), Some(t)) => format!("{n} ({t})"),
        (Some(n), None) => n,
        _ => format!("{code:?}"),
    }
}

pub(crate) trait Check {
    fn check(self, what: &str) -> Result<()>;
}

impl Check for CUresult {
    fn check(self, what: &str) -> Result<()> {
        if self == CUresult::CUDA_SUCCESS {
            return Ok(());
        }
        let text = format!("{what} failed: {}", describe(self));
        Err(match self {
            CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                Error::OutOfMemory(format!("{text}; free memory or use a smaller tensor"))
            }
            _ => Error::Cuda(text),
        })
    }
}

// ---- the driver and its devices ----------------------------------------------------------

pub(crate) struct Driver {
    pub(crate) devices: Vec<OnceLock<Result<Dev>>>,
}

pub(crate) static DRIVER: OnceLock<std::result::Result<Driver, String>> = OnceLock::new();

pub(crate) fn driver() -> std::result::Result<&'static Driver, String> {
    DRIVER
        .get_or_init(|| {
            catch_unwind(load).unwrap_or_else(|_| {
                Err("loading the CUDA driver failed (the loader panicked)".into())
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

pub fn driver_state() -> std::result::Result<i32, String> {
    driver().map(|d| d.devices.len() as i32)
}

pub(crate) fn load() -> std::result::Result<Driver, String> {
    if std::env::var("DLSHARE_DISABLE_CUDA").is_ok_and(|v| !v.is_empty() && v != "0") {
        return Err("CUDA is turned off (DLSHARE_DISABLE_CUDA is set)".into());
    }
    // SAFETY: only tries to open the driver library under its usual names.
    if !unsafe { sys::is_culib_present() } {
        return Err(
            "no CUDA driver was found (libcuda.so could not be loaded); install the \
                    NVIDIA driver, or use the CPU"
                .into(),
        );
    }
    // SAFETY: the library was just found, so `culib` opens it (it panics only when absent).
    let lib = unsafe { sys::culib() };
    for name in SYMBOLS {
        // SAFETY: looks a symbol up without calling it.
        if unsafe { lib.get::<*const c_void>(name.as_bytes()) }.is_err() {
            return Err(format!(
                "the CUDA driver is too old: it has no {name}; dlshare needs a driver for \
                 CUDA 12.0 or newer"
            ));
        }
    }
    // SAFETY: cuInit may be called any number of times, from any thread.
    let r = unsafe { sys::cuInit(0) };
    if r != CUresult::CUDA_SUCCESS {
        return Err(format!(
            "the CUDA driver did not start: cuInit failed with {}",
            describe(r)
        ));
    }
    let mut count = 0;
    // SAFETY: writes the count into `count`.
    let r = unsafe { sys::cuDeviceGetCount(&mut count) };
    if r != CUresult::CUDA_SUCCESS {
        return Err(format!("cuDeviceGetCount failed with {}", describe(r)));
    }
    if count <= 0 {
        return Err("the CUDA driver reports no devices".into());
    }
    Ok(Driver {
        devices: (0..count).map(|_| OnceLock::new()).collect(),
    })
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
