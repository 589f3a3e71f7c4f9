//! The build without the `cuda` feature: every CUDA request says so.

use super::cuda_device;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::storage::Storage;

pub(crate) const WHY: &str = "this build of dlshare has no CUDA support (built without the `cuda` \
                   feature); rebuild with default features, or use the CPU";

pub fn driver_state() -> std::result::Result<i32, String> {
    Err(WHY.to_string())
}

pub fn check_device(_device: Device, doing: &str) -> Result<()> {
    Err(Error::DeviceUnavailable(format!("{doing}: {WHY}")))
}

pub fn alloc(device: Device, _nbytes: usize, _zeroed: bool) -> Result<Storage> {
    Err(Error::DeviceUnavailable(format!(
        "cannot allocate on {device}: {WHY}"
    )))
}

fn unavailable<T>(device_id: i32) -> Result<T> {
    Err(Error::DeviceUnavailable(format!(
        "{}: {WHY}",
        cuda_device(device_id)
    )))
}

pub fn synchronize(device_id: i32) -> Result<()> {
    unavailable(device_id)
}

pub fn stream(device_id: i32) -> Result<usize> {
    unavailable(device_id)
}

pub fn stream_wait(device_id: i32, _consumer: usize) -> Result<()> {
    unavailable(device_id)
}

pub fn memory_allocated(device_id: i32) -> Result<u64> {
    unavailable(device_id)
}

pub fn ipc_export(device_id: i32, _ptr: *const u8) -> Result<([u8; 64], u64, u64)> {
    Err(Error::DeviceUnavailable(format!(
        "cannot export {} memory for another process: {WHY}",
        cuda_device(device_id)
    )))
}

pub fn ipc_open(device_id: i32, _handle: &[u8; 64], _size: u64) -> Result<Storage> {
    Err(Error::DeviceUnavailable(format!(
        "cannot open {} memory of another process: {WHY}",
        cuda_device(device_id)
    )))
}
