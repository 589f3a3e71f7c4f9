//! `dlshare_tensor_convert` (`tensor.to(dtype)` style) and `dlshare_explain_tensor` on existing
//! handles, plus view-specific checks: release callbacks across several handles, malformed
//! views.

mod common;

use std::sync::atomic::AtomicUsize;

use common::*;

/// A view over `buf` with a counted release callback, imported in `mode`.
fn share_view(
    buf: &Buf,
    dtype: DLDataType,
    shape: &[i64],
    flags: u32,
    released: &AtomicUsize,
    o: &dlshare_options,
) -> *mut dlshare_tensor {
    let v = view(buf.ptr(), dtype, shape, None, flags, released);
    let (s, h, _) = from_view(&v, o);
    ok(s);
    h
}

/// Converts and checks that `dlshare_explain_tensor` said the same beforehand.
fn convert_explained(
    h: *const dlshare_tensor,
    o: &dlshare_options,
) -> (dlshare_status, *mut dlshare_tensor, dlshare_decision) {
    let mut e = blank_decision();
    // SAFETY: valid pointers.
    let es = unsafe { dlshare_explain_tensor(h, o, &mut e) };
    let (s, out, d) = convert(h, o);
    assert_eq!(es, s, "explain_tensor status differs");
    if s == DLSHARE_OK || s == DLSHARE_ERR_CANNOT_SHARE {
        assert_eq!(summary(&e), summary(&d), "explain_tensor decision differs");
    }
    (s, out, d)
}

#[test]
fn same_dtype_share_or_copy_shares() {
    let _g = lock();
    let values: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
    let buf = Buf::from_bytes(&to_bytes(&values));
    let released = AtomicUsize::new(0);
    let h = share_view(&buf, F32, &[2, 3], 0, &released, &opts(SHARE));
    for o in [
        opts(SHARE_OR_COPY),
        opts_dtype(SHARE_OR_COPY, F32),
        opts(SHARE),
        opts_dtype(SHARE, F32),
    ] {
        let (s, h2, d) = convert_explained(h, &o);
        ok(s);
        assert!(d.shared);
        assert_eq!(d.reason, DLSHARE_REASON_NONE);
        assert!(!detail(&d).is_empty());
        assert!(shares_memory(h, h2));
        assert_eq!(data_of(h2), buf.ptr());
        assert_eq!(info(h2).1, 0);
        // Writes through one handle show in the other.
        // SAFETY: shared writable memory.
        unsafe { data_of(h2).cast::<f32>().add(4).write(99.0) };
        assert_eq!(from_bytes::<f32>(&contents(h))[4], 99.0);
        release(h2);
    }
    release(h);
    assert_eq!(count(&released), 1);
}

#[test]
fn copy_mode_copies_independently() {
    let _g = lock();
    let values: Vec<i16> = (0..12).map(|i| i * 11 - 40).collect();
    let buf = Buf::from_bytes(&to_bytes(&values));
    let released = AtomicUsize::new(0);
    let h = share_view(&buf, I16, &[3, 4], 0, &released, &opts(SHARE));
    let (s, c, d) = convert_explained(h, &opts(COPY));
    ok(s);
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_COPY_REQUESTED);
    assert!(!shares_memory(h, c));
    assert_is_fresh_copy(c, I16, &[3, 4]);
    assert_eq!(from_bytes::<i16>(&contents(c)), values);
    // SAFETY: the copy is writable.
    unsafe { data_of(c).cast::<i16>().write(1234) };
    assert_eq!(
        from_bytes::<i16>(&buf.bytes()),
        values,
        "the copy aliases its source"
    );
    // A handle over a copy shares it in SHARE_OR_COPY.
    let (s, c2, d) = convert_explained(c, &opts(SHARE_OR_COPY));
    ok(s);
    assert!(d.shared);
    assert!(shares_memory(c, c2));
    release(c2);
    release(c);
    // The view's release did not run for the conversions: the source handle still holds it.
    assert_eq!(count(&released), 0);
    release(h);
    assert_eq!(count(&released), 1);
}

