//! CUDA devices (DESIGN.md §5): device and pinned memory, host <-> device <-> device copies, and
//! the streams that DLPack's stream handoff needs.
//!
//! The driver API is loaded at run time (cudarc, `dynamic-loading`, API pinned to CUDA 12.0):
//! building needs no CUDA toolkit, and without a driver or a GPU every CUDA request returns
//! `Error::DeviceUnavailable` with the reason (no call into a missing library, no panic). With
//! the `cuda` feature off, the same functions exist and say that the build has no CUDA.
//!
//! - Contexts: each device's primary context (the one PyTorch and CuPy use), retained once for
//!   the life of the process. Every call pushes it and pops it again: the caller's current
//!   context is left as it was.
//! - Memory: device storage (`kDLCUDA`) from `cuMemAlloc`, freed with `cuMemFree` in its own
//!   device's context when the last owner drops (`cuMemFree` waits for work still using it);
//!   pinned host storage (`kDLCUDAHost`) from `cuMemHostAlloc`, portable to every context.
//! - Streams: each device has one dlshare stream (non-blocking). It carries every dependency
//!   dlshare knows of: its own copies, copies issued on a caller's stream (chained in with an
//!   event), and a producer's pending work on tensors imported through the Python binding
//!   (which passes this stream as `__dlpack__(stream=...)`). Handing a tensor to a consumer's
//!   stream records an event on it and makes the consumer's stream wait (`stream_wait`).
//! - Copies without a stream run on the dlshare stream and are complete when the call returns.
//!   With the caller's stream they are ordered on that stream, after dlshare's pending work, and
//!   may still be running when the call returns; a source they still read is kept alive until
//!   they finish (released by a later dlshare call on that device or `synchronize`). Copies to
//!   host memory always finish before returning.
//! - Pageable host memory goes through pinned staging buffers (4 x 8 MiB per device by default,
//!   `DLSHARE_CUDA_CHUNK_MB` changes the size): the CPU copy kernels pack the next buffer
//!   (strided layouts, byte swaps and casts happen in that packing) while the previous one is
//!   on its way (pipelined on the stream); device -> host runs the same pipeline backwards.
//!   Pinned host memory is copied directly. `DLSHARE_CUDA_PAGEABLE=register` pins the pageable
//!   buffer for the copy instead (cuMemHostRegister), for comparison in the GPU benchmark.
//! - Layout changes and casts of device data go through the host: the source's byte span comes
//!   down, is packed (and cast) by the CPU kernels, and goes back up.
//! - `DLSHARE_DISABLE_CUDA=1` makes CUDA unavailable (to run the no-GPU checks on a GPU host).

use std::sync::Arc;

use crate::convert::Source;
use crate::device::{Device, device_type};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Whether CUDA can be used: a driver was found and reports at least one device.
pub fn available() -> bool {
    imp::driver_state().is_ok()
}

/// Why CUDA cannot be used (`None` when it can).
pub fn unavailable_reason() -> Option<String> {
    imp::driver_state().err()
}

/// Number of CUDA devices; `DeviceUnavailable` (saying why) when CUDA cannot be used.
pub fn device_count() -> Result<i32> {
    imp::driver_state().map_err(|why| Error::DeviceUnavailable(format!("no CUDA devices: {why}")))
}

/// Checks that `device` (a `kDLCUDA` or `kDLCUDAHost` device) can be used, starting its context.
/// `doing` opens the message: "cannot allocate on cuda:0", "copying to cuda:1 needs a CUDA device".
fn check_device(device: Device, doing: &str) -> Result<()> {
    imp::check_device(device, doing)
}

/// Whether a conversion between these devices involves a CUDA device (so a stream applies).
pub fn involves_cuda(from: Device, to: Device) -> bool {
    from.device_type == device_type::CUDA || to.device_type == device_type::CUDA
}

/// For the decision: can dlshare copy from `from` to `to` when one of them is not plain CPU
/// memory? Errors name the device and why.
pub fn check_copy(from: Device, to: Device) -> Result<()> {
    match from.device_type {
        device_type::CUDA => {
            check_device(from, &format!("copying from {from} needs a CUDA device"))?
        }
        _ if from.is_host_accessible() => {}
        _ => {
            return Err(Error::DeviceUnavailable(format!(
                "copying from {from} is not supported: dlshare copies from memory the CPU reads \
                 and from CUDA devices"
            )));
        }
    }
    match to.device_type {
        device_type::CPU => Ok(()),
        device_type::CUDA | device_type::CUDA_HOST => {
            check_device(to, &format!("copying to {to} needs a CUDA device"))
        }
        _ => Err(Error::DeviceUnavailable(format!(
            "copying to {to} is not supported: dlshare copies to cpu, cuda:N and cuda_host:N \
             (pinned) memory"
        ))),
    }
}

