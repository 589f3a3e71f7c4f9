//! The Arrow C Data Interface through the C API (issue #14), with producers written here
//! (tests/common/arrow.rs) whose release callbacks are counted: values against independently
//! computed ones, every release exactly once (on success, on error, and for a shared import when
//! the last tensor goes), chunked and sliced input, dictionaries, temporal columns, and the
//! export back to Arrow. The Python tests (tests/python/test_arrow.py) run the same paths
//! against pyarrow, polars and DuckDB; the malformed inputs are rows of tests/malformed.rs.

mod common;

use std::ffi::{CStr, c_char};
use std::ptr::null_mut;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use common::arrow::*;
use common::*;
use dlshare::ffi::arrow::*;
use dlshare::ffi::columns::dlshare_nan_policy::*;
use dlshare::ffi::columns::dlshare_normalize::*;
use dlshare::ffi::columns::dlshare_tensor_view;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn opts(nan: dlshare::ffi::columns::dlshare_nan_policy) -> dlshare_arrow_options {
    dlshare_arrow_options_init(nan as i32, DLSHARE_NORMALIZE_NONE as i32)
}

fn f64_opts(nan: dlshare::ffi::columns::dlshare_nan_policy, fill: f64) -> dlshare_arrow_options {
    let mut o = opts(nan);
    o.columns.dtype = F64;
    o.columns.fill_value = fill;
    o
}

/// Imports `schema` + `array`; returns status, handle, decision, names.
fn import(
    s: &mut ArrowSchema,
    a: &mut ArrowArray,
    o: &dlshare_arrow_options,
) -> (
    dlshare_status,
    *mut dlshare_tensor,
    dlshare_decision,
    String,
) {
    let mut h = SENTINEL;
    let mut d = blank_decision();
    let mut names: *mut c_char = null_mut();
    // SAFETY: valid structs and outputs.
    let st = unsafe { dlshare_tensor_from_arrow(s, a, o, &mut h, &mut d, &mut names) };
    (st, h, d, take_names(names))
}

fn take_names(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a string from dlshare, freed once here.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: as above.
    unsafe { dlshare_string_free(p) };
    s
}

