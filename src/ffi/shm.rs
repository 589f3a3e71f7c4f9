//! Tensors in shared memory, and their description for another process (src/shm.rs).

use super::handles::{self, dlshare_tensor};
use super::{arg, boundary, dlshare_status, out};
use crate::dlpack::DLDataType;
use crate::error::{Error, Result};
use crate::layout;
use crate::shm;

/// Where a shared-memory tensor's elements are, for another process: a memory file (`fd`,
/// Linux `memfd_create`, sealed against resizing), the byte `offset` of the element at index
/// (0, ..., 0) in it, the file's `size`, and the layout.
///
/// Ownership: in a description filled by `dlshare_shm_export`, `fd`, `shape` and `strides`
/// belong to the tensor and stay valid while the tensor's handle lives; never close or free
/// them. To hand the tensor to another process, send `fd` with `SCM_RIGHTS` over a Unix socket
/// (or let the child inherit it) and the other fields as plain values. The receiver imports
/// with `dlshare_shm_import`, then closes the descriptor it received (the import keeps a
/// duplicate of its own). The memory is freed when the last process releases its last tensor
/// over it and closes its descriptors; a process that dies gives its share back with it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_shm_desc {
    /// The memory file's descriptor, in the process that uses this description.
    pub fd: i32,
    /// Bytes from the start of the file to the element at index (0, ..., 0).
    pub offset: u64,
    /// The file's size in bytes (`dlshare_shm_import` refuses any other value).
    pub size: u64,
    pub dtype: DLDataType,
    pub ndim: i32,
    /// `ndim` extents (may be NULL when ndim == 0).
    pub shape: *const i64,
    /// `ndim` strides in elements (as DLPack), or NULL for C-contiguous.
    pub strides: *const i64,
    /// The tensor must not be written (the importer maps the file read-only).
    pub read_only: bool,
}

/// Creates a C-contiguous tensor in shared memory, filled with zeros (a new memory file reads
/// as zeros: this costs no more than uninitialised memory). `*tensor_out` is a new handle owned
/// by the caller. The tensor holds one file descriptor until released. Linux only (elsewhere:
/// DLSHARE_ERR_UNSUPPORTED_DEVICE).
///
/// # Safety
/// `shape` holds `ndim` values (may be NULL when ndim == 0); `tensor_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_empty_shared(
    dtype: DLDataType,
    ndim: i32,
    shape: *const i64,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        // SAFETY: documented contract: `shape` holds `ndim` values.
        let dims = unsafe { dims(ndim, shape, "shape")? }.unwrap_or_default();
        slot.write(handles::insert(shm::empty(dtype.into(), &dims)?)?);
        Ok(())
    })
}

/// `tensor` in shared memory: a new handle to the same storage when it is there already (no
/// copy), otherwise a C-contiguous copy of its elements in a new shared-memory file (same
/// dtype, shape and read-only flag). `*tensor_out` is a new handle owned by the caller. CUDA
/// tensors are refused (DLSHARE_ERR_UNSUPPORTED_DEVICE): they cross processes through CUDA IPC.
///
/// # Safety
/// `tensor_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_share_memory(
    tensor: *const dlshare_tensor,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        let t = handles::get(tensor)?;
        slot.write(handles::insert(shm::share(&t)?)?);
        Ok(())
    })
}

/// `*shared_out` = whether `tensor`'s memory is in shared memory that `dlshare_shm_export`
/// can describe.
///
/// # Safety
/// `shared_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_is_shared_memory(
    tensor: *const dlshare_tensor,
    shared_out: *mut bool,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(shared_out, "shared_out")? };
        let t = handles::get(tensor)?;
        slot.write(shm::is_shared(&t));
        Ok(())
    })
}

