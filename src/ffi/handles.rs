//! The handle table: `dlshare_tensor *` values are not addresses but encoded (slot, generation)
//! pairs, so a NULL, foreign or already-released handle is recognised and refused instead of
//! dereferenced. A released slot's generation moves on, so a stale handle never aliases the
//! tensor that reuses the slot.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The handle type C sees: opaque, never dereferenced by anyone.
pub struct dlshare_tensor {
    _private: [u8; 0],
}

/// A slot's fields are atomics so that `Reservation::fill` can publish a tensor without the
/// table's lock (an uncontended lock and unlock cost ~12 ns on the machine of
/// docs/benchmarks.md, more than the rest of filling a slot). Everything else changes a slot
/// under the write lock. Slots are never freed or moved (the table keeps `&'static` references),
/// so a reservation can hold on to its slot while other threads add slots.
struct Slot {
    /// Changed only under the write lock, and never while the slot is reserved.
    generation: AtomicU32,
    /// C-level owners (retain adds one, release removes one): set by `fill` before it publishes
    /// the tensor, changed afterwards only under the write lock.
    owners: AtomicUsize,
    /// `Arc::into_raw` of the tensor (the slot's reference), or null while the slot is free or
    /// reserved. Published by `fill` (Release); read with Acquire; taken back (set to null)
    /// only under the write lock.
    tensor: AtomicPtr<Tensor>,
}

struct Table {
    slots: Vec<&'static Slot>,
    free: Vec<u32>,
}

static TABLE: RwLock<Table> = RwLock::new(Table {
    slots: Vec::new(),
    free: Vec::new(),
});

const INDEX_BITS: u32 = 28;
const TAG: u64 = 0x8;

fn encode(index: u32, generation: u32) -> *mut dlshare_tensor {
    let raw = (u64::from(generation) << 32) | (u64::from(index + 1) << 4) | TAG;
    raw as usize as *mut dlshare_tensor
}

fn decode(handle: *const dlshare_tensor) -> Option<(usize, u32)> {
    let raw = handle as usize as u64;
    if raw & 0xF != TAG {
        return None;
    }
    let index = ((raw >> 4) & ((1 << INDEX_BITS) - 1)).checked_sub(1)?;
    Some((index as usize, (raw >> 32) as u32))
}

fn invalid(handle: *const dlshare_tensor) -> Error {
    if handle.is_null() {
        Error::InvalidHandle("the tensor handle is NULL".into())
    } else {
        Error::InvalidHandle(format!(
            "{handle:p} is not a live dlshare tensor handle (never created by dlshare, or \
             already released); use handles returned by dlshare functions and release each once"
        ))
    }
}

fn lock_read() -> std::sync::RwLockReadGuard<'static, Table> {
    TABLE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_write() -> std::sync::RwLockWriteGuard<'static, Table> {
    TABLE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle slot taken before a conversion starts, so that a full table is reported before
/// anything changes hands (an import that succeeded owns the producer's tensor; failing to
/// hand out a handle afterwards would break the ownership rule). Dropping an unfilled
/// reservation gives the slot back.
pub struct Reservation {
    index: u32,
    slot: &'static Slot,
    filled: bool,
}

/// Each thread keeps the last slot it retired for its next handle (see `keep_spare`), so that a
/// loop creating and releasing handles takes the table's lock only to release them. The slot
/// goes back to the table when the thread ends.
struct Spare(Cell<Option<(u32, &'static Slot)>>);

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some((index, _)) = self.0.take() {
            lock_write().free.push(index);
        }
    }
}

thread_local! {
    static SPARE: Spare = const { Spare(Cell::new(None)) };
}

/// Keeps a free slot as this thread's spare when it has none (called with or without the
/// table locked: it takes no lock). `false`: the caller puts it on the free list.
fn keep_spare(index: u32, slot: &'static Slot) -> bool {
    SPARE
        .try_with(|spare| {
            let empty = spare.0.get().is_none();
            if empty {
                spare.0.set(Some((index, slot)));
            }
            empty
        })
        .unwrap_or(false)
}

/// Takes a free slot (or a new one): this thread's spare when it has one, else from the table.
pub(crate) fn reserve() -> Result<Reservation> {
    if let Ok(Some((index, slot))) = SPARE.try_with(|spare| spare.0.take()) {
        return Ok(Reservation {
            index,
            slot,
            filled: false,
        });
    }
    let mut table = lock_write();
    let index = match table.free.pop() {
        Some(index) => index,
        None => {
            let index = table.slots.len() as u32;
            if index + 1 >= (1 << INDEX_BITS) {
                return Err(Error::OutOfMemory(
                    "too many live tensor handles (2^28); release handles you no longer use".into(),
                ));
            }
            let slot: &'static Slot = Box::leak(Box::new(Slot {
                generation: AtomicU32::new(1),
                owners: AtomicUsize::new(0),
                tensor: AtomicPtr::new(std::ptr::null_mut()),
            }));
            table.slots.push(slot);
            index
        }
    };
    Ok(Reservation {
        index,
        slot: table.slots[index as usize],
        filled: false,
    })
}

