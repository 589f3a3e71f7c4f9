//! The conversion decision (docs/design.md, "The decision"): given a source array and what the
//! caller asked for, share the memory, copy it (saying why), or refuse (saying why and what to
//! do instead).

use std::fmt;
use std::sync::Arc;

use crate::device::{Device, device_type};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels;
use crate::layout;
pub use crate::reason::Reason;
pub use crate::source::Source;
use crate::source::SourceRef;
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

/// The outcome: shared or copied, and why. The explanation in words is built only when asked
/// for (`Decision::detail`): `decide` keeps just the few values it needs, so a conversion whose
/// caller never reads the text does not pay for formatting it.
#[derive(Clone)]
pub struct Decision {
    pub shared: bool,
    pub reason: Reason,
    detail: Detail,
}

/// The values behind `Decision::detail`.
#[derive(Clone, PartialEq, Eq)]
enum Detail {
    Shared {
        read_only: bool,
        dtype: DType,
        device: Device,
    },
    DeviceChange {
        from: Device,
        to: Device,
    },
    DtypeChange {
        from: DType,
        to: DType,
    },
    Obstacle(Obstacle),
    CopyRequested,
    /// Text made elsewhere: a SHARE refusal reported as a decision.
    Text(String),
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Shared {
                read_only,
                dtype,
                device,
            } => {
                let how = if *read_only { "read-only" } else { "writable" };
                write!(f, "shared: {how} {dtype} memory on {device}, no copy")
            }
            Detail::DeviceChange { from, to } => write!(
                f,
                "copied ({}): the target device is {to}, the data is on {from}",
                Reason::DeviceChange.code()
            ),
            Detail::DtypeChange { from, to } => write!(
                f,
                "copied ({}): the target dtype is {to}, the data is {from}",
                Reason::DtypeChange.code()
            ),
            Detail::Obstacle(o) => write!(f, "copied ({}): {o}", o.reason().code()),
            Detail::CopyRequested => write!(
                f,
                "copied ({}): COPY mode (tensor) always copies",
                Reason::CopyRequested.code()
            ),
            Detail::Text(text) => f.write_str(text),
        }
    }
}

impl Decision {
    /// The decision in words, e.g. "shared: writable float32 memory on cpu, no copy" or
    /// "copied (negative_stride): axis 0 has a negative stride ...".
    pub fn detail(&self) -> String {
        self.detail.to_string()
    }

    /// A decision with a ready-made explanation (a SHARE refusal reported as a decision).
    pub fn with_detail(shared: bool, reason: Reason, detail: String) -> Decision {
        Decision {
            shared,
            reason,
            detail: Detail::Text(detail),
        }
    }
}

/// Equal when `shared`, `reason` and the text are (the same values give the same text, so the
/// text is formatted only when the values differ).
impl PartialEq for Decision {
    fn eq(&self, other: &Decision) -> bool {
        self.shared == other.shared
            && self.reason == other.reason
            && (self.detail == other.detail || self.detail() == other.detail())
    }
}

impl Eq for Decision {}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("shared", &self.shared)
            .field("reason", &self.reason)
            .field("detail", &self.detail())
            .finish()
    }
}

/// The first thing that stops memory from being shared as a writable, native tensor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Obstacle {
    ReadOnly,
    NegativeStride {
        axis: usize,
        stride: i64,
    },
    StrideNotItemMultiple {
        axis: usize,
        stride: i64,
        item: i64,
    },
    ByteOrder {
        dtype: DType,
    },
    Misaligned {
        addr: usize,
        align: usize,
        dtype: DType,
    },
}

impl Obstacle {
    fn reason(self) -> Reason {
        match self {
            Obstacle::ReadOnly => Reason::ReadOnly,
            Obstacle::NegativeStride { .. } => Reason::NegativeStride,
            Obstacle::StrideNotItemMultiple { .. } => Reason::StrideNotItemMultiple,
            Obstacle::ByteOrder { .. } => Reason::ByteOrder,
            Obstacle::Misaligned { .. } => Reason::Misaligned,
        }
    }
}

