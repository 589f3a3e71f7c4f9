//! Tensor handles: creation, ownership, and accessors.

use std::ffi::c_void;

use super::handles::{self, dlshare_tensor};
use super::{boundary, dlshare_status, out};
use crate::dlpack::{
    DLDataType, DLDevice, DLTensor, FLAG_IS_COPIED, FLAG_IS_SUBBYTE_TYPE_PADDED, FLAG_READ_ONLY,
};
use crate::error::{Error, Result};
use crate::layout;
use crate::tensor::Tensor;

fn create(
    dtype: DLDataType,
    ndim: i32,
    shape: *const i64,
    device: DLDevice,
    zeroed: bool,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract of the public functions.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        if ndim < 0 || ndim as usize > layout::MAX_NDIM {
            return Err(Error::InvalidArgument(format!(
                "ndim is {ndim}; tensors have 0..={} dimensions",
                layout::MAX_NDIM
            )));
        }
        let dims: &[i64] = if ndim == 0 {
            &[]
        } else if shape.is_null() {
            return Err(Error::NullArgument(format!(
                "shape is NULL but ndim is {ndim}"
            )));
        } else {
            // SAFETY: documented contract: `shape` holds `ndim` values.
            unsafe { std::slice::from_raw_parts(shape, ndim as usize) }
        };
        let t = Tensor::empty(dtype.into(), dims, device.into(), zeroed)?;
        slot.write(handles::insert(t)?);
        Ok(())
    })
}

/// Creates a C-contiguous tensor with uninitialised contents, 256-byte aligned.
/// `*tensor_out` is a new handle owned by the caller (release with `dlshare_tensor_release`).
///
/// # Safety
/// `shape` holds `ndim` values (may be NULL when ndim == 0); `tensor_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_empty(
    dtype: DLDataType,
    ndim: i32,
    shape: *const i64,
    device: DLDevice,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    create(dtype, ndim, shape, device, false, tensor_out)
}

/// As `dlshare_tensor_empty`, filled with zeros.
///
/// # Safety
/// As `dlshare_tensor_empty`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_zeros(
    dtype: DLDataType,
    ndim: i32,
    shape: *const i64,
    device: DLDevice,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    create(dtype, ndim, shape, device, true, tensor_out)
}

/// Adds an owner to `tensor`: each retain needs one more `dlshare_tensor_release`.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_tensor_retain(tensor: *mut dlshare_tensor) -> dlshare_status {
    boundary(|| handles::retain(tensor))
}

/// Gives up one owner of `tensor`; the last release frees the handle (and, once no other
/// tensor or exported DLPack tensor uses it, the memory or the producer's deleter). NULL is
/// accepted and does nothing. Returns DLSHARE_ERR_INVALID_HANDLE for a handle that is not live.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_tensor_release(tensor: *mut dlshare_tensor) -> dlshare_status {
    if tensor.is_null() {
        return dlshare_status::DLSHARE_OK;
    }
    boundary(|| handles::release(tensor))
}

/// Reads one property of a live tensor into a checked output.
fn read<T>(
    tensor: *const dlshare_tensor,
    value_out: *mut T,
    name: &str,
    get: impl FnOnce(&Tensor) -> Result<T>,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract of the public accessors: the output is writable.
        let slot = unsafe { out(value_out, name)? };
        let t = handles::get(tensor)?;
        slot.write(get(&t)?);
        Ok(())
    })
}

/// Everything a binding needs in one call: `*dl_out` is a DLTensor describing the tensor
/// (`shape`/`strides` always filled, pointing into the tensor: valid while the handle lives,
/// never free them); `*flags_out` holds DLPACK_FLAG_BITMASK_* bits (READ_ONLY, IS_COPIED,
/// IS_SUBBYTE_TYPE_PADDED). `flags_out` may be NULL.
///
/// # Safety
/// `dl_out` writable; `flags_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_info(
    tensor: *const dlshare_tensor,
    dl_out: *mut DLTensor,
    flags_out: *mut u64,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(dl_out, "dl_out")? };
        let t = handles::get(tensor)?;
        let mut flags = 0;
        if t.is_read_only() {
            flags |= FLAG_READ_ONLY;
        }
        if t.is_copy() {
            flags |= FLAG_IS_COPIED;
        }
        if t.subbyte_padded {
            flags |= FLAG_IS_SUBBYTE_TYPE_PADDED;
        }
        // The Arc in the handle table keeps `t`'s shape and strides where they are.
        slot.write(DLTensor {
            data: t.raw_data().cast(),
            device: t.device().into(),
            ndim: t.ndim() as i32,
            dtype: t.dtype().into(),
            shape: t.shape().as_ptr().cast_mut(),
            strides: t.strides().as_ptr().cast_mut(),
            byte_offset: t.byte_offset(),
        });
        // SAFETY: documented contract: NULL or writable.
        if let Some(f) = unsafe { flags_out.as_mut() } {
            *f = flags;
        }
        Ok(())
    })
}

