//! The copy kernels against a plain reference gather (one element at a time, in C order, with
//! the byte swap and `cast_scalar_bytes`), over random shapes, strides, offsets and dtype pairs,
//! and over the layouts that take the fast paths: F-order and permuted (tiled transpose,
//! including the SIMD blocks and their edges), reversed, zero strides, byte strides that are
//! not item multiples, misaligned data, and copies large enough to run on several threads.
//! The element casts themselves are checked against NumPy/PyTorch in tests/casts.rs.

use std::sync::{Arc, Mutex};

use dlshare::SourceFlags;
use dlshare::convert::{Mode, Options, Source, convert};
use dlshare::internals::kernels::{self, cast_scalar_bytes, copy_to_contiguous};
use dlshare::storage::{OWNED_ALIGN, Release, Storage};
use dlshare::{DType, Device, Kind};
use proptest::prelude::*;

/// Tests that change the thread count hold this lock so that they do not undo each other's
/// setting mid-copy (the results never depend on it, only which code runs).
static THREADS: Mutex<()> = Mutex::new(());

/// A source: a byte buffer, where the element at index (0, ...) starts, and its layout.
struct Layout {
    buf: Vec<u8>,
    first: usize,
    shape: Vec<i64>,
    strides: Vec<i64>,
}

impl Layout {
    /// Places a layout in a buffer of random bytes, with `misalign` extra bytes of offset.
    fn new(shape: &[i64], strides: &[i64], item: usize, misalign: usize, seed: u64) -> Layout {
        let (mut lo, mut hi) = (0i64, item as i64);
        if shape.iter().all(|&n| n > 0) {
            for (&n, &s) in shape.iter().zip(strides) {
                let span = (n - 1) * s;
                if span < 0 {
                    lo += span;
                } else {
                    hi += span;
                }
            }
        }
        let first = (-lo) as usize + misalign;
        let mut state = seed | 1;
        let buf = (0..first + hi as usize + 8)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        Layout {
            buf,
            first,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        }
    }

    fn ptr(&self) -> *const u8 {
        self.buf.as_ptr().wrapping_add(self.first)
    }

    fn numel(&self) -> usize {
        self.shape.iter().map(|&n| n as usize).product()
    }
}

