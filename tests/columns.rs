#![cfg(feature = "ndarray")] // results are read through ndarray views (Tensor::as_array_view)
//! The columns kernel (`dlshare::columns`) on hand-made columns: every column kind, NaN policy,
//! normalisation and output dtype, strided / byte-swapped / masked inputs, the multi-threaded
//! path against a sequential reference, `Tensor::restride`, and the two C entry points.

use std::ffi::CStr;

use dlshare::columns::{
    Column, ColumnKind, ColumnsOptions, NanPolicy, Normalize, tensor_from_columns,
};
use dlshare::dlpack::{DLDataType, DLDevice};
use dlshare::ffi::columns::{
    dlshare_column, dlshare_column_init, dlshare_column_kind, dlshare_columns_options_init,
    dlshare_nan_policy, dlshare_normalize, dlshare_tensor_from_columns, dlshare_tensor_view,
};
use dlshare::ffi::convert::{DLSHARE_VIEW_BYTE_SWAPPED, dlshare_view};
use dlshare::ffi::dlshare_status::{self, *};
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::tensor::{dlshare_tensor_info, dlshare_tensor_release};
use dlshare::ffi::version::dlshare_last_error_message;
use dlshare::{DType, Device, Error, Tensor};
use half::{bf16, f16};

const NAN: f64 = f64::NAN;
const DAY_NS: i64 = 86_400_000_000_000;
const NAT: i64 = i64::MIN;

fn value<T: dlshare::Element>(data: &[T]) -> Column<'_> {
    Column::from_slice(data, ColumnKind::Value)
}

fn opts(nan: NanPolicy) -> ColumnsOptions {
    ColumnsOptions {
        nan,
        ..Default::default()
    }
}

fn normalized(nan: NanPolicy, normalize: Normalize) -> ColumnsOptions {
    ColumnsOptions {
        dtype: DType::F64,
        nan,
        normalize,
    }
}

/// Shape and contents (as f64) of a float32 or float64 result; checks the layout on the way.
fn read(t: &Tensor) -> (Vec<i64>, Vec<f64>) {
    assert!(t.is_c_contiguous(), "output must be C-contiguous");
    assert!(t.is_copy());
    assert_eq!(t.ndim(), 2);
    let values = match t.dtype() {
        DType::F32 => t
            .as_array_view::<f32>()
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DType::F64 => t.as_array_view::<f64>().unwrap().iter().copied().collect(),
        d => panic!("read() handles float outputs, got {d}"),
    };
    (t.shape().to_vec(), values)
}

fn build(cols: &[Column<'_>], o: ColumnsOptions) -> (Vec<i64>, Vec<f64>) {
    read(&tensor_from_columns(cols, &o).expect("conversion succeeds"))
}

/// Element-wise equality where NaN equals NaN.
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * (1.0 + y.abs()))
}

fn message(e: Error) -> String {
    e.message().to_string()
}

// ---------------------------------------------------------------------------------------------
// values and dtypes

#[test]
fn value_columns_of_every_real_dtype_are_cast_like_astype() {
    let f = [1.5f64, -2.25, 3.0];
    let i = [i64::MAX, -7, 0];
    let b = [true, false, true];
    let u = [255u8, 0, 7];
    let h = [
        f16::from_f32(0.5),
        f16::from_f32(-1.0),
        f16::from_f32(65504.0),
    ];
    let bh = [
        bf16::from_f32(1.0),
        bf16::from_f32(-3.5),
        bf16::from_f32(0.125),
    ];
    let s = [1.25f32, 2.5, -0.0];
    let i8s = [-128i8, 127, 0];
    let cols = [
        value(&f),
        value(&i),
        value(&b),
        value(&u),
        value(&h),
        value(&bh),
        value(&s),
        value(&i8s),
    ];
    let (shape, got) = build(&cols, ColumnsOptions::default());
    assert_eq!(shape, vec![3, 8]);
    let expect: Vec<f64> = (0..3)
        .flat_map(|r| {
            [
                f[r] as f32,
                i[r] as f32, // direct i64 -> f32 rounding, as NumPy
                f32::from(u8::from(b[r])),
                f32::from(u[r]),
                h[r].to_f32(),
                bh[r].to_f32(),
                s[r],
                f32::from(i8s[r]),
            ]
        })
        .map(f64::from)
        .collect();
    assert!(same(&got, &expect), "{got:?} != {expect:?}");
}

#[test]
fn float64_output_keeps_values_exactly() {
    let f = [0.1f64, 1e300, -5e-324];
    let i = [(1i64 << 53) + 1, 3, -4];
    let (shape, got) = build(
        &[value(&f), value(&i)],
        ColumnsOptions {
            dtype: DType::F64,
            ..Default::default()
        },
    );
    assert_eq!(shape, vec![3, 2]);
    assert_eq!(
        got,
        vec![0.1, ((1i64 << 53) + 1) as f64, 1e300, 3.0, -5e-324, -4.0]
    );
}

