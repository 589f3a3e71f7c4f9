//! Fuzzes raw views and conversions through the C API: `dlshare_tensor_from_view` with arbitrary
//! views (dtype, shape, byte strides, flags, NULLs) and options, then `dlshare_tensor_convert`
//! and `dlshare_tensor_view` on the result with more arbitrary options. Checks: explain and
//! convert agree; failures call no release callback and write nothing; the release callback
//! runs exactly once (right away for a copy, at the last release for a share); copies of
//! native data hold exactly the source elements; the live tensor count returns to its start.
//!
//! Calls that may read the data run only when the view stays inside the fuzz buffer; otherwise
//! the options are forced to SHARE mode, which never reads.

#![no_main]

#[path = "common.rs"]
mod common;

use std::ffi::c_void;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dlshare::dlpack::DLTensor;
use dlshare::ffi::columns::dlshare_tensor_view;
use dlshare::ffi::convert::*;
use dlshare::ffi::dlshare_status::*;
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::tensor::*;
use dlshare::ffi::version::dlshare_live_tensor_count;
use libfuzzer_sys::fuzz_target;

static RELEASED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_release(_: *mut c_void) {
    RELEASED.fetch_add(1, Ordering::SeqCst);
}

const SENTINEL: *mut dlshare_tensor = 0x5E47_1E10usize as *mut dlshare_tensor;

fn info(h: *const dlshare_tensor) -> DLTensor {
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    // SAFETY: writable output.
    assert_eq!(
        unsafe { dlshare_tensor_info(h, dl.as_mut_ptr(), null_mut()) },
        DLSHARE_OK
    );
    // SAFETY: written on success.
    unsafe { dl.assume_init() }
}

