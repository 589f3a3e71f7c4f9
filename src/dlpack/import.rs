//! Importing DLPack managed tensors (versioned and legacy): reading one as a `Source` with the
//! owner of its memory. Importing decides nothing; the caller converts the source
//! (`convert::convert`), which takes the owner when it shares or after it copied.
//!
//! Rules: the version is checked before anything else is read; ownership moves to dlshare only
//! when the conversion succeeds; the producer's deleter runs exactly once, when the last tensor
//! that shares the memory is dropped (or right after the copy, when the conversion copied).

use std::sync::Arc;

use super::{
    DLManagedTensor, DLManagedTensorVersioned, DLPACK_MAJOR_VERSION, DLTensor,
    FLAG_IS_SUBBYTE_TYPE_PADDED, FLAG_READ_ONLY,
};
use crate::error::{Error, Result};
use crate::layout;
use crate::source::Source;
use crate::storage::{Release, Storage};

/// A managed-tensor pointer that may travel to whichever thread drops the last owner.
struct Managed<T>(*mut T);
// SAFETY: DLPack deleters may be called from any thread (the spec puts no thread affinity on
// them); we call it exactly once.
unsafe impl<T> Send for Managed<T> {}
// SAFETY: the pointer is only used once, by the release action.
unsafe impl<T> Sync for Managed<T> {}

/// Checks the version of a versioned managed tensor, touching nothing else.
///
/// # Safety
/// `m` must point to a readable `DLManagedTensorVersioned` (at least its `version` field).
pub unsafe fn check_version(m: *const DLManagedTensorVersioned) -> Result<()> {
    // SAFETY: the caller guarantees `m` is readable; `version` is the first field of every
    // DLPack 1.x versioned struct and of any future major version.
    let version = unsafe { std::ptr::addr_of!((*m).version).read() };
    if version.major != DLPACK_MAJOR_VERSION {
        return Err(Error::UnsupportedVersion(format!(
            "the producer's DLPack major version is {}.{}, dlshare understands major {}; ask \
             the producer for max_version=({DLPACK_MAJOR_VERSION}, x) or for a legacy tensor",
            version.major, version.minor, DLPACK_MAJOR_VERSION
        )));
    }
    Ok(())
}

/// Describes a `DLTensor` as a `Source`.
///
/// # Safety
/// `t` must be a readable DLTensor whose `shape` (and `strides`, if not NULL) point to `ndim`
/// readable `int64_t`s.
pub unsafe fn source_of(t: &DLTensor, flags: u64) -> Result<Source> {
    if t.ndim < 0 || t.ndim as usize > layout::MAX_NDIM {
        return Err(Error::InvalidDlpack(format!(
            "ndim is {}; DLPack tensors have 0..={} dimensions",
            t.ndim,
            layout::MAX_NDIM
        )));
    }
    let ndim = t.ndim as usize;
    if ndim > 0 && t.shape.is_null() {
        return Err(Error::InvalidDlpack(format!(
            "shape is NULL but ndim is {ndim}; the producer must fill in the shape"
        )));
    }
    let shape: Vec<i64> = if ndim == 0 {
        Vec::new()
    } else {
        // SAFETY: non-NULL and holding `ndim` values per the caller's contract.
        unsafe { std::slice::from_raw_parts(t.shape, ndim) }.to_vec()
    };
    layout::numel(&shape).map_err(|e| Error::InvalidDlpack(e.message().to_string()))?;
    let strides: Vec<i64> = if t.strides.is_null() || ndim == 0 {
        // NULL strides mean compact row-major (the rule before DLPack 1.2; accepted always).
        layout::c_strides(&shape)
    } else {
        // SAFETY: non-NULL and holding `ndim` values per the caller's contract.
        unsafe { std::slice::from_raw_parts(t.strides, ndim) }.to_vec()
    };
    let dtype = crate::dtype::DType::from(t.dtype).validate()?;
    Ok(Source {
        data: t.data.cast(),
        byte_offset: t.byte_offset,
        dtype,
        byte_strides: layout::byte_strides_for(&shape, &strides, dtype.item_size())?,
        shape,
        device: t.device.into(),
        read_only: flags & FLAG_READ_ONLY != 0,
        byte_swapped: false,
        subbyte_padded: flags & FLAG_IS_SUBBYTE_TYPE_PADDED != 0,
    })
}

