//! Conversion options, decisions, raw views, and conversions of views and existing tensors.

use std::ffi::{c_char, c_void};

use super::handles::{self, dlshare_tensor};
use super::{arg, boundary, dlshare_reason, dlshare_status, out};
use std::sync::Arc;

use crate::convert::{self, Decision, Mode, Options, Source};
use crate::dlpack::{DLDataType, DLDevice};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::{self, Dims};
use crate::source::SourceRef;
use crate::storage::{Release, Storage};
use crate::tensor::Tensor;

/// Conversion modes, as PyTorch users know them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dlshare_mode {
    /// `torch.from_numpy`: share the memory or fail with DLSHARE_ERR_CANNOT_SHARE.
    DLSHARE_MODE_SHARE = 0,
    /// `torch.as_tensor`: share when possible, otherwise copy (always copy for a dtype or device
    /// change).
    DLSHARE_MODE_SHARE_OR_COPY = 1,
    /// `torch.tensor`: always copy.
    DLSHARE_MODE_COPY = 2,
}

/// What a conversion should produce. Start from `dlshare_options_init(mode)` and set fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_options {
    /// A `dlshare_mode` value (stored as an integer so that an invalid value is reported, not
    /// undefined behaviour).
    pub mode: i32,
    /// Convert to `dtype` (SHARE mode accepts only the source's own dtype).
    pub has_dtype: bool,
    pub dtype: DLDataType,
    /// Place the result on `device` (SHARE mode accepts only the source's own device).
    pub has_device: bool,
    pub device: DLDevice,
    /// Share read-only memory as a read-only tensor instead of refusing (SHARE) or copying
    /// (SHARE_OR_COPY).
    pub allow_read_only: bool,
    /// Allow complex -> real casts, which discard the imaginary part.
    pub allow_complex_to_real: bool,
    /// A `CUstream` of the CUDA side of a copy (the target device for host->device and
    /// device->device, the source device for device->host) to order the copy on: it runs after
    /// the work already queued there (and after dlshare's), may still be running when the call
    /// returns, and dlshare keeps the source alive until it is done (copies into host memory
    /// always finish before returning). NULL: dlshare's own stream, the copy complete when the
    /// call returns. Must be NULL when neither side is a CUDA device.
    pub stream: *mut c_void,
}

/// What a conversion did (or would do): shared or copied, why, and a readable explanation.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct dlshare_decision {
    /// true when the result shares the source's memory.
    pub shared: bool,
    /// Why it copied (DLSHARE_REASON_NONE when shared).
    pub reason: dlshare_reason,
    /// A NUL-terminated sentence, e.g. "copied (negative_stride): axis 0 has a negative stride".
    pub detail: [c_char; 256],
}

/// `dlshare_view.flags` bit: the memory must not be written.
pub const DLSHARE_VIEW_READ_ONLY: u32 = 1;
/// `dlshare_view.flags` bit: elements are stored in non-native byte order.
pub const DLSHARE_VIEW_BYTE_SWAPPED: u32 = 2;

/// Foreign memory described NumPy-style (the C form of `__array_interface__`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dlshare_view {
    /// Address of the element at index (0, ..., 0). May be NULL only for zero-size arrays.
    pub data: *mut c_void,
    pub dtype: DLDataType,
    pub ndim: i32,
    /// `ndim` extents (may be NULL when ndim == 0).
    pub shape: *const i64,
    /// `ndim` strides in **bytes**, or NULL for C-contiguous.
    pub byte_strides: *const i64,
    pub device: DLDevice,
    /// DLSHARE_VIEW_READ_ONLY | DLSHARE_VIEW_BYTE_SWAPPED.
    pub flags: u32,
    /// Called once with `release_ctx` when dlshare no longer needs the memory: when the last
    /// tensor sharing it is released, or right after a copy. Never called when the call fails.
    /// NULL: the caller keeps the memory alive for as long as any tensor shares it.
    pub release: Option<unsafe extern "C" fn(*mut c_void)>,
    pub release_ctx: *mut c_void,
}

