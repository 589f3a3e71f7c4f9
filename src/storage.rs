//! Storage: the memory a tensor points into. Always held behind an `Arc`; the last owner's drop
//! frees owned memory or runs the foreign producer's release exactly once.
//!
//! Large owned buffers (>= `MAP_MIN_BYTES`) are mapped directly, 2 MiB-aligned, with
//! `MADV_HUGEPAGE` on Linux: first touch then costs one fault per 2 MiB instead of one per
//! 4 KiB (on the 2-core VM of docs/benchmarks.md a copy into fresh 4 KiB pages ran at ~2.7 GB/s,
//! into fresh huge pages at ~8-11 GB/s, into touched memory at ~19 GB/s). The pages are not
//! touched here: the copy kernel that fills the buffer is the first to write it, on the threads
//! that fill each part. Fresh mappings read as zeros, so `zeroed` costs nothing for them.
//! Freed mappings are kept, up to a limit (256 MiB in all by default; `DLSHARE_CACHE_BYTES`,
//! `set_cache_limit`), for the next buffer of the same size, as glibc keeps freed memory below
//! 32 MiB for NumPy's and PyTorch's buffers: a pipeline converting batches of one size then
//! writes into memory that is already faulted in. Under Miri every buffer comes from the global
//! allocator.

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::device::Device;
use crate::error::{Error, Result};

/// Alignment of every owned allocation (DESIGN §3: some consumers share only aligned memory).
pub const OWNED_ALIGN: usize = 256;

/// Owned buffers from this size on are mapped directly with huge-page advice.
pub const MAP_MIN_BYTES: usize = 2 << 20;

/// The huge page size the mappings are aligned to (x86-64 and most AArch64 kernels).
#[cfg(all(unix, not(miri)))]
const HUGE_PAGE: usize = 2 << 20;

/// Freed mappings are kept for the next allocation of the same size class (multiples of 2 MiB),
/// up to the cache limit in all. glibc keeps freed memory the same way below its 32 MiB mmap
/// threshold, so NumPy and PyTorch buffers of these sizes are reused without page faults; a
/// fresh mapping faults and zeroes every page again (a 4 MiB copy took 140 us into a fresh
/// mapping, 67 us into reused memory, in benches/threads.rs; on the VM of docs/benchmarks.md a
/// 64 MiB from_dataframe result took 15-95 ms into fresh pages, 12 ms into reused ones).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// The cache limit in bytes; `usize::MAX` until first read from `DLSHARE_CACHE_BYTES`.
static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The most bytes of freed mappings kept for reuse: set by `set_cache_limit`, else the
/// `DLSHARE_CACHE_BYTES` environment variable (a byte count, read once), else
/// `DEFAULT_CACHE_BYTES`.
pub fn cache_limit() -> usize {
    match CACHE_LIMIT.load(Ordering::Relaxed) {
        usize::MAX => {
            let limit = std::env::var("DLSHARE_CACHE_BYTES")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n != usize::MAX)
                .unwrap_or(DEFAULT_CACHE_BYTES);
            let _ = CACHE_LIMIT.compare_exchange(
                usize::MAX,
                limit,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            CACHE_LIMIT.load(Ordering::Relaxed)
        }
        limit => limit,
    }
}

/// Sets the cache limit (`None`: back to the default of `cache_limit`) and gives back at once
/// the cached mappings that no longer fit, oldest first; 0 empties the cache and keeps nothing.
pub fn set_cache_limit(bytes: Option<usize>) {
    match bytes {
        Some(n) => CACHE_LIMIT.store(n.min(usize::MAX - 1), Ordering::Relaxed),
        None => {
            CACHE_LIMIT.store(usize::MAX, Ordering::Relaxed);
            cache_limit();
        }
    }
    #[cfg(all(unix, not(miri)))]
    {
        let limit = cache_limit();
        let mut cache = MAP_CACHE.lock().unwrap_or_else(|p| p.into_inner());
        let mut held: usize = cache.iter().map(|&(_, l)| l).sum();
        while held > limit {
            let (start, len) = cache.remove(0);
            held -= len;
            // SAFETY: a cached mapping made by `map_fresh` that nothing uses.
            unsafe { libc::munmap(start as *mut libc::c_void, len) };
        }
    }
}

/// Bytes of freed mappings held for reuse now.
pub fn cached_bytes() -> usize {
    #[cfg(all(unix, not(miri)))]
    {
        let cache = MAP_CACHE.lock().unwrap_or_else(|p| p.into_inner());
        cache.iter().map(|&(_, l)| l).sum()
    }
    #[cfg(not(all(unix, not(miri))))]
    0
}

/// Mappings freed for reuse: (address, length), most recent last.
#[cfg(all(unix, not(miri)))]
static MAP_CACHE: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

