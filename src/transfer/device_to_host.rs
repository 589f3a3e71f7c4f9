//! Device -> host copies, finished on return: direct into pinned memory, staged into pageable.

use super::*;

/// Device -> host, finished on return. Call with `d`'s context entered.
pub(crate) fn d2h(
    d: &Dev,
    src: &Source,
    to: DType,
    dst: *mut u8,
    nbytes: usize,
    dest: Device,
    stream: Option<usize>,
) -> Result<()> {
    let issue = d.issue(stream)?;
    let first = src.first() as sys::CUdeviceptr;
    if is_raw(src, to) {
        let s = issue.stream;
        let dma = || {
            // SAFETY: the validated device source and the fresh pinned (or registered)
            // host output of `nbytes`; waited for before returning.
            unsafe { sys::cuMemcpyDtoHAsync_v2(dst.cast(), first, nbytes, s) }
                .check("cuMemcpyDtoHAsync")?;
            let done = Event::new()?;
            done.record(s)?;
            done.wait()
        };
        if dest.device_type == device_type::CUDA_HOST {
            dma()?;
        } else if !(register_pageable() && registered(dst, nbytes, dma)?) {
            staged_d2h(d, first, dst, nbytes, s)?;
        }
    } else {
        // the byte span comes down; the layout change and the cast happen on the host
        let item = src.dtype.item_size();
        let (lo, hi) = layout::byte_extent(&src.shape, &src.byte_strides, item)?;
        let span = (hi - lo) as usize;
        let mut host = vec![0u8; span];
        let start = first.wrapping_add_signed(lo);
        staged_d2h(d, start, host.as_mut_ptr(), span, issue.stream)?;
        let packed = kernels::Source {
            ptr: host.as_ptr().wrapping_offset(-lo as isize),
            dtype: src.dtype,
            shape: &src.shape,
            byte_strides: &src.byte_strides,
            byte_swapped: src.byte_swapped,
        };
        // SAFETY: `packed` describes the span just copied into `host` (every element
        // lies in it); `dst` is the fresh output of exactly `nbytes`.
        unsafe { kernels::copy_to_contiguous(&packed, slice(dst, nbytes), to)? };
    }
    d.finish(issue, Then::HostWaits).map(|_| ())
}

/// Device bytes `[src, src + len)` to pageable host memory through the staging buffers:
/// up to `BUFFERS` transfers in flight while the CPU copies finished ones out.
pub(crate) fn staged_d2h(
    d: &Dev,
    src: sys::CUdeviceptr,
    dst: *mut u8,
    len: usize,
    stream: sys::CUstream,
) -> Result<()> {
    let staging = d.staging()?;
    let chunk = staging.chunk;
    let k = staging.buffers.len();
    let n = len.div_ceil(chunk);
    let part = |i: usize| (i * chunk, chunk.min(len - i * chunk));
    let fetch = |i: usize| -> Result<()> {
        let (buffer, event) = &staging.buffers[i % k];
        event.wait()?; // the buffer's previous transfer is done
        let (offset, size) = part(i);
        // SAFETY: a pinned staging buffer of `chunk >= size` bytes, and a device range
        // inside the validated source.
        unsafe {
            sys::cuMemcpyDtoHAsync_v2(*buffer as *mut c_void, src + offset as u64, size, stream)
        }
        .check("cuMemcpyDtoHAsync")?;
        event.record(stream)
    };
    for i in 0..n.min(k) {
        fetch(i)?;
    }
    for i in 0..n {
        let (buffer, event) = &staging.buffers[i % k];
        event.wait()?;
        let (offset, size) = part(i);
        let bytes = [size as i64];
        let from = kernels::Source {
            ptr: *buffer as *const u8,
            dtype: DType::U8,
            shape: &bytes,
            byte_strides: &[1],
            byte_swapped: false,
        };
        // SAFETY: the staging buffer holds `size` transferred bytes; the output range is
        // inside the caller's buffer of `len` bytes.
        unsafe {
            kernels::copy_to_contiguous(&from, slice(dst.wrapping_add(offset), size), DType::U8)?
        };
        if i + k < n {
            fetch(i + k)?;
        }
    }
    Ok(())
}
