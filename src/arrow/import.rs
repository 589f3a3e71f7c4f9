//! Arrow data to tensors: a table (struct schema: a record batch, or a stream of them) becomes a
//! rows x columns tensor through the column kernel (`crate::columns`); a plain array (or a
//! stream of array chunks) becomes a 1-D tensor, shared when its values buffer can be used as
//! it is.
//!
//! Every struct is checked before a byte of its data is read: non-negative lengths, offsets and
//! counts, `offset + length` without overflow, the buffer and child counts the type needs,
//! non-NULL buffers where data is required, non-NULL release callbacks. The C Data Interface
//! carries no buffer sizes, so (as for every consumer) a buffer shorter than its length says
//! cannot be detected. Errors name the column and the field.
//!
//! Missing values: a null (validity bit 0) is missing, and so is a NaN that is not null (as NaN
//! is for pandas). Validity bitmaps are expanded into the kernel's one-byte-per-row masks only
//! for chunks whose `null_count` is not 0, eight rows per table lookup; bit-packed booleans are
//! expanded the same way.

use std::sync::Arc;

use super::abi::{ArrowArray, ArrowArrayStream, ArrowSchema, OwnedArray, OwnedSchema, OwnedStream};
use super::schema::{self, ArrowType, Field};
use crate::columns::{self, Column, ColumnKind, ColumnsOptions, NanPolicy};
use crate::convert::{Decision, Reason};
use crate::device::Device;
use crate::dtype::{DType, code};
use crate::error::{Error, Result};
use crate::storage::{Release, Storage};
use crate::tensor::Tensor;

/// What category (dictionary-encoded) columns become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Categorical {
    /// An error naming the column (columns = None: the column is skipped).
    Raise,
    /// The dictionary indices as numbers (pandas `cat.codes`); a null index is missing.
    Codes,
    /// One 0/1 column per dictionary entry, in dictionary order (`pd.get_dummies`).
    OneHot,
}

/// What date, timestamp and duration columns become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datetime {
    /// An error naming the column (columns = None: the column is skipped).
    Raise,
    /// Whole days since 1970-01-01 UTC, floored (pandas `.days`).
    Days,
    /// Seconds since 1970-01-01 UTC (pandas `.total_seconds()`).
    Seconds,
}

/// Options of an Arrow import: the column kernel's options plus the column choices.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrowOptions {
    pub columns: ColumnsOptions,
    pub categorical: Categorical,
    pub datetime: Datetime,
    /// Table columns to take, in this order; None: every column the options can convert
    /// (numbers and bools, plus dictionary and temporal columns when their option is not
    /// Raise); the others are listed in [`Imported::skipped`].
    pub select: Option<Vec<String>>,
    /// Keep the data's own dtype (`columns.dtype` is then ignored): a plain array's element
    /// type, a table's when all its selected columns share one.
    pub keep_dtype: bool,
}

impl Default for ArrowOptions {
    fn default() -> Self {
        ArrowOptions {
            columns: ColumnsOptions::default(),
            categorical: Categorical::Raise,
            datetime: Datetime::Raise,
            select: None,
            keep_dtype: false,
        }
    }
}

/// The result of an import.
pub struct Imported {
    pub tensor: Tensor,
    /// Shared or copied, and why.
    pub decision: Decision,
    /// The output columns' names (a one-hot column gives `<name>_<label>` per label).
    pub names: Vec<String>,
    /// Table columns left out (columns = None only).
    pub skipped: Vec<String>,
}

/// A schema and the arrays of that type, owned (each released once when dropped).
pub struct Batches {
    schema: OwnedSchema,
    ty: ArrowType,
    arrays: Vec<OwnedArray>,
}

/// Takes over a schema and an array (a record batch or one array). Both are consumed whatever
/// happens: on an error the ones taken are released before returning.
///
/// # Safety
/// Each pointer is NULL or points to a valid C Data Interface struct the caller may move.
pub unsafe fn take_array(schema: *mut ArrowSchema, array: *mut ArrowArray) -> Result<Batches> {
    // SAFETY: caller contract.
    let s = unsafe { take_schema(schema) };
    // SAFETY: caller contract.
    let a = unsafe { take_one(array, "array") };
    let (schema, array) = (s?, a?);
    // SAFETY: an owned, unreleased schema from a producer that promises valid strings and
    // pointers (the C Data Interface contract).
    let ty = unsafe { schema::parse(schema.raw(), "schema", 0)? };
    Ok(Batches {
        schema,
        ty,
        arrays: vec![array],
    })
}

