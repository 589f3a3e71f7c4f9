//! DLPack import/export round trips through the C API: every dtype, legacy and versioned,
//! shared and copied; NULL strides, byte_offset, zero-size tensors with NULL data, 0-d tensors,
//! read-only tensors and the fields of exported structs.

mod common;

use common::*;

/// Distinct bytes for `n` elements (bools get 0/1).
fn pattern(dtype: DLDataType, n: usize) -> Vec<u8> {
    let len = n * item_size(dtype);
    if dtype == BOOL {
        return (0..len).map(|i| (i % 3 == 1) as u8).collect();
    }
    (0..len).map(|i| (i * 37 + 11) as u8).collect()
}

fn version_of(m: *const DLManagedTensorVersioned) -> DLPackVersion {
    // SAFETY: a live export.
    unsafe { (*m).version }
}

/// Checks an exported DLTensor against what the handle says.
fn check_exported(dl: &DLTensor, h: *const dlshare_tensor) {
    let (own, _) = info(h);
    assert_eq!(dl.data, own.data);
    assert_eq!(dl.byte_offset, own.byte_offset);
    assert_eq!(dl.ndim, own.ndim);
    assert_eq!(dl.dtype, own.dtype);
    assert_eq!(dl.device, own.device);
    assert_eq!(dl_shape(dl), dl_shape(&own));
    if dl.ndim > 0 {
        assert!(!dl.strides.is_null(), "exported strides are NULL");
    }
    assert_eq!(dl_strides(dl).unwrap(), dl_strides(&own).unwrap());
}

/// Shares a producer's tensor, checks everything the handle reports, exports it both ways,
/// re-imports both exports and checks the producer's deleter runs once, after the last user.
fn share_roundtrip(name: &str, dtype: DLDataType, legacy: bool) {
    let shape = [2i64, 3];
    let bytes = pattern(dtype, 6);
    let item = item_size(dtype);
    let spec = Spec::new(dtype, &shape, bytes.clone());
    let (s, h, d, data, deleted) = if legacy {
        let p = produce_legacy(&spec);
        let (s, h, d) = import_legacy(p.managed, &opts(SHARE));
        (s, h, d, p.data, p.deleted)
    } else {
        let p = produce_versioned(&spec);
        let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
        (s, h, d, p.data, p.deleted)
    };
    let deletions = || deleted.load(std::sync::atomic::Ordering::SeqCst);
    ok(s);
    assert!(d.shared, "{name}: not shared");
    assert_eq!(d.reason, DLSHARE_REASON_NONE, "{name}");
    assert!(!detail(&d).is_empty(), "{name}: empty detail");
    assert_eq!(deletions(), 0, "{name}: deleter ran while shared");

    // Everything the handle reports.
    let (dl, flags) = info(h);
    assert_eq!(dl.data, data, "{name}: data pointer changed");
    assert_eq!(dl.byte_offset, 0);
    assert_eq!(dl.ndim, 2);
    assert_eq!(dl.dtype, dtype, "{name}");
    assert_eq!(dl.device, CPU);
    assert_eq!(dl_shape(&dl), shape);
    assert_eq!(dl_strides(&dl).unwrap(), [3, 1]);
    assert_eq!(flags, 0, "{name}: flags of a writable shared tensor");
    let mut ndim = -1;
    let mut shp = std::ptr::null();
    let mut strd = std::ptr::null();
    let mut dty = dt(0, 0);
    let mut dev = DLDevice {
        device_type: 0,
        device_id: -1,
    };
    let mut off = 99u64;
    let mut nbytes = 0u64;
    let (mut ro, mut cc, mut fc) = (true, false, true);
    // SAFETY: writable outputs on a live handle.
    unsafe {
        ok(dlshare_tensor_ndim(h, &mut ndim));
        ok(dlshare_tensor_shape(h, &mut shp));
        ok(dlshare_tensor_strides(h, &mut strd));
        ok(dlshare_tensor_dtype(h, &mut dty));
        ok(dlshare_tensor_device(h, &mut dev));
        ok(dlshare_tensor_byte_offset(h, &mut off));
        ok(dlshare_tensor_nbytes(h, &mut nbytes));
        ok(dlshare_tensor_is_read_only(h, &mut ro));
        ok(dlshare_tensor_is_c_contiguous(h, &mut cc));
        ok(dlshare_tensor_is_f_contiguous(h, &mut fc));
        assert_eq!(std::slice::from_raw_parts(shp, 2), shape);
        assert_eq!(std::slice::from_raw_parts(strd, 2), [3, 1]);
    }
    assert_eq!(ndim, 2);
    assert_eq!(dty, dtype);
    assert_eq!(dev, CPU);
    assert_eq!(off, 0);
    assert_eq!(nbytes, (6 * item) as u64);
    assert!(!ro && cc && !fc, "{name}: ro {ro} c {cc} f {fc}");
    assert_eq!(data_of(h), data.cast::<u8>());
    assert_eq!(contents(h), bytes, "{name}: contents");

    // Versioned export.
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
    assert!(!ev.is_null());
    assert_eq!(version_of(ev), DLPackVersion { major: 1, minor: 3 });
    // SAFETY: a live export.
    let (eflags, edl, edel) = unsafe { ((*ev).flags, (*ev).dl_tensor, (*ev).deleter) };
    assert_eq!(eflags, 0, "{name}: export flags");
    assert!(edel.is_some());
    check_exported(&edl, h);

    // Legacy export.
    let mut el: *mut DLManagedTensor = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) });
    assert!(!el.is_null());
    // SAFETY: a live export.
    let (ldl, ldel) = unsafe { ((*el).dl_tensor, (*el).deleter) };
    assert!(ldel.is_some());
    check_exported(&ldl, h);

    // Re-import both exports: same memory, no copy.
    let (s, h2, d2) = import_versioned(ev, &opts(SHARE));
    ok(s);
    assert!(d2.shared);
    assert_eq!(
        data_of(h2),
        data.cast::<u8>(),
        "{name}: versioned re-import moved"
    );
    assert_eq!(info(h2).0.dtype, dtype);
    let (s, h3, d3) = import_legacy(el, &opts(SHARE));
    ok(s);
    assert!(d3.shared);
    assert_eq!(
        data_of(h3),
        data.cast::<u8>(),
        "{name}: legacy re-import moved"
    );
    assert_eq!(contents(h3), bytes);

    // The producer's deleter runs once, after the last of the three handles.
    release(h);
    assert_eq!(deletions(), 0, "{name}");
    release(h2);
    assert_eq!(deletions(), 0, "{name}");
    release(h3);
    assert_eq!(deletions(), 1, "{name}: producer deleter after all users");
}