#[test]
fn integer_bool_and_half_outputs_use_the_cast_kernel() {
    let f = [1.9f64, -1.9, 300.0];
    let i = [1i64, 2, 3];
    let t = tensor_from_columns(
        &[value(&f), value(&i)],
        &ColumnsOptions {
            dtype: DType::I32,
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<i32> = t.as_array_view::<i32>().unwrap().iter().copied().collect();
    assert_eq!(got, vec![1, 1, -1, 2, 300, 3]);

    let t = tensor_from_columns(
        &[value(&f)],
        &ColumnsOptions {
            dtype: DType::U8,
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<u8> = t.as_array_view::<u8>().unwrap().iter().copied().collect();
    assert_eq!(got, vec![1, 255, 44]); // NumPy: astype(uint8) truncates, then wraps

    let t = tensor_from_columns(
        &[value(&f)],
        &ColumnsOptions {
            dtype: DType::BOOL,
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<bool> = t.as_array_view::<bool>().unwrap().iter().copied().collect();
    assert_eq!(got, vec![true, true, true]);

    let t = tensor_from_columns(
        &[value(&f)],
        &ColumnsOptions {
            dtype: DType::F16,
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<f16> = t.as_array_view::<f16>().unwrap().iter().copied().collect();
    assert_eq!(got, f.iter().map(|&v| f16::from_f64(v)).collect::<Vec<_>>());

    let t = tensor_from_columns(
        &[value(&f)],
        &ColumnsOptions {
            dtype: DType::BF16,
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<bf16> = t.as_array_view::<bf16>().unwrap().iter().copied().collect();
    assert_eq!(
        got,
        f.iter()
            .map(|&v| bf16::from_f32(v as f32))
            .collect::<Vec<_>>()
    );
}

#[test]
fn strided_negative_stride_and_byte_swapped_columns() {
    // A 3 x 2 row-major f64 block: column 1 has a 16-byte stride.
    let block = [1.0f64, 10.0, 2.0, 20.0, 3.0, 30.0];
    let base = block.as_ptr().cast::<u8>();
    // SAFETY: 3 elements 16 bytes apart starting at element 1 lie inside `block`.
    let strided =
        unsafe { Column::from_raw(base.add(8), DType::F64, 3, 16, false, ColumnKind::Value) };
    // SAFETY: elements 4, 2, 0 of `block` (a reversed view).
    let reversed =
        unsafe { Column::from_raw(base.add(32), DType::F64, 3, -16, false, ColumnKind::Value) };
    let swapped_data: Vec<i32> = [5i32, -6, 7].iter().map(|v| v.swap_bytes()).collect();
    // SAFETY: a contiguous i32 slice read in swapped byte order.
    let swapped = unsafe {
        Column::from_raw(
            swapped_data.as_ptr().cast(),
            DType::I32,
            3,
            4,
            true,
            ColumnKind::Value,
        )
    };
    let (_, got) = build(&[strided, reversed, swapped], ColumnsOptions::default());
    assert_eq!(got, vec![10.0, 3.0, 5.0, 20.0, 2.0, -6.0, 30.0, 1.0, 7.0]);
}

#[test]
fn columns_over_tensors() {
    let t =
        Tensor::from_ndarray(ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]).into_dyn());
    let col1 = t.restride(&[3], &[2], 1).unwrap(); // the second column, stride 2
    let (_, got) = build(
        &[Column::from_tensor(&col1, ColumnKind::Value).unwrap()],
        ColumnsOptions::default(),
    );
    assert_eq!(got, vec![2.0, 4.0, 6.0]);
    assert!(
        Column::from_tensor(&t, ColumnKind::Value).is_err(),
        "2-D tensors are not columns"
    );
}

// ---------------------------------------------------------------------------------------------
// NaN policies

fn nan_frame() -> ([f64; 5], [f64; 5], [i64; 5]) {
    (
        [NAN, 2.0, NAN, 4.0, NAN],
        [1.0, NAN, 3.0, 4.0, 5.0],
        [10, 20, 30, 40, 50],
    )
}

#[test]
fn raise_names_the_columns_with_missing_values() {
    let (a, b, c) = nan_frame();
    let err = tensor_from_columns(
        &[value(&c), value(&a), value(&b)],
        &ColumnsOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    let text = message(err);
    assert!(text.contains("columns 1, 2 hold missing values"), "{text}");
    // RAISE with normalisation finds them in the statistics pass
    let err = tensor_from_columns(
        &[value(&a)],
        &normalized(NanPolicy::Raise, Normalize::MinMax),
    )
    .unwrap_err();
    assert!(message(err).contains("column 0 holds missing values"));
    // no missing value: fine
    assert!(tensor_from_columns(&[value(&c)], &ColumnsOptions::default()).is_ok());
}

#[test]
fn drop_removes_rows_with_any_missing_value() {
    let (a, b, c) = nan_frame();
    let (shape, got) = build(&[value(&a), value(&b), value(&c)], opts(NanPolicy::Drop));
    assert_eq!(shape, vec![1, 3]);
    assert_eq!(got, vec![4.0, 4.0, 40.0]);
    let (shape, got) = build(&[value(&b), value(&c)], opts(NanPolicy::Drop));
    assert_eq!(shape, vec![4, 2]);
    assert_eq!(got, vec![1.0, 10.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0]);
    let all = [NAN, NAN];
    let (shape, got) = build(&[value(&all)], opts(NanPolicy::Drop));
    assert_eq!((shape, got), (vec![0, 1], vec![]));
}

#[test]
fn fill_and_mean_replace_missing_values() {
    let (a, b, c) = nan_frame();
    let (_, got) = build(
        &[value(&a), value(&b), value(&c)],
        opts(NanPolicy::Fill(-1.0)),
    );
    assert_eq!(
        got,
        vec![
            -1.0, 1.0, 10.0, 2.0, -1.0, 20.0, -1.0, 3.0, 30.0, 4.0, 4.0, 40.0, -1.0, 5.0, 50.0
        ]
    );
    let (_, got) = build(
        &[value(&a), value(&b)],
        ColumnsOptions {
            dtype: DType::F64,
            ..opts(NanPolicy::Mean)
        },
    );
    assert_eq!(got, vec![3.0, 1.0, 2.0, 3.25, 3.0, 3.0, 4.0, 4.0, 3.0, 5.0]);
    // an all-missing column has no mean: it stays NaN, as fillna(df.mean()) leaves it
    let all = [NAN, NAN];
    let (_, got) = build(&[value(&all)], opts(NanPolicy::Mean));
    assert!(got.iter().all(|v| v.is_nan()));
    assert!(tensor_from_columns(&[value(&all)], &opts(NanPolicy::Fill(NAN))).is_err());
}

#[test]
fn ffill_bfill_and_both() {
    let (a, b, _) = nan_frame();
    let cols = [value(&a), value(&b)];
    let (_, got) = build(&cols, opts(NanPolicy::Ffill));
    assert!(
        same(&got, &[NAN, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0]),
        "{got:?}"
    );
    let (_, got) = build(&cols, opts(NanPolicy::Bfill));
    assert!(
        same(&got, &[2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 4.0, NAN, 5.0]),
        "{got:?}"
    );
    let (_, got) = build(&cols, opts(NanPolicy::FfillBfill));
    assert!(
        same(&got, &[2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0]),
        "{got:?}"
    );
}

#[test]
fn a_missing_mask_marks_values_missing() {
    let data = [1i64, 2, 3, 4];
    let mask = [0u8, 1, 0, 1];
    let col = value(&data).with_missing(&mask);
    let (_, got) = build(&[col], opts(NanPolicy::Ffill));
    assert_eq!(got, vec![1.0, 1.0, 3.0, 3.0]);
    let (shape, _) = build(&[col], opts(NanPolicy::Drop));
    assert_eq!(shape, vec![2, 1]);
    let short = [0u8; 3];
    assert!(
        tensor_from_columns(&[value(&data).with_missing(&short)], &opts(NanPolicy::Drop)).is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// datetimes and categories

#[test]
fn datetimes_as_days_floor_and_seconds_divide() {
    let ticks = [-DAY_NS / 2, 0, NAT, 18_262 * DAY_NS + 1, -1];
    let days = Column::from_slice(
        &ticks,
        ColumnKind::Datetime {
            divisor: DAY_NS,
            floor: true,
        },
    );
    let secs = Column::from_slice(
        &ticks,
        ColumnKind::Datetime {
            divisor: 1_000_000_000,
            floor: false,
        },
    );
    let (_, got) = build(
        &[days, secs],
        ColumnsOptions {
            dtype: DType::F64,
            ..opts(NanPolicy::Fill(7.0))
        },
    );
    assert_eq!(
        got,
        vec![
            -1.0,
            -43_200.0,
            0.0,
            0.0,
            7.0,
            7.0,
            18_262.0,
            1_577_836_800.000_000_001,
            -1.0,
            -1e-9
        ]
    );
    let err = tensor_from_columns(&[days], &ColumnsOptions::default()).unwrap_err();
    assert!(message(err).contains("column 0 holds missing values"));
    let zero = Column::from_slice(
        &ticks,
        ColumnKind::Datetime {
            divisor: 0,
            floor: true,
        },
    );
    assert!(matches!(
        tensor_from_columns(&[zero], &opts(NanPolicy::Drop)),
        Err(Error::InvalidArgument(_))
    ));
    let f = [1.0f64];
    let wrong = Column::from_slice(
        &f,
        ColumnKind::Datetime {
            divisor: 1,
            floor: true,
        },
    );
    assert!(matches!(
        tensor_from_columns(&[wrong], &opts(NanPolicy::Drop)),
        Err(Error::UnsupportedDtype(_))
    ));
}

#[test]
fn codes_and_onehot() {
    let codes = [1i8, 0, -1, 2, 1];
    let value_col = [0.5f64, 1.5, 2.5, 3.5, 4.5];
    let as_codes = Column::from_slice(&codes, ColumnKind::Codes);
    let onehot = Column::from_slice(&codes, ColumnKind::OneHot { categories: 3 });
    // a fill value or the mean leaves categories as cat.codes / get_dummies encode missing ones
    let (shape, got) = build(
        &[onehot, value(&value_col), as_codes],
        opts(NanPolicy::Fill(9.0)),
    );
    assert_eq!(shape, vec![5, 5]);
    #[rustfmt::skip]
    let expect = vec![
        0.0, 1.0, 0.0, 0.5, 1.0,
        1.0, 0.0, 0.0, 1.5, 0.0,
        0.0, 0.0, 0.0, 2.5, -1.0,
        0.0, 0.0, 1.0, 3.5, 2.0,
        0.0, 1.0, 0.0, 4.5, 1.0,
    ];
    assert_eq!(got, expect);
    // ffill carries categories; drop drops; raise raises
    let (_, got) = build(&[onehot, as_codes], opts(NanPolicy::Ffill));
    assert_eq!(&got[8..12], &[1.0, 0.0, 0.0, 0.0]);
    let (shape, _) = build(&[onehot], opts(NanPolicy::Drop));
    assert_eq!(shape, vec![4, 3]);
    assert!(tensor_from_columns(&[as_codes], &ColumnsOptions::default()).is_err());
    // codes outside the categories are an error
    let small = Column::from_slice(&codes, ColumnKind::OneHot { categories: 2 });
    let err = tensor_from_columns(&[small], &opts(NanPolicy::Drop)).unwrap_err();
    assert!(message(err).contains("category code 2 is out of range"));
    // zero categories: zero output columns
    let none = [-1i32, -1];
    let (shape, _) = build(
        &[Column::from_slice(
            &none,
            ColumnKind::OneHot { categories: 0 },
        )],
        opts(NanPolicy::Fill(0.0)),
    );
    assert_eq!(shape, vec![2, 0]);
    let f = [1.0f64];
    assert!(matches!(
        tensor_from_columns(
            &[Column::from_slice(&f, ColumnKind::Codes)],
            &opts(NanPolicy::Drop)
        ),
        Err(Error::UnsupportedDtype(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// normalisation

fn stats_of(v: &[f64]) -> (f64, f64, f64, f64) {
    let present: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    let n = present.len() as f64;
    let mean = present.iter().sum::<f64>() / n;
    let var = present.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    let min = present.iter().copied().fold(f64::INFINITY, f64::min);
    let max = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

fn column(values: &[f64], width: usize, k: usize) -> Vec<f64> {
    values.iter().skip(k).step_by(width).copied().collect()
}

#[test]
fn minmax_and_zscore_after_the_nan_handling() {
    let (a, b, c) = nan_frame();
    for nan in [
        NanPolicy::Mean,
        NanPolicy::Fill(0.5),
        NanPolicy::Ffill,
        NanPolicy::FfillBfill,
        NanPolicy::Bfill,
        NanPolicy::Drop,
    ] {
        let (_, filled) = build(
            &[value(&a), value(&b), value(&c)],
            ColumnsOptions {
                dtype: DType::F64,
                ..opts(nan)
            },
        );
        for how in [Normalize::MinMax, Normalize::ZScore] {
            let (_, got) = build(&[value(&a), value(&b), value(&c)], normalized(nan, how));
            for k in 0..3 {
                let col = column(&filled, 3, k);
                let (mean, std, min, max) = stats_of(&col);
                let expect: Vec<f64> = col
                    .iter()
                    .map(|x| {
                        if how == Normalize::MinMax {
                            (x - min) / (max - min)
                        } else {
                            (x - mean) / std
                        }
                    })
                    .collect();
                assert!(
                    close(&column(&got, 3, k), &expect, 1e-12),
                    "{nan:?} {how:?} column {k}: {got:?} vs {expect:?}"
                );
            }
        }
    }
    // one-hot columns are normalised as the 0/1 columns get_dummies gives
    let codes = [0i64, 1, 1, 2];
    let oh = Column::from_slice(&codes, ColumnKind::OneHot { categories: 3 });
    let (_, got) = build(&[oh], normalized(NanPolicy::Raise, Normalize::ZScore));
    let (_, dummies) = build(
        &[oh],
        ColumnsOptions {
            dtype: DType::F64,
            ..Default::default()
        },
    );
    for k in 0..3 {
        let col = column(&dummies, 3, k);
        let (mean, std, _, _) = stats_of(&col);
        let expect: Vec<f64> = col.iter().map(|x| (x - mean) / std).collect();
        assert!(close(&column(&got, 3, k), &expect, 1e-12));
    }
    // a constant column gives NaN (0 / 0), as pandas
    let constant = [2.0f64, 2.0];
    let (_, got) = build(
        &[value(&constant)],
        normalized(NanPolicy::Raise, Normalize::MinMax),
    );
    assert!(got.iter().all(|v| v.is_nan()));
    // normalising into an integer dtype is refused
    let err = tensor_from_columns(
        &[value(&constant)],
        &ColumnsOptions {
            dtype: DType::I64,
            nan: NanPolicy::Raise,
            normalize: Normalize::MinMax,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
}

// ---------------------------------------------------------------------------------------------
// the threaded path against a sequential reference

fn reference(cols: &[Vec<f64>], nan: NanPolicy) -> (usize, Vec<f64>) {
    let n = cols[0].len();
    let filled: Vec<Vec<f64>> = cols
        .iter()
        .map(|c| {
            let mut out = c.clone();
            match nan {
                NanPolicy::Ffill | NanPolicy::FfillBfill => {
                    for r in 1..n {
                        if out[r].is_nan() {
                            out[r] = out[r - 1];
                        }
                    }
                    if nan == NanPolicy::FfillBfill {
                        let first = c.iter().copied().find(|v| !v.is_nan()).unwrap_or(NAN);
                        for v in out.iter_mut().take_while(|v| v.is_nan()) {
                            *v = first;
                        }
                    }
                }
                NanPolicy::Bfill => {
                    for r in (0..n.saturating_sub(1)).rev() {
                        if out[r].is_nan() {
                            out[r] = out[r + 1];
                        }
                    }
                }
                _ => {}
            }
            out
        })
        .collect();
    let keep: Vec<bool> = (0..n)
        .map(|r| nan != NanPolicy::Drop || cols.iter().all(|c| !c[r].is_nan()))
        .collect();
    let rows = keep.iter().filter(|&&k| k).count();
    let values = (0..n)
        .filter(|&r| keep[r])
        .flat_map(|r| filled.iter().map(move |c| c[r]))
        .collect();
    (rows, values)
}

#[test]
#[cfg_attr(miri, ignore = "400k rows take too long under Miri")]
fn large_outputs_split_over_threads_match_a_sequential_walk() {
    // 400k rows x 4 f32 columns = 6.4 MB: above the threading threshold. Long missing runs
    // cross every chunk boundary.
    let n = 400_000;
    let cols: Vec<Vec<f64>> = (0..4)
        .map(|k| {
            (0..n)
                .map(|r| {
                    let gap = (r / 1000 + k) % 7 == 0
                        || (k == 3 && r > 10 && r < 300_000)
                        || (k == 2 && r < 5);
                    if gap { NAN } else { (r * 4 + k) as f64 }
                })
                .collect()
        })
        .collect();
    let columns: Vec<Column<'_>> = cols.iter().map(|c| value(c.as_slice())).collect();
    // four threads even on a smaller machine (the cap is process-wide: only thread counts of
    // the other tests change)
    dlshare::set_num_threads(4);
    for nan in [
        NanPolicy::Ffill,
        NanPolicy::Bfill,
        NanPolicy::FfillBfill,
        NanPolicy::Drop,
    ] {
        let (rows, expect) = reference(&cols, nan);
        let (shape, got) = build(
            &columns,
            ColumnsOptions {
                dtype: DType::F64,
                ..opts(nan)
            },
        );
        assert_eq!(shape, vec![rows as i64, 4], "{nan:?}");
        assert!(same(&got, &expect), "{nan:?}");
    }
    let err = tensor_from_columns(&columns, &ColumnsOptions::default()).unwrap_err();
    assert!(message(err).contains("columns 0, 1, 2, 3 hold missing values"));
    let (_, stats) = build(&columns, normalized(NanPolicy::Mean, Normalize::ZScore));
    let (_, filled) = build(
        &columns,
        ColumnsOptions {
            dtype: DType::F64,
            ..opts(NanPolicy::Mean)
        },
    );
    for k in 0..4 {
        let col = column(&filled, 4, k);
        let (mean, std, _, _) = stats_of(&col);
        let expect: Vec<f64> = col.iter().map(|x| (x - mean) / std).collect();
        assert!(close(&column(&stats, 4, k), &expect, 1e-9), "column {k}");
    }
    dlshare::set_num_threads(0);
}

// ---------------------------------------------------------------------------------------------
// argument errors

#[test]
fn argument_errors() {
    assert!(matches!(
        tensor_from_columns(&[], &ColumnsOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    let a = [1.0f64, 2.0];
    let b = [1.0f64];
    let err = tensor_from_columns(&[value(&a), value(&b)], &ColumnsOptions::default()).unwrap_err();
    assert!(message(err).contains("column 1 has 1 rows, column 0 has 2"));
    let c = [[1.0f32, 2.0]];
    assert!(matches!(
        tensor_from_columns(&[value(&c)], &ColumnsOptions::default()),
        Err(Error::UnsupportedDtype(_))
    ));
    assert!(matches!(
        tensor_from_columns(
            &[value(&a)],
            &ColumnsOptions {
                dtype: DType::C64,
                ..Default::default()
            }
        ),
        Err(Error::UnsupportedDtype(_))
    ));
    let code = [0i64];
    let huge = Column::from_slice(
        &code,
        ColumnKind::OneHot {
            categories: usize::MAX / 2,
        },
    );
    assert!(matches!(
        tensor_from_columns(
            &[huge],
            &ColumnsOptions {
                normalize: Normalize::ZScore,
                ..Default::default()
            }
        ),
        Err(Error::Overflow(_))
    ));
    let empty: [f64; 0] = [];
    let (shape, got) = build(&[value(&empty), value(&empty)], ColumnsOptions::default());
    assert_eq!((shape, got), (vec![0, 2], vec![]));
}

// ---------------------------------------------------------------------------------------------
// restride

#[test]
fn restride_makes_zero_copy_windows_inside_the_extent() {
    let rows: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let t = Tensor::from_ndarray(
        ndarray::Array::from_shape_vec((6, 2), rows)
            .unwrap()
            .into_dyn(),
    );
    // windows of 3 rows, step 2: starts 0, 2 (4 + 3 > 6)
    let w = t.restride(&[2, 3, 2], &[4, 2, 1], 0).unwrap();
    assert!(w.shares_storage_with(&t));
    assert!(!w.is_copy());
    let got: Vec<f32> = w.as_array_view::<f32>().unwrap().iter().copied().collect();
    assert_eq!(got, vec![0., 1., 2., 3., 4., 5., 4., 5., 6., 7., 8., 9.]);
    let second = t.restride(&[3, 2], &[2, 1], 4).unwrap();
    assert_eq!(second.data_ptr(), t.data_ptr().wrapping_add(16));
    // one element too far, before the start, or past the end
    let err = t.restride(&[3, 3, 2], &[4, 2, 1], 0).unwrap_err();
    assert!(message(err).contains("outside the tensor's elements 0..=11"));
    assert!(t.restride(&[2], &[1], -1).is_err());
    assert!(t.restride(&[2], &[1], 11).is_err());
    assert!(t.restride(&[2, 2], &[1], 0).is_err());
    // zero-size views are always fine; a view of an empty tensor with elements is not
    assert_eq!(t.restride(&[0, 5], &[100, 100], 1000).unwrap().numel(), 0);
    let empty = Tensor::empty(DType::F32, &[0], Device::CPU, false).unwrap();
    assert!(empty.restride(&[1], &[1], 0).is_err());
    // broadcast (zero) strides and reversed views of a reversed tensor
    let b = t.restride(&[4, 2], &[0, 1], 2).unwrap();
    assert_eq!(
        b.as_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![2., 3., 2., 3., 2., 3., 2., 3.]
    );
    let rev = t.restride(&[6], &[-2], 10).unwrap(); // column 0 backwards
    let back = rev.restride(&[3], &[4], -8).unwrap(); // rows 4, 2, 0 of rev = 2, 6, 10
    assert_eq!(
        back.as_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![2., 6., 10.]
    );
    assert!(
        rev.restride(&[2], &[1], 1).is_err(),
        "must stay on rev's elements' extent"
    );
}

#[test]
fn restride_inherits_read_only() {
    let data = [1.0f64, 2.0, 3.0];
    let mut view = dlshare_view {
        data: data.as_ptr().cast_mut().cast(),
        dtype: DType::F64.into(),
        ndim: 1,
        shape: [3i64].as_ptr(),
        byte_strides: std::ptr::null(),
        device: DLDevice {
            device_type: 1,
            device_id: 0,
        },
        flags: dlshare::ffi::convert::DLSHARE_VIEW_READ_ONLY,
        release: None,
        release_ctx: std::ptr::null_mut(),
    };
    let shape = [3i64];
    view.shape = shape.as_ptr();
    let mut o = dlshare::ffi::convert::dlshare_options_init(
        dlshare::ffi::convert::dlshare_mode::DLSHARE_MODE_SHARE as i32,
    );
    o.allow_read_only = true;
    let mut h: *mut dlshare_tensor = std::ptr::null_mut();
    // SAFETY: valid view over `data`, which outlives the handle.
    let s = unsafe {
        dlshare::ffi::convert::dlshare_tensor_from_view(&view, &o, &mut h, std::ptr::null_mut())
    };
    assert_eq!(s, DLSHARE_OK);
    let mut w: *mut dlshare_tensor = std::ptr::null_mut();
    let ws = [2i64];
    // SAFETY: shape holds one value; strides NULL (contiguous).
    assert_eq!(
        unsafe { dlshare_tensor_view(h, 1, ws.as_ptr(), std::ptr::null(), 1, &mut w) },
        DLSHARE_OK
    );
    let mut dl = std::mem::MaybeUninit::uninit();
    let mut flags = 0u64;
    // SAFETY: live handle, writable outputs.
    assert_eq!(
        unsafe { dlshare_tensor_info(w, dl.as_mut_ptr(), &mut flags) },
        DLSHARE_OK
    );
    // SAFETY: written on success.
    let dl = unsafe { dl.assume_init() };
    assert_eq!(
        flags & dlshare::dlpack::FLAG_READ_ONLY,
        dlshare::dlpack::FLAG_READ_ONLY
    );
    assert_eq!(flags & dlshare::dlpack::FLAG_IS_COPIED, 0);
    // SAFETY: the view's first element is data[1].
    assert_eq!(
        unsafe {
            *(dl.data as *const u8)
                .add(dl.byte_offset as usize)
                .cast::<f64>()
        },
        2.0
    );
    assert_eq!(dlshare_tensor_release(h), DLSHARE_OK);
    assert_eq!(dlshare_tensor_release(w), DLSHARE_OK); // the view outlives the source handle
}

// ---------------------------------------------------------------------------------------------
// the C API

fn last_error() -> String {
    // SAFETY: a NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(dlshare_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn c_view<T>(data: &[T], dtype: DType, shape: &i64, stride: &i64) -> dlshare_view {
    dlshare_view {
        data: data.as_ptr().cast_mut().cast(),
        dtype: dtype.into(),
        ndim: 1,
        shape,
        byte_strides: stride,
        device: DLDevice {
            device_type: 1,
            device_id: 0,
        },
        flags: 0,
        release: None,
        release_ctx: std::ptr::null_mut(),
    }
}

fn from_columns(
    cols: &[dlshare_column],
    o: Option<&dlshare::ffi::columns::dlshare_columns_options>,
) -> (dlshare_status, *mut dlshare_tensor) {
    let mut h: *mut dlshare_tensor = std::ptr::null_mut();
    let o = o.map_or(std::ptr::null(), |o| o as *const _);
    // SAFETY: `cols` are valid column structs over live test data.
    let s = unsafe { dlshare_tensor_from_columns(cols.as_ptr(), cols.len(), o, &mut h) };
    (s, h)
}

fn handle_values(h: *mut dlshare_tensor) -> (Vec<i64>, Vec<f32>) {
    let mut dl = std::mem::MaybeUninit::uninit();
    // SAFETY: live handle; writable output.
    assert_eq!(
        unsafe { dlshare_tensor_info(h, dl.as_mut_ptr(), std::ptr::null_mut()) },
        DLSHARE_OK
    );
    // SAFETY: written on success; shape holds ndim values; data holds the f32 elements.
    unsafe {
        let dl = dl.assume_init();
        let shape = std::slice::from_raw_parts(dl.shape, dl.ndim as usize).to_vec();
        let n = shape.iter().product::<i64>() as usize;
        let data = std::slice::from_raw_parts(
            dl.data
                .cast::<u8>()
                .add(dl.byte_offset as usize)
                .cast::<f32>(),
            n,
        );
        (shape, data.to_vec())
    }
}

#[test]
fn c_api_builds_columns_and_reports_errors() {
    let f = [1.0f64, NAN, 3.0];
    let ticks_be: Vec<i64> = [0i64, -1, 2 * DAY_NS]
        .iter()
        .map(|v| v.swap_bytes())
        .collect();
    let codes = [2i16, -1, 0];
    let mask = [0u8, 0, 1];
    let (three, s8, s2, back8) = (3i64, 8i64, 2i64, -8i64);
    let mut time = dlshare_column_init(
        dlshare_column_kind::DLSHARE_COLUMN_DATETIME as i32,
        c_view(&ticks_be, DType::I64, &three, &s8),
    );
    time.view.flags = DLSHARE_VIEW_BYTE_SWAPPED;
    time.datetime_divisor = DAY_NS;
    time.datetime_floor = true;
    let mut onehot = dlshare_column_init(
        dlshare_column_kind::DLSHARE_COLUMN_ONEHOT as i32,
        c_view(&codes, DType::I16, &three, &s2),
    );
    onehot.ncategories = 3;
    let mut masked = dlshare_column_init(
        dlshare_column_kind::DLSHARE_COLUMN_VALUE as i32,
        c_view(&f, DType::F64, &three, &s8),
    );
    masked.missing = mask.as_ptr();
    // reversed: starts at the last element with a negative stride
    let mut reversed = dlshare_column_init(
        dlshare_column_kind::DLSHARE_COLUMN_VALUE as i32,
        c_view(&f, DType::F64, &three, &back8),
    );
    reversed.view.data = f.as_ptr().wrapping_add(2).cast_mut().cast();
    let cols = [time, onehot, masked, reversed];

    let mut o = dlshare_columns_options_init(
        dlshare_nan_policy::DLSHARE_NAN_FILL as i32,
        dlshare_normalize::DLSHARE_NORMALIZE_NONE as i32,
    );
    o.fill_value = -5.0;
    let (s, h) = from_columns(&cols, Some(&o));
    assert_eq!(s, DLSHARE_OK, "{}", last_error());
    let (shape, got) = handle_values(h);
    assert_eq!(shape, vec![3, 6]);
    #[rustfmt::skip]
    assert_eq!(got, vec![
        0.0, 0.0, 0.0, 1.0, 1.0, 3.0,
        -1.0, 0.0, 0.0, 0.0, -5.0, -5.0,
        2.0, 1.0, 0.0, 0.0, -5.0, 1.0,
    ]);
    assert_eq!(dlshare_tensor_release(h), DLSHARE_OK);

    // NULL options: float32, RAISE
    let (s, h) = from_columns(&cols, None);
    assert_eq!(s, DLSHARE_ERR_INVALID_ARGUMENT);
    assert!(h.is_null(), "outputs are written only on success");
    assert!(
        last_error().contains("columns 1, 2, 3 hold missing values"),
        "{}",
        last_error()
    );

    // malformed input
    let mut bad = cols;
    bad[0].kind = 9;
    assert_eq!(from_columns(&bad, Some(&o)).0, DLSHARE_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("column 0: kind is 9"));
    let mut bad = cols;
    bad[1].view.ndim = 2;
    assert_eq!(from_columns(&bad, Some(&o)).0, DLSHARE_ERR_INVALID_ARGUMENT);
    let mut bad = cols;
    bad[2].view.data = std::ptr::null_mut();
    // the same status a NULL view gives everywhere else, with the column named
    assert_eq!(from_columns(&bad, Some(&o)).0, DLSHARE_ERR_NULL_ARGUMENT);
    assert!(
        last_error().starts_with("column 2: data is NULL"),
        "{}",
        last_error()
    );
    let mut bad = cols;
    bad[2].view.device = DLDevice {
        device_type: 2,
        device_id: 0,
    };
    assert_eq!(
        from_columns(&bad, Some(&o)).0,
        DLSHARE_ERR_UNSUPPORTED_DEVICE
    );
    let mut bad = cols;
    bad[1].ncategories = -1;
    assert_eq!(from_columns(&bad, Some(&o)).0, DLSHARE_ERR_INVALID_ARGUMENT);
    let mut bad_o = o;
    bad_o.nan_policy = 42;
    assert_eq!(
        from_columns(&cols, Some(&bad_o)).0,
        DLSHARE_ERR_INVALID_ARGUMENT
    );
    let mut bad_o = o;
    bad_o.normalize = -1;
    assert_eq!(
        from_columns(&cols, Some(&bad_o)).0,
        DLSHARE_ERR_INVALID_ARGUMENT
    );
    let mut bad_o = o;
    bad_o.dtype = DLDataType {
        code: 5,
        bits: 64,
        lanes: 1,
    };
    assert_eq!(
        from_columns(&cols, Some(&bad_o)).0,
        DLSHARE_ERR_UNSUPPORTED_DTYPE
    );
    assert_eq!(from_columns(&[], Some(&o)).0, DLSHARE_ERR_INVALID_ARGUMENT);
    let mut h: *mut dlshare_tensor = std::ptr::null_mut();
    // SAFETY: NULL pointers are what is being tested.
    unsafe {
        assert_eq!(
            dlshare_tensor_from_columns(std::ptr::null(), 1, &o, &mut h),
            DLSHARE_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            dlshare_tensor_from_columns(cols.as_ptr(), 4, &o, std::ptr::null_mut()),
            DLSHARE_ERR_NULL_ARGUMENT
        );
    }
}

#[test]
fn c_api_views() {
    let f = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let (six, s4) = (6i64, 4i64);
    let col = dlshare_column_init(
        dlshare_column_kind::DLSHARE_COLUMN_VALUE as i32,
        c_view(&f, DType::F32, &six, &s4),
    );
    let (s, h) = from_columns(&[col, col], None);
    assert_eq!(s, DLSHARE_OK);
    // windows of 2 rows, step 2, over the 6 x 2 tensor
    let (shape, strides) = ([3i64, 2, 2], [4i64, 2, 1]);
    let mut w: *mut dlshare_tensor = std::ptr::null_mut();
    // SAFETY: shape/strides hold 3 values; outputs writable.
    assert_eq!(
        unsafe { dlshare_tensor_view(h, 3, shape.as_ptr(), strides.as_ptr(), 0, &mut w) },
        DLSHARE_OK
    );
    let (wshape, got) = handle_values(w);
    assert_eq!(wshape, vec![3, 2, 2]);
    assert_eq!(got, vec![1., 1., 2., 2., 3., 3., 4., 4., 5., 5., 6., 6.]);
    let mut bad: *mut dlshare_tensor = std::ptr::null_mut();
    let too_many = [4i64, 2, 2];
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            dlshare_tensor_view(h, 3, too_many.as_ptr(), strides.as_ptr(), 0, &mut bad),
            DLSHARE_ERR_INVALID_ARGUMENT
        );
        assert!(bad.is_null());
        assert_eq!(
            dlshare_tensor_view(h, 3, std::ptr::null(), strides.as_ptr(), 0, &mut bad),
            DLSHARE_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            dlshare_tensor_view(h, -1, shape.as_ptr(), strides.as_ptr(), 0, &mut bad),
            DLSHARE_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            dlshare_tensor_view(
                std::ptr::null(),
                3,
                shape.as_ptr(),
                strides.as_ptr(),
                0,
                &mut bad
            ),
            DLSHARE_ERR_INVALID_HANDLE
        );
    }
    // a 1-D contiguous view (NULL strides)
    let flat = [12i64];
    let mut v: *mut dlshare_tensor = std::ptr::null_mut();
    // SAFETY: as above.
    assert_eq!(
        unsafe { dlshare_tensor_view(h, 1, flat.as_ptr(), std::ptr::null(), 0, &mut v) },
        DLSHARE_OK
    );
    assert_eq!(dlshare_tensor_release(h), DLSHARE_OK);
    assert_eq!(handle_values(v).1.len(), 12);
    assert_eq!(dlshare_tensor_release(v), DLSHARE_OK);
    assert_eq!(dlshare_tensor_release(w), DLSHARE_OK);
}
