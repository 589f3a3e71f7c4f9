//! Fuzzes DLPack import (versioned and legacy) through the C API with arbitrary descriptions
//! (version, flags, ndim, shape, strides, dtype, device, data, byte_offset, NULLs, deleter) and
//! options. Checks: explain and import agree; a failed import leaves the struct untouched and
//! the deleter uncalled; a successful one calls the deleter exactly once (before returning when
//! it copied, at the last release when it shared); a copy holds exactly the source elements;
//! an export of the result re-imports; the live tensor count returns to where it started.
//!
//! Calls that may read the data (copies) run only when the description stays inside the fuzz
//! buffer; otherwise the options are forced to SHARE mode, which never reads.

#![no_main]

#[path = "common.rs"]
mod common;

use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dlshare::dlpack::{DLManagedTensor, DLManagedTensorVersioned, DLPackVersion, DLTensor};
use dlshare::ffi::dlpack::*;
use dlshare::ffi::dlshare_status::{self, *};
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::tensor::*;
use dlshare::ffi::version::dlshare_live_tensor_count;
use libfuzzer_sys::fuzz_target;

static DELETED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_versioned(_: *mut DLManagedTensorVersioned) {
    DELETED.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn count_legacy(_: *mut DLManagedTensor) {
    DELETED.fetch_add(1, Ordering::SeqCst);
}

fn bytes_of<T>(p: *const T) -> Vec<u8> {
    // SAFETY: a live struct.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), std::mem::size_of::<T>()) }.to_vec()
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let buf = Buffer::new(4096);
    let start_live = dlshare_live_tensor_count();
    DELETED.store(0, Ordering::SeqCst);

    // The description.
    let ndim: i32 = match b.u8() {
        0..=239 => i32::from(b.u8() % 5),
        240..=247 => -1 - i32::from(b.u8()),
        248..=251 => 65,
        _ => i32::MAX,
    };
    let n = if (0..=64).contains(&ndim) {
        ndim as usize
    } else {
        64
    };
    let mut shape: Vec<i64> = (0..n).map(|_| b.extent()).collect();
    if !(0..=64).contains(&ndim) {
        shape = vec![1; 64]; // must not be read past its 64 values
    }
    let mut strides: Option<Vec<i64>> = if b.u8() < 60 {
        None
    } else {
        Some((0..n).map(|_| b.stride()).collect())
    };
    let null_shape = b.u8() == 255;
    let dtype = b.dtype();
    let device = b.device();
    let shift = usize::from(b.u8() % 64);
    let null_data = b.u8() == 255;
    let data = if null_data {
        null_mut()
    } else {
        buf.ptr.wrapping_add(shift)
    };
    let byte_offset: u64 = match b.u8() {
        0..=229 => u64::from(b.u8() % 64),
        230..=249 => 1 << (b.u8() % 64),
        _ => b.u64(),
    };
    let version = match b.u8() {
        0..=239 => DLPackVersion {
            major: 1,
            minor: u32::from(b.u8() % 5),
        },
        240..=247 => DLPackVersion { major: 0, minor: 0 },
        248..=251 => DLPackVersion { major: 2, minor: 0 },
        _ => DLPackVersion {
            major: u32::from(b.u8()),
            minor: 0,
        },
    };
    let flags: u64 = match b.u8() {
        0..=239 => u64::from(b.u8() % 8),
        _ => b.u64(),
    };
    let legacy = b.bool();
    let null_deleter = b.u8() == 255;
    let mut o = b.options();

    // Independently: is every addressed byte inside the buffer, and is a copy small?
    let bits = i128::from(dtype.bits) * i128::from(dtype.lanes);
    let item = (bits + 7) / 8;
    let target_item = if o.has_dtype {
        (i128::from(o.dtype.bits) * i128::from(o.dtype.lanes) + 7) / 8
    } else {
        item
    };
    let elem_strides: Vec<i64> = match &strides {
        Some(s) => s.clone(),
        None => {
            // compact row-major
            let mut c = vec![0i64; shape.len()];
            let mut acc: i64 = 1;
            for i in (0..shape.len()).rev() {
                c[i] = acc;
                acc = acc.saturating_mul(shape[i].max(1));
            }
            c
        }
    };
    let byte_strides: Option<Vec<i64>> = elem_strides
        .iter()
        .map(|&s| i64::try_from(i128::from(s) * item).ok())
        .collect();
    let readable = (0..=64).contains(&ndim)
        && !null_shape
        && byte_strides.as_ref().is_some_and(|bs| {
            extent_inside(
                &buf,
                data as i128 + i128::from(byte_offset),
                &shape,
                bs,
                item,
            )
            .is_some_and(|(inside, count)| {
                (inside && !null_data || count == 0)
                    && count * item.max(target_item) <= MAX_COPY_BYTES
            })
        });
    if !readable && (0..=2).contains(&o.mode) {
        o.mode = 0; // SHARE: never reads the data
    }

    let dl = DLTensor {
        data: data.cast(),
        device,
        ndim,
        dtype,
        shape: if null_shape || shape.is_empty() {
            null_mut()
        } else {
            shape.as_mut_ptr()
        },
        strides: match strides.as_mut() {
            Some(s) if !s.is_empty() => s.as_mut_ptr(),
            _ => null_mut(),
        },
        byte_offset,
    };
    let mut versioned = DLManagedTensorVersioned {
        version,
        manager_ctx: null_mut(),
        deleter: if null_deleter {
            None
        } else {
            Some(count_versioned)
        },
        flags,
        dl_tensor: dl,
    };
    let mut legacy_m = DLManagedTensor {
        dl_tensor: dl,
        manager_ctx: null_mut(),
        deleter: if null_deleter {
            None
        } else {
            Some(count_legacy)
        },
    };

    // explain, then import.
    let before = if legacy {
        bytes_of(&legacy_m)
    } else {
        bytes_of(&versioned)
    };
    let mut e = blank_decision();
    let mut d = blank_decision();
    let sentinel = 0x5E47_1E10usize as *mut dlshare_tensor;
    let mut h = sentinel;
    // SAFETY: every pointer is valid for what it describes (checked above before any read).
    let (se, s) = unsafe {
        if legacy {
            let se = dlshare_explain_dlpack_legacy(&legacy_m, &o, &mut e);
            (
                se,
                dlshare_tensor_from_dlpack_legacy(&mut legacy_m, &o, &mut h, &mut d),
            )
        } else {
            let se = dlshare_explain_dlpack(&versioned, &o, &mut e);
            (
                se,
                dlshare_tensor_from_dlpack(&mut versioned, &o, &mut h, &mut d),
            )
        }
    };
    let oom = s == DLSHARE_ERR_OUT_OF_MEMORY && se == DLSHARE_OK;
    assert!(
        s == se || oom,
        "explain said {}, import said {}",
        status_name(se),
        status_name(s)
    );
    if s == DLSHARE_OK || s == DLSHARE_ERR_CANNOT_SHARE {
        assert_eq!(
            summary(&e),
            summary(&d),
            "explain and import decided differently"
        );
    }
    if s != DLSHARE_OK {
        assert_eq!(h, sentinel, "output written on failure");
        assert_eq!(
            DELETED.load(Ordering::SeqCst),
            0,
            "deleter called on failure"
        );
        let after = if legacy {
            bytes_of(&legacy_m)
        } else {
            bytes_of(&versioned)
        };
        assert_eq!(before, after, "the managed struct was modified on failure");
        assert_eq!(dlshare_live_tensor_count(), start_live);
        return;
    }
    let once = usize::from(!null_deleter);
    if d.shared {
        assert_eq!(DELETED.load(Ordering::SeqCst), 0, "deleted while shared");
    } else {
        assert_eq!(
            DELETED.load(Ordering::SeqCst),
            once,
            "a copy kept the producer"
        );
    }
    check_result(
        h,
        &d,
        &shape,
        byte_strides.as_deref(),
        data,
        byte_offset,
        item,
        &o,
        dtype,
    );
    assert_eq!(dlshare_tensor_release(h), DLSHARE_OK);
    assert_eq!(
        DELETED.load(Ordering::SeqCst),
        once,
        "deleter not run exactly once"
    );
    assert_eq!(dlshare_live_tensor_count(), start_live, "storage leaked");
});

