//! The conversion decision (DESIGN.md §3): given a source array and what the caller asked for,
//! share the memory, copy it (saying why), or refuse (saying why and what to do instead).

use std::sync::Arc;

use crate::device::{Device, device_type};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels;
use crate::layout;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// The three modes users know from PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `torch.from_numpy`: share or fail.
    Share,
    /// `torch.as_tensor`: share when possible, otherwise copy.
    ShareOrCopy,
    /// `torch.tensor`: always copy.
    Copy,
}

/// Why a conversion copied (or, in SHARE mode, why it could not share).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Shared: nothing stood in the way.
    None,
    ReadOnly,
    NegativeStride,
    StrideNotItemMultiple,
    ByteOrder,
    Misaligned,
    DtypeChange,
    DeviceChange,
    CopyRequested,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 9] = [
        Reason::None,
        Reason::ReadOnly,
        Reason::NegativeStride,
        Reason::StrideNotItemMultiple,
        Reason::ByteOrder,
        Reason::Misaligned,
        Reason::DtypeChange,
        Reason::DeviceChange,
        Reason::CopyRequested,
    ];

    /// Stable snake_case code (the Python binding's `.reason`), NUL-terminated for C.
    pub fn c_code(self) -> &'static std::ffi::CStr {
        match self {
            Reason::None => c"none",
            Reason::ReadOnly => c"read_only",
            Reason::NegativeStride => c"negative_stride",
            Reason::StrideNotItemMultiple => c"stride_not_item_multiple",
            Reason::ByteOrder => c"byte_order",
            Reason::Misaligned => c"misaligned",
            Reason::DtypeChange => c"dtype_change",
            Reason::DeviceChange => c"device_change",
            Reason::CopyRequested => c"copy_requested",
        }
    }

    /// Stable snake_case code (the Python binding's `.reason`).
    pub fn code(self) -> &'static str {
        self.c_code().to_str().unwrap_or("none")
    }
}

/// What the caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// Target dtype; `None` keeps the source dtype.
    pub dtype: Option<DType>,
    /// Target device; `None` keeps the source device.
    pub device: Option<Device>,
    /// Share read-only memory as a read-only tensor instead of refusing (SHARE) or copying
    /// (SHARE_OR_COPY).
    pub allow_read_only: bool,
    /// Allow complex -> real casts, which discard the imaginary part.
    pub allow_complex_to_real: bool,
    /// A `CUstream` (as an integer) to order a CUDA copy on; `None`: dlshare's own stream, the
    /// copy complete on return (see `crate::cuda`). Refused when no CUDA device is involved.
    pub stream: Option<usize>,
}

impl Options {
    pub fn new(mode: Mode) -> Options {
        Options {
            mode,
            dtype: None,
            device: None,
            allow_read_only: false,
            allow_complex_to_real: false,
            stream: None,
        }
    }
    pub fn with_dtype(mut self, dtype: DType) -> Options {
        self.dtype = Some(dtype);
        self
    }
    pub fn with_device(mut self, device: Device) -> Options {
        self.device = Some(device);
        self
    }
    pub fn allowing_read_only(mut self) -> Options {
        self.allow_read_only = true;
        self
    }
    pub fn allowing_complex_to_real(mut self) -> Options {
        self.allow_complex_to_real = true;
        self
    }
    pub fn on_stream(mut self, stream: usize) -> Options {
        self.stream = Some(stream);
        self
    }
}

/// The outcome: shared or copied, and why, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub shared: bool,
    pub reason: Reason,
    pub detail: String,
}

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

/// Element strides to byte strides, overflow-checked. A zero-size array touches no memory, so
/// its strides only need to be representable: they saturate instead of failing (an export of
/// a `(0, INT64_MAX)` tensor must re-import).
pub fn byte_strides_for(shape: &[i64], strides: &[i64], item_size: usize) -> Result<Vec<i64>> {
    if shape.contains(&0) {
        let item = i64::try_from(item_size).unwrap_or(i64::MAX);
        return Ok(strides.iter().map(|s| s.saturating_mul(item)).collect());
    }
    layout::byte_strides(strides, item_size)
}

impl Source {
    /// A source over an existing tensor.
    pub fn of_tensor(t: &Tensor) -> Result<Source> {
        Ok(Source {
            data: t.data,
            byte_offset: t.byte_offset,
            dtype: t.dtype,
            shape: t.shape.clone(),
            byte_strides: byte_strides_for(&t.shape, &t.strides, t.dtype.item_size())?,
            device: t.device(),
            read_only: t.read_only,
            byte_swapped: false,
            subbyte_padded: t.subbyte_padded,
        })
    }

    /// Address of the first element.
    pub fn first(&self) -> *mut u8 {
        self.data.wrapping_add(self.byte_offset as usize)
    }