#[test]
fn every_dtype_shares_and_round_trips_versioned() {
    let _g = lock();
    for (name, dtype) in ALL_DTYPES {
        share_roundtrip(name, dtype, false);
    }
}

#[test]
fn every_dtype_shares_and_round_trips_legacy() {
    let _g = lock();
    for (name, dtype) in ALL_DTYPES {
        share_roundtrip(name, dtype, true);
    }
}

#[test]
fn every_dtype_copies_and_only_a_sole_owner_gets_is_copied() {
    let _g = lock();
    for (name, dtype) in ALL_DTYPES {
        for legacy in [false, true] {
            let shape = [3i64, 2];
            let bytes = pattern(dtype, 6);
            // F-order source, so that the copy has to reorder.
            let mut spec = Spec::new(dtype, &shape, bytes.clone());
            spec.strides = Some(vec![1, 3]);
            let expected = {
                let item = item_size(dtype) as i64;
                // SAFETY: 6 elements inside `bytes`.
                unsafe { gather(bytes.as_ptr(), &shape, &[item, 3 * item], item as usize) }
            };
            let (s, h, d, deleted) = if legacy {
                let p = produce_legacy(&spec);
                let (s, h, d) = import_legacy(p.managed, &opts(COPY));
                (s, h, d, p.deleted)
            } else {
                let p = produce_versioned(&spec);
                let (s, h, d) = import_versioned(p.managed, &opts(COPY));
                (s, h, d, p.deleted)
            };
            ok(s);
            assert!(!d.shared);
            assert_eq!(d.reason, DLSHARE_REASON_COPY_REQUESTED);
            assert!(!detail(&d).is_empty());
            assert_eq!(
                count(&deleted),
                1,
                "{name}: deleter must run before the copy returns"
            );
            assert_is_fresh_copy(h, dtype, &shape);
            assert_eq!(contents(h), expected, "{name}: copied values");

            let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
            // SAFETY: writable output.
            ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
            // SAFETY: a live export.
            let (flags, edl) = unsafe { ((*ev).flags, (*ev).dl_tensor) };
            // The handle still refers to the copy: the consumer is not its sole owner.
            assert_eq!(flags, 0, "{name}: export of a copy the handle still holds");
            assert_eq!(version_of(ev), DLPackVersion { major: 1, minor: 3 });
            check_exported(&edl, h);
            let copy_data = edl.data;

            // A copy made for the export alone is the consumer's: IS_COPIED.
            let mut own: *mut DLManagedTensorVersioned = std::ptr::null_mut();
            // SAFETY: writable output.
            ok(unsafe { dlshare_tensor_to_dlpack_copy(h, &mut own) });
            // SAFETY: a live export.
            let (own_flags, odl) = unsafe { ((*own).flags, (*own).dl_tensor) };
            assert_eq!(own_flags, FLAG_IS_COPIED, "{name}: export of its own copy");
            assert_ne!(odl.data, copy_data, "{name}: a new copy");
            // SAFETY: the export is live; C-contiguous 3x2.
            let own_values = unsafe {
                gather(
                    odl.data.cast(),
                    &shape,
                    &[2 * item_size(dtype) as i64, item_size(dtype) as i64],
                    item_size(dtype),
                )
            };
            assert_eq!(own_values, expected, "{name}: values of the exported copy");
            call_deleter_versioned(own);
            release(h);
            // The export keeps the copy alive after the handle is gone.
            // SAFETY: the export is live until its deleter runs.
            let kept = unsafe {
                gather(
                    copy_data.cast(),
                    &shape,
                    &[2 * item_size(dtype) as i64, item_size(dtype) as i64],
                    item_size(dtype),
                )
            };
            assert_eq!(kept, expected);
            call_deleter_versioned(ev);
            assert_eq!(count(&deleted), 1);
        }
    }
}

