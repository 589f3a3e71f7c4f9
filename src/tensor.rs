//! Tensor = shared storage + dtype + shape + element strides + offset + read-only flag.
//! Immutable once built: every "change" (convert, cast, copy) makes a new `Tensor`.

use std::sync::Arc;

#[cfg(feature = "ndarray")]
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn, ShapeBuilder};

use crate::alloc;
use crate::device::Device;
use crate::dtype::DType;
#[cfg(feature = "ndarray")]
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::layout;
use crate::source::{Source, SourceRef};
#[cfg(feature = "ndarray")]
use crate::storage::Release;
use crate::storage::Storage;

#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Arc<Storage>,
    /// The DLPack `data` field: for CPU tensors the address of the first element, for device
    /// memory the pointer the producer gave (with `byte_offset` on top).
    pub(crate) data: *mut u8,
    pub(crate) byte_offset: u64,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<i64>,
    /// Element strides (never NULL-equivalent: always filled in).
    pub(crate) strides: Vec<i64>,
    pub(crate) read_only: bool,
    /// The storage is a fresh copy that dlshare made (exported with IS_COPIED).
    pub(crate) is_copy: bool,
    /// Sub-byte elements are padded to one byte each (DLPack IS_SUBBYTE_TYPE_PADDED).
    pub(crate) subbyte_padded: bool,
}

// SAFETY: the raw `data` pointer points into `storage`, which is Send + Sync; a Tensor is an
// immutable description of it.
unsafe impl Send for Tensor {}
// SAFETY: as above.
unsafe impl Sync for Tensor {}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype.name())
            .field("shape", &self.shape)
            .field("strides", &self.strides)
            .field("device", &self.device().name())
            .field("read_only", &self.read_only)
            .field("data", &self.data_ptr())
            .finish()
    }
}

impl Tensor {
    /// A new C-contiguous tensor with uninitialised contents (zeros when `zeroed`), on the CPU,
    /// a CUDA device or in pinned host memory (`cuda_host`).
    pub fn empty(dtype: DType, shape: &[i64], device: Device, zeroed: bool) -> Result<Tensor> {
        let storage = Tensor::alloc_storage(dtype, shape, device, zeroed)?;
        Ok(Tensor::over_owned(storage, dtype, shape.to_vec()))
    }

