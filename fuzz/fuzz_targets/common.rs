//! Shared by the fuzz targets: a reader that turns fuzz bytes into biased values (mostly
//! ordinary, sometimes extreme), an aligned buffer the described tensors point into, and an
//! independent check of whether a description stays inside that buffer (only then may a call
//! that reads the data run: reading outside it would be the caller's bug, not dlshare's).

#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::CStr;

use dlshare::dlpack::{DLDataType, DLDevice};
use dlshare::ffi::convert::{dlshare_decision, dlshare_options, dlshare_options_init};
use dlshare::ffi::dlshare_status;

pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.u8()))
    }
    /// Mostly small values, sometimes boundary values, sometimes anything.
    pub fn extent(&mut self) -> i64 {
        match self.u8() {
            0..=199 => i64::from(self.u8() % 9),
            200..=219 => -i64::from(self.u8() % 3) - 1,
            220..=239 => 1 << (self.u8() % 63),
            240..=247 => [i64::MAX, i64::MIN, i64::MAX / 2, 1 << 32][usize::from(self.u8() % 4)],
            _ => self.u64() as i64,
        }
    }
    /// An element (or byte) stride: mostly small, signed, sometimes extreme.
    pub fn stride(&mut self) -> i64 {
        match self.u8() {
            0..=219 => i64::from(self.u8() as i8 % 24),
            220..=239 => (1i64 << (self.u8() % 63)) * if self.bool() { -1 } else { 1 },
            240..=247 => [i64::MAX, i64::MIN, i64::MAX / 4, -(1 << 40)][usize::from(self.u8() % 4)],
            _ => self.u64() as i64,
        }
    }
    pub fn dtype(&mut self) -> DLDataType {
        const COMMON: [(u8, u8); 17] = [
            (6, 8),
            (0, 8),
            (0, 16),
            (0, 32),
            (0, 64),
            (1, 8),
            (1, 16),
            (1, 32),
            (1, 64),
            (2, 16),
            (4, 16),
            (2, 32),
            (2, 64),
            (5, 64),
            (5, 128),
            (10, 8),
            (17, 4),
        ];
        match self.u8() {
            0..=229 => {
                let (code, bits) = COMMON[usize::from(self.u8()) % COMMON.len()];
                DLDataType {
                    code,
                    bits,
                    lanes: 1,
                }
            }
            230..=244 => {
                let (code, bits) = COMMON[usize::from(self.u8()) % COMMON.len()];
                DLDataType {
                    code,
                    bits,
                    lanes: u16::from(self.u8() % 5),
                }
            }
            _ => DLDataType {
                code: self.u8(),
                bits: self.u8(),
                lanes: u16::from(self.u8()),
            },
        }
    }
    pub fn device(&mut self) -> DLDevice {
        match self.u8() {
            0..=219 => DLDevice {
                device_type: 1,
                device_id: 0,
            },
            220..=239 => DLDevice {
                device_type: [2, 3, 13, 11][usize::from(self.u8() % 4)],
                device_id: 0,
            },
            _ => DLDevice {
                device_type: i32::from(self.u8() as i8),
                device_id: i32::from(self.u8() as i8),
            },
        }
    }
    pub fn options(&mut self) -> dlshare_options {
        let mut o = dlshare_options_init(dlshare::ffi::convert::dlshare_mode::DLSHARE_MODE_SHARE as i32);
        o.mode = match self.u8() {
            0..=249 => i32::from(self.u8() % 3),
            _ => i32::from(self.u8() as i8),
        };
        if self.u8() < 80 {
            o.has_dtype = true;
            o.dtype = self.dtype();
        }
        if self.u8() < 20 {
            o.has_device = true;
            o.device = self.device();
        }
        o.allow_read_only = self.bool();
        o.allow_complex_to_real = self.bool();
        if self.u8() == 255 {
            o.stream = 0x1000 as *mut std::ffi::c_void;
        }
        o
    }
}

/// A zeroed, 256-byte-aligned buffer that fuzzed tensors point into.
pub struct Buffer {
    pub ptr: *mut u8,
    pub len: usize,
    layout: Layout,
}

impl Buffer {
    pub fn new(len: usize) -> Buffer {
        let layout = Layout::from_size_align(len, 256).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        // Recognisable bytes.
        for i in 0..len {
            // SAFETY: inside the allocation.
            unsafe { *ptr.add(i) = (i as u8).wrapping_mul(31) };
        }
        Buffer { ptr, len, layout }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// Whether every element that the description addresses lies inside `buf`, computed
/// independently of dlshare (128-bit arithmetic), and the number of elements. `None` when the
/// description is not even well-formed enough to say (negative extents, overflowing counts).
pub fn extent_inside(
    buf: &Buffer,
    first: i128,
    shape: &[i64],
    byte_strides: &[i64],
    item: i128,
) -> Option<(bool, i128)> {
    let mut n: i128 = 1;
    for &e in shape {
        if e < 0 {
            return None;
        }
        n = n.checked_mul(i128::from(e))?;
    }
    if n == 0 {
        return Some((true, 0));
    }
    if n > i128::from(i64::MAX) {
        return None;
    }
    let (mut lo, mut hi) = (0i128, 0i128);
    for (&e, &s) in shape.iter().zip(byte_strides) {
        let span = i128::from(e - 1) * i128::from(s);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    let base = buf.ptr as i128;
    let inside = first + lo >= base && first + hi + item <= base + buf.len as i128;
    Some((inside, n))
}

pub fn status_name(s: dlshare_status) -> String {
    // SAFETY: static string.
    unsafe { CStr::from_ptr(dlshare::ffi::version::dlshare_status_name(s as i32)) }
        .to_string_lossy()
        .into_owned()
}

/// shared, reason and detail of a decision.
pub fn summary(d: &dlshare_decision) -> (bool, i32, Vec<u8>) {
    let detail = d
        .detail
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    (d.shared, d.reason as i32, detail)
}

pub fn blank_decision() -> dlshare_decision {
    dlshare_decision {
        shared: true,
        reason: dlshare::ffi::dlshare_reason::DLSHARE_REASON_COPY_REQUESTED,
        detail: [0x55; 256],
    }
}

/// The elements of a strided array in C order, read bytewise.
///
/// # Safety
/// Every addressed element must be readable.
pub unsafe fn gather(
    first: *const u8,
    shape: &[i64],
    byte_strides: &[i64],
    item: usize,
) -> Vec<u8> {
    let n: i64 = shape.iter().product();
    let mut out = Vec::with_capacity(n as usize * item);
    let mut idx = vec![0i64; shape.len()];
    for _ in 0..n {
        let off: i64 = idx.iter().zip(byte_strides).map(|(i, s)| i * s).sum();
        // SAFETY: caller contract.
        out.extend_from_slice(unsafe {
            std::slice::from_raw_parts(first.wrapping_offset(off as isize), item)
        });
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

/// Largest copy a fuzz input may ask for (a zero-stride view of 2^40 elements is valid and
/// would make dlshare copy it; that is a test of the allocator, not of dlshare).
pub const MAX_COPY_BYTES: i128 = 1 << 20;
