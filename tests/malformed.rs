//! The malformed-input catalogue (issue #5; docs/hardening.md lists it as a table generated from
//! `CATALOGUE` below). Each case drives the C API from Rust with one bad input and asserts:
//! the status, a message that names the problem, that outputs stay untouched, that no deleter or
//! release callback ran on failure (and each ran exactly once where the call succeeded or the
//! caller later gave the tensor back), and that `dlshare_live_tensor_count()` is back where it
//! started. Rows whose status is DLSHARE_OK are documented acceptances (a policy, not an error).
//!
//! Regenerate the table in docs/hardening.md with
//! `DLSHARE_UPDATE_DOCS=1 cargo test --test malformed catalogue_table_is_current`.

mod common;

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::ptr::{null, null_mut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dlshare::ffi::columns::dlshare_column_kind::*;
use dlshare::ffi::columns::dlshare_nan_policy::*;
use dlshare::ffi::columns::dlshare_normalize::*;
use dlshare::ffi::columns::*;
use dlshare::ffi::dlshare_python_module;
use dlshare::ffi::memory::{dlshare_get_cache_limit, dlshare_set_cache_limit};
use dlshare::ffi::names::*;
use dlshare::ffi::python::dlshare_pycapsule_destructor;
use dlshare::ffi::shm::*;

// ---------------------------------------------------------------------------------------------
// The harness.

/// One catalogue row: which function, what is wrong with its input, what it must answer.
struct Row {
    test: &'static str,
    function: &'static str,
    input: &'static str,
    status: dlshare_status,
    /// A word or phrase the message must contain (case-insensitive); for DLSHARE_OK rows, the
    /// documented policy.
    says: &'static str,
    /// Other tests that cover the same case.
    also: &'static str,
}

/// A running case: the row, the live count at its start, the counters it handed out and the
/// handles it must release at the end.
struct Case {
    row: &'static Row,
    start: usize,
    checked: RefCell<bool>,
    /// Release counters of views, with the count each must reach by the end of the case (the
    /// case's handles are released by `end`).
    releases: RefCell<Vec<(Arc<AtomicUsize>, usize)>>,
    /// Deleter counters of producers: always exactly 1 at the end (called by dlshare after a
    /// successful import, by the case itself after a refusal).
    deleters: RefCell<Vec<Arc<AtomicUsize>>>,
    handles: RefCell<Vec<*mut dlshare_tensor>>,
}

fn run(row: &'static Row, body: fn(&Case)) {
    let _g = lock_exclusive();
    let c = Case {
        row,
        start: live(),
        checked: RefCell::new(false),
        releases: RefCell::default(),
        deleters: RefCell::default(),
        handles: RefCell::default(),
    };
    body(&c);
    c.end();
}

impl Case {
    /// Asserts the row's status and, for a failure, that the message names the problem.
    #[track_caller]
    fn check(&self, s: dlshare_status) {
        let row = self.row;
        if row.status == DLSHARE_OK {
            ok(s);
        } else {
            let msg = fails(s, row.status);
            assert!(
                msg.to_lowercase().contains(&row.says.to_lowercase()),
                "{}: the message does not say '{}': {msg}",
                row.test,
                row.says
            );
        }
        *self.checked.borrow_mut() = true;
    }

    /// A counted release callback that must have run `want` times by the end of the case.
    fn counter_expecting(&self, want: usize) -> Arc<AtomicUsize> {
        let c = Arc::new(AtomicUsize::new(0));
        self.releases.borrow_mut().push((c.clone(), want));
        c
    }

    /// A counted release callback for the view under test: never called if the case fails,
    /// once if it succeeds.
    fn counter(&self) -> Arc<AtomicUsize> {
        self.counter_expecting(usize::from(self.row.status == DLSHARE_OK))
    }

    /// A view that a succeeding setup step shares (released once by the end).
    fn setup_view(
        &self,
        data: *mut u8,
        dtype: DLDataType,
        shape: &[i64],
        flags: u32,
    ) -> dlshare_view {
        view(data, dtype, shape, None, flags, &self.counter_expecting(1))
    }

    /// The view under test, with a counted release callback.
    fn view(
        &self,
        data: *mut u8,
        dtype: DLDataType,
        shape: &[i64],
        byte_strides: Option<&[i64]>,
        flags: u32,
    ) -> dlshare_view {
        view(data, dtype, shape, byte_strides, flags, &self.counter())
    }

    fn versioned(&self, spec: &Spec) -> Produced<DLManagedTensorVersioned> {
        let p = produce_versioned(spec);
        self.deleters.borrow_mut().push(p.deleted.clone());
        p
    }

    fn legacy(&self, spec: &Spec) -> Produced<DLManagedTensor> {
        let p = produce_legacy(spec);
        self.deleters.borrow_mut().push(p.deleted.clone());
        p
    }

    /// Releases `h` at the end of the case.
    fn keep(&self, h: *mut dlshare_tensor) -> *mut dlshare_tensor {
        assert_ne!(h, SENTINEL);
        self.handles.borrow_mut().push(h);
        h
    }

    /// A fresh zeroed tensor released at the end.
    fn tensor(&self, dtype: DLDataType, shape: &[i64]) -> *mut dlshare_tensor {
        let mut h = SENTINEL;
        // SAFETY: valid pointers.
        ok(unsafe { dlshare_tensor_zeros(dtype, shape.len() as i32, shape.as_ptr(), CPU, &mut h) });
        self.keep(h)
    }

    fn end(&self) {
        let row = self.row;
        assert!(
            *self.checked.borrow(),
            "{}: no status was checked",
            row.test
        );
        for h in self.handles.borrow_mut().drain(..) {
            release(h);
        }
        for (i, (c, want)) in self.releases.borrow().iter().enumerate() {
            assert_eq!(
                count(c),
                *want,
                "{}: view {i} released {} times",
                row.test,
                count(c)
            );
        }
        for (i, c) in self.deleters.borrow().iter().enumerate() {
            assert_eq!(
                count(c),
                1,
                "{}: producer {i} deleted {} times",
                row.test,
                count(c)
            );
        }
        assert_eq!(live(), self.start, "{}: live tensor count moved", row.test);
    }

    /// `dlshare_tensor_from_view` and `dlshare_explain_view` both refuse `v` as the row says:
    /// no handle written, no release callback called.
    #[track_caller]
    fn view_refused(&self, v: &dlshare_view, o: &dlshare_options) {
        let (s, h, d) = from_view(v, o);
        self.check(s);
        assert_eq!(h, SENTINEL, "{}: output written on failure", self.row.test);
        self.decision_matches(&d, s);
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        let se = unsafe { dlshare_explain_view(v, o, &mut e) };
        assert_eq!(se, s, "{}: explain_view disagrees", self.row.test);
        if s == DLSHARE_ERR_CANNOT_SHARE {
            assert_eq!(summary(&e), summary(&d));
        }
        self.no_release_yet();
    }

    fn no_release_yet(&self) {
        for (c, want) in self.releases.borrow().iter() {
            if *want == 0 {
                assert_eq!(count(c), 0, "{}: release called on failure", self.row.test);
            }
        }
    }

    /// A SHARE refusal fills the decision with the obstacle; any other failure leaves it.
    fn decision_matches(&self, d: &dlshare_decision, s: dlshare_status) {
        if s == DLSHARE_ERR_CANNOT_SHARE {
            assert!(!d.shared);
            assert_ne!(d.reason, DLSHARE_REASON_NONE);
            assert!(!detail(d).is_empty());
        } else {
            assert_untouched(d);
        }
    }

    /// Import and explain both refuse the versioned tensor; the struct is unchanged and the
    /// deleter not called; then the caller (this case) gives it back.
    #[track_caller]
    fn versioned_refused(&self, p: Produced<DLManagedTensorVersioned>, o: &dlshare_options) {
        let before = p.snapshot();
        let (s, h, d) = import_versioned(p.managed, o);
        self.check(s);
        assert_eq!(h, SENTINEL, "{}: output written on failure", self.row.test);
        self.decision_matches(&d, s);
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        let se = unsafe { dlshare_explain_dlpack(p.managed, o, &mut e) };
        assert_eq!(se, s, "{}: explain_dlpack disagrees", self.row.test);
        assert_eq!(p.snapshot(), before, "{}: struct modified", self.row.test);
        assert_eq!(
            p.deletions(),
            0,
            "{}: deleter called on failure",
            self.row.test
        );
        call_deleter_versioned(p.managed);
    }

    #[track_caller]
    fn legacy_refused(&self, p: Produced<DLManagedTensor>, o: &dlshare_options) {
        let before = p.snapshot();
        let (s, h, d) = import_legacy(p.managed, o);
        self.check(s);
        assert_eq!(h, SENTINEL, "{}: output written on failure", self.row.test);
        self.decision_matches(&d, s);
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        let se = unsafe { dlshare_explain_dlpack_legacy(p.managed, o, &mut e) };
        assert_eq!(se, s, "{}: explain_dlpack_legacy disagrees", self.row.test);
        assert_eq!(p.snapshot(), before, "{}: struct modified", self.row.test);
        assert_eq!(
            p.deletions(),
            0,
            "{}: deleter called on failure",
            self.row.test
        );
        call_deleter_legacy(p.managed);
    }

    /// `dlshare_tensor_convert` and `dlshare_explain_tensor` both refuse.
    #[track_caller]
    fn convert_refused(&self, h: *const dlshare_tensor, o: &dlshare_options) {
        let (s, out, d) = convert(h, o);
        self.check(s);
        assert_eq!(
            out, SENTINEL,
            "{}: output written on failure",
            self.row.test
        );
        self.decision_matches(&d, s);
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        let se = unsafe { dlshare_explain_tensor(h, o, &mut e) };
        assert_eq!(se, s, "{}: explain_tensor disagrees", self.row.test);
    }

    /// `dlshare_tensor_empty` and `dlshare_tensor_zeros` both refuse.
    #[track_caller]
    fn create_refused(&self, dtype: DLDataType, ndim: i32, shape: *const i64, device: DLDevice) {
        for zeros in [false, true] {
            let mut h = SENTINEL;
            // SAFETY: `shape` holds `ndim` values or is what the case tests.
            let s = unsafe {
                if zeros {
                    dlshare_tensor_zeros(dtype, ndim, shape, device, &mut h)
                } else {
                    dlshare_tensor_empty(dtype, ndim, shape, device, &mut h)
                }
            };
            self.check(s);
            assert_eq!(h, SENTINEL, "{}: output written on failure", self.row.test);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arrow C Data Interface (issue #14): every struct handed in is consumed and released exactly
// once, on success and on error; the message names the column and the field.

use dlshare::ffi::arrow::*;

fn arrow_x(format: &str) -> (arrow::SchemaSpec, arrow::ArraySpec) {
    (
        arrow::table_schema(vec![arrow::field("x", format)]),
        arrow::batch(3, vec![arrow::primitive(&[1i64, 2, 3], None)]),
    )
}

/// Imports the table made from the specs after `corrupt`; asserts the row's status, untouched
/// outputs, and that both structs were moved and released exactly once.
fn arrow_refused(
    c: &Case,
    specs: (arrow::SchemaSpec, arrow::ArraySpec),
    corrupt: impl FnOnce(&mut arrow::ArrowSchema, &mut arrow::ArrowArray),
    o: &dlshare_arrow_options,
) {
    let (sr, ar) = (c.counter_expecting(1), c.counter_expecting(1));
    let mut s = arrow::schema(&specs.0, &sr);
    let mut a = arrow::array(&specs.1, &ar);
    corrupt(&mut s, &mut a);
    let mut h = SENTINEL;
    let mut d = blank_decision();
    let mut names: *mut c_char = null_mut();
    // SAFETY: valid (if malformed) structs and outputs.
    c.check(unsafe { dlshare_tensor_from_arrow(&mut s, &mut a, o, &mut h, &mut d, &mut names) });
    assert_eq!(h, SENTINEL, "{}: output written on failure", c.row.test);
    assert_untouched(&d);
    assert!(names.is_null());
    assert!(
        s.release.is_none() && a.release.is_none(),
        "{}: not consumed",
        c.row.test
    );
    assert_eq!(
        (count(&sr), count(&ar)),
        (1, 1),
        "{}: not released once",
        c.row.test
    );
}

fn arrow_default() -> dlshare_arrow_options {
    dlshare_arrow_options_init(0, 0)
}

fn r01_arrow_null_schema(c: &Case) {
    let ar = c.counter_expecting(1);
    let mut a = arrow::array(&arrow_x("l").1, &ar);
    let mut h = SENTINEL;
    // SAFETY: NULL schema is what the case tests.
    c.check(unsafe {
        dlshare_tensor_from_arrow(null_mut(), &mut a, null(), &mut h, null_mut(), null_mut())
    });
    assert_eq!(h, SENTINEL);
    assert!(a.release.is_none());
}

fn r02_arrow_released_array(c: &Case) {
    let (sr, ar) = (c.counter_expecting(1), c.counter_expecting(1));
    let mut s = arrow::schema(&arrow_x("l").0, &sr);
    let mut a = arrow::array(&arrow_x("l").1, &ar);
    let release = a.release.take().unwrap();
    let mut h = SENTINEL;
    // SAFETY: valid structs; the array is marked released.
    c.check(unsafe {
        dlshare_tensor_from_arrow(&mut s, &mut a, null(), &mut h, null_mut(), null_mut())
    });
    assert_eq!(h, SENTINEL);
    assert_eq!(count(&ar), 0, "a released array's callback must not run");
    a.release = Some(release);
    // SAFETY: the test's own array, released once here.
    unsafe { release(&mut a) };
}

fn r03_arrow_null_tensor_out(c: &Case) {
    let (sr, ar) = (c.counter_expecting(1), c.counter_expecting(1));
    let (ss, aa) = arrow_x("l");
    let mut s = arrow::schema(&ss, &sr);
    let mut a = arrow::array(&aa, &ar);
    // SAFETY: NULL tensor_out is what the case tests.
    c.check(unsafe {
        dlshare_tensor_from_arrow(&mut s, &mut a, null(), null_mut(), null_mut(), null_mut())
    });
    assert!(s.release.is_none() && a.release.is_none());
}

fn r04_arrow_wrong_buffer_count(c: &Case) {
    // SAFETY: corrupts the made array's child; its private data frees the real buffers.
    arrow_refused(
        c,
        arrow_x("l"),
        |_, a| unsafe { arrow::child(a, 0).n_buffers = 1 },
        &arrow_default(),
    );
}

fn r05_arrow_negative_length(c: &Case) {
    // SAFETY: as above.
    arrow_refused(
        c,
        arrow_x("l"),
        |_, a| unsafe { arrow::child(a, 0).length = -1 },
        &arrow_default(),
    );
}

fn r06_arrow_negative_offset(c: &Case) {
    // SAFETY: as above.
    arrow_refused(
        c,
        arrow_x("l"),
        |_, a| unsafe { arrow::child(a, 0).offset = -3 },
        &arrow_default(),
    );
}

fn r07_arrow_offset_overflow(c: &Case) {
    // SAFETY: as above.
    arrow_refused(
        c,
        arrow_x("l"),
        |_, a| unsafe { arrow::child(a, 0).offset = i64::MAX - 1 },
        &arrow_default(),
    );
}

fn r08_arrow_null_values_buffer(c: &Case) {
    let (s, mut a) = arrow_x("l");
    a.children[0].buffers[1] = None;
    arrow_refused(c, (s, a), |_, _| {}, &arrow_default());
}

fn r09_arrow_null_validity_with_nulls(c: &Case) {
    let (s, mut a) = arrow_x("l");
    a.children[0].null_count = 1;
    arrow_refused(c, (s, a), |_, _| {}, &arrow_default());
}

fn r10_arrow_null_count_above_length(c: &Case) {
    let (s, mut a) = arrow_x("l");
    a.children[0].null_count = 9;
    arrow_refused(c, (s, a), |_, _| {}, &arrow_default());
}

fn r11_arrow_unsupported_format(c: &Case) {
    let name = std::ffi::CString::new("x").unwrap();
    let select = [name.as_ptr()];
    let mut o = arrow_default();
    o.select = select.as_ptr();
    o.nselect = 1;
    arrow_refused(c, arrow_x("z"), |_, _| {}, &o);
}

fn r12_arrow_null_format(c: &Case) {
    // SAFETY: the made schema has one child; its strings are owned by the private data.
    arrow_refused(
        c,
        arrow_x("l"),
        |s, _| unsafe { (**s.children).format = null() },
        &arrow_default(),
    );
}

fn r13_arrow_children_mismatch(c: &Case) {
    arrow_refused(c, arrow_x("l"), |_, a| a.n_children = 0, &arrow_default());
}

fn r14_arrow_child_too_short(c: &Case) {
    // SAFETY: as in r04.
    arrow_refused(
        c,
        arrow_x("l"),
        |_, a| unsafe { arrow::child(a, 0).length = 2 },
        &arrow_default(),
    );
}

fn r15_arrow_dictionary_missing(c: &Case) {
    let (mut s, a) = arrow_x("l");
    s.children[0].dictionary = Some(Box::new(arrow::field("", "u")));
    let mut o = arrow_default();
    o.categorical = 1;
    arrow_refused(c, (s, a), |_, _| {}, &o);
}

fn r16_arrow_stream_null(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: NULL stream is what the case tests.
    c.check(unsafe {
        dlshare_tensor_from_arrow_stream(null_mut(), null(), &mut h, null_mut(), null_mut())
    });
    assert_eq!(h, SENTINEL);
}

fn r17_arrow_stream_get_next_fails(c: &Case) {
    let (sr, ar) = (c.counter_expecting(1), c.counter_expecting(1));
    let (ss, aa) = arrow_x("l");
    let mut st = arrow::stream(&ss, vec![aa], 5, &sr, &ar);
    let mut h = SENTINEL;
    // SAFETY: a valid stream whose get_next fails.
    c.check(unsafe {
        dlshare_tensor_from_arrow_stream(&mut st, null(), &mut h, null_mut(), null_mut())
    });
    assert_eq!(h, SENTINEL);
    assert!(st.release.is_none());
}

fn r18_arrow_bad_categorical_option(c: &Case) {
    let mut o = arrow_default();
    o.categorical = 7;
    arrow_refused(c, arrow_x("l"), |_, _| {}, &o);
}

fn r19_arrow_export_bool(c: &Case) {
    let h = c.tensor(BOOL, &[4]);
    let (mut s, mut a) = (null_mut(), null_mut());
    // SAFETY: valid outputs.
    c.check(unsafe { dlshare_tensor_to_arrow(h, &mut s, &mut a) });
    assert!(s.is_null() && a.is_null());
}

fn r20_arrow_export_null_outputs(c: &Case) {
    let h = c.tensor(F32, &[4]);
    let mut a = null_mut();
    // SAFETY: NULL schema_out is what the case tests.
    c.check(unsafe { dlshare_tensor_to_arrow(h, null_mut(), &mut a) });
    assert!(a.is_null());
}

fn r21_arrow_null_buffers_array(c: &Case) {
    // SAFETY: as in r04 (the private data keeps the real buffer list).
    arrow_refused(
        c,
        arrow_x("l"),
        |_, a| unsafe { arrow::child(a, 0).buffers = null_mut() },
        &arrow_default(),
    );
}

fn r22_arrow_unknown_column(c: &Case) {
    let name = std::ffi::CString::new("nope").unwrap();
    let select = [name.as_ptr()];
    let mut o = arrow_default();
    o.select = select.as_ptr();
    o.nselect = 1;
    arrow_refused(c, arrow_x("l"), |_, _| {}, &o);
}

fn r23_arrow_batch_with_null_rows(c: &Case) {
    let (s, mut a) = arrow_x("l");
    a.null_count = 1;
    a.buffers[0] = Some(vec![0b101]);
    arrow_refused(c, (s, a), |_, _| {}, &arrow_default());
}

fn r24_arrow_text_column(c: &Case) {
    let name = std::ffi::CString::new("x").unwrap();
    let select = [name.as_ptr()];
    let mut o = arrow_default();
    o.select = select.as_ptr();
    o.nselect = 1;
    let s = arrow::table_schema(vec![arrow::field("x", "u")]);
    let a = arrow::batch(2, vec![arrow::utf8(&["a", "b"])]);
    arrow_refused(c, (s, a), |_, _| {}, &o);
}

/// Declares the catalogue: one `Row` per case in `CATALOGUE`, and one `#[test]` per case in
/// `mod catalogue` running the body function of the same name.
macro_rules! catalogue {
    ($($(#[$attr:meta])* $name:ident: $function:literal, $input:literal => $status:ident, $says:literal, $also:expr;)*) => {
        const CATALOGUE: &[Row] = &[$(Row {
            test: stringify!($name),
            function: $function,
            input: $input,
            status: $status,
            says: $says,
            also: $also,
        },)*];

        mod catalogue {
            use super::*;
            $(
                #[test]
                $(#[$attr])*
                fn $name() {
                    let row = CATALOGUE.iter().find(|r| r.test == stringify!($name)).unwrap();
                    run(row, super::$name);
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Shared inputs.

const C: &str = "tests/c/test_errors.c null_arguments";
const OWN: &str = "tests/ownership.rs failed_imports_leave_ownership_with_the_caller";
const HND: &str = "tests/handles.rs assert_refused_everywhere";

/// A 2 x 3 float32 matrix 1..6 and its shape.
fn matrix() -> (Buf, [i64; 2]) {
    let values: Vec<f32> = (1..=6).map(|i| i as f32).collect();
    (Buf::from_bytes(&to_bytes(&values)), [2, 3])
}

fn f32_spec(shape: &[i64]) -> Spec {
    let values: Vec<f32> = (0..numel(shape)).map(|i| i as f32).collect();
    Spec::new(F32, shape, to_bytes(&values))
}

fn soc() -> dlshare_options {
    opts(SHARE_OR_COPY)
}

fn dev(device_type: i32, device_id: i32) -> DLDevice {
    DLDevice {
        device_type,
        device_id,
    }
}

/// A broadcast view: `n` elements of `dtype` all at one address (zero strides), shared.
fn broadcast(c: &Case, buf: &Buf, dtype: DLDataType, n: i64) -> *mut dlshare_tensor {
    let shape = [n];
    let strides = [0i64];
    let v = dlshare_view {
        release: None,
        ..view(
            buf.ptr(),
            dtype,
            &shape,
            Some(&strides),
            0,
            &AtomicUsize::new(0),
        )
    };
    let (s, h, d) = from_view(&v, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    c.keep(h)
}

// ---------------------------------------------------------------------------------------------
// NULL pointer arguments.

fn n01_from_view_null_view(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: NULL view is the case.
    c.check(unsafe { dlshare_tensor_from_view(null(), null(), &mut h, null_mut()) });
    assert_eq!(h, SENTINEL);
}

fn n02_from_view_null_out(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    for mode in [SHARE, COPY] {
        // SAFETY: NULL output is the case.
        c.check(unsafe { dlshare_tensor_from_view(&v, &opts(mode), null_mut(), null_mut()) });
    }
    c.no_release_yet();
}

fn n03_from_view_null_shape(c: &Case) {
    let (buf, shape) = matrix();
    let v = dlshare_view {
        shape: null(),
        ..c.view(buf.ptr(), F32, &shape, None, 0)
    };
    c.view_refused(&v, &soc());
}

fn n04_from_view_null_strides_array(c: &Case) {
    // NULL byte_strides means C-contiguous: accepted.
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    let (s, h, d) = from_view(&v, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    assert_eq!(strides_of(c.keep(h)), [3, 1]);
}

fn n05_from_view_null_data(c: &Case) {
    let shape = [2i64, 3];
    let v = c.view(null_mut(), F32, &shape, None, 0);
    for mode in [SHARE, SHARE_OR_COPY, COPY] {
        c.view_refused(&v, &opts(mode));
    }
}

fn n06_explain_view_null_view(c: &Case) {
    let mut d = blank_decision();
    // SAFETY: NULL view is the case.
    c.check(unsafe { dlshare_explain_view(null(), null(), &mut d) });
    assert_untouched(&d);
}

fn n07_explain_view_null_decision(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    // SAFETY: NULL decision_out is the case.
    c.check(unsafe { dlshare_explain_view(&v, null(), null_mut()) });
}

fn n08_convert_null_out(c: &Case) {
    let t = c.tensor(F32, &[4]);
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_tensor_convert(t, null(), null_mut(), null_mut()) });
}

fn n09_explain_tensor_null_decision(c: &Case) {
    let t = c.tensor(F32, &[4]);
    // SAFETY: NULL decision_out is the case.
    c.check(unsafe { dlshare_explain_tensor(t, null(), null_mut()) });
}

fn n10_from_dlpack_null_managed(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: NULL managed is the case.
    c.check(unsafe { dlshare_tensor_from_dlpack(null_mut(), null(), &mut h, null_mut()) });
    assert_eq!(h, SENTINEL);
}

fn n11_from_dlpack_null_out(c: &Case) {
    let p = c.versioned(&f32_spec(&[2, 3]));
    let before = p.snapshot();
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_tensor_from_dlpack(p.managed, null(), null_mut(), null_mut()) });
    assert_eq!(p.deletions(), 0);
    assert_eq!(p.snapshot(), before);
    call_deleter_versioned(p.managed);
}

fn n12_from_dlpack_legacy_null_managed(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: NULL managed is the case.
    c.check(unsafe { dlshare_tensor_from_dlpack_legacy(null_mut(), null(), &mut h, null_mut()) });
    assert_eq!(h, SENTINEL);
}

fn n13_from_dlpack_legacy_null_out(c: &Case) {
    let p = c.legacy(&f32_spec(&[2, 3]));
    // SAFETY: NULL output is the case.
    c.check(unsafe {
        dlshare_tensor_from_dlpack_legacy(p.managed, null(), null_mut(), null_mut())
    });
    assert_eq!(p.deletions(), 0);
    call_deleter_legacy(p.managed);
}

fn n14_explain_dlpack_null_managed(c: &Case) {
    let mut d = blank_decision();
    // SAFETY: NULL managed is the case.
    c.check(unsafe { dlshare_explain_dlpack(null(), null(), &mut d) });
    assert_untouched(&d);
}

fn n15_explain_dlpack_null_decision(c: &Case) {
    let p = c.versioned(&f32_spec(&[2]));
    // SAFETY: NULL decision_out is the case.
    c.check(unsafe { dlshare_explain_dlpack(p.managed, null(), null_mut()) });
    call_deleter_versioned(p.managed);
}

fn n16_explain_dlpack_legacy_null_managed(c: &Case) {
    let mut d = blank_decision();
    // SAFETY: NULL managed is the case.
    c.check(unsafe { dlshare_explain_dlpack_legacy(null(), null(), &mut d) });
    assert_untouched(&d);
}

fn n17_explain_dlpack_legacy_null_decision(c: &Case) {
    let p = c.legacy(&f32_spec(&[2]));
    // SAFETY: NULL decision_out is the case.
    c.check(unsafe { dlshare_explain_dlpack_legacy(p.managed, null(), null_mut()) });
    call_deleter_legacy(p.managed);
}

fn n18_to_dlpack_null_out(c: &Case) {
    let t = c.tensor(F32, &[4]);
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_tensor_to_dlpack(t, null_mut()) });
}

fn n19_to_dlpack_legacy_null_out(c: &Case) {
    let t = c.tensor(F32, &[4]);
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_tensor_to_dlpack_legacy(t, null_mut()) });
}

fn n20_typestr_null_typestr(c: &Case) {
    let (mut d, mut sw) = (dt(0, 0), false);
    // SAFETY: NULL typestr is the case.
    c.check(unsafe { dlshare_dtype_from_typestr(null(), &mut d, &mut sw) });
    assert_eq!((d, sw), (dt(0, 0), false));
}

fn n21_typestr_null_dtype_out(c: &Case) {
    let mut sw = false;
    // SAFETY: NULL dtype_out is the case.
    c.check(unsafe { dlshare_dtype_from_typestr(c"<f4".as_ptr(), null_mut(), &mut sw) });
    assert!(!sw);
}

fn n22_typestr_null_swapped_out(c: &Case) {
    let mut d = dt(0, 0);
    // SAFETY: NULL swapped_out is the case.
    c.check(unsafe { dlshare_dtype_from_typestr(c">f4".as_ptr(), &mut d, null_mut()) });
    assert_eq!(d, dt(0, 0));
}

fn n23_dtype_from_name_null_name(c: &Case) {
    let mut d = dt(0, 0);
    // SAFETY: NULL name is the case.
    c.check(unsafe { dlshare_dtype_from_name(null(), &mut d) });
    assert_eq!(d, dt(0, 0));
}

fn n24_dtype_from_name_null_out(c: &Case) {
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_dtype_from_name(c"float32".as_ptr(), null_mut()) });
}

fn n25_dtype_name_null_buf(c: &Case) {
    // SAFETY: NULL buffer is the case.
    c.check(unsafe { dlshare_dtype_name(F32, null_mut(), 32) });
}

fn n26_dtype_typestr_null_buf(c: &Case) {
    // SAFETY: NULL buffer is the case.
    c.check(unsafe { dlshare_dtype_typestr(F32, null_mut(), 8) });
}

fn n27_device_from_name_null_name(c: &Case) {
    let mut d = CUDA0;
    // SAFETY: NULL name is the case.
    c.check(unsafe { dlshare_device_from_name(null(), &mut d) });
    assert_eq!(d, CUDA0);
}

fn n28_device_from_name_null_out(c: &Case) {
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_device_from_name(c"cpu".as_ptr(), null_mut()) });
}

fn n29_device_name_null_buf(c: &Case) {
    // SAFETY: NULL buffer is the case.
    c.check(unsafe { dlshare_device_name(CPU, null_mut(), 32) });
}

fn n30_empty_null_shape(c: &Case) {
    c.create_refused(F32, 2, null(), CPU);
}

fn n31_empty_null_out(c: &Case) {
    let shape = [4i64];
    for zeros in [false, true] {
        // SAFETY: NULL output is the case.
        c.check(unsafe {
            if zeros {
                dlshare_tensor_zeros(F32, 1, shape.as_ptr(), CPU, null_mut())
            } else {
                dlshare_tensor_empty(F32, 1, shape.as_ptr(), CPU, null_mut())
            }
        });
    }
}

fn n32_info_null_dl_out(c: &Case) {
    let t = c.tensor(F32, &[4]);
    let mut flags = 77u64;
    // SAFETY: NULL dl_out is the case.
    c.check(unsafe { dlshare_tensor_info(t, null_mut(), &mut flags) });
    assert_eq!(flags, 77);
}

fn n33_info_null_flags_out(c: &Case) {
    let t = c.tensor(F32, &[4]);
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    // SAFETY: flags_out is optional.
    c.check(unsafe { dlshare_tensor_info(t, dl.as_mut_ptr(), null_mut()) });
}

/// Every one-output accessor, called with a NULL output.
fn accessor_null(c: &Case, name: &str) {
    let t = c.tensor(F32, &[4]);
    // SAFETY: NULL outputs are the case.
    let s = unsafe {
        match name {
            "ndim" => dlshare_tensor_ndim(t, null_mut()),
            "shape" => dlshare_tensor_shape(t, null_mut()),
            "strides" => dlshare_tensor_strides(t, null_mut()),
            "dtype" => dlshare_tensor_dtype(t, null_mut()),
            "device" => dlshare_tensor_device(t, null_mut()),
            "data" => dlshare_tensor_data(t, null_mut()),
            "byte_offset" => dlshare_tensor_byte_offset(t, null_mut()),
            "nbytes" => dlshare_tensor_nbytes(t, null_mut()),
            "is_read_only" => dlshare_tensor_is_read_only(t, null_mut()),
            "is_c_contiguous" => dlshare_tensor_is_c_contiguous(t, null_mut()),
            "is_f_contiguous" => dlshare_tensor_is_f_contiguous(t, null_mut()),
            "shares_memory" => dlshare_tensor_shares_memory(t, t, null_mut()),
            _ => unreachable!(),
        }
    };
    c.check(s);
}

fn n34_ndim_null_out(c: &Case) {
    accessor_null(c, "ndim");
}
fn n35_shape_null_out(c: &Case) {
    accessor_null(c, "shape");
}
fn n36_strides_null_out(c: &Case) {
    accessor_null(c, "strides");
}
fn n37_dtype_null_out(c: &Case) {
    accessor_null(c, "dtype");
}
fn n38_device_null_out(c: &Case) {
    accessor_null(c, "device");
}
fn n39_data_null_out(c: &Case) {
    accessor_null(c, "data");
}
fn n40_byte_offset_null_out(c: &Case) {
    accessor_null(c, "byte_offset");
}
fn n41_nbytes_null_out(c: &Case) {
    accessor_null(c, "nbytes");
}
fn n42_is_read_only_null_out(c: &Case) {
    accessor_null(c, "is_read_only");
}
fn n43_is_c_contiguous_null_out(c: &Case) {
    accessor_null(c, "is_c_contiguous");
}
fn n44_is_f_contiguous_null_out(c: &Case) {
    accessor_null(c, "is_f_contiguous");
}
fn n45_shares_memory_null_out(c: &Case) {
    accessor_null(c, "shares_memory");
}

fn n46_dlpack_null_shape(c: &Case) {
    let p = c.versioned(&f32_spec(&[2, 3]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).dl_tensor.shape = null_mut() };
    c.versioned_refused(p, &soc());
}

fn n47_dlpack_legacy_null_shape(c: &Case) {
    let p = c.legacy(&f32_spec(&[2, 3]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).dl_tensor.shape = null_mut() };
    c.legacy_refused(p, &soc());
}

fn n48_dlpack_null_data(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.null_data = true;
    for mode in [SHARE, SHARE_OR_COPY, COPY] {
        c.versioned_refused(c.versioned(&spec), &opts(mode));
        c.legacy_refused(c.legacy(&spec), &opts(mode));
    }
}

fn n49_dlpack_0d_null_data(c: &Case) {
    let mut spec = f32_spec(&[]);
    spec.null_data = true;
    c.versioned_refused(c.versioned(&spec), &soc());
}

fn u01_cuda_device_count_null_out(c: &Case) {
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare::ffi::cuda::dlshare_cuda_device_count(null_mut()) });
}

fn u02_cuda_stream_null_out(c: &Case) {
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare::ffi::cuda::dlshare_cuda_stream(0, null_mut()) });
}

