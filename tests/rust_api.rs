#![cfg(feature = "ndarray")]
//! The Rust API: `Tensor::from_ndarray` (no copy), `as_array_view` / `as_array_view_mut`
//! (including negative, zero and Fortran strides), dtype mismatches, and `dlshare::convert` on
//! Rust tensors and sources.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dlshare::SourceFlags;
use dlshare::convert::{Mode, Options, Reason, Source, convert, convert_tensor, decide};
use dlshare::storage::{Release, Storage};
use dlshare::{DType, Device, Error, Tensor};
use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder, s};

use common::{Buf, lock, lock_exclusive};

fn arange(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| i as f32 * 0.5 - 1.0).collect()).unwrap()
}

#[test]
fn from_ndarray_shares_without_copying() {
    let _g = lock();
    let a = arange(&[3, 4]);
    let expected = a.clone();
    let ptr = a.as_ptr();
    let t = Tensor::from_ndarray(a);
    assert_eq!(
        t.data_ptr().cast_const(),
        ptr.cast::<u8>(),
        "from_ndarray copied"
    );
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(t.shape(), [3, 4]);
    assert_eq!(t.strides(), [4, 1]);
    assert_eq!(t.device(), Device::CPU);
    assert!(!t.is_read_only() && !t.is_copy());
    assert!(t.is_c_contiguous());
    let v = t.as_array_view::<f32>().unwrap();
    assert_eq!(v.as_ptr(), ptr);
    assert_eq!(v, expected);
}

#[test]
fn mutable_view_round_trip() {
    let _g = lock();
    let mut t = Tensor::from_ndarray(ArrayD::<i64>::zeros(IxDyn(&[2, 3])));
    {
        let mut m = t.as_array_view_mut::<i64>().unwrap();
        m[[1, 2]] = 42;
        m[[0, 0]] = -7;
    }
    let v = t.as_array_view::<i64>().unwrap();
    assert_eq!(v[[1, 2]], 42);
    assert_eq!(v[[0, 0]], -7);
    assert_eq!(v.iter().filter(|&&x| x == 0).count(), 4);
    // A clone shares the storage: the write is visible there too.
    let u = t.clone();
    assert!(u.shares_storage_with(&t));
    assert_eq!(u.as_array_view::<i64>().unwrap()[[1, 2]], 42);
}

#[test]
fn fortran_order_arrays_keep_their_strides() {
    let _g = lock();
    let f =
        ArrayD::from_shape_vec(IxDyn(&[3, 4]).f(), (0..12).map(|i| i as u16).collect()).unwrap();
    let expected = f.clone();
    let t = Tensor::from_ndarray(f);
    assert_eq!(t.strides(), [1, 3]);
    assert!(t.is_f_contiguous() && !t.is_c_contiguous());
    assert_eq!(t.as_array_view::<u16>().unwrap(), expected);
    let (c, d) = convert_tensor(&t, &Options::new(Mode::Copy)).unwrap();
    assert!(!d.shared);
    assert!(c.is_c_contiguous() && c.is_copy());
    assert_eq!(c.data_ptr() as usize % 256, 0);
    assert_eq!(c.as_array_view::<u16>().unwrap(), expected);
}

#[test]
fn negative_strides_view_and_convert() {
    let _g = lock();
    // An owned array whose axis 0 runs backwards in memory.
    let mut a = arange(&[3, 4]);
    a.invert_axis(Axis(0));
    assert!(a.strides()[0] < 0);
    let expected = a.clone();
    let reversed_values = arange(&[3, 4]).slice(s![..;-1, ..]).to_owned().into_dyn();
    assert_eq!(expected, reversed_values);
    let first = a.as_ptr();
    let mut t = Tensor::from_ndarray(a);
    assert_eq!(t.strides(), [-4, 1]);
    assert_eq!(t.data_ptr().cast_const(), first.cast::<u8>());
    assert_eq!(t.as_array_view::<f32>().unwrap(), expected);
    {
        let mut m = t.as_array_view_mut::<f32>().unwrap();
        assert_eq!(m, expected);
        m[[0, 0]] = 100.0;
    }
    // (0, 0) is the first logical element, the last row in memory.
    // SAFETY: the tensor keeps the array alive.
    assert_eq!(unsafe { t.data_ptr().cast::<f32>().read() }, 100.0);

    // SHARE refuses, SHARE_OR_COPY and COPY produce C-contiguous copies with the same values.
    match convert_tensor(&t, &Options::new(Mode::Share)) {
        Err(Error::CannotShare(Reason::NegativeStride, msg)) => assert!(!msg.is_empty()),
        other => panic!("expected a negative-stride refusal, got {other:?}"),
    }
    let view_now = t.as_array_view::<f32>().unwrap().to_owned();
    for (mode, reason) in [
        (Mode::ShareOrCopy, Reason::NegativeStride),
        (Mode::Copy, Reason::CopyRequested),
    ] {
        let (c, d) = convert_tensor(&t, &Options::new(mode)).unwrap();
        assert!(!d.shared);
        assert_eq!(d.reason, reason);
        assert!(!d.detail().is_empty());
        assert!(c.is_c_contiguous() && c.is_copy() && !c.shares_storage_with(&t));
        assert_eq!(c.strides(), [4, 1]);
        assert_eq!(c.as_array_view::<f32>().unwrap(), view_now);
    }
}

