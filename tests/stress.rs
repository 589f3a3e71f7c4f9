//! Concurrency stress (issue #5): 8 threads x 100,000 mixed operations (retain/release, export
//! and re-import through DLPack, conversions, explain, shares_memory, and swapping new tensors
//! from DLPack producers, raw views and allocations into a pool of shared handles), ending with
//! every counter balanced: each producer's deleter ran exactly once, each shared view was
//! released exactly once, the live tensor count is back at its start, and every handle the
//! threads created is refused as released.
//!
//! Handles in the pool are used without holding an owner only where a stale handle is a valid
//! input (explain, shares_memory, retain): those calls may get DLSHARE_ERR_INVALID_HANDLE when
//! another thread swapped the handle out and released it. Everything else runs on a handle the
//! thread retained first.
//!
//! Bounded in time: each thread checks the clock and stops early (saying so) rather than run
//! past the budget. DLSHARE_STRESS_OPS overrides the operations per thread; Miri runs 30.

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

const THREADS: usize = 8;
const SLOTS: usize = 16;

/// Operations per thread: 100,000 (about 3 s in a debug build on 2 cores); 30 under Miri.
fn ops_per_thread() -> usize {
    if let Some(n) = std::env::var("DLSHARE_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(miri) { 30 } else { 100_000 }
}

/// Wall-clock budget for the whole run; threads stop early past it.
const BUDGET: Duration = Duration::from_secs(45);

// ---------------------------------------------------------------------------------------------
// Counted producers and views.

static PRODUCED: AtomicUsize = AtomicUsize::new(0);
static DELETED: AtomicUsize = AtomicUsize::new(0);
static VIEWS_SHARED: AtomicUsize = AtomicUsize::new(0);
static VIEWS_RELEASED: AtomicUsize = AtomicUsize::new(0);

/// What a producer's managed tensor owns.
struct Owned {
    data: Box<[f32]>,
    shape: Box<[i64]>,
}

unsafe extern "C" fn delete_producer(m: *mut DLManagedTensorVersioned) {
    // SAFETY: made by `produce`; the deleter runs once.
    unsafe {
        let m = Box::from_raw(m);
        drop(Box::from_raw(m.manager_ctx.cast::<Owned>()));
    }
    DELETED.fetch_add(1, Ordering::SeqCst);
}

/// A versioned managed tensor of `n` float32 values owned by its own deleter.
fn produce(n: usize, seed: u64) -> *mut DLManagedTensorVersioned {
    let mut owned = Box::new(Owned {
        data: (0..n).map(|i| (i as u64 ^ seed) as f32).collect(),
        shape: Box::new([n as i64]),
    });
    let dl = DLTensor {
        data: owned.data.as_mut_ptr().cast(),
        device: CPU,
        ndim: 1,
        dtype: F32,
        shape: owned.shape.as_mut_ptr(),
        strides: std::ptr::null_mut(),
        byte_offset: 0,
    };
    PRODUCED.fetch_add(1, Ordering::SeqCst);
    Box::into_raw(Box::new(DLManagedTensorVersioned {
        version: DLPackVersion { major: 1, minor: 3 },
        manager_ctx: Box::into_raw(owned).cast(),
        deleter: Some(delete_producer),
        flags: 0,
        dl_tensor: dl,
    }))
}

unsafe extern "C" fn release_view(_: *mut c_void) {
    VIEWS_RELEASED.fetch_add(1, Ordering::SeqCst);
}

/// Memory every view shares: lives for the whole process.
static VIEW_MEMORY: [f32; 64] = [1.5; 64];
static VIEW_SHAPE: [i64; 2] = [8, 8];
/// Byte strides of a transposed 8 x 8 float32 view.
static VIEW_TRANSPOSED: [i64; 2] = [4, 32];

// ---------------------------------------------------------------------------------------------
// One thread's work.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    ops: usize,
    stale: usize,
    created: Vec<usize>,
}

fn as_handle(v: usize) -> *mut dlshare_tensor {
    v as *mut dlshare_tensor
}

