//! Arrow types read from `ArrowSchema` format strings: the subset dlshare converts, and the
//! rest named well enough for an error message.

use std::ffi::CStr;

use super::abi::{ARROW_FLAG_DICTIONARY_ORDERED, ArrowSchema};
use crate::dtype::{DType, code};
use crate::error::{Error, Result};

/// Time units of timestamps and durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Second,
    Milli,
    Micro,
    Nano,
}

impl TimeUnit {
    /// Ticks per second.
    pub fn per_second(self) -> i64 {
        match self {
            TimeUnit::Second => 1,
            TimeUnit::Milli => 1_000,
            TimeUnit::Micro => 1_000_000,
            TimeUnit::Nano => 1_000_000_000,
        }
    }

    fn parse(c: u8) -> Option<TimeUnit> {
        Some(match c {
            b's' => TimeUnit::Second,
            b'm' => TimeUnit::Milli,
            b'u' => TimeUnit::Micro,
            b'n' => TimeUnit::Nano,
            _ => return None,
        })
    }
}

/// The Arrow types dlshare knows.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrowType {
    /// Bit-packed booleans ("b").
    Bool,
    /// Fixed-width integers and floats ("c", "C", "s", "S", "i", "I", "l", "L", "e", "f", "g").
    Number(DType),
    /// int32 days since the epoch ("tdD").
    Date32,
    /// int64 milliseconds since the epoch ("tdm").
    Date64,
    /// int64 ticks since the epoch, UTC whatever the time zone ("ts?:tz").
    Timestamp(TimeUnit, Option<String>),
    /// int64 ticks ("tD?").
    Duration(TimeUnit),
    /// 128-bit decimals ("d:precision,scale"), read as float64 `value / 10^scale` (DuckDB
    /// gives them for literals such as 1.5).
    Decimal128 {
        scale: i32,
    },
    /// Strings (only read as dictionary labels): "u", "U", "vu".
    Utf8,
    LargeUtf8,
    Utf8View,
    /// A struct (a record batch at the top level).
    Struct(Vec<Field>),
    /// Dictionary-encoded: integer indices into `values`.
    Dictionary {
        index: DType,
        values: Box<ArrowType>,
        ordered: bool,
    },
    /// Any other format, kept for messages.
    Other(String),
}

impl ArrowType {
    /// Whether the type has a fixed-width numeric data buffer (buffers: validity, values).
    pub fn is_number(&self) -> bool {
        matches!(self, ArrowType::Number(_))
    }

    pub fn is_temporal(&self) -> bool {
        matches!(
            self,
            ArrowType::Date32
                | ArrowType::Date64
                | ArrowType::Timestamp(..)
                | ArrowType::Duration(_)
        )
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            ArrowType::Bool => "bool".into(),
            ArrowType::Number(d) => d.name().to_string(),
            ArrowType::Date32 => "date32".into(),
            ArrowType::Date64 => "date64".into(),
            ArrowType::Timestamp(u, tz) => format!(
                "timestamp[{}{}]",
                unit_name(*u),
                tz.as_deref().map(|t| format!(", {t}")).unwrap_or_default()
            ),
            ArrowType::Duration(u) => format!("duration[{}]", unit_name(*u)),
            ArrowType::Decimal128 { scale } => format!("decimal128(scale {scale})"),
            ArrowType::Utf8 => "string".into(),
            ArrowType::LargeUtf8 => "large_string".into(),
            ArrowType::Utf8View => "string_view".into(),
            ArrowType::Struct(_) => "struct".into(),
            ArrowType::Dictionary { index, values, .. } => {
                format!("dictionary<{}, {}>", index.name(), values.describe())
            }
            ArrowType::Other(f) => format!("Arrow format '{f}'"),
        }
    }
}

fn unit_name(u: TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "s",
        TimeUnit::Milli => "ms",
        TimeUnit::Micro => "us",
        TimeUnit::Nano => "ns",
    }
}

/// A named field of a struct (a table column).
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: ArrowType,
}

/// Most nesting accepted (a dictionary inside a struct is depth 2); deeper schemas are
/// refused rather than walked, so a cyclic or absurd schema cannot exhaust the stack.
const MAX_DEPTH: usize = 8;

fn number(format: &str) -> Option<DType> {
    Some(match format {
        "c" => DType::I8,
        "C" => DType::U8,
        "s" => DType::I16,
        "S" => DType::U16,
        "i" => DType::I32,
        "I" => DType::U32,
        "l" => DType::I64,
        "L" => DType::U64,
        "e" => DType::F16,
        "f" => DType::F32,
        "g" => DType::F64,
        _ => return None,
    })
}

