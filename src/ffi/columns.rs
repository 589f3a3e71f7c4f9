//! Tabular columns to one tensor in one pass (`dlshare_tensor_from_columns`, what the pandas
//! helpers call) and strided views of existing tensors (`dlshare_tensor_view`, for sliding
//! windows). The work is `crate::columns`; this file only reads and checks the C structs.

use super::convert::{dlshare_view, view_source};
use super::handles::{self, dlshare_tensor};
use super::{boundary, dlshare_status, out};
use crate::columns::{self, Column, ColumnKind, ColumnsOptions, NanPolicy, Normalize};
use crate::dlpack::DLDataType;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout;

/// What a `dlshare_column` holds. Codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_column_kind {
    /// Numbers or bools, written as they are (cast to the output dtype); NaN in a float column
    /// is missing.
    DLSHARE_COLUMN_VALUE = 0,
    /// int64 ticks since 1970-01-01 (a datetime64 column viewed as int64; INT64_MIN, NaT, is
    /// missing), written as `ticks / datetime_divisor`: floored toward -inf when
    /// `datetime_floor` (pandas `.days`), else a real quotient (pandas `.total_seconds()`).
    DLSHARE_COLUMN_DATETIME = 1,
    /// Integer category codes (pandas `cat.codes`) written as numbers; -1 is missing.
    DLSHARE_COLUMN_CODES = 2,
    /// Integer category codes expanded into `ncategories` 0/1 output columns, in category order
    /// (`pd.get_dummies`); a missing code (-1) gives a row of zeros.
    DLSHARE_COLUMN_ONEHOT = 3,
}

/// What `dlshare_tensor_from_columns` does with missing values. Codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_nan_policy {
    /// Fail with DLSHARE_ERR_INVALID_ARGUMENT; the message lists the columns (by index) that
    /// hold missing values.
    DLSHARE_NAN_RAISE = 0,
    /// Drop every row with a missing value in any column (`dropna()`).
    DLSHARE_NAN_DROP = 1,
    /// Replace missing values with `fill_value` (`fillna(value)`).
    DLSHARE_NAN_FILL = 2,
    /// Replace missing values with the column's mean of its present values
    /// (`fillna(df.mean())`).
    DLSHARE_NAN_MEAN = 3,
    /// Carry the last present value forward (`ffill()`); leading gaps stay missing.
    DLSHARE_NAN_FFILL = 4,
    /// Carry the next present value backward (`bfill()`); trailing gaps stay missing.
    DLSHARE_NAN_BFILL = 5,
    /// `ffill()` then `bfill()`.
    DLSHARE_NAN_FFILL_BFILL = 6,
}

/// Per-column normalisation after the NaN handling. Codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_normalize {
    /// Values as they are.
    DLSHARE_NORMALIZE_NONE = 0,
    /// `(x - min) / (max - min)` per output column.
    DLSHARE_NORMALIZE_MINMAX = 1,
    /// `(x - mean) / std` per output column, sample standard deviation (ddof = 1, as pandas).
    DLSHARE_NORMALIZE_ZSCORE = 2,
}

/// One input column of `dlshare_tensor_from_columns` (start from `dlshare_column_init`).
/// Borrowed for the call only: dlshare copies the data and keeps no pointer after it returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_column {
    /// The column's memory: ndim 1, CPU (or CUDA host) memory, any byte stride, any dtype the
    /// kind accepts (VALUE: bool, integers, float16, bfloat16, float32, float64; DATETIME:
    /// int64; CODES and ONEHOT: integers). DLSHARE_VIEW_BYTE_SWAPPED is honoured,
    /// DLSHARE_VIEW_READ_ONLY is fine (the memory is only read). `release` is never called.
    pub view: dlshare_view,
    /// A `dlshare_column_kind` value (an integer so that an invalid value is reported).
    pub kind: i32,
    /// NULL, or one byte per row: non-zero marks the row missing (pandas masked arrays' mask).
    /// Borrowed for the call.
    pub missing: *const u8,
    /// DATETIME: ticks per output unit, > 0 (86400000000000 for days of a nanosecond column,
    /// 1000000000 for its seconds).
    pub datetime_divisor: i64,
    /// DATETIME: floor the quotient to an integer (pandas `.days`) instead of dividing exactly.
    pub datetime_floor: bool,
    /// ONEHOT: number of categories (output columns); codes must be -1 or 0..ncategories-1.
    pub ncategories: i64,
}

/// Options of `dlshare_tensor_from_columns`. Start from `dlshare_columns_options_init(...)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_columns_options {
    /// Output dtype: bool, an integer type, float16, bfloat16, float32 or float64 (a float
    /// dtype when normalising).
    pub dtype: DLDataType,
    /// A `dlshare_nan_policy` value.
    pub nan_policy: i32,
    /// The value DLSHARE_NAN_FILL writes for missing values (not NaN).
    pub fill_value: f64,
    /// A `dlshare_normalize` value.
    pub normalize: i32,
}

