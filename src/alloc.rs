//! Allocation on any device: CPU memory from `storage`, CUDA device and pinned host memory from
//! `cuda`. The device dispatch the tensor model needs, kept out of it.

use crate::cuda;
use crate::device::{Device, device_type};
use crate::error::Result;
use crate::storage::Storage;

/// Checks that dlshare can allocate on `device` (validated): always on the CPU; for CUDA and
/// pinned memory, starts the device's context or says why it cannot.
pub(crate) fn check(device: Device) -> Result<()> {
    if device.device_type == device_type::CPU {
        return Ok(());
    }
    cuda::check_alloc(device)
}

/// `nbytes` of fresh memory on `device` (validated, `check`ed), zeroed when asked.
pub(crate) fn alloc(device: Device, nbytes: usize, zeroed: bool) -> Result<Storage> {
    if device.device_type == device_type::CPU {
        Storage::alloc_cpu(nbytes, zeroed)
    } else {
        cuda::alloc(device, nbytes, zeroed)
    }
}