/// The cache, unless another thread holds it: it is only a shortcut, and a process forked while
/// another thread held the lock must not wait for it forever.
#[cfg(all(unix, not(miri)))]
fn map_cache() -> Option<std::sync::MutexGuard<'static, Vec<(usize, usize)>>> {
    match MAP_CACHE.try_lock() {
        Ok(cache) => Some(cache),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Number of storages alive in the process (owned or foreign), for leak tests.
pub fn live_storage_count() -> usize {
    live::count() as usize
}

/// The count behind `live_storage_count`, kept without a locked read-modify-write instruction
/// per storage: such an instruction costs ~7 ns on the machine of docs/benchmarks.md, and a
/// small conversion makes and drops a storage each time. Each thread counts on a counter only
/// it writes (a plain load and store); the count is the sum of all counters. A thread's counter
/// goes to the next new thread when it ends, so there are about as many counters as threads
/// alive at once; they are never freed.
mod live {
    use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, Ordering};

    struct Counter {
        count: AtomicIsize,
        /// Owned by a live thread, the only one that writes `count`.
        in_use: AtomicBool,
        /// The next counter: null, or a leaked `Counter` (never freed), set once.
        next: AtomicPtr<Counter>,
    }

    impl Counter {
        const fn new(in_use: bool) -> Counter {
            Counter {
                count: AtomicIsize::new(0),
                in_use: AtomicBool::new(in_use),
                next: AtomicPtr::new(std::ptr::null_mut()),
            }
        }

        fn next(&self) -> Option<&'static Counter> {
            let next = self.next.load(Ordering::Acquire);
            // SAFETY: `next` is null or a counter leaked by `claim`, never freed, and written
            // in full before it was published here (Release/Acquire).
            unsafe { next.as_ref() }
        }
    }

    /// The list of counters (the first one is static, the rest leaked).
    static FIRST: Counter = Counter::new(false);
    /// Counts of threads whose own counter is already gone (thread-local teardown).
    static UNOWNED: AtomicIsize = AtomicIsize::new(0);

    /// A counter no live thread owns, or a new one appended to the list. Lock-free, so a child
    /// forked while another thread was here does not wait for it.
    fn claim() -> &'static Counter {
        let mut last = &FIRST;
        loop {
            if last
                .in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return last;
            }
            match last.next() {
                Some(next) => last = next,
                None => break,
            }
        }
        let fresh: &'static Counter = Box::leak(Box::new(Counter::new(true)));
        let fresh_ptr = fresh as *const Counter as *mut Counter;
        loop {
            match last.next.compare_exchange(
                std::ptr::null_mut(),
                fresh_ptr,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return fresh,
                Err(_) => last = last.next().expect("a counter that has a successor"),
            }
        }
    }

    /// This thread's counter; given up (for the next new thread) when the thread ends.
    struct Owned(&'static Counter);

    impl Drop for Owned {
        fn drop(&mut self) {
            // Release: the next owner starts from the count written here.
            self.0.in_use.store(false, Ordering::Release);
        }
    }

    thread_local! {
        static MINE: Owned = Owned(claim());
    }

    /// Adds `delta` to the count.
    pub(super) fn add(delta: isize) {
        let counted = MINE.try_with(|mine| {
            let c = &mine.0.count;
            c.store(
                c.load(Ordering::Relaxed).wrapping_add(delta),
                Ordering::Relaxed,
            );
        });
        if counted.is_err() {
            UNOWNED.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// The count: every counter added up (a storage made on one thread and dropped on another
    /// adds 1 to one counter and -1 to the other).
    pub(super) fn count() -> isize {
        let mut sum = UNOWNED.load(Ordering::SeqCst);
        let mut counter = Some(&FIRST);
        while let Some(c) = counter {
            sum = sum.wrapping_add(c.count.load(Ordering::SeqCst));
            counter = c.next();
        }
        sum
    }
}

/// A one-shot release action for foreign memory (a DLPack deleter, a view's release callback, or
/// a Rust value kept alive). Dropping it runs the action; `disarm` gives ownership back unrun.
pub struct Release(Action);

enum Action {
    None,
    Boxed(Box<dyn FnOnce() + Send + Sync>),
    /// A C callback and its argument, kept without a heap allocation (small conversions of
    /// views are bound by per-call costs).
    Callback(unsafe extern "C" fn(*mut c_void), *mut c_void),
}

// SAFETY: a boxed action is `Send + Sync`; a C callback is only accepted (`Release::callback`)
// with the promise that it may be called from any thread, and it is called at most once.
unsafe impl Send for Release {}
// SAFETY: nothing in a `Release` can be reached through `&Release`.
unsafe impl Sync for Release {}

impl Release {
    pub fn new(action: impl FnOnce() + Send + Sync + 'static) -> Release {
        Release(Action::Boxed(Box::new(action)))
    }

    /// Calls `f(ctx)` once when dropped (nothing when `f` is `None`).
    ///
    /// # Safety
    /// `f` must be safe to call with `ctx`, once, from any thread, at any later time.
    pub unsafe fn callback(
        f: Option<unsafe extern "C" fn(*mut c_void)>,
        ctx: *mut c_void,
    ) -> Release {
        match f {
            Some(f) => Release(Action::Callback(f, ctx)),
            None => Release(Action::None),
        }
    }

    /// Nothing to run (memory whose lifetime the caller guarantees).
    pub fn none() -> Release {
        Release(Action::None)
    }

    /// Forget the action without running it (the caller keeps ownership).
    pub fn disarm(mut self) {
        self.0 = Action::None;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.0, Action::None) {
            Action::None => {}
            Action::Boxed(action) => action(),
            // SAFETY: `Release::callback`'s contract: callable once with `ctx`, from any thread;
            // the action was taken out above, so this is the only call.
            Action::Callback(f, ctx) => unsafe { f(ctx) },
        }
    }
}

enum Kind {
    /// From the global allocator: `base` with `layout`, aligned up to `OWNED_ALIGN` at `ptr`.
    Owned { base: *mut u8, layout: Layout },
    /// A private anonymous mapping of `len` bytes at the storage's `ptr`.
    #[cfg(all(unix, not(miri)))]
    Mapped { len: usize },
    Foreign {
        #[allow(dead_code)]
        release: Release,
        /// Nothing but the storage reaches the memory (an ndarray moved in by
        /// `Tensor::from_ndarray`), as with owned memory.
        #[cfg_attr(not(feature = "ndarray"), allow(dead_code))]
        exclusive: bool,
    },
}

/// A block of memory on a device. Immutable after creation; shared with `Arc`.
pub struct Storage {
    ptr: *mut u8,
    nbytes: usize,
    device: Device,
    kind: Kind,
}

// SAFETY: Storage only hands out its address; the memory it owns (or the foreign release it
// holds, which is `Send + Sync`) may be freed from any thread. Concurrent writes through the
// address are the caller's business, as with any shared tensor memory.
unsafe impl Send for Storage {}
// SAFETY: see above; no interior mutability.
unsafe impl Sync for Storage {}

impl Storage {
    /// Allocates `nbytes` of CPU memory aligned to `OWNED_ALIGN`, zeroed when asked.
    pub fn alloc_cpu(nbytes: usize, zeroed: bool) -> Result<Storage> {
        #[cfg(all(unix, not(miri)))]
        if nbytes >= MAP_MIN_BYTES {
            return Storage::map_cpu(nbytes, zeroed);
        }
        // Over-allocate and align by hand: an aligned request (posix_memalign) takes glibc's
        // slow path, ~900 instructions against ~100 for a plain malloc (callgrind), and small
        // copies are bound by such per-call costs.
        const BASE_ALIGN: usize = 16;
        let layout = nbytes
            .checked_add(OWNED_ALIGN - BASE_ALIGN)
            .and_then(|total| Layout::from_size_align(total, BASE_ALIGN).ok())
            .ok_or_else(|| {
                Error::Overflow(format!("{nbytes} bytes is too large for one allocation"))
            })?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        if base.is_null() {
            return Err(Error::OutOfMemory(format!(
                "could not allocate {nbytes} bytes of CPU memory; free memory or use a smaller \
                 tensor"
            )));
        }
        // The allocation is BASE_ALIGN-aligned, so the next OWNED_ALIGN boundary is at most
        // OWNED_ALIGN - BASE_ALIGN bytes in, leaving `nbytes` after it.
        let ptr = base.wrapping_add((base as usize).next_multiple_of(OWNED_ALIGN) - base as usize);
        live::add(1);
        Ok(Storage {
            ptr,
            nbytes,
            device: Device::CPU,
            kind: Kind::Owned { base, layout },
        })
    }

    /// A mapping starting on a huge-page boundary, advised to use huge pages: a fresh one
    /// (zero-filled by the OS on first touch), or one of the same size freed earlier.
    #[cfg(all(unix, not(miri)))]
    fn map_cpu(nbytes: usize, zeroed: bool) -> Result<Storage> {
        let oom = || {
            Error::OutOfMemory(format!(
                "could not map {nbytes} bytes of CPU memory; free memory or use a smaller tensor"
            ))
        };
        // Cacheable sizes are rounded to whole huge pages (one size class per 2 MiB); larger
        // ones to whole base pages (the tail is then served by small pages).
        let unit = if nbytes <= cache_limit() {
            HUGE_PAGE
        } else {
            4096usize.max(OWNED_ALIGN)
        };
        let len = nbytes.checked_next_multiple_of(unit).ok_or_else(oom)?;
        let reused = if zeroed {
            None // fresh mappings read as zeros; reused memory would need a pass
        } else {
            map_cache().and_then(|mut cache| {
                let hit = cache.iter().rposition(|&(_, l)| l == len);
                hit.map(|i| cache.swap_remove(i).0)
            })
        };
        let start = match reused {
            Some(start) => start,
            None => Storage::map_fresh(len).ok_or_else(oom)?,
        };
        live::add(1);
        Ok(Storage {
            ptr: start as *mut u8,
            nbytes,
            device: Device::CPU,
            kind: Kind::Mapped { len },
        })
    }

    /// A new private anonymous mapping of `len` bytes starting on a huge-page boundary, with
    /// huge-page advice. `None` when the OS refuses it.
    #[cfg(all(unix, not(miri)))]
    fn map_fresh(len: usize) -> Option<usize> {
        let reserve = len.checked_add(HUGE_PAGE)?;
        // SAFETY: a new private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base as usize;
        let start = base.next_multiple_of(HUGE_PAGE);
        let (head, tail) = (start - base, reserve - (start - base) - len);
        // SAFETY: both ranges are page-aligned parts of the mapping just made that the storage
        // will not use; unmapping them leaves exactly [start, start + len).
        unsafe {
            if head > 0 {
                libc::munmap(base as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        #[cfg(target_os = "linux")]
        // SAFETY: advice on our own mapping; failure (no THP support) only loses the speed-up.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        Some(start)
    }

    /// Gives a mapping back: kept for reuse when it fits the cache, else unmapped.
    #[cfg(all(unix, not(miri)))]
    fn unmap(start: usize, len: usize) {
        let limit = cache_limit();
        if len <= limit
            && let Some(mut cache) = map_cache()
        {
            let held: usize = cache.iter().map(|&(_, l)| l).sum();
            if held + len <= limit {
                cache.push((start, len));
                return;
            }
        }
        // SAFETY: `start`/`len` is a mapping made by `map_fresh` that nothing uses any more.
        unsafe { libc::munmap(start as *mut libc::c_void, len) };
    }

    /// Wraps memory owned by someone else; `release` runs once, when the storage is dropped.
    pub fn foreign(ptr: *mut u8, nbytes: usize, device: Device, release: Release) -> Storage {
        Storage::foreign_with(ptr, nbytes, device, release, false)
    }

    /// `foreign` for memory that nothing but this storage reaches (its only other owner was
    /// moved into `release`), so that a tensor alone holding it may be viewed mutably.
    #[cfg_attr(not(feature = "ndarray"), allow(dead_code))]
    pub(crate) fn foreign_exclusive(
        ptr: *mut u8,
        nbytes: usize,
        device: Device,
        release: Release,
    ) -> Storage {
        Storage::foreign_with(ptr, nbytes, device, release, true)
    }

    fn foreign_with(
        ptr: *mut u8,
        nbytes: usize,
        device: Device,
        release: Release,
        exclusive: bool,
    ) -> Storage {
        live::add(1);
        Storage {
            ptr,
            nbytes,
            device,
            kind: Kind::Foreign { release, exclusive },
        }
    }

    /// Whether only this storage reaches its memory: dlshare's own allocations, and foreign
    /// memory built with `foreign_exclusive`. A producer's memory (a DLPack tensor, a view, a
    /// shared-memory mapping) may be seen by others.
    #[cfg_attr(not(feature = "ndarray"), allow(dead_code))]
    pub(crate) fn is_exclusive(&self) -> bool {
        match self.kind {
            Kind::Foreign { exclusive, .. } => exclusive,
            _ => true,
        }
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn is_owned(&self) -> bool {
        !matches!(self.kind, Kind::Foreign { .. })
    }

    /// The owned bytes as a mutable slice: only while the storage is not yet shared.
    pub fn owned_bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self.kind {
            Kind::Foreign { .. } => None,
            // SAFETY: owned storage is a live allocation of at least `nbytes` bytes, and
            // `&mut self` proves nobody else can see it.
            _ => Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.nbytes) }),
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self.kind {
            // SAFETY: `base` came from `alloc`/`alloc_zeroed` with this very layout and is freed
            // once, here.
            Kind::Owned { base, layout } => unsafe { dealloc(base, layout) },
            // `ptr`/`len` is the mapping made by `map_cpu`, given back once, here.
            #[cfg(all(unix, not(miri)))]
            Kind::Mapped { len } => Storage::unmap(self.ptr as usize, len),
            Kind::Foreign { .. } => {}
        }
        // A foreign storage's Release runs when `kind` drops, after this body.
        live::add(-1);
    }
}
