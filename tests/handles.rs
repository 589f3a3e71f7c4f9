//! The handle table: NULL, foreign and released handles are refused with
//! DLSHARE_ERR_INVALID_HANDLE and a message, never dereferenced; retain/release count owners;
//! the live-tensor count returns to where it started; status names and per-thread messages.

mod common;

use std::ffi::CStr;

use common::*;

fn new_tensor(shape: &[i64]) -> *mut dlshare_tensor {
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F32, shape.len() as i32, shape.as_ptr(), CPU, &mut h) });
    assert_ne!(h, SENTINEL);
    h
}

/// Calls every function that takes a handle and checks each refuses `h` with
/// DLSHARE_ERR_INVALID_HANDLE, a message, and untouched outputs.
fn assert_refused_everywhere(h: *mut dlshare_tensor, what: &str) {
    let good = new_tensor(&[2]);
    let mut dl = std::mem::MaybeUninit::<DLTensor>::zeroed();
    let mut flags = 77u64;
    let mut out = SENTINEL;
    let mut d = blank_decision();
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    let mut el: *mut DLManagedTensor = std::ptr::null_mut();
    let mut b = false;
    let mut i = -9i32;
    let mut p: *const i64 = std::ptr::null();
    let mut u = 77u64;
    let mut data = std::ptr::null_mut();
    let mut dty = dt(0, 0);
    let mut dev = CUDA0;
    let o = opts(SHARE_OR_COPY);
    // SAFETY: outputs are writable; `h` is the handle under test.
    let statuses = unsafe {
        [
            ("info", dlshare_tensor_info(h, dl.as_mut_ptr(), &mut flags)),
            ("retain", dlshare_tensor_retain(h)),
            ("convert", dlshare_tensor_convert(h, &o, &mut out, &mut d)),
            ("explain", dlshare_explain_tensor(h, &o, &mut d)),
            ("to_dlpack", dlshare_tensor_to_dlpack(h, &mut ev)),
            ("to_dlpack_copy", dlshare_tensor_to_dlpack_copy(h, &mut ev)),
            (
                "to_dlpack_legacy",
                dlshare_tensor_to_dlpack_legacy(h, &mut el),
            ),
            ("ndim", dlshare_tensor_ndim(h, &mut i)),
            ("shape", dlshare_tensor_shape(h, &mut p)),
            ("strides", dlshare_tensor_strides(h, &mut p)),
            ("dtype", dlshare_tensor_dtype(h, &mut dty)),
            ("device", dlshare_tensor_device(h, &mut dev)),
            ("data", dlshare_tensor_data(h, &mut data)),
            ("byte_offset", dlshare_tensor_byte_offset(h, &mut u)),
            ("nbytes", dlshare_tensor_nbytes(h, &mut u)),
            ("is_read_only", dlshare_tensor_is_read_only(h, &mut b)),
            ("is_c_contiguous", dlshare_tensor_is_c_contiguous(h, &mut b)),
            ("is_f_contiguous", dlshare_tensor_is_f_contiguous(h, &mut b)),
            (
                "shares_memory(h, good)",
                dlshare_tensor_shares_memory(h, good, &mut b),
            ),
            (
                "shares_memory(good, h)",
                dlshare_tensor_shares_memory(good, h, &mut b),
            ),
        ]
    };
    for (f, s) in statuses {
        assert_eq!(
            s,
            DLSHARE_ERR_INVALID_HANDLE,
            "{what}: {f} gave {}",
            status_name(s)
        );
    }
    // Each failing call left a message (the last one's is checked here; `fails` checks one
    // call at a time below).
    assert!(!last_error().is_empty());
    // SAFETY: as above.
    fails(
        unsafe { dlshare_tensor_info(h, dl.as_mut_ptr(), &mut flags) },
        DLSHARE_ERR_INVALID_HANDLE,
    );
    fails(dlshare_tensor_retain(h), DLSHARE_ERR_INVALID_HANDLE);
    if !h.is_null() {
        fails(dlshare_tensor_release(h), DLSHARE_ERR_INVALID_HANDLE);
    }
    // Outputs untouched.
    assert_eq!(flags, 77);
    assert_eq!(out, SENTINEL);
    assert_untouched(&d);
    assert!(ev.is_null() && el.is_null() && p.is_null() && data.is_null());
    assert_eq!((i, u, b, dty, dev), (-9, 77, false, dt(0, 0), CUDA0));
    release(good);
}

