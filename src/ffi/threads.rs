//! How many threads one large copy may use.

use super::{boundary, dlshare_status, guarded};
use crate::error::Error;
use crate::kernels;

/// Caps the threads a single copy or conversion uses (the calling thread included); copies
/// smaller than a few MiB always run on the calling thread alone. `n == 0` restores the default:
/// the `DLSHARE_NUM_THREADS` environment variable when it holds a positive integer (read once,
/// at the first copy), otherwise every core the process may run on. A negative `n` gives
/// DLSHARE_ERR_INVALID_ARGUMENT. Applies to the whole process, from the next copy on.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_set_num_threads(n: i32) -> dlshare_status {
    boundary(|| {
        let n = usize::try_from(n).map_err(|_| {
            Error::InvalidArgument(format!(
                "{n} threads requested; pass a positive count, or 0 for the default"
            ))
        })?;
        kernels::set_num_threads(n);
        Ok(())
    })
}

/// The most threads one copy uses now (>= 1): the value set with `dlshare_set_num_threads`, or
/// the default described there.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_get_num_threads() -> i32 {
    guarded(1, || {
        i32::try_from(kernels::num_threads()).unwrap_or(i32::MAX)
    })
}