fn u03_cuda_memory_allocated_null_out(c: &Case) {
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare::ffi::cuda::dlshare_cuda_memory_allocated(0, null_mut()) });
}

// ---------------------------------------------------------------------------------------------
// Documented acceptances (NULLs that mean something).

fn a01_null_options(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, DLSHARE_VIEW_READ_ONLY);
    let mut h = SENTINEL;
    let mut d = blank_decision();
    // SAFETY: NULL options are documented.
    c.check(unsafe { dlshare_tensor_from_view(&v, null(), &mut h, &mut d) });
    // SHARE_OR_COPY copies read-only memory.
    assert!(!d.shared);
    assert_eq!(d.reason, DLSHARE_REASON_READ_ONLY);
    c.keep(h);
}

fn a02_null_decision(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    let mut h = SENTINEL;
    // SAFETY: NULL decision_out is documented.
    c.check(unsafe { dlshare_tensor_from_view(&v, null(), &mut h, null_mut()) });
    c.keep(h);
}

fn a03_release_null(c: &Case) {
    c.check(dlshare_tensor_release(null_mut()));
}

fn a04_view_zero_size_null_data(c: &Case) {
    let shape = [0i64, 3];
    let v = c.view(null_mut(), F32, &shape, None, 0);
    for mode in [SHARE, COPY] {
        let (s, h, _) = from_view(&v, &opts(mode));
        c.check(s);
        release(h);
    }
    // The SHARE import released once, the COPY import released once.
    c.releases.borrow_mut()[0].1 = 2;
}

fn a05_dlpack_zero_size_null_data(c: &Case) {
    let mut spec = f32_spec(&[3, 0]);
    spec.null_data = true;
    spec.bytes = vec![0];
    let p = c.versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    assert_eq!(shape_of(c.keep(h)), [3, 0]);
}