fn f64s(h: *const dlshare_tensor) -> Vec<f64> {
    contents(h)
        .chunks_exact(8)
        .map(|b| f64::from_ne_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn table_with_nulls_nan_and_bools_releases_once_and_matches() {
    let _g = lock_exclusive();
    let start = live();
    let (sr, ar) = (counter(), counter());
    let ints: Vec<i32> = (0..20).collect();
    let valid: Vec<bool> = (0..20).map(|i| i % 3 != 0).collect();
    let floats: Vec<f64> = (0..20)
        .map(|i| if i == 5 { f64::NAN } else { i as f64 * 0.5 })
        .collect();
    let bools: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
    let mut bool_col = primitive(&[0u8], None);
    bool_col.length = 20;
    bool_col.buffers[1] = Some(bitmap(&bools));
    let spec = table_schema(vec![field("i", "i"), field("f", "g"), field("b", "b")]);
    let mut s = schema(&spec, &sr);
    let mut a = array(
        &batch(
            20,
            vec![
                primitive(&ints, Some(&valid)),
                primitive(&floats, None),
                bool_col,
            ],
        ),
        &ar,
    );
    let (st, h, d, names) = import(&mut s, &mut a, &f64_opts(DLSHARE_NAN_FILL, -1.0));
    ok(st);
    assert!(
        s.release.is_none() && a.release.is_none(),
        "structs not moved"
    );
    assert_eq!(
        (count(&sr), count(&ar)),
        (1, 1),
        "a table import releases at once"
    );
    assert_eq!(names, "i\u{1f}f\u{1f}b\u{1e}");
    assert!(!d.shared && d.reason == DLSHARE_REASON_COPY_REQUESTED);
    assert_eq!(shape_of(h), [20, 3]);
    let got = f64s(h);
    for r in 0..20 {
        let want_i = if valid[r] { ints[r] as f64 } else { -1.0 };
        let want_f = if floats[r].is_nan() { -1.0 } else { floats[r] };
        assert_eq!(
            got[r * 3..r * 3 + 3],
            [want_i, want_f, f64::from(u8::from(bools[r]))]
        );
    }
    release(h);
    assert_eq!(live(), start);
}

#[test]
fn validity_bitmaps_at_every_bit_offset_and_sliced_batches() {
    let _g = lock_exclusive();
    let values: Vec<i64> = (0..64).map(|i| i * 10).collect();
    let valid: Vec<bool> = (0..64).map(|i| i % 5 != 2).collect();
    for offset in 0..17i64 {
        for parent in [0i64, 3] {
            let (sr, ar) = (counter(), counter());
            let mut col = primitive(&values, Some(&valid));
            col.offset = offset;
            col.null_count = -1; // unknown: counted from the bitmap
            let len = 30;
            let mut b = batch(len, vec![col]);
            b.offset = parent;
            let mut s = schema(&table_schema(vec![field("x", "l")]), &sr);
            let mut a = array(&b, &ar);
            let (st, h, _, _) = import(&mut s, &mut a, &f64_opts(DLSHARE_NAN_FILL, 0.5));
            ok(st);
            let got = f64s(h);
            assert_eq!(got.len(), len as usize);
            for (r, &g) in got.iter().enumerate() {
                let k = r + (offset + parent) as usize;
                let want = if valid[k] { values[k] as f64 } else { 0.5 };
                assert_eq!(g, want, "offset {offset} parent {parent} row {r}");
            }
            release(h);
            assert_eq!((count(&sr), count(&ar)), (1, 1));
        }
    }
}

#[test]
fn stream_of_uneven_batches_crossing_ffill() {
    let _g = lock_exclusive();
    let start = live();
    let (st_rel, arrays_rel) = (counter(), counter());
    let all: Vec<f32> = (0..50).map(|i| i as f32).collect();
    let valid: Vec<bool> = (0..50).map(|i| !(7..12).contains(&i) && i != 0).collect();
    let mut batches = Vec::new();
    let mut at = 0;
    for len in [7usize, 1, 30, 0, 12] {
        let mut col = primitive(&all, Some(&valid));
        col.offset = at as i64; // each batch is a slice of the same column
        col.null_count = -1;
        batches.push(batch(len as i64, vec![col]));
        at += len;
    }
    let spec = table_schema(vec![field("v", "f")]);
    let mut stream = stream(&spec, batches, 0, &st_rel, &arrays_rel);
    let o = f64_opts(DLSHARE_NAN_FFILL, 0.0);
    let mut h = SENTINEL;
    // SAFETY: valid stream and outputs.
    ok(unsafe {
        dlshare_tensor_from_arrow_stream(&mut stream, &o, &mut h, null_mut(), null_mut())
    });
    assert!(stream.release.is_none());
    assert_eq!((count(&st_rel), count(&arrays_rel)), (1, 5));
    // reference: forward fill over the whole column, a leading gap stays NaN
    let mut last = f64::NAN;
    let want: Vec<f64> = (0..50)
        .map(|i| {
            if valid[i] {
                last = all[i] as f64;
            }
            last
        })
        .collect();
    let got = f64s(h);
    assert_eq!(got.len(), 50);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w || g.is_nan() && w.is_nan(), "row {i}");
    }
    release(h);
    assert_eq!(live(), start);
}

