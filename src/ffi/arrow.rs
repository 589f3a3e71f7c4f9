//! The Arrow C Data Interface entry points (issue #14): Arrow tables and arrays to tensors
//! (`dlshare_tensor_from_arrow`, `dlshare_tensor_from_arrow_stream`) and tensors to Arrow
//! arrays (`dlshare_tensor_to_arrow`), plus the helpers a Python binding needs for the Arrow
//! PyCapsule interface. The work is `crate::arrow`; this file reads and checks the C structs.

use std::ffi::{CStr, c_char, c_void};

use super::columns::{dlshare_columns_options, dlshare_columns_options_init, options_from};
use super::convert::{dlshare_decision, write_decision};
use super::handles::{self, dlshare_tensor};
use super::python::py_symbol;
use super::{boundary, dlshare_status, guarded, out};
use crate::arrow::abi::{ArrowArray, ArrowArrayStream, ArrowSchema};
use crate::arrow::{self, ArrowOptions, Categorical, Datetime, Imported};
use crate::error::{Error, Result};

/// What dictionary-encoded (categorical) Arrow columns become. Codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_arrow_categorical {
    /// An error naming the column; with no column list such columns are skipped.
    DLSHARE_ARROW_CATEGORICAL_RAISE = 0,
    /// The dictionary indices as numbers (pandas `cat.codes`); a null index is missing.
    DLSHARE_ARROW_CATEGORICAL_CODES = 1,
    /// One 0/1 output column per dictionary entry, in dictionary order (`pd.get_dummies`); a
    /// null gives a row of zeros. Chunks with different dictionaries are unified by label
    /// (first chunk's order, then labels first seen later).
    DLSHARE_ARROW_CATEGORICAL_ONEHOT = 2,
}

/// What date32, date64, timestamp (any unit, any time zone: Arrow stores UTC) and duration
/// columns become. Codes are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_arrow_datetime {
    /// An error naming the column; with no column list such columns are skipped.
    DLSHARE_ARROW_DATETIME_RAISE = 0,
    /// Whole days since 1970-01-01 UTC, floored (pandas `.days`).
    DLSHARE_ARROW_DATETIME_DAYS = 1,
    /// Seconds since 1970-01-01 UTC (pandas `.total_seconds()`).
    DLSHARE_ARROW_DATETIME_SECONDS = 2,
}

/// Options of the Arrow imports. Start from `dlshare_arrow_options_init(...)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_arrow_options {
    /// Output dtype, missing-value policy, fill value and normalisation, exactly as for
    /// `dlshare_tensor_from_columns`. Nulls are missing values, and so is a NaN that is not null.
    pub columns: dlshare_columns_options,
    /// A `dlshare_arrow_categorical` value.
    pub categorical: i32,
    /// A `dlshare_arrow_datetime` value.
    pub datetime: i32,
    /// Keep the data's dtype instead of `columns.dtype`: a plain array's element type (int64
    /// days / float64 seconds for dates and times), a table's when all its selected columns
    /// are value columns of one type.
    pub keep_dtype: bool,
    /// NULL, or `nselect` NUL-terminated UTF-8 column names: the table columns to take, in
    /// this order (borrowed for the call). NULL takes every column the options can convert:
    /// numbers and bools, plus dictionary / temporal columns when their option is not RAISE.
    pub select: *const *const c_char,
    pub nselect: usize,
}

/// Arrow options with float32 output, `nan_policy` (a `dlshare_nan_policy`), fill value 0,
/// `normalize` (a `dlshare_normalize`), categorical and datetime RAISE, all convertible columns.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_arrow_options_init(
    nan_policy: i32,
    normalize: i32,
) -> dlshare_arrow_options {
    dlshare_arrow_options {
        columns: dlshare_columns_options_init(nan_policy, normalize),
        categorical: 0,
        datetime: 0,
        keep_dtype: false,
        select: std::ptr::null(),
        nselect: 0,
    }
}

