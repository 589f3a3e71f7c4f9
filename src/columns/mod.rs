//! Tabular columns (a pandas DataFrame's, say) to one 2-D tensor in a single fused pass, and
//! strided views of existing tensors (issue #3).
//!
//! [`tensor_from_columns`] reads 1-D columns (any computable real dtype, any byte stride, native
//! or swapped byte order, with an optional missing-value mask) and writes a rows x columns,
//! C-contiguous tensor of the requested dtype. A column is one of ([`ColumnKind`]):
//! - `Value`: the number itself; NaN (float columns) or a set mask byte is missing;
//! - `Datetime`: int64 ticks since the epoch (`i64::MIN`, NaT, is missing) divided by `divisor`
//!   ticks, either floored to an integer (pandas' `Timedelta.days`, which rounds toward -inf
//!   before 1970) or as a real quotient (pandas' `total_seconds()`);
//! - `Codes`: integer category codes written as numbers; a negative code is missing;
//! - `OneHot`: integer codes expanded into `categories` 0/1 output columns (`pd.get_dummies`);
//!   a missing code gives a row of zeros.
//!
//! Missing values follow a [`NanPolicy`] (pandas' `dropna`, `fillna(value)`,
//! `fillna(df.mean())`, `ffill`, `bfill`, `ffill().bfill()`, or an error). Category columns are
//! missing for RAISE, DROP and the forward/backward fills (which carry the previous/next
//! category), but FILL and MEAN leave them encoded as missing (code -1, all-zero one-hot row):
//! a number is not a category. Statistics for MEAN and normalisation are computed on the
//! converted values (days, seconds, codes).
//!
//! [`Normalize`] is applied per output column after the NaN handling:
//! `(x - min) / (max - min)` or `(x - mean) / std` with the sample standard deviation (ddof 1),
//! as pandas' `df.std()`; missing values are skipped by the statistics, as pandas does.
//!
//! The work is an optional statistics pass (only when MEAN or normalisation needs one; DROP
//! first finds the rows to drop), then one write pass in row blocks: every column writes into a
//! block of output rows that stays in cache, so memory sees sequential writes. Large outputs are
//! split into row ranges written by several threads (as many as the copy kernels would use:
//! `dlshare_set_num_threads` caps them). Values pass through unchanged (and cast
//! like NumPy's `astype`) unless a fill or normalisation changes them; computed values are
//! float64 until the final cast.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};

use crate::device::Device;
use crate::dtype::{DType, Element, Kind};
use crate::error::{Error, Result};
use crate::kernels::{self, cast_scalar_bytes, for_int_kind};
use crate::layout;
use crate::tensor::Tensor;

mod elements;
mod encodings;
mod missing;
mod stats;
mod write;

use elements::*;
use encodings::*;
use missing::*;
use stats::*;
use write::*;

/// Output bytes per row block of the write pass (small enough to stay in L2).
const BLOCK_BYTES: usize = 64 * 1024;
/// How many rows ahead the write pass asks for input.
const PREFETCH_ROWS: usize = 256;

/// What a column holds and how it becomes output columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// The values themselves; NaN is missing for float columns.
    Value,
    /// int64 ticks since the epoch, `i64::MIN` missing; the output is `ticks / divisor`,
    /// floored toward -inf when `floor` (pandas `.days`), else a real quotient
    /// (`.total_seconds()`).
    Datetime { divisor: i64, floor: bool },
    /// Integer category codes written as numbers; negative codes are missing.
    Codes,
    /// Integer category codes expanded into `categories` 0/1 columns; missing gives zeros.
    OneHot { categories: usize },
}

/// What to do with missing values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NanPolicy {
    /// Fail with `InvalidArgument` naming the columns that hold missing values.
    Raise,
    /// Drop every row with a missing value in any column (`dropna()`).
    Drop,
    /// Replace missing values with a number (`fillna(value)`).
    Fill(f64),
    /// Replace missing values with the column's mean of the present values
    /// (`fillna(df.mean())`).
    Mean,
    /// Carry the last present value forward (`ffill()`); leading gaps stay missing.
    Ffill,
    /// Carry the next present value backward (`bfill()`); trailing gaps stay missing.
    Bfill,
    /// `ffill()` then `bfill()`: leading gaps take the first present value.
    FfillBfill,
}