/// A new handle from one of the sources, recorded in `t.created`.
fn make(rng: &mut Rng, t: &mut Tally) -> *mut dlshare_tensor {
    let h = match rng.below(4) {
        0 => {
            let mut h = SENTINEL;
            let shape = [1 + rng.below(16) as i64, 3];
            // SAFETY: valid pointers.
            ok(unsafe { dlshare_tensor_zeros(F32, 2, shape.as_ptr(), CPU, &mut h) });
            h
        }
        1 | 2 => {
            let m = produce(1 + rng.below(32) as usize, rng.next());
            let mode = if rng.below(4) == 0 { COPY } else { SHARE };
            let (s, h, d) = import_versioned(m, &opts(mode));
            ok(s);
            assert_eq!(d.shared, mode == SHARE);
            h
        }
        _ => {
            let transposed = rng.below(2) == 0;
            let v = dlshare_view {
                data: VIEW_MEMORY.as_ptr().cast_mut().cast(),
                dtype: F32,
                ndim: 2,
                shape: VIEW_SHAPE.as_ptr(),
                byte_strides: if transposed {
                    VIEW_TRANSPOSED.as_ptr()
                } else {
                    std::ptr::null()
                },
                device: CPU,
                flags: DLSHARE_VIEW_READ_ONLY,
                release: Some(release_view),
                release_ctx: std::ptr::null_mut(),
            };
            let mut o = opts(SHARE);
            o.allow_read_only = true;
            let (s, h, _) = from_view(&v, &o);
            ok(s);
            VIEWS_SHARED.fetch_add(1, Ordering::SeqCst);
            h
        }
    };
    t.created.push(h as usize);
    h
}

/// Retains the handle in a random slot; `None` when another thread released it meanwhile.
fn take(pool: &[AtomicUsize], rng: &mut Rng, t: &mut Tally) -> Option<*mut dlshare_tensor> {
    let h = as_handle(pool[rng.below(SLOTS as u64) as usize].load(Ordering::SeqCst));
    match dlshare_tensor_retain(h) {
        dlshare_status::DLSHARE_OK => Some(h),
        dlshare_status::DLSHARE_ERR_INVALID_HANDLE => {
            t.stale += 1;
            None
        }
        s => panic!("retain gave {}: {}", status_name(s), last_error()),
    }
}

/// OK, or INVALID_HANDLE for a handle that was swapped out and released meanwhile.
fn ok_or_stale(s: dlshare_status, t: &mut Tally) {
    match s {
        dlshare_status::DLSHARE_OK => {}
        dlshare_status::DLSHARE_ERR_INVALID_HANDLE => t.stale += 1,
        s => panic!("got {}: {}", status_name(s), last_error()),
    }
}

fn one_op(pool: &[AtomicUsize], rng: &mut Rng, t: &mut Tally) {
    match rng.below(10) {
        // retain, read, release
        0 | 1 => {
            if let Some(h) = take(pool, rng, t) {
                let (dl, _) = info(h);
                assert!(dl.ndim >= 1);
                release(h);
            }
        }
        // export versioned; the consumer either deletes it or imports it back
        2 => {
            if let Some(h) = take(pool, rng, t) {
                let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
                // SAFETY: writable output.
                ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
                if rng.below(2) == 0 {
                    call_deleter_versioned(ev);
                } else {
                    let mut o = opts(SHARE);
                    o.allow_read_only = true;
                    let (s, back, _) = import_versioned(ev, &o);
                    ok(s);
                    t.created.push(back as usize);
                    assert!(shares_memory(h, back));
                    release(back);
                }
                release(h);
            }
        }
        // export legacy (refused for the read-only views) and delete
        3 => {
            if let Some(h) = take(pool, rng, t) {
                let mut el: *mut DLManagedTensor = std::ptr::null_mut();
                // SAFETY: writable output.
                let s = unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) };
                let (_, flags) = info(h);
                if flags & FLAG_READ_ONLY != 0 {
                    assert_eq!(s, DLSHARE_ERR_READ_ONLY);
                } else {
                    ok(s);
                    call_deleter_legacy(el);
                }
                release(h);
            }
        }
        // convert: share, copy, or cast
        4 | 5 => {
            if let Some(h) = take(pool, rng, t) {
                let o = match rng.below(3) {
                    0 => {
                        let mut o = opts(SHARE_OR_COPY);
                        o.allow_read_only = true;
                        o
                    }
                    1 => opts(COPY),
                    _ => opts_dtype(SHARE_OR_COPY, F64),
                };
                let (s, out, _) = convert(h, &o);
                ok(s);
                t.created.push(out as usize);
                release(out);
                release(h);
            }
        }
        // explain and shares_memory on handles not held (stale ones are refused)
        6 => {
            let h = as_handle(pool[rng.below(SLOTS as u64) as usize].load(Ordering::SeqCst));
            let mut d = blank_decision();
            // SAFETY: writable output.
            ok_or_stale(unsafe { dlshare_explain_tensor(h, &opts(COPY), &mut d) }, t);
            let g = as_handle(pool[rng.below(SLOTS as u64) as usize].load(Ordering::SeqCst));
            let mut b = false;
            // SAFETY: writable output.
            ok_or_stale(unsafe { dlshare_tensor_shares_memory(h, g, &mut b) }, t);
        }
        // swap a new tensor into a slot and drop the slot's owner of the old one
        _ => {
            let new = make(rng, t);
            let old = pool[rng.below(SLOTS as u64) as usize].swap(new as usize, Ordering::SeqCst);
            release(as_handle(old));
        }
    }
    t.ops += 1;
}