fn a06_dlpack_null_deleter(c: &Case) {
    let data = [7u16, 8, 9];
    let shape = [3i64];
    let mut m = DLManagedTensorVersioned {
        version: DLPackVersion { major: 1, minor: 3 },
        manager_ctx: null_mut(),
        deleter: None,
        flags: 0,
        dl_tensor: DLTensor {
            data: data.as_ptr().cast_mut().cast(),
            device: CPU,
            ndim: 1,
            dtype: U16,
            shape: shape.as_ptr().cast_mut(),
            strides: null_mut(),
            byte_offset: 0,
        },
    };
    let (s, h, d) = import_versioned(&mut m, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    assert_eq!(from_bytes::<u16>(&contents(h)), data);
    release(h);
}

fn a07_dlpack_null_strides_v13(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.strides = None;
    spec.version = DLPackVersion { major: 1, minor: 3 };
    let p = c.versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    assert_eq!(strides_of(c.keep(h)), [3, 1]);
}

fn a08_view_null_release(c: &Case) {
    let (buf, shape) = matrix();
    let v = dlshare_view {
        release: None,
        release_ctx: std::ptr::dangling_mut::<c_void>(),
        ..view(buf.ptr(), F32, &shape, None, 0, &AtomicUsize::new(0))
    };
    let (s, h, d) = from_view(&v, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    assert_eq!(data_of(h), buf.ptr());
    release(h);
    // `buf` outlives the tensor: the caller's guarantee.
}

fn a09_pycapsule_destructor_outside_python(c: &Case) {
    // SAFETY: outside CPython the destructor finds no capsule API and does nothing.
    unsafe { dlshare_pycapsule_destructor(null_mut()) };
    c.check(DLSHARE_OK);
}

fn a14_python_module_outside_python(c: &Case) {
    // Outside CPython the C API is not found: NULL, nothing else happens.
    assert!(dlshare_python_module().is_null());
    c.check(DLSHARE_OK);
}

fn o12_cache_limit_negative(c: &Case) {
    let before = dlshare_get_cache_limit();
    c.check(dlshare_set_cache_limit(-2));
    c.check(dlshare_set_cache_limit(i64::MIN));
    assert_eq!(
        dlshare_get_cache_limit(),
        before,
        "a refused limit changes nothing"
    );
}

fn a10_dlpack_newer_minor(c: &Case) {
    let mut spec = f32_spec(&[4]);
    spec.version = DLPackVersion {
        major: 1,
        minor: 99,
    };
    let p = c.versioned(&spec);
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    c.check(s);
    c.keep(h);
}

fn a11_dlpack_unknown_flag_bits(c: &Case) {
    let mut spec = f32_spec(&[4]);
    spec.flags = 1 << 40 | 1 << 63;
    let p = c.versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    let (_, flags) = info(c.keep(h));
    assert_eq!(flags & FLAG_READ_ONLY, 0);
}

fn a12_zero_size_with_wild_strides(c: &Case) {
    let mut spec = f32_spec(&[0, 5]);
    spec.strides = Some(vec![i64::MAX, i64::MIN]);
    spec.bytes = vec![0; 4];
    let p = c.versioned(&spec);
    let (s, h, d) = import_versioned(p.managed, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    c.keep(h);
    // Its export (and a copy of it) come back.
    let mut ev: *mut DLManagedTensorVersioned = null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
    let (s, back, _) = import_versioned(ev, &opts(SHARE));
    ok(s);
    let (s, copy, _) = convert(c.keep(back), &opts(COPY));
    ok(s);
    assert_eq!(shape_of(c.keep(copy)), [0, 5]);
}

fn a13_odd_width_opaque_shares(c: &Case) {
    // 7-byte opaque elements: no alignment applies (found by fuzzing: 7 was taken for one).
    let buf = Buf::zeroed(64);
    let shape = [4i64];
    let v = c.view(buf.ptr(), dt(3, 56), &shape, None, 0);
    let (s, h, d) = from_view(&v, &opts(SHARE));
    c.check(s);
    assert!(d.shared);
    // Its export re-imports (shared) as well.
    let mut ev: *mut DLManagedTensorVersioned = null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(c.keep(h), &mut ev) });
    let (s, back, d) = import_versioned(ev, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    c.keep(back);
}

// ---------------------------------------------------------------------------------------------
// Handles.

/// Every function that takes a handle, by name.
const HANDLE_FUNCTIONS: [&str; 21] = [
    "info",
    "retain",
    "release",
    "convert",
    "explain_tensor",
    "to_dlpack",
    "to_dlpack_legacy",
    "view",
    "ndim",
    "shape",
    "strides",
    "dtype",
    "device",
    "data",
    "byte_offset",
    "nbytes",
    "is_read_only",
    "is_c_contiguous",
    "is_f_contiguous",
    "shares_memory(h, good)",
    "shares_memory(good, h)",
];

/// Calls every function that takes a handle with `h`; each must refuse it with
/// DLSHARE_ERR_INVALID_HANDLE and write nothing.
fn refused_everywhere(c: &Case, h: *mut dlshare_tensor) {
    let good = c.tensor(F32, &[2]);
    let mut dl = std::mem::MaybeUninit::<DLTensor>::zeroed();
    let (mut flags, mut out, mut d) = (77u64, SENTINEL, blank_decision());
    let mut ev: *mut DLManagedTensorVersioned = null_mut();
    let mut el: *mut DLManagedTensor = null_mut();
    let (mut b, mut i, mut p, mut u) = (false, -9i32, null::<i64>(), 77u64);
    let (mut data, mut dty, mut device) = (null_mut::<c_void>(), dt(0, 0), CUDA0);
    let o = soc();
    for name in HANDLE_FUNCTIONS {
        // SAFETY: writable outputs; `h` is the handle under test.
        let s = unsafe {
            match name {
                "info" => dlshare_tensor_info(h, dl.as_mut_ptr(), &mut flags),
                "retain" => dlshare_tensor_retain(h),
                "release" if h.is_null() => {
                    assert_eq!(dlshare_tensor_release(h), DLSHARE_OK, "release(NULL)");
                    continue;
                }
                "release" => dlshare_tensor_release(h),
                "convert" => dlshare_tensor_convert(h, &o, &mut out, &mut d),
                "explain_tensor" => dlshare_explain_tensor(h, &o, &mut d),
                "to_dlpack" => dlshare_tensor_to_dlpack(h, &mut ev),
                "to_dlpack_legacy" => dlshare_tensor_to_dlpack_legacy(h, &mut el),
                "view" => dlshare_tensor_view(h, 1, [1i64].as_ptr(), null(), 0, &mut out),
                "ndim" => dlshare_tensor_ndim(h, &mut i),
                "shape" => dlshare_tensor_shape(h, &mut p),
                "strides" => dlshare_tensor_strides(h, &mut p),
                "dtype" => dlshare_tensor_dtype(h, &mut dty),
                "device" => dlshare_tensor_device(h, &mut device),
                "data" => dlshare_tensor_data(h, &mut data),
                "byte_offset" => dlshare_tensor_byte_offset(h, &mut u),
                "nbytes" => dlshare_tensor_nbytes(h, &mut u),
                "is_read_only" => dlshare_tensor_is_read_only(h, &mut b),
                "is_c_contiguous" => dlshare_tensor_is_c_contiguous(h, &mut b),
                "is_f_contiguous" => dlshare_tensor_is_f_contiguous(h, &mut b),
                "shares_memory(h, good)" => dlshare_tensor_shares_memory(h, good, &mut b),
                "shares_memory(good, h)" => dlshare_tensor_shares_memory(good, h, &mut b),
                _ => unreachable!("{name}"),
            }
        };
        c.check(s);
    }
    assert_eq!((flags, out), (77, SENTINEL));
    assert_untouched(&d);
    assert!(ev.is_null() && el.is_null() && p.is_null() && data.is_null());
    assert_eq!((i, u, b, dty, device), (-9, 77, false, dt(0, 0), CUDA0));
    assert_eq!(shape_of(good), [2], "the live handle was disturbed");
}

fn h01_null_handle(c: &Case) {
    refused_everywhere(c, null_mut());
}

fn h02_address_of_a_local(c: &Case) {
    let local = [0u64; 4];
    refused_everywhere(c, std::ptr::from_ref(&local).cast_mut().cast());
}

fn h03_forged_handle_unused_slot(c: &Case) {
    // Right tag bits (0x8), slot index 2^28 - 2 (never allocated), generation 1.
    let raw = (1u64 << 32) | (((1u64 << 28) - 1) << 4) | 0x8;
    refused_everywhere(c, raw as usize as *mut dlshare_tensor);
}

fn h04_released_handle(c: &Case) {
    let (buf, shape) = matrix();
    let counter = c.counter_expecting(1);
    let v = view(buf.ptr(), F32, &shape, None, 0, &counter);
    let (s, h, _) = from_view(&v, &opts(SHARE));
    ok(s);
    release(h);
    assert_eq!(count(&counter), 1);
    refused_everywhere(c, h);
    assert_eq!(count(&counter), 1, "a refused call released again");
}

fn h05_stale_handle_after_slot_reuse(c: &Case) {
    let t = c.tensor(F32, &[3]);
    let stale = {
        let mut h = SENTINEL;
        // SAFETY: valid pointers.
        ok(unsafe { dlshare_tensor_zeros(F32, 1, [5i64].as_ptr(), CPU, &mut h) });
        release(h);
        h
    };
    // Reuse the freed slot (the table hands freed slots out first).
    let fresh: Vec<_> = (0..4).map(|_| c.tensor(U8, &[1])).collect();
    assert!(!fresh.contains(&stale));
    refused_everywhere(c, stale);
    assert_eq!(shape_of(t), [3]);
}

fn h06_double_release(c: &Case) {
    let p = c.versioned(&f32_spec(&[4]));
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    release(h);
    assert_eq!(p.deletions(), 1);
    c.check(dlshare_tensor_release(h));
    assert_eq!(p.deletions(), 1, "the deleter ran twice");
}

fn h07_retain_after_release(c: &Case) {
    let p = c.versioned(&f32_spec(&[4]));
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    ok(dlshare_tensor_retain(h));
    release(h);
    release(h);
    c.check(dlshare_tensor_retain(h));
    assert_eq!(p.deletions(), 1);
}

fn h08_misaligned_pointer_as_handle(c: &Case) {
    let bytes = [0u8; 64];
    refused_everywhere(c, bytes.as_ptr().wrapping_add(3).cast_mut().cast());
}

// ---------------------------------------------------------------------------------------------
// Dimensions, shapes, strides and offsets.

fn d01_view_negative_ndim(c: &Case) {
    let (buf, shape) = matrix();
    let v = dlshare_view {
        ndim: -1,
        ..c.view(buf.ptr(), F32, &shape, None, 0)
    };
    c.view_refused(&v, &soc());
}

fn d02_view_ndim_65(c: &Case) {
    let (buf, shape) = matrix();
    let v = dlshare_view {
        ndim: 65,
        ..c.view(buf.ptr(), F32, &shape, None, 0)
    };
    c.view_refused(&v, &soc());
}

fn d03_view_ndim_max_null_shape(c: &Case) {
    let (buf, shape) = matrix();
    let v = dlshare_view {
        ndim: i32::MAX,
        shape: null(),
        ..c.view(buf.ptr(), F32, &shape, None, 0)
    };
    c.view_refused(&v, &soc());
}

fn d04_dlpack_negative_ndim(c: &Case) {
    let p = c.versioned(&f32_spec(&[2, 3]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).dl_tensor.ndim = -1 };
    c.versioned_refused(p, &soc());
}

fn d05_dlpack_ndim_max(c: &Case) {
    let p = c.versioned(&f32_spec(&[2, 3]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).dl_tensor.ndim = i32::MAX };
    c.versioned_refused(p, &soc());
}

fn d06_legacy_ndim_min(c: &Case) {
    let p = c.legacy(&f32_spec(&[2, 3]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).dl_tensor.ndim = i32::MIN };
    c.legacy_refused(p, &soc());
}

fn d07_empty_negative_ndim(c: &Case) {
    c.create_refused(F32, -1, [2i64].as_ptr(), CPU);
}

fn d08_empty_ndim_65(c: &Case) {
    let shape = [1i64; 65];
    c.create_refused(F32, 65, shape.as_ptr(), CPU);
}

fn d09_view_negative_extent(c: &Case) {
    let (buf, _) = matrix();
    let shape = [2i64, -3];
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    c.view_refused(&v, &soc());
}

fn d10_dlpack_negative_extent(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.shape = vec![2, -3];
    c.versioned_refused(c.versioned(&spec), &soc());
    c.legacy_refused(c.legacy(&spec), &soc());
}

fn d11_empty_negative_extent(c: &Case) {
    c.create_refused(F32, 2, [4i64, -1].as_ptr(), CPU);
}

fn d12_view_element_count_overflow(c: &Case) {
    let (buf, _) = matrix();
    let shape = [1i64 << 32, 1 << 32];
    let strides = [0i64, 0];
    let v = c.view(buf.ptr(), F32, &shape, Some(&strides), 0);
    c.view_refused(&v, &soc());
}

fn d13_dlpack_element_count_overflow(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.shape = vec![1 << 40, 1 << 40];
    spec.strides = Some(vec![0, 0]);
    c.versioned_refused(c.versioned(&spec), &soc());
}

fn d14_empty_byte_count_overflow(c: &Case) {
    c.create_refused(F64, 1, [1i64 << 62].as_ptr(), CPU);
}

fn d15_empty_out_of_memory(c: &Case) {
    // 2^50 bytes: more than any x86-64 user address space, so the allocation always fails.
    c.create_refused(U8, 2, [1i64 << 25, 1 << 25].as_ptr(), CPU);
}

fn d16_view_extent_overflows_i64(c: &Case) {
    let (buf, _) = matrix();
    let shape = [(1i64 << 33) + 1];
    let strides = [1i64 << 31];
    let v = c.view(buf.ptr(), U8, &shape, Some(&strides), 0);
    c.view_refused(&v, &soc());
}

fn d17_view_extent_sum_overflows_i64(c: &Case) {
    let (buf, _) = matrix();
    let shape = [3i64, 3];
    let strides = [3i64 << 60, 3 << 60];
    let v = c.view(buf.ptr(), U8, &shape, Some(&strides), 0);
    c.view_refused(&v, &soc());
}

fn d18_dlpack_stride_times_item_overflow(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.strides = Some(vec![i64::MAX / 2, 1]);
    c.versioned_refused(c.versioned(&spec), &soc());
    c.legacy_refused(c.legacy(&spec), &soc());
}

fn d19_view_wraps_past_the_top(c: &Case) {
    let shape = [4i64];
    let strides = [1i64 << 60];
    let v = c.view(
        (usize::MAX - (1 << 40)) as *mut u8,
        U8,
        &shape,
        Some(&strides),
        0,
    );
    c.view_refused(&v, &soc());
}

fn d20_view_wraps_below_zero(c: &Case) {
    let shape = [4i64];
    let strides = [-(1i64 << 40)];
    let v = c.view(0x10000 as *mut u8, U8, &shape, Some(&strides), 0);
    c.view_refused(&v, &soc());
}

fn d21_dlpack_byte_offset_max(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.byte_offset = u64::MAX;
    c.versioned_refused(c.versioned(&spec), &soc());
}

fn d22_legacy_byte_offset_past_the_top(c: &Case) {
    let mut spec = f32_spec(&[2, 3]);
    spec.byte_offset = u64::MAX - 64;
    c.legacy_refused(c.legacy(&spec), &opts(COPY));
}

fn d23_dlpack_byte_offset_wraps_with_strides(c: &Case) {
    // data + byte_offset stays 100 bytes below the top of the address space; the extent
    // (4 MiB) passes it.
    let mut spec = f32_spec(&[2, 3]);
    spec.strides = Some(vec![1 << 20, 1]);
    let p = c.versioned(&spec);
    // SAFETY: the case owns the struct.
    unsafe {
        let dl = &mut (*p.managed).dl_tensor;
        dl.byte_offset = (usize::MAX - dl.data as usize - 100) as u64;
    }
    c.versioned_refused(p, &soc());
}

fn d24_copy_of_huge_broadcast(c: &Case) {
    let buf = Buf::zeroed(8);
    let t = broadcast(c, &buf, F64, 1 << 62);
    c.convert_refused(t, &opts(COPY));
}

fn d25_nbytes_of_huge_broadcast(c: &Case) {
    let buf = Buf::zeroed(8);
    let t = broadcast(c, &buf, F64, 1 << 62);
    let mut n = 77u64;
    // SAFETY: writable output.
    c.check(unsafe { dlshare_tensor_nbytes(t, &mut n) });
    assert_eq!(n, 77);
}

fn d26_copy_of_broadcast_out_of_memory(c: &Case) {
    let buf = Buf::zeroed(8);
    let t = broadcast(c, &buf, U8, 1 << 50);
    let (s, out, _) = convert(t, &opts(COPY));
    c.check(s);
    assert_eq!(out, SENTINEL);
    // explain cannot foresee a failed allocation: it says what a copy would do.
    let mut e = blank_decision();
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_explain_tensor(t, &opts(COPY), &mut e) });
    assert_eq!(e.reason, DLSHARE_REASON_COPY_REQUESTED);
}

fn d27_view_null_data_negative_stride(c: &Case) {
    // Negative strides from a NULL base: the extent check would wrap below 0.
    let shape = [2i64];
    let strides = [-4i64];
    let v = c.view(null_mut(), F32, &shape, Some(&strides), 0);
    c.view_refused(&v, &soc());
}

// ---------------------------------------------------------------------------------------------
// dtypes.

fn view_with_dtype(c: &Case, dtype: DLDataType, o: &dlshare_options) {
    let buf = Buf::zeroed(64);
    let shape = [4i64];
    let v = c.view(buf.ptr(), dtype, &shape, None, 0);
    c.view_refused(&v, o);
}

fn t01_view_unknown_dtype_code(c: &Case) {
    view_with_dtype(c, dt(99, 32), &soc());
}

fn t02_dlpack_unknown_dtype_code(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.dtype = dt(18, 8);
    c.versioned_refused(c.versioned(&spec), &soc());
    c.legacy_refused(c.legacy(&spec), &soc());
}

fn t03_empty_unknown_dtype_code(c: &Case) {
    c.create_refused(dt(200, 8), 1, [4i64].as_ptr(), CPU);
}

fn t04_float_24_bits(c: &Case) {
    view_with_dtype(c, dt(2, 24), &soc());
}

fn t05_int_7_bits(c: &Case) {
    view_with_dtype(c, dt(0, 7), &soc());
}

fn t06_complex_32_bits(c: &Case) {
    view_with_dtype(c, dt(5, 32), &soc());
}

fn t07_bool_1_bit(c: &Case) {
    view_with_dtype(c, dt(6, 1), &soc());
}