/// Parses a format string.
fn parse_format(format: &str) -> ArrowType {
    if let Some(d) = number(format) {
        return ArrowType::Number(d);
    }
    let b = format.as_bytes();
    match format {
        "b" => ArrowType::Bool,
        "tdD" => ArrowType::Date32,
        "tdm" => ArrowType::Date64,
        "u" => ArrowType::Utf8,
        "U" => ArrowType::LargeUtf8,
        "vu" => ArrowType::Utf8View,
        _ if b.len() >= 4 && &b[..2] == b"ts" && b[3] == b':' => match TimeUnit::parse(b[2]) {
            Some(u) => {
                let tz = &format[4..];
                ArrowType::Timestamp(u, (!tz.is_empty()).then(|| tz.to_string()))
            }
            None => ArrowType::Other(format.into()),
        },
        _ if format.starts_with("d:") => {
            let parts: Vec<&str> = format[2..].split(',').collect();
            match parts[..] {
                [_, scale] | [_, scale, "128"] => match scale.parse::<i32>() {
                    Ok(scale) => ArrowType::Decimal128 { scale },
                    Err(_) => ArrowType::Other(format.into()),
                },
                _ => ArrowType::Other(format.into()),
            }
        }
        _ if b.len() == 3 && &b[..2] == b"tD" => match TimeUnit::parse(b[2]) {
            Some(u) => ArrowType::Duration(u),
            None => ArrowType::Other(format.into()),
        },
        _ => ArrowType::Other(format.into()),
    }
}

/// Reads a C string field of a schema.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn text(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: caller contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Reads a schema (`at` names it in messages, e.g. "column 'x'").
///
/// # Safety
/// `s` points to a valid, unreleased `ArrowSchema` whose strings are NUL-terminated and whose
/// children and dictionary pointers are valid when non-NULL.
pub unsafe fn parse(s: &ArrowSchema, at: &str, depth: usize) -> Result<ArrowType> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidArgument(format!(
            "{at}: the schema nests more than {MAX_DEPTH} levels deep; dlshare reads tables of \
             flat columns"
        )));
    }
    if s.release.is_none() {
        return Err(Error::InvalidArgument(format!(
            "{at}: schema.release is NULL (a released schema); pass a live ArrowSchema"
        )));
    }
    // SAFETY: caller contract: format is NUL-terminated when non-NULL.
    let Some(format) = (unsafe { text(s.format) }) else {
        return Err(Error::InvalidArgument(format!(
            "{at}: schema.format is NULL; every ArrowSchema needs a format string"
        )));
    };
    if s.n_children < 0 {
        return Err(Error::InvalidArgument(format!(
            "{at}: schema.n_children is {}; it must be >= 0",
            s.n_children
        )));
    }
    if s.n_children > 0 && s.children.is_null() {
        return Err(Error::InvalidArgument(format!(
            "{at}: schema.children is NULL but schema.n_children is {}",
            s.n_children
        )));
    }
    let ty = parse_format(&format);
    if !s.dictionary.is_null() {
        let ArrowType::Number(index) = ty else {
            return Err(Error::InvalidArgument(format!(
                "{at}: a dictionary-encoded field has index format '{format}'; indices must be \
                 integers"
            )));
        };
        if !matches!(index.code, code::INT | code::UINT) {
            return Err(Error::InvalidArgument(format!(
                "{at}: a dictionary-encoded field has index format '{format}'; indices must be \
                 integers"
            )));
        }
        // SAFETY: caller contract for the dictionary pointer.
        let values = unsafe { parse(&*s.dictionary, &format!("{at} dictionary"), depth + 1)? };
        return Ok(ArrowType::Dictionary {
            index,
            values: Box::new(values),
            ordered: s.flags & ARROW_FLAG_DICTIONARY_ORDERED != 0,
        });
    }
    if format == "+s" {
        let n = usize::try_from(s.n_children).unwrap_or(0);
        let mut fields = Vec::with_capacity(n.min(1 << 16));
        for i in 0..n {
            // SAFETY: caller contract: `children` holds n_children pointers.
            let child = unsafe { *s.children.add(i) };
            if child.is_null() {
                return Err(Error::InvalidArgument(format!(
                    "{at}: schema.children[{i}] is NULL"
                )));
            }
            // SAFETY: checked non-NULL; caller contract for the child.
            let c = unsafe { &*child };
            // SAFETY: as above.
            let name = unsafe { text(c.name) }.unwrap_or_else(|| i.to_string());
            // SAFETY: as above.
            let ty = unsafe { parse(c, &format!("column '{name}'"), depth + 1)? };
            fields.push(Field { name, ty });
        }
        return Ok(ArrowType::Struct(fields));
    }
    Ok(ty)
}

/// The name of a schema, if any.
///
/// # Safety
/// As for [`parse`].
pub unsafe fn name(s: &ArrowSchema) -> Option<String> {
    // SAFETY: caller contract.
    unsafe { text(s.name) }
}
