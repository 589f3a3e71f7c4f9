//! Where a second thread starts to pay (the threshold in src/kernels/parallel.rs): copies into
//! a new tensor (allocation included) of growing size, on 1 thread and on 2 threads with the
//! size threshold lifted, for a contiguous copy and an F-order -> C transpose (float32).
//! A benchmark, not a test: it prints times and the speed-up.
//!
//! Run: cargo bench --bench threads

use std::sync::Arc;
use std::time::Instant;

use dlshare::SourceFlags;
use dlshare::convert::{Mode, Options, Source, convert};
use dlshare::internals::kernels;
use dlshare::storage::{Release, Storage};
use dlshare::{DType, Device, Tensor};

fn median_us(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[rounds / 2]
}

fn main() {
    let max_side = 8192i64;
    let input = Tensor::empty(DType::F32, &[max_side * max_side], Device::CPU, true).unwrap();
    let copy = |shape: [i64; 2], strides: [i64; 2]| {
        let src =
            // SAFETY: the layout lies inside `input`, alive for the whole conversion.
            unsafe {
                Source::from_raw_parts(
                    input.data_ptr(),
                    0,
                    DType::F32,
                    shape.to_vec(),
                    strides.to_vec(),
                    Device::CPU,
                    SourceFlags {
                        read_only: false,
                        byte_swapped: false,
                        subbyte_padded: false,
                    },
                )
            };
        let opts = Options::new(Mode::Copy);
        let owner = || {
            Arc::new(Storage::foreign(
                std::ptr::null_mut(),
                0,
                Device::CPU,
                Release::none(),
            ))
        };
        move || drop(convert(&src, &opts, owner).unwrap())
    };
    println!("new tensor, float32, median us (1 thread | 2 threads, no size threshold | speed-up)");
    println!(
        "{:>10} {:>26} {:>26}",
        "output", "contiguous copy", "F-order -> C"
    );
    kernels::set_parallel_min_bytes(1);
    for side in [256i64, 512, 724, 1024, 1448, 2048, 4096, 8192] {
        let n = side * side;
        let rounds = if side >= 4096 { 9 } else { 41 };
        let mut cells = Vec::new();
        for (shape, strides) in [([side, side], [4 * side, 4]), ([side, side], [4, 4 * side])] {
            dlshare::set_num_threads(1);
            let one = median_us(rounds, copy(shape, strides));
            dlshare::set_num_threads(2);
            let two = median_us(rounds, copy(shape, strides));
            cells.push(format!("{one:9.0} {two:9.0} {:5.2}x", one / two));
        }
        println!("{:>7} KiB {:>26} {:>26}", n * 4 / 1024, cells[0], cells[1]);
    }
    kernels::set_parallel_min_bytes(kernels::PARALLEL_MIN_BYTES);
    dlshare::set_num_threads(0);
}