/// Per-column normalisation, after the NaN handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalize {
    None,
    /// `(x - min) / (max - min)`.
    MinMax,
    /// `(x - mean) / std`, sample standard deviation (ddof = 1, as pandas).
    ZScore,
}

/// Options of [`tensor_from_columns`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColumnsOptions {
    /// Output dtype: bool, an integer, float16, bfloat16, float32 or float64.
    pub dtype: DType,
    pub nan: NanPolicy,
    pub normalize: Normalize,
}

impl Default for ColumnsOptions {
    /// float32 output, RAISE on missing values, no normalisation.
    fn default() -> Self {
        ColumnsOptions {
            dtype: DType::F32,
            nan: NanPolicy::Raise,
            normalize: Normalize::None,
        }
    }
}

/// One input column: `len` elements of `dtype`, `byte_stride` bytes apart, borrowed for `'a`.
#[derive(Clone, Copy, Debug)]
pub struct Column<'a> {
    ptr: *const u8,
    len: usize,
    byte_stride: isize,
    dtype: DType,
    byte_swapped: bool,
    missing: Option<&'a [u8]>,
    /// An Arrow validity bitmap and the bit of row 0 (bit clear: row missing; issue 14).
    valid: Option<(&'a [u8], usize)>,
    kind: ColumnKind,
    _data: PhantomData<&'a [u8]>,
}

// SAFETY: a Column only reads the memory it describes, which its constructors guarantee stays
// readable (from any thread) for 'a; nothing is written through it.
unsafe impl Send for Column<'_> {}
// SAFETY: as above.
unsafe impl Sync for Column<'_> {}