/// Takes over a stream and reads it to its end: the schema and every array. The stream is
/// released before this returns (the arrays it produced live on in the result).
///
/// # Safety
/// `stream` is NULL or points to a valid `ArrowArrayStream` the caller may move.
pub unsafe fn take_stream(stream: *mut ArrowArrayStream) -> Result<Batches> {
    if stream.is_null() {
        return Err(Error::NullArgument(
            "stream is NULL; pass an ArrowArrayStream".into(),
        ));
    }
    // SAFETY: caller contract.
    let Some(stream) = (unsafe { OwnedStream::take(stream) }) else {
        return Err(Error::InvalidArgument(
            "stream.release is NULL (a released stream); pass a live ArrowArrayStream".into(),
        ));
    };
    let raw = stream.raw();
    let (Some(get_schema), Some(get_next)) = (raw.get_schema, raw.get_next) else {
        return Err(Error::InvalidArgument(
            "stream.get_schema or stream.get_next is NULL; a stream needs both callbacks".into(),
        ));
    };
    let failed = |rc: i32, what: &str| -> Error {
        let detail = raw
            .get_last_error
            // SAFETY: the producer's callback on its own live stream; the string it returns is
            // valid until the next call on the stream and is copied at once.
            .map(|f| unsafe { f(stream.as_ptr()) })
            .filter(|p| !p.is_null())
            // SAFETY: non-NULL, NUL-terminated per the stream contract.
            .map(|p| {
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|| "no message".into());
        Error::InvalidArgument(format!(
            "stream.{what} failed with error {rc} ({}): {detail}",
            std::io::Error::from_raw_os_error(rc)
        ))
    };
    let mut s = ArrowSchema::released();
    // SAFETY: the stream is live and `s` is a writable schema struct.
    let rc = unsafe { get_schema(stream.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(failed(rc, "get_schema"));
    }
    // SAFETY: `s` is a local struct the producer filled; taking it moves it.
    let schema = unsafe { OwnedSchema::take(&mut s) }.ok_or_else(|| {
        Error::InvalidArgument("stream.get_schema returned a released schema".into())
    })?;
    // SAFETY: an owned, unreleased schema (producer contract for its contents).
    let ty = unsafe { schema::parse(schema.raw(), "stream schema", 0)? };
    let mut arrays = Vec::new();
    loop {
        let mut a = ArrowArray::released();
        // SAFETY: live stream, writable struct.
        let rc = unsafe { get_next(stream.as_ptr(), &mut a) };
        if rc != 0 {
            return Err(failed(rc, "get_next"));
        }
        // SAFETY: a local struct the producer filled; released means the end of the stream.
        match unsafe { OwnedArray::take(&mut a) } {
            Some(array) => arrays.push(array),
            None => break,
        }
    }
    Ok(Batches { schema, ty, arrays })
}

/// # Safety
/// `p` is NULL or a valid schema the caller may move.
unsafe fn take_schema(p: *mut ArrowSchema) -> Result<OwnedSchema> {
    if p.is_null() {
        return Err(Error::NullArgument(
            "schema is NULL; pass the ArrowSchema describing the array".into(),
        ));
    }
    // SAFETY: caller contract.
    unsafe { OwnedSchema::take(p) }.ok_or_else(|| {
        Error::InvalidArgument(
            "schema.release is NULL (a released schema); pass a live ArrowSchema".into(),
        )
    })
}

/// # Safety
/// `p` is NULL or a valid array the caller may move.
unsafe fn take_one(p: *mut ArrowArray, what: &str) -> Result<OwnedArray> {
    if p.is_null() {
        return Err(Error::NullArgument(format!(
            "{what} is NULL; pass an ArrowArray"
        )));
    }
    // SAFETY: caller contract.
    unsafe { OwnedArray::take(p) }.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{what}.release is NULL (a released array); pass a live ArrowArray"
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Buffers an array of `ty` has (None: not read by dlshare, not checked).
fn buffer_count(ty: &ArrowType) -> Option<(i64, bool)> {
    // (count, exact): a string view array has 2 + variadic data buffers + 1 sizes buffer
    match ty {
        ArrowType::Bool
        | ArrowType::Number(_)
        | ArrowType::Date32
        | ArrowType::Date64
        | ArrowType::Timestamp(..)
        | ArrowType::Duration(_)
        | ArrowType::Decimal128 { .. }
        | ArrowType::Dictionary { .. } => Some((2, true)),
        ArrowType::Utf8 | ArrowType::LargeUtf8 => Some((3, true)),
        ArrowType::Utf8View => Some((3, false)),
        ArrowType::Struct(_) => Some((1, true)),
        ArrowType::Other(_) => None,
    }
}

/// Bits per value in buffer 1 (fixed-width types).
fn value_bits(ty: &ArrowType) -> Option<u64> {
    Some(match ty {
        ArrowType::Bool => 1,
        ArrowType::Number(d) => u64::from(d.bits),
        ArrowType::Date32 => 32,
        ArrowType::Date64 | ArrowType::Timestamp(..) | ArrowType::Duration(_) => 64,
        ArrowType::Dictionary { index, .. } => u64::from(index.bits),
        ArrowType::Utf8View | ArrowType::Decimal128 { .. } => 128,
        _ => return None,
    })
}

/// Checks one array (and what dlshare will read of its children and dictionary) against its
/// type. `extra` is the offset a parent struct adds; `at` names the column for messages.
///
/// # Safety
/// `a` is a valid `ArrowArray` per the C Data Interface (pointers valid when non-NULL).
unsafe fn check(a: &ArrowArray, ty: &ArrowType, extra: i64, at: &str, depth: usize) -> Result<()> {
    let bad = |field: &str, what: String| Error::InvalidArgument(format!("{at}: {field} {what}"));
    if depth > 8 {
        return Err(bad("array", "nests too deeply".into()));
    }
    if a.release.is_none() {
        return Err(bad(
            "array.release",
            "is NULL (a released array); pass live arrays".into(),
        ));
    }
    if a.length < 0 {
        return Err(bad(
            "array.length",
            format!("is {}; it must be >= 0", a.length),
        ));
    }
    if a.offset < 0 {
        return Err(bad(
            "array.offset",
            format!("is {}; it must be >= 0", a.offset),
        ));
    }
    if a.null_count < -1 {
        return Err(bad(
            "array.null_count",
            format!("is {}; it must be >= 0, or -1 (unknown)", a.null_count),
        ));
    }
    if a.null_count > a.length {
        return Err(bad(
            "array.null_count",
            format!("is {} but array.length is {}", a.null_count, a.length),
        ));
    }
    if a.n_buffers < 0 || a.n_children < 0 {
        return Err(bad(
            "array.n_buffers/n_children",
            format!("are {}/{}; they must be >= 0", a.n_buffers, a.n_children),
        ));
    }
    let end = a
        .offset
        .checked_add(extra)
        .and_then(|o| o.checked_add(a.length))
        .ok_or_else(|| {
            Error::Overflow(format!(
                "{at}: array.offset {} + length {} overflows 64 bits",
                a.offset, a.length
            ))
        })?;
    if let Some(bits) = value_bits(ty)
        && (end as u128 * u128::from(bits)).div_ceil(8) > isize::MAX as u128
    {
        return Err(Error::Overflow(format!(
            "{at}: array.offset + length = {end} values do not fit in the address space"
        )));
    }
    if let Some((want, exact)) = buffer_count(ty) {
        let ok = if exact {
            a.n_buffers == want
        } else {
            a.n_buffers >= want
        };
        if !ok {
            return Err(bad(
                "array.n_buffers",
                format!(
                    "is {} but a {} array has {}{want}",
                    a.n_buffers,
                    ty.describe(),
                    if exact { "" } else { "at least " }
                ),
            ));
        }
        if a.buffers.is_null() {
            return Err(bad(
                "array.buffers",
                format!("is NULL but array.n_buffers is {}", a.n_buffers),
            ));
        }
        // SAFETY: `buffers` holds n_buffers (>= want >= 1) pointers (C Data Interface).
        let validity = unsafe { *a.buffers };
        if validity.is_null() && a.null_count > 0 {
            return Err(bad(
                "array.buffers[0] (validity)",
                format!("is NULL but array.null_count is {}", a.null_count),
            ));
        }
        if want >= 2 && end > 0 {
            // SAFETY: as above; index 1 < n_buffers.
            let values = unsafe { *a.buffers.add(1) };
            if values.is_null() {
                return Err(bad(
                    "array.buffers[1] (values)",
                    format!("is NULL but the array holds {} values", a.length),
                ));
            }
        }
    }
    if a.n_children > 0 && a.children.is_null() {
        return Err(bad(
            "array.children",
            format!("is NULL but array.n_children is {}", a.n_children),
        ));
    }
    match ty {
        ArrowType::Struct(fields) => {
            if a.n_children != fields.len() as i64 {
                return Err(bad(
                    "array.n_children",
                    format!(
                        "is {} but the schema has {} fields",
                        a.n_children,
                        fields.len()
                    ),
                ));
            }
            for (i, f) in fields.iter().enumerate() {
                // SAFETY: `children` holds n_children pointers.
                let child = unsafe { *a.children.add(i) };
                if child.is_null() {
                    return Err(bad(&format!("array.children[{i}]"), "is NULL".into()));
                }
                // SAFETY: non-NULL child of a valid array.
                let c = unsafe { &*child };
                let cat = format!("column '{}'", f.name);
                if c.length < a.offset + extra + a.length {
                    return Err(Error::InvalidArgument(format!(
                        "{cat}: array.length is {} but the record batch reads {} rows from \
                         offset {}",
                        c.length,
                        a.length,
                        a.offset + extra
                    )));
                }
                if f.ty.is_number()
                    || f.ty.is_temporal()
                    || matches!(
                        f.ty,
                        ArrowType::Bool
                            | ArrowType::Decimal128 { .. }
                            | ArrowType::Dictionary { .. }
                    )
                {
                    // SAFETY: valid child; the struct's offset applies to its children.
                    unsafe { check(c, &f.ty, a.offset + extra, &cat, depth + 1)? };
                }
            }
        }
        ArrowType::Dictionary { values, .. } => {
            if a.dictionary.is_null() {
                return Err(bad(
                    "array.dictionary",
                    "is NULL but the schema is dictionary-encoded".into(),
                ));
            }
            // SAFETY: non-NULL dictionary of a valid array.
            let d = unsafe { &*a.dictionary };
            // SAFETY: as above.
            unsafe { check(d, values, 0, &format!("{at} dictionary"), depth + 1)? };
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading values

/// `TABLE[b]`: the eight bits of `b` as eight bytes 0/1, least significant bit first.
const fn spread_table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        let mut v = 0u64;
        while k < 8 {
            v |= (((b >> k) & 1) as u64) << (8 * k);
            k += 1;
        }
        t[b] = v;
        b += 1;
    }
    t
}
static SPREAD: [u64; 256] = spread_table();

/// Writes bits `offset .. offset + out.len()` of `bits` as bytes 0/1 into `out`, inverted
/// (1 for a 0 bit: a validity bit becomes a missing flag) when `invert`.
///
/// # Safety
/// `bits` holds at least `(offset + out.len()).div_ceil(8)` readable bytes.
unsafe fn spread_bits(bits: *const u8, offset: usize, out: &mut [u8], invert: bool) {
    let flip = if invert { 0xff } else { 0 };
    let n = out.len();
    let mut i = 0;
    // SAFETY: every byte read is below (offset + n).div_ceil(8) (caller contract).
    let byte = |k: usize| unsafe { *bits.add(k) } ^ flip;
    while i < n && !(offset + i).is_multiple_of(8) {
        let k = offset + i;
        out[i] = (byte(k / 8) >> (k % 8)) & 1;
        i += 1;
    }
    while i + 8 <= n {
        let v = SPREAD[byte((offset + i) / 8) as usize];
        out[i..i + 8].copy_from_slice(&v.to_le_bytes());
        i += 8;
    }
    while i < n {
        let k = offset + i;
        out[i] = (byte(k / 8) >> (k % 8)) & 1;
        i += 1;
    }
}

/// Counts the 0 bits (nulls) of a validity bitmap in `offset .. offset + len`.
///
/// # Safety
/// As for [`spread_bits`].
unsafe fn count_nulls(bits: *const u8, offset: usize, len: usize) -> usize {
    let mut set = 0usize;
    let mut i = 0;
    // SAFETY: caller contract (bytes below (offset + len).div_ceil(8)).
    let byte = |k: usize| unsafe { *bits.add(k) };
    while i < len && !(offset + i).is_multiple_of(8) {
        let k = offset + i;
        set += usize::from((byte(k / 8) >> (k % 8)) & 1);
        i += 1;
    }
    while i + 8 <= len {
        set += byte((offset + i) / 8).count_ones() as usize;
        i += 8;
    }
    while i < len {
        let k = offset + i;
        set += usize::from((byte(k / 8) >> (k % 8)) & 1);
        i += 1;
    }
    len - set
}

/// One piece of a column: an array (checked), the element offset to read from, the rows.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    array: &'a ArrowArray,
    offset: usize,
    len: usize,
}

impl Chunk<'_> {
    fn buffer(&self, i: usize) -> *const u8 {
        // SAFETY: checked: `buffers` holds at least `i + 1` pointers for the types read here.
        unsafe { *self.array.buffers.add(i) }.cast()
    }

    /// Nulls in this chunk (0 without a validity bitmap).
    fn nulls(&self) -> usize {
        let v = self.buffer(0);
        if v.is_null() || self.array.null_count == 0 {
            return 0;
        }
        if self.array.null_count > 0 && self.offset == self.array.offset as usize {
            return self.array.null_count as usize;
        }
        // SAFETY: a validity bitmap covers offset + length bits of the checked array.
        unsafe { count_nulls(v, self.offset, self.len) }
    }

    /// The values of a fixed-width buffer 1 as bytes (`item` bytes each).
    fn values(&self, item: usize) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: checked non-NULL for a non-empty array; the producer guarantees
        // (offset + length) values (the checks bounded that byte count by isize::MAX).
        unsafe {
            std::slice::from_raw_parts(self.buffer(1).add(self.offset * item), self.len * item)
        }
    }
}

/// The column's memory for the kernel: borrowed from the arrays, or built here.
enum Data {
    Borrowed(*const u8),
    Owned(Vec<u8>),
}

/// One prepared column: what `Column::from_raw` needs, kept alive until the kernel returns.
struct Prepared {
    data: Data,
    dtype: DType,
    len: usize,
    mask: Option<Vec<u8>>,
    kind: ColumnKind,
    names: Vec<String>,
    /// Why this column cannot be viewed as it is (for a 1-D import's decision).
    copy_because: Vec<String>,
}

impl Prepared {
    fn column(&self) -> Column<'_> {
        let ptr = match &self.data {
            Data::Borrowed(p) => *p,
            Data::Owned(v) => v.as_ptr(),
        };
        // SAFETY: `ptr` addresses `len` contiguous elements of `dtype` (a checked Arrow buffer
        // or a vector built here), alive and unchanged while `self` (and the arrays) live.
        let c = unsafe {
            Column::from_raw(
                ptr,
                self.dtype,
                self.len,
                self.dtype.item_size() as isize,
                false,
                self.kind,
            )
        };
        match &self.mask {
            Some(m) => c.with_missing(m),
            None => c,
        }
    }
}

