//! Fuzzes the Arrow C Data Interface import (issue #14) through the C API: a record batch (or a
//! plain array) of fuzzed formats (valid, unsupported and garbage), lengths, offsets, null
//! counts, buffer and child counts, NULL buffers, dictionaries and options. Checks: the call
//! never crashes; a failure has a message and leaves the outputs untouched; the schema and the
//! array are consumed (release set to NULL) whenever they were live, and each release callback
//! runs exactly once, by the time the result is released; the live tensor count returns to
//! where it started.
//!
//! The C Data Interface carries no buffer sizes, so every buffer points into one fuzz buffer
//! large enough for any in-range description: non-negative lengths and offsets stay small, and
//! the extreme values generated (negative, or overflowing with the length) are ones dlshare
//! must refuse before reading.

#![no_main]

#[path = "common.rs"]
mod common;

use std::ffi::{CString, c_char, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dlshare::arrow::abi::{ArrowArray, ArrowSchema};
use dlshare::ffi::arrow::*;
use dlshare::ffi::convert::dlshare_decision;
use dlshare::ffi::dlshare_status::*;
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::tensor::dlshare_tensor_release;
use dlshare::ffi::version::{dlshare_last_error_message, dlshare_live_tensor_count};
use libfuzzer_sys::fuzz_target;

static SCHEMAS: AtomicUsize = AtomicUsize::new(0);
static ARRAYS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn release_schema(s: *mut ArrowSchema) {
    SCHEMAS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a live schema made below.
    unsafe { (*s).release = None };
}

unsafe extern "C" fn release_array(a: *mut ArrowArray) {
    ARRAYS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a live array made below.
    unsafe { (*a).release = None };
}

/// Children's callbacks: the parent's release covers them (they are never called by dlshare).
unsafe extern "C" fn release_child_schema(s: *mut ArrowSchema) {
    // SAFETY: as above.
    unsafe { (*s).release = None };
}
unsafe extern "C" fn release_child_array(a: *mut ArrowArray) {
    // SAFETY: as above.
    unsafe { (*a).release = None };
}

const FORMATS: [&str; 26] = [
    "l", "i", "s", "c", "L", "I", "S", "C", "g", "f", "e", "b", "tdD", "tdm", "tss:", "tsn:UTC",
    "tDu", "d:10,2", "z", "+l", "u", "n", "", "ts", "tsq:", "d:x",
];
const DICT_INDEX: [&str; 4] = ["c", "s", "i", "l"];
const DICT_VALUES: [&str; 4] = ["l", "g", "i", "f"];

/// A length: small, sometimes negative (never huge: a huge length passes the checks for bit-
/// packed bools, and reading it would overrun the fuzz buffer, the caller's bug).
fn length(b: &mut Bytes, small: i64) -> i64 {
    match b.u8() {
        0..=239 => i64::from(b.u8()) % (small + 1),
        240..=251 => -i64::from(b.u8() % 3) - 1,
        _ => i64::MIN,
    }
}

/// An offset: small, sometimes negative, sometimes INT64_MAX (which overflows with any
/// non-zero length, and reads nothing with a zero one).
fn offset(b: &mut Bytes, small: i64) -> i64 {
    match b.u8() {
        0..=239 => i64::from(b.u8()) % (small + 1),
        240..=247 => -i64::from(b.u8() % 3) - 1,
        248..=251 => i64::MIN,
        _ => i64::MAX,
    }
}

/// Storage for one array's struct and pointer lists (kept alive for the call).
struct Made {
    buffers: Vec<*const c_void>,
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let buf = Buffer::new(8192);
    let data = buf.ptr.cast_const().cast::<c_void>();
    let start_live = dlshare_live_tensor_count();
    SCHEMAS.store(0, Ordering::SeqCst);
    ARRAYS.store(0, Ordering::SeqCst);

    let table = b.u8() % 4 != 0;
    let ncols = if table { usize::from(b.u8() % 3) + 1 } else { 1 };
    let rows = length(&mut b, 128);

    // Schemas: children (and dictionaries) first.
    let mut names = Vec::new();
    let mut formats = Vec::new();
    let mut dict_schemas: Vec<Box<ArrowSchema>> = Vec::new();
    let mut child_schemas: Vec<Box<ArrowSchema>> = Vec::new();
    let mut dict_flags = Vec::new();
    for i in 0..ncols {
        let dict = b.u8() % 6 == 0;
        let format = if dict {
            DICT_INDEX[usize::from(b.u8() % 4)]
        } else {
            FORMATS[usize::from(b.u8()) % FORMATS.len()]
        };
        formats.push(CString::new(format).unwrap());
        names.push(CString::new(format!("c{i}")).unwrap());
        let dictionary = if dict {
            let vf = CString::new(DICT_VALUES[usize::from(b.u8() % 4)]).unwrap();
            let s = Box::new(ArrowSchema {
                format: vf.as_ptr(),
                release: Some(release_child_schema),
                ..ArrowSchema::released()
            });
            formats.push(vf);
            dict_schemas.push(s);
            &mut **dict_schemas.last_mut().unwrap() as *mut ArrowSchema
        } else {
            null_mut()
        };
        dict_flags.push(dict);
        let null_format = b.u8() == 255;
        child_schemas.push(Box::new(ArrowSchema {
            format: if null_format { std::ptr::null() } else { formats[formats.len() - 1 - usize::from(dict)].as_ptr() },
            name: names[i].as_ptr(),
            flags: 2,
            dictionary,
            release: Some(release_child_schema),
            ..ArrowSchema::released()
        }));
    }
    let mut child_schema_ptrs: Vec<*mut ArrowSchema> =
        child_schemas.iter_mut().map(|s| &mut **s as *mut ArrowSchema).collect();
    let struct_format = CString::new("+s").unwrap();
    let mut schema = if table {
        ArrowSchema {
            format: struct_format.as_ptr(),
            n_children: if b.u8() == 255 { -1 } else { ncols as i64 },
            children: child_schema_ptrs.as_mut_ptr(),
            release: Some(release_schema),
            ..ArrowSchema::released()
        }
    } else {
        let mut s = std::mem::replace(&mut *child_schemas[0], ArrowSchema::released());
        s.release = Some(release_schema);
        s
    };

    // Arrays.
    let mut made: Vec<Made> = Vec::new();
    let mut dict_arrays: Vec<Box<ArrowArray>> = Vec::new();
    let mut child_arrays: Vec<Box<ArrowArray>> = Vec::new();
    for &dict in dict_flags.iter() {
        let dictionary = if dict {
            made.push(Made { buffers: vec![std::ptr::null(), data] });
            let m = made.last_mut().unwrap();
            dict_arrays.push(Box::new(ArrowArray {
                length: i64::from(b.u8() % 8),
                n_buffers: 2,
                buffers: m.buffers.as_mut_ptr(),
                release: Some(release_child_array),
                ..ArrowArray::released()
            }));
            &mut **dict_arrays.last_mut().unwrap() as *mut ArrowArray
        } else {
            null_mut()
        };
        let n_buffers = match b.u8() {
            0..=229 => 2,
            230..=239 => 3,
            240..=247 => 1,
            _ => i64::from(b.u8() % 6) - 1,
        };
        let nb = usize::try_from(n_buffers).unwrap_or(0);
        let mut buffers = vec![data; nb.max(3)];
        if b.u8() < 200 {
            buffers[0] = std::ptr::null(); // no validity bitmap
        }
        if b.u8() == 255 {
            buffers[1] = std::ptr::null();
        }
        made.push(Made { buffers });
        let m = made.last_mut().unwrap();
        let null_buffers = b.u8() == 254;
        child_arrays.push(Box::new(ArrowArray {
            length: if table && b.u8() < 240 { rows.max(0) + 64 } else { length(&mut b, 128) },
            null_count: match b.u8() {
                0..=199 => 0,
                200..=239 => -1,
                _ => i64::from(b.u8() % 20) - 1,
            },
            offset: offset(&mut b, 64),
            n_buffers,
            n_children: 0,
            buffers: if null_buffers { null_mut() } else { m.buffers.as_mut_ptr() },
            dictionary: if b.u8() == 255 { null_mut() } else { dictionary },
            release: Some(release_child_array),
            ..ArrowArray::released()
        }));
    }
    let mut child_array_ptrs: Vec<*mut ArrowArray> =
        child_arrays.iter_mut().map(|a| &mut **a as *mut ArrowArray).collect();
    let mut top_buffers = vec![std::ptr::null::<c_void>()];
    let mut array = if table {
        ArrowArray {
            length: rows,
            null_count: 0,
            offset: offset(&mut b, 64),
            n_buffers: 1,
            n_children: if b.u8() == 255 { 0 } else { ncols as i64 },
            buffers: top_buffers.as_mut_ptr(),
            children: child_array_ptrs.as_mut_ptr(),
            release: Some(release_array),
            ..ArrowArray::released()
        }
    } else {
        let mut a = std::mem::replace(&mut *child_arrays[0], ArrowArray::released());
        a.release = Some(release_array);
        a
    };

    // Options.
    let mut o = dlshare_arrow_options_init(i32::from(b.u8() % 8), i32::from(b.u8() % 4));
    o.columns.dtype = b.dtype();
    o.columns.fill_value = f64::from(b.u8());
    o.categorical = i32::from(b.u8() % 4);
    o.datetime = i32::from(b.u8() % 4);
    o.keep_dtype = b.bool();
    let select_name = CString::new(format!("c{}", b.u8() % 4)).unwrap();
    let select = [select_name.as_ptr()];
    if b.u8() < 64 {
        o.select = select.as_ptr();
        o.nselect = 1;
    }

    let mut h: *mut dlshare_tensor = 0x5E47_1E10usize as *mut dlshare_tensor;
    let mut d: dlshare_decision = unsafe { std::mem::zeroed() };
    d.detail[0] = 77;
    let mut n: *mut c_char = null_mut();
    // SAFETY: the structs are valid C Data Interface structs (with fuzzed fields) whose buffers
    // cover every in-range description; the outputs are writable.
    let s = unsafe { dlshare_tensor_from_arrow(&mut schema, &mut array, &o, &mut h, &mut d, &mut n) };
    assert!(schema.release.is_none() && array.release.is_none(), "not consumed");
    if s == DLSHARE_OK {
        assert!(!n.is_null());
        // SAFETY: a string from dlshare, freed once.
        unsafe { dlshare_string_free(n) };
        assert_eq!(SCHEMAS.load(Ordering::SeqCst), 1);
        assert_eq!(dlshare_tensor_release(h), DLSHARE_OK);
    } else {
        assert_eq!(h as usize, 0x5E47_1E10, "output written on failure");
        assert_eq!(d.detail[0], 77, "decision written on failure");
        assert!(n.is_null());
        // SAFETY: the library's NUL-terminated thread-local message.
        let msg = unsafe { std::ffi::CStr::from_ptr(dlshare_last_error_message()) };
        assert!(!msg.is_empty(), "an error without a message");
    }
    assert_eq!(SCHEMAS.load(Ordering::SeqCst), 1, "schema released {} times", SCHEMAS.load(Ordering::SeqCst));
    assert_eq!(ARRAYS.load(Ordering::SeqCst), 1, "array released {} times", ARRAYS.load(Ordering::SeqCst));
    assert_eq!(dlshare_live_tensor_count(), start_live);
    drop((made, dict_arrays, child_arrays, dict_schemas, child_schemas, formats, names));
});