/// A column of `kind` (a `dlshare_column_kind` value; an invalid one is reported by
/// `dlshare_tensor_from_columns`) over `view`, with no missing mask, datetime divisor 0 (set it
/// for DATETIME), floor false and 0 categories (set `ncategories` for ONEHOT).
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_column_init(kind: i32, view: dlshare_view) -> dlshare_column {
    dlshare_column {
        view,
        kind,
        missing: std::ptr::null(),
        datetime_divisor: 0,
        datetime_floor: false,
        ncategories: 0,
    }
}

/// Column options with float32 output, `nan_policy` (a `dlshare_nan_policy` value), fill value 0
/// (set `fill_value` for DLSHARE_NAN_FILL) and `normalize` (a `dlshare_normalize` value); invalid
/// values are reported by `dlshare_tensor_from_columns`.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_columns_options_init(
    nan_policy: i32,
    normalize: i32,
) -> dlshare_columns_options {
    dlshare_columns_options {
        dtype: DType::F32.into(),
        nan_policy,
        fill_value: 0.0,
        normalize,
    }
}

pub(crate) fn options_from(o: *const dlshare_columns_options) -> Result<ColumnsOptions> {
    // SAFETY: the public function documents that a non-NULL options pointer is valid.
    let Some(o) = (unsafe { o.as_ref() }) else {
        return Ok(ColumnsOptions::default());
    };
    let nan = match o.nan_policy {
        0 => NanPolicy::Raise,
        1 => NanPolicy::Drop,
        2 => NanPolicy::Fill(o.fill_value),
        3 => NanPolicy::Mean,
        4 => NanPolicy::Ffill,
        5 => NanPolicy::Bfill,
        6 => NanPolicy::FfillBfill,
        p => {
            return Err(Error::InvalidArgument(format!(
                "options.nan_policy is {p}; use a dlshare_nan_policy value (0..=6)"
            )));
        }
    };
    let normalize = match o.normalize {
        0 => Normalize::None,
        1 => Normalize::MinMax,
        2 => Normalize::ZScore,
        n => {
            return Err(Error::InvalidArgument(format!(
                "options.normalize is {n}; use DLSHARE_NORMALIZE_NONE (0), \
                 DLSHARE_NORMALIZE_MINMAX (1) or DLSHARE_NORMALIZE_ZSCORE (2)"
            )));
        }
    };
    Ok(ColumnsOptions {
        dtype: o.dtype.into(),
        nan,
        normalize,
    })
}

/// Reads and checks one C column.
///
/// # Safety
/// `c.view.shape` (and `c.view.byte_strides` when not NULL) hold one value; the memory they
/// describe and `c.missing` (when not NULL, one byte per row) are readable for `'a`.
unsafe fn column_from<'a>(index: usize, c: &dlshare_column) -> Result<Column<'a>> {
    let at = format!("column {index}");
    if c.view.ndim != 1 {
        return Err(Error::InvalidArgument(format!(
            "{at}: view.ndim is {}; a column is 1-D",
            c.view.ndim
        )));
    }
    let src = view_source(&c.view).map_err(|e| e.context(&at))?;
    src.validate().map_err(|e| e.context(&at))?;
    if !src.device.is_host_accessible() {
        return Err(Error::UnsupportedDevice(format!(
            "{at} is on {}; columns must be in memory the CPU can read",
            src.device
        )));
    }
    let (dtype, len, stride) = (src.dtype, src.shape[0], src.byte_strides[0]);
    let kind = match c.kind {
        0 => ColumnKind::Value,
        1 => ColumnKind::Datetime {
            divisor: c.datetime_divisor,
            floor: c.datetime_floor,
        },
        2 => ColumnKind::Codes,
        3 => ColumnKind::OneHot {
            categories: usize::try_from(c.ncategories).map_err(|_| {
                Error::InvalidArgument(format!(
                    "column {index}: ncategories is {}; it must be >= 0",
                    c.ncategories
                ))
            })?,
        },
        k => {
            return Err(Error::InvalidArgument(format!(
                "column {index}: kind is {k}; use a dlshare_column_kind value (0..=3)"
            )));
        }
    };
    let rows = len as usize; // validate() checked len >= 0
    let byte_stride = isize::try_from(stride)
        .map_err(|_| Error::Overflow(format!("column {index}: stride {stride} overflows")))?;
    // SAFETY: validate() checked that the described bytes lie inside the address space and
    // that data is non-NULL when rows > 0; the caller guarantees they are readable for the call.
    let mut column = unsafe {
        Column::from_raw(
            src.first(),
            dtype,
            rows,
            byte_stride,
            src.byte_swapped,
            kind,
        )
    };
    if !c.missing.is_null() {
        // SAFETY: documented contract: a non-NULL mask holds one byte per row.
        column = column.with_missing(unsafe { std::slice::from_raw_parts(c.missing, rows) });
    }
    Ok(column)
}

