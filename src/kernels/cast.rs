//! Element casts between the 15 computable dtypes, following NumPy's `astype` (and PyTorch for
//! bfloat16, which NumPy lacks):
//! - to bool: non-zero (NaN is true; complex: either part non-zero);
//! - float to integer: truncation toward zero, then wrap-around to the target width (what NumPy
//!   gives on x86-64 for in-range values of the intermediate); NaN and infinities give 0 or the
//!   saturated value (NumPy's result there is platform-defined and it warns);
//! - integer to integer: wrap-around (two's complement);
//! - to float16: correctly rounded from the source value; to bfloat16: through float32, round to
//!   nearest even (as PyTorch);
//! - complex to real: the real part (only when the caller allowed it).
//!
//! The rules are written once, per element type ([`Elem`]); the one-element path
//! ([`cast_scalar_bytes`]) and the slice converters ([`cast_fn`]) are both generated from them,
//! so a fast path can only differ from the reference where it is specialised by hand
//! (float16/bfloat16, checked bit for bit in the tests below).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::dtype::{DType, Kind};
use crate::error::{Error, Result};

#[derive(Clone, Copy)]
pub(super) enum Scalar {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// The f32 case is kept apart so that f32 -> bf16 rounds once.
    Float32(f32),
    Complex(f64, f64),
}

/// Checks that both dtypes are computable.
pub fn can_cast(from: DType, to: DType) -> Result<()> {
    for d in [from, to] {
        if d.kind().is_none() {
            return Err(Error::UnsupportedDtype(format!(
                "cannot cast {from} to {to}: {d} is not a type dlshare converts (it can only be \
                 shared or copied unchanged)"
            )));
        }
    }
    Ok(())
}

impl Scalar {
    #[inline(always)]
    fn real(self) -> Scalar {
        match self {
            Scalar::Complex(re, _) => Scalar::Float(re),
            other => other,
        }
    }

    /// Integer value with wrap-around semantics, as a 64-bit pattern.
    #[inline(always)]
    fn to_bits_i64(self) -> i64 {
        match self.real() {
            Scalar::Bool(b) => i64::from(b),
            Scalar::Int(v) => v,
            Scalar::UInt(v) => v as i64,
            Scalar::Float32(v) => float_to_i64_bits(f64::from(v)),
            Scalar::Float(v) => float_to_i64_bits(v),
            Scalar::Complex(..) => unreachable!("real() removed the complex case"),
        }
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        match self.real() {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::Int(v) => v as f64,
            Scalar::UInt(v) => v as f64,
            Scalar::Float32(v) => f64::from(v),
            Scalar::Float(v) => v,
            Scalar::Complex(..) => unreachable!("real() removed the complex case"),
        }
    }

    #[inline(always)]
    fn to_f32(self) -> f32 {
        match self.real() {
            Scalar::Int(v) => v as f32,
            Scalar::UInt(v) => v as f32,
            Scalar::Float32(v) => v,
            other => other.to_f64() as f32,
        }
    }

    #[inline(always)]
    fn is_nonzero(self) -> bool {
        match self {
            Scalar::Bool(b) => b,
            Scalar::Int(v) => v != 0,
            Scalar::UInt(v) => v != 0,
            Scalar::Float32(v) => v != 0.0,
            Scalar::Float(v) => v != 0.0,
            Scalar::Complex(re, im) => re != 0.0 || im != 0.0,
        }
    }

    #[inline(always)]
    fn parts(self) -> (f64, f64) {
        match self {
            Scalar::Complex(re, im) => (re, im),
            other => (other.to_f64(), 0.0),
        }
    }
}

/// Truncates toward zero; values in [2^63, 2^64) keep their unsigned bit pattern so that
/// float -> uint64 is exact there.
#[inline(always)]
fn float_to_i64_bits(v: f64) -> i64 {
    if v >= 9_223_372_036_854_775_808.0 {
        (v as u64) as i64
    } else {
        v as i64
    }
}

