//! Copy kernels: gather any strided source (positive, negative or zero byte strides, unaligned,
//! byte-swapped) into a C-contiguous destination, with the dtype cast fused into the same pass.
//!
//! - `plan`: simplifies the layout (drops extent-1 axes, merges axes that step as one) and walks
//!   it by rows or, for F-order/transposed/permuted sources, by L1-sized tiles;
//! - `gather`: the byte movers (strided rows, tile transposes), by element size;
//! - `contiguous`: what happens to a contiguous run (copy, byte swap, cast, swap + cast);
//! - `cast`: the element rules (NumPy's `astype`), with float16/bfloat16 slice fast paths;
//! - `parallel`: the thread count and the split of large copies between threads.
//!
//! The destination is written once, by the kernel: a fresh allocation is first touched here,
//! by the thread that fills it (no separate zeroing pass).

mod cast;
mod contiguous;
mod gather;
mod parallel;
mod plan;

use crate::dtype::DType;
use crate::error::{Error, Result};

pub(crate) use cast::for_int_kind;
pub use cast::{can_cast, cast_scalar_bytes};
pub(crate) use parallel::map as parallel_map;
pub use parallel::{
    PARALLEL_MIN_BYTES, default_num_threads, num_threads, set_num_threads, set_parallel_min_bytes,
};

/// A strided source in memory the CPU can read.
pub struct Source<'a> {
    /// Address of the element at index (0, 0, ...).
    pub ptr: *const u8,
    pub dtype: DType,
    pub shape: &'a [i64],
    pub byte_strides: &'a [i64],
    /// Elements are stored in the non-native byte order.
    pub byte_swapped: bool,
}

/// Copies every element of `src` into `dst` in C order, converting to `dst_dtype`.
///
/// # Safety
/// Every byte that `src` describes (its first element, shape and byte strides) must be readable
/// for the duration of the call. `dst` must hold exactly `numel * dst_dtype.item_size()` bytes.
pub unsafe fn copy_to_contiguous(src: &Source<'_>, dst: &mut [u8], dst_dtype: DType) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe { copy(src, dst, dst_dtype, true) }
}

/// `copy_to_contiguous` for a caller that has already checked `can_cast(src.dtype, dst_dtype)`
/// (the conversion's decision does), so that a small copy does not pay for it twice.
///
/// # Safety
/// As `copy_to_contiguous`.
pub(crate) unsafe fn copy_cast_checked(
    src: &Source<'_>,
    dst: &mut [u8],
    dst_dtype: DType,
) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe { copy(src, dst, dst_dtype, false) }
}

/// # Safety
/// As `copy_to_contiguous`. With `check_cast` false the caller has checked the dtype pair (an
/// unchecked pair that cannot be cast panics in `Converter::new`, it is never run).
unsafe fn copy(src: &Source<'_>, dst: &mut [u8], dst_dtype: DType, check_cast: bool) -> Result<()> {
    let n: usize = src.shape.iter().map(|&e| e as usize).product();
    let out_item = dst_dtype.item_size();
    if dst.len() != n * out_item {
        return Err(Error::InvalidArgument(format!(
            "destination holds {} bytes, {} needed",
            dst.len(),
            n * out_item
        )));
    }
    if n == 0 {
        return Ok(());
    }
    if check_cast && src.dtype != dst_dtype {
        can_cast(src.dtype, dst_dtype)?;
    }
    if src.shape.len() != src.byte_strides.len() {
        return Err(Error::InvalidArgument(format!(
            "{} strides given for {} dimensions",
            src.byte_strides.len(),
            src.shape.len()
        )));
    }
    let conv = contiguous::Converter::new(src.dtype, dst_dtype, src.byte_swapped);
    let bytes = n * (conv.in_item + conv.out_item);
    let workers = parallel::workers_for(bytes);
    // Room for the simplified axes: a short array for the usual few (zeroing 64 of them costs
    // more than a small copy's conversion).
    let mut few = [plan::Dim::default(); crate::layout::INLINE_NDIM];
    let mut all;
    let buf: &mut [plan::Dim] = if src.shape.len() <= few.len() {
        &mut few
    } else {
        all = [plan::Dim::default(); crate::layout::MAX_NDIM];
        &mut all
    };
    let dims = plan::simplify(src.shape, src.byte_strides, conv.in_item, buf);
    if workers == 1 && plan::is_one_run(dims, conv.in_item) {
        // One contiguous run on this thread: what the plan would do, without setting it up.
        // SAFETY: the run is the whole source, `n` elements the caller guarantees readable;
        // `dst` holds their `n` converted elements (checked above) and is exclusively ours.
        unsafe { conv.run(src.ptr, dst.as_mut_ptr(), n) };
        return Ok(());
    }
    let plan = plan::Plan::new(dims, conv, src.ptr, dst.as_mut_ptr(), workers);
    // SAFETY: the caller guarantees the source layout is readable; `dst` is exclusively ours
    // and holds the whole C-contiguous result; `parallel::run` hands out disjoint unit ranges.
    parallel::run(plan.units(), workers, |lo, hi| unsafe { plan.run(lo, hi) });
    Ok(())
}