/// A zeroed byte vector, or OutOfMemory (a length the producer claims may be absurd).
fn zeroed(len: usize, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(format!("cannot allocate {len} bytes for {what}")))?;
    v.resize(len, 0);
    Ok(v)
}

/// An empty vector with room for `len` bytes, or OutOfMemory.
fn with_room(len: usize, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(format!("cannot allocate {len} bytes for {what}")))?;
    Ok(v)
}

/// Concatenates the chunks' values (`item` bytes each), or borrows a single chunk's.
fn gather(chunks: &[Chunk<'_>], item: usize, copy_because: &mut Vec<String>) -> Result<Data> {
    if let [one] = chunks {
        return Ok(Data::Borrowed(one.values(item).as_ptr()));
    }
    copy_because.push(format!("{} chunks", chunks.len()));
    let total: usize = chunks.iter().map(|c| c.len).sum();
    let mut v = with_room(total.saturating_mul(item), "the joined chunks")?;
    for c in chunks {
        v.extend_from_slice(c.values(item));
    }
    Ok(Data::Owned(v))
}

/// Maps every element of the chunks (read as `T`) through `f` into a new vector of `U`.
fn map_values<T: Copy, U: Copy>(chunks: &[Chunk<'_>], f: impl Fn(T) -> U) -> Result<Vec<u8>> {
    let total: usize = chunks.iter().map(|c| c.len).sum();
    let mut out = with_room(total.saturating_mul(size_of::<U>()), "converted values")?;
    for c in chunks {
        let bytes = c.values(std::mem::size_of::<T>());
        for v in bytes.chunks_exact(std::mem::size_of::<T>()) {
            // SAFETY: `v` holds exactly size_of::<T>() bytes; T is a plain number type (every bit pattern valid).
            let x = unsafe { v.as_ptr().cast::<T>().read_unaligned() };
            let y = f(x);
            // SAFETY: U is a plain number type without padding; its bytes are initialised.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts((&y as *const U).cast::<u8>(), size_of::<U>())
            });
        }
    }
    Ok(out)
}