/// Checks that dlshare can allocate on `device` (not the CPU): a usable CUDA device, or pinned
/// host memory (`cuda_host:N`) with CUDA device N usable.
pub fn check_alloc(device: Device) -> Result<()> {
    match device.device_type {
        device_type::CUDA | device_type::CUDA_HOST => {
            check_device(device, &format!("cannot allocate on {device}"))
        }
        _ => Err(Error::DeviceUnavailable(format!(
            "cannot allocate on {device}: dlshare allocates CPU, CUDA (cuda:N) and pinned \
             (cuda_host:N) memory"
        ))),
    }
}

/// Allocates `nbytes` on a CUDA device (`kDLCUDA`) or as pinned host memory (`kDLCUDAHost`),
/// zeroed when asked.
pub fn alloc(device: Device, nbytes: usize, zeroed: bool) -> Result<Storage> {
    check_alloc(device)?;
    imp::alloc(device, nbytes, zeroed)
}

/// Copies `src` into a new C-contiguous tensor of `to` on `dest`, where the source or the
/// destination is CUDA or pinned memory (`convert` does plain CPU copies itself). `stream`:
/// a `CUstream` of the CUDA side to order the copy on, or `None` for dlshare's own stream and a
/// copy complete on return. `owner` is called once the copy no longer needs the source memory
/// (right away, or when an asynchronous copy on `stream` has finished); never on error.
pub fn copy(
    src: &Source,
    to: DType,
    dest: Device,
    stream: Option<usize>,
    owner: impl FnOnce() -> Arc<Storage>,
) -> Result<Tensor> {
    imp::copy(src, to, dest, stream, owner)
}

/// Waits for all work on CUDA device `device_id` (dlshare's and that of other libraries in its
/// primary context), then releases the sources that asynchronous copies kept alive.
pub fn synchronize(device_id: i32) -> Result<()> {
    imp::synchronize(device_id)
}

/// dlshare's stream on `device_id` (a `CUstream`), for producers asked to make their work
/// visible to dlshare (`__dlpack__(stream=...)`) and for callers that enqueue after it.
pub fn stream(device_id: i32) -> Result<usize> {
    imp::stream(device_id)
}

/// DLPack stream handoff (Array API `__dlpack__(stream=...)`): makes `consumer` wait for all
/// work dlshare has issued on `device_id` (an event recorded on dlshare's stream, waited on by
/// the consumer's stream), without blocking the host. `consumer` is 1 (legacy default stream),
/// 2 (per-thread default stream), a `CUstream`, or -1 (no synchronisation); 0 is refused as
/// ambiguous, as the standard says.
pub fn stream_wait(device_id: i32, consumer: i64) -> Result<()> {
    if consumer == -1 {
        return Ok(());
    }
    if consumer == 0 || consumer < -1 {
        return Err(Error::InvalidArgument(format!(
            "stream {consumer} is not a CUDA stream for the DLPack handoff: use 1 (legacy \
             default stream), 2 (per-thread default stream), a cudaStream_t, or -1 (no \
             synchronisation); 0 is ambiguous and disallowed by the Array API standard"
        )));
    }
    imp::stream_wait(device_id, consumer as usize)
}

/// Bytes of device memory that dlshare allocations hold on `device_id` right now.
pub fn memory_allocated(device_id: i32) -> Result<u64> {
    imp::memory_allocated(device_id)
}

fn cuda_device(device_id: i32) -> Device {
    Device::cuda(device_id)
}

#[cfg(not(feature = "cuda"))]
mod imp {
    //! The build without the `cuda` feature: every CUDA request says so.

    use std::sync::Arc;

    use super::cuda_device;
    use crate::convert::Source;
    use crate::device::Device;
    use crate::dtype::DType;
    use crate::error::{Error, Result};
    use crate::storage::Storage;
    use crate::tensor::Tensor;

    const WHY: &str = "this build of dlshare has no CUDA support (built without the `cuda` \
                       feature); rebuild with default features, or use the CPU";

    pub fn driver_state() -> std::result::Result<i32, String> {
        Err(WHY.to_string())
    }

    pub fn check_device(_device: Device, doing: &str) -> Result<()> {
        Err(Error::DeviceUnavailable(format!("{doing}: {WHY}")))
    }