#[test]
fn failing_stream_is_released_with_its_arrays() {
    let _g = lock_exclusive();
    let start = live();
    let (st_rel, arrays_rel) = (counter(), counter());
    let spec = table_schema(vec![field("v", "g")]);
    let b = batch(2, vec![primitive(&[1.0f64, 2.0], None)]);
    let mut stream = stream(&spec, vec![b.clone(), b], 5, &st_rel, &arrays_rel);
    let mut h = SENTINEL;
    // SAFETY: valid stream and outputs.
    let s = unsafe {
        dlshare_tensor_from_arrow_stream(
            &mut stream,
            std::ptr::null(),
            &mut h,
            null_mut(),
            null_mut(),
        )
    };
    let msg = fails(s, DLSHARE_ERR_INVALID_ARGUMENT);
    assert!(
        msg.contains("get_next") && msg.contains("ran out of disk"),
        "{msg}"
    );
    assert_eq!(h, SENTINEL);
    assert_eq!((count(&st_rel), count(&arrays_rel)), (1, 2));
    assert_eq!(live(), start);
}

#[test]
fn shared_array_is_released_when_the_last_tensor_goes() {
    let _g = lock_exclusive();
    let start = live();
    let (sr, ar) = (counter(), counter());
    let values: Vec<i64> = (0..100).collect();
    let mut spec = primitive(&values, None);
    spec.offset = 10;
    spec.length = 90;
    let mut s = schema(&field("x", "l"), &sr);
    let mut a = array(&spec, &ar);
    let data = unsafe { *a.buffers.add(1) } as usize;
    let mut o = opts(DLSHARE_NAN_RAISE);
    o.keep_dtype = true;
    let (st, h, d, names) = import(&mut s, &mut a, &o);
    ok(st);
    assert!(
        d.shared && d.reason == DLSHARE_REASON_NONE,
        "{}",
        detail(&d)
    );
    assert_eq!(names, "x\u{1e}");
    assert_eq!(data_of(h) as usize, data + 80);
    assert_eq!(
        (count(&sr), count(&ar)),
        (1, 0),
        "the array lives while the tensor does"
    );
    let (_, flags) = info(h);
    assert!(flags & FLAG_READ_ONLY != 0);
    let mut other = SENTINEL;
    // SAFETY: a live handle and a writable output.
    ok(unsafe { dlshare_tensor_view(h, 1, [10i64].as_ptr(), std::ptr::null(), 5, &mut other) });
    release(h);
    assert_eq!(count(&ar), 0);
    let got: Vec<i64> = contents(other)
        .chunks_exact(8)
        .map(|b| i64::from_ne_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, (15..25).collect::<Vec<i64>>());
    release(other);
    assert_eq!(count(&ar), 1);
    assert_eq!(live(), start);
}

#[test]
fn arrays_that_cannot_be_shared_are_copied_with_the_reason() {
    let _g = lock_exclusive();
    let start = live();
    let cases: Vec<(ArraySpec, &str, dlshare_reason)> = vec![
        (
            primitive(&[1i32, 2, 3], Some(&[true, false, true])),
            "1 nulls",
            DLSHARE_REASON_ARROW_LAYOUT,
        ),
        (
            primitive(&[1.0f64, f64::NAN], None),
            "NaN",
            DLSHARE_REASON_ARROW_LAYOUT,
        ),
        (
            primitive(&[1i32, 2, 3], None),
            "the target dtype is float64",
            DLSHARE_REASON_DTYPE_CHANGE,
        ),
    ];
    for (spec, says, reason) in cases {
        let (sr, ar) = (counter(), counter());
        let format = if spec.buffers[1].as_ref().unwrap().len() == 16 {
            "g"
        } else {
            "i"
        };
        let mut s = schema(&field("x", format), &sr);
        let mut a = array(&spec, &ar);
        let (st, h, d, _) = import(&mut s, &mut a, &f64_opts(DLSHARE_NAN_FILL, 9.0));
        ok(st);
        assert!(!d.shared && d.reason == reason, "{}", detail(&d));
        assert!(detail(&d).contains(says), "{}", detail(&d));
        assert_eq!((count(&sr), count(&ar)), (1, 1), "a copy releases at once");
        assert_eq!(shape_of(h), [spec.length]);
        release(h);
    }
    assert_eq!(live(), start);
}

