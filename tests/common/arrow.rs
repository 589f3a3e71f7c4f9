//! Arrow C Data Interface producers for the tests (issue #14): schemas, arrays and streams built
//! from Rust values, whose release callbacks are counted. A struct's private data owns all its
//! memory (buffers, children, dictionary), so a test may corrupt the struct's public fields to
//! make it malformed and the release still frees exactly what was made.

use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use dlshare::arrow::abi::{ArrowArray, ArrowArrayStream, ArrowSchema};

/// A schema to build: format, name, children, dictionary.
#[derive(Clone)]
pub struct SchemaSpec {
    pub format: String,
    pub name: String,
    pub flags: i64,
    pub children: Vec<SchemaSpec>,
    pub dictionary: Option<Box<SchemaSpec>>,
}

pub fn field(name: &str, format: &str) -> SchemaSpec {
    SchemaSpec {
        format: format.into(),
        name: name.into(),
        flags: 2,
        children: Vec::new(),
        dictionary: None,
    }
}

pub fn table_schema(fields: Vec<SchemaSpec>) -> SchemaSpec {
    SchemaSpec {
        format: "+s".into(),
        name: String::new(),
        flags: 0,
        children: fields,
        dictionary: None,
    }
}

/// An array to build. `buffers[i] == None` gives a NULL buffer pointer.
#[derive(Clone, Default)]
pub struct ArraySpec {
    pub length: i64,
    pub null_count: i64,
    pub offset: i64,
    pub buffers: Vec<Option<Vec<u8>>>,
    pub children: Vec<ArraySpec>,
    pub dictionary: Option<Box<ArraySpec>>,
}

/// A primitive array of `values` (native bytes), with an optional validity bitmap
/// (`valid[i] == false` is a null).
pub fn primitive<T: Copy>(values: &[T], valid: Option<&[bool]>) -> ArraySpec {
    let bytes = values
        .iter()
        .flat_map(|v| {
            // SAFETY: T is a plain number type in these tests.
            unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
                .to_vec()
        })
        .collect();
    let (validity, nulls) = match valid {
        Some(v) => (Some(bitmap(v)), v.iter().filter(|&&b| !b).count() as i64),
        None => (None, 0),
    };
    ArraySpec {
        length: values.len() as i64,
        null_count: nulls,
        offset: 0,
        buffers: vec![validity, Some(bytes)],
        children: Vec::new(),
        dictionary: None,
    }
}

/// LSB-first bitmap of `bits`.
pub fn bitmap(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8).max(1)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// A struct array (record batch) of `columns`, all of `length` rows.
pub fn batch(length: i64, columns: Vec<ArraySpec>) -> ArraySpec {
    ArraySpec {
        length,
        null_count: 0,
        offset: 0,
        buffers: vec![None],
        children: columns,
        dictionary: None,
    }
}

/// A utf8 array of `labels` (for dictionaries).
pub fn utf8(labels: &[&str]) -> ArraySpec {
    let mut offsets = vec![0i32];
    let mut data = Vec::new();
    for l in labels {
        data.extend_from_slice(l.as_bytes());
        offsets.push(data.len() as i32);
    }
    let offsets = offsets.iter().flat_map(|o| o.to_ne_bytes()).collect();
    ArraySpec {
        length: labels.len() as i64,
        null_count: 0,
        offset: 0,
        buffers: vec![None, Some(offsets), Some(data)],
        children: Vec::new(),
        dictionary: None,
    }
}

struct SchemaPrivate {
    _strings: Vec<CString>,
    children: Vec<*mut ArrowSchema>,
    dictionary: *mut ArrowSchema,
    released: Option<Arc<AtomicUsize>>,
}

unsafe extern "C" fn release_schema(s: *mut ArrowSchema) {
    // SAFETY: a schema made by `schema()`; released at most once (release cleared below).
    unsafe {
        let p = Box::from_raw((*s).private_data.cast::<SchemaPrivate>());
        for &c in &p.children {
            if let Some(r) = (*c).release {
                r(c);
            }
            drop(Box::from_raw(c));
        }
        if !p.dictionary.is_null() {
            if let Some(r) = (*p.dictionary).release {
                r(p.dictionary);
            }
            drop(Box::from_raw(p.dictionary));
        }
        if let Some(c) = &p.released {
            c.fetch_add(1, Ordering::SeqCst);
        }
        (*s).release = None;
    }
}

fn schema_inner(spec: &SchemaSpec, counter: Option<Arc<AtomicUsize>>) -> ArrowSchema {
    let format = CString::new(spec.format.clone()).unwrap();
    let name = CString::new(spec.name.clone()).unwrap();
    let children: Vec<*mut ArrowSchema> = spec
        .children
        .iter()
        .map(|c| Box::into_raw(Box::new(schema_inner(c, None))))
        .collect();
    let dictionary = spec.dictionary.as_ref().map_or(std::ptr::null_mut(), |d| {
        Box::into_raw(Box::new(schema_inner(d, None)))
    });
    let mut p = Box::new(SchemaPrivate {
        _strings: vec![format, name],
        children,
        dictionary,
        released: counter,
    });
    ArrowSchema {
        format: p._strings[0].as_ptr(),
        name: p._strings[1].as_ptr(),
        metadata: std::ptr::null(),
        flags: spec.flags,
        n_children: p.children.len() as i64,
        children: p.children.as_mut_ptr(),
        dictionary,
        release: Some(release_schema),
        private_data: Box::into_raw(p).cast(),
    }
}

