//! Shared helpers for the integration tests: dtype/device constants, status checks, a
//! 256-byte-aligned test buffer, DLPack "producers" whose deleters are counted, raw views whose
//! release callbacks are counted, and readers for what a tensor handle describes.
//!
//! Every test takes `lock()` (or `lock_exclusive()` when it asserts on the process-wide
//! `dlshare_live_tensor_count()`), so that count is never moved by a test running in parallel.

#![allow(dead_code, unused_imports)]

pub mod arrow;

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use dlshare::dlpack::{
    DLDataType, DLDevice, DLManagedTensor, DLManagedTensorVersioned, DLPackVersion, DLTensor,
    FLAG_IS_COPIED, FLAG_READ_ONLY,
};
pub use dlshare::ffi::convert::{
    DLSHARE_VIEW_BYTE_SWAPPED, DLSHARE_VIEW_READ_ONLY, dlshare_decision, dlshare_explain_tensor,
    dlshare_explain_view, dlshare_mode, dlshare_options, dlshare_options_init,
    dlshare_tensor_convert, dlshare_tensor_from_view, dlshare_view,
};
pub use dlshare::ffi::dlpack::{
    dlshare_explain_dlpack, dlshare_explain_dlpack_legacy, dlshare_tensor_from_dlpack,
    dlshare_tensor_from_dlpack_legacy, dlshare_tensor_to_dlpack, dlshare_tensor_to_dlpack_copy,
    dlshare_tensor_to_dlpack_legacy,
};
pub use dlshare::ffi::handles::dlshare_tensor;
pub use dlshare::ffi::tensor::*;
pub use dlshare::ffi::version::*;
pub use dlshare::ffi::{dlshare_reason, dlshare_status};

pub use dlshare::ffi::convert::dlshare_mode::{
    DLSHARE_MODE_COPY as COPY, DLSHARE_MODE_SHARE as SHARE,
    DLSHARE_MODE_SHARE_OR_COPY as SHARE_OR_COPY,
};
pub use dlshare::ffi::dlshare_reason::*;
pub use dlshare::ffi::dlshare_status::*;

// ---------------------------------------------------------------------------------------------
// Serialisation of tests that assert on the global live-tensor count.

static COUNT_LOCK: RwLock<()> = RwLock::new(());

/// Taken by every test that creates tensors: may run alongside other `lock()` holders.
pub fn lock() -> RwLockReadGuard<'static, ()> {
    COUNT_LOCK.read().unwrap_or_else(|p| p.into_inner())
}

/// Taken by tests that assert on `dlshare_live_tensor_count()`: runs alone.
pub fn lock_exclusive() -> RwLockWriteGuard<'static, ()> {
    COUNT_LOCK.write().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// dtypes and devices

pub const fn dt(code: u8, bits: u8) -> DLDataType {
    DLDataType {
        code,
        bits,
        lanes: 1,
    }
}

pub const BOOL: DLDataType = dt(6, 8);
pub const I8: DLDataType = dt(0, 8);
pub const I16: DLDataType = dt(0, 16);
pub const I32: DLDataType = dt(0, 32);
pub const I64: DLDataType = dt(0, 64);
pub const U8: DLDataType = dt(1, 8);
pub const U16: DLDataType = dt(1, 16);
pub const U32: DLDataType = dt(1, 32);
pub const U64: DLDataType = dt(1, 64);
pub const F16: DLDataType = dt(2, 16);
pub const BF16: DLDataType = dt(4, 16);
pub const F32: DLDataType = dt(2, 32);
pub const F64: DLDataType = dt(2, 64);
pub const C64: DLDataType = dt(5, 64);
pub const C128: DLDataType = dt(5, 128);
/// kDLFloat8_e4m3fn.
pub const F8E4M3FN: DLDataType = dt(10, 8);
/// kDLOpaqueHandle, pointer-sized.
pub const OPAQUE64: DLDataType = dt(3, 64);