fn arrow_options(o: *const dlshare_arrow_options) -> Result<ArrowOptions> {
    // SAFETY: the public functions document that a non-NULL options pointer is valid.
    let Some(o) = (unsafe { o.as_ref() }) else {
        return Ok(ArrowOptions::default());
    };
    let categorical = match o.categorical {
        0 => Categorical::Raise,
        1 => Categorical::Codes,
        2 => Categorical::OneHot,
        c => {
            return Err(Error::InvalidArgument(format!(
                "options.categorical is {c}; use a dlshare_arrow_categorical value (0..=2)"
            )));
        }
    };
    let datetime = match o.datetime {
        0 => Datetime::Raise,
        1 => Datetime::Days,
        2 => Datetime::Seconds,
        d => {
            return Err(Error::InvalidArgument(format!(
                "options.datetime is {d}; use a dlshare_arrow_datetime value (0..=2)"
            )));
        }
    };
    let select = if o.select.is_null() {
        if o.nselect != 0 {
            return Err(Error::NullArgument(format!(
                "options.select is NULL but options.nselect is {}",
                o.nselect
            )));
        }
        None
    } else {
        // SAFETY: documented contract: `select` holds `nselect` pointers.
        let names = unsafe { std::slice::from_raw_parts(o.select, o.nselect) };
        let mut v = Vec::with_capacity(names.len());
        for (i, &n) in names.iter().enumerate() {
            if n.is_null() {
                return Err(Error::NullArgument(format!("options.select[{i}] is NULL")));
            }
            // SAFETY: documented contract: NUL-terminated strings.
            let s = unsafe { CStr::from_ptr(n) }.to_str().map_err(|_| {
                Error::InvalidArgument(format!("options.select[{i}] is not valid UTF-8"))
            })?;
            v.push(s.to_owned());
        }
        Some(v)
    };
    Ok(ArrowOptions {
        columns: options_from(&o.columns)?,
        categorical,
        datetime,
        select,
        keep_dtype: o.keep_dtype,
    })
}

/// Separators of the `names_out` text.
const UNIT: char = '\u{1f}';
const RECORD: char = '\u{1e}';

fn finish(
    imported: Imported,
    tensor_out: &mut std::mem::MaybeUninit<*mut dlshare_tensor>,
    decision_out: *mut dlshare_decision,
    names_out: *mut *mut c_char,
) -> Result<()> {
    let names = if names_out.is_null() {
        None
    } else {
        let clean = |s: &String| s.replace(['\0', UNIT, RECORD], " ");
        let text = format!(
            "{}{RECORD}{}",
            imported
                .names
                .iter()
                .map(clean)
                .collect::<Vec<_>>()
                .join(&UNIT.to_string()),
            imported
                .skipped
                .iter()
                .map(clean)
                .collect::<Vec<_>>()
                .join(&UNIT.to_string())
        );
        Some(std::ffi::CString::new(text).unwrap_or_default())
    };
    let handle = handles::insert(imported.tensor)?;
    tensor_out.write(handle);
    write_decision(decision_out, &imported.decision);
    if let Some(n) = names {
        // SAFETY: documented contract: a non-NULL `names_out` is writable.
        unsafe { *names_out = n.into_raw() };
    }
    Ok(())
}