/// Builds one rows x columns, C-contiguous tensor from `ncolumns` columns in one pass: each
/// column is converted per its kind, missing values are handled per `options->nan_policy`,
/// normalised per `options->normalize`, and cast to `options->dtype` (NULL options: float32,
/// RAISE, no normalisation). The output has one column per VALUE/DATETIME/CODES column and
/// `ncategories` per ONEHOT column, in order; its rows are the input rows (fewer with
/// DLSHARE_NAN_DROP).
///
/// On success `*tensor_out` is a new handle owned by the caller (release it with
/// `dlshare_tensor_release`) over fresh 256-byte-aligned memory (DLPack IS_COPIED). The
/// columns' memory is only read during the call; no release callback is called and no pointer
/// is kept. On failure `*tensor_out` is untouched.
///
/// # Safety
/// `columns` points to `ncolumns` valid `dlshare_column` structs whose views and masks describe
/// memory readable for the duration of the call; `options` is NULL or valid; `tensor_out` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_columns(
    columns: *const dlshare_column,
    ncolumns: usize,
    options: *const dlshare_columns_options,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract for `tensor_out`.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        let opts = options_from(options)?;
        if ncolumns == 0 {
            return Err(Error::InvalidArgument(
                "ncolumns is 0; pass at least one column".into(),
            ));
        }
        if columns.is_null() {
            return Err(Error::NullArgument(format!(
                "columns is NULL but ncolumns is {ncolumns}"
            )));
        }
        // SAFETY: documented contract: `columns` (checked non-NULL) holds `ncolumns` structs.
        let given = unsafe { std::slice::from_raw_parts(columns, ncolumns) };
        let cols = given
            .iter()
            .enumerate()
            // SAFETY: documented contract for each column's view and mask.
            .map(|(i, c)| unsafe { column_from(i, c) })
            .collect::<Result<Vec<_>>>()?;
        let tensor = columns::tensor_from_columns(&cols, &opts)?;
        slot.write(handles::insert(tensor)?);
        Ok(())
    })
}

/// A new handle viewing the same memory as `tensor` with another layout: `ndim` extents
/// `shape`, element `strides` (NULL: C-contiguous; any sign, zero allowed) and the element
/// `offset` of the view's first element (index 0, ..., 0) from `tensor`'s first element. Every
/// element of the view must lie within `tensor`'s element extent (between its lowest and
/// highest element), else DLSHARE_ERR_INVALID_ARGUMENT. Sliding windows over rows are
/// `shape = {nwindows, length, ncols}`, `strides = {step * ncols, ncols, 1}`.
///
/// `*tensor_out` is a new handle owned by the caller (release it with `dlshare_tensor_release`)
/// that keeps the memory alive on its own; it is read-only when `tensor` is. `tensor` stays
/// owned by the caller. On failure `*tensor_out` is untouched.
///
/// # Safety
/// `shape` (and `strides` when not NULL) hold `ndim` values (may be NULL when ndim == 0);
/// `tensor_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_view(
    tensor: *const dlshare_tensor,
    ndim: i32,
    shape: *const i64,
    strides: *const i64,
    offset: i64,
    tensor_out: *mut *mut dlshare_tensor,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract for `tensor_out`.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        let t = handles::get(tensor)?;
        if ndim < 0 || ndim as usize > layout::MAX_NDIM {
            return Err(Error::InvalidArgument(format!(
                "ndim is {ndim}; views have 0..={} dimensions",
                layout::MAX_NDIM
            )));
        }
        let ndim = ndim as usize;
        let read = |p: *const i64, what: &str| -> Result<Vec<i64>> {
            if ndim == 0 {
                return Ok(Vec::new());
            }
            if p.is_null() {
                return Err(Error::NullArgument(format!(
                    "{what} is NULL but ndim is {ndim}"
                )));
            }
            // SAFETY: documented contract: non-NULL shape/strides hold `ndim` values.
            Ok(unsafe { std::slice::from_raw_parts(p, ndim) }.to_vec())
        };
        let dims = read(shape, "shape")?;
        layout::numel(&dims)?;
        let steps = if strides.is_null() {
            layout::c_strides(&dims)
        } else {
            read(strides, "strides")?
        };
        let view = t.restride(&dims, &steps, offset)?;
        slot.write(handles::insert(view)?);
        Ok(())
    })
}
