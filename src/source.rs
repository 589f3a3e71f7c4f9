//! A source array: memory described NumPy-style (data pointer, byte offset, dtype, shape, byte
//! strides, device, flags), before anything is decided about it. The DLPack importer, the raw
//! view importer and existing tensors produce one; `convert` decides on it and shares or copies.

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout;

/// A source array, described NumPy-style with byte strides. Built by the DLPack importer, the
/// raw-view importer and from existing tensors (`Source::of_tensor`); validated by
/// `Source::validate`.
///
/// Its fields are private: a `Source` with an arbitrary pointer could make safe code read (and,
/// once shared, write) any address, so the only way to describe foreign memory is the `unsafe`
/// constructor [`Source::from_raw_parts`], whose caller vouches for the memory.
///
/// ```compile_fail
/// // Safe code cannot fill in a pointer:
/// let src = dlshare::Source {
///     data: 0x1000 as *mut u8,
///     byte_offset: 0,
///     dtype: dlshare::DType::F32,
///     shape: vec![4],
///     byte_strides: vec![4],
///     device: dlshare::Device::CPU,
///     read_only: false,
///     byte_swapped: false,
///     subbyte_padded: false,
/// };
/// ```
///
/// ```compile_fail,E0133
/// // ... nor call the constructor outside `unsafe`:
/// let src = dlshare::Source::from_raw_parts(
///     0x1000 as *mut u8,
///     0,
///     dlshare::DType::F32,
///     vec![4],
///     vec![4],
///     dlshare::Device::CPU,
///     dlshare::source::SourceFlags::default(),
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Source {
    /// The DLPack `data` field (or the view's data pointer, with `byte_offset` 0).
    pub(crate) data: *mut u8,
    pub(crate) byte_offset: u64,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<i64>,
    pub(crate) byte_strides: Vec<i64>,
    pub(crate) device: Device,
    pub(crate) read_only: bool,
    /// Non-native byte order.
    pub(crate) byte_swapped: bool,
    pub(crate) subbyte_padded: bool,
}

/// The flags of a [`Source`] (all false by default: writable, native byte order, sub-byte
/// elements packed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceFlags {
    /// The memory must not be written (a shared tensor is then read-only).
    pub read_only: bool,
    /// The elements are stored in non-native byte order (a conversion copies and swaps).
    pub byte_swapped: bool,
    /// Sub-byte elements take one byte each (DLPack IS_SUBBYTE_TYPE_PADDED).
    pub subbyte_padded: bool,
}

impl Source {
    /// Describes memory at `data + byte_offset`: elements of `dtype`, `shape`, `byte_strides`
    /// (bytes between neighbours along each axis, any sign), on `device`.
    ///
    /// The description itself is checked by `validate` (and by every decision and conversion):
    /// dtype, device, rank, strides per axis, and that the elements' byte range lies inside the
    /// address space. What cannot be checked is the memory, hence `unsafe`.
    ///
    /// # Safety
    /// Converting the source (`convert`) reads every element it describes, and a tensor that
    /// shares it may write them: each must be memory of `device` that stays valid for as long
    /// as the owner handed to `convert` keeps it alive, readable, and writable unless
    /// `flags.read_only` is set. With `flags.subbyte_padded` false, sub-byte elements are packed
    /// (their byte range is computed from the bits). `validate` and `decide` read no memory: a
    /// source that is only decided upon may describe any address.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn from_raw_parts(
        data: *mut u8,
        byte_offset: u64,
        dtype: DType,
        shape: Vec<i64>,
        byte_strides: Vec<i64>,
        device: Device,
        flags: SourceFlags,
    ) -> Source {
        Source {
            data,
            byte_offset,
            dtype,
            shape,
            byte_strides,
            device,
            read_only: flags.read_only,
            byte_swapped: flags.byte_swapped,
            subbyte_padded: flags.subbyte_padded,
        }
    }

    /// The DLPack `data` field (the first element is at `data + byte_offset`).
    pub fn data(&self) -> *mut u8 {
        self.data
    }
    pub fn byte_offset(&self) -> u64 {
        self.byte_offset
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }
    pub fn byte_strides(&self) -> &[i64] {
        &self.byte_strides
    }
    pub fn device(&self) -> Device {
        self.device
    }
    pub fn flags(&self) -> SourceFlags {
        SourceFlags {
            read_only: self.read_only,
            byte_swapped: self.byte_swapped,
            subbyte_padded: self.subbyte_padded,
        }
    }

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
