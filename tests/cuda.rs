//! CUDA through the C API (docs/design.md, "CUDA"; src/cuda/ and src/transfer/).
//!
//! Two halves, each of which runs only where it applies and prints a "skipped: ..." line
//! otherwise (Rust has no run-time skip):
//! - without a usable CUDA device (no driver, no GPU, `DLSHARE_DISABLE_CUDA=1`, or a build
//!   without the `cuda` feature): every entry point that takes a device answers
//!   DLSHARE_ERR_DEVICE_UNAVAILABLE with a message, leaves its outputs untouched and the
//!   caller's ownership as it was;
//! - with one (tests/gpu/run on a GPU machine): round trips of every dtype and layout host ->
//!   device -> host and device -> device, casts, pinned memory, zero-copy DLPack re-import,
//!   copies on a caller's stream, error messages, and memory back to where it started.

mod common;

use std::sync::atomic::AtomicUsize;

use common::*;
use dlshare::ffi::columns::dlshare_tensor_view;
use dlshare::ffi::cuda::*;

const CUDA_HOST0: DLDevice = DLDevice {
    device_type: 3,
    device_id: 0,
};
const CU_STREAM_LEGACY: usize = 1;

fn dev(device_type: i32, device_id: i32) -> DLDevice {
    DLDevice {
        device_type,
        device_id,
    }
}

/// Prints the skip line and returns true when there is no usable CUDA device.
fn no_gpu(test: &str) -> bool {
    if dlshare_cuda_available() {
        return false;
    }
    let why = dlshare::cuda::unavailable_reason().unwrap_or_default();
    println!("{test}: skipped: no CUDA device ({why})");
    true
}

/// Prints the skip line and returns true when CUDA is usable (the no-CUDA answers cannot be
/// observed then; tests/gpu/run checks them with DLSHARE_DISABLE_CUDA=1).
fn has_gpu(test: &str) -> bool {
    if !dlshare_cuda_available() {
        return false;
    }
    println!("{test}: skipped: CUDA is available (run with DLSHARE_DISABLE_CUDA=1)");
    true
}

fn to_device(mut o: dlshare_options, device: DLDevice) -> dlshare_options {
    o.has_device = true;
    o.device = device;
    o
}

fn on_stream(mut o: dlshare_options, stream: usize) -> dlshare_options {
    o.stream = stream as *mut std::ffi::c_void;
    o
}

fn create(zeroed: bool, dtype: DLDataType, shape: &[i64], device: DLDevice) -> dlshare_status {
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    let s = unsafe {
        if zeroed {
            dlshare_tensor_zeros(dtype, shape.len() as i32, shape.as_ptr(), device, &mut h)
        } else {
            dlshare_tensor_empty(dtype, shape.len() as i32, shape.as_ptr(), device, &mut h)
        }
    };
    if s == DLSHARE_OK {
        release(h);
    } else {
        assert_eq!(h, SENTINEL, "output written on failure");
    }
    s
}

/// Pseudo-random bytes (deterministic).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---- without CUDA ----------------------------------------------------------------------------

