//! NumPy arrays through the buffer protocol: the buffer format as a dtype and the zero-copy or
//! copying import of an array.

use super::*;

/// Array size above which a conversion that may copy lets other Python threads run.
pub(super) const RELEASE_GIL_BYTES: usize = 1 << 16;

/// The Python buffer format of a NumPy array (`f`, `>d`, `Zf`, `?`, `l`...) as a dtype, with
/// whether its byte order is not the machine's. None for anything else (structured, object,
/// long double): the Python path handles those.
pub(super) fn buffer_dtype(format: &[u8], itemsize: isize) -> Option<(DType, bool)> {
    let (swapped, rest) = match format.first()? {
        b'@' | b'=' => (false, &format[1..]),
        b'<' => (cfg!(target_endian = "big"), &format[1..]),
        b'>' | b'!' => (cfg!(target_endian = "little"), &format[1..]),
        _ => (false, format),
    };
    let (complex, rest) = match rest {
        [b'Z', tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let [letter] = rest else { return None };
    let kind = match letter {
        b'?' => b'b',
        b'b' | b'h' | b'i' | b'l' | b'q' | b'n' => b'i',
        b'B' | b'H' | b'I' | b'L' | b'Q' | b'N' => b'u',
        b'e' | b'f' | b'd' if !complex => b'f',
        b'f' | b'd' => b'c',
        _ => return None,
    };
    let typestr = format!("<{}{}", kind as char, itemsize);
    let (dtype, _) = DType::from_typestr(&typestr).ok()?;
    (dtype.item_size() as isize == itemsize).then_some((dtype, swapped && itemsize > 1))
}

/// Keeps a NumPy array's buffer until the library no longer needs the memory.
pub(super) unsafe extern "C" fn release_py_buffer(ctx: *mut c_void) {
    let Some(api) = api() else { return };
    // SAFETY: `ctx` is the Box<PyBuffer> made by `from_ndarray`, given to exactly one view
    // release. The buffer is released with the GIL (taken: this may run on any thread); after
    // interpreter shutdown it is left alone.
    unsafe {
        let mut buffer = Box::from_raw(ctx.cast::<PyBuffer>());
        if (api.is_initialized)() == 0 {
            std::mem::forget(buffer);
            return;
        }
        let gil = (api.gil_ensure)();
        (api.release_buffer)(&mut *buffer);
        (api.gil_release)(gil);
    }
}

/// Runs `f` without the GIL when `big`.
pub(super) fn maybe_without_gil<T>(api: &Api, big: bool, f: impl FnOnce() -> T) -> T {
    if !big {
        return f();
    }
    struct Restore<'a>(&'a Api, *mut c_void);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            // SAFETY: the state saved below, restored once.
            unsafe { (self.0.restore_thread)(self.1) }
        }
    }
    // SAFETY: GIL held on entry; `f` touches no Python object; the thread state is restored
    // even if `f` panics (the guard runs while unwinding).
    let _restore = Restore(api, unsafe { (api.save_thread)() });
    f()
}

/// A NumPy array (exact type) shared or copied per `opts`; None when the Python path must
/// handle it (no buffer, unusual dtype, refusal, error).
///
/// # Safety
/// GIL held; `arr` a live ndarray.
pub(super) unsafe fn from_ndarray(api: &Api, st: &State, arr: Obj, opts: &Options) -> Option<Obj> {
    // SAFETY: GIL held; the buffer is released on every path that does not hand it to the
    // library, and the library releases it (once) on the path that does.
    unsafe {
        let mut buffer = Box::new(std::mem::zeroed::<PyBuffer>());
        if (api.get_buffer)(arr, &mut *buffer, PYBUF_RECORDS_RO) != 0 {
            (api.err_clear)();
            return None;
        }
        let give_back = |mut b: Box<PyBuffer>| (api.release_buffer)(&mut *b);
        let parsed = (!buffer.format.is_null())
            .then(|| buffer_dtype(CStr::from_ptr(buffer.format).to_bytes(), buffer.itemsize))
            .flatten();
        let Some((dtype, swapped)) = parsed else {
            give_back(buffer);
            return None;
        };
        let Ok(reservation) = handles::reserve() else {
            give_back(buffer);
            return None;
        };
        let big = buffer.len as usize > RELEASE_GIL_BYTES;
        let view = dlshare_view {
            data: buffer.buf,
            dtype: dtype.into(),
            ndim: buffer.ndim,
            shape: buffer.shape.cast_const().cast(),
            byte_strides: buffer.strides.cast_const().cast(),
            device: Device::CPU.into(),
            flags: if buffer.readonly != 0 {
                DLSHARE_VIEW_READ_ONLY
            } else {
                0
            } | if swapped {
                DLSHARE_VIEW_BYTE_SWAPPED
            } else {
                0
            },
            release: Some(release_py_buffer),
            release_ctx: (&raw mut *buffer).cast(),
        };
        let raw = Box::into_raw(buffer);
        match maybe_without_gil(api, big, || import_view(&view, || Ok((*opts, ())))) {
            Ok((t, d, ())) => Some(publish(api, st, reservation, t, &d)),
            Err(_) => {
                give_back(Box::from_raw(raw));
                None
            }
        }
    }
}
