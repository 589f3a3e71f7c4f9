//! CUDA: availability, device count, synchronisation and the DLPack stream handoff
//! (docs/design.md, "CUDA"). Device tensors themselves go through the ordinary functions: a
//! `kDLCUDA` (or pinned `kDLCUDAHost`) device in `dlshare_tensor_empty`, in
//! `dlshare_options.device`, or on an imported tensor; `dlshare_options.stream` orders a copy on
//! the caller's stream.
//! Without a CUDA driver or device (or in a build without the `cuda` feature) every CUDA
//! request returns DLSHARE_ERR_DEVICE_UNAVAILABLE, and the message says why.

use std::ffi::c_void;

use super::{boundary, dlshare_status, guarded, out};
use crate::cuda;

/// Whether CUDA can be used: a driver was found and reports at least one device. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_cuda_available() -> bool {
    guarded(false, cuda::available)
}

/// Number of CUDA devices. DLSHARE_ERR_DEVICE_UNAVAILABLE when CUDA cannot be used (no driver,
/// no device, or a build without CUDA); the message says which.
///
/// # Safety
/// `count_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_cuda_device_count(count_out: *mut i32) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(count_out, "count_out")? };
        slot.write(cuda::device_count()?);
        Ok(())
    })
}

/// Waits until all work on CUDA device `device_id` has finished (dlshare's, and that of other
/// libraries using the device's primary context, as `torch.cuda.synchronize` does), then
/// releases the sources that copies issued on a caller's stream kept alive.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_cuda_synchronize(device_id: i32) -> dlshare_status {
    boundary(|| cuda::synchronize(device_id))
}

/// The DLPack stream handoff (`__dlpack__(stream=...)` of the Array API standard): makes the
/// consumer's stream wait for all work dlshare has queued on device `device_id`: an event
/// recorded on dlshare's stream, waited on by `consumer_stream`, without blocking the host.
/// Call it before handing a CUDA tensor's memory to code that runs on `consumer_stream`.
/// `consumer_stream`: 1 = the legacy default stream, 2 = the per-thread default stream, any
/// other positive value = a `CUstream`/`cudaStream_t` of that device, -1 = no synchronisation
/// (returns DLSHARE_OK at once). 0 is ambiguous and refused (DLSHARE_ERR_INVALID_ARGUMENT).
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_cuda_stream_wait(device_id: i32, consumer_stream: i64) -> dlshare_status {
    boundary(|| cuda::stream_wait(device_id, consumer_stream))
}

/// dlshare's own stream on device `device_id` (a `CUstream`): pass it to a producer's
/// `__dlpack__(stream=...)` so that its pending work is ordered before dlshare's, or enqueue
/// work after dlshare's on it. Owned by dlshare; never destroy it.
///
/// # Safety
/// `stream_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_cuda_stream(
    device_id: i32,
    stream_out: *mut *mut c_void,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(stream_out, "stream_out")? };
        slot.write(cuda::stream(device_id)? as *mut c_void);
        Ok(())
    })
}

/// Bytes of device memory held by dlshare's own allocations on device `device_id` (tensors it
/// allocated or copied there, not imported ones), for leak checks.
///
/// # Safety
/// `bytes_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_cuda_memory_allocated(
    device_id: i32,
    bytes_out: *mut u64,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let slot = unsafe { out(bytes_out, "bytes_out")? };
        slot.write(cuda::memory_allocated(device_id)?);
        Ok(())
    })
}