#[test]
fn null_strides_mean_compact_row_major() {
    let _g = lock();
    let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
    let mut spec = Spec::new(F32, &[3, 4], to_bytes(&values));
    spec.strides = None;
    for legacy in [false, true] {
        let (s, h, _, deleted) = if legacy {
            let p = produce_legacy(&spec);
            let (s, h, d) = import_legacy(p.managed, &opts(SHARE));
            (s, h, d, p.deleted)
        } else {
            let p = produce_versioned(&spec);
            let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
            (s, h, d, p.deleted)
        };
        ok(s);
        assert_eq!(strides_of(h), [4, 1]);
        assert_eq!(from_bytes::<f32>(&contents(h)), values);
        let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
        // SAFETY: writable output.
        ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
        // SAFETY: a live export.
        let edl = unsafe { (*ev).dl_tensor };
        assert_eq!(
            dl_strides(&edl),
            Some(vec![4, 1]),
            "exports always fill strides"
        );
        call_deleter_versioned(ev);
        // And a copy of it is the same values.
        let (s, c, _) = convert(h, &opts(COPY));
        ok(s);
        assert_eq!(from_bytes::<f32>(&contents(c)), values);
        release(c);
        release(h);
        assert_eq!(count(&deleted), 1);
    }
}

#[test]
fn fortran_order_is_shared_with_its_strides() {
    let _g = lock();
    let values: Vec<i64> = (0..12).map(|i| i * 1000 - 5).collect();
    let mut spec = Spec::new(I64, &[3, 4], to_bytes(&values));
    spec.strides = Some(vec![1, 3]);
    let p = produce_versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    assert_eq!(strides_of(h), [1, 3]);
    let mut f = false;
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_is_f_contiguous(h, &mut f) });
    assert!(f);
    let expected: Vec<i64> = indices(&[3, 4])
        .iter()
        .map(|i| values[(i[0] + 3 * i[1]) as usize])
        .collect();
    assert_eq!(from_bytes::<i64>(&contents(h)), expected);
    let (s, c, _) = convert(h, &opts(COPY));
    ok(s);
    assert_is_fresh_copy(c, I64, &[3, 4]);
    assert_eq!(from_bytes::<i64>(&contents(c)), expected);
    release(c);
    release(h);
    assert_eq!(p.deletions(), 1);
}

