//! Streams and events: ordering a copy on dlshare's stream or the caller's, finishing it,
//! the DLPack stream handoff, and synchronising a device.

use super::*;

pub(crate) struct Issue {
    pub(crate) stream: sys::CUstream,
    pub(crate) user: bool,
}

/// What a copy on the caller's stream needs at the end.
pub(crate) enum Then {
    /// The host reads the result next: wait.
    HostWaits,
    /// The source was fully read by the CPU (staged): nothing to keep.
    SourceFree,
    /// The device still reads the source: keep it until the returned event.
    SourceInUse,
}

/// A CUDA event (timing off), destroyed on drop.
pub(crate) struct Event(pub(crate) sys::CUevent);

// SAFETY: event handles may be used and destroyed from any thread.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

impl Event {
    /// Creates an event in the current context.
    pub(crate) fn new() -> Result<Event> {
        let mut event = null_mut();
        // SAFETY: creates an event in the current context.
        unsafe {
            sys::cuEventCreate(
                &mut event,
                sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32,
            )
        }
        .check("cuEventCreate")?;
        Ok(Event(event))
    }

    pub(crate) fn record(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: a live event and a stream of the same (current) context.
        unsafe { sys::cuEventRecord(self.0, stream) }.check("cuEventRecord")
    }

    pub(crate) fn wait(&self) -> Result<()> {
        // SAFETY: a live event; an event never recorded returns at once.
        unsafe { sys::cuEventSynchronize(self.0) }.check("cuEventSynchronize")
    }

    pub(crate) fn is_done(&self) -> bool {
        // SAFETY: a live event.
        let status = unsafe { sys::cuEventQuery(self.0) };
        status != CUresult::CUDA_ERROR_NOT_READY
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: destroyed once; pending uses of a recorded event complete normally.
        unsafe { sys::cuEventDestroy_v2(self.0) };
    }
}

/// Makes `waiter` wait for the work queued so far on `on` (both in the current context, or
/// `waiter` anywhere).
pub(crate) fn wait_for(waiter: sys::CUstream, on: sys::CUstream) -> Result<()> {
    if waiter == on {
        return Ok(());
    }
    let event = Event::new()?;
    event.record(on)?;
    // SAFETY: a stream waits for an event recorded on another; events may cross contexts.
    unsafe { sys::cuStreamWaitEvent(waiter, event.0, 0) }.check("cuStreamWaitEvent")
}

pub fn synchronize(device_id: i32) -> Result<()> {
    let d = dev_id(device_id)?;
    let _entered = d.enter()?;
    // SAFETY: synchronises the current (the device's primary) context.
    unsafe { sys::cuCtxSynchronize() }.check("cuCtxSynchronize")?;
    d.drain();
    Ok(())
}

pub fn stream(device_id: i32) -> Result<usize> {
    Ok(dev_id(device_id)?.stream as usize)
}

pub fn stream_wait(device_id: i32, consumer: usize) -> Result<()> {
    let d = dev_id(device_id)?;
    let _entered = d.enter()?;
    wait_for(consumer as sys::CUstream, d.stream)
}

impl Dev {
    /// The stream a copy on this device runs on: the caller's (after dlshare's pending
    /// work) or dlshare's own. Call with the context entered.
    pub(crate) fn issue(&self, user: Option<usize>) -> Result<Issue> {
        match user {
            None => Ok(Issue {
                stream: self.stream,
                user: false,
            }),
            Some(s) => {
                let stream = s as sys::CUstream;
                wait_for(stream, self.stream)?;
                Ok(Issue { stream, user: true })
            }
        }
    }

    /// Ends a copy issued with `issue`. dlshare's stream: wait for it. The caller's stream:
    /// chain the copy into dlshare's stream; then wait for it when the host reads the
    /// result, or return an event to keep the source alive until, when the copy reads it.
    pub(crate) fn finish(&self, issue: Issue, then: Then) -> Result<Option<Event>> {
        if !issue.user {
            // SAFETY: dlshare's stream on this device, whose context is current.
            return unsafe { sys::cuStreamSynchronize(self.stream) }
                .check("cuStreamSynchronize")
                .map(|()| None);
        }
        let event = Event::new()?;
        event.record(issue.stream)?;
        // SAFETY: dlshare's stream waits for an event recorded on the caller's stream.
        unsafe { sys::cuStreamWaitEvent(self.stream, event.0, 0) }.check("cuStreamWaitEvent")?;
        match then {
            Then::HostWaits => event.wait().map(|()| None),
            Then::SourceFree => Ok(None),
            Then::SourceInUse => Ok(Some(event)),
        }
    }
}
