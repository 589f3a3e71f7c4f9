//! Byte movers that know nothing about dtypes: a strided row gathered into a contiguous run, and
//! a tile transposed. Elements of 1, 2, 4, 8 and 16 bytes move as whole integers (unaligned
//! loads and stores, which x86-64 and AArch64 do at full speed); other sizes byte by byte.

/// Runs `$body` with `$t` bound to an integer type of `$item` bytes, or `$other` for sizes that
/// have none.
macro_rules! by_size {
    ($item:expr, $t:ident => $body:expr, $other:expr) => {
        match $item {
            1 => {
                type $t = u8;
                $body
            }
            2 => {
                type $t = u16;
                $body
            }
            4 => {
                type $t = u32;
                $body
            }
            8 => {
                type $t = u64;
                $body
            }
            16 => {
                type $t = u128;
                $body
            }
            _ => $other,
        }
    };
}

/// Copies `n` elements of `item` bytes from `src + i * stride` (any stride: negative, zero, not
/// a multiple of the item size) to `dst + i * item`.
///
/// # Safety
/// Every source element is readable; `dst` is writable for `n * item` bytes and does not overlap
/// the source.
pub(super) unsafe fn gather_row(
    src: *const u8,
    stride: isize,
    dst: *mut u8,
    n: usize,
    item: usize,
) {
    if stride == item as isize {
        // SAFETY: a contiguous run, per the contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n * item) };
        return;
    }
    by_size!(item, T => {
        let d = dst.cast::<T>();
        if stride == -(item as isize) {
            // Reversed: written as a reversed index so that the loop vectorises (load a vector,
            // shuffle it).
            let last = src.cast::<T>();
            for i in 0..n {
                // SAFETY: element `i` back from the first is a source element (contract).
                unsafe { d.add(i).write_unaligned(last.sub(i).read_unaligned()) };
            }
        } else {
            for i in 0..n {
                // SAFETY: as above, at `i * stride` bytes.
                unsafe {
                    let p = src.offset(i as isize * stride).cast::<T>();
                    d.add(i).write_unaligned(p.read_unaligned());
                }
            }
        }
    }, {
        for i in 0..n {
            // SAFETY: as above; byte copies need no alignment.
            unsafe {
                std::ptr::copy_nonoverlapping(src.offset(i as isize * stride), dst.add(i * item), item)
            };
        }
    })
}