#[test]
fn dtype_change_copies_with_cast() {
    let _g = lock();
    let values = [-2.75f32, -0.5, 0.0, 1.5, 2.75, 1000.25];
    let buf = Buf::from_bytes(&to_bytes(&values));
    let released = AtomicUsize::new(0);
    let h = share_view(&buf, F32, &[6], 0, &released, &opts(SHARE));
    let cases: Vec<(DLDataType, Vec<u8>)> = vec![
        (F64, to_bytes(&values.map(f64::from))),
        (I32, to_bytes(&[-2i32, 0, 0, 1, 2, 1000])),
        (I64, to_bytes(&[-2i64, 0, 0, 1, 2, 1000])),
        (U8, to_bytes(&[254u8, 0, 0, 1, 2, 232])),
        (BOOL, vec![1, 1, 0, 1, 1, 1]),
        (
            F16,
            to_bytes(&values.map(|x| half::f16::from_f32(x).to_bits())),
        ),
        (
            BF16,
            to_bytes(&values.map(|x| half::bf16::from_f32(x).to_bits())),
        ),
        (C64, to_bytes(&values.map(|x| [x, 0.0]))),
        (C128, to_bytes(&values.map(|x| [f64::from(x), 0.0]))),
    ];
    for (to, expected) in cases {
        for mode in [SHARE_OR_COPY, COPY] {
            let (s, c, d) = convert_explained(h, &opts_dtype(mode, to));
            ok(s);
            assert!(!d.shared);
            let reason = if mode == COPY {
                DLSHARE_REASON_COPY_REQUESTED
            } else {
                DLSHARE_REASON_DTYPE_CHANGE
            };
            assert_eq!(d.reason, reason);
            assert!(!shares_memory(h, c));
            assert_is_fresh_copy(c, to, &[6]);
            assert_eq!(contents(c), expected, "float32 -> {to:?}");
            release(c);
        }
        // SHARE cannot change the dtype.
        let (s, c, d) = convert_explained(h, &opts_dtype(SHARE, to));
        fails(s, DLSHARE_ERR_INVALID_ARGUMENT);
        assert_eq!(c, SENTINEL);
        assert_untouched(&d);
    }
    release(h);
    assert_eq!(count(&released), 1);
}

#[test]
fn complex_to_real_needs_permission() {
    let _g = lock();
    let c64 = [[1.5f32, -2.0], [0.25, 8.0], [-3.0, 0.5]];
    let c128 = [[1e10f64, -2.5], [0.125, 7.0]];
    let b64 = Buf::from_bytes(&to_bytes(&c64));
    let b128 = Buf::from_bytes(&to_bytes(&c128));
    let released = AtomicUsize::new(0);
    let h64 = share_view(&b64, C64, &[3], 0, &released, &opts(SHARE));
    let h128 = share_view(&b128, C128, &[2], 0, &released, &opts(SHARE));
    let cases = [
        (h64, F32, to_bytes(&c64.map(|c| c[0]))),
        (h64, F64, to_bytes(&c64.map(|c| f64::from(c[0])))),
        (h64, I32, to_bytes(&[1i32, 0, -3])),
        (h128, F64, to_bytes(&c128.map(|c| c[0]))),
        (h128, F32, to_bytes(&c128.map(|c| c[0] as f32))),
    ];
    for (h, to, expected) in cases {
        for mode in [SHARE_OR_COPY, COPY] {
            let (s, c, d) = convert_explained(h, &opts_dtype(mode, to));
            let msg = fails(s, DLSHARE_ERR_INVALID_ARGUMENT);
            assert!(
                msg.contains("imaginary"),
                "message explains the loss: {msg}"
            );
            assert_eq!(c, SENTINEL);
            assert_untouched(&d);

            let mut o = opts_dtype(mode, to);
            o.allow_complex_to_real = true;
            let (s, c, d) = convert_explained(h, &o);
            ok(s);
            assert!(!d.shared);
            assert_is_fresh_copy(c, to, &shape_of(h));
            assert_eq!(contents(c), expected, "{to:?}: the real parts");
            release(c);
        }
    }
    // complex -> complex of another width is not a loss.
    let (s, c, _) = convert_explained(h64, &opts_dtype(SHARE_OR_COPY, C128));
    ok(s);
    assert_eq!(
        from_bytes::<[f64; 2]>(&contents(c)),
        c64.map(|[re, im]| [f64::from(re), f64::from(im)])
    );
    release(c);
    release(h64);
    release(h128);
    assert_eq!(count(&released), 2);
}