#[test]
fn null_handles_are_refused() {
    let _g = lock();
    assert_refused_everywhere(std::ptr::null_mut(), "NULL");
    // Releasing NULL is a no-op.
    ok(dlshare_tensor_release(std::ptr::null_mut()));
}

#[test]
fn foreign_handles_are_refused() {
    let _g = lock();
    let local = [0u64; 4];
    let boxed = Box::new([0u8; 64]);
    let mut candidates: Vec<*mut dlshare_tensor> = (0..4)
        .map(|i| std::ptr::from_ref(&local[i]).cast_mut().cast())
        .collect();
    candidates.extend((0..16).map(|i| boxed.as_ptr().wrapping_add(i).cast_mut().cast()));
    candidates.extend(
        [
            1usize,
            8,
            0x18,
            0xdead_beef,
            usize::MAX,
            usize::MAX - 7,
            0x7fff_ffff_fff8,
        ]
        .map(|v| v as *mut dlshare_tensor),
    );
    // A live handle's value with its tag bits broken, or with another generation, is not a
    // handle either. (Changing the slot bits could name another test's live tensor.)
    let real = new_tensor(&[1]);
    candidates.extend(
        [1usize, 2, 4, 8, 1 << 32, 5 << 32]
            .map(|delta| (real as usize).wrapping_add(delta) as *mut dlshare_tensor),
    );
    candidates.push((real as usize).wrapping_sub(1 << 32) as *mut dlshare_tensor);
    for c in candidates {
        assert_refused_everywhere(c, &format!("foreign {c:p}"));
    }
    // The live handle is unaffected by all that.
    assert_eq!(shape_of(real), [1]);
    release(real);
}

#[test]
fn released_handles_are_refused_even_after_their_slot_is_reused() {
    let _g = lock();
    let h = new_tensor(&[3]);
    release(h);
    assert_refused_everywhere(h, "released");
    // New handles (one of which may reuse the slot) do not revive the old one.
    let fresh: Vec<_> = (0..8).map(|_| new_tensor(&[2, 2])).collect();
    assert!(
        !fresh.contains(&h),
        "a released handle value was handed out again"
    );
    assert_refused_everywhere(h, "released, after reuse");
    for f in fresh {
        assert_eq!(shape_of(f), [2, 2]);
        release(f);
    }
}

#[test]
fn retain_and_release_count_owners() {
    let _g = lock_exclusive();
    let start = live();
    let h = new_tensor(&[4]);
    assert_eq!(live(), start + 1);
    for _ in 0..3 {
        ok(dlshare_tensor_retain(h));
    }
    for remaining in (1..=3).rev() {
        release(h);
        assert_eq!(shape_of(h), [4], "handle died with {remaining} owners left");
        assert_eq!(live(), start + 1);
    }
    release(h);
    assert_eq!(live(), start);
    fails(dlshare_tensor_release(h), DLSHARE_ERR_INVALID_HANDLE);
    fails(dlshare_tensor_retain(h), DLSHARE_ERR_INVALID_HANDLE);
}