/// One element at a time: walk the C-order index, read the element's bytes, swap, cast.
fn reference(l: &Layout, from: DType, swapped: bool, to: DType) -> Vec<u8> {
    let (in_item, out_item) = (from.item_size(), to.item_size());
    let n = l.numel();
    let mut out = vec![0u8; n * out_item];
    let mut index = vec![0i64; l.shape.len()];
    for i in 0..n {
        let offset: i64 = index.iter().zip(&l.strides).map(|(&i, &s)| i * s).sum();
        let at = (l.first as i64 + offset) as usize;
        let mut element = l.buf[at..at + in_item].to_vec();
        if swapped {
            for unit in element.chunks_exact_mut(from.swap_unit()) {
                unit.reverse();
            }
        }
        let slot = &mut out[i * out_item..(i + 1) * out_item];
        if from == to {
            slot.copy_from_slice(&element);
        } else {
            cast_scalar_bytes(&element, from, slot, to);
        }
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < l.shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

fn fast(l: &Layout, from: DType, swapped: bool, to: DType) -> Vec<u8> {
    let mut out = vec![0u8; l.numel() * to.item_size()];
    let src = kernels::Source {
        ptr: l.ptr(),
        dtype: from,
        shape: &l.shape,
        byte_strides: &l.strides,
        byte_swapped: swapped,
    };
    // SAFETY: the layout lies inside `l.buf` by construction; `out` has the right size.
    unsafe { copy_to_contiguous(&src, &mut out, to) }.expect("copy");
    out
}

/// Whether two elements are the same: equal bytes, or NaN in the same float components (Rust
/// does not fix NaN payloads, and Miri varies them on purpose; the hardware gives both paths
/// the same bits).
fn same_element(got: &[u8], want: &[u8], to: DType) -> bool {
    let nan = |b: &[u8]| match b.len() {
        2 if to.kind() == Some(Kind::BF16) => half::bf16::from_ne_bytes([b[0], b[1]]).is_nan(),
        2 => half::f16::from_ne_bytes([b[0], b[1]]).is_nan(),
        4 => f32::from_ne_bytes(b.try_into().unwrap()).is_nan(),
        8 => f64::from_ne_bytes(b.try_into().unwrap()).is_nan(),
        _ => false,
    };
    let float = matches!(
        to.kind(),
        Some(Kind::F16 | Kind::BF16 | Kind::F32 | Kind::F64 | Kind::C64 | Kind::C128)
    );
    let parts = if matches!(to.kind(), Some(Kind::C64 | Kind::C128)) {
        2
    } else {
        1
    };
    got == want
        || (float
            && got
                .chunks(got.len() / parts)
                .zip(want.chunks(want.len() / parts))
                .all(|(g, w)| g == w || (nan(g) && nan(w))))
}

fn check(l: &Layout, from: DType, swapped: bool, to: DType) {
    let want = reference(l, from, swapped, to);
    let got = fast(l, from, swapped, to);
    let size = to.item_size();
    let bad = (0..want.len() / size)
        .find(|&i| !same_element(&got[i * size..][..size], &want[i * size..][..size], to));
    if let Some(first) = bad {
        panic!(
            "{from} (swapped={swapped}) -> {to}, shape {:?}, byte strides {:?}, offset {}: \
             element {first} is {:02x?}, the reference gives {:02x?}",
            l.shape,
            l.strides,
            l.first,
            &got[first * size..][..size],
            &want[first * size..][..size]
        );
    }
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    (0..Kind::ALL.len()).prop_map(|i| Kind::ALL[i])
}

/// A random layout: up to 4 axes of extent 0..=9 (one may be long, to reach the tiled and SIMD
/// paths), axes visited in a random order with steps of -3..=3 elements (0 = broadcast), plus
/// extra bytes on a stride (not an item multiple) and a misaligned start.
fn layout_strategy() -> impl Strategy<Value = (Vec<i64>, Vec<usize>, Vec<i64>, usize, usize, u64)> {
    (1usize..=4)
        .prop_flat_map(|ndim| {
            (
                proptest::collection::vec(0i64..=9, ndim),
                Just((0..ndim).collect::<Vec<usize>>()).prop_shuffle(),
                proptest::collection::vec(prop_oneof![3 => Just(1i64), 2 => -3i64..=3], ndim),
                0usize..ndim,
                (
                    0usize..=80,
                    prop_oneof![2 => Just(0usize), 1 => 1usize..=3],
                    0usize..=2,
                    any::<u64>(),
                ),
            )
        })
        .prop_map(
            |(mut shape, order, steps, long_axis, (long, pad, misalign, seed))| {
                if long > 9 {
                    shape[long_axis] = long as i64;
                }
                (shape, order, steps, pad, misalign, seed)
            },
        )
}

/// Byte strides for `shape` when the axes are laid out in `order` (outermost first), each axis
/// stepping `steps[axis]` elements, and the innermost laid-out axis padded by `pad` bytes.
fn strides_for(shape: &[i64], order: &[usize], steps: &[i64], item: usize, pad: usize) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut acc = item as i64 + pad as i64;
    for &axis in order.iter().rev() {
        strides[axis] = acc * steps[axis];
        acc *= shape[axis].max(1) * steps[axis].abs().max(1);
    }
    strides
}

proptest! {
    // Under Miri (~1000x slower, no file system): a few cases, no regression file.
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 600 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_layouts_and_dtype_pairs_match_the_reference(
        (shape, order, steps, pad, misalign, seed) in layout_strategy(),
        from in kind_strategy(),
        to in kind_strategy(),
        same in any::<bool>(),
        swapped in any::<bool>(),
    ) {
        let from = from.dtype();
        let to = if same { from } else { to.dtype() };
        let swapped = swapped && from.item_size() > 1;
        let strides = strides_for(&shape, &order, &steps, from.item_size(), pad);
        let l = Layout::new(&shape, &strides, from.item_size(), misalign, seed);
        check(&l, from, swapped, to);
    }
}

/// Every dtype pair, both byte orders, over the layouts that pick each walk.
#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn every_pair_over_the_special_layouts() {
    type Strides = fn(usize) -> Vec<i64>;
    let layouts: Vec<(Vec<i64>, Strides)> = vec![
        // F-order 2-D: tiles, SIMD blocks plus both edges (67 = 8 * 8 + 3).
        (vec![67, 21], |e| vec![e as i64, 67 * e as i64]),
        // Transposed 3-D permutation (axes 2, 0, 1 of a C-order block).
        (vec![5, 70, 9], |e| {
            vec![9 * e as i64, 5 * 9 * e as i64, e as i64]
        }),
        (vec![9, 6, 70], |e| {
            vec![e as i64, 9 * 70 * e as i64, 9 * e as i64]
        }),
        // Reversed on both axes.
        (vec![7, 33], |e| vec![-33 * e as i64, -(e as i64)]),
        // Broadcast row and column.
        (vec![4, 17], |e| vec![0, e as i64]),
        (vec![17, 4], |e| vec![e as i64, 0]),
        // Byte strides that are not item multiples (odd), inner and outer.
        (vec![6, 11], |e| vec![11 * (e as i64 + 1) + 3, e as i64 + 1]),
        // Every other column (a[:, ::2]).
        (vec![9, 13], |e| vec![26 * e as i64, 2 * e as i64]),
    ];
    for &from in &Kind::ALL {
        for &to in &Kind::ALL {
            let (from, to) = (from.dtype(), to.dtype());
            for (shape, strides) in &layouts {
                for misalign in [0, 1] {
                    for swapped in [false, true] {
                        let swapped = swapped && from.item_size() > 1;
                        let e = from.item_size();
                        let l = Layout::new(shape, &strides(e), e, misalign, 7);
                        check(&l, from, swapped, to);
                    }
                }
            }
        }
    }
}