/// A schema whose (top-level) release increments `counter`.
pub fn schema(spec: &SchemaSpec, counter: &Arc<AtomicUsize>) -> ArrowSchema {
    schema_inner(spec, Some(counter.clone()))
}

struct ArrayPrivate {
    _data: Vec<Option<Vec<u8>>>,
    buffers: Vec<*const c_void>,
    children: Vec<*mut ArrowArray>,
    dictionary: *mut ArrowArray,
    released: Option<Arc<AtomicUsize>>,
}

unsafe extern "C" fn release_array(a: *mut ArrowArray) {
    // SAFETY: an array made by `array()`; released at most once (release cleared below).
    unsafe {
        let p = Box::from_raw((*a).private_data.cast::<ArrayPrivate>());
        for &c in &p.children {
            if let Some(r) = (*c).release {
                r(c);
            }
            drop(Box::from_raw(c));
        }
        if !p.dictionary.is_null() {
            if let Some(r) = (*p.dictionary).release {
                r(p.dictionary);
            }
            drop(Box::from_raw(p.dictionary));
        }
        if let Some(c) = &p.released {
            c.fetch_add(1, Ordering::SeqCst);
        }
        (*a).release = None;
    }
}

fn array_inner(spec: &ArraySpec, counter: Option<Arc<AtomicUsize>>) -> ArrowArray {
    let data = spec.buffers.clone();
    let buffers: Vec<*const c_void> = data
        .iter()
        .map(|b| b.as_ref().map_or(std::ptr::null(), |v| v.as_ptr().cast()))
        .collect();
    let children: Vec<*mut ArrowArray> = spec
        .children
        .iter()
        .map(|c| Box::into_raw(Box::new(array_inner(c, None))))
        .collect();
    let dictionary = spec.dictionary.as_ref().map_or(std::ptr::null_mut(), |d| {
        Box::into_raw(Box::new(array_inner(d, None)))
    });
    let mut p = Box::new(ArrayPrivate {
        _data: data,
        buffers,
        children,
        dictionary,
        released: counter,
    });
    ArrowArray {
        length: spec.length,
        null_count: spec.null_count,
        offset: spec.offset,
        n_buffers: p.buffers.len() as i64,
        n_children: p.children.len() as i64,
        buffers: p.buffers.as_mut_ptr(),
        children: p.children.as_mut_ptr(),
        dictionary,
        release: Some(release_array),
        private_data: Box::into_raw(p).cast(),
    }
}

/// An array whose (top-level) release increments `counter`.
pub fn array(spec: &ArraySpec, counter: &Arc<AtomicUsize>) -> ArrowArray {
    array_inner(spec, Some(counter.clone()))
}

/// The child `i` of a made array (to corrupt it).
///
/// # Safety
/// `a` was made by `array()` with at least `i + 1` children.
pub unsafe fn child(a: &mut ArrowArray, i: usize) -> &mut ArrowArray {
    // SAFETY: caller contract.
    unsafe { &mut **a.children.add(i) }
}

struct StreamPrivate {
    schema: SchemaSpec,
    batches: std::collections::VecDeque<ArraySpec>,
    /// Fail get_next with this errno after the batches (0: end of stream).
    fail_with: c_int,
    message: CString,
    released: Arc<AtomicUsize>,
    arrays_released: Arc<AtomicUsize>,
}

unsafe extern "C" fn stream_schema(s: *mut ArrowArrayStream, out: *mut ArrowSchema) -> c_int {
    // SAFETY: a stream made by `stream()`, live.
    unsafe {
        let p = &*(*s).private_data.cast::<StreamPrivate>();
        out.write(schema_inner(&p.schema, None));
    }
    0
}

unsafe extern "C" fn stream_next(s: *mut ArrowArrayStream, out: *mut ArrowArray) -> c_int {
    // SAFETY: as above.
    unsafe {
        let p = &mut *(*s).private_data.cast::<StreamPrivate>();
        match p.batches.pop_front() {
            Some(b) => out.write(array_inner(&b, Some(p.arrays_released.clone()))),
            None if p.fail_with != 0 => return p.fail_with,
            None => out.write(ArrowArray::released()),
        }
    }
    0
}

unsafe extern "C" fn stream_error(s: *mut ArrowArrayStream) -> *const c_char {
    // SAFETY: as above.
    unsafe {
        (*(*s).private_data.cast::<StreamPrivate>())
            .message
            .as_ptr()
    }
}

unsafe extern "C" fn stream_release(s: *mut ArrowArrayStream) {
    // SAFETY: as above; released once (release cleared below).
    unsafe {
        let p = Box::from_raw((*s).private_data.cast::<StreamPrivate>());
        p.released.fetch_add(1, Ordering::SeqCst);
        (*s).release = None;
    }
}

/// A stream of `batches` of `schema`; `fail_with` != 0 makes get_next fail after them.
/// Counters: the stream's release, and the releases of the arrays it produced.
pub fn stream(
    schema: &SchemaSpec,
    batches: Vec<ArraySpec>,
    fail_with: c_int,
    released: &Arc<AtomicUsize>,
    arrays_released: &Arc<AtomicUsize>,
) -> ArrowArrayStream {
    let p = Box::new(StreamPrivate {
        schema: schema.clone(),
        batches: batches.into(),
        fail_with,
        message: CString::new("the producer ran out of disk").unwrap(),
        released: released.clone(),
        arrays_released: arrays_released.clone(),
    });
    ArrowArrayStream {
        get_schema: Some(stream_schema),
        get_next: Some(stream_next),
        get_last_error: Some(stream_error),
        release: Some(stream_release),
        private_data: Box::into_raw(p).cast(),
    }
}