#[allow(clippy::too_many_arguments)]
fn check_result(
    h: *mut dlshare_tensor,
    d: &dlshare::ffi::convert::dlshare_decision,
    shape: &[i64],
    byte_strides: Option<&[i64]>,
    data: *mut u8,
    byte_offset: u64,
    item: i128,
    o: &dlshare::ffi::convert::dlshare_options,
    dtype: dlshare::dlpack::DLDataType,
) {
    let mut dl = std::mem::MaybeUninit::<DLTensor>::uninit();
    let mut flags = 0u64;
    // SAFETY: writable outputs.
    assert_eq!(
        unsafe { dlshare_tensor_info(h, dl.as_mut_ptr(), &mut flags) },
        DLSHARE_OK
    );
    // SAFETY: written on success.
    let dl = unsafe { dl.assume_init() };
    assert_eq!(dl.ndim as usize, shape.len());
    if d.shared {
        assert_eq!(dl.data.cast::<u8>(), data, "a shared tensor moved the data");
        assert_eq!(dl.byte_offset, byte_offset);
    } else {
        // A copy: C-contiguous fresh memory with exactly the source elements.
        assert_eq!(dl.byte_offset, 0);
        assert_eq!(dl.data as usize % 64, 0, "copy not aligned");
        let same_type = !o.has_dtype || o.dtype == dtype;
        if same_type && let Some(bs) = byte_strides {
            let n: i64 = shape.iter().product();
            let first = data.wrapping_add(byte_offset as usize);
            // SAFETY: the description is inside the fuzz buffer (only such inputs copy).
            let want = unsafe { gather(first, shape, bs, item as usize) };
            // SAFETY: the copy holds n * item bytes.
            let got = unsafe {
                std::slice::from_raw_parts(dl.data.cast::<u8>(), n as usize * item as usize)
            };
            assert_eq!(got, &want[..], "the copy differs from the source");
        }
    }
    // The result exports and re-imports (sharing), and every owner goes away.
    let mut ev: *mut DLManagedTensorVersioned = null_mut();
    // SAFETY: writable output.
    assert_eq!(unsafe { dlshare_tensor_to_dlpack(h, &mut ev) }, DLSHARE_OK);
    let mut back = null_mut();
    let mut opts = dlshare::ffi::convert::dlshare_options_init(
        dlshare::ffi::convert::dlshare_mode::DLSHARE_MODE_SHARE as i32,
    );
    opts.allow_read_only = true;
    let mut rd = blank_decision();
    // SAFETY: a live export we own.
    let s: dlshare_status = unsafe { dlshare_tensor_from_dlpack(ev, &opts, &mut back, &mut rd) };
    assert_eq!(
        s,
        DLSHARE_OK,
        "our own export did not re-import: {} {:?} (import decision {:?})",
        status_name(s),
        String::from_utf8_lossy(&summary(&rd).2),
        String::from_utf8_lossy(&summary(d).2)
    );
    assert_eq!(dlshare_tensor_release(back), DLSHARE_OK);
}