/// One element of a computable dtype, in native byte order: how it reads into a [`Scalar`] and
/// how a [`Scalar`] is stored as it. Every cast is `D::store(S::load(x))`.
pub(super) trait Elem: Copy + 'static {
    fn load(self) -> Scalar;
    fn store(value: Scalar) -> Self;
}

/// A bool element as stored: one byte, any non-zero value read as true.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(super) struct Bool8(u8);

/// complex64 / complex128 elements: (real, imaginary).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct C64(f32, f32);
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct C128(f64, f64);

impl Elem for Bool8 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Bool(self.0 != 0)
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        Bool8(u8::from(value.is_nonzero()))
    }
}

macro_rules! int_elem {
    ($($t:ty => $variant:ident),*) => {$(
        impl Elem for $t {
            #[inline(always)]
            fn load(self) -> Scalar {
                Scalar::$variant(self.into())
            }
            #[inline(always)]
            fn store(value: Scalar) -> Self {
                value.to_bits_i64() as $t
            }
        }
    )*};
}
int_elem!(i8 => Int, i16 => Int, i32 => Int, i64 => Int, u8 => UInt, u16 => UInt, u32 => UInt,
          u64 => UInt);

impl Elem for f16 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Float32(self.to_f32())
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        match value.real() {
            Scalar::Float32(v) => f16::from_f32(v),
            other => f16::from_f64(other.to_f64()),
        }
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Float32(self.to_f32())
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        bf16::from_f32(value.to_f32())
    }
}

impl Elem for f32 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Float32(self)
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        value.to_f32()
    }
}

impl Elem for f64 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Float(self)
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        value.to_f64()
    }
}

impl Elem for C64 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Complex(f64::from(self.0), f64::from(self.1))
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        match value {
            Scalar::Complex(re, im) => C64(re as f32, im as f32),
            other => C64(other.to_f32(), 0.0),
        }
    }
}

impl Elem for C128 {
    #[inline(always)]
    fn load(self) -> Scalar {
        Scalar::Complex(self.0, self.1)
    }
    #[inline(always)]
    fn store(value: Scalar) -> Self {
        let (re, im) = value.parts();
        C128(re, im)
    }
}

/// Runs `$body` with `$t` bound to the integer type of `$kind`, or evaluates `$other` when
/// `$kind` is not an integer kind. Shared by the cast kernels and the columns kernel.
macro_rules! for_int_kind {
    ($kind:expr, $t:ident => $body:expr, $other:expr) => {
        match $kind {
            Kind::I8 => {
                type $t = i8;
                $body
            }
            Kind::I16 => {
                type $t = i16;
                $body
            }
            Kind::I32 => {
                type $t = i32;
                $body
            }
            Kind::I64 => {
                type $t = i64;
                $body
            }
            Kind::U8 => {
                type $t = u8;
                $body
            }
            Kind::U16 => {
                type $t = u16;
                $body
            }
            Kind::U32 => {
                type $t = u32;
                $body
            }
            Kind::U64 => {
                type $t = u64;
                $body
            }
            _ => $other,
        }
    };
}
pub(crate) use for_int_kind;

/// Runs `$body` with `$t` bound to the element type of `$kind`.
macro_rules! with_elem {
    ($kind:expr, $t:ident => $body:expr) => {
        match $kind {
            Kind::Bool => {
                type $t = Bool8;
                $body
            }
            Kind::F16 => {
                type $t = f16;
                $body
            }
            Kind::BF16 => {
                type $t = bf16;
                $body
            }
            Kind::F32 => {
                type $t = f32;
                $body
            }
            Kind::F64 => {
                type $t = f64;
                $body
            }
            Kind::C64 => {
                type $t = C64;
                $body
            }
            Kind::C128 => {
                type $t = C128;
                $body
            }
            int => for_int_kind!(int, $t => $body, unreachable!("every Kind is listed")),
        }
    };
}

