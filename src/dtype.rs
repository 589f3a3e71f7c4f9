//! Element types: the DLPack `(code, bits, lanes)` triple, item sizes, names and the NumPy
//! `typestr` spelling.

use crate::error::{Error, Result};

/// DLPack type codes (`DLDataTypeCode`, spec 1.3).
pub mod code {
    pub const INT: u8 = 0;
    pub const UINT: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const OPAQUE_HANDLE: u8 = 3;
    pub const BFLOAT: u8 = 4;
    pub const COMPLEX: u8 = 5;
    pub const BOOL: u8 = 6;
    pub const FLOAT8_E3M4: u8 = 7;
    pub const FLOAT8_E4M3: u8 = 8;
    pub const FLOAT8_E4M3B11FNUZ: u8 = 9;
    pub const FLOAT8_E4M3FN: u8 = 10;
    pub const FLOAT8_E4M3FNUZ: u8 = 11;
    pub const FLOAT8_E5M2: u8 = 12;
    pub const FLOAT8_E5M2FNUZ: u8 = 13;
    pub const FLOAT8_E8M0FNU: u8 = 14;
    pub const FLOAT6_E2M3FN: u8 = 15;
    pub const FLOAT6_E3M2FN: u8 = 16;
    pub const FLOAT4_E2M1FN: u8 = 17;
    /// The highest code this version knows.
    pub const LAST: u8 = FLOAT4_E2M1FN;
}

/// An element type as DLPack describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

/// The element types dlshare can compute with (cast, byte-swap, view from Rust).
/// Every other valid DLPack type can still be shared and copied byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    BF16,
    F32,
    F64,
    C64,
    C128,
}

impl Kind {
    /// Every computable kind, in a stable order (used by tests and docs).
    pub const ALL: [Kind; 15] = [
        Kind::Bool,
        Kind::I8,
        Kind::I16,
        Kind::I32,
        Kind::I64,
        Kind::U8,
        Kind::U16,
        Kind::U32,
        Kind::U64,
        Kind::F16,
        Kind::BF16,
        Kind::F32,
        Kind::F64,
        Kind::C64,
        Kind::C128,
    ];

    pub const fn dtype(self) -> DType {
        let (code, bits) = match self {
            Kind::Bool => (code::BOOL, 8),
            Kind::I8 => (code::INT, 8),
            Kind::I16 => (code::INT, 16),
            Kind::I32 => (code::INT, 32),
            Kind::I64 => (code::INT, 64),
            Kind::U8 => (code::UINT, 8),
            Kind::U16 => (code::UINT, 16),
            Kind::U32 => (code::UINT, 32),
            Kind::U64 => (code::UINT, 64),
            Kind::F16 => (code::FLOAT, 16),
            Kind::BF16 => (code::BFLOAT, 16),
            Kind::F32 => (code::FLOAT, 32),
            Kind::F64 => (code::FLOAT, 64),
            Kind::C64 => (code::COMPLEX, 64),
            Kind::C128 => (code::COMPLEX, 128),
        };
        DType {
            code,
            bits,
            lanes: 1,
        }
    }

    pub fn is_complex(self) -> bool {
        matches!(self, Kind::C64 | Kind::C128)
    }
}

impl DType {
    pub const BOOL: DType = Kind::Bool.dtype();
    pub const I8: DType = Kind::I8.dtype();
    pub const I16: DType = Kind::I16.dtype();
    pub const I32: DType = Kind::I32.dtype();
    pub const I64: DType = Kind::I64.dtype();
    pub const U8: DType = Kind::U8.dtype();
    pub const U16: DType = Kind::U16.dtype();
    pub const U32: DType = Kind::U32.dtype();
    pub const U64: DType = Kind::U64.dtype();
    pub const F16: DType = Kind::F16.dtype();
    pub const BF16: DType = Kind::BF16.dtype();
    pub const F32: DType = Kind::F32.dtype();
    pub const F64: DType = Kind::F64.dtype();
    pub const C64: DType = Kind::C64.dtype();
    pub const C128: DType = Kind::C128.dtype();

    pub const fn new(code: u8, bits: u8, lanes: u16) -> DType {
        DType { code, bits, lanes }
    }

