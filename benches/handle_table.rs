//! Cost of the validating handle table (DESIGN §2 asks to measure it): nanoseconds per
//! accessor call through the C API (table lookup + panic boundary) next to the same read on a
//! plain Rust `Tensor`, and per retain/release pair. A benchmark, not a test: it prints figures.
//!
//! Run: cargo bench --bench handle_table

use std::hint::black_box;
use std::time::Instant;

use dlshare::dlpack::{DLDataType, DLDevice};
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::tensor::*;

fn per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let shape = [4i64, 4];
    let mut handle: *mut dlshare_tensor = std::ptr::null_mut();
    let dtype = DLDataType {
        code: 2,
        bits: 32,
        lanes: 1,
    };
    let cpu = DLDevice {
        device_type: 1,
        device_id: 0,
    };
    // SAFETY: valid shape and output pointers.
    let status = unsafe { dlshare_tensor_zeros(dtype, 2, shape.as_ptr(), cpu, &mut handle) };
    assert_eq!(status as i32, 0);
    let tensor = dlshare::Tensor::empty(dlshare::DType::F32, &shape, dlshare::Device::CPU, true)
        .expect("tensor");
    let n = 2_000_000;
    let mut ndim = 0i32;
    let c_api = per_call(n, || {
        // SAFETY: live handle, valid output.
        unsafe { dlshare_tensor_ndim(black_box(handle), &mut ndim) };
        black_box(ndim);
    });
    let rust = per_call(n, || {
        black_box(black_box(&tensor).ndim());
    });
    let retain_release = per_call(n, || {
        dlshare_tensor_retain(black_box(handle));
        dlshare_tensor_release(black_box(handle));
    });
    let mut fresh = 0;
    let create_release = per_call(n / 10, || {
        let mut h: *mut dlshare_tensor = std::ptr::null_mut();
        // SAFETY: valid shape and output pointers.
        unsafe { dlshare_tensor_empty(dtype, 2, shape.as_ptr(), cpu, &mut h) };
        fresh += 1;
        dlshare_tensor_release(h);
    });
    println!("handle table cost (ns per call, {n} calls)");
    println!("  dlshare_tensor_ndim via handle     {c_api:8.1}");
    println!("  Tensor::ndim in Rust (no table)    {rust:8.1}");
    println!(
        "  ratio (C API / Rust)               {:8.1}x",
        c_api / rust.max(0.1)
    );
    println!("  retain + release pair              {retain_release:8.1}");
    println!("  empty 4x4 f32 + release            {create_release:8.1}");
    dlshare_tensor_release(handle);
}