/// Converts an Arrow array to a tensor. `schema` must describe `array`:
/// - a struct (a record batch: pyarrow `RecordBatch`, a polars or DuckDB table exported with
///   `__arrow_c_array__`) gives a rows x columns, C-contiguous tensor through the column kernel
///   (one pass, the options of `dlshare_tensor_from_columns`), columns chosen by
///   `options->select`;
/// - any other type gives a 1-D tensor, which shares the array's memory (read-only, decision
///   shared) when the array is integer or float, has no nulls, holds no NaN (float arrays are
///   scanned, once, at memory speed), is aligned and the dtype is kept; otherwise it is a copy
///   and the decision says why (DLSHARE_REASON_DTYPE_CHANGE or DLSHARE_REASON_ARROW_LAYOUT).
///
/// Supported column types: int8..int64, uint8..uint64, float16/32/64, bool (bit-packed),
/// dictionary with integer indices, date32, date64, timestamp (s/ms/us/ns, with or without a
/// time zone) and duration. Validity bitmaps may start at any bit offset.
///
/// Ownership: `schema` and `array` are moved in (their `release` is set to NULL) whenever the
/// pointer is non-NULL and the struct is not already released, on success and on error alike;
/// dlshare calls each release callback exactly once: before returning, or, for a shared 1-D
/// tensor, when the last tensor over its memory is released. On success `*tensor_out` is a new
/// handle owned by the caller; `*decision_out` (when not NULL) says shared or copied and why;
/// `*names_out` (when not NULL) is a new string (free it with `dlshare_string_free`) holding
/// the output column names separated by 0x1F, then 0x1E, then the names of the skipped table
/// columns separated by 0x1F. On failure the outputs are untouched.
///
/// # Safety
/// `schema` and `array` are NULL or valid C Data Interface structs the caller may move;
/// `options` is NULL or valid (NULL: float32, RAISE, no normalisation, RAISE for categorical
/// and datetime columns); `tensor_out` writable; `decision_out` and `names_out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_arrow(
    schema: *mut ArrowSchema,
    array: *mut ArrowArray,
    options: *const dlshare_arrow_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
    names_out: *mut *mut c_char,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract; taken first so that every error below releases them.
        let batches = unsafe { arrow::import::take_array(schema, array) };
        // SAFETY: documented contract for `tensor_out`.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        let opts = arrow_options(options)?;
        let imported = batches?.to_tensor(&opts)?;
        finish(imported, slot, decision_out, names_out)
    })
}

/// Like `dlshare_tensor_from_arrow` for an `ArrowArrayStream` (pyarrow `Table`,
/// `ChunkedArray` and `RecordBatchReader`, polars `DataFrame` / `Series`, DuckDB results via
/// `__arrow_c_stream__`): the stream is read to its end and its chunks are converted as one
/// table (struct schema) or one array (any other schema: shared only when there is a single
/// chunk). Chunks may have any sizes and offsets.
///
/// Ownership: `stream` is moved in (its `release` set to NULL) whenever it is non-NULL and not
/// released, and released exactly once before this returns, on success and on error; the
/// schema and arrays it produced are released as `dlshare_tensor_from_arrow` says. A failing
/// `get_schema` / `get_next` gives DLSHARE_ERR_INVALID_ARGUMENT with the stream's own message.
///
/// # Safety
/// `stream` is NULL or a valid `ArrowArrayStream` the caller may move; the rest as for
/// `dlshare_tensor_from_arrow`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_arrow_stream(
    stream: *mut ArrowArrayStream,
    options: *const dlshare_arrow_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
    names_out: *mut *mut c_char,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract; read (and released) first so that every error below
        // still releases the stream and its arrays.
        let batches = unsafe { arrow::import::take_stream(stream) };
        // SAFETY: documented contract for `tensor_out`.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        let opts = arrow_options(options)?;
        let imported = batches?.to_tensor(&opts)?;
        finish(imported, slot, decision_out, names_out)
    })
}

/// Frees a string returned by dlshare (`names_out` of the Arrow imports). NULL is fine.
///
/// # Safety
/// `s` is NULL or a string dlshare returned and that was not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_string_free(s: *mut c_char) {
    guarded((), || {
        if !s.is_null() {
            // SAFETY: caller contract: made by CString::into_raw in this library.
            drop(unsafe { std::ffi::CString::from_raw(s) });
        }
    })
}

