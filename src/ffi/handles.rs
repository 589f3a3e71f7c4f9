//! The handle table: `dlshare_tensor *` values are not addresses but encoded (slot, generation)
//! pairs, so a NULL, foreign or already-released handle is recognised and refused instead of
//! dereferenced. A released slot's generation moves on, so a stale handle never aliases the
//! tensor that reuses the slot.

use std::cell::Cell;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The handle type C sees: opaque, never dereferenced by anyone.
pub struct dlshare_tensor {
    _private: [u8; 0],
}

struct Slot {
    generation: u32,
    /// C-level owners (retain adds one, release removes one).
    owners: usize,
    tensor: Option<Arc<Tensor>>,
}

struct Table {
    slots: Vec<Slot>,
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
    filled: bool,
}

/// Each thread keeps the last slot it retired for its next handle (see `keep_spare`), so that a
/// loop creating and releasing handles takes the table's lock twice per handle instead of three
/// times (an uncontended lock and unlock cost ~15 ns on the machine of docs/benchmarks.md, the
/// price of a whole small conversion's allocations). The slot goes back to the table when the
/// thread ends.
struct Spare(Cell<Option<u32>>);

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some(index) = self.0.take() {
            lock_write().free.push(index);
        }
    }
}

thread_local! {
    static SPARE: Spare = const { Spare(Cell::new(None)) };
}

/// Keeps a free slot as this thread's spare when it has none (called with or without the
/// table locked: it takes no lock). `false`: the caller puts it on the free list.
fn keep_spare(index: u32) -> bool {
    SPARE
        .try_with(|spare| {
            let empty = spare.0.get().is_none();
            if empty {
                spare.0.set(Some(index));
            }
            empty
        })
        .unwrap_or(false)
}

/// Takes a free slot (or a new one): this thread's spare when it has one, else from the table.
pub fn reserve() -> Result<Reservation> {
    if let Ok(Some(index)) = SPARE.try_with(|spare| spare.0.take()) {
        return Ok(Reservation {
            index,
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
            table.slots.push(Slot {
                generation: 1,
                owners: 0,
                tensor: None,
            });
            index
        }
    };
    Ok(Reservation {
        index,
        filled: false,
    })
}

impl Reservation {
    /// Puts the tensor in the reserved slot and returns its handle (one owner).
    pub fn fill(mut self, tensor: Tensor) -> *mut dlshare_tensor {
        let mut table = lock_write();
        let slot = &mut table.slots[self.index as usize];
        slot.owners = 1;
        slot.tensor = Some(Arc::new(tensor));
        self.filled = true;
        encode(self.index, slot.generation)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.filled && !keep_spare(self.index) {
            lock_write().free.push(self.index);
        }
    }
}

/// Registers a tensor and returns its new handle (one owner).
pub fn insert(tensor: Tensor) -> Result<*mut dlshare_tensor> {
    Ok(reserve()?.fill(tensor))
}

/// The tensor behind a live handle.
pub fn get(handle: *const dlshare_tensor) -> Result<Arc<Tensor>> {
    let (index, generation) = decode(handle).ok_or_else(|| invalid(handle))?;
    let table = lock_read();
    match table.slots.get(index) {
        Some(Slot {
            generation: g,
            tensor: Some(t),
            ..
        }) if *g == generation => Ok(t.clone()),
        _ => Err(invalid(handle)),
    }
}

fn with_live_slot<R>(handle: *const dlshare_tensor, f: impl FnOnce(&mut Slot) -> R) -> Result<R> {
    let (index, generation) = decode(handle).ok_or_else(|| invalid(handle))?;
    let mut table = lock_write();
    let live = matches!(table.slots.get(index), Some(s) if s.generation == generation && s.tensor.is_some());
    if !live {
        return Err(invalid(handle));
    }
    let result = f(&mut table.slots[index]);
    if table.slots[index].tensor.is_none() && !keep_spare(index as u32) {
        table.free.push(index as u32);
    }
    Ok(result)
}

/// Adds an owner to a live handle.
pub fn retain(handle: *const dlshare_tensor) -> Result<()> {
    with_live_slot(handle, |slot| slot.owners += 1)
}

/// Removes an owner; the last one retires the handle. The tensor is dropped outside the lock
/// (a producer's deleter may call back into dlshare).
pub fn release(handle: *const dlshare_tensor) -> Result<()> {
    let retired = with_live_slot(handle, |slot| {
        slot.owners -= 1;
        if slot.owners == 0 {
            slot.generation = slot.generation.wrapping_add(1).max(1);
            slot.tensor.take()
        } else {
            None
        }
    })?;
    drop(retired);
    Ok(())
}
