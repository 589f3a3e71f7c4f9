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

// ---------------------------------------------------------------------------------------------
// Elements

/// A bool element read as its byte (non-zero is true), so no bit pattern is invalid.
#[derive(Clone, Copy)]
struct Bool8(u8);

/// Element types a column can hold. Every bit pattern is a valid value of each.
trait Elem: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    /// Whether the type has a NaN (a missing value without a mask).
    const HAS_NAN: bool;
    fn swapped(self) -> Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    fn is_nan(self) -> bool;
    /// The element's native bytes (the first `item_size` of them).
    fn ne_bytes(self) -> [u8; 8];
}

/// Integer elements (category codes, datetime ticks).
trait IntElem: Elem {
    fn to_i64(self) -> i64;
}

fn bytes8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..b.len()].copy_from_slice(b);
    out
}

macro_rules! int_elem {
    ($($t:ty => $d:expr),* $(,)?) => {$(
        impl Elem for $t {
            const DTYPE: DType = $d;
            const HAS_NAN: bool = false;
            #[inline(always)]
            fn swapped(self) -> Self { self.swap_bytes() }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn to_f32(self) -> f32 { self as f32 }
            #[inline(always)]
            fn is_nan(self) -> bool { false }
            #[inline(always)]
            fn ne_bytes(self) -> [u8; 8] { bytes8(&self.to_ne_bytes()) }
        }
        impl IntElem for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 { self as i64 }
        }
    )*};
}
int_elem!(
    i8 => DType::I8, i16 => DType::I16, i32 => DType::I32, i64 => DType::I64,
    u8 => DType::U8, u16 => DType::U16, u32 => DType::U32, u64 => DType::U64,
);

macro_rules! float_elem {
    ($($t:ty => $d:expr, $f64:expr, $f32:expr);* $(;)?) => {$(
        impl Elem for $t {
            const DTYPE: DType = $d;
            const HAS_NAN: bool = true;
            #[inline(always)]
            fn swapped(self) -> Self { <$t>::from_bits(self.to_bits().swap_bytes()) }
            #[inline(always)]
            fn to_f64(self) -> f64 { $f64(self) }
            #[inline(always)]
            fn to_f32(self) -> f32 { $f32(self) }
            #[inline(always)]
            fn is_nan(self) -> bool { self.is_nan() }
            #[inline(always)]
            fn ne_bytes(self) -> [u8; 8] { bytes8(&self.to_ne_bytes()) }
        }
    )*};
}
float_elem!(
    f64 => DType::F64, |v: f64| v, |v: f64| v as f32;
    f32 => DType::F32, f64::from, |v: f32| v;
    f16 => DType::F16, |v: f16| v.to_f64(), |v: f16| v.to_f32();
    bf16 => DType::BF16, |v: bf16| v.to_f64(), |v: bf16| v.to_f32();
);

impl Elem for Bool8 {
    const DTYPE: DType = DType::BOOL;
    const HAS_NAN: bool = false;
    #[inline(always)]
    fn swapped(self) -> Self {
        self
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self.0 != 0))
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from(u8::from(self.0 != 0))
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        false
    }
    #[inline(always)]
    fn ne_bytes(self) -> [u8; 8] {
        bytes8(&[self.0])
    }
}

/// Reads the elements of one column.
struct Reader<T> {
    ptr: *const u8,
    len: usize,
    stride: isize,
    swapped: bool,
    missing: Option<*const u8>,
    _t: PhantomData<T>,
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Reader<T> {}

impl<T: IntElem> Reader<T> {
    /// Category code of row `r`: None when masked or negative (pandas' -1 for a missing value).
    #[inline(always)]
    fn code(&self, r: usize) -> Option<i64> {
        let (code, masked) = self.read(r);
        let code = code.to_i64();
        (!masked && code >= 0).then_some(code)
    }
}

// SAFETY: a Reader only reads memory that its Column guarantees readable from any thread for
// the Column's lifetime, which outlives every Reader made from it (they live inside one call).
unsafe impl<T> Send for Reader<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Reader<T> {}

impl<T: Elem> Reader<T> {
    fn new(c: &Column<'_>) -> Reader<T> {
        debug_assert_eq!(c.dtype, T::DTYPE);
        Reader {
            ptr: c.ptr,
            len: c.len,
            stride: c.byte_stride,
            swapped: c.byte_swapped,
            missing: c.missing.map(|m| m.as_ptr()),
            _t: PhantomData,
        }
    }

    /// Hints the CPU to fetch element `r`'s cache line (no effect past the end: a prefetch
    /// never faults). Hardware prefetchers stop at page boundaries; the write pass reads one
    /// column for a block of rows, then the next, so it asks for lines ahead itself.
    #[inline(always)]
    fn prefetch(&self, r: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self
                .ptr
                .wrapping_offset((r as isize).wrapping_mul(self.stride));
            // SAFETY: SSE is part of the x86-64 baseline, and a prefetch only hints: it never
            // faults or reads into the program, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
            };
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = r;
    }

