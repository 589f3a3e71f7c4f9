//! How much freed CPU memory the library keeps for reuse.

use super::{boundary, dlshare_status, guarded};
use crate::error::Error;
use crate::storage;

/// Sets how many bytes of freed large CPU buffers (2 MiB and more) dlshare keeps mapped for the
/// next tensor of the same size, in all. Reused memory is already faulted in, so a pipeline
/// that converts batches of one size skips the page faults of fresh memory (on a VM these can
/// cost more than the copy). `bytes == 0` gives every cached buffer back at once and keeps
/// none; `bytes == -1` restores the default (the `DLSHARE_CACHE_BYTES` environment variable
/// when it holds a byte count, read once, otherwise 256 MiB); other negative values give
/// DLSHARE_ERR_INVALID_ARGUMENT. Lowering the limit gives back the buffers over it at once.
/// Applies to the whole process.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_set_cache_limit(bytes: i64) -> dlshare_status {
    boundary(|| {
        let limit = match bytes {
            -1 => None,
            b => Some(usize::try_from(b).map_err(|_| {
                Error::InvalidArgument(format!(
                    "cache limit {b}: pass a byte count >= 0 (0 keeps nothing), or -1 for the \
                     default"
                ))
            })?),
        };
        storage::set_cache_limit(limit);
        Ok(())
    })
}

/// The cache limit in bytes now (see `dlshare_set_cache_limit`).
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_get_cache_limit() -> u64 {
    guarded(0, || storage::cache_limit() as u64)
}

/// Bytes of freed buffers dlshare holds for reuse now (at most the cache limit).
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_cached_bytes() -> u64 {
    guarded(0, || storage::cached_bytes() as u64)
}
