//! Tensors to Arrow without a copy: a 1-D tensor is a primitive array over the tensor's
//! memory, a 2-D C-contiguous tensor a fixed-size-list array (one list of `columns` values per
//! row) whose child is that primitive array. The structs' private data holds a reference to the
//! tensor, so the memory lives until the consumer calls the release callback (once).

use std::ffi::{CString, c_void};

use super::abi::{ARROW_FLAG_NULLABLE, ArrowArray, ArrowSchema};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn format_of(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::I8 => "c",
        DType::U8 => "C",
        DType::I16 => "s",
        DType::U16 => "S",
        DType::I32 => "i",
        DType::U32 => "I",
        DType::I64 => "l",
        DType::U64 => "L",
        DType::F16 => "e",
        DType::F32 => "f",
        DType::F64 => "g",
        _ => return None,
    })
}

struct SchemaPrivate {
    _format: CString,
    _name: CString,
    children: Vec<*mut ArrowSchema>,
}

struct ArrayPrivate {
    _tensor: Option<Tensor>,
    buffers: Vec<*const c_void>,
    children: Vec<*mut ArrowArray>,
}

unsafe extern "C" fn release_schema(s: *mut ArrowSchema) {
    // SAFETY: called by a consumer on a schema made by `schema()` below, at most once while
    // its release is set (released structs are skipped); children are boxes we made.
    unsafe {
        let Some(s) = s.as_mut() else { return };
        if s.release.is_none() {
            return;
        }
        let p = Box::from_raw(s.private_data.cast::<SchemaPrivate>());
        for &c in &p.children {
            if let Some(release) = (*c).release {
                release(c);
            }
            drop(Box::from_raw(c));
        }
        s.release = None;
        s.private_data = std::ptr::null_mut();
    }
}

unsafe extern "C" fn release_array(a: *mut ArrowArray) {
    // SAFETY: as for `release_schema`, for arrays made by `array()` below.
    unsafe {
        let Some(a) = a.as_mut() else { return };
        if a.release.is_none() {
            return;
        }
        let p = Box::from_raw(a.private_data.cast::<ArrayPrivate>());
        for &c in &p.children {
            if let Some(release) = (*c).release {
                release(c);
            }
            drop(Box::from_raw(c));
        }
        drop(p);
        a.release = None;
        a.private_data = std::ptr::null_mut();
    }
}

fn schema(format: String, name: &str, flags: i64, children: Vec<ArrowSchema>) -> ArrowSchema {
    let format = CString::new(format).unwrap_or_default();
    let name = CString::new(name).unwrap_or_default();
    let children: Vec<*mut ArrowSchema> = children
        .into_iter()
        .map(|c| Box::into_raw(Box::new(c)))
        .collect();
    let mut p = Box::new(SchemaPrivate {
        _format: format,
        _name: name,
        children,
    });
    ArrowSchema {
        format: p._format.as_ptr(),
        name: p._name.as_ptr(),
        metadata: std::ptr::null(),
        flags,
        n_children: p.children.len() as i64,
        children: if p.children.is_empty() {
            std::ptr::null_mut()
        } else {
            p.children.as_mut_ptr()
        },
        dictionary: std::ptr::null_mut(),
        release: Some(release_schema),
        private_data: Box::into_raw(p).cast(),
    }
}

fn array(
    length: i64,
    tensor: Option<Tensor>,
    buffers: Vec<*const c_void>,
    children: Vec<ArrowArray>,
) -> ArrowArray {
    let children: Vec<*mut ArrowArray> = children
        .into_iter()
        .map(|c| Box::into_raw(Box::new(c)))
        .collect();
    let mut p = Box::new(ArrayPrivate {
        _tensor: tensor,
        buffers,
        children,
    });
    ArrowArray {
        length,
        null_count: 0,
        offset: 0,
        n_buffers: p.buffers.len() as i64,
        n_children: p.children.len() as i64,
        buffers: p.buffers.as_mut_ptr(),
        children: if p.children.is_empty() {
            std::ptr::null_mut()
        } else {
            p.children.as_mut_ptr()
        },
        dictionary: std::ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(p).cast(),
    }
}

/// Describes `t` as Arrow (see the module documentation). The returned structs own a
/// reference to `t`'s memory until released.
pub fn to_arrow(t: &Tensor) -> Result<(ArrowSchema, ArrowArray)> {
    if !t.device().is_host_accessible() {
        return Err(Error::UnsupportedDevice(format!(
            "the tensor is on {}; Arrow arrays live in CPU memory: copy it to the CPU first",
            t.device()
        )));
    }
    let format = format_of(t.dtype()).ok_or_else(|| {
        Error::UnsupportedDtype(format!(
            "{} tensors have no Arrow primitive type without a copy (Arrow bools are \
             bit-packed); cast to an integer or float dtype first",
            t.dtype()
        ))
    })?;
    if !t.is_c_contiguous() {
        return Err(Error::InvalidArgument(
            "the tensor is not C-contiguous; Arrow needs its values in one run: call \
             .contiguous() first"
                .into(),
        ));
    }
    let values =
        || -> Vec<*const c_void> { vec![std::ptr::null(), t.data_ptr().cast_const().cast()] };
    match *t.shape() {
        [n] => Ok((
            schema(format.into(), "", ARROW_FLAG_NULLABLE, Vec::new()),
            array(n, Some(t.clone()), values(), Vec::new()),
        )),
        [rows, cols] => {
            if cols == 0 {
                return Err(Error::InvalidArgument(
                    "a tensor with 0 columns has no Arrow fixed-size-list form (list size must \
                     be >= 1)"
                        .into(),
                ));
            }
            let list_size = i32::try_from(cols).map_err(|_| {
                Error::Overflow(format!(
                    "{cols} columns exceed Arrow's fixed-size-list size (int32)"
                ))
            })?;
            let total = rows.checked_mul(cols).ok_or_else(|| {
                Error::Overflow(format!("{rows} x {cols} values overflow 64 bits"))
            })?;
            let child_schema = schema(format.into(), "item", ARROW_FLAG_NULLABLE, Vec::new());
            let child = array(total, None, values(), Vec::new());
            Ok((
                schema(
                    format!("+w:{list_size}"),
                    "",
                    ARROW_FLAG_NULLABLE,
                    vec![child_schema],
                ),
                array(rows, Some(t.clone()), vec![std::ptr::null()], vec![child]),
            ))
        }
        _ => Err(Error::InvalidArgument(format!(
            "a {}-D tensor has no Arrow array form here; export 1-D (primitive) or 2-D \
             (fixed-size list per row) tensors",
            t.ndim()
        ))),
    }
}