/// Opaque and vector elements (no casts, any size) move through the same walks.
#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn wide_and_odd_sized_elements_are_copied_unchanged() {
    for dtype in [
        DType::new(3, 24, 1), // 3-byte opaque
        DType::new(2, 32, 4), // float32x4: 16 bytes
        DType::new(3, 8, 40), // 40-byte opaque vector
        DType::new(0, 64, 3), // int64x3: 24 bytes
    ] {
        let e = dtype.item_size() as i64;
        for (shape, strides) in [
            (vec![70, 9], vec![e, 70 * e]),
            (vec![9, 70], vec![70 * e, e]),
            (vec![5, 8], vec![-8 * e, -e]),
            (vec![6, 80], vec![e, 0]),
        ] {
            let l = Layout::new(&shape, &strides, e as usize, 1, 3);
            check(&l, dtype, false, dtype);
        }
    }
}

/// Large enough for several workers (>= 4 MiB of traffic per worker) and for mapped storage:
/// every walk, with casts, at 1, 2 and 3 threads.
#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn large_copies_on_several_threads_match_the_reference() {
    let _guard = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    const R: i64 = 1100;
    const C: i64 = 1031;
    type Strides = fn(i64) -> Vec<i64>;
    let cases: Vec<(DType, DType, bool, Vec<i64>, Strides)> = vec![
        (DType::F32, DType::F32, false, vec![R, C], |e| {
            vec![C * e, e]
        }),
        (DType::F32, DType::F32, false, vec![R, C], |e| {
            vec![e, R * e]
        }),
        (DType::F64, DType::F32, false, vec![R, C], |e| {
            vec![e, R * e]
        }),
        (DType::F32, DType::F16, true, vec![R, C], |e| {
            vec![-C * e, e]
        }),
        (DType::F32, DType::BF16, false, vec![R, C], |e| {
            vec![C * e, e]
        }),
        (DType::I16, DType::F64, false, vec![R, C / 2], |e| {
            vec![C * e, 2 * e]
        }),
        (DType::F64, DType::F64, true, vec![C, R], |e| vec![e, C * e]),
        (DType::U8, DType::U8, false, vec![4 * R, C], |e| {
            vec![e, 4 * R * e]
        }),
    ];
    for (from, to, swapped, shape, strides) in &cases {
        let e = from.item_size() as i64;
        let l = Layout::new(shape, &strides(e), e as usize, 0, 11);
        let want = reference(&l, *from, *swapped, *to);
        for threads in [1, 2, 3] {
            dlshare::set_num_threads(threads);
            assert!(
                fast(&l, *from, *swapped, *to) == want,
                "{from} -> {to}, shape {shape:?}, strides {:?}, {threads} threads",
                l.strides
            );
        }
    }
    dlshare::set_num_threads(0);
    assert_eq!(dlshare::num_threads(), dlshare::default_num_threads());
}

/// Through the conversion entry point: the output lands in mapped, 256-byte (here 2 MiB)
/// aligned storage, first touched by the kernel.
#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn large_conversions_fill_aligned_storage() {
    let (r, c) = (1500i64, 1500i64);
    let l = Layout::new(&[r, c], &[4, 4 * r], 4, 0, 5);
    let src =
        // SAFETY: the layout lies inside `l`'s buffer, alive for the whole conversion.
        unsafe {
            Source::from_raw_parts(
                l.ptr() as *mut u8,
                0,
                DType::F32,
                vec![r, c],
                vec![4, 4 * r],
                Device::CPU,
                SourceFlags {
                    read_only: false,
                    byte_swapped: false,
                    subbyte_padded: false,
                },
            )
        };
    let opts = Options::new(Mode::Copy).with_dtype(DType::F16);
    let (t, decision) = convert(&src, &opts, || {
        Arc::new(Storage::foreign(
            std::ptr::null_mut(),
            0,
            Device::CPU,
            Release::none(),
        ))
    })
    .expect("convert");
    assert!(!decision.shared && t.is_c_contiguous());
    assert_eq!(t.data_ptr() as usize % OWNED_ALIGN, 0);
    // SAFETY: the tensor holds r * c float16 values and is alive here.
    let got = unsafe { std::slice::from_raw_parts(t.data_ptr(), (r * c * 2) as usize) };
    assert_eq!(got, reference(&l, DType::F32, false, DType::F16).as_slice());
}

