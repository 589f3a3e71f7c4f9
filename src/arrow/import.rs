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
//! is for pandas). The kernel reads a single chunk's validity bitmap in place; joined chunks get
//! a one-byte-per-row mask (see `column.rs`).

use std::sync::Arc;

use super::abi::{ArrowArray, ArrowArrayStream, ArrowSchema, OwnedArray, OwnedSchema, OwnedStream};
use super::check::check;
use super::column::{Chunk, Prepared, has_nan, prepare, refused, unconvertible};
use super::schema::{self, ArrowType, Field};
use crate::columns::{self, Column, ColumnKind, ColumnsOptions, NanPolicy};
use crate::convert::{Decision, Reason};
use crate::device::Device;
use crate::dtype::DType;
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
            .map(|p| {
                // SAFETY: non-NULL, NUL-terminated per the stream contract.
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
