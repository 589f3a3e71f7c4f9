//! The cache of freed CPU buffers (storage.rs) through the C API: same-size buffers are reused
//! (same address, no fresh mapping), the limit bounds what is kept, 0 gives everything back,
//! -1 restores the default, bad values are refused. One test: the limit is process-wide. Not
//! under Miri, where every buffer comes from the global allocator.
#![cfg(not(miri))]

use dlshare::dlpack::{DLDataType, DLDevice};
use dlshare::ffi::dlshare_status::*;
use dlshare::ffi::handles::dlshare_tensor;
use dlshare::ffi::memory::*;
use dlshare::ffi::tensor::{dlshare_tensor_empty, dlshare_tensor_release};

const F32: DLDataType = DLDataType {
    code: 2,
    bits: 32,
    lanes: 1,
};
const CPU: DLDevice = DLDevice {
    device_type: 1,
    device_id: 0,
};

fn empty(n: i64) -> (*mut dlshare_tensor, usize) {
    let mut t = std::ptr::null_mut();
    // SAFETY: valid shape pointer and output.
    assert_eq!(
        unsafe { dlshare_tensor_empty(F32, 1, &n, CPU, &mut t) },
        DLSHARE_OK
    );
    let mut info = std::mem::MaybeUninit::uninit();
    let mut flags = 0u64;
    // SAFETY: a live handle and writable outputs.
    let s = unsafe { dlshare::ffi::tensor::dlshare_tensor_info(t, info.as_mut_ptr(), &mut flags) };
    assert_eq!(s, DLSHARE_OK);
    // SAFETY: filled by the successful call.
    (t, unsafe { info.assume_init() }.data as usize)
}

#[test]
fn freed_buffers_are_reused_within_the_limit() {
    let mib = 1i64 << 20;
    assert_eq!(dlshare_get_cache_limit(), 256 << 20, "default limit");
    assert_eq!(dlshare_set_cache_limit(0), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 0);

    // limit 0: nothing kept
    let (t, _) = empty(16 * mib);
    assert_eq!(dlshare_tensor_release(t), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 0);

    // a 64 MiB buffer (16M floats) is kept and handed out again for the same size
    assert_eq!(dlshare_set_cache_limit(128 * mib), DLSHARE_OK);
    assert_eq!(dlshare_get_cache_limit(), 128 << 20);
    let (a, addr_a) = empty(16 * mib);
    assert_eq!(dlshare_tensor_release(a), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 64 << 20);
    let (b, addr_b) = empty(16 * mib);
    assert_eq!(addr_b, addr_a, "the freed buffer is reused");
    assert_eq!(dlshare_cached_bytes(), 0);
    // a different size class does not take it
    assert_eq!(dlshare_tensor_release(b), DLSHARE_OK);
    let (c, addr_c) = empty(8 * mib);
    assert_ne!(addr_c, addr_a);
    assert_eq!(dlshare_cached_bytes(), 64 << 20);
    // over the limit in all: given back instead of kept
    let (d, _) = empty(16 * mib + 1);
    assert_eq!(dlshare_tensor_release(d), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 64 << 20);
    assert_eq!(dlshare_tensor_release(c), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 96 << 20);

    // lowering the limit gives back what no longer fits, oldest first
    assert_eq!(dlshare_set_cache_limit(40 * mib), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 32 << 20);
    assert_eq!(dlshare_set_cache_limit(0), DLSHARE_OK);
    assert_eq!(dlshare_cached_bytes(), 0);

    // -1 restores the default; other negative values are refused
    assert_eq!(dlshare_set_cache_limit(-1), DLSHARE_OK);
    assert_eq!(dlshare_get_cache_limit(), 256 << 20);
    assert_eq!(dlshare_set_cache_limit(-2), DLSHARE_ERR_INVALID_ARGUMENT);
    assert_eq!(dlshare_get_cache_limit(), 256 << 20);
}
