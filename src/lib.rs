//! dlshare: tensor memory shared between NumPy, PyTorch, JAX, C, C++ and Julia without copying
//! when that is safe, and copied correctly when it is not.
//!
//! The Rust API: [`Tensor`] (a refcounted, immutable view over shared storage), the conversion
//! decision in [`convert`] (modes SHARE / SHARE_OR_COPY / COPY, with the reason for every copy),
//! DLPack import/export in [`dlpack`]. The C API lives in `ffi` and is described by
//! `include/dlshare.h`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

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
pub(crate) mod kernels;
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

pub use convert::{Decision, Mode, Options};
pub use device::Device;
pub use dtype::{DType, Element, Kind};
pub use error::{Error, Result};
pub use kernels::{default_num_threads, num_threads, set_num_threads};
pub use reason::Reason;
pub use source::{Source, SourceFlags};
pub use storage::live_storage_count;
pub use tensor::Tensor;

/// Internals for this crate's own benchmarks and tests (`benches/`, `tests/kernels.rs`): the raw
/// copy kernels, whose entry point is `unsafe`. Not part of the API: no stability promise, and
/// not documented. Applications use `convert` (which runs the same kernels on validated input).
#[doc(hidden)]
pub mod internals {
    /// The CPU copy kernels (`src/kernels/`).
    pub mod kernels {
        pub use crate::kernels::{
            PARALLEL_MIN_BYTES, Source, cast_scalar_bytes, copy_to_contiguous,
            set_parallel_min_bytes,
        };
    }
}
