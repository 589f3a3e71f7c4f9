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
    // Pushed, not written into a zero-filled Vec: that one would come from `calloc` (LLVM turns
    // malloc + zeroing into it), which glibc serves without its per-thread cache, several
    // times slower than malloc for the few bytes of a stride list.
    let mut strides = Vec::with_capacity(shape.len());
    let mut acc: i64 = 1;
    for &n in shape.iter().rev() {
        strides.push(acc);
        acc = acc.saturating_mul(n.max(1));
    }
    strides.reverse();
    strides
}

/// Row-major (C order) strides in elements, written to `strides` (as long as `shape`).
pub(crate) fn c_strides_into(shape: &[i64], strides: &mut [i64]) {
    let mut acc: i64 = 1;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(n.max(1));
    }
}

/// How many extents or strides `Dims` holds without a heap allocation (covers nearly every
/// array seen in practice; NumPy code rarely goes past 6 dimensions).
pub(crate) const INLINE_NDIM: usize = 8;

/// A short list of extents or strides: inline up to `INLINE_NDIM` values, on the heap beyond.
/// Small conversions are bound by per-call costs, and two `Vec`s per description were a good
/// part of them.
#[derive(Clone)]
pub(crate) enum Dims {
    Inline { len: u8, values: [i64; INLINE_NDIM] },
    Heap(Vec<i64>),
}

impl Dims {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Dims {
        if len <= INLINE_NDIM {
            Dims::Inline {
                len: len as u8,
                values: [0; INLINE_NDIM],
            }
        } else {
            Dims::Heap(vec![0; len])
        }
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[i64]) -> Dims {
        let mut d = Dims::zeros(values.len());
        d.copy_from_slice(values);
        d
    }
}

impl std::ops::Deref for Dims {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        match self {
            Dims::Inline { len, values } => &values[..usize::from(*len)],
            Dims::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for Dims {
    fn deref_mut(&mut self) -> &mut [i64] {
        match self {
            Dims::Inline { len, values } => &mut values[..usize::from(*len)],
            Dims::Heap(v) => v,
        }
    }
}

impl std::fmt::Debug for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
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
    // Each partial sum lies between 0 and the total of its sign, so the totals fit in i64
    // exactly when every step would have.
    let (lo, hi) = extent(shape, byte_strides);
    let lo = i64::try_from(lo).map_err(|_| overflow())?;
    let hi = i64::try_from(hi).map_err(|_| overflow())?;
    let hi = hi
        .checked_add(i64::try_from(item_size).map_err(|_| overflow())?)
        .ok_or_else(overflow)?;
    Ok((lo, hi))
}

/// The inclusive range `[lo, hi]` of offsets (in units of `strides`: elements or bytes),
/// relative to the first element, that a non-empty strided array touches. Computed in i128,
/// saturating: exact for every extent that fits in 64 bits, and beyond any 64-bit range
/// otherwise.
pub fn extent(shape: &[i64], strides: &[i64]) -> (i128, i128) {
    let (mut lo, mut hi) = (0i128, 0i128);
    for (&n, &s) in shape.iter().zip(strides) {
        let span = i128::from(n - 1) * i128::from(s);
        if span < 0 {
            lo = lo.saturating_add(span);
        } else {
            hi = hi.saturating_add(span);
        }
    }
    (lo, hi)
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
    strides.iter().map(|&s| byte_stride(s, item_size)).collect()
}

/// One element stride in bytes, overflow-checked.
pub(crate) fn byte_stride(s: i64, item_size: usize) -> Result<i64> {
    s.checked_mul(item_size as i64).ok_or_else(|| {
        Error::Overflow(format!(
            "stride {s} times item size {item_size} overflows a 64-bit integer"
        ))
    })
}

/// Element strides to byte strides, overflow-checked. A zero-size array touches no memory, so
/// its strides only need to be representable: they saturate instead of failing (an export of
/// a `(0, INT64_MAX)` tensor must re-import).
pub fn byte_strides_for(shape: &[i64], strides: &[i64], item_size: usize) -> Result<Vec<i64>> {
    let mut out = strides.to_vec();
    to_byte_strides(shape, item_size, &mut out)?;
    Ok(out)
}

/// `byte_strides_for` in place: `strides` (element strides of `shape`) become byte strides.
pub(crate) fn to_byte_strides(shape: &[i64], item_size: usize, strides: &mut [i64]) -> Result<()> {
    if shape.contains(&0) {
        let item = i64::try_from(item_size).unwrap_or(i64::MAX);
        for s in strides.iter_mut() {
            *s = s.saturating_mul(item);
        }
        return Ok(());
    }
    for s in strides.iter_mut() {
        *s = byte_stride(*s, item_size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_hold_short_lists_inline_and_long_ones_on_the_heap() {
        for len in [0, 1, INLINE_NDIM, INLINE_NDIM + 1, MAX_NDIM] {
            let values: Vec<i64> = (0..len as i64).map(|v| v * 3 - 7).collect();
            let d = Dims::from_slice(&values);
            assert_eq!(&*d, &values[..]);
            assert_eq!(matches!(d, Dims::Inline { .. }), len <= INLINE_NDIM);
            assert_eq!(format!("{d:?}"), format!("{values:?}"));
            let mut z = Dims::zeros(len);
            assert!(z.iter().all(|&v| v == 0) && z.len() == len);
            c_strides_into(&values, &mut z);
            assert_eq!(&*z, &c_strides(&values)[..]);
        }
    }
}
