//! Device -> device copies: one device copy (peer-to-peer across devices) for a plain block,
//! through the host for a layout change or a cast.

use super::*;

/// Device -> device. A plain block is one device copy (peer-to-peer across devices); a
/// layout change or a cast goes through the host.
pub(crate) fn d2d(
    sd: &'static Dev,
    dd: &'static Dev,
    src: &Source,
    to: DType,
    dst: sys::CUdeviceptr,
    nbytes: usize,
    stream: Option<usize>,
) -> Result<Option<Event>> {
    if is_raw(src, to) {
        let from = src.first() as sys::CUdeviceptr;
        let source_ready = if sd.id != dd.id {
            let _entered = sd.enter()?;
            let event = Event::new()?;
            event.record(sd.stream)?;
            Some(event)
        } else {
            None
        };
        let _entered = dd.enter()?;
        let issue = dd.issue(stream)?;
        if let Some(event) = source_ready {
            // SAFETY: the copy's stream waits for the source device's pending work.
            unsafe { sys::cuStreamWaitEvent(issue.stream, event.0, 0) }
                .check("cuStreamWaitEvent")?;
            dd.enable_peer(sd);
            // SAFETY: the validated source on `sd` and the fresh output on `dd`, each in
            // its own primary context.
            unsafe { sys::cuMemcpyPeerAsync(dst, dd.ctx, from, sd.ctx, nbytes, issue.stream) }
                .check("cuMemcpyPeerAsync")?;
        } else {
            // SAFETY: the validated source and the fresh output, on one device.
            unsafe { sys::cuMemcpyDtoDAsync_v2(dst, from, nbytes, issue.stream) }
                .check("cuMemcpyDtoDAsync")?;
        }
        return dd.finish(issue, Then::SourceInUse);
    }
    let host = Tensor::empty(to, &src.shape, Device::CPU, false)?;
    {
        let _entered = sd.enter()?;
        let down = if sd.id == dd.id { stream } else { None };
        d2h(sd, src, to, host.data_ptr(), nbytes, Device::CPU, down)?;
    }
    let packed = bytes_source(host.data_ptr(), nbytes);
    let _entered = dd.enter()?;
    if let Some(event) = h2d(dd, &packed, DType::U8, dst, nbytes, stream)? {
        event.wait()?;
    }
    Ok(None)
}