#[test]
fn byte_offset_is_honoured_when_sharing_and_copying() {
    let _g = lock();
    let values: Vec<f32> = (0..20).map(|i| i as f32 + 0.25).collect();
    // data_shift and byte_offset both move the first element; each case starts at element 4.
    for (shift, offset) in [(0usize, 16u64), (8, 8), (16, 0)] {
        for mode in [SHARE, SHARE_OR_COPY, COPY] {
            let mut spec = Spec::new(F32, &[4, 4], to_bytes(&values));
            spec.data_shift = shift;
            spec.byte_offset = offset;
            let p = produce_versioned(&spec);
            let (s, h, d) = import_versioned(p.managed, &opts(mode));
            ok(s);
            assert_eq!(
                from_bytes::<f32>(&contents(h)),
                values[4..20],
                "shift {shift} offset {offset}"
            );
            let (dl, _) = info(h);
            if mode == COPY {
                assert!(!d.shared);
                assert_eq!(p.deletions(), 1);
                assert_is_fresh_copy(h, F32, &[4, 4]);
            } else {
                assert!(d.shared);
                assert_eq!(dl.data, p.data, "data is kept as the producer gave it");
                assert_eq!(dl.byte_offset, offset);
                assert_eq!(data_of(h), p.base.wrapping_add(16), "first element address");
                // The export carries the same data/byte_offset pair.
                let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
                // SAFETY: writable output.
                ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
                // SAFETY: a live export.
                let edl = unsafe { (*ev).dl_tensor };
                assert_eq!(edl.data, p.data);
                assert_eq!(edl.byte_offset, offset);
                call_deleter_versioned(ev);
                // Writes through the tensor land at data + byte_offset.
                // SAFETY: the shared memory is writable and alive.
                unsafe { data_of(h).cast::<f32>().write(-1.0) };
                // SAFETY: as above.
                assert_eq!(unsafe { p.base.add(16).cast::<f32>().read() }, -1.0);
                assert_eq!(p.deletions(), 0);
            }
            release(h);
            assert_eq!(p.deletions(), 1);
        }
    }
}

#[test]
fn byte_offset_that_misaligns_is_refused_in_share_and_copied_otherwise() {
    let _g = lock();
    let values: Vec<f32> = (0..5).map(|i| i as f32 * 3.5).collect();
    let mut bytes = vec![0u8; 2];
    bytes.extend(to_bytes(&values));
    let mut spec = Spec::new(F32, &[5], bytes);
    spec.byte_offset = 2;
    let p = produce_versioned(&spec);
    let before = p.snapshot();
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    fails(s, DLSHARE_ERR_CANNOT_SHARE);
    assert_eq!(h, SENTINEL);
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_MISALIGNED);
    assert!(!detail(&d).is_empty());
    assert_eq!(p.snapshot(), before);
    assert_eq!(p.deletions(), 0);
    // The caller still owns it and may retry.
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE_OR_COPY));
    ok(s);
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_MISALIGNED);
    assert_eq!(p.deletions(), 1);
    assert_is_fresh_copy(h, F32, &[5]);
    assert_eq!(from_bytes::<f32>(&contents(h)), values);
    release(h);
    assert_eq!(p.deletions(), 1);
}

#[test]
fn zero_size_with_null_data_is_accepted() {
    let _g = lock();
    for shape in [vec![0i64], vec![0, 3], vec![4, 0, 2]] {
        for mode in [SHARE, SHARE_OR_COPY, COPY] {
            for legacy in [false, true] {
                let mut spec = Spec::new(F64, &shape, Vec::new());
                spec.null_data = true;
                let (s, h, d, deleted) = if legacy {
                    let p = produce_legacy(&spec);
                    let (s, h, d) = import_legacy(p.managed, &opts(mode));
                    (s, h, d, p.deleted)
                } else {
                    let p = produce_versioned(&spec);
                    let (s, h, d) = import_versioned(p.managed, &opts(mode));
                    (s, h, d, p.deleted)
                };
                ok(s);
                assert_eq!(shape_of(h), shape);
                let mut nbytes = 1u64;
                // SAFETY: writable output.
                ok(unsafe { dlshare_tensor_nbytes(h, &mut nbytes) });
                assert_eq!(nbytes, 0);
                if mode == COPY {
                    assert!(!d.shared);
                    assert_eq!(count(&deleted), 1);
                    assert_is_fresh_copy(h, F64, &shape);
                } else {
                    assert!(d.shared, "{shape:?}: zero-size shares");
                    assert_eq!(d.reason, DLSHARE_REASON_NONE);
                    assert!(info(h).0.data.is_null());
                    assert_eq!(count(&deleted), 0);
                }
                // Export and re-import work for empty tensors too.
                let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
                // SAFETY: writable output.
                ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
                // SAFETY: a live export.
                let edl = unsafe { (*ev).dl_tensor };
                assert_eq!(dl_shape(&edl), shape);
                assert!(!edl.strides.is_null());
                let (s, h2, _) = import_versioned(ev, &opts(SHARE));
                ok(s);
                assert_eq!(shape_of(h2), shape);
                release(h);
                release(h2);
                assert_eq!(count(&deleted), 1);
            }
        }
    }
}

