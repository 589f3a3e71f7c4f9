//! DLPack ownership: unsupported versions are refused without touching anything; a failed
//! import leaves the managed tensor with the caller (deleter not called, struct unchanged); the
//! producer's deleter runs exactly once, after the last handle or export that shares it, or
//! before the import returns when it copied.

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

fn f32_spec(shape: &[i64]) -> Spec {
    let n = numel(shape);
    let values: Vec<f32> = (0..n).map(|i| i as f32 * 1.25).collect();
    Spec::new(F32, shape, to_bytes(&values))
}

#[test]
fn other_major_versions_are_refused_without_reading_the_rest() {
    let _g = lock();
    for major in [0u32, 2, 3, u32::MAX] {
        for mode in [SHARE, SHARE_OR_COPY, COPY] {
            let mut spec = f32_spec(&[2, 2]);
            spec.version = DLPackVersion { major, minor: 0 };
            let p = produce_versioned(&spec);
            // Garbage everywhere a 1.x reader would look.
            // SAFETY: the test owns the struct.
            unsafe {
                let m = &mut *p.managed;
                m.flags = u64::MAX;
                m.dl_tensor.ndim = -5;
                m.dl_tensor.shape = std::ptr::null_mut();
                m.dl_tensor.strides = std::ptr::null_mut();
                m.dl_tensor.data = std::ptr::null_mut();
                m.dl_tensor.dtype = DLDataType {
                    code: 250,
                    bits: 3,
                    lanes: 0,
                };
                m.dl_tensor.device = DLDevice {
                    device_type: -7,
                    device_id: -1,
                };
                m.dl_tensor.byte_offset = u64::MAX;
            }
            let before = p.snapshot();
            let (s, h, d) = import_versioned(p.managed, &opts(mode));
            let msg = fails(s, DLSHARE_ERR_UNSUPPORTED_VERSION);
            assert!(
                msg.contains(&major.to_string()),
                "message names the version: {msg}"
            );
            assert_eq!(h, SENTINEL);
            assert_untouched(&d);
            assert_eq!(p.snapshot(), before, "major {major}: struct modified");
            assert_eq!(p.deletions(), 0, "major {major}: deleter called");

            let mut e = blank_decision();
            // SAFETY: valid pointers.
            let s = unsafe { dlshare_explain_dlpack(p.managed, &opts(mode), &mut e) };
            fails(s, DLSHARE_ERR_UNSUPPORTED_VERSION);
            assert_untouched(&e);
            assert_eq!(p.snapshot(), before);
            assert_eq!(p.deletions(), 0);

            call_deleter_versioned(p.managed);
            assert_eq!(p.deletions(), 1);
        }
    }
}

/// One way to make an import fail: what to break, the mode, and the expected status.
struct Failure {
    name: &'static str,
    status: dlshare_status,
    spec: Spec,
    options: dlshare_options,
    /// The SHARE refusal's reason, which the decision carries.
    reason: Option<dlshare_reason>,
    null_out: bool,
}

