//! Objects publishing the DLPack C exchange API (`__c_dlpack_exchange_api__`): the per-type
//! lookup of the import function and the import through it.

use super::*;

/// `managed_tensor_from_py_object_no_sync` of a type's DLPack C exchange API (None when the
/// type publishes none). Cached per type; the cache holds a reference to each type.
///
/// # Safety
/// GIL held; `tp` a live type object.
pub(super) unsafe fn exchange_import(api: &Api, tp: Obj) -> Option<ExchangeFn> {
    use std::sync::Mutex;
    struct Cache(Vec<(usize, Option<ExchangeFn>)>);
    static CACHE: Mutex<Cache> = Mutex::new(Cache(Vec::new()));
    let cached = |tp: Obj| {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .0
            .iter()
            .find(|(t, _)| *t == tp as usize)
            .map(|(_, f)| *f)
    };
    if let Some(f) = cached(tp) {
        return f;
    }
    // The lookup may run Python code (a metaclass), which may let another thread take the GIL
    // and come here: the lock is not held across it.
    // SAFETY: GIL held; a failed lookup's exception is cleared; the capsule name is the one
    // DLPack 1.3 specifies, and its pointer is the producer's API table, read while the
    // capsule is still referenced.
    let found = unsafe {
        let capsule = (api.object_get_attr_string)(tp, c"__dlpack_c_exchange_api__".as_ptr());
        if capsule.is_null() {
            (api.err_clear)();
            None
        } else {
            let table = (api.capsule_get_pointer)(capsule, c"dlpack_exchange_api".as_ptr())
                .cast::<DLPackExchangeAPI>();
            let f = match table.as_ref() {
                None => {
                    (api.err_clear)();
                    None
                }
                Some(t) if t.version.major == 1 => t.managed_tensor_from_py_object_no_sync,
                Some(_) => None,
            };
            (api.dec_ref)(capsule);
            f
        }
    };
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0.len() < 64 && !cache.0.iter().any(|(t, _)| *t == tp as usize) {
        // SAFETY: GIL held; the cache keeps the type alive so its address stays its own.
        unsafe { (api.inc_ref)(tp) };
        cache.0.push((tp as usize, found));
    }
    found
}

pub(super) use crate::dlpack::DLPackManagedTensorFromPyObjectNoSync as ExchangeFn;

/// An object with the DLPack C exchange API (a torch.Tensor) imported per `opts`, CPU only;
/// None when the Python path must handle it.
///
/// # Safety
/// GIL held; `obj` live; `f` the exchange function of its type.
pub(super) unsafe fn from_exchange(
    api: &Api,
    st: &State,
    obj: Obj,
    f: ExchangeFn,
    opts: &Options,
) -> Option<Obj> {
    // SAFETY: GIL held; the managed tensor handed out is ours: imported (the library then
    // owns it) or deleted here.
    unsafe {
        let mut managed: *mut DLManagedTensorVersioned = std::ptr::null_mut();
        if f(obj, &mut managed) != 0 || managed.is_null() {
            (api.err_clear)();
            return None;
        }
        let dl = &(*managed).dl_tensor;
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
