//! Apache Arrow C Data Interface (issue #14): tables and arrays from any Arrow producer
//! (pyarrow, polars, DuckDB, pandas with Arrow dtypes, C code) into tensors through the column
//! kernel, and tensors back out as Arrow arrays without a copy.
//!
//! - [`abi`]: the `#[repr(C)]` structs and owners that release them exactly once;
//! - [`schema`]: format strings to [`schema::ArrowType`];
//! - `check`: arrays against their types, before any data is read;
//! - `column`: one Arrow column (its chunks) to one kernel column;
//! - [`import`]: taking structs over, tables -> 2-D through `crate::columns`, arrays -> 1-D
//!   (shared when possible);
//! - [`export`]: tensor -> `ArrowSchema` + `ArrowArray`.

pub mod abi;
mod check;
mod column;
pub mod export;
pub mod import;
pub mod schema;

pub use import::{ArrowOptions, Batches, Categorical, Datetime, Imported};