    /// The storage `empty` puts under a new tensor, before anyone shares it: a copy fills it
    /// first and wraps it afterwards (`over_owned`, with the same `dtype` and `shape`), instead of
    /// asking a fresh `Arc` whether it is unique (an atomic operation, tens of cycles).
    pub(crate) fn alloc_storage(
        dtype: DType,
        shape: &[i64],
        device: Device,
        zeroed: bool,
    ) -> Result<Storage> {
        let dtype = dtype.validate()?;
        if dtype.is_subbyte() {
            return Err(Error::UnsupportedDtype(format!(
                "cannot allocate {dtype} tensors: sub-byte types can only be shared"
            )));
        }
        let device = device.validate()?;
        // Fails early, before the size is computed, when the device is unusable.
        alloc::check(device)?;
        let n = layout::numel(shape)?;
        let nbytes = n
            .checked_mul(dtype.item_size() as u64)
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| {
                Error::Overflow(format!(
                    "{n} elements of {dtype} do not fit in the address space"
                ))
            })?;
        alloc::alloc(device, nbytes, zeroed)
    }

    /// A C-contiguous tensor over freshly allocated owned storage.
    pub(crate) fn over_owned(storage: Storage, dtype: DType, shape: Vec<i64>) -> Tensor {
        let data = storage.ptr();
        Tensor {
            storage: Arc::new(storage),
            data,
            byte_offset: 0,
            dtype,
            strides: layout::c_strides(&shape),
            shape,
            read_only: false,
            is_copy: false,
            subbyte_padded: false,
        }
    }

    #[cfg(feature = "ndarray")]
    /// Takes an owned `ndarray` array without copying: the array is kept alive by the tensor.
    pub fn from_ndarray<T: Element>(array: ArrayD<T>) -> Tensor {
        let shape: Vec<i64> = array.shape().iter().map(|&n| n as i64).collect();
        let strides: Vec<i64> = if array.is_empty() {
            layout::c_strides(&shape)
        } else {
            array.strides().iter().map(|&s| s as i64).collect()
        };
        let first = array.as_ptr() as *mut u8;
        let nbytes = array.len() * std::mem::size_of::<T>();
        // The array is moved into the release: nothing else reaches its elements.
        let storage = Storage::foreign_exclusive(
            first,
            nbytes,
            Device::CPU,
            Release::new(move || drop(array)),
        );
        Tensor {
            storage: Arc::new(storage),
            data: first,
            byte_offset: 0,
            dtype: T::DTYPE,
            shape,
            strides,
            read_only: false,
            is_copy: false,
            subbyte_padded: false,
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> Device {
        self.storage.device()
    }
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }
    /// Element strides.
    pub fn strides(&self) -> &[i64] {
        &self.strides
    }
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
    /// Whether the tensor owns a fresh copy made by dlshare.
    pub fn is_copy(&self) -> bool {
        self.is_copy
    }
    /// The DLPack `data` field (see `byte_offset`).
    pub fn raw_data(&self) -> *mut u8 {
        self.data
    }
    pub fn byte_offset(&self) -> u64 {
        self.byte_offset
    }
    /// Address of the first element (`data + byte_offset`).
    pub fn data_ptr(&self) -> *mut u8 {
        self.data.wrapping_add(self.byte_offset as usize)
    }
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&n| n as u64).product()
    }
    /// Bytes covered by the elements (packed size for sub-byte types that are not padded).
    pub fn nbytes(&self) -> u64 {
        if self.dtype.is_subbyte() && !self.subbyte_padded {
            (self.numel() * self.dtype.total_bits()).div_ceil(8)
        } else {
            self.numel() * self.dtype.item_size() as u64
        }
    }
    pub fn is_c_contiguous(&self) -> bool {
        layout::is_c_contiguous(&self.shape, &self.strides)
    }
    pub fn is_f_contiguous(&self) -> bool {
        layout::is_f_contiguous(&self.shape, &self.strides)
    }
    /// Whether both tensors view the same storage.
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The byte range `[lo, hi)` the elements span (empty for zero-size tensors).
    pub fn byte_span(&self) -> (usize, usize) {
        let item = self.dtype.item_size();
        let strides = layout::byte_strides(&self.strides, item).unwrap_or_default();
        let first = self.data_ptr() as usize;
        match layout::byte_extent(&self.shape, &strides, item) {
            Ok((lo, hi)) if lo != hi => (
                first.wrapping_add_signed(lo as isize),
                first.wrapping_add_signed(hi as isize),
            ),
            _ => (first, first),
        }
    }

    /// Whether writes through one tensor can be seen through the other: the same storage, or
    /// overlapping byte spans on the same device (NumPy's `may_share_memory` test), which also
    /// catches memory that reached dlshare twice through different routes (e.g. a re-imported
    /// DLPack export).
    pub fn shares_memory_with(&self, other: &Tensor) -> bool {
        if self.shares_storage_with(other) {
            return true;
        }
        let ((a0, a1), (b0, b1)) = (self.byte_span(), other.byte_span());
        self.device() == other.device() && a0 < b1 && b0 < a1
    }

    #[cfg(feature = "ndarray")]
    fn check_view<T: Element>(&self) -> Result<()> {
        if T::DTYPE != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "tensor has dtype {} but the view asks for {}; convert the tensor first",
                self.dtype,
                T::DTYPE
            )));
        }
        if !self.device().is_host_accessible() {
            return Err(Error::UnsupportedDevice(format!(
                "a {} tensor cannot be viewed from the CPU; copy it to the CPU first",
                self.device()
            )));
        }
        Ok(())
    }

    #[cfg(feature = "ndarray")]
    /// Zero-copy `ndarray` view of the elements (any strides, including negative ones).
    pub fn as_array_view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        self.check_view::<T>()?;
        let (base, shape, strides, flips) = self.positive_layout::<T>();
        // SAFETY: the tensor keeps its storage alive for the borrow; `base` is the lowest
        // element address and the positive strides stay inside the tensor's extent, which was
        // validated when the tensor was built.
        let mut view =
            unsafe { ArrayViewD::from_shape_ptr(IxDyn(&shape).strides(IxDyn(&strides)), base) };
        for axis in flips {
            view.invert_axis(ndarray::Axis(axis));
        }
        Ok(view)
    }

    /// Zero-copy mutable `ndarray` view, where writing cannot be seen through anything else:
    /// this tensor alone holds its storage (no clone, view, handle or DLPack export of it is
    /// alive; `&mut self` keeps new ones from being made while the view lives), and the memory
    /// is dlshare's own (`Tensor::empty`, a copy, `Tensor::from_ndarray`), not a producer's.
    /// Refused otherwise (`InvalidArgument`; copy the tensor first, or see
    /// [`Tensor::as_array_view_mut_unchecked`]), for read-only tensors (`ReadOnly`) and for
    /// zero (broadcast) strides, whose elements alias. A zero-size tensor has nothing to alias.
    ///
    /// The borrow checker keeps a shared and a mutable view of one tensor apart:
    ///
    /// ```compile_fail,E0502
    /// let mut t = dlshare::Tensor::from_ndarray(ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[4])));
    /// let shared = t.as_array_view::<f32>().unwrap();
    /// let mut unique = t.as_array_view_mut::<f32>().unwrap();
    /// unique[[0]] = shared[[0]] + 1.0;
    /// ```
    ///
    /// and a clone (which shares the storage) makes the mutable view refused at run time:
    ///
    /// ```
    /// let mut t = dlshare::Tensor::from_ndarray(ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[4])));
    /// t.as_array_view_mut::<f32>().unwrap()[[0]] = 1.0;
    /// let clone = t.clone();
    /// assert!(t.as_array_view_mut::<f32>().is_err());
    /// drop(clone);
    /// assert!(t.as_array_view_mut::<f32>().is_ok());
    /// ```
    #[cfg(feature = "ndarray")]
    pub fn as_array_view_mut<T: Element>(&mut self) -> Result<ArrayViewMutD<'_, T>> {
        self.check_view_mut::<T>()?;
        let alone = Arc::get_mut(&mut self.storage).is_some_and(|s| s.is_exclusive());
        if !alone && self.numel() > 0 {
            return Err(Error::InvalidArgument(
                "the tensor's memory may be seen through another tensor, handle or DLPack export, \
                 or belongs to its producer; a mutable view needs a tensor that alone holds \
                 memory dlshare allocated: copy it first (convert_tensor with COPY)"
                    .into(),
            ));
        }
        // SAFETY: the storage is reached by this tensor alone and `&mut self` is held for the
        // view's lifetime, so nothing else reads or writes the elements meanwhile.
        Ok(unsafe { self.mutable_view() })
    }

    /// `as_array_view_mut` without the check that this tensor alone reaches the memory (the
    /// read-only, dtype, device and zero-stride checks still apply).
    ///
    /// # Safety
    /// While the view lives, nothing else may read or write its elements: no other tensor,
    /// view, handle or DLPack consumer sharing the memory, and not the producer.
    ///
    /// ```compile_fail,E0133
    /// let mut t = dlshare::Tensor::from_ndarray(ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[4])));
    /// let view = t.as_array_view_mut_unchecked::<f32>();
    /// ```
    #[cfg(feature = "ndarray")]
    pub unsafe fn as_array_view_mut_unchecked<T: Element>(
        &mut self,
    ) -> Result<ArrayViewMutD<'_, T>> {
        self.check_view_mut::<T>()?;
        // SAFETY: forwarded caller contract.
        Ok(unsafe { self.mutable_view() })
    }

    /// The checks every mutable view makes: dtype, device, writable, no aliasing strides.
    #[cfg(feature = "ndarray")]
    fn check_view_mut<T: Element>(&self) -> Result<()> {
        self.check_view::<T>()?;
        if self.read_only {
            return Err(Error::ReadOnly(
                "the tensor is read-only; copy it (convert with COPY) to get writable memory"
                    .into(),
            ));
        }
        if self.numel() > 1
            && self
                .shape
                .iter()
                .zip(&self.strides)
                .any(|(&n, &s)| n > 1 && s == 0)
        {
            return Err(Error::InvalidArgument(
                "a tensor with zero (broadcast) strides cannot be viewed mutably: elements alias"
                    .into(),
            ));
        }
        Ok(())
    }

    /// # Safety
    /// `check_view_mut` passed, and nothing else reads or writes the elements while the view
    /// lives.
    #[cfg(feature = "ndarray")]
    unsafe fn mutable_view<T: Element>(&mut self) -> ArrayViewMutD<'_, T> {
        let (base, shape, strides, flips) = self.positive_layout::<T>();
        // SAFETY: as in `as_array_view` (the storage is alive for the borrow, the positive
        // strides stay inside the validated extent); no two elements share an address (zero
        // strides were refused) and nothing else accesses them (the caller's contract).
        let mut view =
            unsafe { ArrayViewMutD::from_shape_ptr(IxDyn(&shape).strides(IxDyn(&strides)), base) };
        for axis in flips {
            view.invert_axis(ndarray::Axis(axis));
        }
        view
    }

    /// The lowest element address, the shape, the absolute strides and the axes to flip back.
    #[cfg(feature = "ndarray")]
    fn positive_layout<T>(&self) -> (*mut T, Vec<usize>, Vec<usize>, Vec<usize>) {
        let mut base = self.data_ptr() as *mut T;
        let mut flips = Vec::new();
        let empty = self.numel() == 0;
        if empty {
            // A zero-size tensor may have NULL (or unaligned) data; ndarray needs a non-NULL,
            // aligned pointer even when it reads nothing.
            base = std::ptr::NonNull::<T>::dangling().as_ptr();
        }
        for (axis, (&n, &s)) in self.shape.iter().zip(&self.strides).enumerate() {
            if s < 0 && n > 1 && !empty {
                base = base.wrapping_offset(((n - 1) * s) as isize);
                flips.push(axis);
            }
        }
        let shape = self.shape.iter().map(|&n| n as usize).collect();
        let strides = self
            .strides
            .iter()
            .map(|&s| if empty { 0 } else { s.unsigned_abs() as usize })
            .collect();
        (base, shape, strides, flips)
    }

    /// A view of the same storage with a new `shape`, element `strides` (any sign, zero
    /// allowed) and element `offset` of its index-(0, ..., 0) element relative to this tensor's
    /// first element. Every element of the view must lie inside this tensor's element extent
    /// (the range between its lowest and highest element). The view keeps the storage alive,
    /// is read-only when this tensor is, and is not a fresh copy. A zero-size view starts at
    /// this tensor's first element whatever the offset.
    pub fn restride(&self, shape: &[i64], strides: &[i64], offset: i64) -> Result<Tensor> {
        if shape.len() != strides.len() {
            return Err(Error::InvalidArgument(format!(
                "{} strides given for {} dimensions",
                strides.len(),
                shape.len()
            )));
        }
        let n = layout::numel(shape)?;
        if self.dtype.is_subbyte() && !self.subbyte_padded {
            return Err(Error::UnsupportedDtype(format!(
                "packed {} elements have no element addresses; views of them are not supported",
                self.dtype
            )));
        }
        let mut view = Tensor {
            storage: self.storage.clone(),
            data: self.data,
            byte_offset: self.byte_offset,
            dtype: self.dtype,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            read_only: self.read_only,
            is_copy: false,
            subbyte_padded: self.subbyte_padded,
        };
        if n == 0 {
            return Ok(view);
        }
        if self.numel() == 0 {
            return Err(Error::InvalidArgument(format!(
                "a view of shape {shape:?} needs elements, but the tensor (shape {:?}) has none",
                self.shape
            )));
        }
        let (src_lo, src_hi) = layout::extent(&self.shape, &self.strides);
        let (lo, hi) = layout::extent(shape, strides);
        let (lo, hi) = (lo + i128::from(offset), hi + i128::from(offset));
        if lo < src_lo || hi > src_hi {
            return Err(Error::InvalidArgument(format!(
                "a view with shape {shape:?}, strides {strides:?} and offset {offset} reaches \
                 elements {lo}..={hi}, outside the tensor's elements {src_lo}..={src_hi} \
                 (shape {:?}, strides {:?}); shrink the view",
                self.shape, self.strides
            )));
        }
        let item = self.dtype.item_size() as i128;
        let byte_offset = i128::from(self.byte_offset) + i128::from(offset) * item;
        match u64::try_from(byte_offset) {
            Ok(b) => view.byte_offset = b,
            Err(_) => {
                // Before `data`: point `data` at the view's first element instead.
                view.data = self
                    .data_ptr()
                    .wrapping_offset((i128::from(offset) * item) as isize);
                view.byte_offset = 0;
            }
        }
        Ok(view)
    }
}

impl Tensor {
    /// This tensor as a conversion source over `byte_strides` (its strides in bytes, from
    /// `layout::to_byte_strides`): the one place a tensor becomes a `Source`.
    pub(crate) fn source_ref<'a>(&'a self, byte_strides: &'a [i64]) -> SourceRef<'a> {
        SourceRef {
            data: self.data,
            byte_offset: self.byte_offset,
            dtype: self.dtype,
            shape: &self.shape,
            byte_strides,
            device: self.device(),
            read_only: self.read_only,
            byte_swapped: false,
            subbyte_padded: self.subbyte_padded,
        }
    }
}

impl Source {
    /// A source over an existing tensor.
    pub fn of_tensor(t: &Tensor) -> Result<Source> {
        let byte_strides = layout::byte_strides_for(&t.shape, &t.strides, t.dtype.item_size())?;
        Ok(t.source_ref(&byte_strides).to_source())
    }
}