impl<'a> Column<'a> {
    /// A column over a Rust slice.
    pub fn from_slice<T: Element>(data: &'a [T], kind: ColumnKind) -> Column<'a> {
        Column {
            ptr: data.as_ptr().cast(),
            len: data.len(),
            byte_stride: std::mem::size_of::<T>() as isize,
            dtype: T::DTYPE,
            byte_swapped: false,
            missing: None,
            valid: None,
            kind,
            _data: PhantomData,
        }
    }

    /// A column over a 1-D CPU tensor (any stride).
    pub fn from_tensor(t: &'a Tensor, kind: ColumnKind) -> Result<Column<'a>> {
        if t.ndim() != 1 {
            return Err(Error::InvalidArgument(format!(
                "a column must be a 1-D tensor, this one has {} dimensions",
                t.ndim()
            )));
        }
        if !t.device().is_host_accessible() {
            return Err(Error::UnsupportedDevice(format!(
                "a column on {} cannot be read by the CPU; copy it to the CPU first",
                t.device()
            )));
        }
        if t.dtype().is_subbyte() {
            return Err(Error::UnsupportedDtype(format!(
                "{} columns are not supported; convert the tensor first",
                t.dtype()
            )));
        }
        let byte_stride = layout::byte_strides(t.strides(), t.dtype().item_size())?[0];
        Ok(Column {
            ptr: t.data_ptr(),
            len: t.shape()[0] as usize,
            byte_stride: isize::try_from(byte_stride)
                .map_err(|_| Error::Overflow(format!("stride {byte_stride} overflows")))?,
            dtype: t.dtype(),
            byte_swapped: false,
            missing: None,
            valid: None,
            kind,
            _data: PhantomData,
        })
    }

    /// A column over raw memory.
    ///
    /// # Safety
    /// For every `i < len`, the `dtype.item_size()` bytes at `ptr + i * byte_stride` must be
    /// readable for `'a` and not written meanwhile. `byte_swapped` says the elements are in
    /// non-native byte order.
    pub unsafe fn from_raw(
        ptr: *const u8,
        dtype: DType,
        len: usize,
        byte_stride: isize,
        byte_swapped: bool,
        kind: ColumnKind,
    ) -> Column<'a> {
        Column {
            ptr,
            len,
            byte_stride,
            dtype,
            byte_swapped,
            missing: None,
            valid: None,
            kind,
            _data: PhantomData,
        }
    }

    /// Marks missing values: `missing[i] != 0` makes row `i` missing (pandas masked arrays'
    /// `_mask`). Must hold `len` bytes.
    pub fn with_missing(mut self, missing: &'a [u8]) -> Column<'a> {
        self.missing = Some(missing);
        self
    }

    /// Marks missing values with an Arrow validity bitmap (issue 14): row `i` is missing when bit
    /// `offset + i` (least significant bit first) is clear. Must hold `offset + len` bits.
    pub fn with_validity(mut self, bits: &'a [u8], offset: usize) -> Column<'a> {
        self.valid = Some((bits, offset));
        self
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn kind(&self) -> ColumnKind {
        self.kind
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of output columns this column becomes.
    pub fn width(&self) -> usize {
        match self.kind {
            ColumnKind::OneHot { categories } => categories,
            _ => 1,
        }
    }
}

/// Builds a `rows x (sum of column widths)` C-contiguous tensor from `columns`, per `opts`
/// (see the module documentation). The result owns fresh memory (`is_copy`).
pub fn tensor_from_columns(columns: &[Column<'_>], opts: &ColumnsOptions) -> Result<Tensor> {
    let dtype = check_output_dtype(opts)?;
    let Some(first) = columns.first() else {
        return Err(Error::InvalidArgument(
            "no columns given; pass at least one column".into(),
        ));
    };
    let n = first.len;
    let ops = columns
        .iter()
        .enumerate()
        .map(|(i, c)| prepare(i, c, n))
        .collect::<Result<Vec<_>>>()?;
    let sink = Sink::of(dtype);
    let too_big = || {
        Error::Overflow(format!(
            "{n} rows of {} columns do not fit in the address space",
            ops.iter().map(|op| op.width() as u128).sum::<u128>()
        ))
    };
    let mut offsets = Vec::with_capacity(ops.len());
    let mut width = 0usize;
    for op in &ops {
        offsets.push(width.checked_mul(sink.item()).ok_or_else(too_big)?);
        width = width.checked_add(op.width()).ok_or_else(too_big)?;
    }
    // Checked before any statistics are gathered: the output (at most n rows) must fit.
    n.checked_mul(width)
        .and_then(|e| e.checked_mul(sink.item()))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(too_big)?;
    let keep = (opts.nan == NanPolicy::Drop).then(|| {
        let mut keep = vec![true; n];
        for op in &ops {
            op.mark_missing(&mut keep);
        }
        keep
    });
    let nrows = keep
        .as_ref()
        .map_or(n, |k| k.iter().filter(|&&x| x).count());
    let read = columns.iter().map(|c| c.len * c.dtype.item_size()).sum();
    let plans = plan(&ops, opts, keep.as_deref(), threads_for(read, ops.len()))?;
    let overflow = || Error::Overflow(format!("{nrows} x {width} outputs overflow 64 bits"));
    let shape = [
        i64::try_from(nrows).map_err(|_| overflow())?,
        i64::try_from(width).map_err(|_| overflow())?,
    ];
    let mut tensor = Tensor::empty(dtype, &shape, Device::CPU, false)?;
    let layout = Layout {
        policy: opts.nan,
        sink,
        row_bytes: width * sink.item(),
    };
    let out = Arc::get_mut(&mut tensor.storage)
        .and_then(|s| s.owned_bytes_mut())
        .expect("a fresh tensor owns its storage alone");
    let out = &mut out[..nrows * layout.row_bytes];

    // Split the rows into ranges, one per thread, each with its slice of the output.
    let read: usize = columns.iter().map(|c| c.len * c.dtype.item_size()).sum();
    let threads = threads_for(read + out.len(), n);
    let mut ranges = Vec::with_capacity(threads);
    let mut rest = out;
    for t in 0..threads {
        let rows = n * t / threads..n * (t + 1) / threads;
        let kept = keep.as_ref().map_or(rows.len(), |k| {
            k[rows.clone()].iter().filter(|&&x| x).count()
        });
        let (mine, tail) = rest.split_at_mut(kept * layout.row_bytes);
        rest = tail;
        ranges.push((rows, mine));
    }
    let keep = keep.as_deref();
    let (ops, plans, offsets, layout) = (&ops, &plans, &offsets, &layout);
    let results = kernels::parallel_map(ranges, threads, |(rows, out)| {
        write_range(ops, plans, offsets, layout, keep, rows, out)
    });
    let mut missing = vec![false; ops.len()];
    for result in results {
        for (m, seen) in missing.iter_mut().zip(result?) {
            *m |= seen;
        }
    }
    let missing: Vec<usize> = (0..ops.len()).filter(|&i| missing[i]).collect();
    if !missing.is_empty() {
        return Err(missing_error(&missing));
    }
    tensor.is_copy = true;
    Ok(tensor)
}
