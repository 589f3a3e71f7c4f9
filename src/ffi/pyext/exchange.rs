//! Objects publishing the DLPack C exchange API (`__c_dlpack_exchange_api__`): the per-type
//! lookup of the import function and the import through it.

use super::*;

/// How the fast path imports instances of one type through its DLPack C exchange API.
#[derive(Clone, Copy)]
pub(super) struct Exchange {
    /// The type's `managed_tensor_from_py_object_no_sync`.
    f: ExchangeFn,
    /// PyTorch's export rules, for `torch.Tensor` (exact type).
    torch: Option<TorchChecks>,
}

/// The descriptors of `torch.Tensor.requires_grad` (a getset descriptor, read through its
/// type's `tp_descr_get`), `is_conj` and `is_neg` (method descriptors, called with the tensor
/// as the only argument): called directly, with no attribute lookup per call. When the Python
/// side located the conjugate and negative bits in this PyTorch build's TensorImpl
/// (`_producers._calibrate_lazy_bits`, checked against `is_conj()` / `is_neg()` on sample
/// tensors), they are read from memory instead of calling the two methods.
#[derive(Clone, Copy)]
struct TorchChecks {
    requires_grad: Obj,
    descr_get: unsafe extern "C" fn(Obj, Obj, Obj) -> Obj,
    is_conj: Obj,
    is_neg: Obj,
    /// Byte offset of the dispatch key set in the TensorImpl (the Python object holds the
    /// TensorImpl pointer right after its 16-byte header), or None.
    key_offset: Option<usize>,
    key_mask: u64,
    /// Byte offset of the autograd metadata pointer in the TensorImpl (NULL: no grad), or None.
    meta_offset: Option<usize>,
}

/// The exchange import of type `tp` (None when the type publishes no exchange API, its table is
/// malformed, or the Python side keeps the type: see `_producers.native_policy`). Decided once
/// per type by the registered policy; the cache holds a reference to each type and to the
/// descriptors it keeps.
///
/// # Safety
/// GIL held; `tp` a live type object.
pub(super) unsafe fn exchange_import(api: &Api, st: &State, tp: Obj) -> Option<Exchange> {
    use std::sync::Mutex;
    struct Cache(Vec<(usize, Option<Exchange>)>);
    // SAFETY: the cached objects are used only with the GIL held.
    unsafe impl Send for Cache {}
    static CACHE: Mutex<Cache> = Mutex::new(Cache(Vec::new()));
    let cached = |tp: Obj| {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .0
            .iter()
            .find(|(t, _)| *t == tp as usize)
            .map(|(_, x)| *x)
    };
    if let Some(x) = cached(tp) {
        return x;
    }
    // The policy runs Python code, which may let another thread take the GIL and come here:
    // the lock is not held across it.
    // SAFETY: GIL held; the policy's result is read per its documented shape and every other
    // shape (or an exception, cleared) means "no fast path"; references kept are owned.
    let found = unsafe {
        let result = (api.vectorcall)(st.policy, &tp, 1, std::ptr::null_mut());
        let found = if result.is_null() {
            (api.err_clear)();
            None
        } else {
            let x = read_policy(api, result);
            (api.dec_ref)(result);
            x
        };
        if found.is_none() {
            (api.err_clear)();
        }
        found
    };
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0.len() < 64 && !cache.0.iter().any(|(t, _)| *t == tp as usize) {
        // SAFETY: GIL held; the cache keeps the type (so its address stays its own) and the
        // descriptors alive.
        unsafe {
            (api.inc_ref)(tp);
            if let Some(Exchange { torch: Some(c), .. }) = found {
                (api.inc_ref)(c.requires_grad);
                (api.inc_ref)(c.is_conj);
                (api.inc_ref)(c.is_neg);
            }
        }
        cache.0.push((tp as usize, found));
    }
    found
}

/// Reads `None` or `(address, None | (requires_grad, is_conj, is_neg))` (borrowed references
/// inside `result`, which the caller keeps until the cache has taken its own).
///
/// # Safety
/// GIL held; `result` a live object.
unsafe fn read_policy(api: &Api, result: Obj) -> Option<Exchange> {
    // SAFETY: GIL held; tuple items are read only after their tuple's size is checked.
    unsafe {
        if result == api.none || (api.tuple_size)(result) != 2 {
            return None;
        }
        let address = (api.long_as_u64)((api.tuple_get_item)(result, 0));
        if address == u64::MAX || address == 0 {
            return None;
        }
        let f = std::mem::transmute::<usize, ExchangeFn>(address as usize);
        let checks = (api.tuple_get_item)(result, 1);
        if checks == api.none {
            return Some(Exchange { f, torch: None });
        }
        if (api.tuple_size)(checks) != 6 {
            return None;
        }
        let meta = (api.long_as_long)((api.tuple_get_item)(checks, 5));
        let offset = (api.long_as_long)((api.tuple_get_item)(checks, 3));
        let mask = (api.long_as_u64)((api.tuple_get_item)(checks, 4));
        if (offset == -1 || mask == u64::MAX) && !(api.err_occurred)().is_null() {
            return None;
        }
        let key_offset = (offset >= 0 && offset % 8 == 0 && offset < 256 && mask != 0)
            .then_some(offset as usize);
        let meta_offset = (key_offset.is_some() && meta >= 0 && meta % 8 == 0 && meta < 256)
            .then_some(meta as usize);
        (api.err_clear)();
        let requires_grad = (api.tuple_get_item)(checks, 0);
        let get = (api.type_get_slot)(type_of(requires_grad), PY_TP_DESCR_GET);
        if get.is_null() {
            return None;
        }
        Some(Exchange {
            f,
            torch: Some(TorchChecks {
                requires_grad,
                descr_get: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(Obj, Obj, Obj) -> Obj,
                >(get),
                is_conj: (api.tuple_get_item)(checks, 1),
                is_neg: (api.tuple_get_item)(checks, 2),
                key_offset,
                key_mask: mask,
                meta_offset,
            }),
        })
    }
}