fn t08_bool_16_bits(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.dtype = dt(6, 16);
    c.versioned_refused(c.versioned(&spec), &soc());
}

fn t09_lanes_zero(c: &Case) {
    view_with_dtype(
        c,
        DLDataType {
            code: 2,
            bits: 32,
            lanes: 0,
        },
        &soc(),
    );
}

const F32X4: DLDataType = DLDataType {
    code: 2,
    bits: 32,
    lanes: 4,
};

fn t10_vector_lanes_cast(c: &Case) {
    view_with_dtype(c, F32X4, &opts_dtype(SHARE_OR_COPY, F64));
}

fn t11_vector_lanes_byte_swap(c: &Case) {
    let buf = Buf::zeroed(64);
    let shape = [4i64];
    let v = c.view(buf.ptr(), F32X4, &shape, None, DLSHARE_VIEW_BYTE_SWAPPED);
    c.view_refused(&v, &opts(COPY));
}

fn t12_vector_lanes_typestr(c: &Case) {
    let mut buf = [0 as c_char; 16];
    // SAFETY: 16 writable bytes.
    c.check(unsafe { dlshare_dtype_typestr(F32X4, buf.as_mut_ptr(), 16) });
    assert_eq!(buf[0], 0);
}

fn t13_opaque_zero_bits(c: &Case) {
    view_with_dtype(c, dt(3, 0), &soc());
}

fn t14_subbyte_copy(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.dtype = dt(17, 4);
    spec.bytes = vec![0x21, 0x43];
    c.versioned_refused(c.versioned(&spec), &opts(COPY));
}

fn t15_subbyte_empty(c: &Case) {
    c.create_refused(dt(17, 4), 1, [8i64].as_ptr(), CPU);
}

fn t16_target_dtype_unknown(c: &Case) {
    let t = c.tensor(F32, &[4]);
    c.convert_refused(t, &opts_dtype(COPY, dt(42, 32)));
}

fn t17_target_dtype_bad_bits(c: &Case) {
    let t = c.tensor(F32, &[4]);
    c.convert_refused(t, &opts_dtype(SHARE_OR_COPY, dt(0, 12)));
}

fn t18_complex_to_real(c: &Case) {
    let t = c.tensor(C64, &[4]);
    c.convert_refused(t, &opts_dtype(COPY, F32));
}

fn t19_cast_uncomputable(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.dtype = F8E4M3FN;
    spec.bytes = vec![0x38, 0x38];
    c.versioned_refused(c.versioned(&spec), &opts_dtype(COPY, F32));
}

fn typestr_refused(c: &Case, s: &CStr) {
    let (mut d, mut sw) = (dt(0, 0), false);
    // SAFETY: NUL-terminated string, writable outputs.
    c.check(unsafe { dlshare_dtype_from_typestr(s.as_ptr(), &mut d, &mut sw) });
    assert_eq!((d, sw), (dt(0, 0), false));
}

fn t20_typestr_object(c: &Case) {
    typestr_refused(c, c"|O8");
}

fn t21_typestr_long_double(c: &Case) {
    typestr_refused(c, c"<f16");
}

fn t22_typestr_empty(c: &Case) {
    typestr_refused(c, c"");
}

fn t23_typestr_not_utf8(c: &Case) {
    typestr_refused(c, c"<\xff4");
}

fn t24_dtype_name_unknown(c: &Case) {
    let mut d = dt(0, 0);
    // SAFETY: NUL-terminated string, writable output.
    c.check(unsafe { dlshare_dtype_from_name(c"float128".as_ptr(), &mut d) });
    assert_eq!(d, dt(0, 0));
}

fn t25_dtype_name_of_invalid_dtype(c: &Case) {
    let mut buf = [0 as c_char; 32];
    // SAFETY: 32 writable bytes.
    c.check(unsafe { dlshare_dtype_name(dt(99, 8), buf.as_mut_ptr(), 32) });
    assert_eq!(buf[0], 0);
}

fn t26_dtype_name_buffer_too_small(c: &Case) {
    let mut buf = [0x55 as c_char; 8];
    // SAFETY: 4 writable bytes announced (8 present).
    c.check(unsafe { dlshare_dtype_name(C128, buf.as_mut_ptr(), 4) });
    assert!(buf.iter().all(|&b| b == 0x55), "the buffer was written");
}

fn t27_dtype_typestr_float8(c: &Case) {
    let mut buf = [0 as c_char; 16];
    // SAFETY: 16 writable bytes.
    c.check(unsafe { dlshare_dtype_typestr(F8E4M3FN, buf.as_mut_ptr(), 16) });
}

fn t28_device_name_buffer_zero(c: &Case) {
    let mut buf = [0x55 as c_char; 4];
    // SAFETY: length 0 announced.
    c.check(unsafe { dlshare_device_name(CPU, buf.as_mut_ptr(), 0) });
    assert!(buf.iter().all(|&b| b == 0x55));
}

// ---------------------------------------------------------------------------------------------
// Devices.

fn view_on(c: &Case, device: DLDevice, o: &dlshare_options) {
    let (buf, shape) = matrix();
    let v = dlshare_view {
        device,
        ..c.view(buf.ptr(), F32, &shape, None, 0)
    };
    c.view_refused(&v, o);
}

fn v01_view_unknown_device_type(c: &Case) {
    view_on(c, dev(99, 0), &soc());
}

fn v02_view_device_type_zero(c: &Case) {
    view_on(c, dev(0, 0), &soc());
}

fn v03_view_device_type_gap(c: &Case) {
    view_on(c, dev(5, 0), &soc());
}

fn v04_dlpack_negative_device_id(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.device = dev(1, -1);
    c.versioned_refused(c.versioned(&spec), &soc());
}

fn v05_empty_on_cuda(c: &Case) {
    c.create_refused(F32, 1, [4i64].as_ptr(), CUDA0);
}

fn v06_empty_unknown_device(c: &Case) {
    c.create_refused(F32, 1, [4i64].as_ptr(), dev(-3, 0));
}

fn v07_copy_from_cuda(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.device = CUDA0;
    c.versioned_refused(c.versioned(&spec), &opts(COPY));
}

fn v08_target_device_cuda(c: &Case) {
    let t = c.tensor(F32, &[4]);
    let mut o = opts(SHARE_OR_COPY);
    o.has_device = true;
    o.device = CUDA0;
    c.convert_refused(t, &o);
}

fn v09_target_device_unknown(c: &Case) {
    let t = c.tensor(F32, &[4]);
    let mut o = opts(COPY);
    o.has_device = true;
    o.device = dev(1000, 0);
    c.convert_refused(t, &o);
}

fn v10_share_across_devices(c: &Case) {
    let mut o = opts(SHARE);
    o.has_device = true;
    o.device = CUDA0;
    view_on(c, CPU, &o);
}

fn device_name_refused(c: &Case, name: &CStr) {
    let mut d = CUDA0;
    // SAFETY: NUL-terminated string, writable output.
    c.check(unsafe { dlshare_device_from_name(name.as_ptr(), &mut d) });
    assert_eq!(d, CUDA0);
}

fn v11_device_name_unknown(c: &Case) {
    device_name_refused(c, c"tpu:0");
}

fn v12_device_name_bad_id(c: &Case) {
    device_name_refused(c, c"cuda:x");
}

fn v13_device_name_negative_id(c: &Case) {
    device_name_refused(c, c"cuda:-1");
}

fn v14_device_name_of_unknown_device(c: &Case) {
    let mut buf = [0 as c_char; 32];
    // SAFETY: 32 writable bytes.
    c.check(unsafe { dlshare_device_name(dev(6, 0), buf.as_mut_ptr(), 32) });
}

// ---------------------------------------------------------------------------------------------
// DLPack versions.

fn with_version(c: &Case, major: u32) {
    let mut spec = f32_spec(&[2, 3]);
    spec.version = DLPackVersion { major, minor: 0 };
    let p = c.versioned(&spec);
    // Garbage where a 1.x reader would look: nothing but the version may be read.
    // SAFETY: the case owns the struct.
    unsafe {
        (*p.managed).dl_tensor.ndim = -5;
        (*p.managed).dl_tensor.shape = null_mut();
        (*p.managed).dl_tensor.dtype = dt(250, 3);
    }
    for mode in [SHARE, SHARE_OR_COPY, COPY] {
        let before = p.snapshot();
        let (s, h, d) = import_versioned(p.managed, &opts(mode));
        c.check(s);
        assert_eq!(h, SENTINEL);
        assert_untouched(&d);
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { dlshare_explain_dlpack(p.managed, &opts(mode), &mut e) },
            s
        );
        assert_eq!(p.snapshot(), before);
        assert_eq!(p.deletions(), 0);
    }
    call_deleter_versioned(p.managed);
}

fn r01_major_0(c: &Case) {
    with_version(c, 0);
}

fn r02_major_2(c: &Case) {
    with_version(c, 2);
}

fn r03_major_max(c: &Case) {
    with_version(c, u32::MAX);
}

// ---------------------------------------------------------------------------------------------
// Options.

fn with_mode(mode: i32) -> dlshare_options {
    let mut o = soc();
    o.mode = mode;
    o
}

fn o01_view_mode_7(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    c.view_refused(&v, &with_mode(7));
}

fn o02_dlpack_mode_negative(c: &Case) {
    c.versioned_refused(c.versioned(&f32_spec(&[2])), &with_mode(-1));
    c.legacy_refused(c.legacy(&f32_spec(&[2])), &with_mode(i32::MIN));
}

fn o03_convert_mode_3(c: &Case) {
    let t = c.tensor(F32, &[4]);
    c.convert_refused(t, &with_mode(3));
}

fn o04_stream_set(c: &Case) {
    let mut o = soc();
    o.stream = 0x1000 as *mut c_void;
    c.versioned_refused(c.versioned(&f32_spec(&[2])), &o);
}

fn o05_share_with_dtype_change(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 0);
    c.view_refused(&v, &opts_dtype(SHARE, F64));
}

fn o06_share_read_only_view(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, DLSHARE_VIEW_READ_ONLY);
    c.view_refused(&v, &opts(SHARE));
}

fn o07_share_negative_stride(c: &Case) {
    let (buf, shape) = matrix();
    let strides = [-12i64, 4];
    let v = c.view(buf.ptr().wrapping_add(12), F32, &shape, Some(&strides), 0);
    c.view_refused(&v, &opts(SHARE));
}

fn o08_share_stride_not_item_multiple(c: &Case) {
    let buf = Buf::zeroed(64);
    let shape = [3i64];
    let strides = [6i64];
    let v = c.view(buf.ptr(), F32, &shape, Some(&strides), 0);
    c.view_refused(&v, &opts(SHARE));
}

fn o09_share_byte_swapped(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, DLSHARE_VIEW_BYTE_SWAPPED);
    c.view_refused(&v, &opts(SHARE));
}

fn o10_share_misaligned(c: &Case) {
    let buf = Buf::zeroed(64);
    let shape = [3i64];
    let v = c.view(buf.ptr().wrapping_add(2), F32, &shape, None, 0);
    c.view_refused(&v, &opts(SHARE));
}

fn o11_share_read_only_dlpack(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.flags = FLAG_READ_ONLY;
    c.versioned_refused(c.versioned(&spec), &opts(SHARE));
}

// ---------------------------------------------------------------------------------------------
// View flags.

fn f01_view_unknown_flag_bit(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(buf.ptr(), F32, &shape, None, 4);
    c.view_refused(&v, &soc());
}

fn f02_view_high_flag_bit(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.view(
        buf.ptr(),
        F32,
        &shape,
        None,
        DLSHARE_VIEW_READ_ONLY | 0x8000_0000,
    );
    c.view_refused(&v, &opts(COPY));
}

// ---------------------------------------------------------------------------------------------
// Export.

fn e01_read_only_to_legacy(c: &Case) {
    let (buf, shape) = matrix();
    let v = c.setup_view(buf.ptr(), F32, &shape, DLSHARE_VIEW_READ_ONLY);
    let mut o = opts(SHARE);
    o.allow_read_only = true;
    let (s, h, _) = from_view(&v, &o);
    ok(s);
    c.keep(h);
    let mut el: *mut DLManagedTensor = null_mut();
    // SAFETY: writable output.
    c.check(unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) });
    assert!(el.is_null());
}

fn e02_padded_subbyte_to_legacy(c: &Case) {
    let mut spec = f32_spec(&[2]);
    spec.dtype = dt(17, 4);
    spec.bytes = vec![1, 2];
    spec.flags = 1 << 2; // IS_SUBBYTE_TYPE_PADDED
    let p = c.versioned(&spec);
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    c.keep(h);
    let mut el: *mut DLManagedTensor = null_mut();
    // SAFETY: writable output.
    c.check(unsafe { dlshare_tensor_to_dlpack_legacy(h, &mut el) });
    assert!(el.is_null());
}

// ---------------------------------------------------------------------------------------------
// Callbacks that re-enter the library.

static REENTER_TARGET: AtomicUsize = AtomicUsize::new(0);
static REENTER_RESULTS: std::sync::Mutex<Vec<dlshare_status>> = std::sync::Mutex::new(Vec::new());

/// Calls back into dlshare: reads and releases the target handle, creates and releases a
/// tensor, fails a call on purpose.
fn reenter() {
    let target = REENTER_TARGET.load(Ordering::SeqCst) as *mut dlshare_tensor;
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    let mut fresh = SENTINEL;
    // SAFETY: writable outputs.
    let results = unsafe {
        [
            dlshare_tensor_info(target, dl.as_mut_ptr(), null_mut()),
            dlshare_tensor_release(target),
            dlshare_tensor_zeros(U8, 1, [2i64].as_ptr(), CPU, &mut fresh),
            dlshare_tensor_release(fresh),
            dlshare_tensor_retain(null_mut()),
        ]
    };
    REENTER_RESULTS.lock().unwrap().extend(results);
}

unsafe extern "C" fn reentrant_release(ctx: *mut c_void) {
    reenter();
    // SAFETY: the ctx is the case's counter.
    unsafe { count_release(ctx) };
}

unsafe extern "C" fn reentrant_deleter(m: *mut DLManagedTensorVersioned) {
    reenter();
    // SAFETY: `m` was made by `produce_versioned`; its own deleter frees it and counts.
    unsafe { (common_deleter())(m) };
}

/// The counted deleter `produce_versioned` installs.
fn common_deleter() -> unsafe extern "C" fn(*mut DLManagedTensorVersioned) {
    let p = produce_versioned(&f32_spec(&[1]));
    // SAFETY: a fresh producer; read its deleter, then give it back.
    let d = unsafe { (*p.managed).deleter.unwrap() };
    call_deleter_versioned(p.managed);
    d
}

fn reentry_results() -> Vec<dlshare_status> {
    std::mem::take(&mut *REENTER_RESULTS.lock().unwrap())
}

const REENTRY_OK: [dlshare_status; 5] = [
    DLSHARE_OK,
    DLSHARE_OK,
    DLSHARE_OK,
    DLSHARE_OK,
    DLSHARE_ERR_INVALID_HANDLE,
];

fn c01_deleter_reenters(c: &Case) {
    reentry_results();
    let target = {
        let mut h = SENTINEL;
        // SAFETY: valid pointers.
        ok(unsafe { dlshare_tensor_zeros(F64, 1, [3i64].as_ptr(), CPU, &mut h) });
        h
    };
    REENTER_TARGET.store(target as usize, Ordering::SeqCst);
    let p = c.versioned(&f32_spec(&[2]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).deleter = Some(reentrant_deleter) };
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    c.check(dlshare_tensor_release(h));
    assert_eq!(reentry_results(), REENTRY_OK);
    assert_eq!(p.deletions(), 1);
    fails(dlshare_tensor_release(target), DLSHARE_ERR_INVALID_HANDLE);
}

fn c02_release_callback_reenters(c: &Case) {
    reentry_results();
    for mode in [SHARE, COPY] {
        let target = c.tensor(F64, &[3]);
        ok(dlshare_tensor_retain(target));
        REENTER_TARGET.store(target as usize, Ordering::SeqCst);
        let (buf, shape) = matrix();
        let counter = c.counter_expecting(1);
        let v = dlshare_view {
            release: Some(reentrant_release),
            ..view(buf.ptr(), F32, &shape, None, 0, &counter)
        };
        let (s, h, d) = from_view(&v, &opts(mode));
        ok(s);
        if mode == COPY {
            // A copy releases the view before returning: the callback ran inside the call.
            assert!(!d.shared);
            assert_eq!(count(&counter), 1);
            assert_eq!(reentry_results(), REENTRY_OK);
        }
        c.check(dlshare_tensor_release(h));
        if mode == SHARE {
            assert_eq!(reentry_results(), REENTRY_OK);
        }
        assert_eq!(count(&counter), 1);
    }
}

static SELF_HANDLE: AtomicUsize = AtomicUsize::new(0);
static SELF_RELEASE: std::sync::Mutex<Option<dlshare_status>> = std::sync::Mutex::new(None);

unsafe extern "C" fn self_releasing_deleter(m: *mut DLManagedTensorVersioned) {
    let h = SELF_HANDLE.load(Ordering::SeqCst) as *mut dlshare_tensor;
    *SELF_RELEASE.lock().unwrap() = Some(dlshare_tensor_release(h));
    // SAFETY: made by `produce_versioned`.
    unsafe { (common_deleter())(m) };
}

fn c03_deleter_releases_its_own_handle(c: &Case) {
    let p = c.versioned(&f32_spec(&[2]));
    // SAFETY: the case owns the struct.
    unsafe { (*p.managed).deleter = Some(self_releasing_deleter) };
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    SELF_HANDLE.store(h as usize, Ordering::SeqCst);
    c.check(dlshare_tensor_release(h));
    assert_eq!(
        SELF_RELEASE.lock().unwrap().take(),
        Some(DLSHARE_ERR_INVALID_HANDLE),
        "the handle was still live inside its own deleter"
    );
    assert_eq!(p.deletions(), 1);
}

fn c04_deleter_of_exported_tensor_after_every_handle(c: &Case) {
    // The consumer's deleter call on an export, re-entering from the consumer's side: the
    // export keeps the producer alive past every handle; the producer is deleted once.
    let p = c.versioned(&f32_spec(&[3]));
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    let mut ev: *mut DLManagedTensorVersioned = null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) });
    c.check(dlshare_tensor_release(h));
    assert_eq!(p.deletions(), 0);
    let (s, h2, _) = import_versioned(ev, &opts(SHARE));
    ok(s);
    release(h2);
    assert_eq!(p.deletions(), 1);
}