fn failures() -> Vec<Failure> {
    let base = f32_spec(&[2, 3]);
    let with = |f: &dyn Fn(&mut Spec)| {
        let mut s = base.clone();
        f(&mut s);
        s
    };
    let soc = opts(SHARE_OR_COPY);
    let mut bad_mode = soc;
    bad_mode.mode = 7;
    let mut with_stream = soc;
    with_stream.stream = 0x1000 as *mut c_void;
    let mut to_cuda = soc;
    to_cuda.has_device = true;
    to_cuda.device = CUDA0;
    let complex: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let f = |name, status, spec, options| Failure {
        name,
        status,
        spec,
        options,
        reason: None,
        null_out: false,
    };
    vec![
        f(
            "unknown dtype code",
            DLSHARE_ERR_UNSUPPORTED_DTYPE,
            with(&|s| s.dtype = dt(99, 32)),
            soc,
        ),
        f(
            "bits do not match the code",
            DLSHARE_ERR_UNSUPPORTED_DTYPE,
            with(&|s| s.dtype = dt(2, 24)),
            soc,
        ),
        f(
            "lanes 0",
            DLSHARE_ERR_UNSUPPORTED_DTYPE,
            with(&|s| s.dtype.lanes = 0),
            soc,
        ),
        f(
            "negative ndim",
            DLSHARE_ERR_INVALID_DLPACK,
            with(&|s| {
                s.shape = vec![];
                s.strides = None;
            }),
            soc,
        ),
        f(
            "negative extent",
            DLSHARE_ERR_INVALID_DLPACK,
            with(&|s| s.shape = vec![2, -3]),
            soc,
        ),
        f(
            "NULL data with elements",
            DLSHARE_ERR_NULL_ARGUMENT,
            with(&|s| s.null_data = true),
            soc,
        ),
        f(
            "unknown device type",
            DLSHARE_ERR_UNSUPPORTED_DEVICE,
            with(&|s| {
                s.device = DLDevice {
                    device_type: 99,
                    device_id: 0,
                }
            }),
            soc,
        ),
        f(
            "negative device id",
            DLSHARE_ERR_INVALID_ARGUMENT,
            with(&|s| {
                s.device = DLDevice {
                    device_type: 1,
                    device_id: -1,
                }
            }),
            soc,
        ),
        f(
            "copy from CUDA memory without CUDA",
            DLSHARE_ERR_DEVICE_UNAVAILABLE,
            with(&|s| s.device = CUDA0),
            opts(COPY),
        ),
        f(
            "copy to CUDA without CUDA",
            DLSHARE_ERR_DEVICE_UNAVAILABLE,
            base.clone(),
            to_cuda,
        ),
        f(
            "stride overflow",
            DLSHARE_ERR_OVERFLOW,
            with(&|s| s.strides = Some(vec![i64::MAX / 2, 1])),
            soc,
        ),
        f(
            "SHARE with a dtype change",
            DLSHARE_ERR_INVALID_ARGUMENT,
            base.clone(),
            opts_dtype(SHARE, F64),
        ),
        f(
            "invalid mode",
            DLSHARE_ERR_INVALID_ARGUMENT,
            base.clone(),
            bad_mode,
        ),
        f(
            "stream on a CPU conversion",
            DLSHARE_ERR_INVALID_ARGUMENT,
            base.clone(),
            with_stream,
        ),
        f(
            "complex to real without permission",
            DLSHARE_ERR_INVALID_ARGUMENT,
            Spec::new(C64, &[2, 3], to_bytes(&complex)),
            opts_dtype(SHARE_OR_COPY, F32),
        ),
        f(
            "cast of a type dlshare cannot compute",
            DLSHARE_ERR_UNSUPPORTED_DTYPE,
            Spec::new(F8E4M3FN, &[2, 3], vec![0x38; 6]),
            opts_dtype(COPY, F32),
        ),
        Failure {
            reason: Some(DLSHARE_REASON_NEGATIVE_STRIDE),
            ..f(
                "SHARE with a negative stride",
                DLSHARE_ERR_CANNOT_SHARE,
                with(&|s| {
                    s.data_shift = 12;
                    s.strides = Some(vec![-3, 1]);
                }),
                opts(SHARE),
            )
        },
        Failure {
            reason: Some(DLSHARE_REASON_MISALIGNED),
            ..f(
                "SHARE of misaligned data",
                DLSHARE_ERR_CANNOT_SHARE,
                with(&|s| {
                    s.bytes.push(0);
                    s.byte_offset = 1;
                }),
                opts(SHARE),
            )
        },
        Failure {
            null_out: true,
            ..f(
                "NULL tensor_out",
                DLSHARE_ERR_NULL_ARGUMENT,
                base.clone(),
                soc,
            )
        },
    ]
}