/// Fills `*desc_out` with the cross-process description of a shared-memory tensor. The
/// descriptor, `shape` and `strides` in it are the tensor's own (see `dlshare_shm_desc`): valid
/// while the handle lives; do not close or free them. A tensor not in shared memory gives
/// DLSHARE_ERR_INVALID_ARGUMENT (move it there with `dlshare_tensor_share_memory`).
///
/// # Safety
/// `desc_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_shm_export(
    tensor: *const dlshare_tensor,
    desc_out: *mut dlshare_shm_desc,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(desc_out, "desc_out")? };
        let t = handles::get(tensor)?;
        let d = shm::describe(&t)?;
        // The handle table's Arc keeps `t`'s shape and strides where they are.
        slot.write(dlshare_shm_desc {
            fd: d.fd,
            offset: d.offset,
            size: d.size,
            dtype: d.dtype.into(),
            ndim: t.ndim() as i32,
            shape: t.shape().as_ptr(),
            strides: t.strides().as_ptr(),
            read_only: d.read_only,
        });
        Ok(())
    })
}

/// Maps the tensor that `desc` describes (made by `dlshare_shm_export`, in this or another
/// process) and returns a new handle to it in `*tensor_out`, owned by the caller: writes through
/// it are seen by every process that maps the same file. `desc->fd` is not taken: the tensor
/// keeps a duplicate, and the caller closes its own when it likes. Refused, with a message and
/// nothing opened or mapped: a descriptor that is not open (DLSHARE_ERR_INVALID_ARGUMENT), not
/// a sealed shared-memory file, a `size` other than the file's (a stale or forged description),
/// a layout that reaches outside the file or is misaligned, bad dtypes (UNSUPPORTED_DTYPE),
/// too many dimensions.
///
/// # Safety
/// `desc` readable, with `shape` (and `strides` when not NULL) holding `ndim` values;
/// `tensor_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_shm_import(
    desc: *const dlshare_shm_desc,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        // SAFETY: documented contract.
        let d = unsafe { arg(desc, "desc")? };
        // SAFETY: documented contract: `shape` (and `strides` when not NULL) hold `ndim` values.
        let (shape, strides) = unsafe { desc_layout(d.ndim, d.shape, d.strides)? };
        let t = shm::import(&shm::Description {
            fd: d.fd,
            offset: d.offset,
            size: d.size,
            dtype: d.dtype.into(),
            shape,
            strides,
            read_only: d.read_only,
        })?;
        slot.write(handles::insert(t)?);
        Ok(())
    })
}

/// A description's shape and element strides (C order when `strides` is NULL).
///
/// # Safety
/// `shape` (and `strides` when not NULL) hold `ndim` values.
unsafe fn desc_layout(
    ndim: i32,
    shape: *const i64,
    strides: *const i64,
) -> Result<(Vec<i64>, Vec<i64>)> {
    // SAFETY: forwarded contract.
    let shape = unsafe { dims(ndim, shape, "desc->shape")? }.unwrap_or_default();
    // SAFETY: forwarded contract, for `strides` when not NULL.
    let strides = match unsafe { dims(ndim, strides, "")? } {
        Some(s) => s,
        None => layout::c_strides(&shape),
    };
    Ok((shape, strides))
}

/// `ndim` values at `p`: `None` for NULL when `name` is empty (optional), an error for NULL
/// otherwise (unless `ndim == 0`).
///
/// # Safety
/// `p`, when not NULL, holds `ndim` values.
unsafe fn dims(ndim: i32, p: *const i64, name: &str) -> Result<Option<Vec<i64>>> {
    if ndim < 0 || ndim as usize > layout::MAX_NDIM {
        return Err(Error::InvalidArgument(format!(
            "ndim is {ndim}; tensors have 0..={} dimensions",
            layout::MAX_NDIM
        )));
    }
    if p.is_null() {
        if ndim == 0 {
            return Ok(Some(Vec::new()));
        }
        if name.is_empty() {
            return Ok(None);
        }
        return Err(Error::NullArgument(format!(
            "{name} is NULL but ndim is {ndim}"
        )));
    }
    // SAFETY: forwarded contract.
    Ok(Some(
        unsafe { std::slice::from_raw_parts(p, ndim as usize) }.to_vec(),
    ))
}