// ---------------------------------------------------------------------------------------------
// Columns (`dlshare_tensor_from_columns`) and strided views (`dlshare_tensor_view`).

/// A float64 column 1..=4 (read-only view; columns never call release).
fn column_values() -> Buf {
    Buf::from_bytes(&to_bytes(&[1.0f64, 2.0, 3.0, 4.0]))
}

const FOUR: [i64; 1] = [4];

fn column(buf: &Buf, dtype: DLDataType, kind: dlshare_column_kind) -> dlshare_column {
    let v = dlshare_view {
        release: None,
        release_ctx: null_mut(),
        ..view(buf.ptr(), dtype, &FOUR, None, 0, &AtomicUsize::new(0))
    };
    dlshare_column_init(kind as i32, v)
}

fn columns_refused(
    c: &Case,
    cols: *const dlshare_column,
    n: usize,
    o: *const dlshare_columns_options,
) {
    let mut h = SENTINEL;
    // SAFETY: `cols` holds `n` columns (or is what the case tests).
    c.check(unsafe { dlshare_tensor_from_columns(cols, n, o, &mut h) });
    assert_eq!(h, SENTINEL, "{}: output written on failure", c.row.test);
}

fn one_column_refused(c: &Case, col: dlshare_column) {
    columns_refused(c, &col, 1, null());
}

fn k01_columns_null(c: &Case) {
    columns_refused(c, null(), 2, null());
}

fn k02_columns_null_out(c: &Case) {
    let buf = column_values();
    let col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_tensor_from_columns(&col, 1, null(), null_mut()) });
}

fn k03_columns_null_options(c: &Case) {
    let buf = column_values();
    let col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    let mut h = SENTINEL;
    // SAFETY: NULL options are documented.
    c.check(unsafe { dlshare_tensor_from_columns(&col, 1, null(), &mut h) });
    let (dl, _) = info(c.keep(h));
    assert_eq!((dl.dtype, dl_shape(&dl)), (F32, vec![4, 1]));
}

fn k04_columns_zero(c: &Case) {
    let buf = column_values();
    let col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    columns_refused(c, &col, 0, null());
}

fn k05_column_2d(c: &Case) {
    let buf = column_values();
    let shape = [2i64, 2];
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.view.ndim = 2;
    col.view.shape = shape.as_ptr();
    one_column_refused(c, col);
}

fn k06_column_null_shape(c: &Case) {
    let buf = column_values();
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.view.shape = null();
    one_column_refused(c, col);
}

fn k07_column_null_data(c: &Case) {
    let buf = column_values();
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.view.data = null_mut();
    one_column_refused(c, col);
}

fn k08_column_kind_invalid(c: &Case) {
    let buf = column_values();
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.kind = 9;
    one_column_refused(c, col);
}

fn k09_onehot_negative_categories(c: &Case) {
    let buf = Buf::from_bytes(&to_bytes(&[0i64, 1, 0, 1]));
    let mut col = column(&buf, I64, DLSHARE_COLUMN_ONEHOT);
    col.ncategories = -1;
    one_column_refused(c, col);
}

fn columns_options_refused(c: &Case, o: dlshare_columns_options) {
    let buf = column_values();
    let col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    columns_refused(c, &col, 1, &o);
}

fn k10_nan_policy_invalid(c: &Case) {
    let mut o =
        dlshare_columns_options_init(DLSHARE_NAN_RAISE as i32, DLSHARE_NORMALIZE_NONE as i32);
    o.nan_policy = 9;
    columns_options_refused(c, o);
}

fn k11_normalize_invalid(c: &Case) {
    let mut o =
        dlshare_columns_options_init(DLSHARE_NAN_RAISE as i32, DLSHARE_NORMALIZE_NONE as i32);
    o.normalize = -2;
    columns_options_refused(c, o);
}

fn k12_column_unknown_flags(c: &Case) {
    let buf = column_values();
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.view.flags = 0x10;
    one_column_refused(c, col);
}

fn k13_column_unknown_dtype(c: &Case) {
    let buf = column_values();
    one_column_refused(c, column(&buf, dt(77, 64), DLSHARE_COLUMN_VALUE));
}

fn k14_column_on_cuda(c: &Case) {
    let buf = column_values();
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.view.device = CUDA0;
    one_column_refused(c, col);
}

fn k15_columns_of_different_lengths(c: &Case) {
    let buf = column_values();
    let three = [3i64];
    let a = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    let mut b = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    b.view.shape = three.as_ptr();
    let cols = [a, b];
    columns_refused(c, cols.as_ptr(), 2, null());
}

fn k16_columns_complex_output(c: &Case) {
    let mut o =
        dlshare_columns_options_init(DLSHARE_NAN_RAISE as i32, DLSHARE_NORMALIZE_NONE as i32);
    o.dtype = C64;
    columns_options_refused(c, o);
}

fn k17_datetime_divisor_zero(c: &Case) {
    let buf = Buf::from_bytes(&to_bytes(&[0i64, 86_400, 172_800, 259_200]));
    one_column_refused(c, column(&buf, I64, DLSHARE_COLUMN_DATETIME));
}

fn k18_onehot_code_out_of_range(c: &Case) {
    let buf = Buf::from_bytes(&to_bytes(&[0i32, 1, 5, 1]));
    let mut col = column(&buf, I32, DLSHARE_COLUMN_ONEHOT);
    col.ncategories = 2;
    one_column_refused(c, col);
}

fn k19_onehot_categories_overflow(c: &Case) {
    // Two one-hot columns of 2^62 categories: 2^63 output columns.
    let buf = Buf::from_bytes(&to_bytes(&[0i64, 1, 0, 1]));
    let mut col = column(&buf, I64, DLSHARE_COLUMN_ONEHOT);
    col.ncategories = 1 << 62;
    let cols = [col, col];
    columns_refused(c, cols.as_ptr(), 2, null());
}

fn k20_column_wraps(c: &Case) {
    let buf = column_values();
    let stride = [i64::MIN / 4];
    let mut col = column(&buf, F64, DLSHARE_COLUMN_VALUE);
    col.view.byte_strides = stride.as_ptr();
    one_column_refused(c, col);
}

fn k21_missing_with_raise(c: &Case) {
    let buf = Buf::from_bytes(&to_bytes(&[1.0f64, f64::NAN, 3.0, 4.0]));
    one_column_refused(c, column(&buf, F64, DLSHARE_COLUMN_VALUE));
}

fn k22_datetime_of_floats(c: &Case) {
    let buf = column_values();
    let mut col = column(&buf, F64, DLSHARE_COLUMN_DATETIME);
    col.datetime_divisor = 1;
    one_column_refused(c, col);
}

fn k23_onehot_huge_categories(c: &Case) {
    // One column of 2^40 categories x 4 rows = 2^42 float32 outputs: more than memory.
    let buf = Buf::from_bytes(&to_bytes(&[0i64, 1, 0, 1]));
    let mut col = column(&buf, I64, DLSHARE_COLUMN_ONEHOT);
    col.ncategories = 1 << 45;
    one_column_refused(c, col);
}

fn k24_normalize_to_integers(c: &Case) {
    let mut o =
        dlshare_columns_options_init(DLSHARE_NAN_RAISE as i32, DLSHARE_NORMALIZE_MINMAX as i32);
    o.dtype = I32;
    columns_options_refused(c, o);
}

fn view_of(c: &Case, ndim: i32, shape: *const i64, strides: *const i64, offset: i64) {
    let t = c.tensor(F32, &[4, 3]);
    let mut h = SENTINEL;
    // SAFETY: `shape`/`strides` hold `ndim` values or are what the case tests.
    c.check(unsafe { dlshare_tensor_view(t, ndim, shape, strides, offset, &mut h) });
    if c.row.status == DLSHARE_OK {
        c.keep(h);
    } else {
        assert_eq!(h, SENTINEL, "{}: output written on failure", c.row.test);
    }
}

fn w01_view_null_handle(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: NULL handle is the case.
    c.check(unsafe { dlshare_tensor_view(null(), 1, [2i64].as_ptr(), null(), 0, &mut h) });
    assert_eq!(h, SENTINEL);
}

fn w02_view_null_out(c: &Case) {
    let t = c.tensor(F32, &[4]);
    // SAFETY: NULL output is the case.
    c.check(unsafe { dlshare_tensor_view(t, 1, [2i64].as_ptr(), null(), 0, null_mut()) });
}

fn w03_view_negative_ndim(c: &Case) {
    view_of(c, -1, [2i64].as_ptr(), null(), 0);
}

fn w04_view_ndim_65(c: &Case) {
    let ones = [1i64; 65];
    view_of(c, 65, ones.as_ptr(), null(), 0);
}

fn w05_view_null_shape(c: &Case) {
    view_of(c, 2, null(), null(), 0);
}

fn w06_view_null_strides(c: &Case) {
    view_of(c, 2, [3i64, 4].as_ptr(), null(), 0);
}

fn w07_view_negative_extent(c: &Case) {
    view_of(c, 1, [-2i64].as_ptr(), null(), 0);
}

fn w08_view_outside_the_tensor(c: &Case) {
    view_of(c, 2, [4i64, 3].as_ptr(), [3i64, 1].as_ptr(), 1);
}

fn w09_view_offset_max(c: &Case) {
    view_of(c, 1, [1i64].as_ptr(), null(), i64::MAX);
}

fn w10_view_huge_strides(c: &Case) {
    view_of(c, 2, [2i64, 2].as_ptr(), [i64::MAX, i64::MIN].as_ptr(), 0);
}

fn w11_view_of_zero_size(c: &Case) {
    let t = c.tensor(F32, &[0, 3]);
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    c.check(unsafe { dlshare_tensor_view(t, 1, [1i64].as_ptr(), null(), 0, &mut h) });
    assert_eq!(h, SENTINEL);
}

fn w12_view_strides_overflow_bytes(c: &Case) {
    // A view of a broadcast tensor whose element strides x item size overflow int64 is still
    // within the (zero-width) extent; using it must not overflow silently.
    let buf = Buf::zeroed(8);
    let t = broadcast(c, &buf, F64, 1 << 20);
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_view(t, 1, [1i64].as_ptr(), [i64::MAX].as_ptr(), 0, &mut h) });
    c.keep(h);
    let (s, out, _) = convert(h, &opts(COPY));
    c.check(s);
    assert_eq!(out, SENTINEL);
}

// ---------------------------------------------------------------------------------------------
// Shared memory across processes (src/shm.rs, src/ffi/shm.rs; issue 15). Two-process runs are in
// tests/c/test_shm.c and tests/python/test_across_processes.py.

/// A 2 x 3 float32 tensor in shared memory (released by the end of the case) and its
/// description.
fn shm_tensor(c: &Case) -> dlshare_shm_desc {
    let mut h = null_mut();
    // SAFETY: a valid shape of 2 values and a writable output.
    ok(unsafe { dlshare_tensor_empty_shared(F32, 2, [2i64, 3].as_ptr(), &mut h) });
    c.keep(h);
    let mut d = std::mem::MaybeUninit::<dlshare_shm_desc>::uninit();
    // SAFETY: a live handle and a writable output.
    ok(unsafe { dlshare_shm_export(h, d.as_mut_ptr()) });
    // SAFETY: filled by the successful export.
    unsafe { d.assume_init() }
}

/// Imports `d`: checked against the row; on failure the output is untouched.
fn shm_import(c: &Case, d: &dlshare_shm_desc) {
    let mut h = SENTINEL;
    // SAFETY: `d` points to a description whose arrays hold `ndim` values (or are NULL).
    let s = unsafe { dlshare_shm_import(d, &mut h) };
    c.check(s);
    if s == DLSHARE_OK {
        c.keep(h);
    } else {
        assert_eq!(h, SENTINEL);
    }
}

fn s01_shm_import_null_desc(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: NULL is what is tested; the output is writable.
    c.check(unsafe { dlshare_shm_import(null(), &mut h) });
    assert_eq!(h, SENTINEL);
}

fn s02_shm_import_null_out(c: &Case) {
    let d = shm_tensor(c);
    // SAFETY: a valid description; NULL output is what is tested.
    c.check(unsafe { dlshare_shm_import(&d, null_mut()) });
}

fn s03_shm_import_negative_fd(c: &Case) {
    let mut d = shm_tensor(c);
    d.fd = -1;
    shm_import(c, &d);
}

fn s04_shm_import_closed_fd(c: &Case) {
    let mut d = shm_tensor(c);
    let mut fds = [0i32; 2];
    // SAFETY: a pipe, closed at once: its read end is a closed descriptor number.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    d.fd = fds[0];
    shm_import(c, &d);
}

