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

use half::{bf16, f16};

use crate::dtype::{DType, Kind};
use crate::error::{Error, Result};

#[derive(Clone, Copy)]
enum Scalar {
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

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

fn load(bytes: &[u8], kind: Kind) -> Scalar {
    match kind {
        Kind::Bool => Scalar::Bool(bytes[0] != 0),
        Kind::I8 => Scalar::Int(i64::from(bytes[0] as i8)),
        Kind::I16 => Scalar::Int(i64::from(i16::from_ne_bytes(arr(bytes)))),
        Kind::I32 => Scalar::Int(i64::from(i32::from_ne_bytes(arr(bytes)))),
        Kind::I64 => Scalar::Int(i64::from_ne_bytes(arr(bytes))),
        Kind::U8 => Scalar::UInt(u64::from(bytes[0])),
        Kind::U16 => Scalar::UInt(u64::from(u16::from_ne_bytes(arr(bytes)))),
        Kind::U32 => Scalar::UInt(u64::from(u32::from_ne_bytes(arr(bytes)))),
        Kind::U64 => Scalar::UInt(u64::from_ne_bytes(arr(bytes))),
        Kind::F16 => Scalar::Float32(f16::from_ne_bytes(arr(bytes)).to_f32()),
        Kind::BF16 => Scalar::Float32(bf16::from_ne_bytes(arr(bytes)).to_f32()),
        Kind::F32 => Scalar::Float32(f32::from_ne_bytes(arr(bytes))),
        Kind::F64 => Scalar::Float(f64::from_ne_bytes(arr(bytes))),
        Kind::C64 => Scalar::Complex(
            f64::from(f32::from_ne_bytes(arr(&bytes[..4]))),
            f64::from(f32::from_ne_bytes(arr(&bytes[4..8]))),
        ),
        Kind::C128 => Scalar::Complex(
            f64::from_ne_bytes(arr(&bytes[..8])),
            f64::from_ne_bytes(arr(&bytes[8..16])),
        ),
    }
}

impl Scalar {
    fn real(self) -> Scalar {
        match self {
            Scalar::Complex(re, _) => Scalar::Float(re),
            other => other,
        }
    }

    /// Integer value with wrap-around semantics, as a 64-bit pattern.
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

    fn to_f32(self) -> f32 {
        match self.real() {
            Scalar::Int(v) => v as f32,
            Scalar::UInt(v) => v as f32,
            Scalar::Float32(v) => v,
            other => other.to_f64() as f32,
        }
    }

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

    fn parts(self) -> (f64, f64) {
        match self {
            Scalar::Complex(re, im) => (re, im),
            other => (other.to_f64(), 0.0),
        }
    }
}

/// Truncates toward zero; values in [2^63, 2^64) keep their unsigned bit pattern so that
/// float -> uint64 is exact there.
fn float_to_i64_bits(v: f64) -> i64 {
    if v >= 9_223_372_036_854_775_808.0 {
        (v as u64) as i64
    } else {
        v as i64
    }
}

fn store(value: Scalar, out: &mut [u8], kind: Kind) {
    match kind {
        Kind::Bool => out[0] = u8::from(value.is_nonzero()),
        Kind::I8 | Kind::U8 => out[0] = value.to_bits_i64() as u8,
        Kind::I16 | Kind::U16 => out.copy_from_slice(&(value.to_bits_i64() as u16).to_ne_bytes()),
        Kind::I32 | Kind::U32 => out.copy_from_slice(&(value.to_bits_i64() as u32).to_ne_bytes()),
        Kind::I64 | Kind::U64 => out.copy_from_slice(&value.to_bits_i64().to_ne_bytes()),
        Kind::F16 => {
            let h = match value.real() {
                Scalar::Float32(v) => f16::from_f32(v),
                other => f16::from_f64(other.to_f64()),
            };
            out.copy_from_slice(&h.to_ne_bytes());
        }
        Kind::BF16 => out.copy_from_slice(&bf16::from_f32(value.to_f32()).to_ne_bytes()),
        Kind::F32 => out.copy_from_slice(&value.to_f32().to_ne_bytes()),
        Kind::F64 => out.copy_from_slice(&value.to_f64().to_ne_bytes()),
        Kind::C64 => {
            let (re, im) = match value {
                Scalar::Complex(re, im) => (re as f32, im as f32),
                other => (other.to_f32(), 0.0),
            };
            out[..4].copy_from_slice(&re.to_ne_bytes());
            out[4..].copy_from_slice(&im.to_ne_bytes());
        }
        Kind::C128 => {
            let (re, im) = value.parts();
            out[..8].copy_from_slice(&re.to_ne_bytes());
            out[8..].copy_from_slice(&im.to_ne_bytes());
        }
    }
}

/// Converts one element (native byte order) from `from` to `to`. Both must be computable
/// (`can_cast`); `input` and `output` hold exactly one element each.
pub fn cast_scalar_bytes(input: &[u8], from: DType, output: &mut [u8], to: DType) {
    let (Some(src), Some(dst)) = (from.kind(), to.kind()) else {
        unreachable!("can_cast was checked by the caller");
    };
    store(load(input, src), output, dst);
}