#[test]
fn null_data_with_elements_is_refused_and_ownership_stays() {
    let _g = lock();
    for mode in [SHARE, SHARE_OR_COPY, COPY] {
        let mut spec = Spec::new(F32, &[2, 2], to_bytes(&[1.0f32; 4]));
        spec.null_data = true;
        let p = produce_versioned(&spec);
        let before = p.snapshot();
        let (s, h, d) = import_versioned(p.managed, &opts(mode));
        fails(s, DLSHARE_ERR_NULL_ARGUMENT);
        assert_eq!(h, SENTINEL);
        assert_untouched(&d);
        assert_eq!(p.snapshot(), before);
        assert_eq!(p.deletions(), 0);
        call_deleter_versioned(p.managed);
        assert_eq!(p.deletions(), 1);

        let l = produce_legacy(&spec);
        let before = l.snapshot();
        let (s, h, _) = import_legacy(l.managed, &opts(mode));
        fails(s, DLSHARE_ERR_NULL_ARGUMENT);
        assert_eq!(h, SENTINEL);
        assert_eq!(l.snapshot(), before);
        assert_eq!(l.deletions(), 0);
        call_deleter_legacy(l.managed);
        assert_eq!(l.deletions(), 1);
    }
}

#[test]
fn zero_d_tensors_round_trip() {
    let _g = lock();
    for mode in [SHARE, SHARE_OR_COPY, COPY] {
        for legacy in [false, true] {
            let spec = Spec::new(F64, &[], to_bytes(&[3.25f64]));
            assert!(spec.strides.as_ref().unwrap().is_empty());
            let (s, h, d, deleted, data) = if legacy {
                let p = produce_legacy(&spec);
                let (s, h, d) = import_legacy(p.managed, &opts(mode));
                (s, h, d, p.deleted, p.data)
            } else {
                let p = produce_versioned(&spec);
                let (s, h, d) = import_versioned(p.managed, &opts(mode));
                (s, h, d, p.deleted, p.data)
            };
            ok(s);
            let (dl, _) = info(h);
            assert_eq!(dl.ndim, 0);
            assert_eq!(from_bytes::<f64>(&contents(h)), [3.25]);
            let mut nbytes = 0u64;
            // SAFETY: writable output.
            ok(unsafe { dlshare_tensor_nbytes(h, &mut nbytes) });
            assert_eq!(nbytes, 8);
            if mode == COPY {
                assert!(!d.shared);
                assert_is_fresh_copy(h, F64, &[]);
                assert_eq!(count(&deleted), 1);
            } else {
                assert!(d.shared);
                assert_eq!(dl.data, data);
                assert_eq!(count(&deleted), 0);
            }
            let mut el: *mut DLManagedTensor = std::ptr::null_mut();
            // SAFETY: writable output.
            ok(unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) });
            // SAFETY: a live export.
            assert_eq!(unsafe { (*el).dl_tensor.ndim }, 0);
            let (s, h2, d2) = import_legacy(el, &opts(SHARE));
            ok(s);
            assert!(d2.shared);
            assert_eq!(data_of(h2), data_of(h));
            assert_eq!(from_bytes::<f64>(&contents(h2)), [3.25]);
            release(h);
            release(h2);
            assert_eq!(count(&deleted), 1);
        }
    }
}