/// Whether a torch tensor may be imported as it is: no conjugate or negative bit, no autograd.
/// False also when a check fails (its exception cleared): the Python path then decides.
///
/// # Safety
/// GIL held; `obj` a live torch.Tensor; `complex` / `floating` from its DLPack dtype (the
/// conjugate bit exists only on complex tensors, `requires_grad` only on floating ones).
unsafe fn torch_plain(api: &Api, c: &TorchChecks, obj: Obj, complex: bool, floating: bool) -> bool {
    // SAFETY: GIL held; each result is a new reference, compared with True/False and released.
    unsafe {
        let is_false = |r: Obj| {
            if r.is_null() {
                (api.err_clear)();
                return false;
            }
            (api.dec_ref)(r);
            r == api.false_
        };
        if let Some(offset) = c.key_offset {
            // The calibrated layout: the TensorImpl pointer after the object header, the key
            // set `offset` bytes into the TensorImpl and the autograd metadata pointer
            // `meta_offset` bytes into it (both inside it: the calibration searched the first
            // 208 bytes only).
            let imp = *obj.cast::<u8>().add(16).cast::<*const u8>();
            if imp.is_null() {
                return false;
            }
            if imp.add(offset).cast::<u64>().read_unaligned() & c.key_mask != 0 {
                return false;
            }
            let no_autograd = c
                .meta_offset
                .is_some_and(|m| imp.add(m).cast::<u64>().read_unaligned() == 0);
            return !floating
                || no_autograd
                || is_false((c.descr_get)(c.requires_grad, obj, type_of(obj)));
        }
        if floating && !is_false((c.descr_get)(c.requires_grad, obj, type_of(obj))) {
            return false;
        }
        if complex && !is_false((api.vectorcall)(c.is_conj, &obj, 1, std::ptr::null_mut())) {
            return false;
        }
        is_false((api.vectorcall)(c.is_neg, &obj, 1, std::ptr::null_mut()))
    }
}

pub(super) use crate::dlpack::DLPackManagedTensorFromPyObjectNoSync as ExchangeFn;

/// An object with the DLPack C exchange API (a torch.Tensor) imported per `opts`, CPU only;
/// None when the Python path must handle it.
///
/// # Safety
/// GIL held; `obj` live; `x` the exchange import of its type.
pub(super) unsafe fn from_exchange(
    api: &Api,
    st: &State,
    obj: Obj,
    x: &Exchange,
    opts: &Options,
) -> Option<Obj> {
    // SAFETY: GIL held; the managed tensor handed out is ours: imported (the library then
    // owns it) or deleted here.
    unsafe {
        let mut managed: *mut DLManagedTensorVersioned = std::ptr::null_mut();
        if (x.f)(obj, &mut managed) != 0 || managed.is_null() {
            (api.err_clear)();
            return None;
        }
        let dl = &(*managed).dl_tensor;
        if let Some(checks) = &x.torch {
            use crate::dtype::code;
            let c_ = dl.dtype.code;
            let complex = c_ == code::COMPLEX;
            // torch lets only floating-point and complex tensors require grad
            let floating = !matches!(c_, code::INT | code::UINT | code::BOOL);
            if !torch_plain(api, checks, obj, complex, floating) {
                run_deleter(managed.cast(), true); // the Python path applies torch's rules
                return None;
            }
        }
        let Ok(reservation) = handles::reserve() else {
            run_deleter(managed.cast(), true);
            return None;
        };
        if dl.device.device_type != device_type::CPU {
            run_deleter(managed.cast(), true);
            return None;
        }
        let shape = if dl.ndim > 0 && !dl.shape.is_null() {
            std::slice::from_raw_parts(dl.shape, dl.ndim as usize)
        } else {
            &[]
        };
        let bytes = shape.iter().map(|&n| n.max(0) as u128).product::<u128>()
            * (dl.dtype.bits as u128 * dl.dtype.lanes as u128 / 8);
        match maybe_without_gil(api, bytes > RELEASE_GIL_BYTES as u128, || {
            let imported = import::import_versioned(managed)?;
            crate::convert::convert(&imported.source, opts, || imported.owner.storage())
        }) {
            Ok((t, d)) => Some(publish(api, st, reservation, t, &d)),
            Err(_) => {
                run_deleter(managed.cast(), true);
                None
            }
        }
    }
}