    /// Checks that the triple is a type DLPack 1.3 defines (code known, bits consistent with the
    /// code, lanes >= 1).
    pub fn validate(self) -> Result<DType> {
        let ok_bits = match self.code {
            code::INT | code::UINT => matches!(self.bits, 8 | 16 | 32 | 64),
            code::FLOAT => matches!(self.bits, 16 | 32 | 64),
            code::BFLOAT => self.bits == 16,
            code::COMPLEX => matches!(self.bits, 64 | 128),
            code::BOOL => self.bits == 8,
            code::OPAQUE_HANDLE => self.bits > 0,
            code::FLOAT8_E3M4..=code::FLOAT8_E8M0FNU => self.bits == 8,
            code::FLOAT6_E2M3FN | code::FLOAT6_E3M2FN => self.bits == 6,
            code::FLOAT4_E2M1FN => self.bits == 4,
            c => {
                return Err(Error::UnsupportedDtype(format!(
                    "unknown DLPack type code {c} (DLPack 1.3 defines codes 0..={}); the producer \
                     uses a newer or invalid type",
                    code::LAST
                )));
            }
        };
        if !ok_bits {
            return Err(Error::UnsupportedDtype(format!(
                "{} bits is not valid for DLPack type code {} ({}); use the bit width the spec \
                 defines for that code",
                self.bits,
                self.code,
                code_name(self.code)
            )));
        }
        if self.lanes == 0 {
            return Err(Error::UnsupportedDtype(
                "dtype lanes is 0; a scalar type has lanes = 1".into(),
            ));
        }
        Ok(self)
    }

    /// The computable kind, if this is one of the 15 types dlshare can cast.
    pub fn kind(self) -> Option<Kind> {
        // A match rather than a search of `Kind::ALL`: this is on every conversion's path (a
        // search cost ~90 instructions a call). The debug assertion ties it to `Kind::dtype`.
        if self.lanes != 1 {
            return None;
        }
        let kind = match (self.code, self.bits) {
            (code::BOOL, 8) => Kind::Bool,
            (code::INT, 8) => Kind::I8,
            (code::INT, 16) => Kind::I16,
            (code::INT, 32) => Kind::I32,
            (code::INT, 64) => Kind::I64,
            (code::UINT, 8) => Kind::U8,
            (code::UINT, 16) => Kind::U16,
            (code::UINT, 32) => Kind::U32,
            (code::UINT, 64) => Kind::U64,
            (code::FLOAT, 16) => Kind::F16,
            (code::BFLOAT, 16) => Kind::BF16,
            (code::FLOAT, 32) => Kind::F32,
            (code::FLOAT, 64) => Kind::F64,
            (code::COMPLEX, 64) => Kind::C64,
            (code::COMPLEX, 128) => Kind::C128,
            _ => return None,
        };
        debug_assert_eq!(kind.dtype(), self);
        Some(kind)
    }

    /// Total bits of one element (all lanes).
    pub fn total_bits(self) -> u64 {
        u64::from(self.bits) * u64::from(self.lanes)
    }

    /// Whether one element is smaller than a byte (float4/float6 and friends).
    pub fn is_subbyte(self) -> bool {
        self.total_bits() < 8
    }

    /// Bytes per element; sub-byte types report 1 (the padded size).
    pub fn item_size(self) -> usize {
        (self.total_bits().div_ceil(8)) as usize
    }

    /// The alignment an element needs to be read in place: the size of one real component
    /// (so complex128 needs 8, as in NumPy), at most 8, at least 1, always a power of two.
    pub fn alignment(self) -> usize {
        let component = if self.code == code::COMPLEX {
            self.bits / 2
        } else {
            self.bits
        };
        let bytes = (usize::from(component) / 8).max(1);
        // the largest power of two that divides the component size (a 56-bit opaque type is
        // byte-aligned, not 7-aligned), at most 8
        (1usize << bytes.trailing_zeros()).min(8)
    }

    /// Size of the unit that a byte swap reverses (a component for complex numbers).
    pub fn swap_unit(self) -> usize {
        if self.code == code::COMPLEX {
            self.item_size() / 2
        } else {
            self.item_size() / usize::from(self.lanes.max(1))
        }
    }

    /// A readable name: `float32`, `bfloat16`, `complex64`, `float8_e4m3fn`, `int32x4`.
    pub fn name(self) -> String {
        self.to_string()
    }