#[test]
fn without_cuda_every_device_entry_point_says_device_unavailable() {
    if has_gpu("without_cuda_every_device_entry_point_says_device_unavailable") {
        return;
    }
    let _g = lock_exclusive();
    let start = live();
    assert!(!dlshare_cuda_available());
    let mut devices = -7;
    // SAFETY: writable output.
    let msg = fails(
        unsafe { dlshare_cuda_device_count(&mut devices) },
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );
    assert_eq!(devices, -7, "count written on failure");
    assert!(msg.contains("no CUDA devices"), "{msg}");
    fails(dlshare_cuda_synchronize(0), DLSHARE_ERR_DEVICE_UNAVAILABLE);
    fails(
        dlshare_cuda_stream_wait(0, 1),
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );
    ok(dlshare_cuda_stream_wait(0, -1)); // -1: no synchronisation asked, nothing to do
    fails(dlshare_cuda_stream_wait(0, 0), DLSHARE_ERR_INVALID_ARGUMENT);
    let mut stream = std::ptr::null_mut();
    // SAFETY: writable output.
    fails(
        unsafe { dlshare_cuda_stream(0, &mut stream) },
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );
    let mut bytes = 0;
    // SAFETY: writable output.
    fails(
        unsafe { dlshare_cuda_memory_allocated(0, &mut bytes) },
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );

    // empty / zeros on a CUDA device or in pinned memory
    for device in [CUDA0, CUDA_HOST0, dev(2, 3)] {
        for zeroed in [false, true] {
            let msg = fails(
                create(zeroed, F32, &[4], device),
                DLSHARE_ERR_DEVICE_UNAVAILABLE,
            );
            assert!(msg.contains("cannot allocate on cuda"), "{msg}");
        }
    }
    // zero-size too: asking for the device is what fails
    fails(
        create(false, F32, &[0], CUDA0),
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );

    // convert / explain a CPU tensor to a CUDA device
    let buf = Buf::from_bytes(&to_bytes(&[1.0f32, 2.0, 3.0, 4.0]));
    let t = share_f32(&buf, &[4]);
    for mode in [SHARE_OR_COPY, COPY] {
        for target in [CUDA0, CUDA_HOST0] {
            let o = to_device(opts(mode), target);
            let (s, h, d) = convert(t, &o);
            let msg = fails(s, DLSHARE_ERR_DEVICE_UNAVAILABLE);
            assert!(msg.contains("copying to cuda"), "{msg}");
            assert_eq!(h, SENTINEL);
            assert_untouched(&d);
            let mut d = blank_decision();
            // SAFETY: valid pointers.
            fails(
                unsafe { dlshare_explain_tensor(t, &o, &mut d) },
                DLSHARE_ERR_DEVICE_UNAVAILABLE,
            );
            // with a stream: still the device that is missing (a stream applies to copies
            // to or from a CUDA device; into pinned memory the CPU copies)
            let (s, _, _) = convert(t, &on_stream(o, CU_STREAM_LEGACY));
            let want = if target == CUDA0 {
                DLSHARE_ERR_DEVICE_UNAVAILABLE
            } else {
                DLSHARE_ERR_INVALID_ARGUMENT
            };
            fails(s, want);
        }
    }
    // SHARE never crosses devices, with or without CUDA
    let (s, _, _) = convert(t, &to_device(opts(SHARE), CUDA0));
    fails(s, DLSHARE_ERR_INVALID_ARGUMENT);
    // a stream on a CPU-only conversion is an argument error
    let (s, _, _) = convert(t, &on_stream(opts(COPY), CU_STREAM_LEGACY));
    assert!(fails(s, DLSHARE_ERR_INVALID_ARGUMENT).contains("options.stream is set"));

    // a raw view of CUDA memory: shared without CUDA (no device change), refused to copy
    let released = AtomicUsize::new(0);
    let shape = [4i64];
    let fake_device_ptr = 0x7f00_0000_0000usize as *mut u8;
    let v = dlshare_view {
        device: CUDA0,
        ..view(fake_device_ptr, F32, &shape, None, 0, &released)
    };
    for o in [
        opts(COPY),
        to_device(opts(SHARE_OR_COPY), CPU),
        to_device(opts(COPY), CUDA0),
    ] {
        let (s, h, d) = from_view(&v, &o);
        let msg = fails(s, DLSHARE_ERR_DEVICE_UNAVAILABLE);
        assert!(msg.contains("copying from cuda:0"), "{msg}");
        assert_eq!(h, SENTINEL);
        assert_untouched(&d);
        assert_eq!(count(&released), 0, "release called on a failed import");
    }
    for mode in [SHARE, SHARE_OR_COPY] {
        let (s, h, d) = from_view(&v, &opts(mode));
        ok(s);
        assert!(d.shared);
        assert_eq!(info(h).0.device, CUDA0);
        assert_eq!(data_of(h), fake_device_ptr);
        release(h);
    }
    assert_eq!(count(&released), 2);

    // DLPack tensors on a CUDA device (versioned and legacy), COPY mode and a device change
    let spec = Spec {
        device: CUDA0,
        ..Spec::new(F32, &[4], to_bytes(&[0f32; 4]))
    };
    for o in [opts(COPY), to_device(opts(SHARE_OR_COPY), CPU)] {
        let p = produce_versioned(&spec);
        let before = p.snapshot();
        let (s, h, _) = import_versioned(p.managed, &o);
        assert!(fails(s, DLSHARE_ERR_DEVICE_UNAVAILABLE).contains("copying from cuda:0"));
        assert_eq!(h, SENTINEL);
        assert_eq!(p.deletions(), 0, "deleter called on a failed import");
        assert_eq!(p.snapshot(), before, "managed tensor modified on failure");
        let mut d = blank_decision();
        // SAFETY: valid pointers.
        fails(
            unsafe { dlshare_explain_dlpack(p.managed, &o, &mut d) },
            DLSHARE_ERR_DEVICE_UNAVAILABLE,
        );
        call_deleter_versioned(p.managed);
        assert_eq!(p.deletions(), 1);

        let p = produce_legacy(&spec);
        let (s, h, _) = import_legacy(p.managed, &o);
        fails(s, DLSHARE_ERR_DEVICE_UNAVAILABLE);
        assert_eq!(h, SENTINEL);
        assert_eq!(p.deletions(), 0);
        call_deleter_legacy(p.managed);
    }
    // ... and shared when nothing needs CUDA
    let p = produce_versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE_OR_COPY));
    ok(s);
    assert!(d.shared);
    release(h);
    assert_eq!(p.deletions(), 1);

    release(t);
    assert_eq!(live(), start);
}

