//! Shape and stride arithmetic. Everything is overflow-checked: shapes and strides come from
//! strangers.

use crate::error::{Error, Result};

/// The largest number of dimensions accepted (NumPy allows 64; so do we).
pub const MAX_NDIM: usize = 64;

/// Number of elements, checking that every extent is >= 0 and the product fits in i64.
pub fn numel(shape: &[i64]) -> Result<u64> {
    if shape.len() > MAX_NDIM {
        return Err(Error::InvalidArgument(format!(
            "ndim {} exceeds the maximum of {MAX_NDIM}",
            shape.len()
        )));
    }
    let mut n: i64 = 1;
    for (axis, &extent) in shape.iter().enumerate() {
        if extent < 0 {
            return Err(Error::InvalidArgument(format!(
                "shape[{axis}] = {extent} is negative; extents must be >= 0"
            )));
        }
        n = n.checked_mul(extent).ok_or_else(|| {
            Error::Overflow(format!(
                "the element count of shape {shape:?} overflows a 64-bit integer"
            ))
        })?;
    }
    Ok(n as u64)
}

/// Row-major (C order) strides in elements.
pub fn c_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut acc: i64 = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc = acc.saturating_mul(shape[i].max(1));
    }
    strides
}

/// Column-major (Fortran order) strides in elements.
pub fn f_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut acc: i64 = 1;
    for (i, &extent) in shape.iter().enumerate() {
        strides[i] = acc;
        acc = acc.saturating_mul(extent.max(1));
    }
    strides
}

fn contiguous_with(shape: &[i64], strides: &[i64], expected: &[i64]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    shape
        .iter()
        .zip(strides.iter().zip(expected))
        .all(|(&n, (&s, &e))| n <= 1 || s == e)
}

/// C-contiguous (axes of extent 1 may have any stride, as in NumPy and PyTorch).
pub fn is_c_contiguous(shape: &[i64], strides: &[i64]) -> bool {
    contiguous_with(shape, strides, &c_strides(shape))
}

/// Fortran-contiguous (axes of extent 1 may have any stride).
pub fn is_f_contiguous(shape: &[i64], strides: &[i64]) -> bool {
    contiguous_with(shape, strides, &f_strides(shape))
}

/// The byte range `[lo, hi)` relative to the first element that a strided array touches.
/// Returns `(0, 0)` for zero-size arrays.
pub fn byte_extent(shape: &[i64], byte_strides: &[i64], item_size: usize) -> Result<(i64, i64)> {
    let overflow = || {
        Error::Overflow(format!(
            "shape {shape:?} with byte strides {byte_strides:?} spans more bytes than a 64-bit \
             address space holds"
        ))
    };
    if numel(shape)? == 0 {
        return Ok((0, 0));
    }
    let (mut lo, mut hi) = (0i64, 0i64);
    for (&n, &s) in shape.iter().zip(byte_strides) {
        let span = (n - 1).checked_mul(s).ok_or_else(overflow)?;
        if span < 0 {
            lo = lo.checked_add(span).ok_or_else(overflow)?;
        } else {
            hi = hi.checked_add(span).ok_or_else(overflow)?;
        }
    }
    let hi = hi
        .checked_add(i64::try_from(item_size).map_err(|_| overflow())?)
        .ok_or_else(overflow)?;
    Ok((lo, hi))
}

/// Checks that a view of `shape`/`byte_strides` starting at `addr` stays inside the address space
/// (no wrap-around).
pub fn check_address_range(
    addr: usize,
    shape: &[i64],
    byte_strides: &[i64],
    item_size: usize,
) -> Result<()> {
    let (lo, hi) = byte_extent(shape, byte_strides, item_size)?;
    let start = (addr as i128) + i128::from(lo);
    let end = (addr as i128) + i128::from(hi);
    if start < 0 || end > usize::MAX as i128 {
        return Err(Error::Overflow(format!(
            "the view at {addr:#x} with byte strides {byte_strides:?} wraps around the address \
             space; check the data pointer and strides"
        )));
    }
    Ok(())
}

/// Overflow-checked conversion of element strides to byte strides.
pub fn byte_strides(strides: &[i64], item_size: usize) -> Result<Vec<i64>> {
    strides
        .iter()
        .map(|&s| {
            s.checked_mul(item_size as i64).ok_or_else(|| {
                Error::Overflow(format!(
                    "stride {s} times item size {item_size} overflows a 64-bit integer"
                ))
            })
        })
        .collect()
}