fn s05_shm_import_pipe(c: &Case) {
    let mut d = shm_tensor(c);
    let mut fds = [0i32; 2];
    // SAFETY: a new pipe, closed below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    d.fd = fds[0];
    shm_import(c, &d);
    // SAFETY: the pipe made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

fn s06_shm_import_unsealed_memfd(c: &Case) {
    let mut d = shm_tensor(c);
    // SAFETY: a new memory file of the description's size, not sealed; closed below.
    let fd = unsafe { libc::memfd_create(c"unsealed".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: the file just made.
    assert_eq!(unsafe { libc::ftruncate(fd, d.size as libc::off_t) }, 0);
    d.fd = fd;
    shm_import(c, &d);
    // SAFETY: the file made above.
    unsafe { libc::close(fd) };
}

fn s07_shm_import_stale_size(c: &Case) {
    let mut d = shm_tensor(c);
    d.size += 4096;
    shm_import(c, &d);
}

fn s08_shm_import_outside_the_file(c: &Case) {
    let mut d = shm_tensor(c);
    let shape = [2i64, (d.size / 4) as i64];
    d.shape = shape.as_ptr();
    d.strides = null();
    shm_import(c, &d);
}

fn s09_shm_import_misaligned_offset(c: &Case) {
    let mut d = shm_tensor(c);
    d.offset = 2;
    let shape = [1i64];
    d.ndim = 1;
    d.shape = shape.as_ptr();
    d.strides = null();
    shm_import(c, &d);
}

fn s10_shm_import_unknown_dtype(c: &Case) {
    let mut d = shm_tensor(c);
    d.dtype.code = 99;
    shm_import(c, &d);
}

fn s11_shm_import_ndim_65(c: &Case) {
    let mut d = shm_tensor(c);
    let shape = [1i64; 65];
    d.ndim = 65;
    d.shape = shape.as_ptr();
    d.strides = null();
    shm_import(c, &d);
}

fn s12_shm_import_null_shape(c: &Case) {
    let mut d = shm_tensor(c);
    d.shape = null();
    shm_import(c, &d);
}

fn s13_shm_import_negative_extent(c: &Case) {
    let mut d = shm_tensor(c);
    let shape = [2i64, -3];
    d.shape = shape.as_ptr();
    d.strides = null();
    shm_import(c, &d);
}

fn s14_shm_import_stride_overflow(c: &Case) {
    let mut d = shm_tensor(c);
    let strides = [i64::MAX, 1];
    d.strides = strides.as_ptr();
    shm_import(c, &d);
}

fn s15_shm_import_offset_past_the_file(c: &Case) {
    let mut d = shm_tensor(c);
    d.offset = u64::MAX - 3;
    shm_import(c, &d);
}

fn s16_shm_import_read_only(c: &Case) {
    let mut d = shm_tensor(c);
    d.read_only = true;
    shm_import(c, &d);
    let h = *c.handles.borrow().last().unwrap();
    let mut ro = false;
    // SAFETY: a live handle and a writable output.
    ok(unsafe { dlshare_tensor_is_read_only(h, &mut ro) });
    assert!(ro);
}

fn s17_shm_export_not_shared(c: &Case) {
    let mut h = null_mut();
    // SAFETY: a valid shape and a writable output.
    ok(unsafe { dlshare_tensor_zeros(F32, 1, [4i64].as_ptr(), CPU, &mut h) });
    c.keep(h);
    let mut d = std::mem::MaybeUninit::<dlshare_shm_desc>::uninit();
    // SAFETY: a live handle and a writable output.
    c.check(unsafe { dlshare_shm_export(h, d.as_mut_ptr()) });
}

fn s18_shm_export_null_out(c: &Case) {
    let mut h = null_mut();
    // SAFETY: a valid shape and a writable output.
    ok(unsafe { dlshare_tensor_empty_shared(F32, 1, [4i64].as_ptr(), &mut h) });
    c.keep(h);
    // SAFETY: NULL output is what is tested.
    c.check(unsafe { dlshare_shm_export(h, null_mut()) });
}

fn s19_empty_shared_negative_ndim(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: the output is writable; the shape is never read.
    c.check(unsafe { dlshare_tensor_empty_shared(F32, -1, null(), &mut h) });
    assert_eq!(h, SENTINEL);
}

fn s20_share_memory_null_handle(c: &Case) {
    let mut h = SENTINEL;
    // SAFETY: the output is writable.
    c.check(unsafe { dlshare_tensor_share_memory(null(), &mut h) });
    assert_eq!(h, SENTINEL);
}

fn s21_cuda_ipc_import_outside_the_allocation(c: &Case) {
    let shape = [2000i64];
    let d = dlshare_cuda_ipc_desc {
        handle: [0; 64],
        device_id: 0,
        offset: 0,
        size: 4096,
        dtype: F32,
        ndim: 1,
        shape: shape.as_ptr(),
        strides: null(),
        read_only: false,
    };
    let mut h = SENTINEL;
    // SAFETY: a description whose shape holds 1 value; a writable output.
    c.check(unsafe { dlshare_cuda_ipc_import(&d, &mut h) });
    assert_eq!(h, SENTINEL);
}

fn s22_cuda_ipc_export_of_a_cpu_tensor(c: &Case) {
    let mut h = null_mut();
    // SAFETY: a valid shape and a writable output.
    ok(unsafe { dlshare_tensor_zeros(F32, 1, [4i64].as_ptr(), CPU, &mut h) });
    c.keep(h);
    let mut d = std::mem::MaybeUninit::<dlshare_cuda_ipc_desc>::uninit();
    // SAFETY: a live handle and a writable output.
    c.check(unsafe { dlshare_cuda_ipc_export(h, d.as_mut_ptr()) });
}

// ---------------------------------------------------------------------------------------------
// The catalogue.

catalogue! {
    n01_from_view_null_view: "dlshare_tensor_from_view", "view = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "view is NULL", C;
    n02_from_view_null_out: "dlshare_tensor_from_view", "tensor_out = NULL (SHARE and COPY)" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", C;
    n03_from_view_null_shape: "dlshare_tensor_from_view", "view.shape = NULL with ndim 2" => DLSHARE_ERR_NULL_ARGUMENT, "view.shape is NULL", "";
    n04_from_view_null_strides_array: "dlshare_tensor_from_view", "view.byte_strides = NULL" => DLSHARE_OK, "NULL byte_strides means C-contiguous", "tests/decision_table.rs";
    n05_from_view_null_data: "dlshare_tensor_from_view", "view.data = NULL with 6 elements (every mode)" => DLSHARE_ERR_NULL_ARGUMENT, "data is NULL", "";
    n06_explain_view_null_view: "dlshare_explain_view", "view = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "view is NULL", C;
    n07_explain_view_null_decision: "dlshare_explain_view", "decision_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "decision_out is NULL", C;
    n08_convert_null_out: "dlshare_tensor_convert", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", C;
    n09_explain_tensor_null_decision: "dlshare_explain_tensor", "decision_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "decision_out is NULL", C;
    n10_from_dlpack_null_managed: "dlshare_tensor_from_dlpack", "managed = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "managed is NULL", C;
    n11_from_dlpack_null_out: "dlshare_tensor_from_dlpack", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", OWN;
    n12_from_dlpack_legacy_null_managed: "dlshare_tensor_from_dlpack_legacy", "managed = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "managed is NULL", C;
    n13_from_dlpack_legacy_null_out: "dlshare_tensor_from_dlpack_legacy", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", OWN;
    n14_explain_dlpack_null_managed: "dlshare_explain_dlpack", "managed = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "managed is NULL", C;
    n15_explain_dlpack_null_decision: "dlshare_explain_dlpack", "decision_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "decision_out is NULL", C;
    n16_explain_dlpack_legacy_null_managed: "dlshare_explain_dlpack_legacy", "managed = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "managed is NULL", C;
    n17_explain_dlpack_legacy_null_decision: "dlshare_explain_dlpack_legacy", "decision_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "decision_out is NULL", "";
    n18_to_dlpack_null_out: "dlshare_tensor_to_dlpack", "managed_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "managed_out is NULL", C;
    n19_to_dlpack_legacy_null_out: "dlshare_tensor_to_dlpack_legacy", "managed_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "managed_out is NULL", C;
    n20_typestr_null_typestr: "dlshare_dtype_from_typestr", "typestr = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "typestr is NULL", "";
    n21_typestr_null_dtype_out: "dlshare_dtype_from_typestr", "dtype_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "dtype_out is NULL", "";
    n22_typestr_null_swapped_out: "dlshare_dtype_from_typestr", "swapped_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "swapped_out is NULL", "";
    n23_dtype_from_name_null_name: "dlshare_dtype_from_name", "name = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "name is NULL", "";
    n24_dtype_from_name_null_out: "dlshare_dtype_from_name", "dtype_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "dtype_out is NULL", "";
    n25_dtype_name_null_buf: "dlshare_dtype_name", "buf_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "buf_out is NULL", "";
    n26_dtype_typestr_null_buf: "dlshare_dtype_typestr", "buf_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "buf_out is NULL", "";
    n27_device_from_name_null_name: "dlshare_device_from_name", "name = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "name is NULL", "";
    n28_device_from_name_null_out: "dlshare_device_from_name", "device_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "device_out is NULL", "";
    n29_device_name_null_buf: "dlshare_device_name", "buf_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "buf_out is NULL", "";
    n30_empty_null_shape: "dlshare_tensor_empty / _zeros", "shape = NULL with ndim 2" => DLSHARE_ERR_NULL_ARGUMENT, "shape is NULL", C;
    n31_empty_null_out: "dlshare_tensor_empty / _zeros", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", "tests/handles.rs live_count_returns_to_start_after_mixed_work";
    n32_info_null_dl_out: "dlshare_tensor_info", "dl_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "dl_out is NULL", C;
    n33_info_null_flags_out: "dlshare_tensor_info", "flags_out = NULL" => DLSHARE_OK, "flags_out is optional", C;
    n34_ndim_null_out: "dlshare_tensor_ndim", "ndim_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "ndim_out is NULL", C;
    n35_shape_null_out: "dlshare_tensor_shape", "shape_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "shape_out is NULL", C;
    n36_strides_null_out: "dlshare_tensor_strides", "strides_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "strides_out is NULL", C;
    n37_dtype_null_out: "dlshare_tensor_dtype", "dtype_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "dtype_out is NULL", C;
    n38_device_null_out: "dlshare_tensor_device", "device_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "device_out is NULL", C;
    n39_data_null_out: "dlshare_tensor_data", "data_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "data_out is NULL", C;
    n40_byte_offset_null_out: "dlshare_tensor_byte_offset", "byte_offset_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "byte_offset_out is NULL", C;
    n41_nbytes_null_out: "dlshare_tensor_nbytes", "nbytes_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "nbytes_out is NULL", C;
    n42_is_read_only_null_out: "dlshare_tensor_is_read_only", "read_only_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "read_only_out is NULL", C;
    n43_is_c_contiguous_null_out: "dlshare_tensor_is_c_contiguous", "contiguous_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "contiguous_out is NULL", C;
    n44_is_f_contiguous_null_out: "dlshare_tensor_is_f_contiguous", "contiguous_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "contiguous_out is NULL", C;
    n45_shares_memory_null_out: "dlshare_tensor_shares_memory", "shared_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "shared_out is NULL", C;
    n46_dlpack_null_shape: "dlshare_tensor_from_dlpack", "dl_tensor.shape = NULL with ndim 2" => DLSHARE_ERR_INVALID_DLPACK, "shape is NULL", "tests/ownership.rs ndim_beyond_the_limit_and_null_shape_are_invalid_dlpack";
    n47_dlpack_legacy_null_shape: "dlshare_tensor_from_dlpack_legacy", "dl_tensor.shape = NULL with ndim 2" => DLSHARE_ERR_INVALID_DLPACK, "shape is NULL", "";
    n48_dlpack_null_data: "dlshare_tensor_from_dlpack (+ _legacy)", "data = NULL with 6 elements (every mode)" => DLSHARE_ERR_NULL_ARGUMENT, "data is NULL", OWN;
    n49_dlpack_0d_null_data: "dlshare_tensor_from_dlpack", "0-d tensor (1 element) with data = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "data is NULL", "";
    u01_cuda_device_count_null_out: "dlshare_cuda_device_count", "count_out = NULL (checked before CUDA is touched)" => DLSHARE_ERR_NULL_ARGUMENT, "count_out is NULL", "";
    u02_cuda_stream_null_out: "dlshare_cuda_stream", "stream_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "stream_out is NULL", "";
    u03_cuda_memory_allocated_null_out: "dlshare_cuda_memory_allocated", "bytes_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "bytes_out is NULL", "";
    a01_null_options: "dlshare_tensor_from_view (every converter)", "options = NULL" => DLSHARE_OK, "NULL options mean SHARE_OR_COPY defaults", C;
    a02_null_decision: "dlshare_tensor_from_view (every converter)", "decision_out = NULL" => DLSHARE_OK, "decision_out is optional for conversions", C;
    a03_release_null: "dlshare_tensor_release", "tensor = NULL" => DLSHARE_OK, "releasing NULL does nothing", "tests/handles.rs null_handles_are_refused";
    a04_view_zero_size_null_data: "dlshare_tensor_from_view", "data = NULL, shape (0, 3)" => DLSHARE_OK, "NULL data is allowed for zero-size arrays", "tests/decision_table.rs";
    a05_dlpack_zero_size_null_data: "dlshare_tensor_from_dlpack", "data = NULL, shape (3, 0)" => DLSHARE_OK, "NULL data is allowed for zero-size tensors", "tests/dlpack_roundtrip.rs";
    a06_dlpack_null_deleter: "dlshare_tensor_from_dlpack", "deleter = NULL" => DLSHARE_OK, "the producer keeps the memory alive (the DLPack spec allows a NULL deleter)", "tests/ownership.rs a_null_deleter_is_accepted";
    a07_dlpack_null_strides_v13: "dlshare_tensor_from_dlpack", "strides = NULL in a 1.3 tensor" => DLSHARE_OK, "read as compact row-major, as before DLPack 1.2 (lenient on input)", "tests/dlpack_roundtrip.rs";
    a08_view_null_release: "dlshare_tensor_from_view", "release = NULL" => DLSHARE_OK, "the caller guarantees the memory outlives every tensor sharing it", "";
    a09_pycapsule_destructor_outside_python: "dlshare_pycapsule_destructor", "capsule = NULL outside CPython" => DLSHARE_OK, "does nothing when CPython's capsule API is absent", "";
    a10_dlpack_newer_minor: "dlshare_tensor_from_dlpack", "version 1.99 (newer minor)" => DLSHARE_OK, "minor versions are backward compatible", "";
    a11_dlpack_unknown_flag_bits: "dlshare_tensor_from_dlpack", "flags with undefined bits 40 and 63" => DLSHARE_OK, "undefined flag bits are ignored (room for future minors)", "";
    a12_zero_size_with_wild_strides: "dlshare_tensor_from_dlpack", "shape (0, 5) with strides (INT64_MAX, INT64_MIN)" => DLSHARE_OK, "a zero-size tensor touches no memory: its strides are not checked (byte strides saturate), and its export re-imports", "";
    a13_odd_width_opaque_shares: "dlshare_tensor_from_view, dlshare_tensor_from_dlpack", "opaque handle of 56 bits (7-byte elements) in SHARE mode" => DLSHARE_OK, "elements of a size that is not a power of two need no alignment", "";
    a14_python_module_outside_python: "dlshare_python_module", "called outside CPython" => DLSHARE_OK, "returns NULL when CPython's C API is absent", "";
    h01_null_handle: "every function taking a handle (the list in tests/handles.rs)", "tensor = NULL" => DLSHARE_ERR_INVALID_HANDLE, "handle is NULL", HND;
    h02_address_of_a_local: "every function taking a handle", "address of a local array" => DLSHARE_ERR_INVALID_HANDLE, "not a live dlshare tensor handle", HND;
    h03_forged_handle_unused_slot: "every function taking a handle", "forged value with the handle tag and an unallocated slot" => DLSHARE_ERR_INVALID_HANDLE, "not a live dlshare tensor handle", "";
    h04_released_handle: "every function taking a handle", "a released handle" => DLSHARE_ERR_INVALID_HANDLE, "already released", HND;
    h05_stale_handle_after_slot_reuse: "every function taking a handle", "a released handle whose slot was reused" => DLSHARE_ERR_INVALID_HANDLE, "already released", HND;
    h06_double_release: "dlshare_tensor_release", "second release of the last owner" => DLSHARE_ERR_INVALID_HANDLE, "release each once", "tests/handles.rs retain_and_release_count_owners";
    h07_retain_after_release: "dlshare_tensor_retain", "retain after the last release" => DLSHARE_ERR_INVALID_HANDLE, "not a live dlshare tensor handle", "tests/handles.rs retain_and_release_count_owners";
    h08_misaligned_pointer_as_handle: "every function taking a handle", "a misaligned heap address" => DLSHARE_ERR_INVALID_HANDLE, "not a live dlshare tensor handle", HND;
    d01_view_negative_ndim: "dlshare_tensor_from_view", "view.ndim = -1" => DLSHARE_ERR_INVALID_ARGUMENT, "view.ndim is -1", "";
    d02_view_ndim_65: "dlshare_tensor_from_view", "view.ndim = 65 (limit 64)" => DLSHARE_ERR_INVALID_ARGUMENT, "view.ndim is 65", "";
    d03_view_ndim_max_null_shape: "dlshare_tensor_from_view", "view.ndim = INT32_MAX, shape NULL (nothing read)" => DLSHARE_ERR_INVALID_ARGUMENT, "view.ndim is 2147483647", "";
    d04_dlpack_negative_ndim: "dlshare_tensor_from_dlpack", "ndim = -1" => DLSHARE_ERR_INVALID_DLPACK, "ndim is -1", OWN;
    d05_dlpack_ndim_max: "dlshare_tensor_from_dlpack", "ndim = INT32_MAX (shape not read)" => DLSHARE_ERR_INVALID_DLPACK, "ndim is 2147483647", "tests/ownership.rs ndim_beyond_the_limit_and_null_shape_are_invalid_dlpack";
    d06_legacy_ndim_min: "dlshare_tensor_from_dlpack_legacy", "ndim = INT32_MIN" => DLSHARE_ERR_INVALID_DLPACK, "ndim is -2147483648", "";
    d07_empty_negative_ndim: "dlshare_tensor_empty / _zeros", "ndim = -1" => DLSHARE_ERR_INVALID_ARGUMENT, "ndim is -1", "tests/handles.rs last_error_is_per_thread";
    d08_empty_ndim_65: "dlshare_tensor_empty / _zeros", "ndim = 65" => DLSHARE_ERR_INVALID_ARGUMENT, "ndim is 65", "";
    d09_view_negative_extent: "dlshare_tensor_from_view", "shape (2, -3)" => DLSHARE_ERR_INVALID_ARGUMENT, "shape[1] = -3 is negative", "";
    d10_dlpack_negative_extent: "dlshare_tensor_from_dlpack (+ _legacy)", "shape (2, -3)" => DLSHARE_ERR_INVALID_DLPACK, "shape[1] = -3 is negative", OWN;
    d11_empty_negative_extent: "dlshare_tensor_empty / _zeros", "shape (4, -1)" => DLSHARE_ERR_INVALID_ARGUMENT, "shape[1] = -1 is negative", "tests/handles.rs live_count_returns_to_start_after_mixed_work";
    d12_view_element_count_overflow: "dlshare_tensor_from_view", "shape (2^32, 2^32): element count overflows int64" => DLSHARE_ERR_OVERFLOW, "overflows a 64-bit integer", "";
    d13_dlpack_element_count_overflow: "dlshare_tensor_from_dlpack", "shape (2^40, 2^40)" => DLSHARE_ERR_INVALID_DLPACK, "overflows a 64-bit integer", "";
    d14_empty_byte_count_overflow: "dlshare_tensor_empty / _zeros", "2^62 float64 elements (2^65 bytes)" => DLSHARE_ERR_OVERFLOW, "do not fit in the address space", "";
    #[cfg_attr(miri, ignore = "Miri cannot fail a 2^50-byte allocation gracefully")]
    d15_empty_out_of_memory: "dlshare_tensor_empty / _zeros", "2^50 bytes" => DLSHARE_ERR_OUT_OF_MEMORY, "1125899906842624 bytes", "";
    d16_view_extent_overflows_i64: "dlshare_tensor_from_view", "(n - 1) x stride overflows int64: shape 2^33 + 1, stride 2^31" => DLSHARE_ERR_OVERFLOW, "spans more bytes than a 64-bit address space", "";
    d17_view_extent_sum_overflows_i64: "dlshare_tensor_from_view", "sum of the axis spans overflows int64: shape (3, 3), strides (3 x 2^60, 3 x 2^60)" => DLSHARE_ERR_OVERFLOW, "spans more bytes than a 64-bit address space", "";
    d18_dlpack_stride_times_item_overflow: "dlshare_tensor_from_dlpack (+ _legacy)", "element stride INT64_MAX/2 x item size 4" => DLSHARE_ERR_OVERFLOW, "overflows a 64-bit integer", OWN;
    d19_view_wraps_past_the_top: "dlshare_tensor_from_view", "data near the top of the address space, stride 2^60" => DLSHARE_ERR_OVERFLOW, "wraps around the address space", "";
    d20_view_wraps_below_zero: "dlshare_tensor_from_view", "data 0x10000, stride -2^40" => DLSHARE_ERR_OVERFLOW, "wraps around the address space", "";
    d21_dlpack_byte_offset_max: "dlshare_tensor_from_dlpack", "byte_offset = UINT64_MAX" => DLSHARE_ERR_OVERFLOW, "byte_offset", "";
    d22_legacy_byte_offset_past_the_top: "dlshare_tensor_from_dlpack_legacy", "byte_offset = UINT64_MAX - 64 (COPY)" => DLSHARE_ERR_OVERFLOW, "byte_offset", "";
    d23_dlpack_byte_offset_wraps_with_strides: "dlshare_tensor_from_dlpack", "data + byte_offset fits, + extent wraps" => DLSHARE_ERR_OVERFLOW, "wraps around the address space", "";
    d24_copy_of_huge_broadcast: "dlshare_tensor_convert", "COPY of a zero-stride view of 2^62 float64" => DLSHARE_ERR_OVERFLOW, "does not fit in the address space", "";
    d25_nbytes_of_huge_broadcast: "dlshare_tensor_nbytes", "zero-stride view of 2^62 float64 (2^65 bytes)" => DLSHARE_ERR_OVERFLOW, "overflows 64 bits", "";
    #[cfg_attr(miri, ignore = "Miri cannot fail a 2^50-byte allocation gracefully")]
    d26_copy_of_broadcast_out_of_memory: "dlshare_tensor_convert", "COPY of a zero-stride view of 2^50 uint8" => DLSHARE_ERR_OUT_OF_MEMORY, "1125899906842624 bytes", "";
    d27_view_null_data_negative_stride: "dlshare_tensor_from_view", "data = NULL, 2 elements, stride -4" => DLSHARE_ERR_NULL_ARGUMENT, "data is NULL", "";
    t01_view_unknown_dtype_code: "dlshare_tensor_from_view", "dtype code 99" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 99", "";
    t02_dlpack_unknown_dtype_code: "dlshare_tensor_from_dlpack (+ _legacy)", "dtype code 18 (one past the last)" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 18", OWN;
    t03_empty_unknown_dtype_code: "dlshare_tensor_empty / _zeros", "dtype code 200" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 200", "tests/handles.rs live_count_returns_to_start_after_mixed_work";
    t04_float_24_bits: "dlshare_tensor_from_view", "float with 24 bits" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "24 bits is not valid", OWN;
    t05_int_7_bits: "dlshare_tensor_from_view", "int with 7 bits" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "7 bits is not valid", "";
    t06_complex_32_bits: "dlshare_tensor_from_view", "complex with 32 bits" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "32 bits is not valid for DLPack type code 5 (complex)", "";
    t07_bool_1_bit: "dlshare_tensor_from_view", "bool with 1 bit" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "1 bits is not valid for DLPack type code 6 (bool)", "";
    t08_bool_16_bits: "dlshare_tensor_from_dlpack", "bool with 16 bits" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "16 bits is not valid for DLPack type code 6 (bool)", "";
    t09_lanes_zero: "dlshare_tensor_from_view", "lanes = 0" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "lanes is 0", OWN;
    t10_vector_lanes_cast: "dlshare_tensor_from_view", "float32x4 (lanes 4) cast to float64" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "cannot cast float32x4", "";
    t11_vector_lanes_byte_swap: "dlshare_tensor_from_view", "float32x4, byte-swapped, COPY" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "cannot byte-swap float32x4", "";
    t12_vector_lanes_typestr: "dlshare_dtype_typestr", "float32x4" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "has no NumPy typestr", "";
    t13_opaque_zero_bits: "dlshare_tensor_from_view", "opaque handle with 0 bits" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "0 bits is not valid", "";
    t14_subbyte_copy: "dlshare_tensor_from_dlpack", "float4_e2m1fn, COPY" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "can only be shared", "";
    t15_subbyte_empty: "dlshare_tensor_empty / _zeros", "float4_e2m1fn" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "sub-byte types can only be shared", "";
    t16_target_dtype_unknown: "dlshare_tensor_convert", "target dtype code 42" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 42", "";
    t17_target_dtype_bad_bits: "dlshare_tensor_convert", "target int with 12 bits" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "12 bits is not valid", "";
    t18_complex_to_real: "dlshare_tensor_convert", "complex64 to float32 without allow_complex_to_real" => DLSHARE_ERR_INVALID_ARGUMENT, "discards the imaginary part", OWN;
    t19_cast_uncomputable: "dlshare_tensor_from_dlpack", "float8_e4m3fn cast to float32" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "not a type dlshare converts", OWN;
    t20_typestr_object: "dlshare_dtype_from_typestr", "\"|O8\" (object)" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "has no DLPack equivalent", "";
    t21_typestr_long_double: "dlshare_dtype_from_typestr", "\"<f16\" (long double)" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "has no DLPack equivalent", "";
    t22_typestr_empty: "dlshare_dtype_from_typestr", "\"\"" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "has no DLPack equivalent", "";
    t23_typestr_not_utf8: "dlshare_dtype_from_typestr", "bytes that are not UTF-8" => DLSHARE_ERR_INVALID_ARGUMENT, "not valid UTF-8", "";
    t24_dtype_name_unknown: "dlshare_dtype_from_name", "\"float128\"" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown dtype name 'float128'", "";
    t25_dtype_name_of_invalid_dtype: "dlshare_dtype_name", "dtype code 99" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 99", "";
    t26_dtype_name_buffer_too_small: "dlshare_dtype_name", "len 4 for \"complex128\"" => DLSHARE_ERR_INVALID_ARGUMENT, "cannot hold 'complex128'", "";
    t27_dtype_typestr_float8: "dlshare_dtype_typestr", "float8_e4m3fn" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "float8_e4m3fn has no NumPy typestr", "";
    t28_device_name_buffer_zero: "dlshare_device_name", "len 0" => DLSHARE_ERR_INVALID_ARGUMENT, "a buffer of 0 bytes", "";
    v01_view_unknown_device_type: "dlshare_tensor_from_view", "device type 99" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "unknown DLPack device type 99", OWN;
    v02_view_device_type_zero: "dlshare_tensor_from_view", "device type 0" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "unknown DLPack device type 0", "";
    v03_view_device_type_gap: "dlshare_tensor_from_view", "device type 5 (unassigned)" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "unknown DLPack device type 5", "";
    v04_dlpack_negative_device_id: "dlshare_tensor_from_dlpack", "device id -1" => DLSHARE_ERR_INVALID_ARGUMENT, "device id -1 is negative", OWN;
    v05_empty_on_cuda: "dlshare_tensor_empty / _zeros", "device CUDA:0 (no CUDA in this build)" => DLSHARE_ERR_DEVICE_UNAVAILABLE, "cannot allocate on cuda:0", "tests/handles.rs live_count_returns_to_start_after_mixed_work";
    v06_empty_unknown_device: "dlshare_tensor_empty / _zeros", "device type -3" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "unknown DLPack device type -3", "";
    v07_copy_from_cuda: "dlshare_tensor_from_dlpack", "COPY of CUDA memory (no CUDA)" => DLSHARE_ERR_DEVICE_UNAVAILABLE, "copying from cuda:0", OWN;
    v08_target_device_cuda: "dlshare_tensor_convert", "target device CUDA:0 (no CUDA)" => DLSHARE_ERR_DEVICE_UNAVAILABLE, "copying to cuda:0", OWN;
    v09_target_device_unknown: "dlshare_tensor_convert", "target device type 1000" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "unknown DLPack device type 1000", "";
    v10_share_across_devices: "dlshare_tensor_from_view", "SHARE with target device CUDA:0" => DLSHARE_ERR_INVALID_ARGUMENT, "never crosses devices", "";
    v11_device_name_unknown: "dlshare_device_from_name", "\"tpu:0\"" => DLSHARE_ERR_INVALID_ARGUMENT, "unknown device 'tpu:0'", "";
    v12_device_name_bad_id: "dlshare_device_from_name", "\"cuda:x\"" => DLSHARE_ERR_INVALID_ARGUMENT, "must be a number", "";
    v13_device_name_negative_id: "dlshare_device_from_name", "\"cuda:-1\"" => DLSHARE_ERR_INVALID_ARGUMENT, "device id -1 is negative", "";
    v14_device_name_of_unknown_device: "dlshare_device_name", "device type 6 (unassigned)" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "unknown DLPack device type 6", "";
    r01_major_0: "dlshare_tensor_from_dlpack, dlshare_explain_dlpack", "version 0.0 (pre-1.0 layout; rest garbage)" => DLSHARE_ERR_UNSUPPORTED_VERSION, "major version is 0.0", "tests/ownership.rs other_major_versions_are_refused_without_reading_the_rest";
    r02_major_2: "dlshare_tensor_from_dlpack, dlshare_explain_dlpack", "version 2.0 (rest garbage)" => DLSHARE_ERR_UNSUPPORTED_VERSION, "major version is 2.0", "tests/ownership.rs other_major_versions_are_refused_without_reading_the_rest";
    r03_major_max: "dlshare_tensor_from_dlpack, dlshare_explain_dlpack", "version UINT32_MAX.0" => DLSHARE_ERR_UNSUPPORTED_VERSION, "major version is 4294967295.0", "tests/ownership.rs other_major_versions_are_refused_without_reading_the_rest";
    o01_view_mode_7: "dlshare_tensor_from_view", "options.mode = 7" => DLSHARE_ERR_INVALID_ARGUMENT, "options.mode is 7", "tests/c/test_errors.c bad_values";
    o02_dlpack_mode_negative: "dlshare_tensor_from_dlpack (+ _legacy)", "options.mode = -1 / INT32_MIN" => DLSHARE_ERR_INVALID_ARGUMENT, "options.mode is", OWN;
    o03_convert_mode_3: "dlshare_tensor_convert", "options.mode = 3" => DLSHARE_ERR_INVALID_ARGUMENT, "options.mode is 3", "";
    o04_stream_set: "dlshare_tensor_from_dlpack", "options.stream != NULL on CPU" => DLSHARE_ERR_INVALID_ARGUMENT, "options.stream is set", OWN;
    o05_share_with_dtype_change: "dlshare_tensor_from_view", "SHARE with a target dtype" => DLSHARE_ERR_INVALID_ARGUMENT, "cannot change the dtype", OWN;
    o06_share_read_only_view: "dlshare_tensor_from_view", "SHARE of a READ_ONLY view" => DLSHARE_ERR_CANNOT_SHARE, "read-only", "tests/decision_table.rs";
    o07_share_negative_stride: "dlshare_tensor_from_view", "SHARE with a negative stride" => DLSHARE_ERR_CANNOT_SHARE, "negative stride", "tests/c/test_errors.c bad_values";
    o08_share_stride_not_item_multiple: "dlshare_tensor_from_view", "SHARE, byte stride 6 for float32" => DLSHARE_ERR_CANNOT_SHARE, "not a multiple of the item size", "tests/decision_table.rs";
    o09_share_byte_swapped: "dlshare_tensor_from_view", "SHARE of byte-swapped data" => DLSHARE_ERR_CANNOT_SHARE, "non-native byte order", "tests/decision_table.rs";
    o10_share_misaligned: "dlshare_tensor_from_view", "SHARE of float32 at an odd address" => DLSHARE_ERR_CANNOT_SHARE, "not aligned", OWN;
    o11_share_read_only_dlpack: "dlshare_tensor_from_dlpack", "SHARE of a READ_ONLY versioned tensor" => DLSHARE_ERR_CANNOT_SHARE, "read-only", "tests/dlpack_roundtrip.rs";
    o12_cache_limit_negative: "dlshare_set_cache_limit", "bytes = -2 / INT64_MIN" => DLSHARE_ERR_INVALID_ARGUMENT, "-1 for the default", "";
    f01_view_unknown_flag_bit: "dlshare_tensor_from_view", "view.flags = 4 (undefined bit)" => DLSHARE_ERR_INVALID_ARGUMENT, "unknown bits", "";
    f02_view_high_flag_bit: "dlshare_tensor_from_view", "view.flags = READ_ONLY | 0x80000000" => DLSHARE_ERR_INVALID_ARGUMENT, "0x80000001 has unknown bits", "";
    e01_read_only_to_legacy: "dlshare_tensor_to_dlpack_legacy", "a read-only tensor" => DLSHARE_ERR_READ_ONLY, "cannot be exported as a legacy", "tests/dlpack_roundtrip.rs";
    e02_padded_subbyte_to_legacy: "dlshare_tensor_to_dlpack_legacy", "a padded float4 tensor" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "IS_SUBBYTE_TYPE_PADDED", "";
    k01_columns_null: "dlshare_tensor_from_columns", "columns = NULL, ncolumns 2" => DLSHARE_ERR_NULL_ARGUMENT, "columns is NULL", "";
    k02_columns_null_out: "dlshare_tensor_from_columns", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", "";
    k03_columns_null_options: "dlshare_tensor_from_columns", "options = NULL" => DLSHARE_OK, "float32 output, missing values raise, no normalisation", "tests/columns.rs";
    k04_columns_zero: "dlshare_tensor_from_columns", "ncolumns = 0" => DLSHARE_ERR_INVALID_ARGUMENT, "ncolumns is 0", "";
    k05_column_2d: "dlshare_tensor_from_columns", "a column view with ndim 2" => DLSHARE_ERR_INVALID_ARGUMENT, "a column is 1-D", "";
    k06_column_null_shape: "dlshare_tensor_from_columns", "column view.shape = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "column 0: view.shape is NULL", "";
    k07_column_null_data: "dlshare_tensor_from_columns", "column view.data = NULL with 4 rows" => DLSHARE_ERR_NULL_ARGUMENT, "column 0: data is NULL", "";
    k08_column_kind_invalid: "dlshare_tensor_from_columns", "column kind 9" => DLSHARE_ERR_INVALID_ARGUMENT, "kind is 9", "";
    k09_onehot_negative_categories: "dlshare_tensor_from_columns", "ONEHOT with ncategories -1" => DLSHARE_ERR_INVALID_ARGUMENT, "ncategories is -1", "";
    k10_nan_policy_invalid: "dlshare_tensor_from_columns", "options.nan_policy = 9" => DLSHARE_ERR_INVALID_ARGUMENT, "options.nan_policy is 9", "";
    k11_normalize_invalid: "dlshare_tensor_from_columns", "options.normalize = -2" => DLSHARE_ERR_INVALID_ARGUMENT, "options.normalize is -2", "";
    k12_column_unknown_flags: "dlshare_tensor_from_columns", "column view.flags = 0x10" => DLSHARE_ERR_INVALID_ARGUMENT, "has unknown bits", "";
    k13_column_unknown_dtype: "dlshare_tensor_from_columns", "column dtype code 77" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 77", "";
    k14_column_on_cuda: "dlshare_tensor_from_columns", "a column in CUDA memory" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "columns must be in memory the CPU can read", "";
    k15_columns_of_different_lengths: "dlshare_tensor_from_columns", "columns of 4 and 3 rows" => DLSHARE_ERR_INVALID_ARGUMENT, "all columns must have the same length", "tests/columns.rs";
    k16_columns_complex_output: "dlshare_tensor_from_columns", "output dtype complex64" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "cannot write columns as complex64", "";
    k17_datetime_divisor_zero: "dlshare_tensor_from_columns", "DATETIME column with divisor 0" => DLSHARE_ERR_INVALID_ARGUMENT, "the datetime divisor is 0", "";
    k18_onehot_code_out_of_range: "dlshare_tensor_from_columns", "ONEHOT code 5 with 2 categories" => DLSHARE_ERR_INVALID_ARGUMENT, "codes must be -1 (missing) or 0..2", "";
    k19_onehot_categories_overflow: "dlshare_tensor_from_columns", "two ONEHOT columns of 2^62 categories (before the fix: a panic in debug builds, caught as DLSHARE_ERR_PANIC)" => DLSHARE_ERR_OVERFLOW, "9223372036854775808", "";
    k20_column_wraps: "dlshare_tensor_from_columns", "column byte stride INT64_MIN/4" => DLSHARE_ERR_OVERFLOW, "column 0:", "";
    k21_missing_with_raise: "dlshare_tensor_from_columns", "a NaN with the RAISE policy" => DLSHARE_ERR_INVALID_ARGUMENT, "missing", "tests/columns.rs";
    k22_datetime_of_floats: "dlshare_tensor_from_columns", "DATETIME column of float64" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "a datetime column needs int64 ticks", "";
    #[cfg_attr(miri, ignore = "Miri cannot fail a 2^49-byte allocation gracefully")]
    k23_onehot_huge_categories: "dlshare_tensor_from_columns", "ONEHOT of 2^45 categories x 4 rows (2^49 bytes)" => DLSHARE_ERR_OUT_OF_MEMORY, "bytes", "";
    k24_normalize_to_integers: "dlshare_tensor_from_columns", "MINMAX normalisation to int32" => DLSHARE_ERR_INVALID_ARGUMENT, "use a float dtype", "";
    w01_view_null_handle: "dlshare_tensor_view", "tensor = NULL" => DLSHARE_ERR_INVALID_HANDLE, "handle is NULL", "";
    w02_view_null_out: "dlshare_tensor_view", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", "";
    w03_view_negative_ndim: "dlshare_tensor_view", "ndim = -1" => DLSHARE_ERR_INVALID_ARGUMENT, "ndim is -1", "";
    w04_view_ndim_65: "dlshare_tensor_view", "ndim = 65" => DLSHARE_ERR_INVALID_ARGUMENT, "ndim is 65", "";
    w05_view_null_shape: "dlshare_tensor_view", "shape = NULL with ndim 2" => DLSHARE_ERR_NULL_ARGUMENT, "shape is NULL", "";
    w06_view_null_strides: "dlshare_tensor_view", "strides = NULL" => DLSHARE_OK, "NULL strides mean C-contiguous", "tests/columns.rs";
    w07_view_negative_extent: "dlshare_tensor_view", "shape (-2)" => DLSHARE_ERR_INVALID_ARGUMENT, "is negative", "";
    w08_view_outside_the_tensor: "dlshare_tensor_view", "the whole 4 x 3 shape at offset 1" => DLSHARE_ERR_INVALID_ARGUMENT, "outside the tensor's elements", "tests/columns.rs";
    w09_view_offset_max: "dlshare_tensor_view", "offset INT64_MAX" => DLSHARE_ERR_INVALID_ARGUMENT, "outside the tensor's elements", "";
    w10_view_huge_strides: "dlshare_tensor_view", "strides (INT64_MAX, INT64_MIN)" => DLSHARE_ERR_INVALID_ARGUMENT, "outside the tensor's elements", "";
    w11_view_of_zero_size: "dlshare_tensor_view", "1 element of a (0, 3) tensor" => DLSHARE_ERR_INVALID_ARGUMENT, "has none", "";
    w12_view_strides_overflow_bytes: "dlshare_tensor_convert", "COPY of a view whose element stride INT64_MAX x 8 overflows" => DLSHARE_ERR_OVERFLOW, "overflows a 64-bit integer", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s01_shm_import_null_desc: "dlshare_shm_import", "desc = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "desc is NULL", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s02_shm_import_null_out: "dlshare_shm_import", "tensor_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s03_shm_import_negative_fd: "dlshare_shm_import", "desc.fd = -1" => DLSHARE_ERR_INVALID_ARGUMENT, "is not a file descriptor", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s04_shm_import_closed_fd: "dlshare_shm_import", "desc.fd closed (or never received in this process)" => DLSHARE_ERR_INVALID_ARGUMENT, "cannot be used", "tests/c/test_shm.c, tests/python/test_across_processes.py";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s05_shm_import_pipe: "dlshare_shm_import", "desc.fd is a pipe" => DLSHARE_ERR_INVALID_ARGUMENT, "not a dlshare shared-memory file", "tests/c/test_shm.c";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s06_shm_import_unsealed_memfd: "dlshare_shm_import", "desc.fd is a memory file not sealed against resizing (it could shrink under the mapping: SIGBUS)" => DLSHARE_ERR_INVALID_ARGUMENT, "sealed against shrinking", "tests/python/test_across_processes.py";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s07_shm_import_stale_size: "dlshare_shm_import", "desc.size 4096 more than the file's (stale or forged description)" => DLSHARE_ERR_INVALID_ARGUMENT, "stale or forged", "tests/c/test_shm.c";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s08_shm_import_outside_the_file: "dlshare_shm_import", "shape reaching past the end of the file" => DLSHARE_ERR_INVALID_ARGUMENT, "outside it", "tests/c/test_shm.c";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s09_shm_import_misaligned_offset: "dlshare_shm_import", "float32 at offset 2" => DLSHARE_ERR_INVALID_ARGUMENT, "not aligned", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s10_shm_import_unknown_dtype: "dlshare_shm_import", "dtype code 99" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "unknown DLPack type code 99", "tests/c/test_shm.c";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s11_shm_import_ndim_65: "dlshare_shm_import", "ndim = 65" => DLSHARE_ERR_INVALID_ARGUMENT, "ndim is 65", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s12_shm_import_null_shape: "dlshare_shm_import", "desc.shape = NULL with ndim 2" => DLSHARE_ERR_NULL_ARGUMENT, "desc->shape is NULL", "tests/c/test_shm.c";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s13_shm_import_negative_extent: "dlshare_shm_import", "shape (2, -3)" => DLSHARE_ERR_INVALID_ARGUMENT, "is negative", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s14_shm_import_stride_overflow: "dlshare_shm_import", "strides (INT64_MAX, 1)" => DLSHARE_ERR_OVERFLOW, "overflows a 64-bit integer", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s15_shm_import_offset_past_the_file: "dlshare_shm_import", "desc.offset = UINT64_MAX - 3" => DLSHARE_ERR_INVALID_ARGUMENT, "outside it", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s16_shm_import_read_only: "dlshare_shm_import", "desc.read_only = true" => DLSHARE_OK, "mapped read-only; the tensor is read-only", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s17_shm_export_not_shared: "dlshare_shm_export", "a tensor in private memory" => DLSHARE_ERR_INVALID_ARGUMENT, "not in shared memory", "tests/c/test_shm.c";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s18_shm_export_null_out: "dlshare_shm_export", "desc_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "desc_out is NULL", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s19_empty_shared_negative_ndim: "dlshare_tensor_empty_shared", "ndim = -1" => DLSHARE_ERR_INVALID_ARGUMENT, "ndim is -1", "";
    #[cfg_attr(miri, ignore = "memory files and shared mappings are OS calls Miri does not run")]
    s20_share_memory_null_handle: "dlshare_tensor_share_memory", "tensor = NULL" => DLSHARE_ERR_INVALID_HANDLE, "handle is NULL", "";
    s21_cuda_ipc_import_outside_the_allocation: "dlshare_cuda_ipc_import", "2000 float32 in a 4096-byte allocation (checked before the driver is asked; without CUDA a valid layout gives DLSHARE_ERR_DEVICE_UNAVAILABLE)" => DLSHARE_ERR_INVALID_ARGUMENT, "reaches outside the 4096-byte cuda allocation", "tests/python/test_across_processes.py test_cuda_ipc_without_cuda_answers_device_unavailable";
    s22_cuda_ipc_export_of_a_cpu_tensor: "dlshare_cuda_ipc_export", "a CPU tensor" => DLSHARE_ERR_UNSUPPORTED_DEVICE, "describes cuda device tensors", "";
    c01_deleter_reenters: "dlshare_tensor_release", "the producer's deleter calls info/release/zeros/retain(NULL)" => DLSHARE_OK, "callbacks run outside every lock: re-entry works; deleter once", "tests/ownership.rs a_deleter_may_call_back_into_dlshare";
    c02_release_callback_reenters: "dlshare_tensor_from_view, dlshare_tensor_release", "the view's release callback re-enters (SHARE; COPY runs it inside the call)" => DLSHARE_OK, "release callbacks may call dlshare; released once", "";
    c03_deleter_releases_its_own_handle: "dlshare_tensor_release", "the deleter releases the handle being released" => DLSHARE_OK, "the handle is dead before the deleter runs: the inner release gets DLSHARE_ERR_INVALID_HANDLE", "";
    c04_deleter_of_exported_tensor_after_every_handle: "dlshare_tensor_to_dlpack + import", "every handle released while an export lives, export re-imported" => DLSHARE_OK, "the export keeps the producer alive; producer deleted once", "tests/ownership.rs deleter_runs_once_after_all_handles_and_exports";
    r01_arrow_null_schema: "dlshare_tensor_from_arrow", "schema = NULL (the array is still consumed)" => DLSHARE_ERR_NULL_ARGUMENT, "schema is NULL", "";
    r02_arrow_released_array: "dlshare_tensor_from_arrow", "array.release = NULL (a released array)" => DLSHARE_ERR_INVALID_ARGUMENT, "array.release is NULL", "";
    r03_arrow_null_tensor_out: "dlshare_tensor_from_arrow", "tensor_out = NULL (schema and array still released once)" => DLSHARE_ERR_NULL_ARGUMENT, "tensor_out is NULL", "";
    r04_arrow_wrong_buffer_count: "dlshare_tensor_from_arrow", "int64 column with n_buffers = 1" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'x': array.n_buffers is 1", "";
    r05_arrow_negative_length: "dlshare_tensor_from_arrow", "column length -1" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'x': array.length is -1", "";
    r06_arrow_negative_offset: "dlshare_tensor_from_arrow", "column offset -3" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'x': array.offset is -3", "";
    r07_arrow_offset_overflow: "dlshare_tensor_from_arrow", "column offset INT64_MAX - 1 with 3 rows" => DLSHARE_ERR_OVERFLOW, "column 'x': array.offset", "";
    r08_arrow_null_values_buffer: "dlshare_tensor_from_arrow", "column buffers[1] = NULL with 3 rows" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'x': array.buffers[1] (values) is NULL", "";
    r09_arrow_null_validity_with_nulls: "dlshare_tensor_from_arrow", "validity buffer NULL with null_count 1" => DLSHARE_ERR_INVALID_ARGUMENT, "array.buffers[0] (validity) is NULL", "";
    r10_arrow_null_count_above_length: "dlshare_tensor_from_arrow", "null_count 9 for 3 rows" => DLSHARE_ERR_INVALID_ARGUMENT, "array.null_count is 9", "";
    r11_arrow_unsupported_format: "dlshare_tensor_from_arrow", "a requested binary ('z') column" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "column 'x' cannot be converted: its type Arrow format 'z'", "tests/python/test_arrow.py";
    r12_arrow_null_format: "dlshare_tensor_from_arrow", "a field's schema.format = NULL" => DLSHARE_ERR_INVALID_ARGUMENT, "schema.format is NULL", "";
    r13_arrow_children_mismatch: "dlshare_tensor_from_arrow", "record batch with 0 children for 1 field" => DLSHARE_ERR_INVALID_ARGUMENT, "array.n_children is 0 but the schema has 1 fields", "";
    r14_arrow_child_too_short: "dlshare_tensor_from_arrow", "a column of 2 rows in a batch of 3" => DLSHARE_ERR_INVALID_ARGUMENT, "the record batch reads 3 rows", "";
    r15_arrow_dictionary_missing: "dlshare_tensor_from_arrow", "dictionary-encoded field, array.dictionary = NULL" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'x': array.dictionary is NULL", "";
    r16_arrow_stream_null: "dlshare_tensor_from_arrow_stream", "stream = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "stream is NULL", "";
    r17_arrow_stream_get_next_fails: "dlshare_tensor_from_arrow_stream", "get_next returns EIO after one batch (stream and batch released once)" => DLSHARE_ERR_INVALID_ARGUMENT, "stream.get_next failed with error 5", "tests/arrow.rs";
    r18_arrow_bad_categorical_option: "dlshare_tensor_from_arrow", "options.categorical = 7" => DLSHARE_ERR_INVALID_ARGUMENT, "options.categorical is 7", "";
    r19_arrow_export_bool: "dlshare_tensor_to_arrow", "a bool tensor" => DLSHARE_ERR_UNSUPPORTED_DTYPE, "bit-packed", "tests/python/test_arrow.py";
    r20_arrow_export_null_outputs: "dlshare_tensor_to_arrow", "schema_out = NULL" => DLSHARE_ERR_NULL_ARGUMENT, "schema_out is NULL", "";
    r21_arrow_null_buffers_array: "dlshare_tensor_from_arrow", "column buffers = NULL with n_buffers 2" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'x': array.buffers is NULL", "";
    r22_arrow_unknown_column: "dlshare_tensor_from_arrow", "options.select names a column the table lacks" => DLSHARE_ERR_INVALID_ARGUMENT, "column 'nope' is not in the table", "tests/python/test_arrow.py";
    r23_arrow_batch_with_null_rows: "dlshare_tensor_from_arrow", "a record batch whose struct has null_count 1" => DLSHARE_ERR_INVALID_ARGUMENT, "null rows", "";
    r24_arrow_text_column: "dlshare_tensor_from_arrow", "a requested utf8 column" => DLSHARE_ERR_INVALID_ARGUMENT, "dictionary-encode it first", "tests/python/test_arrow.py";
}

// ---------------------------------------------------------------------------------------------
// Cases that cannot run in-process, and the table.

/// A deleter that panics: Rust aborts the process at the `extern "C"` boundary (the panic
/// cannot unwind into dlshare, let alone into C). Run in a child process.
unsafe extern "C" fn panicking_deleter(_: *mut DLManagedTensorVersioned) {
    panic!("a deleter that panics");
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn x01_panicking_deleter_aborts() {
    if std::env::var_os("DLSHARE_PANIC_CHILD").is_some() {
        let data = [1.0f32; 2];
        let shape = [2i64];
        let mut m = DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 3 },
            manager_ctx: null_mut(),
            deleter: Some(panicking_deleter),
            flags: 0,
            dl_tensor: DLTensor {
                data: data.as_ptr().cast_mut().cast(),
                device: CPU,
                ndim: 1,
                dtype: F32,
                shape: shape.as_ptr().cast_mut(),
                strides: null_mut(),
                byte_offset: 0,
            },
        };
        let (s, h, _) = import_versioned(&mut m, &opts(SHARE));
        ok(s);
        dlshare_tensor_release(h);
        unreachable!("the release returned after the deleter panicked");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "x01_panicking_deleter_aborts", "--nocapture"])
        .env("DLSHARE_PANIC_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "not SIGABRT: {stderr}");
    assert!(stderr.contains("a deleter that panics"), "{stderr}");
}

/// Rows for cases tested elsewhere (they need a process of their own or the crate's internals).
const ELSEWHERE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "x01_panicking_deleter_aborts",
        "dlshare_tensor_release",
        "a Rust `extern \"C\"` deleter that panics",
        "process abort (SIGABRT)",
        "Rust aborts at the callback's own `extern \"C\"` boundary; the panic never unwinds into dlshare or C (tested in a child process)",
    ),
    (
        "src/ffi/mod.rs tests::a_panic_inside_dlshare_becomes_a_status",
        "every entry point (`ffi::boundary`)",
        "a panic inside dlshare (no input reaches one; the test injects it)",
        "DLSHARE_ERR_PANIC",
        "\"internal error (panic) in dlshare: <payload>\"; locks stay usable, a reserved handle slot is returned",
    ),
    (
        "tests/python/test_across_processes.py test_forged_or_truncated_payloads_are_refused",
        "`pickle.loads` of a `dlshare.Tensor` (Python)",
        "forged or truncated protocol-5 payloads: a buffer shorter than the layout, shape/strides/offset reaching outside it, fewer strides than dimensions, negative extents, non-integers, 65 dimensions, a bad dtype, a truncated stream",
        "InvalidArgumentError (UnsupportedDtypeError for the dtype; pickle's own error for a cut stream)",
        "\"a truncated or forged payload\": the layout is checked against the buffer before any tensor is made",
    ),
    (
        "tests/python/test_across_processes.py test_stale_or_forged_descriptions_are_refused, test_a_child_may_exit_right_after_sending",
        "multiprocessing hand-off of a shared tensor (Python)",
        "a closed fd, a pipe, a regular file, an unsealed memfd, a wrong size, a misaligned offset; a hand-off received twice or whose sender is gone",
        "InvalidArgumentError",
        "the library's refusal (rows s03..s15), or \"the shared tensor's sender is gone or the tensor was received already\"",
    ),
];

