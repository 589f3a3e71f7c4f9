//! DLPack import and export through the C API.

use super::convert::{deciding, dlshare_decision, dlshare_options, options_from};
use super::handles::{self, dlshare_tensor};
use super::{arg, boundary, dlshare_status, out};
use crate::convert;
use crate::dlpack::{DLManagedTensor, DLManagedTensorVersioned, export, import};

/// Imports a versioned (DLPack 1.x) managed tensor per `options` (NULL = SHARE_OR_COPY).
///
/// The major version is checked first; any other major is refused with
/// DLSHARE_ERR_UNSUPPORTED_VERSION, reading nothing but `version`.
/// **Ownership**: on success dlshare owns `managed` and `*tensor_out` is a new handle owned by
/// the caller; `managed->deleter` runs exactly once — when the last tensor sharing the memory is
/// released, or before this function returns if it copied. On failure the caller still owns
/// `managed` (it may retry or call its deleter) and `*tensor_out` is untouched.
/// A READ_ONLY tensor is shared only with `allow_read_only` (as a read-only tensor); NULL strides
/// mean compact row-major; NULL data is accepted only for zero-size tensors.
///
/// # Safety
/// `managed` must be a valid managed tensor the caller owns; `options` NULL or valid;
/// `decision_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_dlpack(
    managed: *mut DLManagedTensorVersioned,
    options: *const dlshare_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let slot = unsafe {
            arg(managed, "managed")?;
            out(tensor_out, "tensor_out")?
        };
        let opts = options_from(options)?;
        let reservation = handles::reserve()?;
        // SAFETY: `managed` is a valid managed tensor the caller owns. It is passed on as the
        // caller's own pointer (not one derived from a shared reference): the deleter frees
        // through it.
        let imported = unsafe { import::import_versioned(managed)? };
        let (tensor, decision) =
            convert::convert(&imported.source, &opts, || imported.owner.storage())?;
        slot.write(reservation.fill(tensor));
        Ok(decision)
    })
}

/// Imports a legacy (unversioned) managed tensor; as `dlshare_tensor_from_dlpack`. Legacy
/// tensors are writable (the format cannot say read-only).
///
/// # Safety
/// As `dlshare_tensor_from_dlpack`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_dlpack_legacy(
    managed: *mut DLManagedTensor,
    options: *const dlshare_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let slot = unsafe {
            arg(managed, "managed")?;
            out(tensor_out, "tensor_out")?
        };
        let opts = options_from(options)?;
        let reservation = handles::reserve()?;
        // SAFETY: `managed` is a valid managed tensor the caller owns. It is passed on as the
        // caller's own pointer (not one derived from a shared reference): the deleter frees
        // through it.
        let imported = unsafe { import::import_legacy(managed)? };
        let (tensor, decision) =
            convert::convert(&imported.source, &opts, || imported.owner.storage())?;
        slot.write(reservation.fill(tensor));
        Ok(decision)
    })
}

/// Says what `dlshare_tensor_from_dlpack` would do, taking nothing and calling no deleter.
///
/// # Safety
/// `managed` valid; `options` NULL or valid; `decision_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_explain_dlpack(
    managed: *const DLManagedTensorVersioned,
    options: *const dlshare_options,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let m = unsafe {
            out(decision_out, "decision_out")?;
            arg(managed, "managed")?
        };
        // Options first, as the import reads them: both report the same error first.
        let opts = options_from(options)?;
        // SAFETY: `m` is valid.
        let src = unsafe { import::source_of_versioned(m)? };
        convert::decide(&src, &opts)
    })
}

/// Says what `dlshare_tensor_from_dlpack_legacy` would do, taking nothing.
///
/// # Safety
/// `managed` valid; `options` NULL or valid; `decision_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_explain_dlpack_legacy(
    managed: *const DLManagedTensor,
    options: *const dlshare_options,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let m = unsafe {
            out(decision_out, "decision_out")?;
            arg(managed, "managed")?
        };
        // Options first, as the import reads them: both report the same error first.
        let opts = options_from(options)?;
        // SAFETY: `m` is valid.
        let src = unsafe { import::source_of_legacy(m)? };
        convert::decide(&src, &opts)
    })
}

/// Exports a tensor as a versioned DLPack 1.3 managed tensor sharing its memory (no copy).
///
/// **Ownership**: `*managed_out` belongs to the consumer, who must call its `deleter` exactly
/// once; until then the memory stays alive even if every dlshare handle is released. Flags:
/// READ_ONLY for read-only tensors; never IS_COPIED, since the caller's handle still refers to
/// the memory (`dlshare_tensor_to_dlpack_copy` exports a copy the consumer owns alone).
/// `strides` is always filled in. The tensor handle stays owned by the caller.
///
/// # Safety
/// `managed_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_to_dlpack(
    tensor: *const dlshare_tensor,
    managed_out: *mut *mut DLManagedTensorVersioned,
) -> dlshare_status {
    // SAFETY: forwarded contract.
    unsafe { export_versioned(tensor, managed_out, |t| Ok(export::to_versioned(t))) }
}

/// A versioned export of the tensor behind a handle, made by `make`, written to `managed_out`.
///
/// # Safety
/// `managed_out` writable.
unsafe fn export_versioned(
    tensor: *const dlshare_tensor,
    managed_out: *mut *mut DLManagedTensorVersioned,
    make: impl FnOnce(&crate::tensor::Tensor) -> crate::error::Result<*mut DLManagedTensorVersioned>,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(managed_out, "managed_out")? };
        let t = handles::get(tensor)?;
        slot.write(make(&t)?);
        Ok(())
    })
}

/// Exports a fresh copy of a tensor (C-contiguous, same dtype, same device except that pinned
/// or managed host memory is copied to ordinary CPU memory) as a versioned DLPack
/// 1.3 managed tensor with IS_COPIED set: no dlshare handle refers to the copy, so the consumer
/// is its sole owner and may write it freely (the Array API's `__dlpack__(copy=True)`). The
/// copy is complete when this returns; it is writable even when `tensor` is read-only.
/// **Ownership** as for `dlshare_tensor_to_dlpack`; the tensor handle stays owned by the caller.
///
/// # Safety
/// `managed_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_to_dlpack_copy(
    tensor: *const dlshare_tensor,
    managed_out: *mut *mut DLManagedTensorVersioned,
) -> dlshare_status {
    // SAFETY: forwarded contract.
    unsafe {
        export_versioned(tensor, managed_out, |t| {
            let copy_mode = convert::Options::new(convert::Mode::Copy).allowing_read_only();
            let (copy, _) = convert::convert_tensor(t, &copy_mode)?;
            Ok(export::into_versioned(copy))
        })
    }
}

/// Exports a tensor as a legacy DLPack managed tensor; as `dlshare_tensor_to_dlpack`. A
/// read-only tensor is refused with DLSHARE_ERR_READ_ONLY (the legacy format cannot say
/// read-only; NumPy refuses the same way): export it versioned instead.
///
/// # Safety
/// `managed_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_to_dlpack_legacy(
    tensor: *const dlshare_tensor,
    managed_out: *mut *mut DLManagedTensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(managed_out, "managed_out")? };
        let t = handles::get(tensor)?;
        slot.write(export::to_legacy(&t)?);
        Ok(())
    })
}