/// Converts `h` per `o` and checks that explain agreed and a same-type copy is exact.
fn convert_checked(h: *mut dlshare_tensor, o: &dlshare_options) {
    let mut e = blank_decision();
    let mut d = blank_decision();
    let mut out = SENTINEL;
    // SAFETY: valid pointers.
    let (se, s) = unsafe {
        (
            dlshare_explain_tensor(h, o, &mut e),
            dlshare_tensor_convert(h, o, &mut out, &mut d),
        )
    };
    assert!(
        s == se || (s == DLSHARE_ERR_OUT_OF_MEMORY && se == DLSHARE_OK),
        "explain_tensor said {}, convert said {}",
        status_name(se),
        status_name(s)
    );
    if s != DLSHARE_OK {
        assert_eq!(out, SENTINEL);
        return;
    }
    assert_eq!(summary(&e), summary(&d));
    let src = info(h);
    let dst = info(out);
    if !d.shared && (!o.has_dtype || o.dtype == src.dtype) {
        let item = (usize::from(src.dtype.bits) * usize::from(src.dtype.lanes)).div_ceil(8);
        let n = src.ndim as usize;
        // SAFETY: info fills shape/strides with ndim values.
        let (shape, strides) = unsafe {
            (
                std::slice::from_raw_parts(src.shape, n),
                std::slice::from_raw_parts(src.strides, n),
            )
        };
        let bs: Vec<i64> = strides.iter().map(|s| s.saturating_mul(item as i64)).collect();
        let count: i64 = shape.iter().product();
        let first = src.data.cast::<u8>().wrapping_add(src.byte_offset as usize);
        // SAFETY: the source is readable (only readable inputs reach copies).
        let want = unsafe { gather(first, if n == 0 { &[] } else { shape }, &bs, item) };
        // SAFETY: the copy holds count * item bytes.
        let got =
            unsafe { std::slice::from_raw_parts(dst.data.cast::<u8>(), count as usize * item) };
        assert_eq!(got, &want[..], "the copy differs from the source");
    }
    assert_eq!(dlshare_tensor_release(out), DLSHARE_OK);
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let buf = Buffer::new(4096);
    let start_live = dlshare_live_tensor_count();
    RELEASED.store(0, Ordering::SeqCst);

    let ndim: i32 = match b.u8() {
        0..=243 => i32::from(b.u8() % 5),
        244..=249 => -1,
        _ => 65,
    };
    let n = if (0..=64).contains(&ndim) {
        ndim as usize
    } else {
        64
    };
    let shape: Vec<i64> = if (0..=64).contains(&ndim) {
        (0..n).map(|_| b.extent()).collect()
    } else {
        vec![1; 64]
    };
    let byte_strides: Option<Vec<i64>> = if b.u8() < 80 {
        None
    } else {
        Some((0..n).map(|_| b.stride()).collect())
    };
    let dtype = b.dtype();
    let device = b.device();
    let null_data = b.u8() == 255;
    let data = if null_data {
        null_mut()
    } else {
        buf.ptr.wrapping_add(usize::from(b.u8()) % 128)
    };
    let flags: u32 = match b.u8() {
        0..=249 => u32::from(b.u8() % 4),
        _ => u32::from(b.u8()) << (b.u8() % 25),
    };
    let with_release = b.u8() < 240;
    let mut o = b.options();

    let item = (i128::from(dtype.bits) * i128::from(dtype.lanes) + 7) / 8;
    let target_item = if o.has_dtype {
        (i128::from(o.dtype.bits) * i128::from(o.dtype.lanes) + 7) / 8
    } else {
        item
    };
    let strides_for_check: Vec<i64> = match &byte_strides {
        Some(s) => s.clone(),
        None => {
            let mut c = vec![0i64; shape.len()];
            let mut acc: i128 = item;
            for i in (0..shape.len()).rev() {
                c[i] = i64::try_from(acc).unwrap_or(i64::MAX);
                acc = (acc * i128::from(shape[i].max(1))).min(i128::from(i64::MAX));
            }
            c
        }
    };
    let readable = (0..=64).contains(&ndim)
        && extent_inside(&buf, data as i128, &shape, &strides_for_check, item).is_some_and(
            |(inside, count)| {
                (inside && !null_data || count == 0)
                    && count * item.max(target_item).max(8) <= MAX_COPY_BYTES
            },
        );
    if !readable && (0..=2).contains(&o.mode) {
        o.mode = 0;
    }

    let v = dlshare_view {
        data: data.cast(),
        dtype,
        ndim,
        shape: if shape.is_empty() {
            null()
        } else {
            shape.as_ptr()
        },
        byte_strides: byte_strides.as_ref().map_or(null(), |s| s.as_ptr()),
        device,
        flags,
        release: if with_release {
            Some(count_release)
        } else {
            None
        },
        release_ctx: null_mut(),
    };
    let mut e = blank_decision();
    let mut d = blank_decision();
    let mut h = SENTINEL;
    // SAFETY: the view describes the fuzz buffer (read only when inside it).
    let (se, s) = unsafe {
        (
            dlshare_explain_view(&v, &o, &mut e),
            dlshare_tensor_from_view(&v, &o, &mut h, &mut d),
        )
    };
    assert!(
        s == se || (s == DLSHARE_ERR_OUT_OF_MEMORY && se == DLSHARE_OK),
        "explain_view said {}, from_view said {}",
        status_name(se),
        status_name(s)
    );
    if s == DLSHARE_OK || s == DLSHARE_ERR_CANNOT_SHARE {
        assert_eq!(summary(&e), summary(&d));
    }
    if s != DLSHARE_OK {
        assert_eq!(h, SENTINEL);
        assert_eq!(
            RELEASED.load(Ordering::SeqCst),
            0,
            "release called on failure"
        );
        assert_eq!(dlshare_live_tensor_count(), start_live);
        return;
    }
    let once = usize::from(with_release);
    assert_eq!(
        RELEASED.load(Ordering::SeqCst),
        if d.shared { 0 } else { once },
        "release timing"
    );

    // More conversions of the result (reading only readable memory).
    for _ in 0..2 {
        let mut o2 = b.options();
        if !readable && (0..=2).contains(&o2.mode) {
            o2.mode = 0;
        }
        convert_checked(h, &o2);
    }
    // A strided view of the result, then a conversion of that.
    let vdim = usize::from(b.u8() % 4);
    let vshape: Vec<i64> = (0..vdim).map(|_| b.extent()).collect();
    let vstrides: Vec<i64> = (0..vdim).map(|_| b.stride()).collect();
    let offset = b.stride();
    let mut w = SENTINEL;
    // SAFETY: vdim values each.
    let sw = unsafe {
        dlshare_tensor_view(
            h,
            vdim as i32,
            if vshape.is_empty() {
                null()
            } else {
                vshape.as_ptr()
            },
            if b.bool() || vstrides.is_empty() {
                null()
            } else {
                vstrides.as_ptr()
            },
            offset,
            &mut w,
        )
    };
    if sw == DLSHARE_OK {
        let mut o3 = b.options();
        // A zero-stride view can name 2^62 elements of a few bytes: copying it is a test of
        // the allocator, not of dlshare.
        let vcount = vshape
            .iter()
            .try_fold(1i128, |acc, &e| acc.checked_mul(i128::from(e.max(0))))
            .unwrap_or(i128::MAX);
        if (!readable || vcount.saturating_mul(16) > MAX_COPY_BYTES) && (0..=2).contains(&o3.mode) {
            o3.mode = 0;
        }
        convert_checked(w, &o3);
        assert_eq!(dlshare_tensor_release(w), DLSHARE_OK);
    } else {
        assert_eq!(w, SENTINEL);
    }
    assert_eq!(dlshare_tensor_release(h), DLSHARE_OK);
    assert_eq!(
        RELEASED.load(Ordering::SeqCst),
        once,
        "release not exactly once"
    );
    assert_eq!(dlshare_live_tensor_count(), start_live, "storage leaked");
});
