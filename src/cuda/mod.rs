//! CUDA devices (docs/design.md, "CUDA"): the driver, device and pinned memory, and the streams
//! that DLPack's stream handoff needs. The copies between host and devices are in `transfer`,
//! above the tensor model; this module sits below it (it hands out `Storage`, never a `Tensor`).
//!
//! The driver API is loaded at run time (cudarc, `dynamic-loading`, API pinned to CUDA 12.0):
//! building needs no CUDA toolkit, and without a driver or a GPU every CUDA request returns
//! `Error::DeviceUnavailable` with the reason (no call into a missing library, no panic). With
//! the `cuda` feature off, the same functions exist and say that the build has no CUDA.
//!
//! - Contexts: each device's primary context (the one PyTorch and CuPy use), retained once for
//!   the life of the process. Every call pushes it and pops it again: the caller's current
//!   context is left as it was.
//! - Memory: device storage (`kDLCUDA`) from `cuMemAlloc`, freed with `cuMemFree` in its own
//!   device's context when the last owner drops (`cuMemFree` waits for work still using it);
//!   pinned host storage (`kDLCUDAHost`) from `cuMemHostAlloc`, portable to every context.
//! - Streams: each device has one dlshare stream (non-blocking). It carries every dependency
//!   dlshare knows of: its own copies, copies issued on a caller's stream (chained in with an
//!   event), and a producer's pending work on tensors imported through the Python binding
//!   (which passes this stream as `__dlpack__(stream=...)`). Handing a tensor to a consumer's
//!   stream records an event on it and makes the consumer's stream wait (`stream_wait`).
//! - Copies without a stream run on the dlshare stream and are complete when the call returns.
//!   With the caller's stream they are ordered on that stream, after dlshare's pending work, and
//!   may still be running when the call returns; a source they still read is kept alive until
//!   they finish (released by a later dlshare call on that device or `synchronize`). Copies to
//!   host memory always finish before returning.
//! - Pageable host memory goes through pinned staging buffers (4 x 8 MiB per device by default,
//!   `DLSHARE_CUDA_CHUNK_MB` changes the size): the CPU copy kernels pack the next buffer
//!   (strided layouts, byte swaps and casts happen in that packing) while the previous one is
//!   on its way (pipelined on the stream); device -> host runs the same pipeline backwards.
//!   Pinned host memory is copied directly. `DLSHARE_CUDA_PAGEABLE=register` pins the pageable
//!   buffer for the copy instead (cuMemHostRegister), for comparison in the GPU benchmark.
//! - Layout changes and casts of device data go through the host: the source's byte span comes
//!   down, is packed (and cast) by the CPU kernels, and goes back up.
//! - `DLSHARE_DISABLE_CUDA=1` makes CUDA unavailable (to run the no-GPU checks on a GPU host).

use crate::device::{Device, device_type};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// Whether CUDA can be used: a driver was found and reports at least one device.
pub fn available() -> bool {
    imp::driver_state().is_ok()
}

/// Why CUDA cannot be used (`None` when it can).
pub fn unavailable_reason() -> Option<String> {
    imp::driver_state().err()
}

/// Number of CUDA devices; `DeviceUnavailable` (saying why) when CUDA cannot be used.
pub fn device_count() -> Result<i32> {
    imp::driver_state().map_err(|why| Error::DeviceUnavailable(format!("no CUDA devices: {why}")))
}

/// Checks that `device` (a `kDLCUDA` or `kDLCUDAHost` device) can be used, starting its context.
/// `doing` opens the message: "cannot allocate on cuda:0", "copying to cuda:1 needs a CUDA device".
fn check_device(device: Device, doing: &str) -> Result<()> {
    imp::check_device(device, doing)
}

/// Whether a conversion between these devices involves a CUDA device (so a stream applies).
pub(crate) fn involves_cuda(from: Device, to: Device) -> bool {
    from.device_type == device_type::CUDA || to.device_type == device_type::CUDA
}

/// For the decision: can dlshare copy from `from` to `to` when one of them is not plain CPU
/// memory? Errors name the device and why.
pub(crate) fn check_copy(from: Device, to: Device) -> Result<()> {
    match from.device_type {
        device_type::CUDA => {
            check_device(from, &format!("copying from {from} needs a CUDA device"))?
        }
        _ if from.is_host_accessible() => {}
        _ => {
            return Err(Error::DeviceUnavailable(format!(
                "copying from {from} is not supported: dlshare copies from memory the CPU reads \
                 and from CUDA devices"
            )));
        }
    }
    match to.device_type {
        device_type::CPU => Ok(()),
        device_type::CUDA | device_type::CUDA_HOST => {
            check_device(to, &format!("copying to {to} needs a CUDA device"))
        }
        _ => Err(Error::DeviceUnavailable(format!(
            "copying to {to} is not supported: dlshare copies to cpu, cuda:N and cuda_host:N \
             (pinned) memory"
        ))),
    }
}

