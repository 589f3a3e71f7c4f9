//! Copies between host, pinned and CUDA device memory (docs/design.md, "CUDA"), above the
//! tensor model: each copy allocates its output tensor and moves the data with the driver,
//! the streams and the staging buffers of `cuda`, packing strided layouts, byte swaps and casts
//! with the CPU kernels.
//!
//! Pageable host memory goes through each device's pinned staging buffers: the CPU kernels pack
//! the next buffer while the previous one is on its way; device -> host runs the same pipeline
//! backwards. Pinned host memory is copied directly. Layout changes and casts of device data go
//! through the host.

use std::sync::Arc;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::source::Source;
use crate::storage::Storage;
use crate::tensor::Tensor;

#[cfg(feature = "cuda")]
mod device_to_device;
#[cfg(feature = "cuda")]
mod device_to_host;
#[cfg(feature = "cuda")]
mod dispatch;
#[cfg(feature = "cuda")]
mod host_to_device;
#[cfg(feature = "cuda")]
mod pieces;

#[cfg(feature = "cuda")]
use {
    crate::cuda::driver::*, crate::device::device_type, crate::kernels, crate::layout,
    cudarc::driver::sys, device_to_device::*, device_to_host::*, host_to_device::*, pieces::*,
    std::ffi::c_void, std::sync::OnceLock,
};

/// Copies `src` into a new C-contiguous tensor of `to` on `dest`, where the source or the
/// destination is CUDA or pinned memory (`convert` does plain CPU copies itself). `stream`:
/// a `CUstream` of the CUDA side to order the copy on, or `None` for dlshare's own stream and a
/// copy complete on return. `owner` is called once the copy no longer needs the source memory
/// (right away, or when an asynchronous copy on `stream` has finished); never on error.
pub(crate) fn copy(
    src: &Source,
    to: DType,
    dest: Device,
    stream: Option<usize>,
    owner: impl FnOnce() -> Arc<Storage>,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    {
        dispatch::copy(src, to, dest, stream, owner)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (to, stream, owner);
        Err(crate::error::Error::DeviceUnavailable(format!(
            "copying from {} to {dest}: {}",
            src.device,
            crate::cuda::NO_CUDA
        )))
    }
}