// ---- with CUDA -------------------------------------------------------------------------------

/// A strided host source: bytes, shape, byte strides and offset of the first element.
struct Layout {
    name: &'static str,
    shape: Vec<i64>,
    /// element strides
    strides: Vec<i64>,
    /// element offset of the first element inside the buffer
    offset: i64,
}

fn layouts() -> Vec<Layout> {
    let l = |name, shape: &[i64], strides: &[i64], offset| Layout {
        name,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        offset,
    };
    vec![
        l("c_order", &[5, 7], &[7, 1], 0),
        l("f_order", &[5, 7], &[1, 5], 0),
        l("every_other_row", &[3, 7], &[14, 1], 0),
        l("column_slice", &[5, 3], &[7, 2], 1),
        l("reversed_rows", &[5, 7], &[-7, 1], 28),
        l("reversed_both", &[5, 7], &[-7, -1], 34),
        l("broadcast_rows", &[4, 7], &[0, 1], 0),
        l("permuted_3d", &[3, 4, 5], &[1, 15, 3], 0),
        l("zero_d", &[], &[], 3),
        l("zero_size", &[0, 7], &[7, 1], 0),
        l("one_element", &[1, 1], &[1, 1], 2),
    ]
}

/// Elements a layout touches at most (buffer size in elements).
const SPAN: usize = 64;

fn expected(buf: &Buf, lay: &Layout, item: usize) -> Vec<u8> {
    let bs: Vec<i64> = lay.strides.iter().map(|s| s * item as i64).collect();
    let first = buf.ptr().wrapping_add(lay.offset as usize * item);
    // SAFETY: every layout stays inside the SPAN-element buffer.
    unsafe { gather(first, &lay.shape, &bs, item) }
}

/// Host view of a layout over `buf`.
fn host_view(buf: &Buf, lay: &Layout, dtype: DLDataType, bs: &[i64]) -> dlshare_view {
    let item = item_size(dtype);
    dlshare_view {
        release: None,
        release_ctx: std::ptr::null_mut(),
        ..view(
            buf.ptr().wrapping_add(lay.offset as usize * item),
            dtype,
            &lay.shape,
            Some(bs),
            0,
            &AtomicUsize::new(0),
        )
    }
}

/// Device -> host copy of a tensor: its elements in C order.
fn download(h: *const dlshare_tensor) -> Vec<u8> {
    let (s, back, _) = convert(h, &to_device(opts(COPY), CPU));
    ok(s);
    let bytes = contents(back);
    release(back);
    bytes
}

#[track_caller]
fn assert_device_copy(h: *const dlshare_tensor, dtype: DLDataType, shape: &[i64]) {
    let (dl, flags) = info(h);
    assert_eq!(dl.device, CUDA0);
    assert_eq!(dl.dtype, dtype);
    assert_eq!(dl_shape(&dl), shape);
    assert_eq!(dl_strides(&dl).unwrap(), c_strides(shape));
    assert_eq!(flags & FLAG_IS_COPIED, FLAG_IS_COPIED);
    assert_eq!(
        dl.data as usize % 256,
        0,
        "device copy not 256-byte aligned"
    );
}