#[test]
fn negative_strides_from_a_source_view() {
    let _g = lock();
    // A raw source: int32 3 x 2 with rows reversed (NumPy a[::-1]), then copied.
    let values: Vec<i32> = (0..6).map(|i| i * 10 + 1).collect();
    let buf = Buf::from_bytes(&common::to_bytes(&values));
    let src =
        // SAFETY: the description lies inside a buffer that outlives every tensor made from it.
        unsafe {
            Source::from_raw_parts(
                buf.ptr().wrapping_add(16),
                0,
                DType::I32,
                vec![3, 2],
                vec![-8, 4],
                Device::CPU,
                SourceFlags {
                    read_only: false,
                    byte_swapped: false,
                    subbyte_padded: false,
                },
            )
        };
    let released = Arc::new(AtomicUsize::new(0));
    let r = released.clone();
    let owner = move || {
        Arc::new(Storage::foreign(
            std::ptr::null_mut(),
            0,
            Device::CPU,
            Release::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
        ))
    };
    let explained = decide(&src, &Options::new(Mode::ShareOrCopy)).unwrap();
    let (t, d) = convert(&src, &Options::new(Mode::ShareOrCopy), owner).unwrap();
    assert_eq!(d, explained, "decide and convert disagree");
    assert_eq!(d.reason, Reason::NegativeStride);
    assert_eq!(
        released.load(Ordering::SeqCst),
        1,
        "owner released right after the copy"
    );
    let v = t.as_array_view::<i32>().unwrap();
    assert_eq!(v.as_slice().unwrap(), [41, 51, 21, 31, 1, 11]);
}