/// The obstacle's explanation.
impl fmt::Display for Obstacle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Obstacle::ReadOnly => f.write_str(
                "the memory is read-only (sharing it writable would let writes through); allow \
                 read-only sharing to get a read-only tensor",
            ),
            Obstacle::NegativeStride { axis, stride: s } => write!(
                f,
                "axis {axis} has a negative stride ({s} bytes): a reversed view (e.g. \
                 a[::-1]) cannot be shared; copy it first (np.ascontiguousarray)"
            ),
            Obstacle::StrideNotItemMultiple {
                axis,
                stride: s,
                item,
            } => write!(
                f,
                "axis {axis} has a byte stride of {s}, not a multiple of the item size \
                 {item}: tensor strides count whole elements; copy it first"
            ),
            Obstacle::ByteOrder { dtype } => write!(
                f,
                "the {dtype} data is in non-native byte order; byte-swap it first (astype with \
                 a native dtype)"
            ),
            Obstacle::Misaligned { addr, align, dtype } => write!(
                f,
                "the data at {addr:#x} is not aligned to {align} bytes as {dtype} needs; copy it \
                 to aligned memory first"
            ),
        }
    }
}

impl SourceRef<'_> {
    /// The first of everything that stops this memory from being shared as a writable, native
    /// tensor, in a fixed order. `numel` is the element count `validate` returned.
    fn share_obstacle(&self, numel: u64, allow_read_only: bool) -> Option<Obstacle> {
        if self.read_only && !allow_read_only {
            return Some(Obstacle::ReadOnly);
        }
        if numel == 0 {
            return None;
        }
        let item = self.dtype.item_size() as i64;
        let live_axes = || {
            self.shape
                .iter()
                .zip(self.byte_strides)
                .enumerate()
                .filter(|(_, (n, _))| **n > 1)
                .map(|(axis, (_, &stride))| (axis, stride))
        };
        if let Some((axis, stride)) = live_axes().find(|&(_, s)| s < 0) {
            return Some(Obstacle::NegativeStride { axis, stride });
        }
        if let Some((axis, stride)) = live_axes().find(|&(_, s)| s % item != 0) {
            return Some(Obstacle::StrideNotItemMultiple { axis, stride, item });
        }
        if self.byte_swapped {
            return Some(Obstacle::ByteOrder { dtype: self.dtype });
        }
        let align = self.dtype.alignment();
        let addr = self.first() as usize;
        if !addr.is_multiple_of(align) {
            return Some(Obstacle::Misaligned {
                addr,
                align,
                dtype: self.dtype,
            });
        }
        None
    }
}

/// Decides what a conversion would do, without doing it. `convert` gives the same answer.
pub fn decide(src: &Source, opts: &Options) -> Result<Decision> {
    decide_ref(&src.borrowed(), opts)
}

/// `decide` over a borrowed description.
pub(crate) fn decide_ref(src: &SourceRef<'_>, opts: &Options) -> Result<Decision> {
    let numel = src.validate()?;
    decide_valid(src, numel, opts)
}

/// `decide` for a source that passed `SourceRef::validate` (which returned `numel`).
fn decide_valid(src: &SourceRef<'_>, numel: u64, opts: &Options) -> Result<Decision> {
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
    let copied = match opts.mode {
        Mode::Share => match src.share_obstacle(numel, opts.allow_read_only) {
            Some(o) => {
                return Err(Error::CannotShare(o.reason(), format!("cannot share: {o}")));
            }
            None => None,
        },
        Mode::ShareOrCopy if device_change => Some((
            Reason::DeviceChange,
            Detail::DeviceChange {
                from: src.device,
                to: target_device,
            },
        )),
        Mode::ShareOrCopy if dtype_change => Some((
            Reason::DtypeChange,
            Detail::DtypeChange {
                from: src.dtype,
                to: target_dtype,
            },
        )),
        Mode::ShareOrCopy => src
            .share_obstacle(numel, opts.allow_read_only)
            .map(|o| (o.reason(), Detail::Obstacle(o))),
        Mode::Copy => Some((Reason::CopyRequested, Detail::CopyRequested)),
    };
    let Some((reason, detail)) = copied else {
        return Ok(Decision {
            shared: true,
            reason: Reason::None,
            detail: Detail::Shared {
                read_only: src.read_only,
                dtype: src.dtype,
                device: src.device,
            },
        });
    };
    check_copy_possible(src, numel, target_dtype, copy_destination(src, opts), opts)?;
    Ok(Decision {
        shared: false,
        reason,
        detail,
    })
}

/// Where a copy goes: the requested device, else the source's device — except that memory the
/// CPU reads directly (pinned, managed) is copied into ordinary CPU memory.
fn copy_destination(src: &SourceRef<'_>, opts: &Options) -> Device {
    opts.device.unwrap_or(if src.device.is_host_accessible() {
        Device::CPU
    } else {
        src.device
    })
}