fn check_failure_versioned(case: &Failure) {
    let p = produce_versioned(&case.spec);
    if case.name == "negative ndim" {
        // SAFETY: the test owns the struct.
        unsafe { (*p.managed).dl_tensor.ndim = -1 };
    }
    let before = p.snapshot();
    let mut h = SENTINEL;
    let mut d = blank_decision();
    let out: *mut *mut dlshare_tensor = if case.null_out {
        std::ptr::null_mut()
    } else {
        &mut h
    };
    // SAFETY: valid pointers (or NULL where tested).
    let s = unsafe { dlshare_tensor_from_dlpack(p.managed, &case.options, out, &mut d) };
    fails(s, case.status);
    assert_eq!(h, SENTINEL, "{}: output written", case.name);
    assert_eq!(p.deletions(), 0, "{}: deleter called on failure", case.name);
    assert_eq!(p.snapshot(), before, "{}: struct modified", case.name);
    match case.reason {
        Some(r) => {
            assert!(!d.shared);
            assert_eq!(d.reason, r, "{}", case.name);
            assert!(!detail(&d).is_empty());
        }
        None => assert_untouched(&d),
    }
    // explain gives the same answer and takes nothing either.
    if !case.null_out {
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        let s = unsafe { dlshare_explain_dlpack(p.managed, &case.options, &mut e) };
        assert_eq!(s, case.status, "{}: explain disagrees", case.name);
        if case.reason.is_some() {
            assert_eq!(summary(&e), summary(&d));
        }
        assert_eq!(p.deletions(), 0);
        assert_eq!(p.snapshot(), before);
    }
    // The caller still owns it.
    call_deleter_versioned(p.managed);
    assert_eq!(p.deletions(), 1);
}

fn check_failure_legacy(case: &Failure) {
    let l = produce_legacy(&case.spec);
    if case.name == "negative ndim" {
        // SAFETY: the test owns the struct.
        unsafe { (*l.managed).dl_tensor.ndim = -1 };
    }
    let before = l.snapshot();
    let mut h = SENTINEL;
    let out: *mut *mut dlshare_tensor = if case.null_out {
        std::ptr::null_mut()
    } else {
        &mut h
    };
    // SAFETY: valid pointers (or NULL where tested).
    let s = unsafe {
        dlshare_tensor_from_dlpack_legacy(l.managed, &case.options, out, std::ptr::null_mut())
    };
    fails(s, case.status);
    assert_eq!(h, SENTINEL, "{}: output written", case.name);
    assert_eq!(l.deletions(), 0, "{}: deleter called on failure", case.name);
    assert_eq!(l.snapshot(), before, "{}: struct modified", case.name);
    call_deleter_legacy(l.managed);
    assert_eq!(l.deletions(), 1);
}

#[test]
fn failed_imports_leave_ownership_with_the_caller() {
    let _g = lock();
    for case in failures() {
        check_failure_versioned(&case);
        check_failure_legacy(&case);
    }
}

#[test]
fn ndim_beyond_the_limit_and_null_shape_are_invalid_dlpack() {
    let _g = lock();
    for (ndim, null_shape) in [(65, false), (2, true), (1000, true)] {
        let p = produce_versioned(&f32_spec(&[2, 3]));
        // SAFETY: the test owns the struct.
        unsafe {
            (*p.managed).dl_tensor.ndim = ndim;
            if null_shape {
                (*p.managed).dl_tensor.shape = std::ptr::null_mut();
            }
        }
        if ndim > 2 && !null_shape {
            // A shape array long enough for the reader not to overrun before it refuses.
            point_shape_at_ones(&p, ndim);
        }
        let before = p.snapshot();
        let (s, h, d) = import_versioned(p.managed, &opts(SHARE_OR_COPY));
        fails(s, DLSHARE_ERR_INVALID_DLPACK);
        assert_eq!(h, SENTINEL);
        assert_untouched(&d);
        assert_eq!(p.snapshot(), before);
        assert_eq!(p.deletions(), 0);
        // SAFETY: restore what the deleter frees (it does not read dl_tensor).
        call_deleter_versioned(p.managed);
        assert_eq!(p.deletions(), 1);
    }
}

/// Points shape/strides at static arrays of `ndim` ones (leaked for the test's lifetime).
fn point_shape_at_ones(p: &Produced<DLManagedTensorVersioned>, ndim: i32) {
    let ones: &'static mut [i64] = Box::leak(vec![1i64; ndim as usize].into_boxed_slice());
    // SAFETY: the test owns the struct.
    unsafe {
        (*p.managed).dl_tensor.shape = ones.as_mut_ptr();
        (*p.managed).dl_tensor.strides = ones.as_mut_ptr();
    }
}

