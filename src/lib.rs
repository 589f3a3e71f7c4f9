//! dlshare: tensor memory shared between NumPy, PyTorch, JAX, C, C++ and Julia without copying
//! when that is safe, and copied correctly when it is not.
//!
//! The Rust API: [`Tensor`] (a refcounted, immutable view over shared storage), the conversion
//! decision in [`convert`] (modes SHARE / SHARE_OR_COPY / COPY, with the reason for every copy),
//! DLPack import/export in [`dlpack`]. The C API lives in `ffi` and is described by
//! `include/dlshare.h`.

#![deny(unsafe_op_in_unsafe_fn)]

/// cbindgen:ignore
mod alloc;
/// cbindgen:ignore
pub mod arrow;
/// cbindgen:ignore
pub mod columns;
/// cbindgen:ignore
pub mod convert;
/// cbindgen:ignore
pub mod cuda;
/// cbindgen:ignore
pub mod device;
pub mod dlpack;
/// cbindgen:ignore
pub mod dtype;
/// cbindgen:ignore
pub mod error;
pub mod ffi;
/// cbindgen:ignore
pub mod kernels;
/// cbindgen:ignore
pub mod layout;
/// cbindgen:ignore
pub mod reason;
/// cbindgen:ignore
pub mod shm;
/// cbindgen:ignore
pub mod source;
/// cbindgen:ignore
pub mod storage;
/// cbindgen:ignore
pub mod tensor;
/// cbindgen:ignore
mod transfer;

pub use convert::{Decision, Mode, Options, Reason, Source};
pub use device::Device;
pub use dtype::{DType, Element, Kind};
pub use error::{Error, Result};
pub use storage::live_storage_count;
pub use tensor::Tensor;