/// The missing-value mask of the chunks (None when no chunk has a null).
fn mask_of(chunks: &[Chunk<'_>], copy_because: &mut Vec<String>) -> Result<Option<Vec<u8>>> {
    let nulls: usize = chunks.iter().map(Chunk::nulls).sum();
    if nulls == 0 {
        return Ok(None);
    }
    copy_because.push(format!("{nulls} nulls"));
    let total: usize = chunks.iter().map(|c| c.len).sum();
    let mut mask = zeroed(total, "the missing-value mask")?;
    let mut at = 0;
    for c in chunks {
        let v = c.buffer(0);
        if !v.is_null() && c.array.null_count != 0 {
            // SAFETY: the validity bitmap of a checked array covers offset + length bits.
            unsafe { spread_bits(v, c.offset, &mut mask[at..at + c.len], true) };
        }
        at += c.len;
    }
    Ok(Some(mask))
}

/// Category labels of a dictionary array (strings as they are, numbers formatted).
///
/// # Safety
/// `d` was checked against `ty`.
unsafe fn labels(d: &ArrowArray, ty: &ArrowType) -> Result<Vec<String>> {
    let n = d.length as usize;
    let off = d.offset as usize;
    let chunk = Chunk {
        array: d,
        offset: off,
        len: n,
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(match ty {
        ArrowType::Utf8 | ArrowType::LargeUtf8 => {
            let large = matches!(ty, ArrowType::LargeUtf8);
            let offsets = chunk.buffer(1);
            let data = chunk.buffer(2);
            let at = |i: usize| -> i64 {
                // SAFETY: a string array has offset + length + 1 offsets.
                unsafe {
                    if large {
                        offsets.cast::<i64>().add(i).read_unaligned()
                    } else {
                        i64::from(offsets.cast::<i32>().add(i).read_unaligned())
                    }
                }
            };
            (0..n)
                .map(|i| {
                    let (a, b) = (at(off + i), at(off + i + 1));
                    if a < 0 || b < a || data.is_null() && b > a {
                        return Err(Error::InvalidArgument(format!(
                            "dictionary value {i}: string offsets {a}..{b} are invalid"
                        )));
                    }
                    // SAFETY: offsets checked ordered; the data buffer holds them (producer).
                    Ok(text(unsafe {
                        std::slice::from_raw_parts(data.add(a as usize), (b - a) as usize)
                    }))
                })
                .collect::<Result<_>>()?
        }
        ArrowType::Utf8View => {
            let views = chunk.buffer(1);
            let nbuf = (d.n_buffers - 3) as usize;
            (0..n)
                .map(|i| {
                    // SAFETY: a view array has 16-byte views for offset + length values.
                    let view = unsafe { views.add((off + i) * 16) };
                    // SAFETY: as above.
                    let len = unsafe { view.cast::<i32>().read_unaligned() };
                    if len < 0 {
                        return Err(Error::InvalidArgument(format!(
                            "dictionary value {i}: string view length {len} is negative"
                        )));
                    }
                    if len <= 12 {
                        // SAFETY: inline strings sit in the view's last 12 bytes.
                        return Ok(text(unsafe {
                            std::slice::from_raw_parts(view.add(4), len as usize)
                        }));
                    }
                    // SAFETY: as above (buffer index and offset fields).
                    let (b, o) = unsafe {
                        (
                            view.add(8).cast::<i32>().read_unaligned(),
                            view.add(12).cast::<i32>().read_unaligned(),
                        )
                    };
                    if b < 0 || b as usize >= nbuf || o < 0 {
                        return Err(Error::InvalidArgument(format!(
                            "dictionary value {i}: string view points at buffer {b}, offset {o}"
                        )));
                    }
                    let data = chunk.buffer(2 + b as usize);
                    if data.is_null() {
                        return Err(Error::InvalidArgument(format!(
                            "dictionary value {i}: string data buffer {b} is NULL"
                        )));
                    }
                    // SAFETY: buffer index checked; the producer guarantees the bytes.
                    Ok(text(unsafe {
                        std::slice::from_raw_parts(data.add(o as usize), len as usize)
                    }))
                })
                .collect::<Result<_>>()?
        }
        ArrowType::Number(dt) => {
            let item = dt.item_size();
            let bytes = chunk.values(item);
            bytes
                .chunks_exact(item)
                .map(|b| {
                    let mut v = [0u8; 8];
                    v[..item].copy_from_slice(b);
                    match (dt.code, item) {
                        (code::FLOAT, 8) => f64::from_ne_bytes(v).to_string(),
                        (code::FLOAT, 4) => {
                            f32::from_ne_bytes([v[0], v[1], v[2], v[3]]).to_string()
                        }
                        (code::INT, _) => {
                            let shift = 64 - 8 * item as u32;
                            ((i64::from_ne_bytes(v) << shift) >> shift).to_string()
                        }
                        _ => u64::from_ne_bytes(v).to_string(),
                    }
                })
                .collect()
        }
        _ => (0..n).map(|i| i.to_string()).collect(),
    })
}

fn int_reader(d: DType) -> fn(&[u8]) -> i64 {
    match (d.code == code::INT, d.bits) {
        (true, 8) => |b| i64::from(b[0] as i8),
        (true, 16) => |b| i64::from(i16::from_ne_bytes([b[0], b[1]])),
        (true, 32) => |b| i64::from(i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        (false, 8) => |b| i64::from(b[0]),
        (false, 16) => |b| i64::from(u16::from_ne_bytes([b[0], b[1]])),
        (false, 32) => |b| i64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        (true, _) => |b| i64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])),
        (false, _) => |b| {
            i64::try_from(u64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])))
                .unwrap_or(i64::MAX)
        },
    }
}