#[test]
fn read_only_handles_convert_per_the_table() {
    let _g = lock();
    let values: Vec<f64> = (0..4).map(|i| i as f64 * 2.5).collect();
    let buf = Buf::from_bytes(&to_bytes(&values));
    let released = AtomicUsize::new(0);
    let mut allow = opts(SHARE);
    allow.allow_read_only = true;
    let h = share_view(&buf, F64, &[4], DLSHARE_VIEW_READ_ONLY, &released, &allow);
    assert_eq!(info(h).1, FLAG_READ_ONLY);

    let (s, c, d) = convert_explained(h, &opts(SHARE));
    fails(s, DLSHARE_ERR_CANNOT_SHARE);
    assert_eq!(c, SENTINEL);
    assert_eq!(d.reason, DLSHARE_REASON_READ_ONLY);

    let (s, c, d) = convert_explained(h, &opts(SHARE_OR_COPY));
    ok(s);
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_READ_ONLY);
    assert_is_fresh_copy(c, F64, &[4]);
    assert_eq!(from_bytes::<f64>(&contents(c)), values);
    release(c);

    for mode in [SHARE, SHARE_OR_COPY] {
        let mut o = opts(mode);
        o.allow_read_only = true;
        let (s, c, d) = convert_explained(h, &o);
        ok(s);
        assert!(d.shared);
        assert!(shares_memory(h, c));
        assert_eq!(
            info(c).1,
            FLAG_READ_ONLY,
            "sharing keeps the tensor read-only"
        );
        release(c);
    }
    release(h);
    assert_eq!(count(&released), 1);
}

#[test]
fn broadcast_handle_materialises_on_copy() {
    let _g = lock();
    let row = [1u32, 2, 3];
    let buf = Buf::from_bytes(&to_bytes(&row));
    let released = AtomicUsize::new(0);
    let shape = [4i64, 3];
    let strides = [0i64, 4];
    let v = view(buf.ptr(), U32, &shape, Some(&strides), 0, &released);
    let (s, h, d) = from_view(&v, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    assert_eq!(strides_of(h), [0, 1]);
    let (s, c, d) = convert_explained(h, &opts(COPY));
    ok(s);
    assert!(!d.shared);
    assert_is_fresh_copy(c, U32, &shape);
    assert_eq!(from_bytes::<u32>(&contents(c)), row.repeat(4));
    release(c);
    release(h);
    assert_eq!(count(&released), 1);
}

#[test]
fn view_release_runs_once_after_the_last_of_many_handles() {
    let _g = lock();
    let buf = Buf::from_bytes(&to_bytes(&[1.0f32, 2.0, 3.0]));
    let released = AtomicUsize::new(0);
    let h = share_view(&buf, F32, &[3], 0, &released, &opts(SHARE));
    ok(dlshare_tensor_retain(h));
    let (s, h2, _) = convert(h, &opts(SHARE_OR_COPY));
    ok(s);
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h2, &mut ev) });
    let (s, h3, _) = import_versioned(ev, &opts(SHARE));
    ok(s);
    for handle in [h, h, h2] {
        release(handle);
        assert_eq!(count(&released), 0);
    }
    assert_eq!(from_bytes::<f32>(&contents(h3)), [1.0, 2.0, 3.0]);
    release(h3);
    assert_eq!(count(&released), 1);
}

#[test]
fn a_copying_view_import_releases_before_returning() {
    let _g = lock();
    let buf = Buf::from_bytes(&to_bytes(&[5i64, 6, 7]));
    for (mode, flags) in [(COPY, 0), (SHARE_OR_COPY, DLSHARE_VIEW_READ_ONLY)] {
        let released = AtomicUsize::new(0);
        let v = view(buf.ptr(), I64, &[3], None, flags, &released);
        let (s, h, d) = from_view(&v, &opts(mode));
        ok(s);
        assert!(!d.shared);
        assert_eq!(count(&released), 1);
        assert_eq!(from_bytes::<i64>(&contents(h)), [5, 6, 7]);
        release(h);
        assert_eq!(count(&released), 1);
    }
}