/// Default options for `mode` (a `dlshare_mode` value, taken as an integer so that an invalid
/// value is reported by the conversion, not undefined behaviour): no dtype or device change,
/// read-only memory not shared, no complex-to-real casts, no stream.
#[unsafe(no_mangle)]
pub extern "C" fn dlshare_options_init(mode: i32) -> dlshare_options {
    dlshare_options {
        mode,
        has_dtype: false,
        dtype: DLDataType {
            code: 0,
            bits: 0,
            lanes: 0,
        },
        has_device: false,
        device: DLDevice {
            device_type: 0,
            device_id: 0,
        },
        allow_read_only: false,
        allow_complex_to_real: false,
        stream: std::ptr::null_mut(),
    }
}

/// Reads C options; NULL means `dlshare_options_init(DLSHARE_MODE_SHARE_OR_COPY)`.
pub(crate) fn options_from(o: *const dlshare_options) -> Result<Options> {
    // SAFETY: the public functions document that a non-NULL options pointer is valid.
    let Some(o) = (unsafe { o.as_ref() }) else {
        return Ok(Options::new(Mode::ShareOrCopy));
    };
    let mode = match o.mode {
        0 => Mode::Share,
        1 => Mode::ShareOrCopy,
        2 => Mode::Copy,
        m => {
            return Err(Error::InvalidArgument(format!(
                "options.mode is {m}; use DLSHARE_MODE_SHARE (0), DLSHARE_MODE_SHARE_OR_COPY (1) \
                 or DLSHARE_MODE_COPY (2)"
            )));
        }
    };
    Ok(Options {
        mode,
        dtype: o.has_dtype.then(|| o.dtype.into()),
        device: o.has_device.then(|| o.device.into()),
        allow_read_only: o.allow_read_only,
        allow_complex_to_real: o.allow_complex_to_real,
        stream: (!o.stream.is_null()).then_some(o.stream as usize),
    })
}

/// Writes a decision to an optional output. The text is formatted only when there is one.
pub(crate) fn write_decision(decision_out: *mut dlshare_decision, d: &Decision) {
    // SAFETY: the public functions document that a non-NULL decision pointer is writable.
    let Some(out) = (unsafe { decision_out.as_mut() }) else {
        return;
    };
    let mut detail = [0 as c_char; 256];
    for (slot, byte) in detail.iter_mut().zip(d.detail().bytes().take(255)) {
        *slot = byte as c_char;
    }
    *out = dlshare_decision {
        shared: d.shared,
        reason: d.reason.into(),
        detail,
    };
}

/// In SHARE mode a refusal still fills the decision (shared = false, reason = the obstacle).
pub(crate) fn write_refusal(decision_out: *mut dlshare_decision, e: &Error) {
    if decision_out.is_null() {
        return;
    }
    if let Error::CannotShare(reason, text) = e {
        write_decision(
            decision_out,
            &Decision::with_detail(false, *reason, text.clone()),
        );
    }
}

/// Runs a conversion-like body and, on a SHARE refusal, reports the obstacle in the decision.
pub(crate) fn deciding(
    decision_out: *mut dlshare_decision,
    body: impl FnOnce() -> Result<Decision>,
) -> dlshare_status {
    boundary(|| match body() {
        Ok(d) => {
            write_decision(decision_out, &d);
            Ok(())
        }
        Err(e) => {
            write_refusal(decision_out, &e);
            Err(e)
        }
    })
}

/// A C view's shape and byte strides, copied (so that what is checked is what is used, whatever
/// the caller's arrays do later) into inline storage, and its validated dtype.
struct ViewParts {
    shape: Dims,
    byte_strides: Dims,
    dtype: DType,
}