/// Why a column cannot be converted under these options (None: it can).
fn unconvertible(ty: &ArrowType, opts: &ArrowOptions) -> Option<String> {
    match ty {
        ArrowType::Bool | ArrowType::Number(_) | ArrowType::Decimal128 { .. } => None,
        ArrowType::Dictionary { .. } if opts.categorical == Categorical::Raise => Some(format!(
            "it is {} (categorical); pass categorical='codes' or 'onehot'",
            ty.describe()
        )),
        ArrowType::Dictionary { .. } => None,
        t if t.is_temporal() && opts.datetime == Datetime::Raise => Some(format!(
            "it holds {} values; pass datetime='days' or 'seconds'",
            ty.describe()
        )),
        t if t.is_temporal() => None,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => Some(format!(
            "it is {} (text); dictionary-encode it first (pyarrow: .dictionary_encode(), \
             polars: .cast(pl.Categorical)) and pass categorical='codes' or 'onehot'",
            ty.describe()
        )),
        _ => Some(format!(
            "its type {} is not a number, bool, dictionary, date, timestamp or duration",
            ty.describe()
        )),
    }
}

/// The error for a column the options cannot convert.
fn refused(name: &str, ty: &ArrowType, why: &str) -> Error {
    let e = format!("column '{name}' cannot be converted: {why}");
    if matches!(ty, ArrowType::Other(_)) {
        Error::UnsupportedDtype(e)
    } else {
        Error::InvalidArgument(e)
    }
}

