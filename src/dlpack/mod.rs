//! `repr(C)` mirrors of the DLPack 1.3 ABI, with compile-time size and offset checks, plus the
//! importer (`import.rs`) and exporter (`export.rs`).
//!
//! The C declarations of these types live in `cbindgen.toml` (emitted into `include/dlshare.h`
//! under upstream's include guard); the C tests assert the same sizes and offsets.

use std::ffi::c_void;
use std::mem::{offset_of, size_of};

/// cbindgen:ignore
pub mod export;
/// cbindgen:ignore
pub mod import;

/// cbindgen:ignore
pub const DLPACK_MAJOR_VERSION: u32 = 1;
/// cbindgen:ignore
pub const DLPACK_MINOR_VERSION: u32 = 3;

/// Bit 0 of `DLManagedTensorVersioned::flags`: the consumer must not write.
/// cbindgen:ignore
pub const FLAG_READ_ONLY: u64 = 1 << 0;
/// Bit 1: the producer made a copy that the consumer owns alone.
/// cbindgen:ignore
pub const FLAG_IS_COPIED: u64 = 1 << 1;
/// Bit 2: sub-byte elements are padded to one byte each.
/// cbindgen:ignore
pub const FLAG_IS_SUBBYTE_TYPE_PADDED: u64 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DLPackVersion {
    pub major: u32,
    pub minor: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DLDevice {
    /// A `DLDeviceType` value (a C enum, 32 bits).
    pub device_type: i32,
    pub device_id: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DLDataType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DLTensor {
    pub data: *mut c_void,
    pub device: DLDevice,
    pub ndim: i32,
    pub dtype: DLDataType,
    pub shape: *mut i64,
    pub strides: *mut i64,
    pub byte_offset: u64,
}

#[repr(C)]
pub struct DLManagedTensor {
    pub dl_tensor: DLTensor,
    pub manager_ctx: *mut c_void,
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

#[repr(C)]
pub struct DLManagedTensorVersioned {
    pub version: DLPackVersion,
    pub manager_ctx: *mut c_void,
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    pub flags: u64,
    pub dl_tensor: DLTensor,
}

/// The exchange API's import: a managed tensor of the Python object `py_object`, written to
/// `out`; 0 on success.
pub type DLPackManagedTensorFromPyObjectNoSync = unsafe extern "C" fn(
    py_object: *mut c_void,
    out: *mut *mut DLManagedTensorVersioned,
) -> std::ffi::c_int;

/// DLPack 1.3's C exchange API table (`DLPackExchangeAPI`, published by a Python type as the
/// `__dlpack_c_exchange_api__` capsule named `dlpack_exchange_api`). Only
/// `managed_tensor_from_py_object_no_sync` is called (by the CPython fast path); the other
/// entries are declared as opaque pointers to keep the layout. The C declaration is in the
/// header's DLPack section (cbindgen.toml), which the Python package reads through cffi.
#[repr(C)]
pub struct DLPackExchangeAPI {
    /// `DLPackExchangeAPIHeader.version`.
    pub version: DLPackVersion,
    /// `DLPackExchangeAPIHeader.prev_api`.
    pub prev_api: *mut c_void,
    pub managed_tensor_allocator: *mut c_void,
    pub managed_tensor_from_py_object_no_sync: Option<DLPackManagedTensorFromPyObjectNoSync>,
    pub managed_tensor_to_py_object_no_sync: *mut c_void,
    pub dltensor_from_py_object_no_sync: *mut c_void,
    pub current_work_stream: *mut c_void,
}

// The ABI, pinned (64-bit targets, as every DLPack producer we meet).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<DLPackVersion>() == 8);
    assert!(size_of::<DLDevice>() == 8);
    assert!(size_of::<DLDataType>() == 4);
    assert!(offset_of!(DLDataType, bits) == 1);
    assert!(offset_of!(DLDataType, lanes) == 2);
    assert!(size_of::<DLTensor>() == 48);
    assert!(offset_of!(DLTensor, device) == 8);
    assert!(offset_of!(DLTensor, ndim) == 16);
    assert!(offset_of!(DLTensor, dtype) == 20);
    assert!(offset_of!(DLTensor, shape) == 24);
    assert!(offset_of!(DLTensor, strides) == 32);
    assert!(offset_of!(DLTensor, byte_offset) == 40);
    assert!(size_of::<DLManagedTensor>() == 64);
    assert!(offset_of!(DLManagedTensor, manager_ctx) == 48);
    assert!(offset_of!(DLManagedTensor, deleter) == 56);
    assert!(size_of::<DLManagedTensorVersioned>() == 80);
    assert!(offset_of!(DLManagedTensorVersioned, manager_ctx) == 8);
    assert!(offset_of!(DLManagedTensorVersioned, deleter) == 16);
    assert!(offset_of!(DLManagedTensorVersioned, flags) == 24);
    assert!(offset_of!(DLManagedTensorVersioned, dl_tensor) == 32);
    assert!(size_of::<DLPackExchangeAPI>() == 56);
    assert!(offset_of!(DLPackExchangeAPI, managed_tensor_from_py_object_no_sync) == 24);
};

impl From<DLDataType> for crate::dtype::DType {
    fn from(d: DLDataType) -> Self {
        crate::dtype::DType::new(d.code, d.bits, d.lanes)
    }
}

impl From<crate::dtype::DType> for DLDataType {
    fn from(d: crate::dtype::DType) -> Self {
        DLDataType {
            code: d.code,
            bits: d.bits,
            lanes: d.lanes,
        }
    }
}

impl From<DLDevice> for crate::device::Device {
    fn from(d: DLDevice) -> Self {
        crate::device::Device {
            device_type: d.device_type,
            device_id: d.device_id,
        }
    }
}

impl From<crate::device::Device> for DLDevice {
    fn from(d: crate::device::Device) -> Self {
        DLDevice {
            device_type: d.device_type,
            device_id: d.device_id,
        }
    }
}