/// Transposes a tile: `dst[r * dst_row + c * item] = src[r * row_stride + c * col_stride]` for
/// `r < rows`, `c < cols`. The caller picks `row_stride` small (the source's contiguous axis) so
/// that the reads of consecutive rows share cache lines, and keeps the tile within L1.
///
/// # Safety
/// Every source element is readable; every destination element is writable and overlaps no
/// source element.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn transpose_tile(
    src: *const u8,
    row_stride: isize,
    col_stride: isize,
    dst: *mut u8,
    dst_row: usize,
    rows: usize,
    cols: usize,
    item: usize,
) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if row_stride == item as isize && x86::has_avx() {
        // SAFETY: forwarded contract; AVX is present.
        let done = unsafe {
            match item {
                4 => x86::tile_32(src, col_stride, dst, dst_row, rows, cols),
                8 => x86::tile_64(src, col_stride, dst, dst_row, rows, cols),
                _ => 0,
            }
        };
        if done > 0 {
            // The SIMD kernels do whole 8x8 (4x4) blocks; finish the right and bottom edges.
            // SAFETY: sub-tiles of the caller's tile.
            unsafe {
                let (full_rows, full_cols) = (rows - rows % done, cols - cols % done);
                transpose_tile_scalar(
                    src.wrapping_add(full_rows * item),
                    row_stride,
                    col_stride,
                    dst.wrapping_add(full_rows * dst_row),
                    dst_row,
                    rows - full_rows,
                    cols,
                    item,
                );
                transpose_tile_scalar(
                    src.wrapping_offset(full_cols as isize * col_stride),
                    row_stride,
                    col_stride,
                    dst.wrapping_add(full_cols * item),
                    dst_row,
                    full_rows,
                    cols - full_cols,
                    item,
                );
            }
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { transpose_tile_scalar(src, row_stride, col_stride, dst, dst_row, rows, cols, item) }
}

/// `transpose_tile` one element at a time.
///
/// # Safety
/// As `transpose_tile`.
#[allow(clippy::too_many_arguments)]
unsafe fn transpose_tile_scalar(
    src: *const u8,
    row_stride: isize,
    col_stride: isize,
    dst: *mut u8,
    dst_row: usize,
    rows: usize,
    cols: usize,
    item: usize,
) {
    by_size!(item, T => {
        for c in 0..cols {
            let s = src.wrapping_offset(c as isize * col_stride);
            let d = dst.wrapping_add(c * item);
            for r in 0..rows {
                // SAFETY: (r, c) is inside the tile: a source element and a destination element
                // per the contract.
                unsafe {
                    let v = s.offset(r as isize * row_stride).cast::<T>().read_unaligned();
                    d.add(r * dst_row).cast::<T>().write_unaligned(v);
                }
            }
        }
    }, {
        for r in 0..rows {
            // SAFETY: row `r` of the tile, gathered along the columns (contract).
            unsafe {
                gather_row(
                    src.offset(r as isize * row_stride),
                    col_stride,
                    dst.add(r * dst_row),
                    cols,
                    item,
                )
            };
        }
    })
}

/// AVX register transposes for 4- and 8-byte elements whose tile rows are contiguous in the
/// source (the F-order / transposed case): 8x8 (4x4) blocks are loaded as one vector per
/// column, transposed in registers and stored as one vector per row.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod x86 {
    use std::arch::x86_64::*;

    /// Cached by std after the first call.
    pub fn has_avx() -> bool {
        std::arch::is_x86_feature_detected!("avx")
    }

    /// Transposes the whole 8x8 blocks of a tile of 4-byte elements whose rows are contiguous
    /// in the source; returns the block size (8), leaving the edges to the caller.
    ///
    /// # Safety
    /// As `transpose_tile` with `row_stride == 4`; AVX present.
    #[target_feature(enable = "avx")]
    pub unsafe fn tile_32(
        src: *const u8,
        col_stride: isize,
        dst: *mut u8,
        dst_row: usize,
        rows: usize,
        cols: usize,
    ) -> usize {
        for c in (0..cols - cols % 8).step_by(8) {
            for r in (0..rows - rows % 8).step_by(8) {
                let base = src
                    .wrapping_offset(c as isize * col_stride)
                    .wrapping_add(r * 4);
                // SAFETY: column c + j, rows r..r + 8 are source elements (contract).
                let v: [__m256; 8] = std::array::from_fn(|j| unsafe {
                    _mm256_loadu_ps(base.wrapping_offset(j as isize * col_stride).cast())
                });
                let t0 = _mm256_unpacklo_ps(v[0], v[1]);
                let t1 = _mm256_unpackhi_ps(v[0], v[1]);
                let t2 = _mm256_unpacklo_ps(v[2], v[3]);
                let t3 = _mm256_unpackhi_ps(v[2], v[3]);
                let t4 = _mm256_unpacklo_ps(v[4], v[5]);
                let t5 = _mm256_unpackhi_ps(v[4], v[5]);
                let t6 = _mm256_unpacklo_ps(v[6], v[7]);
                let t7 = _mm256_unpackhi_ps(v[6], v[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (i, row) in out.into_iter().enumerate() {
                    // SAFETY: row r + i, columns c..c + 8 are destination elements.
                    unsafe { _mm256_storeu_ps(dst.add((r + i) * dst_row + c * 4).cast(), row) };
                }
            }
        }
        8
    }

    /// As `tile_32` for 8-byte elements, in 4x4 blocks; returns 4.
    ///
    /// # Safety
    /// As `transpose_tile` with `row_stride == 8`; AVX present.
    #[target_feature(enable = "avx")]
    pub unsafe fn tile_64(
        src: *const u8,
        col_stride: isize,
        dst: *mut u8,
        dst_row: usize,
        rows: usize,
        cols: usize,
    ) -> usize {
        for c in (0..cols - cols % 4).step_by(4) {
            for r in (0..rows - rows % 4).step_by(4) {
                let base = src
                    .wrapping_offset(c as isize * col_stride)
                    .wrapping_add(r * 8);
                // SAFETY: column c + j, rows r..r + 4 are source elements (contract).
                let v: [__m256d; 4] = std::array::from_fn(|j| unsafe {
                    _mm256_loadu_pd(base.wrapping_offset(j as isize * col_stride).cast())
                });
                let t0 = _mm256_unpacklo_pd(v[0], v[1]);
                let t1 = _mm256_unpackhi_pd(v[0], v[1]);
                let t2 = _mm256_unpacklo_pd(v[2], v[3]);
                let t3 = _mm256_unpackhi_pd(v[2], v[3]);
                let out = [
                    _mm256_permute2f128_pd::<0x20>(t0, t2),
                    _mm256_permute2f128_pd::<0x20>(t1, t3),
                    _mm256_permute2f128_pd::<0x31>(t0, t2),
                    _mm256_permute2f128_pd::<0x31>(t1, t3),
                ];
                for (i, row) in out.into_iter().enumerate() {
                    // SAFETY: row r + i, columns c..c + 4 are destination elements.
                    unsafe { _mm256_storeu_pd(dst.add((r + i) * dst_row + c * 8).cast(), row) };
                }
            }
        }
        4
    }
}