fn check_copy_possible(
    src: &SourceRef<'_>,
    n: u64,
    to: DType,
    device: Device,
    opts: &Options,
) -> Result<()> {
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
    n.checked_mul(to.item_size() as u64)
        .filter(|&b| b <= isize::MAX as u64)
        .ok_or_else(|| {
            Error::Overflow(format!(
                "a copy of {n} elements of {to} does not fit in the address space"
            ))
        })?;
    if to != src.dtype || src.byte_swapped {
        let (from_kind, to_kind) = (src.dtype.kind(), to.kind());
        if src.byte_swapped && from_kind.is_none() {
            return Err(Error::UnsupportedDtype(format!(
                "cannot byte-swap {} elements",
                src.dtype
            )));
        }
        if to != src.dtype {
            if from_kind.is_none() || to_kind.is_none() {
                kernels::can_cast(src.dtype, to)?; // says which of the two it cannot cast
            }
            let complex = |k: Option<crate::dtype::Kind>| k.is_some_and(|k| k.is_complex());
            if complex(from_kind) && !complex(to_kind) && !opts.allow_complex_to_real {
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

/// Whoever keeps a source's memory alive, for `convert_ref`: a closure that hands out the
/// storage (the public `convert`), or something that can also let go of the memory without
/// building a storage first (a raw view's release callback, after a copy).
pub(crate) trait Owner {
    /// The storage a tensor sharing the memory keeps alive.
    fn share(self) -> Arc<Storage>;
    /// Called once a copy succeeded: the source memory is no longer needed.
    fn copied(self);
}

impl<F: FnOnce() -> Arc<Storage>> Owner for F {
    fn share(self) -> Arc<Storage> {
        self()
    }
    fn copied(self) {
        drop(self());
    }
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
    convert_ref(&src.borrowed(), opts, owner)
}

/// `convert` over a borrowed description; `owner` is used as `convert` uses its closure
/// (`Owner::share` where that calls it to share or to keep a CUDA source alive,
/// `Owner::copied` where it calls and drops it after a CPU copy).
pub(crate) fn convert_ref(
    src: &SourceRef<'_>,
    opts: &Options,
    owner: impl Owner,
) -> Result<(Tensor, Decision)> {
    let numel = src.validate()?;
    let decision = decide_valid(src, numel, opts)?;
    if decision.shared {
        let item = src.dtype.item_size() as i64;
        // Element strides; an axis of extent <= 1 whose byte stride is not a whole number of
        // elements gets its C-order stride (any stride is right for such an axis).
        let mut strides = layout::c_strides(src.shape);
        for ((out, &s), &n) in strides.iter_mut().zip(src.byte_strides).zip(src.shape) {
            if !(n <= 1 && s % item != 0) {
                *out = s / item;
            }
        }
        let tensor = Tensor {
            storage: owner.share(),
            data: src.data,
            byte_offset: src.byte_offset,
            dtype: src.dtype,
            shape: src.shape.to_vec(),
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
        let out = crate::transfer::copy(&src.to_source(), to, destination, opts.stream, || {
            owner.share()
        })?;
        return Ok((out, decision));
    }
    // What `Tensor::empty` would check, `decide` has: `to` is a valid dtype of whole bytes (a
    // sub-byte source or target is refused), `numel * item_size` fits in `isize`, and the
    // destination is the CPU.
    let nbytes = numel as usize * to.item_size();
    let mut storage = Storage::alloc_cpu(nbytes, false)?;
    let kernel_src = kernels::Source {
        ptr: src.first(),
        dtype: src.dtype,
        shape: src.shape,
        byte_strides: src.byte_strides,
        byte_swapped: src.byte_swapped,
    };
    let dst = storage
        .owned_bytes_mut()
        .expect("Storage::alloc_cpu allocates owned storage");
    // SAFETY: `src` was validated (extent inside the address space, data non-NULL when
    // non-empty) and its producer guarantees the memory is readable while we hold it; `dst` is
    // the fresh storage's own allocation of exactly numel * item_size bytes.
    unsafe { kernels::copy_cast_checked(&kernel_src, dst, to)? };
    let mut out = Tensor::over_owned(storage, to, src.shape.to_vec());
    out.is_copy = true;
    owner.copied();
    Ok((out, decision))
}

/// `tensor.to(...)`-style conversion of an existing tensor.
pub fn convert_tensor(t: &Tensor, opts: &Options) -> Result<(Tensor, Decision)> {
    let mut byte_strides = layout::Dims::from_slice(&t.strides);
    layout::to_byte_strides(&t.shape, t.dtype.item_size(), &mut byte_strides)?;
    let src = t.source_ref(&byte_strides);
    convert_ref(&src, opts, || t.storage.clone())
}
