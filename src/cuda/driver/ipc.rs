//! CUDA IPC (issue 15): device memory handed to another process as a `cuIpcGetMemHandle`
//! handle, opened there with `cuIpcOpenMemHandle`. The handle names the whole allocation; the
//! receiver adds the tensor's offset in it. The symbols are looked up on first use (not in
//! `SYMBOLS`): a driver without them answers DEVICE_UNAVAILABLE here and nowhere else.

use super::*;

const IPC_SYMBOLS: &[&str] = &[
    "cuIpcGetMemHandle",
    "cuIpcOpenMemHandle_v2",
    "cuIpcCloseMemHandle",
    "cuMemGetAddressRange_v2",
];

fn ipc_symbols() -> Result<()> {
    static PRESENT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PRESENT
        .get_or_init(|| {
            // SAFETY: `driver()` succeeded before this is called, so the library is present.
            let lib = unsafe { sys::culib() };
            for name in IPC_SYMBOLS {
                // SAFETY: looks a symbol up without calling it.
                if unsafe { lib.get::<*const c_void>(name.as_bytes()) }.is_err() {
                    return Err(format!("the CUDA driver has no {name} (no CUDA IPC)"));
                }
            }
            Ok(())
        })
        .clone()
        .map_err(Error::DeviceUnavailable)
}

/// (IPC handle of the allocation holding `ptr`, offset of `ptr` in it, allocation size).
pub fn ipc_export(device_id: i32, ptr: *const u8) -> Result<([u8; 64], u64, u64)> {
    let d = dev_id(device_id)?;
    ipc_symbols()?;
    let _entered = d.enter()?;
    let (mut base, mut size) = (0, 0);
    // SAFETY: a query that writes two values.
    unsafe { sys::cuMemGetAddressRange_v2(&mut base, &mut size, ptr as sys::CUdeviceptr) }
        .check("cuMemGetAddressRange (the tensor's allocation)")?;
    // SAFETY: an all-zero handle is a valid value to overwrite.
    let mut handle: sys::CUipcMemHandle = unsafe { std::mem::zeroed() };
    // SAFETY: writes the handle of the allocation starting at `base` in the current context.
    unsafe { sys::cuIpcGetMemHandle(&mut handle, base) }
        .check("cuIpcGetMemHandle (memory from cuMemAlloc can be shared; other kinds cannot)")?;
    let mut bytes = [0u8; 64];
    for (b, &c) in bytes.iter_mut().zip(handle.reserved.iter()) {
        *b = c as u8;
    }
    Ok((bytes, ptr as u64 - base, size as u64))
}

/// Opens an IPC handle from another process on `device_id`: a storage over the whole
/// allocation (`size` bytes, checked against the driver's), closed when the last owner drops.
pub fn ipc_open(device_id: i32, handle: &[u8; 64], size: u64) -> Result<Storage> {
    let d = dev_id(device_id)?;
    ipc_symbols()?;
    let _entered = d.enter()?;
    // SAFETY: an all-zero handle is a valid value to overwrite.
    let mut h: sys::CUipcMemHandle = unsafe { std::mem::zeroed() };
    for (c, &b) in h.reserved.iter_mut().zip(handle.iter()) {
        *c = b as _;
    }
    let mut p = 0;
    let flags = sys::CUipcMem_flags::CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS as u32;
    // SAFETY: opens the handle in the current (the device's primary) context; the driver
    // validates it (a forged handle is an error, not a mapping).
    unsafe { sys::cuIpcOpenMemHandle_v2(&mut p, h, flags) }.check(
        "cuIpcOpenMemHandle (a handle from another process, opened once per process; a handle \
         from this process cannot be opened here)",
    )?;
    let close = move || {
        if let Ok(d) = dev_id(device_id)
            && let Ok(_entered) = enter(d.ctx)
        {
            // SAFETY: the mapping opened above, closed once (a Release runs once).
            unsafe { sys::cuIpcCloseMemHandle(p) };
        }
    };
    let (mut base, mut real) = (0, 0);
    // SAFETY: a query that writes two values.
    let ok = unsafe { sys::cuMemGetAddressRange_v2(&mut base, &mut real, p) }.check("range");
    if ok.is_err() || real as u64 != size {
        close();
        return Err(Error::InvalidArgument(format!(
            "the description's size is {size} bytes but the CUDA allocation behind the handle \
             has {real}: a stale or forged description"
        )));
    }
    let release = Release::new(close);
    Ok(Storage::foreign(
        p as *mut u8,
        size as usize,
        cuda_device(device_id),
        release,
    ))
}