#[test]
fn read_only_versioned_tensors() {
    let _g = lock();
    let values: Vec<u16> = (0..6).map(|i| 1000 + i).collect();
    let mut spec = Spec::new(U16, &[2, 3], to_bytes(&values));
    spec.flags = FLAG_READ_ONLY;
    let p = produce_versioned(&spec);
    let before = p.snapshot();

    // SHARE refuses, saying why; nothing is taken.
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    fails(s, DLSHARE_ERR_CANNOT_SHARE);
    assert_eq!(h, SENTINEL);
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_READ_ONLY);
    assert!(!detail(&d).is_empty());
    assert_eq!(p.snapshot(), before);
    assert_eq!(p.deletions(), 0);

    // Allowed: shared as a read-only tensor.
    let mut o = opts(SHARE);
    o.allow_read_only = true;
    let (s, h, d) = import_versioned(p.managed, &o);
    ok(s);
    assert!(d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_NONE);
    let (dl, flags) = info(h);
    assert_eq!(dl.data, p.data);
    assert_eq!(flags, FLAG_READ_ONLY);
    let mut ro = false;
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_is_read_only(h, &mut ro) });
    assert!(ro);

    // Versioned export says READ_ONLY; legacy export is refused (it cannot say it).
    let mut ev: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
    // SAFETY: a live export.
    assert_eq!(unsafe { (*ev).flags }, FLAG_READ_ONLY);
    let mut el: *mut DLManagedTensor = std::ptr::null_mut();
    // SAFETY: writable output.
    fails(
        unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) },
        DLSHARE_ERR_READ_ONLY,
    );
    assert!(el.is_null(), "output written on failure");

    // Re-importing the read-only export: refused in SHARE, then shared read-only when allowed.
    let ebefore = struct_bytes(ev);
    let (s, h2, d) = import_versioned(ev, &opts(SHARE));
    fails(s, DLSHARE_ERR_CANNOT_SHARE);
    assert_eq!(d.reason, DLSHARE_REASON_READ_ONLY);
    assert_eq!(h2, SENTINEL);
    assert_eq!(struct_bytes(ev), ebefore);
    let (s, h2, _) = import_versioned(ev, &o);
    ok(s);
    assert_eq!(data_of(h2), p.data.cast::<u8>());
    assert_eq!(info(h2).1, FLAG_READ_ONLY);

    // SHARE_OR_COPY of the read-only tensor copies (writable), COPY too.
    for (mode, reason) in [
        (SHARE_OR_COPY, DLSHARE_REASON_READ_ONLY),
        (COPY, DLSHARE_REASON_COPY_REQUESTED),
    ] {
        let (s, c, d) = convert(h2, &opts(mode));
        ok(s);
        assert!(!d.shared);
        assert_eq!(d.reason, reason);
        assert_is_fresh_copy(c, U16, &[2, 3]);
        assert_eq!(from_bytes::<u16>(&contents(c)), values);
        release(c);
    }
    release(h);
    assert_eq!(p.deletions(), 0);
    release(h2);
    assert_eq!(p.deletions(), 1);
}

#[test]
fn read_only_import_in_copy_modes_gives_writable_copies() {
    let _g = lock();
    let values: Vec<i32> = (0..4).map(|i| -i * 7).collect();
    for (mode, reason) in [
        (SHARE_OR_COPY, DLSHARE_REASON_READ_ONLY),
        (COPY, DLSHARE_REASON_COPY_REQUESTED),
    ] {
        let mut spec = Spec::new(I32, &[4], to_bytes(&values));
        spec.flags = FLAG_READ_ONLY;
        let p = produce_versioned(&spec);
        let (s, h, d) = import_versioned(p.managed, &opts(mode));
        ok(s);
        assert!(!d.shared);
        assert_eq!(d.reason, reason);
        assert_eq!(p.deletions(), 1);
        assert_is_fresh_copy(h, I32, &[4]);
        assert_eq!(from_bytes::<i32>(&contents(h)), values);
        // A writable copy may be exported legacy.
        let mut el: *mut DLManagedTensor = std::ptr::null_mut();
        // SAFETY: writable output.
        ok(unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) });
        call_deleter_legacy(el);
        release(h);
    }
}

#[test]
fn newer_minor_version_is_accepted() {
    let _g = lock();
    let mut spec = Spec::new(U8, &[3], vec![1, 2, 3]);
    spec.version = DLPackVersion {
        major: 1,
        minor: 99,
    };
    let p = produce_versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    assert_eq!(contents(h), [1, 2, 3]);
    release(h);
    assert_eq!(p.deletions(), 1);
}
