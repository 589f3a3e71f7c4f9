//! One CUDA device: its primary context (entered and left around every call), dlshare's stream
//! on it, the sources asynchronous copies still read, and peer access.

use super::*;

/// One device: its primary context, dlshare's stream on it, staging buffers, the sources
/// that asynchronous copies still read, and the bytes dlshare holds there.
pub(crate) struct Dev {
    pub(crate) id: i32,
    pub(crate) cu_device: sys::CUdevice,
    pub(crate) ctx: sys::CUcontext,
    pub(crate) stream: sys::CUstream,
    pub(crate) staging: Mutex<Option<Staging>>,
    pub(crate) retired: Mutex<Vec<(Event, Arc<Storage>)>>,
    pub(crate) peers: Mutex<Vec<i32>>,
    pub(crate) allocated: AtomicU64,
}

// SAFETY: driver handles (context, stream) may be used from any thread; everything else is
// behind mutexes or atomic.
unsafe impl Send for Dev {}
// SAFETY: as above.
unsafe impl Sync for Dev {}

/// The device behind `device` (a CUDA or CUDA-host device), started on first use.
pub(crate) fn dev(device: Device, doing: &str) -> Result<&'static Dev> {
    let unavailable = |why: String| Error::DeviceUnavailable(format!("{doing}: {why}"));
    let driver = driver().map_err(unavailable)?;
    let count = driver.devices.len();
    let slot = usize::try_from(device.device_id)
        .ok()
        .and_then(|i| driver.devices.get(i))
        .ok_or_else(|| {
            let plural = if count == 1 { "" } else { "s" };
            unavailable(format!(
                "there is no CUDA device {} (this machine has {count} CUDA device{plural}, \
                 ids 0..{})",
                device.device_id,
                count - 1
            ))
        })?;
    slot.get_or_init(|| Dev::start(device.device_id))
        .as_ref()
        .map_err(|e| match e {
            Error::Cuda(m) => unavailable(m.clone()),
            other => other.clone(),
        })
}

pub fn check_device(device: Device, doing: &str) -> Result<()> {
    dev(device, doing).map(|_| ())
}

pub(crate) fn dev_id(device_id: i32) -> Result<&'static Dev> {
    let device = cuda_device(device_id);
    dev(device, &device.name())
}

/// The current context while alive (pushed by `Dev::enter`, popped on drop, same thread).
pub(crate) struct Entered(pub(crate) PhantomData<*const ()>);

impl Drop for Entered {
    fn drop(&mut self) {
        let mut popped = null_mut();
        // SAFETY: pops the context that `enter` pushed on this thread.
        unsafe { sys::cuCtxPopCurrent_v2(&mut popped) };
    }
}

pub(crate) fn enter(ctx: sys::CUcontext) -> Result<Entered> {
    // SAFETY: `ctx` is a retained primary context, valid for the life of the process.
    unsafe { sys::cuCtxPushCurrent_v2(ctx) }.check("cuCtxPushCurrent")?;
    Ok(Entered(PhantomData))
}

impl Dev {
    pub(crate) fn start(id: i32) -> Result<Dev> {
        let mut cu_device = 0;
        // SAFETY: writes the handle of device `id` (< the device count).
        unsafe { sys::cuDeviceGet(&mut cu_device, id) }.check("cuDeviceGet")?;
        let mut ctx = null_mut();
        // SAFETY: retains the device's primary context; kept for the life of the process once
        // the device has started.
        unsafe { sys::cuDevicePrimaryCtxRetain(&mut ctx, cu_device) }
            .check("cuDevicePrimaryCtxRetain")?;
        let stream = Self::new_stream(ctx).inspect_err(|_| {
            // SAFETY: gives back the retain above: the device did not start.
            unsafe { sys::cuDevicePrimaryCtxRelease_v2(cu_device) };
        })?;
        Ok(Dev {
            id,
            cu_device,
            ctx,
            stream,
            staging: Mutex::new(None),
            retired: Mutex::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            allocated: AtomicU64::new(0),
        })
    }

    /// dlshare's (non-blocking) stream in `ctx`.
    fn new_stream(ctx: sys::CUcontext) -> Result<sys::CUstream> {
        let _entered = enter(ctx)?;
        let mut stream = null_mut();
        // SAFETY: creates a stream in the current (this device's primary) context.
        unsafe {
            sys::cuStreamCreate(
                &mut stream,
                sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
            )
        }
        .check("cuStreamCreate")?;
        Ok(stream)
    }

    /// Makes this device's context current (and releases finished retired sources).
    pub(crate) fn enter(&self) -> Result<Entered> {
        let entered = enter(self.ctx)?;
        self.drain();
        Ok(entered)
    }

    /// Drops the sources whose asynchronous copies have finished. The drops run after the
    /// lock is released: a producer's deleter may call back into dlshare.
    pub(crate) fn drain(&self) {
        let done: Vec<(Event, Arc<Storage>)> = {
            let mut list = lock(&self.retired);
            if list.is_empty() {
                return;
            }
            let (done, pending) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|(event, _)| event.is_done());
            *list = pending;
            done
        };
        drop(done);
    }

    pub(crate) fn retire(&self, event: Event, owner: Arc<Storage>) {
        lock(&self.retired).push((event, owner));
    }

    /// The staging buffers (allocated on first use). Call with the context entered.
    pub(crate) fn staging(&self) -> Result<StagingGuard<'_>> {
        let mut guard = lock(&self.staging);
        if guard.is_none() {
            *guard = Some(Staging::new(chunk_bytes())?);
        }
        Ok(StagingGuard(guard))
    }

    /// Enables direct access to `peer`'s memory once, when the hardware allows it
    /// (cuMemcpyPeer stages through the host otherwise). Call with this context entered.
    pub(crate) fn enable_peer(&self, peer: &Dev) {
        let mut peers = lock(&self.peers);
        if peers.contains(&peer.id) {
            return;
        }
        peers.push(peer.id);
        let mut can = 0;
        // SAFETY: writes whether this device can access `peer`'s memory.
        let r = unsafe { sys::cuDeviceCanAccessPeer(&mut can, self.cu_device, peer.cu_device) };
        if r == CUresult::CUDA_SUCCESS && can != 0 {
            // SAFETY: enables access from the current context to `peer`'s primary context;
            // "already enabled" is fine, any failure only loses the direct path.
            unsafe { sys::cuCtxEnablePeerAccess(peer.ctx, 0) };
        }
    }
}