/// Checks that dlshare can allocate on `device` (not the CPU): a usable CUDA device, or pinned
/// host memory (`cuda_host:N`) with CUDA device N usable.
pub(crate) fn check_alloc(device: Device) -> Result<()> {
    match device.device_type {
        device_type::CUDA | device_type::CUDA_HOST => {
            check_device(device, &format!("cannot allocate on {device}"))
        }
        _ => Err(Error::DeviceUnavailable(format!(
            "cannot allocate on {device}: dlshare allocates CPU, CUDA (cuda:N) and pinned \
             (cuda_host:N) memory"
        ))),
    }
}

/// Allocates `nbytes` on a CUDA device (`kDLCUDA`) or as pinned host memory (`kDLCUDAHost`),
/// zeroed when asked.
pub(crate) fn alloc(device: Device, nbytes: usize, zeroed: bool) -> Result<Storage> {
    check_alloc(device)?;
    imp::alloc(device, nbytes, zeroed)
}

/// Waits for all work on CUDA device `device_id` (dlshare's and that of other libraries in its
/// primary context), then releases the sources that asynchronous copies kept alive.
pub fn synchronize(device_id: i32) -> Result<()> {
    imp::synchronize(device_id)
}

/// dlshare's stream on `device_id` (a `CUstream`), for producers asked to make their work
/// visible to dlshare (`__dlpack__(stream=...)`) and for callers that enqueue after it.
pub fn stream(device_id: i32) -> Result<usize> {
    imp::stream(device_id)
}

/// DLPack stream handoff (Array API `__dlpack__(stream=...)`): makes `consumer` wait for all
/// work dlshare has issued on `device_id` (an event recorded on dlshare's stream, waited on by
/// the consumer's stream), without blocking the host. `consumer` is 1 (legacy default stream),
/// 2 (per-thread default stream), a `CUstream`, or -1 (no synchronisation); 0 is refused as
/// ambiguous, as the standard says.
pub fn stream_wait(device_id: i32, consumer: i64) -> Result<()> {
    if consumer == -1 {
        return Ok(());
    }
    if consumer == 0 || consumer < -1 {
        return Err(Error::InvalidArgument(format!(
            "stream {consumer} is not a CUDA stream for the DLPack handoff: use 1 (legacy \
             default stream), 2 (per-thread default stream), a cudaStream_t, or -1 (no \
             synchronisation); 0 is ambiguous and disallowed by the Array API standard"
        )));
    }
    imp::stream_wait(device_id, consumer as usize)
}

/// Bytes of device memory that dlshare allocations hold on `device_id` right now.
pub fn memory_allocated(device_id: i32) -> Result<u64> {
    imp::memory_allocated(device_id)
}

fn cuda_device(device_id: i32) -> Device {
    Device::cuda(device_id)
}

/// CUDA IPC (issue 15): the handle of the allocation holding device pointer `ptr` on
/// `device_id`, `ptr`'s offset in it and the allocation's size. DEVICE_UNAVAILABLE without CUDA.
pub fn ipc_export(device_id: i32, ptr: *const u8) -> Result<([u8; 64], u64, u64)> {
    check_device(cuda_device(device_id), "CUDA IPC needs a CUDA device")?;
    imp::ipc_export(device_id, ptr)
}

/// Opens another process's IPC handle on `device_id`: a storage over the whole allocation of
/// `size` bytes (refused when the driver's size differs). DEVICE_UNAVAILABLE without CUDA.
pub fn ipc_open(device_id: i32, handle: &[u8; 64], size: u64) -> Result<Storage> {
    check_device(cuda_device(device_id), "CUDA IPC needs a CUDA device")?;
    imp::ipc_open(device_id, handle, size)
}

#[cfg(not(feature = "cuda"))]
mod disabled;
#[cfg(feature = "cuda")]
pub(crate) mod driver;

#[cfg(not(feature = "cuda"))]
use disabled as imp;
#[cfg(feature = "cuda")]
use driver as imp;

/// Why CUDA requests fail in a build without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub(crate) use disabled::WHY as NO_CUDA;