/// Describes a versioned managed tensor without taking it.
///
/// # Safety
/// `m` must point to a valid `DLManagedTensorVersioned` (see `source_of`).
pub unsafe fn source_of_versioned(m: *const DLManagedTensorVersioned) -> Result<Source> {
    // SAFETY: forwarded caller contract.
    unsafe {
        check_version(m)?;
        source_of(&(*m).dl_tensor, (*m).flags)
    }
}

/// Describes a legacy managed tensor without taking it (legacy tensors are writable).
///
/// # Safety
/// `m` must point to a valid `DLManagedTensor` (see `source_of`).
pub unsafe fn source_of_legacy(m: *const DLManagedTensor) -> Result<Source> {
    // SAFETY: forwarded caller contract.
    unsafe { source_of(&(*m).dl_tensor, 0) }
}

/// A managed tensor as read by `import_versioned` / `import_legacy`: the source it describes
/// and the owner of its memory.
pub struct Imported<T: 'static> {
    pub source: Source,
    pub owner: ManagedOwner<T>,
}

/// The owner of an imported managed tensor's memory. Taking it (`storage`) moves the managed
/// tensor into dlshare's care: its deleter runs once, when the storage is dropped. Dropping the
/// owner without taking it releases nothing: the managed tensor is still the caller's.
pub struct ManagedOwner<T: 'static> {
    managed: Managed<T>,
    deleter: Option<unsafe extern "C" fn(*mut T)>,
    data: *mut u8,
    device: crate::device::Device,
}

impl<T: 'static> ManagedOwner<T> {
    /// The storage that keeps the memory alive and calls the deleter when it is dropped.
    pub fn storage(self) -> Arc<Storage> {
        let (managed, deleter) = (self.managed, self.deleter);
        let release = Release::new(move || {
            let managed = managed;
            if let Some(deleter) = deleter {
                // SAFETY: the owner was taken, so dlshare owns the managed tensor, and a
                // Release runs at most once.
                unsafe { deleter(managed.0) };
            }
        });
        Arc::new(Storage::foreign(self.data, 0, self.device, release))
    }
}

/// `src` with the owner of `m`.
fn imported<T: 'static>(
    m: *mut T,
    deleter: Option<unsafe extern "C" fn(*mut T)>,
    source: Source,
) -> Imported<T> {
    let owner = ManagedOwner {
        managed: Managed(m),
        deleter,
        data: source.data,
        device: source.device,
    };
    Imported { source, owner }
}

/// Reads a versioned managed tensor. The caller still owns `m` until it takes the owner.
///
/// # Safety
/// `m` must point to a valid `DLManagedTensorVersioned` that the caller owns.
pub unsafe fn import_versioned(
    m: *mut DLManagedTensorVersioned,
) -> Result<Imported<DLManagedTensorVersioned>> {
    // SAFETY: forwarded caller contract; reading `deleter` copies a function pointer.
    let (src, deleter) = unsafe { (source_of_versioned(m)?, (*m).deleter) };
    Ok(imported(m, deleter, src))
}

/// Reads a legacy managed tensor. The caller still owns `m` until it takes the owner.
///
/// # Safety
/// `m` must point to a valid `DLManagedTensor` that the caller owns.
pub unsafe fn import_legacy(m: *mut DLManagedTensor) -> Result<Imported<DLManagedTensor>> {
    // SAFETY: forwarded caller contract; reading `deleter` copies a function pointer.
    let (src, deleter) = unsafe { (source_of_legacy(m)?, (*m).deleter) };
    Ok(imported(m, deleter, src))
}
