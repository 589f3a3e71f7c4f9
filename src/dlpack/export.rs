//! Exporting tensors as DLPack managed tensors. The exported struct owns a reference to the
//! tensor's storage and its own shape/strides arrays; the consumer's call to `deleter` frees
//! all of it (exactly once; calling it twice is the consumer's bug, as everywhere in DLPack).

use super::{
    DLManagedTensor, DLManagedTensorVersioned, DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION,
    DLPackVersion, DLTensor, FLAG_IS_COPIED, FLAG_IS_SUBBYTE_TYPE_PADDED, FLAG_READ_ONLY,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Everything an exported managed tensor points into, freed by its deleter.
struct Export<M> {
    managed: M,
    shape: Vec<i64>,
    strides: Vec<i64>,
    _tensor: Tensor,
}

fn dl_tensor(t: &Tensor, shape: &mut [i64], strides: &mut [i64]) -> DLTensor {
    DLTensor {
        data: t.raw_data().cast(),
        device: t.device().into(),
        ndim: t.ndim() as i32,
        dtype: t.dtype().into(),
        shape: if shape.is_empty() {
            std::ptr::null_mut()
        } else {
            shape.as_mut_ptr()
        },
        strides: if strides.is_empty() {
            std::ptr::null_mut()
        } else {
            strides.as_mut_ptr()
        },
        byte_offset: t.byte_offset(),
    }
}

/// Boxes the export (which keeps `t`), lets `fill` set the managed struct, and leaks it to the
/// consumer.
fn leak<M>(t: Tensor, managed: M, fill: impl FnOnce(&mut M, DLTensor, *mut Export<M>)) -> *mut M {
    let export = Box::into_raw(Box::new(Export {
        managed,
        shape: t.shape().to_vec(),
        strides: t.strides().to_vec(),
        _tensor: t,
    }));
    // SAFETY: `export` is a fresh, valid allocation that we own until it is handed out below.
    let e = unsafe { &mut *export };
    let dl = dl_tensor(&e._tensor, &mut e.shape, &mut e.strides);
    fill(&mut e.managed, dl, export);
    std::ptr::addr_of_mut!(e.managed)
}

unsafe extern "C" fn delete_versioned(m: *mut DLManagedTensorVersioned) {
    if m.is_null() {
        return;
    }
    // SAFETY: `manager_ctx` was set to the Box that holds `m`, by `to_versioned`; the consumer
    // calls the deleter once.
    drop(unsafe { Box::from_raw((*m).manager_ctx.cast::<Export<DLManagedTensorVersioned>>()) });
}

unsafe extern "C" fn delete_legacy(m: *mut DLManagedTensor) {
    if m.is_null() {
        return;
    }
    // SAFETY: as in `delete_versioned`, set by `to_legacy`.
    drop(unsafe { Box::from_raw((*m).manager_ctx.cast::<Export<DLManagedTensor>>()) });
}

/// Exports as a versioned (DLPack 1.3) managed tensor sharing `t`'s memory; flags carry
/// READ_ONLY and IS_SUBBYTE_TYPE_PADDED. Never IS_COPIED: the caller's tensor still refers to
/// the memory, so the consumer is not its sole owner (see `into_versioned`). Strides are always
/// filled in.
pub fn to_versioned(t: &Tensor) -> *mut DLManagedTensorVersioned {
    versioned(t.clone(), false)
}

/// Exports a tensor the caller gives up. IS_COPIED is set when it is a copy dlshare made and
/// nothing else refers to its storage: then the consumer is the memory's sole owner, which is
/// what the flag promises.
pub fn into_versioned(t: Tensor) -> *mut DLManagedTensorVersioned {
    let sole = t.is_copy() && std::sync::Arc::strong_count(&t.storage) == 1;
    versioned(t, sole)
}

fn versioned(t: Tensor, is_copied: bool) -> *mut DLManagedTensorVersioned {
    let mut flags = 0;
    if t.is_read_only() {
        flags |= FLAG_READ_ONLY;
    }
    if is_copied {
        flags |= FLAG_IS_COPIED;
    }
    if t.subbyte_padded {
        flags |= FLAG_IS_SUBBYTE_TYPE_PADDED;
    }
    let blank = DLManagedTensorVersioned {
        version: DLPackVersion {
            major: DLPACK_MAJOR_VERSION,
            minor: DLPACK_MINOR_VERSION,
        },
        manager_ctx: std::ptr::null_mut(),
        deleter: Some(delete_versioned),
        flags,
        dl_tensor: dl_tensor(&t, &mut [], &mut []),
    };
    leak(t, blank, |m, dl, ctx| {
        m.dl_tensor = dl;
        m.manager_ctx = ctx.cast();
    })
}

/// What a versioned export of a shared tensor (`share_versioned`) owns.
struct SharedExport {
    managed: DLManagedTensorVersioned,
    tensor: std::sync::Arc<Tensor>,
}

/// Exports a tensor held behind an `Arc` (a handle's) as a versioned managed tensor in one
/// allocation: the shape and strides arrays are the tensor's own, which the export keeps alive
/// and nobody mutates. Flags as `to_versioned` (never IS_COPIED). Used by the DLPack C exchange
/// API, where the export is the whole per-call cost.
pub fn share_versioned(t: std::sync::Arc<Tensor>) -> *mut DLManagedTensorVersioned {
    let mut flags = 0;
    if t.is_read_only() {
        flags |= FLAG_READ_ONLY;
    }
    if t.subbyte_padded {
        flags |= FLAG_IS_SUBBYTE_TYPE_PADDED;
    }
    let export = Box::into_raw(Box::new(SharedExport {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion {
                major: DLPACK_MAJOR_VERSION,
                minor: DLPACK_MINOR_VERSION,
            },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(delete_shared),
            flags,
            dl_tensor: dl_tensor(&t, &mut [], &mut []),
        },
        tensor: t,
    }));
    // SAFETY: `export` is a fresh allocation owned here until it is handed out; the arrays
    // pointed to belong to the Arc'd tensor the export holds (the consumer only reads them).
    unsafe {
        let e = &mut *export;
        let ptr = |v: &[i64]| {
            if v.is_empty() {
                std::ptr::null_mut()
            } else {
                v.as_ptr().cast_mut()
            }
        };
        e.managed.dl_tensor.shape = ptr(&e.tensor.shape);
        e.managed.dl_tensor.strides = ptr(&e.tensor.strides);
        e.managed.manager_ctx = export.cast();
        std::ptr::addr_of_mut!(e.managed)
    }
}