#[test]
fn dictionary_onehot_in_dictionary_order_and_timestamps() {
    let _g = lock_exclusive();
    let (sr, ar) = (counter(), counter());
    let mut dict_field = field("c", "c");
    dict_field.dictionary = Some(Box::new(field("", "u")));
    let mut dict_col = primitive(&[2i8, 0, 1, 2], Some(&[true, true, false, true]));
    dict_col.dictionary = Some(Box::new(utf8(&["zz", "aa", "mm"])));
    let ts: Vec<i64> = vec![-1, 0, 86_399_999, 86_400_000 * 3];
    let spec = table_schema(vec![dict_field, field("t", "tsm:Europe/Paris")]);
    let mut s = schema(&spec, &sr);
    let mut a = array(&batch(4, vec![dict_col, primitive(&ts, None)]), &ar);
    let mut o = f64_opts(DLSHARE_NAN_FILL, 0.0);
    o.categorical = dlshare_arrow_categorical::DLSHARE_ARROW_CATEGORICAL_ONEHOT as i32;
    o.datetime = dlshare_arrow_datetime::DLSHARE_ARROW_DATETIME_DAYS as i32;
    let (st, h, _, names) = import(&mut s, &mut a, &o);
    ok(st);
    assert_eq!(names, "c_zz\u{1f}c_aa\u{1f}c_mm\u{1f}t\u{1e}");
    let want = [
        [0.0, 0.0, 1.0, -1.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 3.0],
    ];
    assert_eq!(f64s(h), want.concat());
    release(h);
    assert_eq!((count(&sr), count(&ar)), (1, 1));
}

#[test]
fn export_then_import_shares_and_releases_once() {
    let _g = lock_exclusive();
    let start = live();
    let mut t = SENTINEL;
    // SAFETY: valid arguments.
    ok(unsafe { dlshare_tensor_zeros(F32, 2, [3i64, 2].as_ptr(), CPU, &mut t) });
    let (mut s, mut a) = (null_mut(), null_mut());
    // SAFETY: valid arguments.
    ok(unsafe { dlshare_tensor_to_arrow(t, &mut s, &mut a) });
    // SAFETY: structs just made by dlshare.
    let (sr, ar) = unsafe { (&mut *s, &mut *a) };
    // SAFETY: the schema's strings are NUL-terminated.
    assert_eq!(
        unsafe { CStr::from_ptr(sr.format) }.to_str().unwrap(),
        "+w:2"
    );
    assert_eq!((ar.length, ar.n_children, ar.n_buffers), (3, 1, 1));
    // SAFETY: one child.
    let child = unsafe { &**ar.children };
    assert_eq!(child.length, 6);
    assert_eq!(
        unsafe { *child.buffers.add(1) } as usize,
        data_of(t) as usize
    );
    release(t);
    assert_eq!(live(), start + 1, "the export keeps the memory");
    // SAFETY: ours, freed once.
    unsafe {
        dlshare_arrow_schema_free(s);
        dlshare_arrow_array_free(a);
    }
    assert_eq!(live(), start);
    // 1-D: back through the import, shared
    // SAFETY: valid arguments.
    ok(unsafe { dlshare_tensor_zeros(I64, 1, [5i64].as_ptr(), CPU, &mut t) });
    // SAFETY: valid arguments.
    ok(unsafe { dlshare_tensor_to_arrow(t, &mut s, &mut a) });
    let mut o = opts(DLSHARE_NAN_RAISE);
    o.keep_dtype = true;
    // SAFETY: fresh structs.
    let (st, h, d, _) = unsafe { import(&mut *s, &mut *a, &o) };
    ok(st);
    assert!(d.shared);
    assert!(shares_memory(h, t));
    // SAFETY: moved-from structs: only freed.
    unsafe {
        dlshare_arrow_schema_free(s);
        dlshare_arrow_array_free(a);
    }
    release(t);
    release(h);
    assert_eq!(live(), start);
}