impl ViewParts {
    /// Reads and checks a C view's fields (not yet its memory: see `Source::validate`).
    fn read(v: &dlshare_view) -> Result<ViewParts> {
        if v.ndim < 0 || v.ndim as usize > layout::MAX_NDIM {
            return Err(Error::InvalidArgument(format!(
                "view.ndim is {}; views have 0..={} dimensions",
                v.ndim,
                layout::MAX_NDIM
            )));
        }
        let ndim = v.ndim as usize;
        let read = |p: *const i64, what: &str| -> Result<Dims> {
            if ndim == 0 {
                return Ok(Dims::zeros(0));
            }
            if p.is_null() {
                return Err(Error::NullArgument(format!(
                    "view.{what} is NULL but ndim is {ndim}"
                )));
            }
            // SAFETY: documented contract: non-NULL shape/strides hold `ndim` values.
            Ok(Dims::from_slice(unsafe {
                std::slice::from_raw_parts(p, ndim)
            }))
        };
        let shape = read(v.shape, "shape")?;
        layout::numel(&shape)?;
        let dtype = DType::from(v.dtype).validate()?;
        let byte_strides = if v.byte_strides.is_null() {
            let mut strides = Dims::zeros(ndim);
            layout::c_strides_into(&shape, &mut strides);
            layout::to_byte_strides(&shape, dtype.item_size(), &mut strides)?;
            strides
        } else {
            read(v.byte_strides, "byte_strides")?
        };
        if v.flags & !(DLSHARE_VIEW_READ_ONLY | DLSHARE_VIEW_BYTE_SWAPPED) != 0 {
            return Err(Error::InvalidArgument(format!(
                "view.flags {:#x} has unknown bits; use DLSHARE_VIEW_READ_ONLY and \
                 DLSHARE_VIEW_BYTE_SWAPPED only",
                v.flags
            )));
        }
        Ok(ViewParts {
            shape,
            byte_strides,
            dtype,
        })
    }

    /// The view as a source over these parts.
    fn source<'a>(&'a self, v: &dlshare_view) -> SourceRef<'a> {
        SourceRef {
            data: v.data.cast(),
            byte_offset: 0,
            dtype: self.dtype,
            shape: &self.shape,
            byte_strides: &self.byte_strides,
            device: v.device.into(),
            read_only: v.flags & DLSHARE_VIEW_READ_ONLY != 0,
            byte_swapped: v.flags & DLSHARE_VIEW_BYTE_SWAPPED != 0 && self.dtype.item_size() > 1,
            subbyte_padded: false,
        }
    }
}

/// Reads a C view as a `Source` (not yet validated against its memory: see `Source::validate`).
pub(crate) fn view_source(v: &dlshare_view) -> Result<Source> {
    let parts = ViewParts::read(v)?;
    Ok(parts.source(v).to_source())
}

/// The owner of a view's memory: its release callback, run once when a tensor sharing the
/// memory lets go of it, or right after a copy (without building a storage for that).
struct ViewOwner {
    data: *mut u8,
    device: crate::device::Device,
    release: Option<unsafe extern "C" fn(*mut c_void)>,
    ctx: *mut c_void,
}

impl convert::Owner for ViewOwner {
    fn share(self) -> Arc<Storage> {
        // SAFETY: the caller gave us this callback to be called once with its context, from
        // any thread, when the memory is no longer needed (`dlshare_view.release`); this
        // owner is consumed here, so the callback is handed to exactly one `Release`.
        let release = unsafe { Release::callback(self.release, self.ctx) };
        Arc::new(Storage::foreign(self.data, 0, self.device, release))
    }

    fn copied(self) {
        if let Some(f) = self.release {
            // SAFETY: as above; the copy is done, and this owner is consumed here, so this is
            // the callback's only call.
            unsafe { f(self.ctx) };
        }
    }
}

