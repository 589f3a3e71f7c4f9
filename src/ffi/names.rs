//! Names of dtypes and devices, and the NumPy typestr spelling, for bindings (so that no binding
//! re-implements the tables in `dtype.rs` and `device.rs`).

use std::ffi::{CStr, c_char};

use super::{arg, boundary, dlshare_status, out};
use crate::device::Device;
use crate::dlpack::{DLDataType, DLDevice};
use crate::dtype::DType;
use crate::error::{Error, Result};

fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    // The raw pointer, not `arg`'s reference to one c_char: the string reaches past its first
    // byte (Miri reports reading it through the reference as undefined behaviour).
    // SAFETY: documented contract; checked non-NULL.
    let s = unsafe {
        arg(p, name)?;
        CStr::from_ptr(p)
    };
    s.to_str()
        .map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8")))
}

/// Copies `s` into `buf_out` (capacity `len`, NUL-terminated); refuses when it does not fit.
fn write_text(s: &str, buf_out: *mut c_char, len: usize) -> Result<()> {
    if buf_out.is_null() {
        return Err(Error::NullArgument("buf_out is NULL".into()));
    }
    if s.len() + 1 > len {
        return Err(Error::InvalidArgument(format!(
            "a buffer of {len} bytes cannot hold '{s}' and its NUL; pass at least {}",
            s.len() + 1
        )));
    }
    // SAFETY: `buf_out` has `len` >= s.len() + 1 writable bytes per the documented contract.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr().cast(), buf_out, s.len());
        *buf_out.add(s.len()) = 0;
    }
    Ok(())
}

/// Parses a NumPy `__array_interface__` typestr (`<f4`, `>i8`, `|b1`, `<c16`). `*swapped_out`
/// tells whether the data is in non-native byte order. Object, string, datetime, void and long
/// double typestrs give DLSHARE_ERR_UNSUPPORTED_DTYPE.
///
/// # Safety
/// `typestr` is a NUL-terminated string; outputs writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_dtype_from_typestr(
    typestr: *const c_char,
    dtype_out: *mut DLDataType,
    swapped_out: *mut bool,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let (d, s) = unsafe {
            (
                out(dtype_out, "dtype_out")?,
                out(swapped_out, "swapped_out")?,
            )
        };
        let (dtype, swapped) = DType::from_typestr(text(typestr, "typestr")?)?;
        d.write(dtype.into());
        s.write(swapped);
        Ok(())
    })
}

/// Parses a dtype name: bool, int8..int64, uint8..uint64, float16, bfloat16, float32, float64,
/// complex64, complex128.
///
/// # Safety
/// `name` is a NUL-terminated string; `dtype_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_dtype_from_name(
    name: *const c_char,
    dtype_out: *mut DLDataType,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let d = unsafe { out(dtype_out, "dtype_out")? };
        d.write(DType::from_name(text(name, "name")?)?.into());
        Ok(())
    })
}

/// Writes the name of `dtype` ("float32", "float8_e4m3fn", "int32x4") into `buf_out` (capacity
/// `len` bytes, 32 is always enough).
///
/// # Safety
/// `buf_out` has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_dtype_name(
    dtype: DLDataType,
    buf_out: *mut c_char,
    len: usize,
) -> dlshare_status {
    boundary(|| write_text(&DType::from(dtype).validate()?.name(), buf_out, len))
}

/// Writes the native-order NumPy typestr of `dtype` ("<f4"; bfloat16 gives "|V2", which has no
/// NumPy type) into `buf_out` (capacity `len`; 8 is always enough). Types NumPy cannot describe
/// give DLSHARE_ERR_UNSUPPORTED_DTYPE.
///
/// # Safety
/// `buf_out` has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_dtype_typestr(
    dtype: DLDataType,
    buf_out: *mut c_char,
    len: usize,
) -> dlshare_status {
    boundary(|| {
        let d = DType::from(dtype).validate()?;
        let s = d
            .typestr()
            .ok_or_else(|| Error::UnsupportedDtype(format!("{d} has no NumPy typestr")))?;
        write_text(&s, buf_out, len)
    })
}

/// Parses a device name: "cpu", "cuda", "cuda:1", "cuda_host:0" ... (a missing id means 0).
///
/// # Safety
/// `name` is a NUL-terminated string; `device_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_device_from_name(
    name: *const c_char,
    device_out: *mut DLDevice,
) -> dlshare_status {
    boundary(|| {
        // SAFETY: documented contract.
        let d = unsafe { out(device_out, "device_out")? };
        d.write(Device::from_name(text(name, "name")?)?.into());
        Ok(())
    })
}

/// Writes the name of `device` ("cpu", "cuda:0") into `buf_out` (capacity `len`; 32 is enough).
///
/// # Safety
/// `buf_out` has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlshare_device_name(
    device: DLDevice,
    buf_out: *mut c_char,
    len: usize,
) -> dlshare_status {
    boundary(|| write_text(&Device::from(device).validate()?.name(), buf_out, len))
}