#[test]
fn every_dtype_and_layout_round_trips_host_device_host_and_device_device() {
    if no_gpu("every_dtype_and_layout_round_trips_host_device_host_and_device_device") {
        return;
    }
    let _g = lock();
    for (seed, (name, dtype)) in ALL_DTYPES.iter().enumerate() {
        let item = item_size(*dtype);
        let buf = Buf::from_bytes(&noise(SPAN * item, seed as u64));
        for lay in layouts() {
            let what = format!("{name} {}", lay.name);
            let want = expected(&buf, &lay, item);
            let bs: Vec<i64> = lay.strides.iter().map(|s| s * item as i64).collect();
            let v = host_view(&buf, &lay, *dtype, &bs);
            // host -> device
            let (s, d, dec) = from_view(&v, &to_device(opts(SHARE_OR_COPY), CUDA0));
            ok(s);
            assert!(
                !dec.shared && dec.reason == DLSHARE_REASON_DEVICE_CHANGE,
                "{what}"
            );
            assert_device_copy(d, *dtype, &lay.shape);
            // device -> host
            assert_eq!(download(d), want, "{what}: host -> device -> host");
            // device -> device, same device (COPY keeps the device)
            let (s, d2, _) = convert(d, &opts(COPY));
            ok(s);
            assert_device_copy(d2, *dtype, &lay.shape);
            assert_eq!(download(d2), want, "{what}: device -> device");
            // a strided view of device memory, copied on the device and down to the host
            if lay.shape.len() == 2 && lay.shape[0] > 1 && lay.shape[1] > 2 {
                let (rows, cols) = (lay.shape[0], lay.shape[1]);
                let vshape = [cols / 2, rows];
                let vstrides = [2, cols]; // transposed, every other column
                let mut sv = SENTINEL;
                // SAFETY: valid pointers.
                ok(unsafe {
                    dlshare_tensor_view(d, 2, vshape.as_ptr(), vstrides.as_ptr(), 0, &mut sv)
                });
                let mut want_view = Vec::new();
                for i in 0..vshape[0] {
                    for j in 0..vshape[1] {
                        let k = (j * cols + i * 2) as usize * item;
                        want_view.extend_from_slice(&want[k..k + item]);
                    }
                }
                assert_eq!(
                    download(sv),
                    want_view,
                    "{what}: strided device view -> host"
                );
                let (s, d3, _) = convert(sv, &opts(COPY));
                ok(s);
                assert_device_copy(d3, *dtype, &vshape);
                assert_eq!(download(d3), want_view, "{what}: strided device -> device");
                release(d3);
                release(sv);
            }
            release(d2);
            release(d);
        }
    }
}

#[test]
fn casts_and_byte_swaps_on_the_way_match_the_cpu_kernels() {
    if no_gpu("casts_and_byte_swaps_on_the_way_match_the_cpu_kernels") {
        return;
    }
    let _g = lock();
    let values: Vec<f64> = (0..SPAN).map(|i| i as f64 * 0.37 - 9.5).collect();
    let buf = Buf::from_bytes(&to_bytes(&values));
    for lay in layouts() {
        let bs: Vec<i64> = lay.strides.iter().map(|s| s * 8).collect();
        let v = host_view(&buf, &lay, F64, &bs);
        for to in [F32, F16, BF16, I32, C64] {
            let cast = |device: DLDevice| {
                let mut o = to_device(opts_dtype(COPY, to), device);
                o.allow_complex_to_real = true;
                let (s, h, _) = from_view(&v, &o);
                ok(s);
                h
            };
            let (on_cpu, on_gpu) = (cast(CPU), cast(CUDA0));
            assert_device_copy(on_gpu, to, &lay.shape);
            assert_eq!(download(on_gpu), contents(on_cpu), "{} to {to:?}", lay.name);
            // device -> device with a cast (through the host)
            let mut back = opts_dtype(COPY, F64);
            back.allow_complex_to_real = true;
            let (s, again, _) = convert(on_gpu, &back);
            ok(s);
            let (s, cpu_again, _) = convert(on_cpu, &back);
            ok(s);
            assert_eq!(download(again), contents(cpu_again), "{} back", lay.name);
            for h in [on_cpu, on_gpu, again, cpu_again] {
                release(h);
            }
        }
    }
    // a byte-swapped (big-endian) host view is swapped on its way to the device
    let be: Vec<u8> = to_bytes(&values)
        .chunks(8)
        .flat_map(|c| c.iter().rev().copied())
        .collect();
    let buf = Buf::from_bytes(&be);
    let shape = [SPAN as i64];
    let v = dlshare_view {
        release: None,
        release_ctx: std::ptr::null_mut(),
        ..view(
            buf.ptr(),
            F64,
            &shape,
            None,
            DLSHARE_VIEW_BYTE_SWAPPED,
            &AtomicUsize::new(0),
        )
    };
    let (s, d, _) = from_view(&v, &to_device(opts(SHARE_OR_COPY), CUDA0));
    ok(s);
    assert_eq!(download(d), to_bytes(&values));
    release(d);
}

