//! Column elements: the element types a column can hold and the reader of one column's
//! elements (strided, optionally byte-swapped, with its missing-value mask).

use super::*;

/// A bool element read as its byte (non-zero is true), so no bit pattern is invalid.
#[derive(Clone, Copy)]
pub(super) struct Bool8(pub(super) u8);

/// Element types a column can hold. Every bit pattern is a valid value of each.
pub(super) trait Elem: Copy + Send + Sync + 'static {
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
pub(super) trait IntElem: Elem {
    fn to_i64(self) -> i64;
}

pub(super) fn bytes8(b: &[u8]) -> [u8; 8] {
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
pub(super) struct Reader<T> {
    pub(super) ptr: *const u8,
    pub(super) len: usize,
    pub(super) stride: isize,
    pub(super) swapped: bool,
    pub(super) missing: Option<*const u8>,
    /// An Arrow validity bitmap and the bit of row 0 (bit clear: missing).
    pub(super) valid: Option<(*const u8, usize)>,
    pub(super) _t: PhantomData<T>,
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
    pub(super) fn code(&self, r: usize) -> Option<i64> {
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
    pub(super) fn new(c: &Column<'_>) -> Reader<T> {
        debug_assert_eq!(c.dtype, T::DTYPE);
        Reader {
            ptr: c.ptr,
            len: c.len,
            stride: c.byte_stride,
            swapped: c.byte_swapped,
            missing: c.missing.map(|m| m.as_ptr()),
            valid: c.valid.map(|(b, o)| (b.as_ptr(), o)),
            _t: PhantomData,
        }
    }

    /// Hints the CPU to fetch element `r`'s cache line (no effect past the end: a prefetch
    /// never faults). Hardware prefetchers stop at page boundaries; the write pass reads one
    /// column for a block of rows, then the next, so it asks for lines ahead itself.
    #[inline(always)]
    pub(super) fn prefetch(&self, r: usize) {
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
    pub(super) fn read(&self, r: usize) -> (T, bool) {
        assert!(r < self.len, "row {r} out of range");
        let p = self.ptr.wrapping_offset(r as isize * self.stride);
        // SAFETY: `r < len`, so by the Column's constructor contract `p` addresses a readable
        // element of T's dtype; `read_unaligned` needs no alignment and every bit pattern is a
        // valid T (bool is read as its byte). The mask (checked to hold `len` bytes when the
        // Column was prepared) and the validity bitmap (checked to hold `offset + len` bits) are
        // readable for the same lifetime.
        let (v, masked) = unsafe {
            (
                p.cast::<T>().read_unaligned(),
                self.missing.is_some_and(|m| *m.add(r) != 0)
                    || self.valid.is_some_and(|(b, o)| {
                        let k = o + r;
                        (*b.add(k >> 3) >> (k & 7)) & 1 == 0
                    }),
            )
        };
        (if self.swapped { v.swapped() } else { v }, masked)
    }
}
