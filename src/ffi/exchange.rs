//! DLPack 1.3's C exchange API, consumer side, for C and C++ callers: import an object through
//! the table its producer publishes (`__dlpack_c_exchange_api__`), with every part of the table
//! checked first. The Python package's own consumers (src/ffi/pyext/exchange.rs and
//! `_producers.check_exchange_table`) apply the same checks.

use std::ffi::c_void;

use super::convert::{deciding, dlshare_decision, dlshare_options, options_from};
use super::handles::{self, dlshare_tensor};
use super::{arg, dlshare_status, out};
use crate::convert;
use crate::dlpack::{DLManagedTensorVersioned, DLPackExchangeAPI, import};
use crate::error::Error;

/// Imports `py_object` (a `PyObject *`) through its producer's DLPack 1.3 exchange API table
/// `api` per `options` (NULL = SHARE_OR_COPY): the table is checked (non-NULL, major version 1,
/// `managed_tensor_from_py_object_no_sync` set), the producer's function is called, and the
/// managed tensor it hands out is imported as by `dlshare_tensor_from_dlpack`. The caller holds
/// the GIL (the producer's function runs Python's C API); no stream synchronisation is done.
/// **Ownership**: the managed tensor the producer hands out is dlshare's: imported, or freed
/// with its deleter before this function returns on failure. `*tensor_out` is a new handle
/// owned by the caller; untouched on failure. When the producer's function fails, its Python
/// exception (if any) stays set for the caller.
///
/// # Safety
/// `api` NULL or a valid table whose functions follow DLPack 1.3; `py_object` a live object of
/// the producer's type (or NULL, refused); `options` NULL or valid; `tensor_out` and
/// `decision_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_exchange_api(
    api: *const DLPackExchangeAPI,
    py_object: *mut c_void,
    options: *const dlshare_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let (table, slot) = unsafe { (arg(api, "api")?, out(tensor_out, "tensor_out")?) };
        if table.version.major != 1 {
            return Err(Error::UnsupportedVersion(format!(
                "the DLPack exchange API table is version {}.{}; dlshare reads major version 1",
                table.version.major, table.version.minor
            )));
        }
        let Some(from_py_object) = table.managed_tensor_from_py_object_no_sync else {
            return Err(Error::InvalidDlpack(
                "managed_tensor_from_py_object_no_sync is NULL in the exchange API table \
                 (DLPack 1.3 requires it)"
                    .into(),
            ));
        };
        if py_object.is_null() {
            return Err(Error::NullArgument("py_object is NULL".into()));
        }
        let opts = options_from(options)?;
        let reservation = handles::reserve()?;
        let mut managed: *mut DLManagedTensorVersioned = std::ptr::null_mut();
        // SAFETY: the producer's function with its documented arguments (GIL held by the
        // caller, per this function's contract).
        let status = unsafe { from_py_object(py_object, &mut managed) };
        if status != 0 {
            return Err(Error::InvalidDlpack(format!(
                "the producer's managed_tensor_from_py_object_no_sync failed (returned \
                 {status}); its Python exception, if any, is set"
            )));
        }
        if managed.is_null() {
            return Err(Error::InvalidDlpack(
                "the producer's managed_tensor_from_py_object_no_sync returned 0 but no \
                 managed tensor"
                    .into(),
            ));
        }
        // SAFETY: the producer handed the managed tensor over; it is imported (then owned by
        // the new tensor) or deleted below, exactly once.
        let result = unsafe { import::import_versioned(managed) }.and_then(|imported| {
            convert::convert(&imported.source, &opts, || imported.owner.storage())
        });
        match result {
            Ok((tensor, decision)) => {
                slot.write(reservation.fill(tensor));
                Ok(decision)
            }
            Err(e) => {
                // SAFETY: a failed import leaves the managed tensor ours; its deleter (when
                // set) frees it, once.
                unsafe {
                    if let Some(deleter) = (*managed).deleter {
                        deleter(managed);
                    }
                }
                Err(e)
            }
        }
    })
}