#[test]
fn dtype_mismatch_is_an_error() {
    let _g = lock();
    let mut t = Tensor::from_ndarray(arange(&[2, 2]));
    for e in [
        t.as_array_view::<f64>().map(|_| ()).unwrap_err(),
        t.as_array_view::<i32>().map(|_| ()).unwrap_err(),
        t.as_array_view::<[f32; 2]>().map(|_| ()).unwrap_err(),
        t.as_array_view_mut::<u32>().map(|_| ()).unwrap_err(),
    ] {
        match e {
            Error::InvalidArgument(msg) => assert!(msg.contains("float32"), "{msg}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    assert!(t.as_array_view::<f32>().is_ok());
}

#[test]
fn every_element_type_views_its_own_dtype() {
    let _g = lock();
    fn check<T: dlshare::Element + PartialEq + std::fmt::Debug>(values: Vec<T>) {
        let a = ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.clone()).unwrap();
        let t = Tensor::from_ndarray(a);
        assert_eq!(t.dtype(), T::DTYPE);
        assert_eq!(t.nbytes() as usize, values.len() * std::mem::size_of::<T>());
        assert_eq!(
            t.as_array_view::<T>()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            values
        );
    }
    check(vec![true, false, true]);
    check(vec![-1i8, 2]);
    check(vec![-1i16, 2]);
    check(vec![-1i32, 2]);
    check(vec![-1i64, 2]);
    check(vec![1u8, 2]);
    check(vec![1u16, 2]);
    check(vec![1u32, 2]);
    check(vec![1u64, 2]);
    check(vec![half::f16::from_f32(1.5), half::f16::from_f32(-2.0)]);
    check(vec![half::bf16::from_f32(1.5), half::bf16::from_f32(-2.0)]);
    check(vec![1.5f32, -2.0]);
    check(vec![1.5f64, -2.0]);
    check(vec![[1.5f32, -2.0], [0.0, 1.0]]);
    check(vec![[1.5f64, -2.0], [0.0, 1.0]]);
}

#[test]
fn read_only_and_broadcast_tensors_refuse_mutable_views() {
    let _g = lock();
    let buf = Buf::from_bytes(&common::to_bytes(&[1.0f64, 2.0, 3.0]));
    let src =
        // SAFETY: the description lies inside a buffer that outlives every tensor made from it.
        unsafe {
            Source::from_raw_parts(
                buf.ptr(),
                0,
                DType::F64,
                vec![3],
                vec![8],
                Device::CPU,
                SourceFlags {
                    read_only: true,
                    byte_swapped: false,
                    subbyte_padded: false,
                },
            )
        };
    let owner = || {
        Arc::new(Storage::foreign(
            std::ptr::null_mut(),
            0,
            Device::CPU,
            Release::none(),
        ))
    };
    let (mut ro, d) =
        convert(&src, &Options::new(Mode::Share).allowing_read_only(), owner).unwrap();
    assert!(d.shared && ro.is_read_only());
    assert_eq!(
        ro.as_array_view::<f64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [1.0, 2.0, 3.0]
    );
    assert!(matches!(
        ro.as_array_view_mut::<f64>(),
        Err(Error::ReadOnly(_))
    ));

    // SAFETY: every row is the same three elements of `buf`, which outlives the tensors.
    let bsrc = unsafe {
        Source::from_raw_parts(
            src.data(),
            0,
            DType::F64,
            vec![4, 3],
            vec![0, 8],
            Device::CPU,
            SourceFlags::default(),
        )
    };
    let (mut b, d) = convert(&bsrc, &Options::new(Mode::Share), owner).unwrap();
    assert!(d.shared);
    assert_eq!(b.strides(), [0, 1]);
    let v = b.as_array_view::<f64>().unwrap();
    assert_eq!(v.shape(), [4, 3]);
    assert!(v.rows().into_iter().all(|r| r.to_vec() == [1.0, 2.0, 3.0]));
    assert!(matches!(
        b.as_array_view_mut::<f64>(),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn views_of_empty_and_zero_d_tensors() {
    let _g = lock();
    // Zero-size with NULL data, shared through a source (as a DLPack or view import would).
    let src =
        // SAFETY: zero-size: no element is read or written.
        unsafe {
            Source::from_raw_parts(
                std::ptr::null_mut(),
                0,
                DType::F32,
                vec![0, 3],
                vec![12, 4],
                Device::CPU,
                SourceFlags {
                    read_only: false,
                    byte_swapped: false,
                    subbyte_padded: false,
                },
            )
        };
    let owner = || {
        Arc::new(Storage::foreign(
            std::ptr::null_mut(),
            0,
            Device::CPU,
            Release::none(),
        ))
    };
    let (mut t, d) = convert(&src, &Options::new(Mode::Share), owner).unwrap();
    assert!(d.shared);
    assert!(t.data_ptr().is_null());
    assert_eq!(t.as_array_view::<f32>().unwrap().shape(), [0, 3]);
    assert_eq!(t.as_array_view_mut::<f32>().unwrap().len(), 0);

    // Zero-size at an unaligned address: nothing to read, so it is shared and viewable.
    let buf = Buf::from_bytes(&[0u8; 8]);
    // SAFETY: zero-size: no element is read.
    let odd = unsafe {
        Source::from_raw_parts(
            buf.ptr().wrapping_add(1),
            0,
            DType::F32,
            vec![3, 0],
            src.byte_strides().to_vec(),
            Device::CPU,
            SourceFlags::default(),
        )
    };
    let (t, d) = convert(&odd, &Options::new(Mode::Share), owner).unwrap();
    assert!(d.shared);
    assert_eq!(t.as_array_view::<f32>().unwrap().shape(), [3, 0]);

    let z = Tensor::from_ndarray(ArrayD::from_elem(IxDyn(&[]), 2.5f64));
    assert_eq!(z.ndim(), 0);
    let v = z.as_array_view::<f64>().unwrap();
    assert_eq!(v.ndim(), 0);
    assert_eq!(v[[]], 2.5);
}

#[test]
fn from_ndarray_storage_lives_until_the_last_tensor() {
    let _g = lock_exclusive();
    let start = dlshare::live_storage_count();
    let t = Tensor::from_ndarray(arange(&[5]));
    assert_eq!(dlshare::live_storage_count(), start + 1);
    let u = t.clone();
    let (shared, d) = convert_tensor(&t, &Options::new(Mode::ShareOrCopy)).unwrap();
    assert!(d.shared && shared.shares_storage_with(&t));
    let (cast, d) =
        convert_tensor(&t, &Options::new(Mode::ShareOrCopy).with_dtype(DType::F64)).unwrap();
    assert_eq!(d.reason, Reason::DtypeChange);
    assert_eq!(
        cast.as_array_view::<f64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [-1.0, -0.5, 0.0, 0.5, 1.0]
    );
    assert_eq!(dlshare::live_storage_count(), start + 2);
    drop(t);
    drop(u);
    assert_eq!(dlshare::live_storage_count(), start + 2);
    assert_eq!(shared.as_array_view::<f32>().unwrap()[4], 1.0);
    drop(shared);
    assert_eq!(dlshare::live_storage_count(), start + 1);
    drop(cast);
    assert_eq!(dlshare::live_storage_count(), start);
}

#[test]
fn imported_handles_are_viewable_from_rust() {
    let _g = lock();
    use common::*;
    let values: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let mut spec = Spec::new(F32, &[2, 4], to_bytes(&values));
    spec.byte_offset = 0;
    let p = produce_versioned(&spec);
    let (s, h, _) = import_versioned(p.managed, &opts(SHARE));
    ok(s);
    let t = dlshare::ffi::handles::get(h).unwrap();
    let v = t.as_array_view::<f32>().unwrap();
    assert_eq!(v.as_ptr().cast::<std::ffi::c_void>(), p.data.cast_const());
    assert_eq!(v.as_slice().unwrap(), values);
    drop(t);
    release(h);
    assert_eq!(p.deletions(), 1);
}