/// Converts one element (native byte order) from `from` to `to`. Both must be computable
/// (`can_cast`); `input` and `output` hold exactly one element each.
pub fn cast_scalar_bytes(input: &[u8], from: DType, output: &mut [u8], to: DType) {
    let (Some(src), Some(dst)) = (from.kind(), to.kind()) else {
        unreachable!("can_cast was checked by the caller");
    };
    assert!(input.len() >= from.item_size() && output.len() >= to.item_size());
    let f = cast_fn(src, dst);
    // SAFETY: both slices hold at least one element of their dtype (checked above); the
    // converters read and write unaligned.
    unsafe { f(input.as_ptr(), output.as_mut_ptr(), 1) };
}

/// Converts `n` contiguous elements: reads `n` source elements from `src` (any alignment),
/// writes `n` destination elements to `dst` (any alignment).
pub(super) type CastFn = unsafe fn(src: *const u8, dst: *mut u8, n: usize);

/// The generic converter: the per-type rules, inlined and specialised by the compiler (for
/// plain numeric pairs this becomes the `as` cast loop, vectorised).
///
/// # Safety
/// `src` readable for `n` elements of `S`, `dst` writable for `n` elements of `D`, no overlap.
unsafe fn cast_run<S: Elem, D: Elem>(src: *const u8, dst: *mut u8, n: usize) {
    let (src, dst) = (src.cast::<S>(), dst.cast::<D>());
    for i in 0..n {
        // SAFETY: `i < n`, within both buffers per the contract; unaligned access is allowed.
        unsafe {
            dst.add(i)
                .write_unaligned(D::store(src.add(i).read_unaligned().load()))
        };
    }
}

/// float32 -> bfloat16, round to nearest even, NaN kept quiet: exactly `bf16::from_f32`, but
/// branch-free so that the loop vectorises (half's own slice conversion is a scalar loop).
#[inline(always)]
pub(super) fn f32_to_bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let rounded = (x.wrapping_add(0x7FFF + ((x >> 16) & 1)) >> 16) as u16;
    let quiet_nan = (x >> 16) as u16 | 0x0040;
    if x & 0x7FFF_FFFF > 0x7F80_0000 {
        quiet_nan
    } else {
        rounded
    }
}

/// # Safety
/// As [`CastFn`].
#[inline(always)]
unsafe fn f32_to_bf16_loop(src: *const u8, dst: *mut u8, n: usize) {
    let (src, dst) = (src.cast::<f32>(), dst.cast::<u16>());
    for i in 0..n {
        // SAFETY: as `cast_run`.
        unsafe {
            dst.add(i)
                .write_unaligned(f32_to_bf16_bits(src.add(i).read_unaligned()))
        };
    }
}

/// # Safety
/// As [`CastFn`].
unsafe fn f32_to_bf16(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if x86::has_avx2() {
        // SAFETY: forwarded contract; AVX2 is present.
        return unsafe { x86::f32_to_bf16_avx2(src, dst, n) };
    }
    // SAFETY: forwarded contract.
    unsafe { f32_to_bf16_loop(src, dst, n) }
}

/// # Safety
/// As [`CastFn`].
unsafe fn bf16_to_f32(src: *const u8, dst: *mut u8, n: usize) {
    let (src, dst) = (src.cast::<u16>(), dst.cast::<u32>());
    for i in 0..n {
        // SAFETY: as `cast_run`.
        unsafe {
            dst.add(i)
                .write_unaligned(u32::from(src.add(i).read_unaligned()) << 16)
        };
    }
}

