//! Copy kernels: gather any strided source (positive, negative or zero byte strides, unaligned,
//! byte-swapped) into a C-contiguous destination, with the dtype cast fused into the same pass.
//!
//! Correctness first (issue #2); the speed work (blocked transpose, SIMD half conversions,
//! threads) lives in later changes behind this same entry point.

mod cast;

use crate::dtype::DType;
use crate::error::{Error, Result};

pub use cast::{can_cast, cast_scalar_bytes};

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
    let same = src.dtype == dst_dtype;
    if !same {
        can_cast(src.dtype, dst_dtype)?;
    }
    let in_item = src.dtype.item_size();
    let swap_unit = if src.byte_swapped {
        src.dtype.swap_unit()
    } else {
        1
    };
    let ndim = src.shape.len();
    let (inner_len, inner_stride) = if ndim == 0 {
        (1usize, 0i64)
    } else {
        (src.shape[ndim - 1] as usize, src.byte_strides[ndim - 1])
    };
    let outer_shape = if ndim == 0 {
        &[][..]
    } else {
        &src.shape[..ndim - 1]
    };
    let mut index = vec![0i64; outer_shape.len()];
    let mut row_offset: isize = 0;
    let mut out = 0usize;
    // One element's bytes: up to 16 for the computable types, more for vector (lanes > 1) and
    // wide opaque types, which are copied unchanged.
    let mut element = vec![0u8; in_item];
    loop {
        let row = src.ptr.wrapping_offset(row_offset);
        let dst_row = &mut dst[out..out + inner_len * out_item];
        if same && swap_unit == 1 && inner_stride == in_item as i64 {
            // SAFETY: the caller guarantees the whole row is readable; `dst_row` has exactly
            // `inner_len * in_item` bytes and cannot overlap memory we only read.
            unsafe { std::ptr::copy_nonoverlapping(row, dst_row.as_mut_ptr(), dst_row.len()) };
        } else {
            for (i, out_elem) in dst_row.chunks_exact_mut(out_item).enumerate() {
                let p = row.wrapping_offset(i as isize * inner_stride as isize);
                let bytes = &mut element[..in_item];
                // SAFETY: `p` is an element of the source, readable per the caller's contract;
                // the copy is bytewise so alignment does not matter.
                unsafe { std::ptr::copy_nonoverlapping(p, bytes.as_mut_ptr(), in_item) };
                if swap_unit > 1 {
                    for unit in bytes.chunks_exact_mut(swap_unit) {
                        unit.reverse();
                    }
                }
                if same {
                    out_elem.copy_from_slice(bytes);
                } else {
                    cast_scalar_bytes(bytes, src.dtype, out_elem, dst_dtype);
                }
            }
        }
        out += inner_len * out_item;
        // Advance the odometer over the outer axes.
        let mut axis = outer_shape.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            index[axis] += 1;
            row_offset += src.byte_strides[axis] as isize;
            if index[axis] < outer_shape[axis] {
                break;
            }
            row_offset -= (src.byte_strides[axis] * outer_shape[axis]) as isize;
            index[axis] = 0;
        }
    }
}