#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn storage_large_and_small_allocations() {
    for (nbytes, zeroed) in [
        (100, true),
        (3 << 20, true),
        ((5 << 20) + 7, false),
        (0, true),
    ] {
        let mut s = Storage::alloc_cpu(nbytes, zeroed).expect("alloc");
        assert_eq!(s.ptr() as usize % OWNED_ALIGN, 0, "{nbytes}");
        assert!(s.is_owned());
        let bytes = s.owned_bytes_mut().expect("owned");
        assert_eq!(bytes.len(), nbytes);
        if zeroed {
            assert!(bytes.iter().all(|&b| b == 0), "{nbytes} bytes not zeroed");
        }
        bytes.fill(0xAB);
        assert!(bytes.iter().all(|&b| b == 0xAB));
        drop(s);
    }
}

/// Mapped buffers of up to 32 MiB are reused after a free: a zeroed request must still get
/// zeros, whatever the previous owner wrote.
#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn reused_mappings_are_zeroed_when_asked() {
    for round in 0..4 {
        let nbytes = (4 << 20) + 100;
        let mut dirty = Storage::alloc_cpu(nbytes, false).expect("alloc");
        dirty.owned_bytes_mut().unwrap().fill(0x5A);
        drop(dirty);
        let mut clean = Storage::alloc_cpu(nbytes, round % 2 == 0).expect("alloc");
        let bytes = clean.owned_bytes_mut().unwrap();
        if round % 2 == 0 {
            assert!(bytes.iter().all(|&b| b == 0), "round {round}");
        }
        bytes.fill(1);
    }
}

#[test]
fn thread_count_setting() {
    let _guard = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(dlshare::default_num_threads() >= 1);
    dlshare::set_num_threads(1);
    assert_eq!(dlshare::num_threads(), 1);
    dlshare::set_num_threads(5);
    assert_eq!(dlshare::num_threads(), 5);
    dlshare::set_num_threads(0);
    assert_eq!(dlshare::num_threads(), dlshare::default_num_threads());
}

#[test]
fn c_api_thread_count() {
    use dlshare::ffi::dlshare_status::*;
    use dlshare::ffi::threads::{dlshare_get_num_threads, dlshare_set_num_threads};
    let _guard = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(dlshare_set_num_threads(3), DLSHARE_OK);
    assert_eq!(dlshare_get_num_threads(), 3);
    assert_eq!(dlshare_set_num_threads(-1), DLSHARE_ERR_INVALID_ARGUMENT);
    assert_eq!(
        dlshare_get_num_threads(),
        3,
        "a refused value changes nothing"
    );
    assert_eq!(dlshare_set_num_threads(0), DLSHARE_OK);
    assert_eq!(
        dlshare_get_num_threads() as usize,
        dlshare::default_num_threads()
    );
}

/// A child forked after the copy threads started has none of them: its large copies must still
/// finish (on a pool of its own), not wait for threads that only exist in the parent.
#[cfg(unix)]
#[cfg_attr(
    miri,
    ignore = "large buffers, mappings and threads: too slow or unsupported under Miri"
)]
#[test]
fn large_copies_work_in_a_forked_child() {
    let _guard = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    dlshare::set_num_threads(2);
    let (r, c) = (1024i64, 1024i64);
    let l = Layout::new(&[r, c], &[4, 4 * r], 4, 0, 9);
    let want = reference(&l, DType::F32, false, DType::F32);
    assert!(fast(&l, DType::F32, false, DType::F32) == want, "parent");
    // SAFETY: the child only runs the copy (malloc and mmap are fork-safe) and leaves with
    // _exit; an alarm ends it if it hangs.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: as above.
        unsafe { libc::alarm(30) };
        let ok = fast(&l, DType::F32, false, DType::F32) == want;
        // SAFETY: leaves the child without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    dlshare::set_num_threads(0);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child's copy failed or hung (status {status:#x})"
    );
}

#[test]
fn dtype_kind_lookup_round_trips() {
    for k in Kind::ALL {
        assert_eq!(k.dtype().kind(), Some(k));
    }
    for d in [
        DType::new(2, 32, 4),
        DType::new(3, 64, 1),
        DType::new(8, 8, 1),
        DType::new(0, 24, 1),
    ] {
        assert_eq!(d.kind(), None, "{d:?}");
    }
}
