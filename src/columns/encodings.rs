//! Encodings: how a column's elements become output cells (values, datetimes, category codes,
//! one-hot rows), and the output element writers.

use super::*;

/// The output dtype, for dispatch.
#[derive(Clone, Copy)]
pub(super) enum Sink {
    F32,
    F64,
    Other(DType),
}

impl Sink {
    pub(super) fn of(dtype: DType) -> Sink {
        match dtype {
            DType::F32 => Sink::F32,
            DType::F64 => Sink::F64,
            other => Sink::Other(other),
        }
    }

    pub(super) fn item(self) -> usize {
        match self {
            Sink::F32 => 4,
            Sink::F64 => 8,
            Sink::Other(d) => d.item_size(),
        }
    }
}

/// Writes output elements of one dtype (a type per common dtype, so that the write loops are
/// compiled for it).
pub(super) trait Out: Copy {
    /// Writes a computed value.
    fn put_f64(self, cell: &mut [u8], v: f64);
    /// Writes a source element unchanged but for the cast (NumPy `astype` semantics).
    fn put<T: Elem>(self, cell: &mut [u8], v: T);
}

#[derive(Clone, Copy)]
pub(super) struct OutF32;
#[derive(Clone, Copy)]
pub(super) struct OutF64;
#[derive(Clone, Copy)]
pub(super) struct OutAny(pub(super) DType);

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
pub(super) enum Res<V> {
    /// A present value (possibly carried from another row by ffill/bfill).
    Val(V),
    /// Missing, replaced by a number (FILL, MEAN).
    Fill(f64),
    /// Missing and left so (NaN; code -1; a zero one-hot row).
    Missing,
}

/// How an element type and a column kind become output cells.
pub(super) trait Encoding: Sync + Copy {
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
pub(super) struct ValueEnc<T>(pub(super) Reader<T>);

impl<T: Elem> Encoding for ValueEnc<T> {
    type V = T;
    fn may_miss(&self) -> bool {
        T::HAS_NAN || self.0.missing.is_some() || self.0.valid.is_some()
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
pub(super) struct TimeEnc {
    pub(super) reader: Reader<i64>,
    pub(super) divisor: i64,
    pub(super) floor: bool,
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
pub(super) struct CodesEnc<T>(pub(super) Reader<T>);

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
pub(super) struct OneHotEnc<T> {
    pub(super) reader: Reader<T>,
    pub(super) categories: usize,
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