    /// Parses the names `name()` produces for the 15 computable types.
    pub fn from_name(name: &str) -> Result<DType> {
        Kind::ALL
            .into_iter()
            .map(Kind::dtype)
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                Error::UnsupportedDtype(format!(
                    "unknown dtype name '{name}'; use one of bool, int8..int64, uint8..uint64, \
                     float16, bfloat16, float32, float64, complex64, complex128"
                ))
            })
    }

    /// Parses a NumPy `__array_interface__` typestr such as `<f4`, `>i8`, `|b1`, `=c16`.
    /// Returns the dtype and whether the data is in non-native byte order.
    pub fn from_typestr(typestr: &str) -> Result<(DType, bool)> {
        let unsupported = || {
            Error::UnsupportedDtype(format!(
                "NumPy typestr '{typestr}' has no DLPack equivalent (object, string, datetime and \
                 long double arrays cannot be tensors); convert it to a numeric dtype first"
            ))
        };
        let mut chars = typestr.chars();
        let order = chars.next().ok_or_else(unsupported)?;
        let kind = chars.next().ok_or_else(unsupported)?;
        let size: u32 = chars.as_str().parse().map_err(|_| unsupported())?;
        let native_little = cfg!(target_endian = "little");
        let swapped = match order {
            '<' => !native_little,
            '>' => native_little,
            '=' | '|' => false,
            _ => return Err(unsupported()),
        };
        let dtype = match (kind, size) {
            ('b', 1) => DType::BOOL,
            ('i', 1 | 2 | 4 | 8) => DType::new(code::INT, (size * 8) as u8, 1),
            ('u', 1 | 2 | 4 | 8) => DType::new(code::UINT, (size * 8) as u8, 1),
            ('f', 2 | 4 | 8) => DType::new(code::FLOAT, (size * 8) as u8, 1),
            ('c', 8 | 16) => DType::new(code::COMPLEX, (size * 8) as u8, 1),
            _ => return Err(unsupported()),
        };
        Ok((dtype, swapped && dtype.item_size() > 1))
    }

    /// The NumPy typestr in native byte order (`<f4` on little-endian machines).
    /// bfloat16 has no NumPy spelling and is given as raw 2-byte void (`|V2`).
    pub fn typestr(self) -> Option<String> {
        let order = if self.item_size() == 1 {
            '|'
        } else if cfg!(target_endian = "little") {
            '<'
        } else {
            '>'
        };
        let kind = match self.kind()? {
            Kind::Bool => 'b',
            Kind::I8 | Kind::I16 | Kind::I32 | Kind::I64 => 'i',
            Kind::U8 | Kind::U16 | Kind::U32 | Kind::U64 => 'u',
            Kind::F16 | Kind::F32 | Kind::F64 => 'f',
            Kind::C64 | Kind::C128 => 'c',
            Kind::BF16 => return Some("|V2".into()),
        };
        Some(format!("{order}{kind}{}", self.item_size()))
    }
}

fn code_name(c: u8) -> &'static str {
    match c {
        code::INT => "int",
        code::UINT => "uint",
        code::FLOAT => "float",
        code::OPAQUE_HANDLE => "opaque handle",
        code::BFLOAT => "bfloat",
        code::COMPLEX => "complex",
        code::BOOL => "bool",
        code::FLOAT8_E3M4 => "float8_e3m4",
        code::FLOAT8_E4M3 => "float8_e4m3",
        code::FLOAT8_E4M3B11FNUZ => "float8_e4m3b11fnuz",
        code::FLOAT8_E4M3FN => "float8_e4m3fn",
        code::FLOAT8_E4M3FNUZ => "float8_e4m3fnuz",
        code::FLOAT8_E5M2 => "float8_e5m2",
        code::FLOAT8_E5M2FNUZ => "float8_e5m2fnuz",
        code::FLOAT8_E8M0FNU => "float8_e8m0fnu",
        code::FLOAT6_E2M3FN => "float6_e2m3fn",
        code::FLOAT6_E3M2FN => "float6_e3m2fn",
        code::FLOAT4_E2M1FN => "float4_e2m1fn",
        _ => "unknown",
    }
}

/// Written piece by piece (no intermediate String): dtypes are formatted into every decision.
impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bits = self.bits;
        match self.code {
            code::BOOL => f.write_str("bool")?,
            code::INT => write!(f, "int{bits}")?,
            code::UINT => write!(f, "uint{bits}")?,
            code::FLOAT => write!(f, "float{bits}")?,
            code::BFLOAT => write!(f, "bfloat{bits}")?,
            code::COMPLEX => write!(f, "complex{bits}")?,
            code::OPAQUE_HANDLE => write!(f, "opaque{bits}")?,
            c => f.write_str(code_name(c))?,
        }
        if self.lanes != 1 {
            write!(f, "x{}", self.lanes)?;
        }
        Ok(())
    }
}

/// Rust element types that map to one DLPack dtype (for `ndarray` views).
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $k:expr),* $(,)?) => { $(impl Element for $t { const DTYPE: DType = $k.dtype(); })* };
}
element!(
    bool => Kind::Bool, i8 => Kind::I8, i16 => Kind::I16, i32 => Kind::I32, i64 => Kind::I64,
    u8 => Kind::U8, u16 => Kind::U16, u32 => Kind::U32, u64 => Kind::U64,
    half::f16 => Kind::F16, half::bf16 => Kind::BF16, f32 => Kind::F32, f64 => Kind::F64,
    [f32; 2] => Kind::C64, [f64; 2] => Kind::C128,
);
