//! Host -> device copies: direct from pinned memory, registered or staged from pageable memory.

use super::*;

pub(crate) fn register_pageable() -> bool {
    static REGISTER: OnceLock<bool> = OnceLock::new();
    *REGISTER.get_or_init(|| {
        std::env::var("DLSHARE_CUDA_PAGEABLE").is_ok_and(|v| v.trim() == "register")
    })
}

/// Host -> device. Call with `d`'s context entered.
pub(crate) fn h2d(
    d: &Dev,
    src: &Source,
    to: DType,
    dst: sys::CUdeviceptr,
    nbytes: usize,
    stream: Option<usize>,
) -> Result<Option<Event>> {
    let issue = d.issue(stream)?;
    let first = src.first();
    let raw = is_raw(src, to);
    if raw && is_pinned(first, nbytes) {
        // SAFETY: `first` is pinned and readable for `nbytes` (the validated source), `dst`
        // the fresh device output; the source is kept alive until the copy ends.
        unsafe { sys::cuMemcpyHtoDAsync_v2(dst, first.cast(), nbytes, issue.stream) }
            .check("cuMemcpyHtoDAsync")?;
        return d.finish(issue, Then::SourceInUse);
    }
    if raw && register_pageable() {
        let s = issue.stream;
        let dma = || {
            // SAFETY: the registered source range and the fresh device output.
            unsafe { sys::cuMemcpyHtoDAsync_v2(dst, first.cast(), nbytes, s) }
                .check("cuMemcpyHtoDAsync")?;
            let done = Event::new()?;
            done.record(s)?;
            done.wait()
        };
        if registered(first, nbytes, dma)? {
            return d.finish(issue, Then::SourceFree);
        }
    }
    staged_h2d(d, src, to, dst, issue.stream)?;
    d.finish(issue, Then::SourceFree)
}

/// Packs `src` (as `to`) piece by piece into the staging buffers and sends each full buffer
/// on `stream` while the next is packed. Returns once the source has been read.
pub(crate) fn staged_h2d(
    d: &Dev,
    src: &Source,
    to: DType,
    dst: sys::CUdeviceptr,
    stream: sys::CUstream,
) -> Result<()> {
    let staging = d.staging()?;
    let chunk = staging.chunk;
    if to.item_size() > chunk {
        // elements larger than a buffer: pack on the host first, then send the bytes
        let n = layout::numel(&src.shape)? as usize * to.item_size();
        let mut packed = vec![0u8; n];
        // SAFETY: the validated source is readable; `packed` holds exactly the output.
        unsafe { kernels::copy_to_contiguous(&host_source(src), &mut packed, to)? };
        drop(staging);
        let bytes = bytes_source(packed.as_ptr(), n);
        return staged_h2d(d, &bytes, DType::U8, dst, stream);
    }
    let (mut slot, mut fill, mut offset) = (0usize, 0usize, 0u64);
    let send = |slot: usize, fill: usize, offset: u64| -> Result<()> {
        let (buffer, event) = &staging.buffers[slot];
        // SAFETY: `fill` packed bytes in a pinned staging buffer, sent to the fresh device
        // output at `offset` (inside it: pieces add up to the output size).
        unsafe { sys::cuMemcpyHtoDAsync_v2(dst + offset, *buffer as *const c_void, fill, stream) }
            .check("cuMemcpyHtoDAsync")?;
        event.record(stream)
    };
    for_each_piece(src, to.item_size(), chunk, |piece, bytes| {
        if fill + bytes > chunk {
            send(slot, fill, offset)?;
            offset += fill as u64;
            slot = (slot + 1) % staging.buffers.len();
            fill = 0;
        }
        let (buffer, event) = &staging.buffers[slot];
        if fill == 0 {
            event.wait()?; // the buffer's previous transfer is done
        }
        let out = (*buffer as *mut u8).wrapping_add(fill);
        // SAFETY: the piece lies inside the validated source; `out` is free space in a
        // staging buffer (`fill + bytes <= chunk`) held under the device's staging lock.
        unsafe { kernels::copy_to_contiguous(piece, slice(out, bytes), to)? };
        fill += bytes;
        Ok(())
    })?;
    if fill > 0 {
        send(slot, fill, offset)?;
    }
    Ok(())
}