    /// Checks everything that makes a description malformed regardless of mode.
    pub fn validate(&self) -> Result<()> {
        self.dtype.validate()?;
        self.device.validate()?;
        if self.byte_strides.len() != self.shape.len() {
            return Err(Error::InvalidArgument(format!(
                "{} strides given for {} dimensions",
                self.byte_strides.len(),
                self.shape.len()
            )));
        }
        let n = layout::numel(&self.shape)?;
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
                &self.shape,
                &self.byte_strides,
                self.dtype.item_size(),
            )?;
        }
        Ok(())
    }

    fn numel(&self) -> u64 {
        self.shape.iter().map(|&n| n as u64).product()
    }

    /// Everything that stops this memory from being shared as a writable, native tensor, in a
    /// fixed order, each with its explanation.
    fn share_obstacles(&self, allow_read_only: bool) -> Vec<(Reason, String)> {
        let mut found = Vec::new();
        if self.read_only && !allow_read_only {
            found.push((
                Reason::ReadOnly,
                "the memory is read-only (sharing it writable would let writes through); allow \
                 read-only sharing to get a read-only tensor"
                    .to_string(),
            ));
        }
        if self.numel() == 0 {
            return found;
        }
        let item = self.dtype.item_size() as i64;
        let live_axes = || {
            self.shape
                .iter()
                .zip(&self.byte_strides)
                .enumerate()
                .filter(|(_, (n, _))| **n > 1)
        };
        if let Some((axis, (_, s))) = live_axes().find(|(_, (_, s))| **s < 0) {
            found.push((
                Reason::NegativeStride,
                format!(
                    "axis {axis} has a negative stride ({s} bytes): a reversed view (e.g. \
                     a[::-1]) cannot be shared; copy it first (np.ascontiguousarray)"
                ),
            ));
        }
        if let Some((axis, (_, s))) = live_axes().find(|(_, (_, s))| **s % item != 0) {
            found.push((
                Reason::StrideNotItemMultiple,
                format!(
                    "axis {axis} has a byte stride of {s}, not a multiple of the item size \
                     {item}: tensor strides count whole elements; copy it first"
                ),
            ));
        }
        if self.byte_swapped {
            found.push((
                Reason::ByteOrder,
                format!(
                    "the {} data is in non-native byte order; byte-swap it first (astype with \
                     a native dtype)",
                    self.dtype
                ),
            ));
        }
        let align = self.dtype.alignment();
        let addr = self.first() as usize;
        if !addr.is_multiple_of(align) {
            found.push((
                Reason::Misaligned,
                format!(
                    "the data at {addr:#x} is not aligned to {align} bytes as {} needs; copy it \
                     to aligned memory first",
                    self.dtype
                ),
            ));
        }
        found
    }
}

/// Decides what a conversion would do, without doing it. `convert` gives the same answer.
pub fn decide(src: &Source, opts: &Options) -> Result<Decision> {
    src.validate()?;
    let target_dtype = opts.dtype.unwrap_or(src.dtype).validate()?;
    let target_device = opts.device.unwrap_or(src.device).validate()?;
    let dtype_change = target_dtype != src.dtype;
    let device_change = target_device != src.device;
    if opts.stream.is_some() && !crate::cuda::involves_cuda(src.device, target_device) {
        return Err(Error::InvalidArgument(format!(
            "options.stream is set, but streams apply only to copies to or from CUDA devices \
             ({} to {target_device}); pass NULL",
            src.device
        )));
    }
    if opts.mode == Mode::Share {
        if dtype_change {
            return Err(Error::InvalidArgument(format!(
                "SHARE mode (from_numpy) cannot change the dtype ({} to {}); use SHARE_OR_COPY \
                 (as_tensor) or COPY (tensor)",
                src.dtype, target_dtype
            )));
        }
        if device_change {
            return Err(Error::InvalidArgument(format!(
                "SHARE mode (from_numpy) never crosses devices ({} to {}); use SHARE_OR_COPY \
                 (as_tensor) or COPY (tensor)",
                src.device, target_device
            )));
        }
    }
    let obstacles = src.share_obstacles(opts.allow_read_only);
    let (reason, detail) = match opts.mode {
        Mode::Share => match obstacles.into_iter().next() {
            Some((reason, text)) => {
                return Err(Error::CannotShare(reason, format!("cannot share: {text}")));
            }
            None => (Reason::None, String::new()),
        },
        Mode::ShareOrCopy if device_change => (
            Reason::DeviceChange,
            format!(
                "the target device is {target_device}, the data is on {}",
                src.device
            ),
        ),
        Mode::ShareOrCopy if dtype_change => (
            Reason::DtypeChange,
            format!(
                "the target dtype is {target_dtype}, the data is {}",
                src.dtype
            ),
        ),
        Mode::ShareOrCopy => obstacles
            .into_iter()
            .next()
            .unwrap_or((Reason::None, String::new())),
        Mode::Copy => (
            Reason::CopyRequested,
            "COPY mode (tensor) always copies".to_string(),
        ),
    };
    if reason == Reason::None {
        let how = if src.read_only {
            "read-only"
        } else {
            "writable"
        };
        return Ok(Decision {
            shared: true,
            reason,
            detail: format!(
                "shared: {how} {} memory on {}, no copy",
                src.dtype, src.device
            ),
        });
    }
    check_copy_possible(src, target_dtype, copy_destination(src, opts), opts)?;
    Ok(Decision {
        shared: false,
        reason,
        detail: format!("copied ({}): {detail}", reason.code()),
    })
}

