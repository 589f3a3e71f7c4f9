//! Shared-memory storage: CPU tensors whose memory other processes can map.
//!
//! A shared storage is an anonymous memory file (`memfd_create`) mapped `MAP_SHARED`. It has no
//! name in any file system (nothing under /dev/shm to leak): the kernel frees its pages when the
//! last file descriptor and the last mapping of it are gone, in whatever process, including one
//! that was killed. Each shared storage keeps one descriptor open (the one it can be described
//! by, so that every process holding it can pass it on); a process holding N shared storages
//! has N descriptors of them open.
//!
//! The file is sealed against shrinking and growing (`F_SEAL_SHRINK | F_SEAL_GROW`, then
//! `F_SEAL_SEAL`) before it is mapped: no process can truncate it under another's mapping, which
//! would turn reads into SIGBUS. An import refuses a descriptor without those seals, a size that
//! does not match the file, and a layout that reaches outside it.
//!
//! A process finds its shared storages again by address (`REGISTRY`): that is how a tensor is
//! recognised as shared (`is_shared`) and described (`describe`) without changing `Storage`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout;
use crate::storage::{Release, Storage};
use crate::tensor::Tensor;

/// Shared storages alive in this process: mapping address -> (descriptor, mapped length).
static REGISTRY: Mutex<Option<HashMap<usize, (i32, usize)>>> = Mutex::new(None);

fn registry() -> std::sync::MutexGuard<'static, Option<HashMap<usize, (i32, usize)>>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The name the memory files carry (`/proc/PID/fd` shows `/memfd:dlshare (deleted)`).
pub const MEMFD_NAME: &str = "dlshare";

/// Where a shared tensor's elements are: everything another process needs to map them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The memory file (owned by the storage: valid while the tensor lives).
    pub fd: i32,
    /// Bytes from the start of the file to the element at index (0, ..., 0).
    pub offset: u64,
    /// The size of the file in bytes (the whole mapping).
    pub size: u64,
    pub dtype: DType,
    pub shape: Vec<i64>,
    /// Element strides.
    pub strides: Vec<i64>,
    pub read_only: bool,
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Maps `len` bytes of `fd` shared, writable unless `read_only`. `None`-free: an error names the
/// OS's reason.
#[cfg(target_os = "linux")]
fn map(fd: i32, len: usize, read_only: bool) -> Result<usize> {
    let prot = if read_only {
        libc::PROT_READ
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    // SAFETY: a new shared mapping of a file we hold; no existing memory is affected.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(Error::OutOfMemory(os_error(&format!(
            "could not map {len} bytes of shared memory; free memory or raise the limits"
        ))));
    }
    Ok(p as usize)
}

/// A storage over the mapping `[start, start + len)` of `fd`, registered as shared; the storage
/// owns both and gives them back when it is dropped.
#[cfg(target_os = "linux")]
fn storage_over(fd: i32, start: usize, len: usize, nbytes: usize) -> Storage {
    registry()
        .get_or_insert_with(HashMap::new)
        .insert(start, (fd, len));
    let release = Release::new(move || {
        if let Some(map) = registry().as_mut() {
            map.remove(&start);
        }
        // SAFETY: the mapping and the descriptor belong to this storage alone, which nothing
        // uses any more; each is given back once, here.
        unsafe {
            libc::munmap(start as *mut libc::c_void, len);
            libc::close(fd);
        }
    });
    Storage::foreign(start as *mut u8, nbytes, Device::CPU, release)
}

/// Closes a descriptor on an error path.
#[cfg(target_os = "linux")]
struct FdGuard(i32);

#[cfg(target_os = "linux")]
impl FdGuard {
    fn keep(self) -> i32 {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

#[cfg(target_os = "linux")]
impl Drop for FdGuard {
    fn drop(&mut self) {
        // SAFETY: a descriptor this module opened and nothing else owns.
        unsafe { libc::close(self.0) };
    }
}

/// Bytes of `numel(shape)` elements of `dtype`, checked.
fn nbytes_of(dtype: DType, shape: &[i64]) -> Result<usize> {
    let dtype = dtype.validate()?;
    if dtype.is_subbyte() {
        return Err(Error::UnsupportedDtype(format!(
            "cannot allocate {dtype} tensors: sub-byte types can only be shared"
        )));
    }
    let n = layout::numel(shape)?;
    n.checked_mul(dtype.item_size() as u64)
        .and_then(|b| usize::try_from(b).ok())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::Overflow(format!(
                "{n} elements of {dtype} do not fit in the address space"
            ))
        })
}

