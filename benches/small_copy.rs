//! Per-call overhead of a small conversion through the C API (issue #4 target: <= 200 ns):
//! a 16-element view in, a new tensor out, the tensor released. Also the pieces of that call
//! on their own, to show where the time goes. A benchmark, not a test: it prints figures.
//!
//! Run: cargo bench --bench small_copy

use std::hint::black_box;
use std::time::Instant;

use dlshare::dlpack::{DLDataType, DLDevice};
use dlshare::ffi::convert::{
    dlshare_decision, dlshare_mode, dlshare_options_init, dlshare_tensor_from_view, dlshare_view,
};
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::tensor::{dlshare_tensor_empty, dlshare_tensor_release};

/// Median over `rounds` of the mean time per call in a batch of `batch` calls, in ns.
fn ns_per_call(batch: u32, rounds: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..batch {
        f();
    }
    let mut means: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .collect();
    means.sort_by(f64::total_cmp);
    means[rounds / 2]
}

fn dtype(code: u8, bits: u8) -> DLDataType {
    DLDataType {
        code,
        bits,
        lanes: 1,
    }
}

fn main() {
    let cpu = DLDevice {
        device_type: 1,
        device_id: 0,
    };
    let (f32_, f64_) = (dtype(2, 32), dtype(2, 64));
    let data: Vec<f64> = (0..16).map(f64::from).collect();
    let shape = [16i64];
    let view = dlshare_view {
        data: data.as_ptr() as *mut _,
        dtype: f64_,
        ndim: 1,
        shape: shape.as_ptr(),
        byte_strides: std::ptr::null(),
        device: cpu,
        flags: 0,
        release: None,
        release_ctx: std::ptr::null_mut(),
    };
    let mut cast = dlshare_options_init(dlshare_mode::DLSHARE_MODE_SHARE_OR_COPY as i32);
    cast.has_dtype = true;
    cast.dtype = f32_;
    let copy = dlshare_options_init(dlshare_mode::DLSHARE_MODE_COPY as i32);
    let share = dlshare_options_init(dlshare_mode::DLSHARE_MODE_SHARE as i32);

    let convert = |options: &dlshare::ffi::convert::dlshare_options, decision: bool| {
        let mut out: *mut dlshare_tensor = std::ptr::null_mut();
        let mut d = std::mem::MaybeUninit::<dlshare_decision>::uninit();
        let d_ptr = if decision {
            d.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: valid view, options and output pointers.
        let status =
            unsafe { dlshare_tensor_from_view(black_box(&view), options, &mut out, d_ptr) };
        debug_assert_eq!(status as i32, 0);
        dlshare_tensor_release(black_box(out));
    };
    let (batch, rounds) = (200_000, 15);
    // `cargo bench --bench small_copy -- WORD` runs only the rows whose name contains WORD
    // (for profiling one of them).
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let rows: [(&str, &dyn Fn() -> f64); 6] = [
        ("from_view f64->f32 (16) + release, no decision", &|| {
            ns_per_call(batch, rounds, || convert(&cast, false))
        }),
        ("from_view f64->f32 (16) + release, with decision", &|| {
            ns_per_call(batch, rounds, || convert(&cast, true))
        }),
        ("from_view COPY f64 (16) + release", &|| {
            ns_per_call(batch, rounds, || convert(&copy, false))
        }),
        ("from_view SHARE (16) + release", &|| {
            ns_per_call(batch, rounds, || convert(&share, false))
        }),
        ("tensor_empty f32 (16) + release", &|| {
            ns_per_call(batch, rounds, || {
                let mut out: *mut dlshare_tensor = std::ptr::null_mut();
                // SAFETY: valid shape and output pointers.
                unsafe { dlshare_tensor_empty(f32_, 1, shape.as_ptr(), cpu, &mut out) };
                dlshare_tensor_release(black_box(out));
            })
        }),
        ("kernel only: 16 x f64->f32 into a buffer", &|| {
            ns_per_call(batch, rounds, || {
                let mut out = [0u8; 64];
                let src = dlshare::internals::kernels::Source {
                    ptr: data.as_ptr().cast(),
                    dtype: dlshare::DType::F64,
                    shape: &shape,
                    byte_strides: &[8],
                    byte_swapped: false,
                };
                // SAFETY: 16 readable f64 values, 64-byte output.
                unsafe {
                    dlshare::internals::kernels::copy_to_contiguous(
                        &src,
                        &mut out,
                        dlshare::DType::F32,
                    )
                }
                .unwrap();
                black_box(out);
            })
        }),
    ];
    println!("small conversions through the C API (ns per call, median of {rounds} x {batch})");
    for (name, measure) in rows {
        if only.as_ref().is_none_or(|w| name.contains(w.as_str())) {
            println!("  {name:<50} {:8.1}", measure());
        }
    }
}