fn table() -> String {
    let mut out = String::from(
        "| # | Function | Malformed input | Status | The message names / policy | Test | Also covered by |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let cell = |s: &str| s.replace('|', "\\|");
    for (i, row) in CATALOGUE.iter().enumerate() {
        let says = if row.status == DLSHARE_OK {
            format!("accepted: {}", row.says)
        } else {
            format!("\"{}\"", row.says)
        };
        out += &format!(
            "| {} | `{}` | {} | `{}` | {} | `malformed::catalogue::{}` | {} |\n",
            i + 1,
            row.function,
            cell(row.input),
            status_name(row.status),
            cell(&says),
            row.test,
            cell(row.also)
        );
    }
    for (j, (test, function, input, status, says)) in ELSEWHERE.iter().enumerate() {
        let test = if test.contains(' ') {
            test.to_string()
        } else {
            format!("malformed::{test}")
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | `{}` | |\n",
            CATALOGUE.len() + j + 1,
            function,
            cell(input),
            status,
            cell(says),
            test
        );
    }
    out
}

const START: &str = "<!-- catalogue:start (generated by tests/malformed.rs) -->\n";
const END: &str = "<!-- catalogue:end -->";

#[test]
#[cfg_attr(
    miri,
    ignore = "reads docs/hardening.md; Miri isolates the file system"
)]
fn catalogue_table_is_current() {
    let _g = lock();
    assert!(CATALOGUE.len() >= 60, "the catalogue needs 60 cases");
    let mut names: Vec<_> = CATALOGUE.iter().map(|r| r.test).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CATALOGUE.len(), "duplicate test names");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/hardening.md");
    let doc = std::fs::read_to_string(path).expect("docs/hardening.md");
    let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
        panic!("docs/hardening.md lacks the catalogue markers");
    };
    let current = &doc[a + START.len()..b];
    let wanted = table();
    if current != wanted {
        if std::env::var_os("DLSHARE_UPDATE_DOCS").is_some() {
            let updated = format!("{}{wanted}{}", &doc[..a + START.len()], &doc[b..]);
            std::fs::write(path, updated).unwrap();
        } else {
            panic!(
                "the catalogue table in docs/hardening.md is stale; regenerate it with \
                 DLSHARE_UPDATE_DOCS=1 cargo test --test malformed catalogue_table_is_current"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ownership proofs beyond tests/ownership.rs: release callbacks of views, legacy producers and
// strided views, each counted exactly once however many handles and exports share them.

/// Everything that can share one producer: retains, shared conversions, strided views,
/// versioned and legacy exports (one of them re-imported). Released in a scrambled order; the
/// producer goes exactly when the last of them does.
fn many_sharers(make: &dyn Fn() -> *mut dlshare_tensor, count: &dyn Fn() -> usize) {
    let h = make();
    let mut handles = vec![h];
    for _ in 0..3 {
        ok(dlshare_tensor_retain(h));
        handles.push(h);
    }
    for _ in 0..3 {
        let mut o = opts(SHARE_OR_COPY);
        o.allow_read_only = true;
        let (s, c, d) = convert(h, &o);
        ok(s);
        assert!(d.shared);
        handles.push(c);
    }
    let mut v = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_view(h, 1, [1i64].as_ptr(), null(), 1, &mut v) });
    handles.push(v);
    let mut exports: Vec<*mut DLManagedTensorVersioned> = Vec::new();
    for _ in 0..2 {
        let mut e = null_mut();
        // SAFETY: writable output.
        ok(unsafe { dlshare_tensor_to_dlpack(h, &mut e) });
        exports.push(e);
    }
    let mut o = opts(SHARE);
    o.allow_read_only = true;
    let (s, back, _) = import_versioned(exports.pop().unwrap(), &o);
    ok(s);
    handles.push(back);
    // Release in an order that is neither creation order nor its reverse.
    let n = handles.len();
    for i in 0..n {
        assert_eq!(count(), 0, "released with owners left");
        release(handles[(i * 5) % n]);
    }
    assert_eq!(count(), 0, "released while an export lives");
    call_deleter_versioned(exports.pop().unwrap());
    assert_eq!(
        count(),
        1,
        "not released exactly once after the last sharer"
    );
}

#[test]
fn p01_view_release_runs_once_after_every_sharer() {
    let _g = lock_exclusive();
    let start = live();
    let (buf, shape) = matrix();
    let released = Arc::new(AtomicUsize::new(0));
    for flags in [0, DLSHARE_VIEW_READ_ONLY] {
        released.store(0, Ordering::SeqCst);
        let make = || {
            let v = view(buf.ptr(), F32, &shape, None, flags, &released);
            let mut o = opts(SHARE);
            o.allow_read_only = true;
            let (s, h, _) = from_view(&v, &o);
            ok(s);
            h
        };
        many_sharers(&make, &|| count(&released));
    }
    assert_eq!(live(), start);
}

#[test]
fn p02_legacy_deleter_runs_once_after_every_sharer() {
    let _g = lock_exclusive();
    let start = live();
    let deleted = RefCell::new(None);
    let make = || {
        let p = produce_legacy(&f32_spec(&[2, 3]));
        *deleted.borrow_mut() = Some(p.deleted.clone());
        let (s, h, _) = import_legacy(p.managed, &opts(SHARE));
        ok(s);
        h
    };
    many_sharers(&make, &|| {
        deleted
            .borrow()
            .as_ref()
            .map_or(0, |d| d.load(Ordering::SeqCst))
    });
    assert_eq!(live(), start);
}

#[test]
fn p03_copies_release_before_returning_and_never_again() {
    let _g = lock_exclusive();
    let start = live();
    let (buf, shape) = matrix();
    let released = AtomicUsize::new(0);
    let v = view(buf.ptr(), F32, &shape, None, 0, &released);
    let mut handles = Vec::new();
    for (i, o) in [opts(COPY), opts_dtype(SHARE_OR_COPY, F64)]
        .iter()
        .enumerate()
    {
        let (s, h, d) = from_view(&v, o);
        ok(s);
        assert!(!d.shared);
        assert_eq!(count(&released), i + 1, "a copy holds on to the view");
        handles.push(h);
    }
    for h in handles {
        release(h);
    }
    assert_eq!(count(&released), 2);
    assert_eq!(live(), start);
}

#[test]
fn p04_columns_never_call_release_and_keep_nothing() {
    let _g = lock_exclusive();
    let start = live();
    let buf = column_values();
    let released = AtomicUsize::new(0);
    let col = dlshare_column_init(
        DLSHARE_COLUMN_VALUE as i32,
        view(buf.ptr(), F64, &FOUR, None, 0, &released),
    );
    let mut h = SENTINEL;
    // SAFETY: one valid column.
    ok(unsafe { dlshare_tensor_from_columns(&col, 1, null(), &mut h) });
    drop(buf);
    assert_eq!(from_bytes::<f32>(&contents(h)), [1.0, 2.0, 3.0, 4.0]);
    release(h);
    assert_eq!(count(&released), 0);
    assert_eq!(live(), start);
}
