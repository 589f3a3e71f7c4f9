//! One copy between host, pinned and device memory: allocates the output and sends the work
//! to the direction it needs.

use super::*;

pub fn copy(
    src: &Source,
    to: DType,
    dest: Device,
    stream: Option<usize>,
    owner: impl FnOnce() -> Arc<Storage>,
) -> Result<Tensor> {
    let mut out = Tensor::empty(to, &src.shape, dest, false)?;
    out.is_copy = true;
    let nbytes = out.nbytes() as usize;
    let dst = out.data_ptr();
    let from_cuda = src.device.device_type == device_type::CUDA;
    let to_cuda = dest.device_type == device_type::CUDA;
    let doing = |d: Device, dir: &str| format!("copying {dir} {d} needs a CUDA device");
    let pending = if nbytes == 0 {
        None
    } else {
        match (from_cuda, to_cuda) {
            (false, true) => {
                let d = dev(dest, &doing(dest, "to"))?;
                let _entered = d.enter()?;
                h2d(d, src, to, dst as sys::CUdeviceptr, nbytes, stream)?.map(|e| (d, e))
            }
            (true, false) => {
                let d = dev(src.device, &doing(src.device, "from"))?;
                let _entered = d.enter()?;
                d2h(d, src, to, dst, nbytes, dest, stream)?;
                None
            }
            (true, true) => {
                let sd = dev(src.device, &doing(src.device, "from"))?;
                let dd = dev(dest, &doing(dest, "to"))?;
                d2d(sd, dd, src, to, dst as sys::CUdeviceptr, nbytes, stream)?.map(|e| (dd, e))
            }
            (false, false) => {
                // host memory into pinned memory: the CPU kernels alone
                // SAFETY: the validated source is readable; `dst` is the fresh output of
                // exactly `nbytes`, seen by nobody else yet.
                unsafe { kernels::copy_to_contiguous(&host_source(src), slice(dst, nbytes), to)? };
                None
            }
        }
    };
    match pending {
        Some((d, event)) => d.retire(event, owner()),
        None => drop(owner()),
    }
    Ok(out)
}