#[test]
fn eight_threads_of_mixed_operations_balance_every_counter() {
    let _g = lock_exclusive();
    let start_live = live();
    let (p0, d0) = (
        PRODUCED.load(Ordering::SeqCst),
        DELETED.load(Ordering::SeqCst),
    );
    let (v0, r0) = (
        VIEWS_SHARED.load(Ordering::SeqCst),
        VIEWS_RELEASED.load(Ordering::SeqCst),
    );
    let ops = ops_per_thread();
    let began = Instant::now();
    let stopped_early = AtomicBool::new(false);

    let mut seed_rng = Rng(0x5EED);
    let mut seed_tally = Tally::default();
    let pool: Vec<AtomicUsize> = (0..SLOTS)
        .map(|_| AtomicUsize::new(make(&mut seed_rng, &mut seed_tally) as usize))
        .collect();

    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (pool, stopped_early) = (&pool, &stopped_early);
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678));
                    let mut t = Tally::default();
                    for n in 0..ops {
                        if n % 256 == 0 && began.elapsed() > BUDGET {
                            stopped_early.store(true, Ordering::SeqCst);
                            break;
                        }
                        one_op(pool, &mut rng, &mut t);
                    }
                    t
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for slot in &pool {
        release(as_handle(slot.load(Ordering::SeqCst)));
    }
    let elapsed = began.elapsed();

    let done: usize = tallies.iter().map(|t| t.ops).sum();
    let stale: usize = tallies.iter().map(|t| t.stale).sum();
    let created: Vec<usize> = tallies
        .iter()
        .chain([&seed_tally])
        .flat_map(|t| t.created.iter().copied())
        .collect();
    let produced = PRODUCED.load(Ordering::SeqCst) - p0;
    let deleted = DELETED.load(Ordering::SeqCst) - d0;
    let shared = VIEWS_SHARED.load(Ordering::SeqCst) - v0;
    let released = VIEWS_RELEASED.load(Ordering::SeqCst) - r0;
    println!(
        "stress: {THREADS} threads x {ops} ops planned, {done} done in {:.1} s{}; {stale} stale \
         handles refused; {} handles created; {produced} producers, {deleted} deleted; {shared} \
         views shared, {released} released",
        elapsed.as_secs_f64(),
        if stopped_early.load(Ordering::SeqCst) {
            " (stopped early: time budget reached)"
        } else {
            ""
        },
        created.len()
    );
    assert!(done > 0);
    if !stopped_early.load(Ordering::SeqCst) {
        assert_eq!(done, THREADS * ops);
    }
    assert_eq!(
        deleted, produced,
        "a producer's deleter ran a wrong number of times"
    );
    assert_eq!(
        released, shared,
        "a view's release ran a wrong number of times"
    );
    assert_eq!(live(), start_live, "tensor storages leaked");
    // Every handle ever handed out is now refused: none leaked (a live one would be accepted;
    // the generation in each handle keeps reused slots from answering for old handles).
    for h in created {
        assert_eq!(
            dlshare_tensor_retain(as_handle(h)),
            DLSHARE_ERR_INVALID_HANDLE,
            "handle {h:#x} is still live"
        );
    }
}