/// Runs a slice conversion that needs aligned slices, staging misaligned ends through an
/// aligned buffer. `half`'s slice conversions pick F16C (or the NEON equivalent) at run time.
///
/// # Safety
/// As [`CastFn`].
unsafe fn aligned_slices<S: Copy + Default, D: Copy + Default>(
    src: *const u8,
    dst: *mut u8,
    n: usize,
    f: fn(&[S], &mut [D]),
) {
    let aligned = |p: usize, a: usize| p.is_multiple_of(a);
    if aligned(src as usize, align_of::<S>()) && aligned(dst as usize, align_of::<D>()) {
        // SAFETY: aligned, readable/writable for `n` elements, not overlapping (contract).
        let (s, d) = unsafe {
            (
                std::slice::from_raw_parts(src.cast::<S>(), n),
                std::slice::from_raw_parts_mut(dst.cast::<D>(), n),
            )
        };
        f(s, d);
        return;
    }
    const BLOCK: usize = 512;
    let mut s = [S::default(); BLOCK];
    let mut d = [D::default(); BLOCK];
    let mut done = 0;
    while done < n {
        let m = (n - done).min(BLOCK);
        // SAFETY: the block lies within the caller's buffers; byte copies need no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.add(done * size_of::<S>()),
                s.as_mut_ptr().cast::<u8>(),
                m * size_of::<S>(),
            );
        }
        f(&s[..m], &mut d[..m]);
        // SAFETY: as above.
        unsafe {
            std::ptr::copy_nonoverlapping(
                d.as_ptr().cast::<u8>(),
                dst.add(done * size_of::<D>()),
                m * size_of::<D>(),
            );
        }
        done += m;
    }
}

/// # Safety
/// As [`CastFn`].
unsafe fn f32_to_f16(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if x86::has_f16c() {
        // SAFETY: forwarded contract; AVX and F16C are present.
        return unsafe { x86::f32_to_f16_f16c(src, dst, n) };
    }
    // SAFETY: forwarded contract.
    unsafe { f32_to_f16_half(src, dst, n) }
}

/// float32 -> float16 through `half`'s slice conversion (F16C when `half` detects it, else
/// software; the same rounding either way).
///
/// # Safety
/// As [`CastFn`].
unsafe fn f32_to_f16_half(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        aligned_slices::<f32, f16>(src, dst, n, |s, d| d.convert_from_f32_slice(s));
    }
}

/// # Safety
/// As [`CastFn`].
unsafe fn f16_to_f32(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        aligned_slices::<f16, f32>(src, dst, n, |s, d| s.convert_to_f32_slice(d));
    }
}

