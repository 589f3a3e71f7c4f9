//! The module's callables: `from_numpy`, `as_tensor`, `_wrap` and `_configure`, with the
//! argument forms the fast path accepts.

use super::*;

/// Reads the keyword arguments of `from_numpy` / `as_tensor` that the fast path accepts.
/// Returns None when the call has any other form.
///
/// # Safety
/// GIL held; vectorcall arguments.
pub(super) unsafe fn simple_call(
    api: &Api,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
    mode: Mode,
) -> Option<(Obj, Options)> {
    // SAFETY: caller contract.
    unsafe {
        let mut opts = Options::new(mode);
        let max_positional = if mode == Mode::Share { 1 } else { 3 };
        if nargs < 1 || nargs > max_positional {
            return None;
        }
        for i in 1..nargs {
            if *args.add(i as usize) != api.none {
                return None; // dtype / device: the Python path parses them
            }
        }
        let nkw = if kwnames.is_null() {
            0
        } else {
            (api.tuple_size)(kwnames)
        };
        for i in 0..nkw {
            let name = (api.tuple_get_item)(kwnames, i);
            let value = *args.add((nargs + i) as usize);
            let is = |s: &CStr| (api.unicode_eq_ascii)(name, s.as_ptr()) == 0;
            if mode == Mode::Share && is(c"readonly") {
                match (api.object_is_true)(value) {
                    1 => opts.allow_read_only = true,
                    0 => {}
                    _ => {
                        (api.err_clear)();
                        return None;
                    }
                }
            } else if mode == Mode::Share
                || value != api.none
                || !(is(c"dtype") || is(c"device") || is(c"stream"))
            {
                return None;
            }
        }
        Some((*args, opts))
    }
}

pub(super) unsafe extern "C" fn py_from_numpy(
    _m: Obj,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
) -> Obj {
    // SAFETY: called by CPython as a METH_FASTCALL|METH_KEYWORDS function.
    unsafe { convert_call(args, nargs, kwnames, Mode::Share) }
}

pub(super) unsafe extern "C" fn py_as_tensor(
    _m: Obj,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
) -> Obj {
    // SAFETY: called by CPython as a METH_FASTCALL|METH_KEYWORDS function.
    unsafe { convert_call(args, nargs, kwnames, Mode::ShareOrCopy) }
}

/// # Safety
/// GIL held; vectorcall arguments.
pub(super) unsafe fn convert_call(args: *const Obj, nargs: isize, kwnames: Obj, mode: Mode) -> Obj {
    configured(|api, st| {
        let fallback_target = if mode == Mode::Share {
            st.from_numpy
        } else {
            st.as_tensor
        };
        // SAFETY: GIL held; vectorcall arguments as CPython passes them.
        unsafe {
            let fast = simple_call(api, args, nargs, kwnames, mode).and_then(|(obj, opts)| {
                let tp = type_of(obj);
                if tp == st.ndarray {
                    from_ndarray(api, st, obj, &opts)
                } else if mode != Mode::Share && tp != st.tensor_class {
                    let f = exchange_import(api, tp)?;
                    from_exchange(api, st, obj, f, &opts)
                } else {
                    None
                }
            });
            match fast {
                Some(o) => o,
                None => forward(api, fallback_target, None, args, nargs, kwnames),
            }
        }
    })
}

/// `_wrap(address, shared, reason)`: a Tensor object taking ownership of the handle at
/// `address` (made by a cffi call in the Python package).
pub(super) unsafe extern "C" fn py_wrap(
    _m: Obj,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
) -> Obj {
    configured(|api, st| {
        // SAFETY: GIL held; vectorcall arguments.
        unsafe {
            if nargs != 3 || !kwnames.is_null() {
                (api.err_set_string)(
                    api.runtime_error,
                    c"_wrap(address, shared, reason)".as_ptr(),
                );
                return std::ptr::null_mut();
            }
            let address = (api.long_as_u64)(*args);
            let shared = (api.object_is_true)(*args.add(1));
            let reason = (api.long_as_long)(*args.add(2));
            if address == u64::MAX || shared < 0 || reason == -1 {
                return std::ptr::null_mut(); // the conversion's exception is set
            }
            let handle = address as usize as *mut dlshare_tensor;
            let Ok(t) = handles::get(handle) else {
                (api.err_set_string)(
                    api.runtime_error,
                    c"_wrap: not a live dlshare handle".as_ptr(),
                );
                return std::ptr::null_mut();
            };
            new_object(
                api,
                st,
                handle,
                t.device(),
                t.is_read_only(),
                shared == 1,
                reason as i32,
            )
        }
    })
}

/// `_configure(tensor_class, ndarray, from_numpy, as_tensor, dlpack)`: registers the Python
/// side.
pub(super) unsafe extern "C" fn py_configure(
    _m: Obj,
    args: *const Obj,
    nargs: isize,
    kwnames: Obj,
) -> Obj {
    let Some(api) = api() else {
        return std::ptr::null_mut();
    };
    callable(api, || {
        // SAFETY: GIL held; vectorcall arguments; the references taken are never given back
        // (the state lives as long as the process).
        unsafe {
            if nargs != 5 || !kwnames.is_null() {
                (api.err_set_string)(
                    api.runtime_error,
                    c"_configure(tensor_class, ndarray, from_numpy, as_tensor, dlpack)".as_ptr(),
                );
                return std::ptr::null_mut();
            }
            let a = std::slice::from_raw_parts(args, 5);
            for &o in a {
                (api.inc_ref)(o);
            }
            let st = Box::new(State {
                tensor_class: a[0],
                ndarray: a[1],
                from_numpy: a[2],
                as_tensor: a[3],
                dlpack: a[4],
            });
            STATE.store(Box::into_raw(st), Ordering::Release);
            (api.inc_ref)(api.none);
            api.none
        }
    })
}
