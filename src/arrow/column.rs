//! One Arrow column (its chunks) to one `columns::Column`: values read in place or joined,
//! validity bitmaps read in place by the kernel (byte masks when chunks are joined), bit-packed
//! bools to bytes, dictionaries to codes
//! (unified by label across chunks), dates, times and decimals to what the kernel reads.

use super::abi::ArrowArray;
use super::import::{ArrowOptions, Categorical, Datetime};
use super::schema::ArrowType;
use crate::columns::{Column, ColumnKind};
use crate::dtype::{DType, code};
use crate::error::{Error, Result};

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
pub(super) unsafe fn spread_bits(bits: *const u8, offset: usize, out: &mut [u8], invert: bool) {
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
pub(super) unsafe fn count_nulls(bits: *const u8, offset: usize, len: usize) -> usize {
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
pub(super) struct Chunk<'a> {
    pub(super) array: &'a ArrowArray,
    pub(super) offset: usize,
    pub(super) len: usize,
}

impl Chunk<'_> {
    pub(super) fn buffer(&self, i: usize) -> *const u8 {
        // SAFETY: checked: `buffers` holds at least `i + 1` pointers for the types read here.
        unsafe { *self.array.buffers.add(i) }.cast()
    }

    /// Nulls in this chunk (0 without a validity bitmap).
    pub(super) fn nulls(&self) -> usize {
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
    pub(super) fn values(&self, item: usize) -> &[u8] {
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
pub(super) enum Data {
    Borrowed(*const u8),
    Owned(Vec<u8>),
}

/// How a prepared column marks its missing rows.
pub(super) enum Missing {
    /// No nulls.
    None,
    /// A single chunk's own validity bitmap, read in place by the kernel: the bitmap, its byte
    /// count (covering the rows read) and the bit of row 0.
    Bits(*const u8, usize, usize),
    /// Several chunks: one byte per row (1 = missing), built here.
    Bytes(Vec<u8>),
}

/// One prepared column: what `Column::from_raw` needs, kept alive until the kernel returns.
pub(super) struct Prepared {
    pub(super) data: Data,
    pub(super) dtype: DType,
    pub(super) len: usize,
    pub(super) mask: Missing,
    pub(super) kind: ColumnKind,
    pub(super) names: Vec<String>,
    /// Why this column cannot be viewed as it is (for a 1-D import's decision).
    pub(super) copy_because: Vec<String>,
}

impl Prepared {
    pub(super) fn column(&self) -> Column<'_> {
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
            Missing::None => c,
            Missing::Bytes(m) => c.with_missing(m),
            Missing::Bits(p, nbytes, offset) => {
                // SAFETY: a checked array's validity bitmap covers offset + length bits
                // (`nbytes` of them were counted from that), alive while the arrays are.
                let bits = unsafe { std::slice::from_raw_parts(*p, *nbytes) };
                c.with_validity(bits, *offset)
            }
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

/// How the chunks mark missing rows: nothing without nulls, a single chunk's validity bitmap
/// as it is (the kernel reads the bits: no extra pass), or one byte per row for several chunks.
fn mask_of(chunks: &[Chunk<'_>], copy_because: &mut Vec<String>) -> Result<Missing> {
    let nulls: usize = chunks.iter().map(Chunk::nulls).sum();
    if nulls == 0 {
        return Ok(Missing::None);
    }
    copy_because.push(format!("{nulls} nulls"));
    if let [c] = chunks {
        let nbytes = (c.offset + c.len).div_ceil(8);
        return Ok(Missing::Bits(c.buffer(0), nbytes, c.offset));
    }
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
    Ok(Missing::Bytes(mask))
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
pub(super) fn unconvertible(ty: &ArrowType, opts: &ArrowOptions) -> Option<String> {
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
pub(super) fn refused(name: &str, ty: &ArrowType, why: &str) -> Error {
    let e = format!("column '{name}' cannot be converted: {why}");
    if matches!(ty, ArrowType::Other(_)) {
        Error::UnsupportedDtype(e)
    } else {
        Error::InvalidArgument(e)
    }
}

/// Prepares one column from its chunks.
pub(super) fn prepare(
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
pub(super) fn has_nan(bytes: &[u8], dtype: DType) -> bool {
    fn any<T: Copy + Send + Sync>(v: &[u8], nan: fn(T) -> bool) -> bool {
        use rayon::prelude::*;
        let item = std::mem::size_of::<T>();
        let scan = |b: &[u8]| {
            b.chunks(4096 * item).any(|block| {
                block.chunks_exact(item).fold(false, |acc, c| {
                    // SAFETY: `c` holds exactly size_of::<T>() bytes of a plain float type.
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