#[test]
fn malformed_views_are_refused_without_release() {
    let _g = lock();
    let buf = Buf::from_bytes(&[0u8; 64]);
    let released = AtomicUsize::new(0);
    let shape = [2i64, 2];
    let ok_view = view(buf.ptr(), F32, &shape, None, 0, &released);
    let long_shape = [1i64; 65];
    let neg_shape = [2i64, -1];
    let too_far = [i64::MAX, 4];
    let below_zero = [-i64::MAX, 4];
    let mut decision_null = blank_decision();
    let cases: Vec<(&str, dlshare_view, dlshare_status)> = vec![
        (
            "unknown flag bit",
            dlshare_view {
                flags: 4,
                ..ok_view
            },
            DLSHARE_ERR_INVALID_ARGUMENT,
        ),
        (
            "negative ndim",
            dlshare_view {
                ndim: -1,
                ..ok_view
            },
            DLSHARE_ERR_INVALID_ARGUMENT,
        ),
        (
            "ndim 65",
            dlshare_view {
                ndim: 65,
                shape: long_shape.as_ptr(),
                ..ok_view
            },
            DLSHARE_ERR_INVALID_ARGUMENT,
        ),
        (
            "NULL shape",
            dlshare_view {
                shape: std::ptr::null(),
                ..ok_view
            },
            DLSHARE_ERR_NULL_ARGUMENT,
        ),
        (
            "negative extent",
            dlshare_view {
                shape: neg_shape.as_ptr(),
                ..ok_view
            },
            DLSHARE_ERR_INVALID_ARGUMENT,
        ),
        (
            "NULL data with elements",
            dlshare_view {
                data: std::ptr::null_mut(),
                ..ok_view
            },
            DLSHARE_ERR_NULL_ARGUMENT,
        ),
        (
            "extent overflows 64 bits",
            dlshare_view {
                byte_strides: too_far.as_ptr(),
                ..ok_view
            },
            DLSHARE_ERR_OVERFLOW,
        ),
        (
            "extent wraps below address 0",
            dlshare_view {
                byte_strides: below_zero.as_ptr(),
                ..ok_view
            },
            DLSHARE_ERR_OVERFLOW,
        ),
        (
            "unknown device",
            dlshare_view {
                device: DLDevice {
                    device_type: 5,
                    device_id: 0,
                },
                ..ok_view
            },
            DLSHARE_ERR_UNSUPPORTED_DEVICE,
        ),
    ];
    for (name, v, status) in cases {
        for mode in [SHARE, SHARE_OR_COPY, COPY] {
            let (s, h, d) = from_view(&v, &opts(mode));
            assert_eq!(s, status, "{name}: {}", last_error());
            assert!(!last_error().is_empty());
            assert_eq!(h, SENTINEL, "{name}");
            assert_untouched(&d);
            let mut e = blank_decision();
            // SAFETY: valid pointers.
            assert_eq!(
                unsafe { dlshare_explain_view(&v, &opts(mode), &mut e) },
                status,
                "{name}"
            );
            assert_eq!(count(&released), 0, "{name}: released on failure");
        }
    }
    // NULL arguments.
    let mut h = SENTINEL;
    // SAFETY: NULL where tested, valid otherwise.
    unsafe {
        fails(
            dlshare_tensor_from_view(
                std::ptr::null(),
                std::ptr::null(),
                &mut h,
                std::ptr::null_mut(),
            ),
            DLSHARE_ERR_NULL_ARGUMENT,
        );
        fails(
            dlshare_tensor_from_view(
                &ok_view,
                std::ptr::null(),
                std::ptr::null_mut(),
                &mut decision_null,
            ),
            DLSHARE_ERR_NULL_ARGUMENT,
        );
        fails(
            dlshare_explain_view(&ok_view, std::ptr::null(), std::ptr::null_mut()),
            DLSHARE_ERR_NULL_ARGUMENT,
        );
    }
    assert_eq!(h, SENTINEL);
    assert_eq!(count(&released), 0);
    // NULL options mean SHARE_OR_COPY: a plain view is shared.
    let (s, h, d) = {
        let mut h = SENTINEL;
        let mut d = blank_decision();
        // SAFETY: valid pointers.
        let s = unsafe { dlshare_tensor_from_view(&ok_view, std::ptr::null(), &mut h, &mut d) };
        (s, h, d)
    };
    ok(s);
    assert!(d.shared);
    release(h);
    assert_eq!(count(&released), 1);
}