    pub fn alloc(device: Device, _nbytes: usize, _zeroed: bool) -> Result<Storage> {
        Err(Error::DeviceUnavailable(format!(
            "cannot allocate on {device}: {WHY}"
        )))
    }

    pub fn copy(
        src: &Source,
        _to: DType,
        dest: Device,
        _stream: Option<usize>,
        _owner: impl FnOnce() -> Arc<Storage>,
    ) -> Result<Tensor> {
        Err(Error::DeviceUnavailable(format!(
            "copying from {} to {dest}: {WHY}",
            src.device
        )))
    }

    fn unavailable<T>(device_id: i32) -> Result<T> {
        Err(Error::DeviceUnavailable(format!(
            "{}: {WHY}",
            cuda_device(device_id)
        )))
    }

    pub fn synchronize(device_id: i32) -> Result<()> {
        unavailable(device_id)
    }

    pub fn stream(device_id: i32) -> Result<usize> {
        unavailable(device_id)
    }

    pub fn stream_wait(device_id: i32, _consumer: usize) -> Result<()> {
        unavailable(device_id)
    }

    pub fn memory_allocated(device_id: i32) -> Result<u64> {
        unavailable(device_id)
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use std::ffi::{CStr, c_char, c_void};
    use std::marker::PhantomData;
    use std::panic::catch_unwind;
    use std::ptr::null_mut;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

    use cudarc::driver::sys::{self, CUresult};

    use super::cuda_device;
    use crate::convert::Source;
    use crate::device::{Device, device_type};
    use crate::dtype::DType;
    use crate::error::{Error, Result};
    use crate::kernels;
    use crate::layout;
    use crate::storage::{Release, Storage};
    use crate::tensor::Tensor;

    /// Every driver function dlshare calls: checked at load time, so that an old driver gives
    /// DEVICE_UNAVAILABLE instead of cudarc's panic on a missing symbol later.
    const SYMBOLS: &[&str] = &[
        "cuInit",
        "cuGetErrorName",
        "cuGetErrorString",
        "cuDeviceGetCount",
        "cuDeviceGet",
        "cuDevicePrimaryCtxRetain",
        "cuDevicePrimaryCtxRelease_v2",
        "cuCtxPushCurrent_v2",
        "cuCtxPopCurrent_v2",
        "cuCtxSynchronize",
        "cuCtxEnablePeerAccess",
        "cuDeviceCanAccessPeer",
        "cuStreamCreate",
        "cuStreamSynchronize",
        "cuStreamWaitEvent",
        "cuEventCreate",
        "cuEventDestroy_v2",
        "cuEventRecord",
        "cuEventSynchronize",
        "cuEventQuery",
        "cuMemAlloc_v2",
        "cuMemFree_v2",
        "cuMemHostAlloc",
        "cuMemFreeHost",
        "cuMemHostRegister_v2",
        "cuMemHostUnregister",
        "cuMemsetD8Async",
        "cuMemcpyHtoDAsync_v2",
        "cuMemcpyDtoHAsync_v2",
        "cuMemcpyDtoDAsync_v2",
        "cuMemcpyPeerAsync",
        "cuPointerGetAttribute",
    ];

    /// Staging buffers per device.
    const BUFFERS: usize = 4;

    fn chunk_bytes() -> usize {
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

    fn register_pageable() -> bool {
        static REGISTER: OnceLock<bool> = OnceLock::new();
        *REGISTER.get_or_init(|| {
            std::env::var("DLSHARE_CUDA_PAGEABLE").is_ok_and(|v| v.trim() == "register")
        })
    }

    /// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
    fn describe(code: CUresult) -> String {
        let (mut name, mut text): (*const c_char, *const c_char) =
            (std::ptr::null(), std::ptr::null());
        // SAFETY: both functions only write a pointer to a static string (or fail, leaving
        // NULL); the library is loaded whenever a CUresult exists.
        unsafe {
            sys::cuGetErrorName(code, &mut name);
            sys::cuGetErrorString(code, &mut text);
        }
        let read = |p: *const c_char| {
            // SAFETY: non-NULL pointers from the calls above are static NUL-terminated strings.
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        match (read(name), read(text)) {
            (Some(n), Some(t)) => format!("{n} ({t})"),
            (Some(n), None) => n,
            _ => format!("{code:?}"),
        }
    }

    trait Check {
        fn check(self, what: &str) -> Result<()>;
    }

    impl Check for CUresult {
        fn check(self, what: &str) -> Result<()> {
            if self == CUresult::CUDA_SUCCESS {
                return Ok(());
            }
            let text = format!("{what} failed: {}", describe(self));
            Err(match self {
                CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                    Error::OutOfMemory(format!("{text}; free memory or use a smaller tensor"))
                }
                _ => Error::Cuda(text),
            })
        }
    }

    // ---- the driver and its devices ----------------------------------------------------------

    struct Driver {
        devices: Vec<OnceLock<Result<Dev>>>,
    }

    static DRIVER: OnceLock<std::result::Result<Driver, String>> = OnceLock::new();

    fn driver() -> std::result::Result<&'static Driver, String> {
        DRIVER
            .get_or_init(|| {
                catch_unwind(load).unwrap_or_else(|_| {
                    Err("loading the CUDA driver failed (the loader panicked)".into())
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn driver_state() -> std::result::Result<i32, String> {
        driver().map(|d| d.devices.len() as i32)
    }

    fn load() -> std::result::Result<Driver, String> {
        if std::env::var("DLSHARE_DISABLE_CUDA").is_ok_and(|v| !v.is_empty() && v != "0") {
            return Err("CUDA is turned off (DLSHARE_DISABLE_CUDA is set)".into());
        }
        // SAFETY: only tries to open the driver library under its usual names.
        if !unsafe { sys::is_culib_present() } {
            return Err(
                "no CUDA driver was found (libcuda.so could not be loaded); install the \
                        NVIDIA driver, or use the CPU"
                    .into(),
            );
        }
        // SAFETY: the library was just found, so `culib` opens it (it panics only when absent).
        let lib = unsafe { sys::culib() };
        for name in SYMBOLS {
            // SAFETY: looks a symbol up without calling it.
            if unsafe { lib.get::<*const c_void>(name.as_bytes()) }.is_err() {
                return Err(format!(
                    "the CUDA driver is too old: it has no {name}; dlshare needs a driver for \
                     CUDA 12.0 or newer"
                ));
            }
        }
        // SAFETY: cuInit may be called any number of times, from any thread.
        let r = unsafe { sys::cuInit(0) };
        if r != CUresult::CUDA_SUCCESS {
            return Err(format!(
                "the CUDA driver did not start: cuInit failed with {}",
                describe(r)
            ));
        }
        let mut count = 0;
        // SAFETY: writes the count into `count`.
        let r = unsafe { sys::cuDeviceGetCount(&mut count) };
        if r != CUresult::CUDA_SUCCESS {
            return Err(format!("cuDeviceGetCount failed with {}", describe(r)));
        }
        if count <= 0 {
            return Err("the CUDA driver reports no devices".into());
        }
        Ok(Driver {
            devices: (0..count).map(|_| OnceLock::new()).collect(),
        })
    }

    /// One device: its primary context, dlshare's stream on it, staging buffers, the sources
    /// that asynchronous copies still read, and the bytes dlshare holds there.
    struct Dev {
        id: i32,
        cu_device: sys::CUdevice,
        ctx: sys::CUcontext,
        stream: sys::CUstream,
        staging: Mutex<Option<Staging>>,
        retired: Mutex<Vec<(Event, Arc<Storage>)>>,
        peers: Mutex<Vec<i32>>,
        allocated: AtomicU64,
    }

    // SAFETY: driver handles (context, stream) may be used from any thread; everything else is
    // behind mutexes or atomic.
    unsafe impl Send for Dev {}
    // SAFETY: as above.
    unsafe impl Sync for Dev {}

    /// The device behind `device` (a CUDA or CUDA-host device), started on first use.
    fn dev(device: Device, doing: &str) -> Result<&'static Dev> {
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

    fn dev_id(device_id: i32) -> Result<&'static Dev> {
        let device = cuda_device(device_id);
        dev(device, &device.name())
    }

    /// The current context while alive (pushed by `Dev::enter`, popped on drop, same thread).
    struct Entered(PhantomData<*const ()>);

    impl Drop for Entered {
        fn drop(&mut self) {
            let mut popped = null_mut();
            // SAFETY: pops the context that `enter` pushed on this thread.
            unsafe { sys::cuCtxPopCurrent_v2(&mut popped) };
        }
    }

    fn enter(ctx: sys::CUcontext) -> Result<Entered> {
        // SAFETY: `ctx` is a retained primary context, valid for the life of the process.
        unsafe { sys::cuCtxPushCurrent_v2(ctx) }.check("cuCtxPushCurrent")?;
        Ok(Entered(PhantomData))
    }

    impl Dev {
        fn start(id: i32) -> Result<Dev> {
            let mut cu_device = 0;
            // SAFETY: writes the handle of device `id` (< the device count).
            unsafe { sys::cuDeviceGet(&mut cu_device, id) }.check("cuDeviceGet")?;
            let mut ctx = null_mut();
            // SAFETY: retains the device's primary context; kept for the life of the process
            // once the device has started.
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
        fn enter(&self) -> Result<Entered> {
            let entered = enter(self.ctx)?;
            self.drain();
            Ok(entered)
        }

        /// Drops the sources whose asynchronous copies have finished. The drops run after the
        /// lock is released: a producer's deleter may call back into dlshare.
        fn drain(&self) {
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

        fn retire(&self, event: Event, owner: Arc<Storage>) {
            lock(&self.retired).push((event, owner));
        }

        /// The stream a copy on this device runs on: the caller's (after dlshare's pending
        /// work) or dlshare's own. Call with the context entered.
        fn issue(&self, user: Option<usize>) -> Result<Issue> {
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
        fn finish(&self, issue: Issue, then: Then) -> Result<Option<Event>> {
            if !issue.user {
                // SAFETY: dlshare's stream on this device, whose context is current.
                return unsafe { sys::cuStreamSynchronize(self.stream) }
                    .check("cuStreamSynchronize")
                    .map(|()| None);
            }
            let event = Event::new()?;
            event.record(issue.stream)?;
            // SAFETY: dlshare's stream waits for an event recorded on the caller's stream.
            unsafe { sys::cuStreamWaitEvent(self.stream, event.0, 0) }
                .check("cuStreamWaitEvent")?;
            match then {
                Then::HostWaits => event.wait().map(|()| None),
                Then::SourceFree => Ok(None),
                Then::SourceInUse => Ok(Some(event)),
            }
        }

        /// The staging buffers (allocated on first use). Call with the context entered.
        fn staging(&self) -> Result<StagingGuard<'_>> {
            let mut guard = lock(&self.staging);
            if guard.is_none() {
                *guard = Some(Staging::new(chunk_bytes())?);
            }
            Ok(StagingGuard(guard))
        }

        /// Enables direct access to `peer`'s memory once, when the hardware allows it
        /// (cuMemcpyPeer stages through the host otherwise). Call with this context entered.
        fn enable_peer(&self, peer: &Dev) {
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

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    struct Issue {
        stream: sys::CUstream,
        user: bool,
    }

    /// What a copy on the caller's stream needs at the end.
    enum Then {
        /// The host reads the result next: wait.
        HostWaits,
        /// The source was fully read by the CPU (staged): nothing to keep.
        SourceFree,
        /// The device still reads the source: keep it until the returned event.
        SourceInUse,
    }

    /// A CUDA event (timing off), destroyed on drop.
    struct Event(sys::CUevent);

    // SAFETY: event handles may be used and destroyed from any thread.
    unsafe impl Send for Event {}
    // SAFETY: as above.
    unsafe impl Sync for Event {}

    impl Event {
        /// Creates an event in the current context.
        fn new() -> Result<Event> {
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

        fn record(&self, stream: sys::CUstream) -> Result<()> {
            // SAFETY: a live event and a stream of the same (current) context.
            unsafe { sys::cuEventRecord(self.0, stream) }.check("cuEventRecord")
        }

        fn wait(&self) -> Result<()> {
            // SAFETY: a live event; an event never recorded returns at once.
            unsafe { sys::cuEventSynchronize(self.0) }.check("cuEventSynchronize")
        }

        fn is_done(&self) -> bool {
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
    fn wait_for(waiter: sys::CUstream, on: sys::CUstream) -> Result<()> {
        if waiter == on {
            return Ok(());
        }
        let event = Event::new()?;
        event.record(on)?;
        // SAFETY: a stream waits for an event recorded on another; events may cross contexts.
        unsafe { sys::cuStreamWaitEvent(waiter, event.0, 0) }.check("cuStreamWaitEvent")
    }

    /// Pinned host buffers with one event each (recorded after the DMA that uses the buffer).
    struct Staging {
        chunk: usize,
        buffers: Vec<(usize, Event)>,
    }

    // SAFETY: the pinned addresses are plain memory used under the device's staging mutex.
    unsafe impl Send for Staging {}

    impl Staging {
        /// Call with the context entered. On failure the buffers made so far are freed (the
        /// partial `Staging` drops).
        fn new(chunk: usize) -> Result<Staging> {
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
                // a transfer may still use the buffer (an error mid-pipeline): wait first
                let _ = event.wait();
                // SAFETY: a block from cuMemHostAlloc in `new`, freed once.
                unsafe { sys::cuMemFreeHost(*p as *mut c_void) };
            }
        }
    }

    struct StagingGuard<'a>(MutexGuard<'a, Option<Staging>>);

    impl std::ops::Deref for StagingGuard<'_> {
        type Target = Staging;
        fn deref(&self) -> &Staging {
            self.0
                .as_ref()
                .expect("staging is set before the guard is made")
        }
    }

    // ---- memory ------------------------------------------------------------------------------

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
    fn free_device(id: i32, p: sys::CUdeviceptr, nbytes: usize) {
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

    // ---- copies ------------------------------------------------------------------------------

    pub fn copy(
        src: &Source,
        to: DType,
        dest: Device,
        stream: Option<usize>,
        owner: impl FnOnce() -> Arc<Storage>,
    ) -> Result<Tensor> {
        let mut out = Tensor::empty(to, &src.shape, dest, false)?;
        out.is_copy = true;
        let nbytes = out.nbytes() as usize;
        let dst = out.data_ptr();
        let from_cuda = src.device.device_type == device_type::CUDA;
        let to_cuda = dest.device_type == device_type::CUDA;
        let doing = |d: Device, dir: &str| format!("copying {dir} {d} needs a CUDA device");
        let pending = if nbytes == 0 {
            None
        } else {
            match (from_cuda, to_cuda) {
                (false, true) => {
                    let d = dev(dest, &doing(dest, "to"))?;
                    let _entered = d.enter()?;
                    h2d(d, src, to, dst as sys::CUdeviceptr, nbytes, stream)?.map(|e| (d, e))
                }
                (true, false) => {
                    let d = dev(src.device, &doing(src.device, "from"))?;
                    let _entered = d.enter()?;
                    d2h(d, src, to, dst, nbytes, dest, stream)?;
                    None
                }
                (true, true) => {
                    let sd = dev(src.device, &doing(src.device, "from"))?;
                    let dd = dev(dest, &doing(dest, "to"))?;
                    d2d(sd, dd, src, to, dst as sys::CUdeviceptr, nbytes, stream)?.map(|e| (dd, e))
                }
                (false, false) => {
                    // host memory into pinned memory: the CPU kernels alone
                    // SAFETY: the validated source is readable; `dst` is the fresh output of
                    // exactly `nbytes`, seen by nobody else yet.
                    unsafe {
                        kernels::copy_to_contiguous(&host_source(src), slice(dst, nbytes), to)?
                    };
                    None
                }
            }
        };
        match pending {
            Some((d, event)) => d.retire(event, owner()),
            None => drop(owner()),
        }
        Ok(out)
    }

    /// The kernels' view of a host source.
    fn host_source(src: &Source) -> kernels::Source<'_> {
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
    unsafe fn slice<'a>(p: *mut u8, n: usize) -> &'a mut [u8] {
        // SAFETY: forwarded caller contract.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }

    /// The copy is a plain byte copy of one C-contiguous block.
    fn is_raw(src: &Source, to: DType) -> bool {
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

    /// Whether `[p, p + n)` is pinned (page-locked or registered) host memory.
    fn is_pinned(p: *const u8, n: usize) -> bool {
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
    fn registered(p: *mut u8, n: usize, dma: impl FnOnce() -> Result<()>) -> Result<bool> {
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

    /// Host -> device. Call with `d`'s context entered.
    fn h2d(
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
    fn staged_h2d(
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
            unsafe {
                sys::cuMemcpyHtoDAsync_v2(dst + offset, *buffer as *const c_void, fill, stream)
            }
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

    /// A host byte range as a one-dimensional u8 source.
    fn bytes_source(p: *const u8, n: usize) -> Source {
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
    fn for_each_piece(
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

    /// Device -> host, finished on return. Call with `d`'s context entered.
    fn d2h(
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
    fn staged_d2h(
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
                kernels::copy_to_contiguous(
                    &from,
                    slice(dst.wrapping_add(offset), size),
                    DType::U8,
                )?
            };
            if i + k < n {
                fetch(i + k)?;
            }
        }
        Ok(())
    }

    /// Device -> device. A plain block is one device copy (peer-to-peer across devices); a
    /// layout change or a cast goes through the host.
    fn d2d(
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
}
