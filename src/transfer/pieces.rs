//! Host sources for the copies: the kernels' view of a source, plain-block detection, and the
//! pieces a strided source is packed in, one staging buffer at a time.

use super::*;

/// The kernels' view of a host source.
pub(crate) fn host_source(src: &Source) -> kernels::Source<'_> {
    kernels::Source {
        ptr: src.first(),
        dtype: src.dtype,
        shape: &src.shape,
        byte_strides: &src.byte_strides,
        byte_swapped: src.byte_swapped,
    }
}

/// # Safety
/// `p` must be valid for `n` bytes of writes, with no other reference to them while the
/// slice lives.
pub(crate) unsafe fn slice<'a>(p: *mut u8, n: usize) -> &'a mut [u8] {
    // SAFETY: forwarded caller contract.
    unsafe { std::slice::from_raw_parts_mut(p, n) }
}

/// The copy is a plain byte copy of one C-contiguous block.
pub(crate) fn is_raw(src: &Source, to: DType) -> bool {
    if src.dtype != to || src.byte_swapped {
        return false;
    }
    let mut expect = src.dtype.item_size() as i64;
    for (&n, &s) in src.shape.iter().zip(&src.byte_strides).rev() {
        if n != 1 && s != expect {
            return false;
        }
        expect = expect.saturating_mul(n);
    }
    true
}

/// A host byte range as a one-dimensional u8 source.
pub(crate) fn bytes_source(p: *const u8, n: usize) -> Source {
    Source {
        data: p.cast_mut(),
        byte_offset: 0,
        dtype: DType::U8,
        shape: vec![n as i64],
        byte_strides: vec![1],
        device: Device::CPU,
        read_only: true,
        byte_swapped: false,
        subbyte_padded: false,
    }
}

/// Calls `f(piece, packed_bytes)` for consecutive pieces of `src` in C order, each packing to
/// at most `chunk` bytes of `out_item`-byte elements (`out_item <= chunk`): the pieces are
/// ranges along one axis, all later axes whole.
pub(crate) fn for_each_piece(
    src: &Source,
    out_item: usize,
    chunk: usize,
    mut f: impl FnMut(&kernels::Source<'_>, usize) -> Result<()>,
) -> Result<()> {
    let (shape, strides) = (&src.shape, &src.byte_strides);
    let nd = shape.len();
    let total = layout::numel(shape)? as usize * out_item;
    if nd == 0 || total <= chunk {
        return f(&host_source(src), total);
    }
    // inner[k]: packed bytes of one step along axis k
    let mut inner = vec![out_item; nd];
    for k in (0..nd - 1).rev() {
        inner[k] = inner[k + 1] * shape[k + 1] as usize;
    }
    let axis = (0..nd).find(|&k| inner[k] <= chunk).unwrap_or(nd - 1);
    let run = (chunk / inner[axis]).max(1) as i64;
    let mut index = vec![0i64; axis];
    let mut piece_shape = shape[axis..].to_vec();
    let piece_strides = &strides[axis..];
    loop {
        let base: i64 = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        let mut start = 0;
        while start < shape[axis] {
            let len = run.min(shape[axis] - start);
            piece_shape[0] = len;
            let at = base + start * strides[axis];
            let piece = kernels::Source {
                ptr: src.first().wrapping_offset(at as isize),
                dtype: src.dtype,
                shape: &piece_shape,
                byte_strides: piece_strides,
                byte_swapped: src.byte_swapped,
            };
            f(&piece, len as usize * inner[axis])?;
            start += len;
        }
        // next index over the axes before `axis` (an odometer)
        let mut k = axis;
        loop {
            if k == 0 {
                return Ok(());
            }
            k -= 1;
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The host half of the staged copies, which runs without a GPU: the pieces a host
    //! source is packed in, staging buffer by staging buffer.

    use super::*;

    fn source(buf: &[u8], dtype: DType, shape: &[i64], strides: &[i64], first: i64) -> Source {
        let item = dtype.item_size() as i64;
        Source {
            data: buf
                .as_ptr()
                .wrapping_offset((first * item) as isize)
                .cast_mut(),
            byte_offset: 0,
            dtype,
            shape: shape.to_vec(),
            byte_strides: strides.iter().map(|s| s * item).collect(),
            device: Device::CPU,
            read_only: true,
            byte_swapped: false,
            subbyte_padded: false,
        }
    }

    #[test]
    fn pieces_pack_to_the_whole_in_c_order_and_fit_a_buffer() {
        let buf: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 256) as u8).collect();
        let layouts: [(&[i64], &[i64], i64); 8] = [
            (&[6, 7], &[7, 1], 0),
            (&[6, 7], &[1, 6], 0),
            (&[3, 4, 5], &[1, 15, 3], 0),
            (&[5, 7], &[-7, -1], 34),
            (&[4, 7], &[0, 1], 0),
            (&[2, 3, 4, 5], &[60, 20, 5, 1], 0),
            (&[], &[], 3),
            (&[9], &[3], 1),
        ];
        for dtype in [DType::U8, DType::F32, DType::C128] {
            for (shape, strides, first) in layouts {
                let src = source(&buf, dtype, shape, strides, first);
                let item = dtype.item_size();
                let n = layout::numel(shape).unwrap() as usize * item;
                let mut whole = vec![0u8; n];
                // SAFETY: the layouts lie inside `buf`; `whole` holds the output.
                unsafe { kernels::copy_to_contiguous(&host_source(&src), &mut whole, dtype) }
                    .unwrap();
                for chunk in [item, 2 * item, 5 * item + 3, 64, 1000, 1 << 20] {
                    let mut joined = Vec::new();
                    for_each_piece(&src, item, chunk, |piece, bytes| {
                        assert!(bytes <= chunk, "piece over the chunk");
                        let mut out = vec![0u8; bytes];
                        // SAFETY: pieces lie inside the source; `out` holds the piece.
                        unsafe { kernels::copy_to_contiguous(piece, &mut out, dtype) }?;
                        joined.extend_from_slice(&out);
                        Ok(())
                    })
                    .unwrap();
                    assert!(
                        joined == whole,
                        "{dtype} {shape:?} {strides:?} chunk {chunk}"
                    );
                }
            }
        }
    }

    #[test]
    fn raw_means_one_plain_c_contiguous_block() {
        let buf = vec![0u8; 1024];
        let raw = |shape: &[i64], strides: &[i64], to| {
            is_raw(&source(&buf, DType::F32, shape, strides, 0), to)
        };
        assert!(raw(&[4, 5], &[5, 1], DType::F32));
        assert!(raw(&[4, 1], &[1, 99], DType::F32));
        assert!(raw(&[], &[], DType::F32));
        assert!(!raw(&[4, 5], &[1, 4], DType::F32));
        assert!(!raw(&[4, 5], &[5, 1], DType::F64));
        assert!(!raw(&[4, 5], &[0, 1], DType::F32));
        assert!(!raw(&[4, 5], &[-5, 1], DType::F32));
    }
}