/// Where a copy goes: the requested device, else the source's device — except that memory the
/// CPU reads directly (pinned, managed) is copied into ordinary CPU memory.
fn copy_destination(src: &Source, opts: &Options) -> Device {
    opts.device.unwrap_or(if src.device.is_host_accessible() {
        Device::CPU
    } else {
        src.device
    })
}

fn check_copy_possible(src: &Source, to: DType, device: Device, opts: &Options) -> Result<()> {
    if !src.device.is_host_accessible() || device.device_type != device_type::CPU {
        crate::cuda::check_copy(src.device, device)?;
    }
    if src.dtype.is_subbyte() {
        return Err(Error::UnsupportedDtype(format!(
            "{} elements are smaller than a byte and can only be shared, not copied",
            src.dtype
        )));
    }
    // The copy's size, so that `explain` reports an impossible copy as `convert` would.
    let n = layout::numel(&src.shape)?;
    n.checked_mul(to.item_size() as u64)
        .filter(|&b| b <= isize::MAX as u64)
        .ok_or_else(|| {
            Error::Overflow(format!(
                "a copy of {n} elements of {to} does not fit in the address space"
            ))
        })?;
    if to != src.dtype || src.byte_swapped {
        let kind = |d: DType| d.kind();
        if src.byte_swapped && kind(src.dtype).is_none() {
            return Err(Error::UnsupportedDtype(format!(
                "cannot byte-swap {} elements",
                src.dtype
            )));
        }
        if to != src.dtype {
            kernels::can_cast(src.dtype, to)?;
            let complex = |d: DType| kind(d).is_some_and(|k| k.is_complex());
            if complex(src.dtype) && !complex(to) && !opts.allow_complex_to_real {
                return Err(Error::InvalidArgument(format!(
                    "casting {} to {to} discards the imaginary part; allow complex-to-real \
                     casts to do it anyway, or take the real part first",
                    src.dtype
                )));
            }
        }
    }
    Ok(())
}

/// Converts `src` per `opts`. When sharing, `owner` is called once to get the storage the new
/// tensor keeps alive. When copying, `owner` is called (and dropped) only after the copy
/// succeeded, so a foreign producer is released exactly then. On any error `owner` is never
/// called: the caller keeps ownership of the source.
pub fn convert(
    src: &Source,
    opts: &Options,
    owner: impl FnOnce() -> Arc<Storage>,
) -> Result<(Tensor, Decision)> {
    let decision = decide(src, opts)?;
    if decision.shared {
        let item = src.dtype.item_size() as i64;
        let c = layout::c_strides(&src.shape);
        let strides = src
            .byte_strides
            .iter()
            .zip(&src.shape)
            .zip(&c)
            .map(|((&s, &n), &cs)| {
                if n <= 1 && s % item != 0 {
                    cs
                } else {
                    s / item
                }
            })
            .collect();
        let tensor = Tensor {
            storage: owner(),
            data: src.data,
            byte_offset: src.byte_offset,
            dtype: src.dtype,
            shape: src.shape.clone(),
            strides,
            read_only: src.read_only,
            is_copy: false,
            subbyte_padded: src.subbyte_padded,
        };
        return Ok((tensor, decision));
    }
    let to = opts.dtype.unwrap_or(src.dtype);
    let destination = copy_destination(src, opts);
    if !src.device.is_host_accessible() || destination.device_type != device_type::CPU {
        // CUDA or pinned memory on either side; `owner` is called when the source is free
        let out = crate::cuda::copy(src, to, destination, opts.stream, owner)?;
        return Ok((out, decision));
    }
    let mut out = Tensor::empty(to, &src.shape, destination, false)?;
    let kernel_src = kernels::Source {
        ptr: src.first(),
        dtype: src.dtype,
        shape: &src.shape,
        byte_strides: &src.byte_strides,
        byte_swapped: src.byte_swapped,
    };
    let storage = Arc::get_mut(&mut out.storage).expect("a fresh tensor has one owner");
    let dst = storage
        .owned_bytes_mut()
        .expect("Tensor::empty allocates owned storage");
    // SAFETY: `src` was validated (extent inside the address space, data non-NULL when
    // non-empty) and its producer guarantees the memory is readable while we hold it; `dst` is
    // the fresh tensor's own allocation of exactly numel * item_size bytes.
    unsafe { kernels::copy_to_contiguous(&kernel_src, dst, to)? };
    out.is_copy = true;
    drop(owner());
    Ok((out, decision))
}

/// `tensor.to(...)`-style conversion of an existing tensor.
pub fn convert_tensor(t: &Tensor, opts: &Options) -> Result<(Tensor, Decision)> {
    let src = Source::of_tensor(t)?;
    convert(&src, opts, || t.storage.clone())
}