#[test]
fn large_copies_pipeline_through_the_staging_buffers() {
    if no_gpu("large_copies_pipeline_through_the_staging_buffers") {
        return;
    }
    let _g = lock();
    // five staging buffers' worth (40 MiB with the default 8 MiB; tests/cuda_sim/run sets
    // DLSHARE_CUDA_CHUNK_MB=1): more than the four buffers of the ring each way, C order and
    // transposed (packed by tiles)
    let chunk_mb = std::env::var("DLSHARE_CUDA_CHUNK_MB")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&mb| (1..=1024).contains(&mb))
        .unwrap_or(8);
    let (rows, cols) = (320 * chunk_mb, 4096i64);
    let n = (rows * cols) as usize;
    let bytes = noise(n * 4, 99);
    let buf = Buf::from_bytes(&bytes);
    for (shape, strides) in [([rows, cols], [cols * 4, 4]), ([cols, rows], [4, cols * 4])] {
        let v = dlshare_view {
            release: None,
            release_ctx: std::ptr::null_mut(),
            ..view(
                buf.ptr(),
                F32,
                &shape,
                Some(&strides),
                0,
                &AtomicUsize::new(0),
            )
        };
        // SAFETY: the view lies inside `buf`.
        let want = unsafe { gather(buf.ptr(), &shape, &strides, 4) };
        let (s, d, _) = from_view(&v, &to_device(opts(COPY), CUDA0));
        ok(s);
        assert!(download(d) == want, "large round trip {shape:?} differs");
        // pinned destination and source
        let (s, pinned, _) = convert(d, &to_device(opts(COPY), CUDA_HOST0));
        ok(s);
        let (dl, _) = info(pinned);
        assert_eq!(dl.device, CUDA_HOST0);
        assert!(contents(pinned) == want, "device -> pinned differs");
        let (s, d2, _) = convert(pinned, &to_device(opts(COPY), CUDA0));
        ok(s);
        assert!(download(d2) == want, "pinned -> device differs");
        for h in [d, pinned, d2] {
            release(h);
        }
    }
}

#[test]
fn zeros_pinned_memory_and_zero_copy_dlpack_reimport() {
    if no_gpu("zeros_pinned_memory_and_zero_copy_dlpack_reimport") {
        return;
    }
    let _g = lock();
    let shape = [3i64, 1000];
    let mut z = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F64, 2, shape.as_ptr(), CUDA0, &mut z) });
    assert_eq!(info(z).0.device, CUDA0);
    assert!(download(z).iter().all(|&b| b == 0));

    // pinned host memory is CPU-readable and writable, and is copied directly
    let mut p = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F64, 2, shape.as_ptr(), CUDA_HOST0, &mut p) });
    let values: Vec<f64> = (0..3000).map(|i| i as f64).collect();
    // SAFETY: the pinned tensor holds 3000 f64 the CPU can write.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), data_of(p).cast(), 3000) };
    let (s, d, _) = convert(p, &to_device(opts(COPY), CUDA0));
    ok(s);
    assert_eq!(download(d), to_bytes(&values));

    // export to DLPack and import again: the same device memory, no copy
    let mut m = std::ptr::null_mut();
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_to_dlpack(d, &mut m) });
    // SAFETY: `m` is the live export.
    assert_eq!(unsafe { (*m).dl_tensor.device }, CUDA0);
    let (s, again, dec) = import_versioned(m, &opts(SHARE));
    ok(s);
    assert!(dec.shared);
    assert_eq!(data_of(again), data_of(d));
    assert!(shares_memory(again, d));
    for h in [z, p, d, again] {
        release(h);
    }
}