/// Every dtype the round-trip tests carry, with a name for messages.
pub const ALL_DTYPES: [(&str, DLDataType); 17] = [
    ("bool", BOOL),
    ("int8", I8),
    ("int16", I16),
    ("int32", I32),
    ("int64", I64),
    ("uint8", U8),
    ("uint16", U16),
    ("uint32", U32),
    ("uint64", U64),
    ("float16", F16),
    ("bfloat16", BF16),
    ("float32", F32),
    ("float64", F64),
    ("complex64", C64),
    ("complex128", C128),
    ("float8_e4m3fn", F8E4M3FN),
    ("opaque_handle64", OPAQUE64),
];

pub fn item_size(d: DLDataType) -> usize {
    (d.bits as usize * d.lanes as usize).div_ceil(8)
}

pub const CPU: DLDevice = DLDevice {
    device_type: 1,
    device_id: 0,
};
pub const CUDA0: DLDevice = DLDevice {
    device_type: 2,
    device_id: 0,
};

// ---------------------------------------------------------------------------------------------
// statuses and messages

pub fn last_error() -> String {
    // SAFETY: dlshare returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(dlshare_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

pub fn status_name(s: dlshare_status) -> String {
    // SAFETY: static NUL-terminated string.
    unsafe { CStr::from_ptr(dlshare_status_name(s as i32)) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts success, showing the library's message otherwise.
#[track_caller]
pub fn ok(s: dlshare_status) {
    assert_eq!(
        s,
        DLSHARE_OK,
        "expected DLSHARE_OK, got {}: {}",
        status_name(s),
        last_error()
    );
}

/// Asserts a failure status and a non-empty message; returns the message.
#[track_caller]
pub fn fails(s: dlshare_status, expected: dlshare_status) -> String {
    assert_eq!(
        s,
        expected,
        "expected {}, got {} ({})",
        status_name(expected),
        status_name(s),
        last_error()
    );
    let msg = last_error();
    assert!(
        !msg.is_empty(),
        "{} came with an empty message",
        status_name(s)
    );
    msg
}

pub fn opts(mode: dlshare_mode) -> dlshare_options {
    dlshare_options_init(mode as i32)
}

pub fn opts_dtype(mode: dlshare_mode, dtype: DLDataType) -> dlshare_options {
    let mut o = opts(mode);
    o.has_dtype = true;
    o.dtype = dtype;
    o
}

/// A decision that no conversion would produce, to see whether it was written.
pub fn blank_decision() -> dlshare_decision {
    dlshare_decision {
        shared: true,
        reason: DLSHARE_REASON_COPY_REQUESTED,
        detail: [0x55; 256],
    }
}

/// Asserts that a decision output still holds `blank_decision()`.
#[track_caller]
pub fn assert_untouched(d: &dlshare_decision) {
    let b = blank_decision();
    assert!(
        d.shared == b.shared && d.reason == b.reason && d.detail == b.detail,
        "the decision was written on a failure that is not a SHARE refusal"
    );
}

pub fn detail(d: &dlshare_decision) -> String {
    let bytes: Vec<u8> = d
        .detail
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    assert!(
        bytes.len() < 256,
        "decision detail is not NUL-terminated inside its 256 bytes"
    );
    String::from_utf8(bytes).expect("detail is UTF-8")
}

/// shared, reason and detail of a decision, for comparisons.
pub fn summary(d: &dlshare_decision) -> (bool, dlshare_reason, String) {
    (d.shared, d.reason, detail(d))
}

/// A value no dlshare handle ever has, to see that outputs stay untouched on failure.
pub const SENTINEL: *mut dlshare_tensor = 0x5E47_1E10_usize as *mut dlshare_tensor;

// ---------------------------------------------------------------------------------------------
// A 256-byte-aligned, zero-initialised buffer.

pub struct Buf {
    ptr: *mut u8,
    len: usize,
    layout: Layout,
}

// SAFETY: a plain heap allocation; tests synchronise their own accesses.
unsafe impl Send for Buf {}
// SAFETY: as above.
unsafe impl Sync for Buf {}

impl Buf {
    pub fn zeroed(len: usize) -> Buf {
        let layout = Layout::from_size_align(len.max(1), 256).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Buf { ptr, len, layout }
    }

    pub fn from_bytes(bytes: &[u8]) -> Buf {
        let b = Buf::zeroed(bytes.len());
        // SAFETY: fresh allocation of bytes.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), b.ptr, bytes.len()) };
        b
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> Vec<u8> {
        // SAFETY: `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// The native-endian bytes of a slice of plain values.
pub fn to_bytes<T: Copy>(v: &[T]) -> Vec<u8> {
    // SAFETY: reading the bytes of plain-old-data values.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        .to_vec()
}

/// Reads native-endian values out of bytes (any alignment).
pub fn from_bytes<T: Copy>(b: &[u8]) -> Vec<T> {
    let n = std::mem::size_of::<T>();
    assert_eq!(b.len() % n, 0);
    b.chunks_exact(n)
        // SAFETY: `n` readable bytes; unaligned read of a plain value.
        .map(|c| unsafe { c.as_ptr().cast::<T>().read_unaligned() })
        .collect()
}

/// The raw bytes of a struct.
pub fn struct_bytes<T>(p: *const T) -> Vec<u8> {
    // SAFETY: callers pass a live struct.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), std::mem::size_of::<T>()) }.to_vec()
}

// ---------------------------------------------------------------------------------------------
// Layout helpers, computed independently of the library.

pub fn c_strides(shape: &[i64]) -> Vec<i64> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i].max(1);
    }
    s
}

pub fn numel(shape: &[i64]) -> usize {
    shape.iter().product::<i64>() as usize
}

/// Every multi-index of `shape` in C order.
pub fn indices(shape: &[i64]) -> Vec<Vec<i64>> {
    let n = numel(shape);
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0i64; shape.len()];
    for _ in 0..n {
        out.push(idx.clone());
        for a in (0..shape.len()).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}

/// The elements of a strided array starting at `first`, gathered in C order (bytewise reads, so
/// any alignment and stride works).
///
/// # Safety
/// Every addressed element must be readable.
pub unsafe fn gather(
    first: *const u8,
    shape: &[i64],
    byte_strides: &[i64],
    item: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(numel(shape) * item);
    for idx in indices(shape) {
        let off: i64 = idx.iter().zip(byte_strides).map(|(i, s)| i * s).sum();
        let p = first.wrapping_offset(off as isize);
        // SAFETY: caller contract.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(p, item) });
    }
    out
}

/// Reverses each `unit`-byte group (a byte swap of each scalar component).
pub fn swap_units(bytes: &[u8], unit: usize) -> Vec<u8> {
    bytes
        .chunks_exact(unit)
        .flat_map(|c| c.iter().rev().copied())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading what a handle describes.

pub fn info(h: *const dlshare_tensor) -> (DLTensor, u64) {
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    let mut flags = 0u64;
    // SAFETY: writable outputs.
    ok(unsafe { dlshare_tensor_info(h, dl.as_mut_ptr(), &mut flags) });
    // SAFETY: written on success.
    (unsafe { dl.assume_init() }, flags)
}

pub fn dl_shape(dl: &DLTensor) -> Vec<i64> {
    if dl.ndim == 0 {
        return Vec::new();
    }
    assert!(!dl.shape.is_null(), "shape is NULL with ndim {}", dl.ndim);
    // SAFETY: ndim values per the DLPack contract.
    unsafe { std::slice::from_raw_parts(dl.shape, dl.ndim as usize) }.to_vec()
}

/// Element strides; `None` when the struct says NULL.
pub fn dl_strides(dl: &DLTensor) -> Option<Vec<i64>> {
    if dl.ndim == 0 {
        return Some(Vec::new());
    }
    if dl.strides.is_null() {
        return None;
    }
    // SAFETY: ndim values per the DLPack contract.
    Some(unsafe { std::slice::from_raw_parts(dl.strides, dl.ndim as usize) }.to_vec())
}

pub fn shape_of(h: *const dlshare_tensor) -> Vec<i64> {
    dl_shape(&info(h).0)
}

pub fn strides_of(h: *const dlshare_tensor) -> Vec<i64> {
    dl_strides(&info(h).0).expect("dlshare_tensor_info always fills strides")
}

/// `dlshare_tensor_data`: the address of the first element.
pub fn data_of(h: *const dlshare_tensor) -> *mut u8 {
    let mut p = std::ptr::null_mut();
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_data(h, &mut p) });
    p.cast()
}

/// The tensor's elements in C order, read through its own strides.
pub fn contents(h: *const dlshare_tensor) -> Vec<u8> {
    let (dl, _) = info(h);
    let item = item_size(dl.dtype);
    let shape = dl_shape(&dl);
    let bs: Vec<i64> = dl_strides(&dl)
        .unwrap()
        .iter()
        .map(|s| s * item as i64)
        .collect();
    // SAFETY: the handle is live, so its elements are readable.
    unsafe { gather(data_of(h), &shape, &bs, item) }
}

pub fn release(h: *mut dlshare_tensor) {
    ok(dlshare_tensor_release(h));
}

pub fn shares_memory(a: *const dlshare_tensor, b: *const dlshare_tensor) -> bool {
    let mut s = false;
    // SAFETY: writable output.
    ok(unsafe { dlshare_tensor_shares_memory(a, b, &mut s) });
    s
}

pub fn live() -> usize {
    dlshare_live_tensor_count()
}

/// Checks what every copy must be (DESIGN §3): C-contiguous, writable, IS_COPIED, 256-byte
/// aligned, of the given dtype and shape.
#[track_caller]
pub fn assert_is_fresh_copy(h: *const dlshare_tensor, dtype: DLDataType, shape: &[i64]) {
    let (dl, flags) = info(h);
    assert_eq!(dl.dtype, dtype);
    assert_eq!(dl_shape(&dl), shape);
    assert_eq!(
        dl_strides(&dl).unwrap(),
        c_strides(shape),
        "copy is not C-contiguous"
    );
    assert_eq!(dl.device, CPU);
    assert_eq!(dl.byte_offset, 0);
    assert_eq!(
        flags & FLAG_IS_COPIED,
        FLAG_IS_COPIED,
        "copy lacks IS_COPIED"
    );
    assert_eq!(flags & FLAG_READ_ONLY, 0, "copy is read-only");
    assert_eq!(
        dl.data as usize % 256,
        0,
        "copy data {:p} is not 256-byte aligned",
        dl.data
    );
    let mut b = false;
    // SAFETY: writable outputs.
    ok(unsafe { dlshare_tensor_is_c_contiguous(h, &mut b) });
    assert!(b);
    // SAFETY: as above.
    ok(unsafe { dlshare_tensor_is_read_only(h, &mut b) });
    assert!(!b);
}

// ---------------------------------------------------------------------------------------------
// DLPack producers with counted deleters.

/// What a test producer's managed tensor describes.
#[derive(Clone, Debug)]
pub struct Spec {
    pub dtype: DLDataType,
    pub shape: Vec<i64>,
    /// Element strides; `None` gives NULL strides.
    pub strides: Option<Vec<i64>>,
    /// The buffer the producer owns (copied into a fresh 256-aligned allocation).
    pub bytes: Vec<u8>,
    /// `data` = buffer + `data_shift` (or NULL with `null_data`).
    pub data_shift: usize,
    pub null_data: bool,
    pub byte_offset: u64,
    pub device: DLDevice,
    /// Versioned flags (ignored for legacy tensors).
    pub flags: u64,
    pub version: DLPackVersion,
}

impl Spec {
    /// A writable C-contiguous CPU tensor over `bytes`, with explicit strides.
    pub fn new(dtype: DLDataType, shape: &[i64], bytes: Vec<u8>) -> Spec {
        Spec {
            dtype,
            shape: shape.to_vec(),
            strides: Some(c_strides(shape)),
            bytes,
            data_shift: 0,
            null_data: false,
            byte_offset: 0,
            device: CPU,
            flags: 0,
            version: DLPackVersion { major: 1, minor: 3 },
        }
    }
}

struct Ctx {
    _buf: Buf,
    _shape: Vec<i64>,
    _strides: Option<Vec<i64>>,
    deleted: Arc<AtomicUsize>,
}

/// A managed tensor made by a test producer, with the count of its deleter's calls.
pub struct Produced<M> {
    pub managed: *mut M,
    pub deleted: Arc<AtomicUsize>,
    /// Start of the producer's buffer (valid until the deleter runs).
    pub base: *mut u8,
    /// The `data` field as set.
    pub data: *mut c_void,
}

impl<M> Produced<M> {
    pub fn deletions(&self) -> usize {
        self.deleted.load(Ordering::SeqCst)
    }
    pub fn snapshot(&self) -> Vec<u8> {
        struct_bytes(self.managed)
    }
}

unsafe extern "C" fn delete_versioned(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `m` and its context were leaked by `produce_versioned`; called once.
    unsafe {
        let m = Box::from_raw(m);
        let ctx = Box::from_raw(m.manager_ctx.cast::<Ctx>());
        ctx.deleted.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe extern "C" fn delete_legacy(m: *mut DLManagedTensor) {
    // SAFETY: `m` and its context were leaked by `produce_legacy`; called once.
    unsafe {
        let m = Box::from_raw(m);
        let ctx = Box::from_raw(m.manager_ctx.cast::<Ctx>());
        ctx.deleted.fetch_add(1, Ordering::SeqCst);
    }
}

fn make_dl(spec: &Spec) -> (DLTensor, Box<Ctx>, Arc<AtomicUsize>, *mut u8) {
    let buf = Buf::from_bytes(&spec.bytes);
    let base = buf.ptr();
    let mut shape = spec.shape.clone();
    let mut strides = spec.strides.clone();
    let deleted = Arc::new(AtomicUsize::new(0));
    let dl = DLTensor {
        data: if spec.null_data {
            std::ptr::null_mut()
        } else {
            base.wrapping_add(spec.data_shift).cast()
        },
        device: spec.device,
        ndim: spec.shape.len() as i32,
        dtype: spec.dtype,
        shape: if shape.is_empty() {
            std::ptr::null_mut()
        } else {
            shape.as_mut_ptr()
        },
        strides: match strides.as_mut() {
            Some(s) if !s.is_empty() => s.as_mut_ptr(),
            _ => std::ptr::null_mut(),
        },
        byte_offset: spec.byte_offset,
    };
    let ctx = Box::new(Ctx {
        _buf: buf,
        _shape: shape,
        _strides: strides,
        deleted: deleted.clone(),
    });
    (dl, ctx, deleted, base)
}

pub fn produce_versioned(spec: &Spec) -> Produced<DLManagedTensorVersioned> {
    let (dl, ctx, deleted, base) = make_dl(spec);
    let data = dl.data;
    let managed = Box::into_raw(Box::new(DLManagedTensorVersioned {
        version: spec.version,
        manager_ctx: Box::into_raw(ctx).cast(),
        deleter: Some(delete_versioned),
        flags: spec.flags,
        dl_tensor: dl,
    }));
    Produced {
        managed,
        deleted,
        base,
        data,
    }
}

pub fn produce_legacy(spec: &Spec) -> Produced<DLManagedTensor> {
    let (dl, ctx, deleted, base) = make_dl(spec);
    let data = dl.data;
    let managed = Box::into_raw(Box::new(DLManagedTensor {
        dl_tensor: dl,
        manager_ctx: Box::into_raw(ctx).cast(),
        deleter: Some(delete_legacy),
    }));
    Produced {
        managed,
        deleted,
        base,
        data,
    }
}

/// Calls a versioned managed tensor's deleter (as its owner must, eventually).
pub fn call_deleter_versioned(m: *mut DLManagedTensorVersioned) {
    // SAFETY: `m` is a live managed tensor we own.
    unsafe {
        let d = (*m).deleter.expect("deleter set");
        d(m);
    }
}

pub fn call_deleter_legacy(m: *mut DLManagedTensor) {
    // SAFETY: `m` is a live managed tensor we own.
    unsafe {
        let d = (*m).deleter.expect("deleter set");
        d(m);
    }
}

/// Imports a versioned tensor; returns the status, handle (SENTINEL if untouched) and decision.
pub fn import_versioned(
    m: *mut DLManagedTensorVersioned,
    o: &dlshare_options,
) -> (dlshare_status, *mut dlshare_tensor, dlshare_decision) {
    let mut h = SENTINEL;
    let mut d = blank_decision();
    // SAFETY: valid pointers.
    let s = unsafe { dlshare_tensor_from_dlpack(m, o, &mut h, &mut d) };
    (s, h, d)
}

pub fn import_legacy(
    m: *mut DLManagedTensor,
    o: &dlshare_options,
) -> (dlshare_status, *mut dlshare_tensor, dlshare_decision) {
    let mut h = SENTINEL;
    let mut d = blank_decision();
    // SAFETY: valid pointers.
    let s = unsafe { dlshare_tensor_from_dlpack_legacy(m, o, &mut h, &mut d) };
    (s, h, d)
}

// ---------------------------------------------------------------------------------------------
// Raw views with counted release callbacks.

/// The release callback of test views: `ctx` is an `AtomicUsize` the test keeps alive.
pub unsafe extern "C" fn count_release(ctx: *mut c_void) {
    // SAFETY: tests pass a live AtomicUsize.
    unsafe { &*ctx.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
}

/// A view over `data`; `shape` and `byte_strides` must outlive the calls that use the view.
pub fn view(
    data: *mut u8,
    dtype: DLDataType,
    shape: &[i64],
    byte_strides: Option<&[i64]>,
    flags: u32,
    released: &AtomicUsize,
) -> dlshare_view {
    dlshare_view {
        data: data.cast(),
        dtype,
        ndim: shape.len() as i32,
        shape: if shape.is_empty() {
            std::ptr::null()
        } else {
            shape.as_ptr()
        },
        byte_strides: byte_strides.map_or(std::ptr::null(), |s| s.as_ptr()),
        device: CPU,
        flags,
        release: Some(count_release),
        release_ctx: std::ptr::from_ref(released).cast_mut().cast(),
    }
}

pub fn from_view(
    v: &dlshare_view,
    o: &dlshare_options,
) -> (dlshare_status, *mut dlshare_tensor, dlshare_decision) {
    let mut h = SENTINEL;
    let mut d = blank_decision();
    // SAFETY: valid pointers.
    let s = unsafe { dlshare_tensor_from_view(v, o, &mut h, &mut d) };
    (s, h, d)
}

pub fn convert(
    h: *const dlshare_tensor,
    o: &dlshare_options,
) -> (dlshare_status, *mut dlshare_tensor, dlshare_decision) {
    let mut out = SENTINEL;
    let mut d = blank_decision();
    // SAFETY: valid pointers.
    let s = unsafe { dlshare_tensor_convert(h, o, &mut out, &mut d) };
    (s, out, d)
}

pub fn count(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// A writable f32 tensor sharing `buf` (kept alive by the caller), made through a view.
pub fn share_f32(buf: &Buf, shape: &[i64]) -> *mut dlshare_tensor {
    let v = dlshare_view {
        release: None,
        release_ctx: std::ptr::null_mut(),
        ..view(buf.ptr(), F32, shape, None, 0, &AtomicUsize::new(0))
    };
    let (s, h, d) = from_view(&v, &opts(SHARE));
    ok(s);
    assert!(d.shared);
    h
}