#[test]
fn retry_after_a_refusal_succeeds_and_deletes_once() {
    let _g = lock();
    let mut spec = f32_spec(&[3, 2]);
    spec.data_shift = 16;
    spec.strides = Some(vec![-2, 1]);
    let p = produce_versioned(&spec);
    let (s, _, d) = import_versioned(p.managed, &opts(SHARE));
    fails(s, DLSHARE_ERR_CANNOT_SHARE);
    assert_eq!(d.reason, DLSHARE_REASON_NEGATIVE_STRIDE);
    assert_eq!(p.deletions(), 0);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE_OR_COPY));
    ok(s);
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_NEGATIVE_STRIDE);
    assert_eq!(
        p.deletions(),
        1,
        "the copy releases the producer before returning"
    );
    // Rows reversed: row 0 of the result is the producer's row 2.
    let values: Vec<f32> = (0..6).map(|i| i as f32 * 1.25).collect();
    let expected: Vec<f32> = [4, 5, 2, 3, 0, 1].iter().map(|&i| values[i]).collect();
    assert_eq!(from_bytes::<f32>(&contents(h)), expected);
    release(h);
    assert_eq!(p.deletions(), 1);
}

#[test]
fn a_copying_import_deletes_before_returning_and_never_again() {
    let _g = lock_exclusive();
    let start = live();
    for legacy in [false, true] {
        let spec = f32_spec(&[4]);
        let (s, h, deleted) = if legacy {
            let p = produce_legacy(&spec);
            let (s, h, _) = import_legacy(p.managed, &opts(COPY));
            (s, h, p.deleted)
        } else {
            let p = produce_versioned(&spec);
            let (s, h, _) = import_versioned(p.managed, &opts(COPY));
            (s, h, p.deleted)
        };
        ok(s);
        assert_eq!(count(&deleted), 1);
        assert_eq!(live(), start + 1, "only the copy is alive");
        let (s, h2, d) = convert(h, &opts(SHARE_OR_COPY));
        ok(s);
        assert!(d.shared);
        release(h);
        release(h2);
        assert_eq!(count(&deleted), 1);
        assert_eq!(live(), start);
    }
}

#[test]
fn deleter_runs_once_after_all_handles_and_exports() {
    let _g = lock_exclusive();
    let start = live();
    let p = produce_versioned(&f32_spec(&[2, 3]));
    let (s, h1, d) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    assert_eq!(live(), start + 1);

    // A second owner of the same handle.
    ok(dlshare_tensor_retain(h1));
    // A second handle sharing the memory.
    let (s, h2, d) = convert(h1, &opts(SHARE_OR_COPY));
    ok(s);
    assert!(d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_NONE);
    assert!(shares_memory(h1, h2));
    assert_eq!(data_of(h2), data_of(h1));
    // An export of the second handle, kept alive past every handle.
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h2, &mut ev) });
    let mut el: *mut DLManagedTensor = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack_legacy(h1, &mut el) });

    release(h1);
    assert_eq!(p.deletions(), 0);
    release(h1);
    assert_eq!(p.deletions(), 0);
    release(h2);
    assert_eq!(p.deletions(), 0, "exports still use the memory");
    assert_eq!(live(), start + 1, "one storage, kept by the exports");
    // The export's memory is still the producer's and still readable.
    // SAFETY: a live export.
    let data = unsafe { (*ev).dl_tensor.data };
    assert_eq!(data, p.data);
    // SAFETY: the export keeps the producer's buffer alive.
    assert_eq!(unsafe { data.cast::<f32>().add(5).read() }, 5.0 * 1.25);

    call_deleter_legacy(el);
    assert_eq!(p.deletions(), 0);
    call_deleter_versioned(ev);
    assert_eq!(p.deletions(), 1, "deleter after the last export's deleter");
    assert_eq!(live(), start);
}