/// Prepares one column from its chunks.
fn prepare(
    name: &str,
    ty: &ArrowType,
    chunks: &[Chunk<'_>],
    opts: &ArrowOptions,
) -> Result<Prepared> {
    let at = format!("column '{name}'");
    if let Some(why) = unconvertible(ty, opts) {
        return Err(refused(name, ty, &why));
    }
    let len: usize = chunks.iter().map(|c| c.len).sum();
    let mut because = Vec::new();
    let mask = mask_of(chunks, &mut because)?;
    let day = 86_400i64;
    let (data, dtype, kind, names) = match ty {
        ArrowType::Number(d) => (
            gather(chunks, d.item_size(), &mut because)?,
            *d,
            ColumnKind::Value,
            vec![name.to_string()],
        ),
        ArrowType::Bool => {
            because.push("bit-packed bools".into());
            let mut v = zeroed(len, "the bools")?;
            let mut at = 0;
            for c in chunks {
                if c.len > 0 {
                    // SAFETY: a checked bool array's values bitmap covers offset + length bits.
                    unsafe { spread_bits(c.buffer(1), c.offset, &mut v[at..at + c.len], false) };
                }
                at += c.len;
            }
            (
                Data::Owned(v),
                DType::BOOL,
                ColumnKind::Value,
                vec![name.to_string()],
            )
        }
        ArrowType::Decimal128 { scale } => {
            because.push("decimals".into());
            let div = 10f64.powi(*scale);
            let v = map_values(chunks, |x: i128| x as f64 / div)?;
            (
                Data::Owned(v),
                DType::F64,
                ColumnKind::Value,
                vec![name.to_string()],
            )
        }
        ArrowType::Date32 => {
            because.push("dates".into());
            let n = vec![name.to_string()];
            match opts.datetime {
                Datetime::Days => (
                    gather(chunks, 4, &mut because)?,
                    DType::I32,
                    ColumnKind::Value,
                    n,
                ),
                _ => (
                    Data::Owned(map_values(chunks, |d: i32| i64::from(d) * day)?),
                    DType::I64,
                    ColumnKind::Value,
                    n,
                ),
            }
        }
        ArrowType::Date64 | ArrowType::Timestamp(..) | ArrowType::Duration(_) => {
            because.push("date/time ticks".into());
            let per_second = match ty {
                ArrowType::Timestamp(u, _) | ArrowType::Duration(u) => u.per_second(),
                _ => 1000,
            };
            let kind = match opts.datetime {
                Datetime::Days => ColumnKind::Datetime {
                    divisor: per_second * day,
                    floor: true,
                },
                _ => ColumnKind::Datetime {
                    divisor: per_second,
                    floor: false,
                },
            };
            (
                gather(chunks, 8, &mut because)?,
                DType::I64,
                kind,
                vec![name.to_string()],
            )
        }
        ArrowType::Dictionary { index, values, .. } => {
            because.push("dictionary indices".into());
            // labels per chunk; the first chunk's order, then labels first seen later
            let mut all: Vec<String> = Vec::new();
            let mut per_chunk = Vec::with_capacity(chunks.len());
            for c in chunks {
                // SAFETY: checked non-NULL and checked against `values`.
                let l =
                    unsafe { labels(&*c.array.dictionary, values) }.map_err(|e| e.context(&at))?;
                per_chunk.push(l);
            }
            let same = per_chunk.windows(2).all(|w| w[0] == w[1]);
            let (data, dtype) = if same {
                all = per_chunk.first().cloned().unwrap_or_default();
                (gather(chunks, index.item_size(), &mut because)?, *index)
            } else {
                let mut pos = std::collections::HashMap::new();
                let mut codes = with_room(len.saturating_mul(8), "the unified codes")?;
                let read = int_reader(*index);
                for (c, l) in chunks.iter().zip(&per_chunk) {
                    let map: Vec<i64> = l
                        .iter()
                        .map(|s| {
                            *pos.entry(s.clone()).or_insert_with(|| {
                                all.push(s.clone());
                                all.len() as i64 - 1
                            })
                        })
                        .collect();
                    for b in c.values(index.item_size()).chunks_exact(index.item_size()) {
                        let k = read(b);
                        let code = usize::try_from(k).ok().and_then(|k| map.get(k)).copied();
                        codes.extend_from_slice(&code.unwrap_or(-1).to_ne_bytes());
                    }
                }
                because.push("dictionaries differ between chunks".into());
                (Data::Owned(codes), DType::I64)
            };
            let (kind, names) = match opts.categorical {
                Categorical::OneHot => (
                    ColumnKind::OneHot {
                        categories: all.len(),
                    },
                    all.iter().map(|l| format!("{name}_{l}")).collect(),
                ),
                _ => (ColumnKind::Codes, vec![name.to_string()]),
            };
            (data, dtype, kind, names)
        }
        _ => unreachable!("unconvertible() refused every other type"),
    };
    Ok(Prepared {
        data,
        dtype,
        len,
        mask,
        kind,
        names,
        copy_because: because,
    })
}

/// Whether a float buffer holds a NaN (read in parallel for large buffers).
fn has_nan(bytes: &[u8], dtype: DType) -> bool {
    fn any<T: Copy + Send + Sync>(v: &[u8], nan: fn(T) -> bool) -> bool {
        use rayon::prelude::*;
        let item = std::mem::size_of::<T>();
        let scan = |b: &[u8]| {
            b.chunks(4096 * item).any(|block| {
                block
                    .chunks_exact(item)
                    // SAFETY: `c` holds exactly size_of::<T>() bytes of a plain float type.
                    .fold(false, |acc, c| {
                        acc | nan(unsafe { c.as_ptr().cast::<T>().read_unaligned() })
                    })
            })
        };
        if v.len() < (1 << 22) {
            scan(v)
        } else {
            v.par_chunks(1 << 20)
                .any(|b| scan(&b[..b.len() - b.len() % item]))
        }
    }
    match (dtype.code, dtype.bits) {
        (code::FLOAT, 64) => any::<f64>(bytes, f64::is_nan),
        (code::FLOAT, 32) => any::<f32>(bytes, f32::is_nan),
        (code::FLOAT, 16) => any::<u16>(bytes, |b| b & 0x7c00 == 0x7c00 && b & 0x03ff != 0),
        _ => false,
    }
}

impl Batches {
    pub fn arrow_type(&self) -> &ArrowType {
        &self.ty
    }

    /// Checks every array against the schema; `at` names the input.
    fn check_all(&self) -> Result<()> {
        for (b, a) in self.arrays.iter().enumerate() {
            let at = if self.arrays.len() == 1 {
                "array".to_string()
            } else {
                format!("batch {b}")
            };
            // SAFETY: owned, unreleased arrays from a producer bound by the C Data Interface.
            unsafe { check(a.raw(), &self.ty, 0, &at, 0)? };
            if let ArrowType::Struct(_) = self.ty
                && a.raw().null_count > 0
            {
                return Err(Error::InvalidArgument(format!(
                    "{at}: the record batch itself has {} null rows; dlshare reads tables \
                     whose rows are all present (nulls belong in the columns)",
                    a.raw().null_count
                )));
            }
        }
        Ok(())
    }

    /// Converts to a tensor (see the module documentation).
    pub fn to_tensor(self, opts: &ArrowOptions) -> Result<Imported> {
        self.check_all()?;
        match &self.ty {
            ArrowType::Struct(fields) => self.table(fields, opts),
            _ => self.array(opts),
        }
    }

    fn chunks_of(&self, column: usize) -> Vec<Chunk<'_>> {
        self.arrays
            .iter()
            .map(|a| {
                let a = a.raw();
                // SAFETY: checked: a struct array has one valid child per field.
                let child = unsafe { &**a.children.add(column) };
                Chunk {
                    array: child,
                    // checked for convertible columns; never read for the others
                    offset: child.offset.saturating_add(a.offset).max(0) as usize,
                    len: a.length as usize,
                }
            })
            .filter(|c| c.len > 0)
            .collect()
    }

    fn table(&self, fields: &[Field], opts: &ArrowOptions) -> Result<Imported> {
        let mut chosen: Vec<usize> = Vec::new();
        let mut skipped = Vec::new();
        let mut skipped_types = Vec::new();
        match &opts.select {
            Some(names) => {
                for n in names {
                    let i = fields.iter().position(|f| &f.name == n).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "column '{n}' is not in the table (its columns: {})",
                            fields
                                .iter()
                                .map(|f| format!("'{}'", f.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                    chosen.push(i);
                }
            }
            None => {
                for (i, f) in fields.iter().enumerate() {
                    if unconvertible(&f.ty, opts).is_none() {
                        chosen.push(i);
                    } else {
                        skipped.push(f.name.clone());
                        skipped_types.push(format!("'{}' ({})", f.name, f.ty.describe()));
                    }
                }
            }
        }
        if chosen.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no column to convert{}; select columns, or pass categorical=/datetime= to \
                 include those columns",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped: {})", skipped_types.join(", "))
                }
            )));
        }
        let prepared = chosen
            .iter()
            .map(|&i| {
                let f = &fields[i];
                if let Some(why) = unconvertible(&f.ty, opts) {
                    // before reading the column's (unchecked) array at all
                    return Err(refused(&f.name, &f.ty, &why));
                }
                prepare(&f.name, &f.ty, &self.chunks_of(i), opts)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut copts = opts.columns;
        if opts.keep_dtype {
            let first = prepared[0].dtype;
            if prepared
                .iter()
                .any(|p| p.dtype != first || p.kind != ColumnKind::Value)
            {
                return Err(Error::InvalidArgument(
                    "the selected columns have different types, so there is no dtype to keep; \
                     pass a dtype"
                        .into(),
                ));
            }
            copts.dtype = first;
        }
        let tensor = run_kernel(&prepared, &copts)?;
        let names = prepared.iter().flat_map(|p| p.names.clone()).collect();
        Ok(Imported {
            tensor,
            decision: Decision::with_detail(
                false,
                Reason::CopyRequested,
                format!(
                    "copied ({}): a table is always written into a new rows x columns tensor \
                     ({} Arrow columns), as from_dataframe does",
                    Reason::CopyRequested.code(),
                    prepared.len()
                ),
            ),
            names,
            skipped,
        })
    }

    fn array(self, opts: &ArrowOptions) -> Result<Imported> {
        let chunks: Vec<Chunk<'_>> = self
            .arrays
            .iter()
            .map(|a| Chunk {
                array: a.raw(),
                offset: a.raw().offset as usize,
                len: a.raw().length as usize,
            })
            .filter(|c| c.len > 0)
            .collect();
        // SAFETY: an owned, unreleased schema.
        let name = unsafe { schema::name(self.schema.raw()) }
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "array".into());
        // the zero-copy case: one primitive chunk, no nulls, dtype unchanged, aligned, no NaN
        if let ArrowType::Number(d) = self.ty
            && chunks.len() <= 1
            && (opts.keep_dtype || opts.columns.dtype == d)
            && opts.columns.normalize == crate::columns::Normalize::None
            && chunks.iter().all(|c| c.nulls() == 0)
        {
            let bytes: &[u8] = chunks.first().map_or(&[], |c| c.values(d.item_size()));
            let aligned = (bytes.as_ptr() as usize).is_multiple_of(d.alignment());
            if aligned && !has_nan(bytes, d) {
                let (ptr, nbytes, n) = (
                    bytes.as_ptr().cast_mut(),
                    bytes.len(),
                    bytes.len() / d.item_size(),
                );
                let arrays = self.arrays;
                drop(self.schema);
                let storage =
                    Storage::foreign(ptr, nbytes, Device::CPU, Release::new(move || drop(arrays)));
                let tensor = Tensor {
                    storage: Arc::new(storage),
                    data: ptr,
                    byte_offset: 0,
                    dtype: d,
                    shape: vec![n as i64],
                    strides: vec![1],
                    read_only: true,
                    is_copy: false,
                    subbyte_padded: false,
                };
                return Ok(Imported {
                    tensor,
                    decision: Decision::with_detail(
                        true,
                        Reason::None,
                        format!("shared: read-only {d} Arrow buffer on cpu, no copy"),
                    ),
                    names: vec![name],
                    skipped: Vec::new(),
                });
            }
        }
        let p = prepare(&name, &self.ty, &chunks, opts)?;
        let mut copts = opts.columns;
        if opts.keep_dtype {
            copts.dtype = match (p.kind, opts.datetime) {
                (ColumnKind::Datetime { .. }, Datetime::Days) => DType::I64,
                (ColumnKind::Datetime { .. }, _) => DType::F64,
                _ => p.dtype,
            };
            if copts.normalize != crate::columns::Normalize::None || copts.nan == NanPolicy::Mean {
                copts.dtype = DType::F64;
            }
        }
        let mut tensor = run_kernel(std::slice::from_ref(&p), &copts)?;
        if tensor.shape[1] == 1 {
            tensor.shape.truncate(1);
            tensor.strides = vec![1];
        }
        let mut because = p.copy_because.clone();
        let d = match self.ty {
            ArrowType::Number(d) => Some(d),
            _ => None,
        };
        let reason = if because.is_empty() && d.is_some_and(|d| d != copts.dtype) {
            Reason::DtypeChange
        } else {
            if because.is_empty() {
                because.push("NaN values or normalisation to apply".into());
            }
            Reason::ArrowLayout
        };
        let detail = match reason {
            Reason::DtypeChange => format!(
                "copied ({}): the target dtype is {}, the data is {}",
                reason.code(),
                copts.dtype,
                d.map_or_else(String::new, |d| d.to_string())
            ),
            _ => format!(
                "copied ({}): the Arrow array cannot be viewed as a tensor ({})",
                reason.code(),
                because.join(", ")
            ),
        };
        Ok(Imported {
            tensor,
            decision: Decision::with_detail(false, reason, detail),
            names: p.names.clone(),
            skipped: Vec::new(),
        })
    }
}

/// Runs the column kernel, naming columns instead of indices in its errors.
fn run_kernel(prepared: &[Prepared], opts: &ColumnsOptions) -> Result<Tensor> {
    let cols: Vec<Column<'_>> = prepared.iter().map(Prepared::column).collect();
    columns::tensor_from_columns(&cols, opts).map_err(|e| {
        let names: Vec<String> = prepared
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{i} = '{}'", p.names.first().map_or("", |s| s.as_str())))
            .collect();
        e.context(&format!("Arrow columns ({})", names.join(", ")))
    })
}
