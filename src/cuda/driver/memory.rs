//! Device memory (`cuMemAlloc`), pinned host memory (`cuMemHostAlloc`), the pinned staging
//! buffers of each device, and pinned-memory queries.

use super::*;

/// Staging buffers per device.
pub(crate) const BUFFERS: usize = 4;

pub(crate) fn chunk_bytes() -> usize {
    static CHUNK: OnceLock<usize> = OnceLock::new();
    *CHUNK.get_or_init(|| {
        std::env::var("DLSHARE_CUDA_CHUNK_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&mb| (1..=1024).contains(&mb))
            .unwrap_or(8)
            << 20
    })
}

/// Pinned host buffers with one event each (recorded after the DMA that uses the buffer).
pub(crate) struct Staging {
    pub(crate) chunk: usize,
    pub(crate) buffers: Vec<(usize, Event)>,
}

// SAFETY: the pinned addresses are plain memory used under the device's staging mutex.
unsafe impl Send for Staging {}

impl Staging {
    /// Call with the context entered. On failure the buffers made so far are freed (the
    /// partial `Staging` drops).
    pub(crate) fn new(chunk: usize) -> Result<Staging> {
        let mut staging = Staging {
            chunk,
            buffers: Vec::with_capacity(BUFFERS),
        };
        for _ in 0..BUFFERS {
            let event = Event::new()?;
            let mut p = null_mut();
            // SAFETY: allocates pinned host memory, portable to every context; kept for the
            // life of the process (the staging of a started device is never dropped).
            unsafe { sys::cuMemHostAlloc(&mut p, chunk, sys::CU_MEMHOSTALLOC_PORTABLE) }
                .check("cuMemHostAlloc (staging buffer)")?;
            staging.buffers.push((p as usize, event));
        }
        Ok(staging)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (p, event) in &self.buffers {
            // a transfer may still use the buffer: wait for it first
            let _ = event.wait();
            // SAFETY: a block from cuMemHostAlloc in `new`, freed once.
            unsafe { sys::cuMemFreeHost(*p as *mut c_void) };
        }
    }
}

pub(crate) struct StagingGuard<'a>(pub(crate) MutexGuard<'a, Option<Staging>>);

impl std::ops::Deref for StagingGuard<'_> {
    type Target = Staging;
    fn deref(&self) -> &Staging {
        self.0
            .as_ref()
            .expect("staging is set before the guard is made")
    }
}

pub fn alloc(device: Device, nbytes: usize, zeroed: bool) -> Result<Storage> {
    let d = dev(device, &format!("cannot allocate on {device}"))?;
    if nbytes == 0 {
        return Ok(Storage::foreign(null_mut(), 0, device, Release::none()));
    }
    let _entered = d.enter()?;
    if device.device_type == device_type::CUDA_HOST {
        let mut p = null_mut();
        // SAFETY: allocates pinned host memory in the current context (portable).
        unsafe { sys::cuMemHostAlloc(&mut p, nbytes, sys::CU_MEMHOSTALLOC_PORTABLE) }
            .check(&format!("cuMemHostAlloc of {nbytes} bytes on {device}"))?;
        let addr = p as usize;
        if zeroed {
            // SAFETY: a fresh allocation of `nbytes` that nobody else sees yet.
            unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0, nbytes) };
        }
        let id = d.id;
        let release = Release::new(move || {
            let Ok(d) = dev_id(id) else { return };
            if let Ok(_entered) = enter(d.ctx) {
                // SAFETY: frees the pinned block allocated above in this context, once (a
                // Release runs once).
                unsafe { sys::cuMemFreeHost(addr as *mut c_void) };
            }
        });
        return Ok(Storage::foreign(p.cast(), nbytes, device, release));
    }
    let mut p = 0;
    // SAFETY: allocates device memory in the current (the device's primary) context.
    unsafe { sys::cuMemAlloc_v2(&mut p, nbytes) }
        .check(&format!("cuMemAlloc of {nbytes} bytes on {device}"))?;
    d.allocated.fetch_add(nbytes as u64, Ordering::Relaxed);
    let id = d.id;
    let release = Release::new(move || free_device(id, p, nbytes));
    let storage = Storage::foreign(p as *mut u8, nbytes, device, release);
    if zeroed {
        // SAFETY: the fresh allocation of `nbytes`, on dlshare's stream of its device.
        unsafe { sys::cuMemsetD8Async(p, 0, nbytes, d.stream) }.check("cuMemsetD8Async")?;
        // SAFETY: dlshare's stream in the current context.
        unsafe { sys::cuStreamSynchronize(d.stream) }.check("cuStreamSynchronize")?;
    }
    Ok(storage)
}

/// Frees device memory in its own device's context. Errors are ignored: this runs from a
/// drop, possibly while the process shuts the driver down.
pub(crate) fn free_device(id: i32, p: sys::CUdeviceptr, nbytes: usize) {
    let Ok(d) = dev_id(id) else { return };
    if let Ok(_entered) = enter(d.ctx) {
        // SAFETY: `p` came from cuMemAlloc in this context and is freed once (a Release
        // runs once). cuMemFree waits for work still using the memory.
        unsafe { sys::cuMemFree_v2(p) };
    }
    d.allocated.fetch_sub(nbytes as u64, Ordering::Relaxed);
}

pub fn memory_allocated(device_id: i32) -> Result<u64> {
    Ok(dev_id(device_id)?.allocated.load(Ordering::Relaxed))
}

/// Whether `[p, p + n)` is pinned (page-locked or registered) host memory.
pub(crate) fn is_pinned(p: *const u8, n: usize) -> bool {
    let host_memory = |addr: usize| {
        let mut kind: u32 = 0;
        // SAFETY: a query that writes one unsigned int; pageable memory gives an error.
        let r = unsafe {
            sys::cuPointerGetAttribute(
                (&mut kind as *mut u32).cast(),
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                addr as sys::CUdeviceptr,
            )
        };
        r == CUresult::CUDA_SUCCESS && kind == sys::CUmemorytype::CU_MEMORYTYPE_HOST as u32
    };
    host_memory(p as usize) && host_memory(p as usize + n - 1)
}

/// Runs `dma` (which must wait for its transfer) with `[p, p + n)` registered as pinned;
/// `Ok(false)` when the memory cannot be registered (the caller stages instead).
pub(crate) fn registered(p: *mut u8, n: usize, dma: impl FnOnce() -> Result<()>) -> Result<bool> {
    // SAFETY: pins the caller's host range for the duration of `dma`.
    let r = unsafe { sys::cuMemHostRegister_v2(p.cast(), n, 0) };
    if r != CUresult::CUDA_SUCCESS {
        return Ok(false);
    }
    let result = dma();
    // SAFETY: unpins the range registered above, after its transfer finished.
    unsafe { sys::cuMemHostUnregister(p.cast()) };
    result.map(|()| true)
}