/// A new storage of `nbytes` in a sealed memory file (zero-filled: a new file reads as zeros).
#[cfg(target_os = "linux")]
pub fn alloc(nbytes: usize) -> Result<Storage> {
    let name = std::ffi::CString::new(MEMFD_NAME).expect("no NUL in the name");
    // SAFETY: `name` is NUL-terminated; the flags are valid.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(Error::OutOfMemory(os_error(
            "could not create a shared-memory file (memfd_create; at the open-file limit? \
             release shared tensors or raise `ulimit -n`)",
        )));
    }
    let guard = FdGuard(fd);
    // A zero-byte mapping is not allowed: an empty tensor still gets one page.
    let len = nbytes.max(1).next_multiple_of(page_size());
    // SAFETY: `fd` is the memory file just made.
    if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
        return Err(Error::OutOfMemory(os_error(&format!(
            "could not size a shared-memory file to {len} bytes"
        ))));
    }
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: as above; sealing only restricts later changes to the file.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(Error::OutOfMemory(os_error(
            "could not seal a shared-memory file",
        )));
    }
    let start = map(fd, len, false)?;
    Ok(storage_over(guard.keep(), start, len, nbytes))
}

#[cfg(not(target_os = "linux"))]
pub fn alloc(_nbytes: usize) -> Result<Storage> {
    Err(Error::UnsupportedDevice(
        "shared-memory tensors need Linux (memfd_create)".into(),
    ))
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// A new C-contiguous tensor in shared memory (always zero-filled: fresh memory files read as
/// zeros, so `zeros` and `empty` cost the same).
pub fn empty(dtype: DType, shape: &[i64]) -> Result<Tensor> {
    let nbytes = nbytes_of(dtype, shape)?;
    Ok(Tensor::over_owned(alloc(nbytes)?, dtype, shape.to_vec()))
}

/// The (descriptor, mapped length, mapping start) of the shared storage under `t`, if any.
fn lookup(t: &Tensor) -> Option<(i32, usize, usize)> {
    let start = t.storage.ptr() as usize;
    let map = registry();
    let &(fd, len) = map.as_ref()?.get(&start)?;
    Some((fd, len, start))
}

/// Whether `t`'s memory is in shared memory that `describe` can hand to another process.
pub fn is_shared(t: &Tensor) -> bool {
    lookup(t).is_some()
}

/// `t` itself when its storage is shared already; otherwise a C-contiguous copy of its elements
/// in shared memory (same dtype, shape and read-only flag).
pub fn share(t: &Tensor) -> Result<Tensor> {
    if is_shared(t) {
        return Ok(t.clone());
    }
    if !t.device().is_host_accessible() {
        return Err(Error::UnsupportedDevice(format!(
            "a {} tensor cannot be moved to shared CPU memory; copy it to the CPU first, or pass \
             it to another process through CUDA IPC",
            t.device()
        )));
    }
    let nbytes = nbytes_of(t.dtype, &t.shape)?;
    let storage = alloc(nbytes)?;
    let byte_strides = layout::byte_strides(&t.strides, t.dtype.item_size())?;
    let src = crate::kernels::Source {
        ptr: t.data_ptr(),
        dtype: t.dtype,
        shape: &t.shape,
        byte_strides: &byte_strides,
        byte_swapped: false,
    };
    // SAFETY: the mapping holds `nbytes` writable bytes (at least: it is rounded up to pages)
    // and nothing else sees it yet.
    let dst = unsafe { std::slice::from_raw_parts_mut(storage.ptr(), nbytes) };
    // SAFETY: `t` is a valid tensor whose storage is alive for the call; `dst` holds exactly
    // numel * item_size bytes.
    unsafe { crate::kernels::copy_to_contiguous(&src, dst, t.dtype)? };
    let mut out = Tensor::over_owned(storage, t.dtype, t.shape.clone());
    out.read_only = t.read_only;
    out.subbyte_padded = t.subbyte_padded;
    Ok(out)
}

/// The cross-process description of a shared tensor; `InvalidArgument` (with what to do) when
/// the tensor is not in shared memory.
pub fn describe(t: &Tensor) -> Result<Description> {
    let Some((fd, len, start)) = lookup(t) else {
        return Err(Error::InvalidArgument(
            "the tensor is not in shared memory; make it with shared=True \
             (dlshare_tensor_empty_shared) or move it there first (share_memory / \
             dlshare_tensor_share_memory)"
                .into(),
        ));
    };
    let offset = (t.data_ptr() as usize).wrapping_sub(start) as u64;
    Ok(Description {
        fd,
        offset,
        size: len as u64,
        dtype: t.dtype,
        shape: t.shape.clone(),
        strides: t.strides.clone(),
        read_only: t.read_only,
    })
}

/// Maps the tensor a description names. The descriptor is duplicated: the caller keeps (and
/// closes) its own. Refused with a message: a descriptor that is not open, not a sealed memory
/// file, a size other than the file's, a layout outside the file or misaligned, a bad dtype.
#[cfg(target_os = "linux")]
pub fn import(d: &Description) -> Result<Tensor> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if d.fd < 0 {
        return bad(format!(
            "fd {} is not a file descriptor; pass the fd of the description (received from the \
             producer process)",
            d.fd
        ));
    }
    let dtype = d.dtype.validate()?;
    if dtype.is_subbyte() {
        return Err(Error::UnsupportedDtype(format!(
            "{dtype} (sub-byte) tensors cannot cross processes; convert them to a whole-byte type"
        )));
    }
    if d.shape.len() > layout::MAX_NDIM || d.strides.len() != d.shape.len() {
        return bad(format!(
            "{} dimensions with {} strides: a description needs as many strides as dimensions, \
             at most {}",
            d.shape.len(),
            d.strides.len(),
            layout::MAX_NDIM
        ));
    }
    if let Some(n) = d.shape.iter().find(|&&n| n < 0) {
        return bad(format!("extent {n} in shape {:?} is negative", d.shape));
    }
    // SAFETY: a zeroed stat buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only reads the descriptor number and writes `st`.
    if unsafe { libc::fstat(d.fd, &mut st) } != 0 {
        return bad(os_error(&format!(
            "fd {} cannot be used (closed, or never received in this process)",
            d.fd
        )));
    }
    // SAFETY: F_GET_SEALS only reads the descriptor's file.
    let seals = unsafe { libc::fcntl(d.fd, libc::F_GET_SEALS) };
    let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    if seals < 0 || seals & needed != needed {
        return bad(format!(
            "fd {} is not a dlshare shared-memory file (a memory file sealed against shrinking \
             and growing): it could change size under the mapping; export it with \
             dlshare_shm_export",
            d.fd
        ));
    }
    let file_size = st.st_size as u64;
    if d.size != file_size || file_size == 0 {
        return bad(format!(
            "the description's size is {} bytes but the shared-memory file of fd {} has {} \
             bytes: a stale or forged description",
            d.size, d.fd, file_size
        ));
    }
    let len = usize::try_from(file_size).map_err(|_| {
        Error::Overflow(format!(
            "a {file_size}-byte file does not fit the address space"
        ))
    })?;
    let item = dtype.item_size();
    let byte_strides = layout::byte_strides(&d.strides, item)?;
    let (lo, hi) = layout::byte_extent(&d.shape, &byte_strides, item)?;
    let offset = i128::from(d.offset);
    if layout::numel(&d.shape)? > 0
        && (offset + i128::from(lo) < 0 || offset + i128::from(hi) > i128::from(d.size))
    {
        return bad(format!(
            "shape {:?} with strides {:?} at offset {} reaches bytes [{}, {}) of a {}-byte \
             shared-memory file: outside it",
            d.shape,
            d.strides,
            d.offset,
            offset + i128::from(lo),
            offset + i128::from(hi),
            d.size
        ));
    }
    if d.offset > d.size
        || !d
            .offset
            .is_multiple_of(dtype.alignment().next_power_of_two() as u64)
    {
        return bad(format!(
            "offset {} is outside the {}-byte file or not aligned to {} (alignment {})",
            d.offset,
            d.size,
            dtype,
            dtype.alignment()
        ));
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates an open descriptor (checked by fstat above).
    let fd = unsafe { libc::fcntl(d.fd, libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::OutOfMemory(os_error(
            "could not duplicate the shared-memory fd (at the open-file limit? release shared \
             tensors or raise `ulimit -n`)",
        )));
    }
    let guard = FdGuard(fd);
    let start = map(fd, len, d.read_only)?;
    let storage = storage_over(guard.keep(), start, len, len);
    let data = (start as *mut u8).wrapping_add(d.offset as usize);
    Ok(Tensor {
        storage: Arc::new(storage),
        data,
        byte_offset: 0,
        dtype,
        shape: d.shape.clone(),
        strides: d.strides.clone(),
        read_only: d.read_only,
        is_copy: false,
        subbyte_padded: false,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn import(_d: &Description) -> Result<Tensor> {
    Err(Error::UnsupportedDevice(
        "shared-memory tensors need Linux (memfd_create)".into(),
    ))
}

/// Where a CUDA tensor's elements are, for another process: the CUDA IPC handle of the device
/// allocation holding them, the offset of element (0, ..., 0) in it, its size, and the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaDescription {
    pub handle: [u8; 64],
    pub device_id: i32,
    pub offset: u64,
    pub size: u64,
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
    pub read_only: bool,
}

/// The CUDA IPC description of a device tensor (`kDLCUDA`). dlshare's pending work on the device
/// is finished first, so the receiver sees the values. DEVICE_UNAVAILABLE without CUDA.
pub fn describe_cuda(t: &Tensor) -> Result<CudaDescription> {
    let device = t.device();
    if device.device_type != crate::device::device_type::CUDA {
        return Err(Error::UnsupportedDevice(format!(
            "CUDA IPC describes CUDA device tensors; this one is on {device} (CPU tensors cross \
             processes in shared memory: dlshare_shm_export)"
        )));
    }
    crate::cuda::synchronize(device.device_id)?;
    let (handle, offset, size) = crate::cuda::ipc_export(device.device_id, t.data_ptr())?;
    Ok(CudaDescription {
        handle,
        device_id: device.device_id,
        offset,
        size,
        dtype: t.dtype,
        shape: t.shape.clone(),
        strides: t.strides.clone(),
        read_only: t.read_only,
    })
}

/// Opens a CUDA IPC description from another process: the layout is checked against the
/// allocation's size before anything is opened; the allocation's size against the driver's
/// after. DEVICE_UNAVAILABLE without CUDA.
pub fn import_cuda(d: &CudaDescription) -> Result<Tensor> {
    let dtype = d.dtype.validate()?;
    if d.shape.len() > layout::MAX_NDIM || d.strides.len() != d.shape.len() {
        return Err(Error::InvalidArgument(format!(
            "{} dimensions with {} strides: at most {} dimensions, one stride each",
            d.shape.len(),
            d.strides.len(),
            layout::MAX_NDIM
        )));
    }
    if let Some(n) = d.shape.iter().find(|&&n| n < 0) {
        return Err(Error::InvalidArgument(format!(
            "extent {n} in shape {:?} is negative",
            d.shape
        )));
    }
    let item = dtype.item_size();
    let (lo, hi) = layout::byte_extent(&d.shape, &layout::byte_strides(&d.strides, item)?, item)?;
    let offset = i128::from(d.offset);
    if layout::numel(&d.shape)? > 0
        && (offset + i128::from(lo) < 0 || offset + i128::from(hi) > i128::from(d.size))
    {
        return Err(Error::InvalidArgument(format!(
            "shape {:?} with strides {:?} at offset {} reaches outside the {}-byte CUDA \
             allocation",
            d.shape, d.strides, d.offset, d.size
        )));
    }
    let storage = crate::cuda::ipc_open(d.device_id, &d.handle, d.size)?;
    let data = storage.ptr().wrapping_add(d.offset as usize);
    Ok(Tensor {
        storage: Arc::new(storage),
        data,
        byte_offset: 0,
        dtype,
        shape: d.shape.clone(),
        strides: d.strides.clone(),
        read_only: d.read_only,
        is_copy: false,
        subbyte_padded: false,
    })
}

#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn shared_tensors_describe_and_import_the_same_pages() {
        let t = empty(DType::F32, &[3, 4]).unwrap();
        assert!(is_shared(&t));
        let d = describe(&t).unwrap();
        assert_eq!((d.offset, d.size), (0, page_size() as u64));
        let u = import(&d).unwrap();
        assert!(!t.shares_storage_with(&u));
        // SAFETY: both map the same 48 bytes of the file, which the tensors keep alive.
        unsafe {
            *t.data_ptr().cast::<f32>().add(5) = 2.5;
            assert_eq!(*u.data_ptr().cast::<f32>().add(5), 2.5);
        }
        let mut forged = d.clone();
        forged.size += 4096;
        assert!(
            import(&forged)
                .unwrap_err()
                .message()
                .contains("stale or forged")
        );
        let not_shared = Tensor::empty(DType::F32, &[2], Device::CPU, true).unwrap();
        assert!(!is_shared(&not_shared));
        assert!(is_shared(&share(&not_shared).unwrap()));
        assert!(share(&t).unwrap().shares_storage_with(&t));
    }
}