/// Number of dimensions.
///
/// # Safety
/// `ndim_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_ndim(
    tensor: *const dlshare_tensor,
    ndim_out: *mut i32,
) -> dlshare_status {
    read(tensor, ndim_out, "ndim_out", |t| Ok(t.ndim() as i32))
}

/// Borrowed pointer to the `ndim` extents (valid while the handle lives; never free it).
///
/// # Safety
/// `shape_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_shape(
    tensor: *const dlshare_tensor,
    shape_out: *mut *const i64,
) -> dlshare_status {
    read(tensor, shape_out, "shape_out", |t| Ok(t.shape().as_ptr()))
}

/// Borrowed pointer to the `ndim` strides **in elements** (valid while the handle lives).
///
/// # Safety
/// `strides_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_strides(
    tensor: *const dlshare_tensor,
    strides_out: *mut *const i64,
) -> dlshare_status {
    read(tensor, strides_out, "strides_out", |t| {
        Ok(t.strides().as_ptr())
    })
}

/// Element type.
///
/// # Safety
/// `dtype_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_dtype(
    tensor: *const dlshare_tensor,
    dtype_out: *mut DLDataType,
) -> dlshare_status {
    read(tensor, dtype_out, "dtype_out", |t| Ok(t.dtype().into()))
}

/// Device of the memory.
///
/// # Safety
/// `device_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_device(
    tensor: *const dlshare_tensor,
    device_out: *mut DLDevice,
) -> dlshare_status {
    read(tensor, device_out, "device_out", |t| Ok(t.device().into()))
}

/// Address of the first element (DLPack `data + byte_offset`). Owned by the tensor.
///
/// # Safety
/// `data_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_data(
    tensor: *const dlshare_tensor,
    data_out: *mut *mut c_void,
) -> dlshare_status {
    read(tensor, data_out, "data_out", |t| Ok(t.data_ptr().cast()))
}

/// The DLPack `byte_offset` of the tensor (0 for tensors dlshare allocated).
///
/// # Safety
/// `byte_offset_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_byte_offset(
    tensor: *const dlshare_tensor,
    byte_offset_out: *mut u64,
) -> dlshare_status {
    read(tensor, byte_offset_out, "byte_offset_out", |t| {
        Ok(t.byte_offset())
    })
}

/// Bytes the elements occupy (number of elements x item size).
///
/// # Safety
/// `nbytes_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_nbytes(
    tensor: *const dlshare_tensor,
    nbytes_out: *mut u64,
) -> dlshare_status {
    read(tensor, nbytes_out, "nbytes_out", |t| {
        // A broadcast (zero-stride) tensor may have up to INT64_MAX elements in a few bytes of
        // memory: its byte count can overflow 64 bits. Refuse that instead of wrapping.
        let fits = |per: u64| t.numel().checked_mul(per).is_some();
        if !fits(t.dtype().total_bits()) || !fits(t.dtype().item_size() as u64) {
            return Err(Error::Overflow(format!(
                "the byte count of {} {} elements overflows 64 bits (a broadcast view); use \
                 the element count and item size instead",
                t.numel(),
                t.dtype()
            )));
        }
        Ok(t.nbytes())
    })
}

/// Whether the tensor must not be written.
///
/// # Safety
/// `read_only_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_is_read_only(
    tensor: *const dlshare_tensor,
    read_only_out: *mut bool,
) -> dlshare_status {
    read(tensor, read_only_out, "read_only_out", |t| {
        Ok(t.is_read_only())
    })
}

/// Whether the tensor is C-contiguous (row-major; axes of extent 1 ignored).
///
/// # Safety
/// `contiguous_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_is_c_contiguous(
    tensor: *const dlshare_tensor,
    contiguous_out: *mut bool,
) -> dlshare_status {
    read(tensor, contiguous_out, "contiguous_out", |t| {
        Ok(t.is_c_contiguous())
    })
}

/// Whether the tensor is Fortran-contiguous (column-major; axes of extent 1 ignored).
///
/// # Safety
/// `contiguous_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_is_f_contiguous(
    tensor: *const dlshare_tensor,
    contiguous_out: *mut bool,
) -> dlshare_status {
    read(tensor, contiguous_out, "contiguous_out", |t| {
        Ok(t.is_f_contiguous())
    })
}

/// Whether writes through one tensor can be seen through the other: the same storage, or
/// overlapping memory on the same device (however each reached dlshare).
///
/// # Safety
/// `shared_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_shares_memory(
    a: *const dlshare_tensor,
    b: *const dlshare_tensor,
    shared_out: *mut bool,
) -> dlshare_status {
    read(a, shared_out, "shared_out", |ta| {
        Ok(ta.shares_memory_with(&*handles::get(b)?))
    })
}