#[test]
fn copies_on_a_callers_stream_and_the_stream_handoff() {
    if no_gpu("copies_on_a_callers_stream_and_the_stream_handoff") {
        return;
    }
    let _g = lock_exclusive();
    let start = live();
    let mut before = 0;
    // SAFETY: writable output.
    ok(unsafe { dlshare_cuda_memory_allocated(0, &mut before) });
    let values: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
    let buf = Buf::from_bytes(&to_bytes(&values));
    let shape = [values.len() as i64];
    let v = dlshare_view {
        release: None,
        release_ctx: std::ptr::null_mut(),
        ..view(buf.ptr(), F32, &shape, None, 0, &AtomicUsize::new(0))
    };
    let mut ours = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_cuda_stream(0, &mut ours) });
    assert!(!ours.is_null());
    for stream in [CU_STREAM_LEGACY, 2, ours as usize] {
        // host -> device on the caller's stream, handed to the legacy stream, read back
        let o = on_stream(to_device(opts(COPY), CUDA0), stream);
        let (s, d, _) = from_view(&v, &o);
        ok(s);
        ok(dlshare_cuda_stream_wait(0, 1));
        ok(dlshare_cuda_stream_wait(0, 2));
        ok(dlshare_cuda_stream_wait(0, -1));
        fails(dlshare_cuda_stream_wait(0, 0), DLSHARE_ERR_INVALID_ARGUMENT);
        // device -> host on the same stream: finished when the call returns
        let (s, back, _) = convert(d, &on_stream(to_device(opts(COPY), CPU), stream));
        ok(s);
        assert_eq!(contents(back), to_bytes(&values));
        // device -> device on the caller's stream from an imported tensor: the producer is
        // kept until the copy is done, and released by the next synchronisation
        let mut m = std::ptr::null_mut();
        // SAFETY: valid pointers.
        ok(unsafe { dlshare_tensor_to_dlpack(d, &mut m) });
        release(d);
        let with_source = live();
        let (s, copy, _) = import_versioned(m, &on_stream(opts(COPY), stream));
        ok(s);
        assert_eq!(
            live(),
            with_source + 2,
            "the copy, and the imported source kept while the copy may run"
        );
        ok(dlshare_cuda_synchronize(0));
        // the imported source goes, and with it the producer's export of `d`
        assert_eq!(live(), with_source, "synchronize releases the source");
        assert_eq!(download(copy), to_bytes(&values));
        release(copy);
        release(back);
    }
    ok(dlshare_cuda_synchronize(0));
    assert_eq!(live(), start);
    let mut after = 0;
    // SAFETY: writable output.
    ok(unsafe { dlshare_cuda_memory_allocated(0, &mut after) });
    assert_eq!(after, before, "device memory returns to where it started");
}

#[test]
fn cuda_errors_name_the_device_or_the_cuda_error() {
    if no_gpu("cuda_errors_name_the_device_or_the_cuda_error") {
        return;
    }
    let _g = lock();
    let mut n = 0;
    // SAFETY: writable output.
    ok(unsafe { dlshare_cuda_device_count(&mut n) });
    assert!(n >= 1);
    let msg = fails(
        create(false, F32, &[4], dev(2, n)),
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );
    assert!(
        msg.contains(&format!("there is no CUDA device {n}")),
        "{msg}"
    );
    fails(dlshare_cuda_synchronize(n), DLSHARE_ERR_DEVICE_UNAVAILABLE);
    // 2^46 float32 = 256 TiB: more than any GPU has
    let msg = fails(
        create(false, F32, &[1 << 23, 1 << 23], CUDA0),
        DLSHARE_ERR_OUT_OF_MEMORY,
    );
    assert!(msg.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{msg}");
    // a stream on a CPU-only conversion is still refused
    let buf = Buf::from_bytes(&to_bytes(&[1.0f32; 4]));
    let t = share_f32(&buf, &[4]);
    let (s, _, _) = convert(t, &on_stream(opts(COPY), CU_STREAM_LEGACY));
    fails(s, DLSHARE_ERR_INVALID_ARGUMENT);
    release(t);
}
