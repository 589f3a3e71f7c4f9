//! A source array: memory described NumPy-style (data pointer, byte offset, dtype, shape, byte
//! strides, device, flags), before anything is decided about it. The DLPack importer, the raw
//! view importer and existing tensors produce one; `convert` decides on it and shares or copies.

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout;

/// A source array, described NumPy-style with byte strides. Built by the DLPack importer, the
/// raw-view importer and from existing tensors; validated by `Source::validate`.
#[derive(Clone, Debug)]
pub struct Source {
    /// The DLPack `data` field (or the view's data pointer, with `byte_offset` 0).
    pub data: *mut u8,
    pub byte_offset: u64,
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub byte_strides: Vec<i64>,
    pub device: Device,
    pub read_only: bool,
    /// Non-native byte order.
    pub byte_swapped: bool,
    pub subbyte_padded: bool,
}

impl Source {
    /// Address of the first element.
    pub fn first(&self) -> *mut u8 {
        self.borrowed().first()
    }

    /// Checks everything that makes a description malformed regardless of mode.
    pub fn validate(&self) -> Result<()> {
        self.borrowed().validate().map(drop)
    }

    /// The same description over borrowed shape and strides.
    pub(crate) fn borrowed(&self) -> SourceRef<'_> {
        SourceRef {
            data: self.data,
            byte_offset: self.byte_offset,
            dtype: self.dtype,
            shape: &self.shape,
            byte_strides: &self.byte_strides,
            device: self.device,
            read_only: self.read_only,
            byte_swapped: self.byte_swapped,
            subbyte_padded: self.subbyte_padded,
        }
    }
}

/// A `Source` whose shape and strides are borrowed: what the decision and the conversion work
/// on, so that a caller with the values at hand (a raw view) need not allocate to convert.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourceRef<'a> {
    pub data: *mut u8,
    pub byte_offset: u64,
    pub dtype: DType,
    pub shape: &'a [i64],
    pub byte_strides: &'a [i64],
    pub device: Device,
    pub read_only: bool,
    pub byte_swapped: bool,
    pub subbyte_padded: bool,
}

impl SourceRef<'_> {
    /// The owned form (for the CUDA copies, which take a `Source`).
    pub(crate) fn to_source(self) -> Source {
        Source {
            data: self.data,
            byte_offset: self.byte_offset,
            dtype: self.dtype,
            shape: self.shape.to_vec(),
            byte_strides: self.byte_strides.to_vec(),
            device: self.device,
            read_only: self.read_only,
            byte_swapped: self.byte_swapped,
            subbyte_padded: self.subbyte_padded,
        }
    }

    /// Address of the first element.
    pub(crate) fn first(&self) -> *mut u8 {
        self.data.wrapping_add(self.byte_offset as usize)
    }

    /// `Source::validate`; returns the element count.
    pub(crate) fn validate(&self) -> Result<u64> {
        self.dtype.validate()?;
        self.device.validate()?;
        if self.byte_strides.len() != self.shape.len() {
            return Err(Error::InvalidArgument(format!(
                "{} strides given for {} dimensions",
                self.byte_strides.len(),
                self.shape.len()
            )));
        }
        let n = layout::numel(self.shape)?;
        if n > 0 && self.data.is_null() {
            return Err(Error::NullArgument(format!(
                "data is NULL but the array has {n} elements; NULL data is allowed only for \
                 zero-size arrays"
            )));
        }
        if n > 0 {
            let first = (self.data as usize)
                .checked_add(usize::try_from(self.byte_offset).unwrap_or(usize::MAX))
                .ok_or_else(|| {
                    Error::Overflow(format!(
                        "byte_offset {} added to data {:p} overflows the address space",
                        self.byte_offset, self.data
                    ))
                })?;
            layout::check_address_range(
                first,
                self.shape,
                self.byte_strides,
                self.dtype.item_size(),
            )?;
        }
        Ok(n)
    }
}