/// Where a CUDA device tensor's elements are, for another process (CUDA IPC): the IPC handle
/// of the device allocation that holds them (`cuIpcGetMemHandle`), `device_id`, the byte
/// `offset` of element (0, ..., 0) in the allocation, the allocation's `size`, and the layout.
///
/// Ownership: `handle` is plain bytes (copy it to the other process as it is); `shape` and
/// `strides` in a description filled by `dlshare_cuda_ipc_export` belong to the tensor (valid
/// while its handle lives). The exporting process must keep the tensor alive until every
/// importer has released its tensors: the memory is the exporter's, and CUDA frees it when the
/// exporter frees it. The importer's tensor closes its mapping (`cuIpcCloseMemHandle`) when
/// released. A handle can be opened once per process, and not in the process that made it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_cuda_ipc_desc {
    /// The CUDA IPC memory handle (`CUipcMemHandle`, 64 bytes).
    pub handle: [u8; 64],
    pub device_id: i32,
    /// Bytes from the start of the allocation to the element at index (0, ..., 0).
    pub offset: u64,
    /// The allocation's size in bytes (`dlshare_cuda_ipc_import` refuses any other value).
    pub size: u64,
    pub dtype: DLDataType,
    pub ndim: i32,
    /// `ndim` extents (may be NULL when ndim == 0).
    pub shape: *const i64,
    /// `ndim` strides in elements, or NULL for C-contiguous.
    pub strides: *const i64,
    pub read_only: bool,
}

/// Fills `*desc_out` with the CUDA IPC description of a CUDA device tensor, after finishing
/// dlshare's pending work on its device. DLSHARE_ERR_DEVICE_UNAVAILABLE without CUDA (no such
/// tensor can exist then), DLSHARE_ERR_UNSUPPORTED_DEVICE for a tensor not in CUDA device
/// memory, DLSHARE_ERR_CUDA when the driver refuses (memory not from `cuMemAlloc`).
///
/// # Safety
/// `desc_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_cuda_ipc_export(
    tensor: *const dlshare_tensor,
    desc_out: *mut dlshare_cuda_ipc_desc,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(desc_out, "desc_out")? };
        let t = handles::get(tensor)?;
        let d = shm::describe_cuda(&t)?;
        slot.write(dlshare_cuda_ipc_desc {
            handle: d.handle,
            device_id: d.device_id,
            offset: d.offset,
            size: d.size,
            dtype: d.dtype.into(),
            ndim: t.ndim() as i32,
            shape: t.shape().as_ptr(),
            strides: t.strides().as_ptr(),
            read_only: d.read_only,
        });
        Ok(())
    })
}

/// Opens the CUDA tensor that `desc` (from `dlshare_cuda_ipc_export` in another process)
/// describes; `*tensor_out` is a new handle owned by the caller, over the exporter's device
/// memory. DLSHARE_ERR_DEVICE_UNAVAILABLE without CUDA; a layout outside the allocation, a
/// size other than the allocation's (stale or forged) or bad dtypes are refused with a message;
/// DLSHARE_ERR_CUDA when the driver refuses the handle.
///
/// # Safety
/// `desc` readable, with `shape` (and `strides` when not NULL) holding `ndim` values;
/// `tensor_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_cuda_ipc_import(
    desc: *const dlshare_cuda_ipc_desc,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        // SAFETY: documented contract.
        let d = unsafe { arg(desc, "desc")? };
        // SAFETY: documented contract: `shape` (and `strides` when not NULL) hold `ndim` values.
        let (shape, strides) = unsafe { desc_layout(d.ndim, d.shape, d.strides)? };
        let t = shm::import_cuda(&shm::CudaDescription {
            handle: d.handle,
            device_id: d.device_id,
            offset: d.offset,
            size: d.size,
            dtype: d.dtype.into(),
            shape,
            strides,
            read_only: d.read_only,
        })?;
        slot.write(handles::insert(t)?);
        Ok(())
    })
}