#[test]
fn live_count_returns_to_start_after_mixed_work() {
    let _g = lock_exclusive();
    let start = live();
    let a = new_tensor(&[8]);
    let (s, b, _) = convert(a, &opts(SHARE_OR_COPY));
    ok(s);
    assert_eq!(live(), start + 1, "a shared conversion adds no storage");
    let (s, c, _) = convert(a, &opts(COPY));
    ok(s);
    assert_eq!(live(), start + 2, "a copy adds one storage");
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(c, &mut ev) });
    let (s, d, _) = import_versioned(ev, &opts(SHARE));
    ok(s);
    assert_eq!(live(), start + 3, "an import wraps the export in a storage");
    for h in [a, b, c] {
        release(h);
    }
    assert_eq!(
        live(),
        start + 2,
        "the import keeps the copy alive through the export"
    );
    release(d);
    assert_eq!(live(), start);
    // Failed calls leave nothing behind.
    let mut h = SENTINEL;
    let shape = [-1i64];
    // SAFETY: valid pointers.
    fails(
        unsafe { dlshare_tensor_empty(F32, 1, shape.as_ptr(), CPU, &mut h) },
        DLSHARE_ERR_INVALID_ARGUMENT,
    );
    // SAFETY: valid pointers.
    fails(
        unsafe { dlshare_tensor_empty(F32, 1, [4].as_ptr(), CUDA0, &mut h) },
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
    );
    // SAFETY: valid pointers.
    fails(
        unsafe { dlshare_tensor_empty(dt(99, 8), 1, [4].as_ptr(), CPU, &mut h) },
        DLSHARE_ERR_UNSUPPORTED_DTYPE,
    );
    // SAFETY: valid pointers.
    fails(
        unsafe { dlshare_tensor_empty(F32, 2, std::ptr::null(), CPU, &mut h) },
        DLSHARE_ERR_NULL_ARGUMENT,
    );
    // SAFETY: NULL output.
    fails(
        unsafe { dlshare_tensor_empty(F32, 1, [4].as_ptr(), CPU, std::ptr::null_mut()) },
        DLSHARE_ERR_NULL_ARGUMENT,
    );
    assert_eq!(h, SENTINEL);
    assert_eq!(live(), start);
}

#[test]
fn empty_and_zeros_make_aligned_c_contiguous_tensors() {
    let _g = lock();
    let shape = [3i64, 5, 7];
    for zeroed in [false, true] {
        let mut h = SENTINEL;
        // SAFETY: valid pointers.
        ok(unsafe {
            if zeroed {
                dlshare_tensor_zeros(C128, 3, shape.as_ptr(), CPU, &mut h)
            } else {
                dlshare_tensor_empty(C128, 3, shape.as_ptr(), CPU, &mut h)
            }
        });
        let (dl, flags) = info(h);
        assert_eq!(dl.dtype, C128);
        assert_eq!(dl_shape(&dl), shape);
        assert_eq!(dl_strides(&dl).unwrap(), c_strides(&shape));
        assert_eq!(dl.data as usize % 256, 0);
        assert_eq!(flags & FLAG_READ_ONLY, 0);
        if zeroed {
            assert!(contents(h).iter().all(|&b| b == 0));
        }
        release(h);
    }
    // 0-d with NULL shape.
    let mut h = SENTINEL;
    // SAFETY: ndim 0 accepts a NULL shape.
    ok(unsafe { dlshare_tensor_zeros(I8, 0, std::ptr::null(), CPU, &mut h) });
    assert_eq!(info(h).0.ndim, 0);
    assert_eq!(contents(h), [0]);
    release(h);
}