/// The converter for `from -> to` (contiguous runs, native byte order on both sides).
pub(super) fn cast_fn(from: Kind, to: Kind) -> CastFn {
    match (from, to) {
        (Kind::F32, Kind::F16) => f32_to_f16,
        (Kind::F16, Kind::F32) => f16_to_f32,
        (Kind::F32, Kind::BF16) => f32_to_bf16,
        (Kind::BF16, Kind::F32) => bf16_to_f32,
        _ => with_elem!(from, S => with_elem!(to, D => cast_run::<S, D> as CastFn)),
    }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
mod x86 {

    /// Cached by std after the first call.
    pub fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// Cached by std after the first call.
    pub fn has_f16c() -> bool {
        std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("f16c")
    }

    /// float32 -> float16 with VCVTPS2PH, 8 values per instruction, in one inlined loop.
    /// `half`'s slice conversion uses the same instruction (round to nearest even, so the
    /// results are the same bits, NaN payloads aside) but calls a non-inlined helper for every
    /// 8 values; this loop was 15-17% faster on the benchmark VM (256 MiB into fresh memory:
    /// 9.8 against 8.4 GB/s; 32 MiB into touched memory: 13.9 against 12.1 GB/s).
    ///
    /// # Safety
    /// As [`super::CastFn`]; AVX and F16C present.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn f32_to_f16_f16c(src: *const u8, dst: *mut u8, n: usize) {
        use std::arch::x86_64::{_MM_FROUND_TO_NEAREST_INT, _mm_storeu_si128};
        use std::arch::x86_64::{_mm256_cvtps_ph, _mm256_loadu_ps};
        let full = n - n % 8;
        for i in (0..full).step_by(8) {
            // SAFETY: values i..i + 8 are inside both buffers (contract); unaligned access.
            unsafe {
                let v = _mm256_loadu_ps(src.add(i * 4).cast());
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm_storeu_si128(dst.add(i * 2).cast(), h);
            }
        }
        // SAFETY: the last n % 8 values, through `half` (same rounding).
        unsafe { super::f32_to_f16_half(src.add(full * 4), dst.add(full * 2), n - full) };
    }

    /// The portable loop compiled for AVX2 (8 lanes instead of SSE2's 4).
    ///
    /// # Safety
    /// As [`super::CastFn`]; AVX2 present.
    #[target_feature(enable = "avx2")]
    pub unsafe fn f32_to_bf16_avx2(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: forwarded contract.
        unsafe { super::f32_to_bf16_loop(src, dst, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(from: Kind, to: Kind, input: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; to.dtype().item_size()];
        with_elem!(from, S => with_elem!(to, D => {
            // SAFETY: one element each way.
            unsafe { cast_run::<S, D>(input.as_ptr(), out.as_mut_ptr(), 1) }
        }));
        out
    }

    #[test]
    fn bf16_branch_free_rounding_is_bit_exact() {
        // Every 16th... a stride coprime with 2^32 walks all classes of low bits.
        let mut x: u32 = 0;
        for _ in 0..(1 << 22) {
            let v = f32::from_bits(x);
            assert_eq!(
                f32_to_bf16_bits(v),
                bf16::from_f32(v).to_bits(),
                "{x:#010x}"
            );
            x = x.wrapping_add(0x0000_0403);
        }
        for bits in [
            0u32,
            0x8000_0000,
            0x7F80_0000,
            0xFF80_0000,
            0x7FC0_0000,
            0x7F80_0001,
            0xFFFF_FFFF,
            0x7F7F_FFFF,
            0x3F80_8000,
            0x3F81_8000,
            0x0000_8000,
        ] {
            let v = f32::from_bits(bits);
            assert_eq!(
                f32_to_bf16_bits(v),
                bf16::from_f32(v).to_bits(),
                "{bits:#010x}"
            );
        }
    }

    #[test]
    fn specialised_converters_match_the_generic_rules() {
        let floats: Vec<f32> = (0..4000)
            .map(|i| f32::from_bits((i as u32).wrapping_mul(0x9E37_79B9)))
            .chain([0.0, -0.0, 65504.0, 65520.0, 1e-8, f32::INFINITY, f32::NAN])
            .collect();
        for (from, to) in [
            (Kind::F32, Kind::F16),
            (Kind::F32, Kind::BF16),
            (Kind::F16, Kind::F32),
            (Kind::BF16, Kind::F32),
        ] {
            let in_item = from.dtype().item_size();
            let out_item = to.dtype().item_size();
            let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_ne_bytes()).collect();
            // Use the raw bytes of the floats as source elements of `from`, and read at an odd
            // offset to exercise the misaligned staging.
            let mut shifted = vec![0u8; 1];
            shifted.extend_from_slice(&bytes);
            let n = bytes.len() / in_item;
            let mut fast = vec![0u8; n * out_item + 1];
            // SAFETY: sizes computed above.
            unsafe { cast_fn(from, to)(shifted.as_ptr().add(1), fast.as_mut_ptr().add(1), n) };
            for i in 0..n {
                let want = reference(from, to, &bytes[i * in_item..][..in_item]);
                let got = &fast[1 + i * out_item..][..out_item];
                let nan = |b: &[u8]| match to {
                    Kind::F32 => f32::from_ne_bytes(b.try_into().unwrap()).is_nan(),
                    Kind::F16 => f16::from_ne_bytes(b.try_into().unwrap()).is_nan(),
                    _ => bf16::from_ne_bytes(b.try_into().unwrap()).is_nan(),
                };
                assert!(
                    got == want.as_slice() || (nan(got) && nan(&want)),
                    "{from:?}->{to:?} #{i}"
                );
            }
        }
    }
}