    /// Element `r` and whether its mask byte marks it missing.
    #[inline(always)]
    fn read(&self, r: usize) -> (T, bool) {
        assert!(r < self.len, "row {r} out of range");
        let p = self.ptr.wrapping_offset(r as isize * self.stride);
        // SAFETY: `r < len`, so by the Column's constructor contract `p` addresses a readable
        // element of T's dtype; `read_unaligned` needs no alignment and every bit pattern is a
        // valid T (bool is read as its byte). The mask (checked to hold `len` bytes when the
        // Column was prepared) is readable for the same lifetime.
        let (v, masked) = unsafe {
            (
                p.cast::<T>().read_unaligned(),
                self.missing.is_some_and(|m| *m.add(r) != 0),
            )
        };
        (if self.swapped { v.swapped() } else { v }, masked)
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings: how a column's elements become output cells

/// The output dtype, for dispatch.
#[derive(Clone, Copy)]
enum Sink {
    F32,
    F64,
    Other(DType),
}

impl Sink {
    fn of(dtype: DType) -> Sink {
        match dtype {
            DType::F32 => Sink::F32,
            DType::F64 => Sink::F64,
            other => Sink::Other(other),
        }
    }

    fn item(self) -> usize {
        match self {
            Sink::F32 => 4,
            Sink::F64 => 8,
            Sink::Other(d) => d.item_size(),
        }
    }
}

/// Writes output elements of one dtype (a type per common dtype, so that the write loops are
/// compiled for it).
trait Out: Copy {
    /// Writes a computed value.
    fn put_f64(self, cell: &mut [u8], v: f64);
    /// Writes a source element unchanged but for the cast (NumPy `astype` semantics).
    fn put<T: Elem>(self, cell: &mut [u8], v: T);
}

#[derive(Clone, Copy)]
struct OutF32;
#[derive(Clone, Copy)]
struct OutF64;
#[derive(Clone, Copy)]
struct OutAny(DType);

impl Out for OutF32 {
    #[inline(always)]
    fn put_f64(self, cell: &mut [u8], v: f64) {
        cell[..4].copy_from_slice(&(v as f32).to_ne_bytes());
    }
    #[inline(always)]
    fn put<T: Elem>(self, cell: &mut [u8], v: T) {
        cell[..4].copy_from_slice(&v.to_f32().to_ne_bytes());
    }
}

impl Out for OutF64 {
    #[inline(always)]
    fn put_f64(self, cell: &mut [u8], v: f64) {
        cell[..8].copy_from_slice(&v.to_ne_bytes());
    }
    #[inline(always)]
    fn put<T: Elem>(self, cell: &mut [u8], v: T) {
        cell[..8].copy_from_slice(&v.to_f64().to_ne_bytes());
    }
}

impl Out for OutAny {
    #[inline]
    fn put_f64(self, cell: &mut [u8], v: f64) {
        cast_scalar_bytes(&v.to_ne_bytes(), DType::F64, cell, self.0);
    }
    #[inline]
    fn put<T: Elem>(self, cell: &mut [u8], v: T) {
        let bytes = v.ne_bytes();
        cast_scalar_bytes(&bytes[..T::DTYPE.item_size()], T::DTYPE, cell, self.0);
    }
}

/// A row's value after the NaN policy.
#[derive(Clone, Copy)]
enum Res<V> {
    /// A present value (possibly carried from another row by ffill/bfill).
    Val(V),
    /// Missing, replaced by a number (FILL, MEAN).
    Fill(f64),
    /// Missing and left so (NaN; code -1; a zero one-hot row).
    Missing,
}

/// Normalisation of one output column: `(x - shift) / scale`.
#[derive(Clone, Copy, Debug)]
struct Norm {
    shift: f64,
    scale: f64,
}

impl Norm {
    #[inline(always)]
    fn apply(self, x: f64) -> f64 {
        (x - self.shift) / self.scale
    }
}

#[inline(always)]
fn normed(norm: Option<&[Norm]>, k: usize, x: f64) -> f64 {
    match norm {
        Some(n) => n[k].apply(x),
        None => x,
    }
}

/// Statistics of one output column: count, sum, min, max of the present values, the rows
/// that take the fill value, and (second pass, z-score only) the sum of squared deviations.
/// Two passes as pandas computes a variance (mean first, then squared deviations).
#[derive(Clone, Copy, Debug)]
struct Moments {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    fills: u64,
    m2: f64,
}

impl Moments {
    fn new() -> Moments {
        Moments {
            n: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            fills: 0,
            m2: 0.0,
        }
    }

    /// First pass: a present value.
    #[inline(always)]
    fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }

    /// Adds the rows that took the fill value `x` (a NaN fill adds nothing: still missing).
    fn add_fills(&mut self, x: f64) {
        if self.fills == 0 || x.is_nan() {
            return;
        }
        self.n += self.fills;
        self.sum += x * self.fills as f64;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn norm(&self, how: Normalize) -> Norm {
        if self.n == 0 {
            return Norm {
                shift: f64::NAN,
                scale: f64::NAN,
            };
        }
        match how {
            Normalize::MinMax => Norm {
                shift: self.min,
                scale: self.max - self.min,
            },
            _ => Norm {
                shift: self.mean(),
                scale: (self.m2 / (self.n as f64 - 1.0)).sqrt(),
            },
        }
    }
}

/// What a statistics pass learned about one column.
enum Stats {
    /// Width-1 columns.
    Moments(Moments),
    /// One-hot columns: rows per category and rows in all.
    Counts { counts: Vec<u64>, rows: u64 },
}

/// How an element type and a column kind become output cells.
trait Encoding: Sync + Copy {
    type V: Copy + Send;
    fn len(&self) -> usize;
    fn width(&self) -> usize {
        1
    }
    /// Row `r`'s value, or None when it is missing.
    fn get(&self, r: usize) -> Option<Self::V>;
    /// Hints the CPU to fetch row `r`'s element.
    fn prefetch(&self, r: usize);
    /// Whether any row can be missing (false for integer and bool values without a mask).
    fn may_miss(&self) -> bool {
        true
    }
    /// Whether FILL and MEAN replace missing values (false for category codes).
    fn fillable(&self) -> bool {
        true
    }
    /// Writes one row's cells (`width` elements) into `cell`.
    fn emit<O: Out>(
        &self,
        res: Res<Self::V>,
        cell: &mut [u8],
        out: O,
        norm: Option<&[Norm]>,
    ) -> Result<()>;
    /// The number a width-1 column's result stands for in the statistics (None: skipped, as
    /// pandas skips NaN; fills are counted apart).
    fn number(&self, res: Res<Self::V>) -> Option<f64>;
    fn is_onehot(&self) -> bool {
        false
    }
    /// One-hot columns: the hot category of a result (None for a zero row).
    fn category(&self, _res: Res<Self::V>) -> Result<Option<usize>> {
        Ok(None)
    }
}

#[derive(Clone, Copy)]
struct ValueEnc<T>(Reader<T>);

impl<T: Elem> Encoding for ValueEnc<T> {
    type V = T;
    fn may_miss(&self) -> bool {
        T::HAS_NAN || self.0.missing.is_some()
    }
    #[inline(always)]
    fn prefetch(&self, r: usize) {
        self.0.prefetch(r);
    }
    fn len(&self) -> usize {
        self.0.len
    }
    #[inline(always)]
    fn get(&self, r: usize) -> Option<T> {
        let (v, masked) = self.0.read(r);
        (!masked && !v.is_nan()).then_some(v)
    }
    #[inline(always)]
    fn emit<O: Out>(
        &self,
        res: Res<T>,
        cell: &mut [u8],
        out: O,
        norm: Option<&[Norm]>,
    ) -> Result<()> {
        match (res, norm) {
            (Res::Val(v), None) => out.put(cell, v),
            (Res::Val(v), Some(n)) => out.put_f64(cell, n[0].apply(v.to_f64())),
            (Res::Fill(x), n) => out.put_f64(cell, normed(n, 0, x)),
            (Res::Missing, _) => out.put_f64(cell, f64::NAN),
        }
        Ok(())
    }
    #[inline(always)]
    fn number(&self, res: Res<T>) -> Option<f64> {
        match res {
            Res::Val(v) => Some(v.to_f64()),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
struct TimeEnc {
    reader: Reader<i64>,
    divisor: i64,
    floor: bool,
}

impl Encoding for TimeEnc {
    type V = f64;
    #[inline(always)]
    fn prefetch(&self, r: usize) {
        self.reader.prefetch(r);
    }
    fn len(&self) -> usize {
        self.reader.len
    }
    #[inline(always)]
    fn get(&self, r: usize) -> Option<f64> {
        let (ticks, masked) = self.reader.read(r);
        if masked || ticks == i64::MIN {
            None
        } else if self.floor {
            Some(ticks.div_euclid(self.divisor) as f64)
        } else {
            Some(ticks as f64 / self.divisor as f64)
        }
    }
    #[inline(always)]
    fn emit<O: Out>(
        &self,
        res: Res<f64>,
        cell: &mut [u8],
        out: O,
        n: Option<&[Norm]>,
    ) -> Result<()> {
        let x = match res {
            Res::Val(x) | Res::Fill(x) => normed(n, 0, x),
            Res::Missing => f64::NAN,
        };
        out.put_f64(cell, x);
        Ok(())
    }
    #[inline(always)]
    fn number(&self, res: Res<f64>) -> Option<f64> {
        match res {
            Res::Val(x) => Some(x),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
struct CodesEnc<T>(Reader<T>);

impl<T: IntElem> Encoding for CodesEnc<T> {
    type V = i64;
    #[inline(always)]
    fn prefetch(&self, r: usize) {
        self.0.prefetch(r);
    }
    fn len(&self) -> usize {
        self.0.len
    }
    #[inline(always)]
    fn get(&self, r: usize) -> Option<i64> {
        self.0.code(r)
    }
    fn fillable(&self) -> bool {
        false
    }
    #[inline(always)]
    fn emit<O: Out>(
        &self,
        res: Res<i64>,
        cell: &mut [u8],
        out: O,
        n: Option<&[Norm]>,
    ) -> Result<()> {
        out.put_f64(cell, normed(n, 0, self.number(res).unwrap_or(-1.0)));
        Ok(())
    }
    #[inline(always)]
    fn number(&self, res: Res<i64>) -> Option<f64> {
        Some(match res {
            Res::Val(c) => c as f64,
            Res::Fill(_) | Res::Missing => -1.0,
        })
    }
}

#[derive(Clone, Copy)]
struct OneHotEnc<T> {
    reader: Reader<T>,
    categories: usize,
}

impl<T: IntElem> Encoding for OneHotEnc<T> {
    type V = i64;
    #[inline(always)]
    fn prefetch(&self, r: usize) {
        self.reader.prefetch(r);
    }
    fn len(&self) -> usize {
        self.reader.len
    }
    fn width(&self) -> usize {
        self.categories
    }
    #[inline(always)]
    fn get(&self, r: usize) -> Option<i64> {
        self.reader.code(r)
    }
    fn fillable(&self) -> bool {
        false
    }
    #[inline(always)]
    fn emit<O: Out>(
        &self,
        res: Res<i64>,
        cell: &mut [u8],
        out: O,
        n: Option<&[Norm]>,
    ) -> Result<()> {
        let hot = self.category(res)?;
        let item = cell.len() / self.categories.max(1);
        for (k, c) in cell.chunks_exact_mut(item.max(1)).enumerate() {
            let x = if hot == Some(k) { 1.0 } else { 0.0 };
            out.put_f64(c, normed(n, k, x));
        }
        Ok(())
    }
    fn number(&self, _res: Res<i64>) -> Option<f64> {
        None
    }
    fn is_onehot(&self) -> bool {
        true
    }
    #[inline(always)]
    fn category(&self, res: Res<i64>) -> Result<Option<usize>> {
        let Res::Val(code) = res else {
            return Ok(None);
        };
        usize::try_from(code)
            .ok()
            .filter(|&c| c < self.categories)
            .map(Some)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "category code {code} is out of range for a one-hot column of {} \
                     categories; codes must be -1 (missing) or 0..{}",
                    self.categories, self.categories
                ))
            })
    }
}

// ---------------------------------------------------------------------------------------------
// The NaN policy, applied row by row

/// Resolves rows of one column under the policy, carrying values for the ffill/bfill family.
/// Small and `Copy`: the loops work on a local copy (kept in registers) and store it back.
#[derive(Clone, Copy)]
struct Resolver<E: Encoding> {
    enc: E,
    policy: NanPolicy,
    fill: f64,
    carry: Option<E::V>,
    saw_missing: bool,
}

impl<E: Encoding> Resolver<E> {
    /// A resolver for rows `rows` (walked backward for BFILL): the carry starts from the rows
    /// outside the range, as a sequential walk over the whole column would have left it.
    fn new(enc: E, policy: NanPolicy, fill: f64, rows: &Range<usize>) -> Self {
        let carry = match policy {
            NanPolicy::Ffill => (0..rows.start).rev().find_map(|r| enc.get(r)),
            NanPolicy::FfillBfill => (0..rows.start)
                .rev()
                .find_map(|r| enc.get(r))
                .or_else(|| (rows.start..enc.len()).find_map(|r| enc.get(r))),
            NanPolicy::Bfill => (rows.end..enc.len()).find_map(|r| enc.get(r)),
            _ => None,
        };
        Resolver {
            enc,
            policy,
            fill,
            carry,
            saw_missing: false,
        }
    }

    #[inline(always)]
    fn resolve(&mut self, r: usize) -> Res<E::V> {
        match self.enc.get(r) {
            Some(v) => {
                self.carry = Some(v);
                Res::Val(v)
            }
            None => self.missing(),
        }
    }

    #[inline(always)]
    fn missing(&mut self) -> Res<E::V> {
        match self.policy {
            NanPolicy::Raise => {
                self.saw_missing = true;
                Res::Missing
            }
            NanPolicy::Drop => Res::Missing,
            NanPolicy::Fill(_) | NanPolicy::Mean if self.enc.fillable() => Res::Fill(self.fill),
            NanPolicy::Fill(_) | NanPolicy::Mean => Res::Missing,
            NanPolicy::Ffill | NanPolicy::Bfill | NanPolicy::FfillBfill => {
                self.carry.map_or(Res::Missing, Res::Val)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Column operations behind one object-safe trait (one monomorphised copy per element type)

/// What the write pass needs to know about one column.
struct Plan {
    fill: f64,
    norm: Option<Vec<Norm>>,
}

/// Shared facts of one write.
struct Layout {
    policy: NanPolicy,
    sink: Sink,
    row_bytes: usize,
}

trait ColumnOps: Sync {
    fn width(&self) -> usize;
    /// Clears `keep[r]` for every row where this column is missing.
    fn mark_missing(&self, keep: &mut [bool]);
    /// Walks the (kept) rows under the policy; returns the statistics and whether a missing
    /// value was met (for RAISE). `mean`: the second pass of a z-score, which adds the squared
    /// deviations from it to `stats`.
    fn scan(
        &self,
        policy: NanPolicy,
        fill: f64,
        keep: Option<&[bool]>,
        stats: &mut Stats,
        mean: Option<f64>,
    ) -> Result<bool>;
    fn new_stats(&self) -> Stats;
    /// A writer for rows `rows` of this column, at byte `offset` of each output row.
    fn writer<'s>(
        &'s self,
        plan: &'s Plan,
        layout: &'s Layout,
        rows: Range<usize>,
        offset: usize,
    ) -> Box<dyn BlockWriter + 's>;
}

/// Writes one column's cells for consecutive row blocks of one row range.
trait BlockWriter {
    /// Writes rows `rows` (the kept ones, in order) into `out`, whose first row is the first
    /// kept row of the block. Backward (from the last row) when `backward`.
    fn write_block(
        &mut self,
        rows: Range<usize>,
        keep: Option<&[bool]>,
        out: &mut [u8],
        backward: bool,
    ) -> Result<()>;
    fn saw_missing(&self) -> bool;
}

struct Typed<E>(E);

struct Writer<'s, E: Encoding> {
    resolver: Resolver<E>,
    norm: Option<&'s [Norm]>,
    sink: Sink,
    row_bytes: usize,
    offset: usize,
    cell_bytes: usize,
}

impl<E: Encoding> Writer<'_, E> {
    #[inline(always)]
    fn run<O: Out>(
        &mut self,
        o: O,
        rows: Range<usize>,
        keep: Option<&[bool]>,
        out: &mut [u8],
        backward: bool,
    ) -> Result<()> {
        let (row_bytes, offset, cell_bytes, norm) =
            (self.row_bytes, self.offset, self.cell_bytes, self.norm);
        let mut resolver = self.resolver;
        let enc = resolver.enc;
        let result = (|| {
            if backward {
                let rows_out = out.chunks_exact_mut(row_bytes).take(rows.len());
                for (r, row) in rows.rev().zip(rows_out.rev()) {
                    let res = resolver.resolve(r);
                    enc.emit(res, &mut row[offset..offset + cell_bytes], o, norm)?;
                }
            } else if let Some(keep) = keep {
                let mut rows_out = out.chunks_exact_mut(row_bytes);
                for r in rows {
                    if keep[r] {
                        let row = rows_out.next().expect("one output row per kept row");
                        let res = resolver.resolve(r);
                        enc.emit(res, &mut row[offset..offset + cell_bytes], o, norm)?;
                    }
                }
            } else {
                for (r, row) in rows.zip(out.chunks_exact_mut(row_bytes)) {
                    enc.prefetch(r + PREFETCH_ROWS);
                    let res = resolver.resolve(r);
                    enc.emit(res, &mut row[offset..offset + cell_bytes], o, norm)?;
                }
            }
            Ok(())
        })();
        self.resolver = resolver;
        result
    }
}

impl<E: Encoding> BlockWriter for Writer<'_, E> {
    fn write_block(
        &mut self,
        rows: Range<usize>,
        keep: Option<&[bool]>,
        out: &mut [u8],
        backward: bool,
    ) -> Result<()> {
        if self.row_bytes == 0 {
            return Ok(());
        }
        match self.sink {
            Sink::F32 => self.run(OutF32, rows, keep, out, backward),
            Sink::F64 => self.run(OutF64, rows, keep, out, backward),
            Sink::Other(d) => self.run(OutAny(d), rows, keep, out, backward),
        }
    }

    fn saw_missing(&self) -> bool {
        self.resolver.saw_missing
    }
}

/// Adds one result to the statistics: a present value (first pass), a fill row, or the squared
/// deviation from `mean` (second pass).
#[inline(always)]
fn visit_moments<E: Encoding>(m: &mut Moments, enc: &E, res: Res<E::V>, mean: Option<f64>) {
    match (res, mean) {
        (Res::Fill(_), None) => m.fills += 1,
        (Res::Fill(x), Some(mean)) => m.m2 += (x - mean) * (x - mean),
        (res, None) => {
            if let Some(x) = enc.number(res) {
                m.push(x);
            }
        }
        (res, Some(mean)) => {
            if let Some(x) = enc.number(res) {
                m.m2 += (x - mean) * (x - mean);
            }
        }
    }
}

/// The statistics of the rows `rows` (in walk order) added to `start`. Two interleaved
/// accumulators, so that the sums' addition chains overlap.
fn scan_moments<E: Encoding>(
    start: Moments,
    mut rows: impl Iterator<Item = usize>,
    resolver: &mut Resolver<E>,
    mean: Option<f64>,
) -> Moments {
    let mut local = *resolver;
    let enc = local.enc;
    let (mut a, mut b) = (start, Moments::new());
    while let Some(r) = rows.next() {
        visit_moments(&mut a, &enc, local.resolve(r), mean);
        let Some(r) = rows.next() else { break };
        visit_moments(&mut b, &enc, local.resolve(r), mean);
    }
    *resolver = local;
    Moments {
        n: a.n + b.n,
        sum: a.sum + b.sum,
        min: a.min.min(b.min),
        max: a.max.max(b.max),
        fills: a.fills + b.fills,
        m2: a.m2 + b.m2,
    }
}

impl<E: Encoding> ColumnOps for Typed<E> {
    fn width(&self) -> usize {
        self.0.width()
    }

    fn mark_missing(&self, keep: &mut [bool]) {
        let enc = self.0;
        if !enc.may_miss() {
            return;
        }
        for (r, k) in keep.iter_mut().enumerate() {
            if *k && enc.get(r).is_none() {
                *k = false;
            }
        }
    }

    fn new_stats(&self) -> Stats {
        if self.0.is_onehot() {
            Stats::Counts {
                counts: vec![0; self.0.width()],
                rows: 0,
            }
        } else {
            Stats::Moments(Moments::new())
        }
    }

    fn scan(
        &self,
        policy: NanPolicy,
        fill: f64,
        keep: Option<&[bool]>,
        stats: &mut Stats,
        mean: Option<f64>,
    ) -> Result<bool> {
        let enc = self.0;
        let n = enc.len();
        let mut resolver = Resolver::new(enc, policy, fill, &(0..n));
        let kept = |r: usize| keep.is_none_or(|k| k[r]);
        match stats {
            Stats::Moments(m) => {
                *m = if policy == NanPolicy::Bfill {
                    scan_moments(*m, (0..n).rev().filter(|&r| kept(r)), &mut resolver, mean)
                } else {
                    scan_moments(*m, (0..n).filter(|&r| kept(r)), &mut resolver, mean)
                };
            }
            Stats::Counts { counts, rows } => {
                let mut visit = |res: Res<E::V>| -> Result<()> {
                    *rows += 1;
                    if let Some(k) = enc.category(res)? {
                        counts[k] += 1;
                    }
                    Ok(())
                };
                if policy == NanPolicy::Bfill {
                    for r in (0..n).rev().filter(|&r| kept(r)) {
                        visit(resolver.resolve(r))?;
                    }
                } else {
                    for r in (0..n).filter(|&r| kept(r)) {
                        visit(resolver.resolve(r))?;
                    }
                }
            }
        }
        Ok(resolver.saw_missing)
    }

    fn writer<'s>(
        &'s self,
        plan: &'s Plan,
        layout: &'s Layout,
        rows: Range<usize>,
        offset: usize,
    ) -> Box<dyn BlockWriter + 's> {
        Box::new(Writer {
            resolver: Resolver::new(self.0, layout.policy, plan.fill, &rows),
            norm: plan.norm.as_deref(),
            sink: layout.sink,
            row_bytes: layout.row_bytes,
            offset,
            cell_bytes: self.0.width() * layout.sink.item(),
        })
    }
}

/// Checks one column and gives its typed operations.
fn prepare<'c>(index: usize, c: &'c Column<'_>, rows: usize) -> Result<Box<dyn ColumnOps + 'c>> {
    if c.len != rows {
        return Err(Error::InvalidArgument(format!(
            "column {index} has {} rows, column 0 has {rows}; all columns must have the same \
             length",
            c.len
        )));
    }
    if c.missing.is_some_and(|m| m.len() != c.len) {
        return Err(Error::InvalidArgument(format!(
            "the missing mask of column {index} has {} entries for {} rows",
            c.missing.map_or(0, <[u8]>::len),
            c.len
        )));
    }
    let unsupported = || {
        let what = match c.kind {
            ColumnKind::Value => "a value column needs a real number or bool dtype",
            ColumnKind::Datetime { .. } => "a datetime column needs int64 ticks",
            ColumnKind::Codes | ColumnKind::OneHot { .. } => {
                "a category column needs integer codes"
            }
        };
        Error::UnsupportedDtype(format!("column {index} has dtype {}: {what}", c.dtype))
    };
    let kind = c.dtype.kind().ok_or_else(unsupported)?;
    let ops: Box<dyn ColumnOps + 'c> = match c.kind {
        ColumnKind::Value => match kind {
            Kind::Bool => Box::new(Typed(ValueEnc(Reader::<Bool8>::new(c)))),
            Kind::F16 => Box::new(Typed(ValueEnc(Reader::<f16>::new(c)))),
            Kind::BF16 => Box::new(Typed(ValueEnc(Reader::<bf16>::new(c)))),
            Kind::F32 => Box::new(Typed(ValueEnc(Reader::<f32>::new(c)))),
            Kind::F64 => Box::new(Typed(ValueEnc(Reader::<f64>::new(c)))),
            k => for_int_kind!(k, T => Box::new(Typed(ValueEnc(Reader::<T>::new(c)))), {
                return Err(unsupported());
            }),
        },
        ColumnKind::Datetime { divisor, floor } => {
            if kind != Kind::I64 {
                return Err(unsupported());
            }
            if divisor <= 0 {
                return Err(Error::InvalidArgument(format!(
                    "column {index}: the datetime divisor is {divisor}; it must be > 0 (ticks \
                     per output unit, e.g. 86400000000000 for days of a nanosecond column)"
                )));
            }
            Box::new(Typed(TimeEnc {
                reader: Reader::new(c),
                divisor,
                floor,
            }))
        }
        ColumnKind::Codes => {
            for_int_kind!(kind, T => Box::new(Typed(CodesEnc(Reader::<T>::new(c)))), {
                return Err(unsupported());
            })
        }
        ColumnKind::OneHot { categories } => for_int_kind!(kind, T => Box::new(Typed(OneHotEnc {
            reader: Reader::<T>::new(c),
            categories,
        })), {
            return Err(unsupported());
        }),
    };
    Ok(ops)
}

fn check_output_dtype(opts: &ColumnsOptions) -> Result<DType> {
    let dtype = opts.dtype.validate()?;
    let kind = dtype.kind().filter(|k| !k.is_complex()).ok_or_else(|| {
        Error::UnsupportedDtype(format!(
            "cannot write columns as {dtype}; use bool, an integer type, float16, bfloat16, \
             float32 or float64"
        ))
    })?;
    if opts.normalize != Normalize::None
        && !matches!(kind, Kind::F16 | Kind::BF16 | Kind::F32 | Kind::F64)
    {
        return Err(Error::InvalidArgument(format!(
            "normalised values are fractions and cannot be written as {dtype}; use a float dtype"
        )));
    }
    if let NanPolicy::Fill(x) = opts.nan
        && x.is_nan()
    {
        return Err(Error::InvalidArgument(
            "the fill value is NaN, which fills nothing; use a number".into(),
        ));
    }
    Ok(dtype)
}

fn missing_error(columns: &[usize]) -> Error {
    let list: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    Error::InvalidArgument(format!(
        "column{} {} hold{} missing values (NaN, NaT or a missing category) and the NaN policy \
         is RAISE; choose drop, fill (a value), mean, ffill, bfill or ffill_bfill",
        if columns.len() == 1 { "" } else { "s" },
        list.join(", "),
        if columns.len() == 1 { "s" } else { "" },
    ))
}

/// The per-column plans: fill values and normalisations, from a statistics pass when needed.
fn plan(
    ops: &[Box<dyn ColumnOps + '_>],
    opts: &ColumnsOptions,
    keep: Option<&[bool]>,
    threads: usize,
) -> Result<Vec<Plan>> {
    let given_fill = match opts.nan {
        NanPolicy::Fill(x) => x,
        _ => f64::NAN,
    };
    if opts.normalize == Normalize::None && opts.nan != NanPolicy::Mean {
        return Ok(ops
            .iter()
            .map(|_| Plan {
                fill: given_fill,
                norm: None,
            })
            .collect());
    }
    let scan = |op: &(dyn ColumnOps + '_)| -> Result<Option<Plan>> {
        let mut stats = op.new_stats();
        if op.scan(opts.nan, given_fill, keep, &mut stats, None)? {
            return Ok(None);
        }
        let mut fill = given_fill;
        if let Stats::Moments(m) = &mut stats {
            if opts.nan == NanPolicy::Mean {
                fill = m.mean();
            }
            m.add_fills(fill);
        }
        if opts.normalize == Normalize::ZScore
            && let Stats::Moments(m) = &stats
        {
            let mean = m.mean();
            op.scan(opts.nan, fill, keep, &mut stats, Some(mean))?;
        }
        let norm = (opts.normalize != Normalize::None).then(|| match &stats {
            Stats::Moments(m) => vec![m.norm(opts.normalize)],
            Stats::Counts { counts, rows } => counts
                .iter()
                .map(|&ones| {
                    let (zeros, n) = ((rows - ones) as f64, *rows as f64);
                    let mean = ones as f64 / n;
                    let m = Moments {
                        n: *rows,
                        sum: ones as f64,
                        min: if zeros > 0.0 { 0.0 } else { 1.0 },
                        max: if ones > 0 { 1.0 } else { 0.0 },
                        fills: 0,
                        m2: ones as f64 * (1.0 - mean) * (1.0 - mean) + zeros * mean * mean,
                    };
                    m.norm(opts.normalize)
                })
                .collect(),
        });
        Ok(Some(Plan { fill, norm }))
    };
    let results = par_map(ops, threads, |op| scan(op.as_ref()));
    let mut plans = Vec::with_capacity(ops.len());
    let mut missing = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result? {
            Some(plan) => plans.push(plan),
            None => missing.push(index),
        }
    }
    if !missing.is_empty() {
        return Err(missing_error(&missing));
    }
    Ok(plans)
}

/// Threads for `bytes` of traffic split over `items` independent pieces: the copy kernels' rule
/// (at most `dlshare_set_num_threads`' cap, at least `PARALLEL_MIN_BYTES` per thread).
fn threads_for(bytes: usize, items: usize) -> usize {
    kernels::num_threads()
        .min(bytes / kernels::PARALLEL_MIN_BYTES)
        .min(items)
        .max(1)
}

/// `items.iter().map(f)`, on several threads (contiguous groups of items) when `threads > 1`.
fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|group| s.spawn(move || group.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Writes input rows `rows` of every column into `out` (their output rows), block by block.
/// Returns, per column, whether a missing value was met (for RAISE).
fn write_range(
    ops: &[Box<dyn ColumnOps + '_>],
    plans: &[Plan],
    offsets: &[usize],
    layout: &Layout,
    keep: Option<&[bool]>,
    rows: Range<usize>,
    out: &mut [u8],
) -> Result<Vec<bool>> {
    let mut writers: Vec<Box<dyn BlockWriter + '_>> = ops
        .iter()
        .zip(plans)
        .zip(offsets)
        .map(|((op, plan), &offset)| op.writer(plan, layout, rows.clone(), offset))
        .collect();
    let block = (BLOCK_BYTES / layout.row_bytes.max(1)).max(1);
    let blocks = rows.len().div_ceil(block);
    let span = |b: usize| rows.start + b * block..(rows.start + (b + 1) * block).min(rows.end);
    if layout.policy == NanPolicy::Bfill {
        // Backward, so that each row's next present value is known; no rows are dropped.
        for b in (0..blocks).rev() {
            let span = span(b);
            let at = (span.start - rows.start) * layout.row_bytes;
            let out = &mut out[at..at + span.len() * layout.row_bytes];
            for w in &mut writers {
                w.write_block(span.clone(), None, out, true)?;
            }
        }
    } else {
        let mut at = 0;
        for b in 0..blocks {
            let span = span(b);
            let kept = keep.map_or(span.len(), |k| {
                k[span.clone()].iter().filter(|&&x| x).count()
            });
            let out = &mut out[at..at + kept * layout.row_bytes];
            for w in &mut writers {
                w.write_block(span.clone(), keep, out, false)?;
            }
            at += kept * layout.row_bytes;
        }
    }
    Ok(writers.iter().map(|w| w.saw_missing()).collect())
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
    let results: Vec<Result<Vec<bool>>> = if threads <= 1 {
        ranges
            .into_iter()
            .map(|(rows, out)| write_range(ops, plans, offsets, layout, keep, rows, out))
            .collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .into_iter()
                .map(|(rows, out)| {
                    s.spawn(move || write_range(ops, plans, offsets, layout, keep, rows, out))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
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

// ---------------------------------------------------------------------------------------------
// Strided views

/// The inclusive element range `[lo, hi]` (relative to the first element) a non-empty strided
/// array touches.
fn element_extent(shape: &[i64], strides: &[i64]) -> (i128, i128) {
    let (mut lo, mut hi) = (0i128, 0i128);
    for (&n, &s) in shape.iter().zip(strides) {
        let span = i128::from(n - 1) * i128::from(s);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

impl Tensor {
    /// A view of the same storage with a new `shape`, element `strides` (any sign, zero
    /// allowed) and element `offset` of its index-(0, ..., 0) element relative to this tensor's
    /// first element. Every element of the view must lie inside this tensor's element extent
    /// (the range between its lowest and highest element). The view keeps the storage alive,
    /// is read-only when this tensor is, and is not a fresh copy. A zero-size view starts at
    /// this tensor's first element whatever the offset.
    pub fn restride(&self, shape: &[i64], strides: &[i64], offset: i64) -> Result<Tensor> {
        if shape.len() != strides.len() {
            return Err(Error::InvalidArgument(format!(
                "{} strides given for {} dimensions",
                strides.len(),
                shape.len()
            )));
        }
        let n = layout::numel(shape)?;
        if self.dtype.is_subbyte() && !self.subbyte_padded {
            return Err(Error::UnsupportedDtype(format!(
                "packed {} elements have no element addresses; views of them are not supported",
                self.dtype
            )));
        }
        let mut view = Tensor {
            storage: self.storage.clone(),
            data: self.data,
            byte_offset: self.byte_offset,
            dtype: self.dtype,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            read_only: self.read_only,
            is_copy: false,
            subbyte_padded: self.subbyte_padded,
        };
        if n == 0 {
            return Ok(view);
        }
        if self.numel() == 0 {
            return Err(Error::InvalidArgument(format!(
                "a view of shape {shape:?} needs elements, but the tensor (shape {:?}) has none",
                self.shape
            )));
        }
        let (src_lo, src_hi) = element_extent(&self.shape, &self.strides);
        let (lo, hi) = element_extent(shape, strides);
        let (lo, hi) = (lo + i128::from(offset), hi + i128::from(offset));
        if lo < src_lo || hi > src_hi {
            return Err(Error::InvalidArgument(format!(
                "a view with shape {shape:?}, strides {strides:?} and offset {offset} reaches \
                 elements {lo}..={hi}, outside the tensor's elements {src_lo}..={src_hi} \
                 (shape {:?}, strides {:?}); shrink the view",
                self.shape, self.strides
            )));
        }
        let item = self.dtype.item_size() as i128;
        let byte_offset = i128::from(self.byte_offset) + i128::from(offset) * item;
        match u64::try_from(byte_offset) {
            Ok(b) => view.byte_offset = b,
            Err(_) => {
                // Before `data`: point `data` at the view's first element instead.
                view.data = self
                    .data_ptr()
                    .wrapping_offset((i128::from(offset) * item) as isize);
                view.byte_offset = 0;
            }
        }
        Ok(view)
    }
}