/// Wraps foreign memory described by `view` as a tensor, per `options` (NULL = SHARE_OR_COPY).
///
/// On success `*out` is a new handle owned by the caller (release it with
/// `dlshare_tensor_release`) and `view->release(view->release_ctx)` will run exactly once: when
/// the last tensor sharing the memory is released, or before this function returns if it
/// copied. On failure nothing is called and `*out` is untouched. `decision_out` may be NULL;
/// when given it is filled on success, and on DLSHARE_ERR_CANNOT_SHARE with the obstacle.
///
/// # Safety
/// `view` must point to a valid `dlshare_view` whose memory is readable (and writable unless
/// flagged read-only) for as long as dlshare holds it; `options` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_from_view(
    view: *const dlshare_view,
    options: *const dlshare_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract for `view` and `tensor_out`.
        let (v, slot) = unsafe { (arg(view, "view")?, out(tensor_out, "tensor_out")?) };
        let (tensor, decision, reservation) =
            import_view(v, || Ok((options_from(options)?, handles::reserve()?)))?;
        slot.write(reservation.fill(tensor));
        Ok(decision)
    })
}

/// The conversion behind `dlshare_tensor_from_view`. The view is read and checked first, then
/// `prepare` gives the options and whatever else the caller needs before anything changes hands
/// (a handle slot), so errors come in the order `dlshare_explain_view` reports them: the view's,
/// then the options'. On success `v.release` will run exactly once (when the memory is no
/// longer needed); on failure it never runs.
pub(crate) fn import_view<P>(
    v: &dlshare_view,
    prepare: impl FnOnce() -> Result<(Options, P)>,
) -> Result<(Tensor, Decision, P)> {
    let parts = ViewParts::read(v)?;
    let (opts, prepared) = prepare()?;
    let opts = &opts;
    let src = parts.source(v);
    let owner = ViewOwner {
        data: src.data,
        device: src.device,
        release: v.release,
        ctx: v.release_ctx,
    };
    let (tensor, decision) = convert::convert_ref(&src, opts, owner)?;
    Ok((tensor, decision, prepared))
}

/// Says what `dlshare_tensor_from_view` would do with the same arguments, converting nothing
/// and calling no release callback. A SHARE refusal returns DLSHARE_ERR_CANNOT_SHARE and fills
/// `decision_out` with the obstacle.
///
/// # Safety
/// As for `dlshare_tensor_from_view`; `decision_out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_explain_view(
    view: *const dlshare_view,
    options: *const dlshare_options,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let (v, _) = unsafe { (arg(view, "view")?, out(decision_out, "decision_out")?) };
        convert::decide(&view_source(v)?, &options_from(options)?)
    })
}

/// Converts an existing tensor (`tensor.to(dtype)` style): shares it (a new handle to the same
/// memory) when the options allow, otherwise copies. `*tensor_out` is a new handle owned by the
/// caller; `tensor` stays owned by the caller.
///
/// # Safety
/// `options` NULL or valid; `tensor_out` writable; `decision_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_tensor_convert(
    tensor: *const dlshare_tensor,
    options: *const dlshare_options,
    tensor_out: *mut *mut dlshare_tensor,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        let slot = unsafe { out(tensor_out, "tensor_out")? };
        let t = handles::get(tensor)?;
        let reservation = handles::reserve()?;
        let (converted, decision) = convert::convert_tensor(&t, &options_from(options)?)?;
        slot.write(reservation.fill(converted));
        Ok(decision)
    })
}

/// Says what `dlshare_tensor_convert` would do, converting nothing.
///
/// # Safety
/// `options` NULL or valid; `decision_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_explain_tensor(
    tensor: *const dlshare_tensor,
    options: *const dlshare_options,
    decision_out: *mut dlshare_decision,
) -> dlshare_status {
    deciding(decision_out, || {
        // SAFETY: documented contract.
        unsafe { out(decision_out, "decision_out")? };
        let t = handles::get(tensor)?;
        // Options first, as `dlshare_tensor_convert` reads them: both report the same error.
        let opts = options_from(options)?;
        convert::decide(&Source::of_tensor(&t)?, &opts)
    })
}