unsafe extern "C" fn delete_shared(m: *mut DLManagedTensorVersioned) {
    if m.is_null() {
        return;
    }
    // SAFETY: `manager_ctx` is the Box made by `share_versioned`; the consumer calls the
    // deleter once.
    drop(unsafe { Box::from_raw((*m).manager_ctx.cast::<SharedExport>()) });
}

/// Exports as a legacy managed tensor. Refused for read-only tensors: the legacy format cannot
/// say read-only, so the consumer would write into memory it must not.
pub fn to_legacy(t: &Tensor) -> Result<*mut DLManagedTensor> {
    if t.is_read_only() {
        return Err(Error::ReadOnly(
            "a read-only tensor cannot be exported as a legacy DLManagedTensor (it has no \
             read-only flag); export it versioned, or copy it first"
                .into(),
        ));
    }
    if t.dtype().is_subbyte() && t.subbyte_padded {
        return Err(Error::UnsupportedDtype(format!(
            "a padded {} tensor needs the versioned format's IS_SUBBYTE_TYPE_PADDED flag; export \
             it versioned",
            t.dtype()
        )));
    }
    let blank = DLManagedTensor {
        dl_tensor: dl_tensor(t, &mut [], &mut []),
        manager_ctx: std::ptr::null_mut(),
        deleter: Some(delete_legacy),
    };
    Ok(leak(t.clone(), blank, |m, dl, ctx| {
        m.dl_tensor = dl;
        m.manager_ctx = ctx.cast();
    }))
}