impl Reservation {
    /// Puts the tensor in the reserved slot and returns its handle (one owner). Takes no lock:
    /// nobody else writes a reserved slot, and readers see the tensor only once it is complete.
    pub fn fill(mut self, tensor: Tensor) -> *mut dlshare_tensor {
        let slot = self.slot;
        // Read before publishing: a release racing with a guessed handle may move it on after.
        let generation = slot.generation.load(Ordering::Relaxed);
        slot.owners.store(1, Ordering::Relaxed);
        let raw = Arc::into_raw(Arc::new(tensor)).cast_mut();
        slot.tensor.store(raw, Ordering::Release);
        self.filled = true;
        encode(self.index, generation)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.filled && !keep_spare(self.index, self.slot) {
            lock_write().free.push(self.index);
        }
    }
}

/// Registers a tensor and returns its new handle (one owner).
pub(crate) fn insert(tensor: Tensor) -> Result<*mut dlshare_tensor> {
    Ok(reserve()?.fill(tensor))
}

/// The tensor behind a live handle.
pub fn get(handle: *const dlshare_tensor) -> Result<Arc<Tensor>> {
    let (index, generation) = decode(handle).ok_or_else(|| invalid(handle))?;
    let table = lock_read();
    let raw = live_tensor(&table, index, generation).ok_or_else(|| invalid(handle))?;
    // SAFETY: `raw` came from `Arc::into_raw` and is the slot's reference, which only
    // `release` gives up, under the write lock this read lock excludes: the count is at least 1
    // while we add ours.
    unsafe {
        Arc::increment_strong_count(raw);
        Ok(Arc::from_raw(raw))
    }
}

/// The published tensor of slot `index` when its generation is `generation`.
fn live_tensor(table: &Table, index: usize, generation: u32) -> Option<*const Tensor> {
    let slot = table.slots.get(index)?;
    if slot.generation.load(Ordering::Relaxed) != generation {
        return None;
    }
    let raw = slot.tensor.load(Ordering::Acquire);
    (!raw.is_null()).then_some(raw.cast_const())
}

/// Adds an owner to a live handle.
pub(crate) fn retain(handle: *const dlshare_tensor) -> Result<()> {
    let (index, generation) = decode(handle).ok_or_else(|| invalid(handle))?;
    let table = lock_write();
    live_tensor(&table, index, generation).ok_or_else(|| invalid(handle))?;
    let owners = &table.slots[index].owners;
    owners.store(owners.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    Ok(())
}

/// Removes an owner; the last one retires the handle. The tensor is dropped outside the lock
/// (a producer's deleter may call back into dlshare).
pub(crate) fn release(handle: *const dlshare_tensor) -> Result<()> {
    let (index, generation) = decode(handle).ok_or_else(|| invalid(handle))?;
    let retired = {
        let mut table = lock_write();
        let raw = live_tensor(&table, index, generation).ok_or_else(|| invalid(handle))?;
        let slot = table.slots[index];
        let owners = slot.owners.load(Ordering::Relaxed) - 1;
        slot.owners.store(owners, Ordering::Relaxed);
        if owners > 0 {
            return Ok(());
        }
        slot.generation
            .store(generation.wrapping_add(1).max(1), Ordering::Relaxed);
        slot.tensor.store(std::ptr::null_mut(), Ordering::Relaxed);
        if !keep_spare(index as u32, slot) {
            table.free.push(index as u32);
        }
        raw
    };
    // SAFETY: the slot's reference, taken out of the slot above under the write lock: nobody
    // else can reach it through the table any more, and it is given up exactly once, here.
    drop(unsafe { Arc::from_raw(retired) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::dtype::DType;
    use std::sync::atomic::AtomicBool;

    fn tensor(n: i64) -> Tensor {
        Tensor::empty(DType::F32, &[n], Device::CPU, false).unwrap()
    }

    #[test]
    fn a_reused_slot_refuses_the_stale_handle() {
        let h = insert(tensor(2)).unwrap();
        release(h).unwrap();
        let h2 = insert(tensor(3)).unwrap(); // this thread's spare: the same slot
        assert_eq!(decode(h).unwrap().0, decode(h2).unwrap().0);
        assert_ne!(h, h2);
        assert!(get(h).is_err() && retain(h).is_err() && release(h).is_err());
        assert_eq!(get(h2).unwrap().shape(), [3]);
        drop(reserve().unwrap()); // an unfilled reservation gives its slot back
        release(h2).unwrap();
        assert!(get(h2).is_err());
    }

    /// Handles filled without the lock, released, reused and probed (get, retain + release of
    /// whatever handle was last published, often a stale one) from several threads at once.
    #[test]
    fn slots_filled_and_released_while_other_threads_probe_them() {
        let last = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let makers: Vec<_> = (0..3)
            .map(|t| {
                let last = last.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let n = (t * 10_000 + i) as i64 % 7 + 1;
                        let h = insert(tensor(n)).unwrap();
                        last.store(h as usize, Ordering::Relaxed);
                        assert_eq!(get(h).unwrap().shape(), [n]);
                        // (the prober may hold an owner of its own for a moment)
                        release(h).unwrap();
                    }
                })
            })
            .collect();
        let prober = {
            let (last, stop) = (last.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let h = last.load(Ordering::Relaxed) as *mut dlshare_tensor;
                    if let Ok(t) = get(h) {
                        assert!(t.shape()[0] >= 1);
                    }
                    if retain(h).is_ok() {
                        release(h).unwrap();
                    }
                }
            })
        };
        for m in makers {
            m.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        prober.join().unwrap();
    }
}