#[test]
fn deleter_runs_once_when_the_last_release_is_on_another_thread() {
    let _g = lock();
    let p = produce_versioned(&f32_spec(&[8]));
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    let handles: Vec<usize> = (0..8)
        .map(|_| {
            ok(dlshare_tensor_retain(h));
            h as usize
        })
        .collect();
    let threads: Vec<_> = handles
        .into_iter()
        .map(|raw| {
            std::thread::spawn(move || {
                let h = raw as *mut dlshare_tensor;
                let (dl, _) = info(h);
                assert_eq!(dl.ndim, 1);
                release(h);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(p.deletions(), 0);
    release(h);
    assert_eq!(p.deletions(), 1);
    fails(dlshare_tensor_release(h), DLSHARE_ERR_INVALID_HANDLE);
    assert_eq!(p.deletions(), 1);
}

#[test]
fn exported_tensors_are_independent_of_the_handle_table() {
    let _g = lock_exclusive();
    let start = live();
    let mut h = SENTINEL;
    let shape = [5i64];
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F64, 1, shape.as_ptr(), CPU, &mut h) });
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
    release(h);
    assert_eq!(live(), start + 1);
    // SAFETY: a live export of five zeroed f64.
    let zeros = unsafe { std::slice::from_raw_parts((*ev).dl_tensor.data.cast::<f64>(), 5) };
    assert_eq!(zeros, [0.0; 5]);
    call_deleter_versioned(ev);
    assert_eq!(live(), start);
}

/// A handle the re-entrant deleter releases, and what it saw.
static REENTRANT_TARGET: AtomicUsize = AtomicUsize::new(0);
static REENTRANT_SEEN: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn reentrant_deleter(m: *mut DLManagedTensorVersioned) {
    // Calls back into dlshare from inside a release: must not deadlock on the handle table.
    let target = REENTRANT_TARGET.load(Ordering::SeqCst) as *mut dlshare_tensor;
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    // SAFETY: writable output.
    let s1 = unsafe { dlshare_tensor_info(target, dl.as_mut_ptr(), std::ptr::null_mut()) };
    let s2 = dlshare_tensor_release(target);
    let mut fresh = SENTINEL;
    // SAFETY: valid pointers.
    let s3 = unsafe { dlshare_tensor_zeros(U8, 1, [2i64].as_ptr(), CPU, &mut fresh) };
    let s4 = dlshare_tensor_release(fresh);
    if [s1, s2, s3, s4].iter().all(|&s| s == DLSHARE_OK) {
        REENTRANT_SEEN.fetch_add(1, Ordering::SeqCst);
    }
    // SAFETY: `m` was leaked by the test; free it as its producer.
    unsafe { drop(Box::from_raw(m)) };
}

#[test]
fn a_deleter_may_call_back_into_dlshare() {
    let _g = lock();
    let data = Box::leak(Box::new([1.0f32, 2.0]));
    let shape: &'static mut [i64] = Box::leak(Box::new([2i64]));
    let m = Box::into_raw(Box::new(DLManagedTensorVersioned {
        version: DLPackVersion { major: 1, minor: 3 },
        manager_ctx: std::ptr::null_mut(),
        deleter: Some(reentrant_deleter),
        flags: 0,
        dl_tensor: DLTensor {
            data: data.as_mut_ptr().cast(),
            device: CPU,
            ndim: 1,
            dtype: F32,
            shape: shape.as_mut_ptr(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        },
    }));
    let mut other = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F64, 1, [3i64].as_ptr(), CPU, &mut other) });
    REENTRANT_TARGET.store(other as usize, Ordering::SeqCst);
    let (s, h, _) = import_versioned(m, &opts(SHARE));
    ok(s);
    release(h);
    assert_eq!(
        REENTRANT_SEEN.load(Ordering::SeqCst),
        1,
        "the deleter's calls failed"
    );
    fails(dlshare_tensor_release(other), DLSHARE_ERR_INVALID_HANDLE);
}

#[test]
fn a_null_deleter_is_accepted() {
    let _g = lock();
    let data = [7u16, 8, 9];
    let shape = [3i64];
    for mode in [SHARE, COPY] {
        let mut m = DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 3 },
            manager_ctx: std::ptr::null_mut(),
            deleter: None,
            flags: FLAG_READ_ONLY,
            dl_tensor: DLTensor {
                data: data.as_ptr().cast_mut().cast(),
                device: CPU,
                ndim: 1,
                dtype: U16,
                shape: shape.as_ptr().cast_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: 0,
            },
        };
        let mut o = opts(mode);
        o.allow_read_only = true;
        let (s, h, d) = import_versioned(&mut m, &o);
        ok(s);
        assert_eq!(d.shared, mode == SHARE);
        assert_eq!(from_bytes::<u16>(&contents(h)), data);
        release(h);
    }
}
