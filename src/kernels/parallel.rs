//! Threads for large copies. A copy is split into contiguous pieces (8 per worker) that the
//! calling thread and the threads of a private rayon pool take in turn, so a worker slowed by
//! another process on its core leaves its share to the others (the pool is dlshare's own, so it
//! never competes with the host application's rayon jobs for queue slots, and its threads sleep
//! when idle).
//!
//! Thread count: `DLSHARE_NUM_THREADS` (read once), else every core the process may use;
//! `set_num_threads` overrides both at run time. Below `PARALLEL_MIN_BYTES` of traffic a copy
//! stays on the calling thread: waking a pool thread costs 10-40 us on the 2-core VM these
//! numbers were measured on, the time to move about 256 KiB; from 2 MiB outputs on, a second
//! thread made copies and transposes 1.5-2x faster when the second core was free
//! (benches/threads.rs, docs/benchmarks.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Bytes read + written below which one thread does the whole copy, and the least each extra
/// worker gets (benches/threads.rs measures where a second thread starts to pay).
pub const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// 0: no override (use the default).
static OVERRIDE: AtomicUsize = AtomicUsize::new(0);
static MIN_BYTES: AtomicUsize = AtomicUsize::new(PARALLEL_MIN_BYTES);
/// The pool and the fork generation it was built in.
static POOL: Mutex<Option<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(None);
/// Counts forks (in the child): a forked child has none of its parent's pool threads, so a pool
/// from an earlier generation is abandoned, never used (Python's multiprocessing and DataLoader
/// workers fork).
static FORKS: AtomicUsize = AtomicUsize::new(0);

#[cfg(all(unix, not(miri)))]
extern "C" fn after_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

#[cfg(all(unix, not(miri)))]
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a handler that only increments an atomic (async-signal-safe).
    ONCE.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_in_child));
    });
}

/// The thread count when nothing was set: `DLSHARE_NUM_THREADS` if it holds a positive
/// integer, else the available parallelism.
pub fn default_num_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("DLSHARE_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// The most threads one copy uses (including the calling thread).
pub fn num_threads() -> usize {
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => default_num_threads(),
        n => n,
    }
}

/// Caps the threads one copy uses; 0 restores the default.
pub fn set_num_threads(n: usize) {
    OVERRIDE.store(n, Ordering::Relaxed);
}

/// Changes the size threshold (`PARALLEL_MIN_BYTES` by default) for measurements: copies moving
/// fewer bytes run on one thread. Not part of the supported API.
#[doc(hidden)]
pub fn set_parallel_min_bytes(bytes: usize) {
    MIN_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// How many workers a copy moving `bytes` (read + written) should use.
pub fn workers_for(bytes: usize) -> usize {
    let min = MIN_BYTES.load(Ordering::Relaxed);
    if bytes < min {
        return 1; // the common small copy: no thread count to look up, no division
    }
    num_threads().min(bytes / min).max(1)
}

/// A pool with at least `helpers` threads (rebuilt larger when the cap was raised, and anew in a
/// forked child). `None` when the pool is busy being built by another thread or cannot start.
fn pool(helpers: usize) -> Option<Arc<rayon::ThreadPool>> {
    #[cfg(all(unix, not(miri)))]
    watch_forks();
    // try_lock: a child forked while another thread held the lock must not wait forever.
    let mut slot = match POOL.try_lock() {
        Ok(slot) => slot,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    let generation = FORKS.load(Ordering::Relaxed);
    if let Some((g, p)) = slot.as_ref()
        && *g == generation
        && p.current_num_threads() >= helpers
    {
        return Some(p.clone());
    }
    if let Some((g, stale)) = slot.take()
        && g != generation
    {
        // Its threads live in the parent only; dropping it would signal threads that are not
        // there.
        std::mem::forget(stale);
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(helpers)
        .thread_name(|i| format!("dlshare-copy-{i}"))
        .build()
        .ok()
        .map(Arc::new);
    if let Some(p) = &built {
        *slot = Some((generation, p.clone()));
    }
    built
}

/// Pieces per worker: enough that a worker whose core is busy with another process leaves its
/// share to the others (each piece is taken from a shared counter), few enough that taking one
/// costs nothing next to moving it.
pub(super) const PIECES_PER_WORKER: usize = 8;

/// Runs `work(lo, hi)` over `0..units`, split into contiguous pieces that `workers` threads
/// (the caller and `workers - 1` pool threads) take in turn. Falls back to the calling thread
/// alone when no pool is available.
pub fn run(units: usize, workers: usize, work: impl Fn(usize, usize) + Sync) {
    let workers = workers.min(units).max(1);
    let pool = if workers > 1 { pool(workers - 1) } else { None };
    let Some(pool) = pool else {
        work(0, units);
        return;
    };
    let pieces = units.min(workers * PIECES_PER_WORKER);
    let bound = |p: usize| (units as u128 * p as u128 / pieces as u128) as usize;
    let next = AtomicUsize::new(0);
    let take_pieces = || {
        loop {
            let p = next.fetch_add(1, Ordering::Relaxed);
            if p >= pieces {
                break;
            }
            work(bound(p), bound(p + 1));
        }
    };
    let take_pieces = &take_pieces;
    pool.in_place_scope(|scope| {
        for _ in 1..workers {
            scope.spawn(move |_| take_pieces());
        }
        take_pieces();
    });
}

/// `items.into_iter().map(f).collect()`, with the items taken in turn by up to `workers` threads
/// (the caller and pool threads, as in `run`); the results keep the items' order. For a few
/// large independent jobs, such as the column passes of `columns`.
pub fn map<T: Send, R: Send>(items: Vec<T>, workers: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if workers <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<(Option<T>, Option<R>)>> = items
        .into_iter()
        .map(|item| Mutex::new((Some(item), None)))
        .collect();
    fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    run(slots.len(), workers, |lo, hi| {
        for slot in &slots[lo..hi] {
            let item = lock(slot).0.take();
            if let Some(item) = item {
                let result = f(item);
                lock(slot).1 = Some(result);
            }
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            let (_, result) = slot.into_inner().unwrap_or_else(|p| p.into_inner());
            result.expect("`run` covers every unit once")
        })
        .collect()
}