/// Exports `tensor` as Arrow without a copy: a 1-D tensor as a primitive array, a 2-D
/// C-contiguous tensor as a fixed-size-list array ("+w:<columns>", one list per row) over the
/// same memory. Integer and float dtypes only (Arrow bools are bit-packed: cast first); CPU
/// memory only.
///
/// On success `*schema_out` and `*array_out` are new heap structs owned by the caller: free
/// each with `dlshare_arrow_schema_free` / `dlshare_arrow_array_free` (which call the release
/// callback when it is still set) — or move the struct's contents into a consumer (copy it and
/// set `release` to NULL in the original) and then free the emptied struct. The array holds a
/// reference to the tensor's memory until its release callback runs; `tensor` stays owned by
/// the caller. On failure the outputs are untouched.
///
/// # Safety
/// `schema_out` and `array_out` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_to_arrow(
    tensor: *const dlshare_tensor,
    schema_out: *mut *mut ArrowSchema,
    array_out: *mut *mut ArrowArray,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let s_slot = unsafe { out(schema_out, "schema_out")? };
        // SAFETY: documented contract.
        let a_slot = unsafe { out(array_out, "array_out")? };
        let t = handles::get(tensor)?;
        let (s, a) = arrow::export::to_arrow(&t)?;
        s_slot.write(Box::into_raw(Box::new(s)));
        a_slot.write(Box::into_raw(Box::new(a)));
        Ok(())
    })
}

/// Frees a schema made by `dlshare_tensor_to_arrow`, calling its release callback first when
/// it is still set. NULL is fine.
///
/// # Safety
/// `schema` is NULL or a struct from `dlshare_tensor_to_arrow`, not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_arrow_schema_free(schema: *mut ArrowSchema) {
    guarded((), || {
        if schema.is_null() {
            return;
        }
        // SAFETY: caller contract: our box, freed once.
        let mut b = unsafe { Box::from_raw(schema) };
        if let Some(release) = b.release {
            // SAFETY: a live struct; its release runs once.
            unsafe { release(&mut *b) };
        }
    })
}

/// Frees an array made by `dlshare_tensor_to_arrow`, calling its release callback first when
/// it is still set. NULL is fine.
///
/// # Safety
/// `array` is NULL or a struct from `dlshare_tensor_to_arrow`, not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_arrow_array_free(array: *mut ArrowArray) {
    guarded((), || {
        if array.is_null() {
            return;
        }
        // SAFETY: caller contract: our box, freed once.
        let mut b = unsafe { Box::from_raw(array) };
        if let Some(release) = b.release {
            // SAFETY: a live struct; its release runs once.
            unsafe { release(&mut *b) };
        }
    })
}

type GetPointer = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

fn get_pointer() -> Option<GetPointer> {
    let p = py_symbol(c"PyCapsule_GetPointer")?;
    // SAFETY: CPython's PyCapsule_GetPointer has exactly this C signature.
    Some(unsafe { std::mem::transmute::<*mut c_void, GetPointer>(p) })
}

/// A `PyCapsule_Destructor` for "arrow_schema" capsules holding a schema from
/// `dlshare_tensor_to_arrow`: frees it (releasing it first unless a consumer moved it out).
/// Never call it yourself; does nothing when `dlshare_pycapsule_destructor_available()` is false.
///
/// # Safety
/// Only CPython may call it, with the GIL held, on a live capsule.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_arrow_schema_capsule_destructor(capsule: *mut c_void) {
    guarded((), || {
        if let Some(get) = get_pointer() {
            // SAFETY: CPython calls this on a live capsule named "arrow_schema" made by the
            // binding around a schema from dlshare_tensor_to_arrow.
            unsafe { dlshare_arrow_schema_free(get(capsule, c"arrow_schema".as_ptr()).cast()) };
        }
    })
}

/// A `PyCapsule_Destructor` for "arrow_array" capsules holding an array from
/// `dlshare_tensor_to_arrow` (as `dlshare_arrow_schema_capsule_destructor`).
///
/// # Safety
/// Only CPython may call it, with the GIL held, on a live capsule.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_arrow_array_capsule_destructor(capsule: *mut c_void) {
    guarded((), || {
        if let Some(get) = get_pointer() {
            // SAFETY: as above, for "arrow_array".
            unsafe { dlshare_arrow_array_free(get(capsule, c"arrow_array".as_ptr()).cast()) };
        }
    })
}