#[test]
fn handles_are_usable_from_many_threads() {
    let _g = lock_exclusive();
    let start = live();
    let shared = new_tensor(&[16]) as usize;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let shared = shared as *mut dlshare_tensor;
                for i in 0..200 {
                    assert_eq!(shape_of(shared), [16]);
                    let own = new_tensor(&[t + 1, i % 3 + 1]);
                    let (s, c, _) = convert(own, &opts(COPY));
                    ok(s);
                    assert_eq!(shape_of(c), [t + 1, i % 3 + 1]);
                    release(own);
                    release(c);
                    assert_refused_on_this_thread(own);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    release(shared as *mut dlshare_tensor);
    assert_eq!(live(), start);
}

fn assert_refused_on_this_thread(h: *mut dlshare_tensor) {
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    // SAFETY: writable output.
    fails(
        unsafe { dlshare_tensor_info(h, dl.as_mut_ptr(), std::ptr::null_mut()) },
        DLSHARE_ERR_INVALID_HANDLE,
    );
}

#[test]
fn last_error_is_per_thread() {
    let _g = lock();
    fails(
        dlshare_tensor_retain(std::ptr::null_mut()),
        DLSHARE_ERR_INVALID_HANDLE,
    );
    let here = last_error();
    assert!(here.contains("NULL"), "{here}");
    std::thread::spawn(|| {
        assert_eq!(last_error(), "", "a new thread starts with no message");
        let mut h = SENTINEL;
        // SAFETY: valid pointers.
        fails(
            unsafe { dlshare_tensor_empty(F32, -1, std::ptr::null(), CPU, &mut h) },
            DLSHARE_ERR_INVALID_ARGUMENT,
        );
    })
    .join()
    .unwrap();
    assert_eq!(
        last_error(),
        here,
        "another thread's failure replaced this thread's message"
    );
}

#[test]
fn status_and_reason_names() {
    let _g = lock();
    let statuses = [
        DLSHARE_OK,
        DLSHARE_ERR_NULL_ARGUMENT,
        DLSHARE_ERR_INVALID_HANDLE,
        DLSHARE_ERR_INVALID_ARGUMENT,
        DLSHARE_ERR_INVALID_DLPACK,
        DLSHARE_ERR_UNSUPPORTED_VERSION,
        DLSHARE_ERR_UNSUPPORTED_DTYPE,
        DLSHARE_ERR_UNSUPPORTED_DEVICE,
        DLSHARE_ERR_CANNOT_SHARE,
        DLSHARE_ERR_READ_ONLY,
        DLSHARE_ERR_OVERFLOW,
        DLSHARE_ERR_OUT_OF_MEMORY,
        DLSHARE_ERR_DEVICE_UNAVAILABLE,
        DLSHARE_ERR_CUDA,
        DLSHARE_ERR_PANIC,
    ];
    for (code, s) in statuses.iter().enumerate() {
        assert_eq!(*s as usize, code, "codes are never renumbered");
        assert_eq!(status_name(*s), format!("{s:?}"));
    }
    for bad in [-1, 15, 1000] {
        // SAFETY: static string.
        let name = unsafe { CStr::from_ptr(dlshare_status_name(bad)) };
        assert_eq!(name.to_str().unwrap(), "DLSHARE_UNKNOWN_STATUS");
    }
    let reasons = [
        (DLSHARE_REASON_NONE, "none"),
        (DLSHARE_REASON_READ_ONLY, "read_only"),
        (DLSHARE_REASON_NEGATIVE_STRIDE, "negative_stride"),
        (
            DLSHARE_REASON_STRIDE_NOT_ITEM_MULTIPLE,
            "stride_not_item_multiple",
        ),
        (DLSHARE_REASON_BYTE_ORDER, "byte_order"),
        (DLSHARE_REASON_MISALIGNED, "misaligned"),
        (DLSHARE_REASON_DTYPE_CHANGE, "dtype_change"),
        (DLSHARE_REASON_DEVICE_CHANGE, "device_change"),
        (DLSHARE_REASON_COPY_REQUESTED, "copy_requested"),
    ];
    for (code, (r, name)) in reasons.iter().enumerate() {
        assert_eq!(*r as usize, code);
        // SAFETY: static string.
        let got = unsafe { CStr::from_ptr(dlshare_reason_name(*r as i32)) };
        assert_eq!(got.to_str().unwrap(), *name);
    }
    // SAFETY: static string.
    assert_eq!(
        unsafe { CStr::from_ptr(dlshare_reason_name(42)) }
            .to_str()
            .unwrap(),
        "unknown"
    );
    // SAFETY: static string.
    let v = unsafe { CStr::from_ptr(dlshare_version()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        v,
        format!("{DLSHARE_VERSION_MAJOR}.{DLSHARE_VERSION_MINOR}.{DLSHARE_VERSION_PATCH}")
    );
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
}
