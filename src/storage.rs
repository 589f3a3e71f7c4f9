//! Storage: the memory a tensor points into. Always held behind an `Arc`; the last owner's drop
//! frees owned memory or runs the foreign producer's release exactly once.

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::device::Device;
use crate::error::{Error, Result};

/// Alignment of every owned allocation (DESIGN §3: some consumers share only aligned memory).
pub const OWNED_ALIGN: usize = 256;

static LIVE_STORAGES: AtomicUsize = AtomicUsize::new(0);

/// Number of storages alive in the process (owned or foreign), for leak tests.
pub fn live_storage_count() -> usize {
    LIVE_STORAGES.load(Ordering::SeqCst)
}

/// A one-shot release action for foreign memory (a DLPack deleter, a view's release callback, or
/// a Rust value kept alive). Dropping it runs the action; `disarm` gives ownership back unrun.
pub struct Release(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Release {
    pub fn new(action: impl FnOnce() + Send + Sync + 'static) -> Release {
        Release(Some(Box::new(action)))
    }

    /// Nothing to run (memory whose lifetime the caller guarantees).
    pub fn none() -> Release {
        Release(None)
    }

    /// Forget the action without running it (the caller keeps ownership).
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(action) = self.0.take() {
            action();
        }
    }
}

enum Kind {
    Owned(Layout),
    Foreign(#[allow(dead_code)] Release),
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
        let layout = Layout::from_size_align(nbytes.max(1), OWNED_ALIGN).map_err(|_| {
            Error::Overflow(format!("{nbytes} bytes is too large for one allocation"))
        })?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        if ptr.is_null() {
            return Err(Error::OutOfMemory(format!(
                "could not allocate {nbytes} bytes of CPU memory; free memory or use a smaller \
                 tensor"
            )));
        }
        LIVE_STORAGES.fetch_add(1, Ordering::SeqCst);
        Ok(Storage {
            ptr,
            nbytes,
            device: Device::CPU,
            kind: Kind::Owned(layout),
        })
    }

    /// Wraps memory owned by someone else; `release` runs once, when the storage is dropped.
    pub fn foreign(ptr: *mut u8, nbytes: usize, device: Device, release: Release) -> Storage {
        LIVE_STORAGES.fetch_add(1, Ordering::SeqCst);
        Storage {
            ptr,
            nbytes,
            device,
            kind: Kind::Foreign(release),
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
        matches!(self.kind, Kind::Owned(_))
    }

    /// The owned bytes as a mutable slice: only while the storage is not yet shared.
    pub fn owned_bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self.kind {
            // SAFETY: owned storage is a live allocation of at least `nbytes` bytes, and
            // `&mut self` proves nobody else can see it.
            Kind::Owned(_) => {
                Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.nbytes) })
            }
            Kind::Foreign(_) => None,
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Kind::Owned(layout) = self.kind {
            // SAFETY: `ptr` came from `alloc`/`alloc_zeroed` with this very layout and is freed
            // once, here.
            unsafe { dealloc(self.ptr, layout) };
        }
        // A foreign storage's Release runs when `kind` drops, after this body.
        LIVE_STORAGES.fetch_sub(1, Ordering::SeqCst);
    }
}
