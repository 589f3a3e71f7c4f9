//! What happens to one contiguous run of source elements on its way to the destination: a
//! straight copy, a byte swap, a cast, or a byte swap then a cast. Every layout kernel ends in
//! [`Converter::run`], on runs read straight from the source or gathered into a scratch block.

use std::mem::MaybeUninit;

use super::cast::{CastFn, cast_fn};
use crate::dtype::DType;

/// Elements per staging block (swap-then-cast): small enough for L1 with 16-byte elements.
const BLOCK: usize = 1024;

#[derive(Clone, Copy)]
enum Op {
    Copy,
    /// Reverse the bytes of every `unit`-byte unit (2, 4 or 8; complex numbers swap each part).
    Swap(usize),
    Cast(CastFn),
    SwapCast(usize, CastFn),
}

/// Converts contiguous runs from the source dtype (maybe byte-swapped) to the destination dtype.
#[derive(Clone, Copy)]
pub(super) struct Converter {
    op: Op,
    pub in_item: usize,
    pub out_item: usize,
}

impl Converter {
    /// The caller has checked the pair with `can_cast` when the dtypes differ, and that swapped
    /// sources are of a computable dtype.
    pub fn new(from: DType, to: DType, byte_swapped: bool) -> Converter {
        let in_item = from.item_size();
        let swap_unit = if byte_swapped { from.swap_unit() } else { 1 };
        let cast = || match (from.kind(), to.kind()) {
            (Some(a), Some(b)) => cast_fn(a, b),
            _ => unreachable!("can_cast was checked by the caller"),
        };
        let op = match (from == to, swap_unit > 1) {
            (true, false) => Op::Copy,
            (true, true) => Op::Swap(swap_unit),
            (false, false) => Op::Cast(cast()),
            (false, true) => Op::SwapCast(swap_unit, cast()),
        };
        Converter {
            op,
            in_item,
            out_item: to.item_size(),
        }
    }

    /// Whether runs are plain byte copies (the layout kernels then gather straight into the
    /// destination, with no staging).
    pub fn is_copy(&self) -> bool {
        matches!(self.op, Op::Copy)
    }

    /// Converts `n` contiguous source elements at `src` into `n` destination elements at `dst`.
    ///
    /// # Safety
    /// `src` readable for `n * in_item` bytes, `dst` writable for `n * out_item` bytes, no
    /// overlap. No alignment is needed on either side.
    #[inline]
    pub unsafe fn run(&self, src: *const u8, dst: *mut u8, n: usize) {
        match self.op {
            // SAFETY: forwarded contract (n * in_item bytes each way).
            Op::Copy => unsafe { std::ptr::copy_nonoverlapping(src, dst, n * self.in_item) },
            // SAFETY: forwarded contract; an element is a whole number of units.
            Op::Swap(unit) => unsafe { swap(src, dst, n * self.in_item / unit, unit) },
            // SAFETY: forwarded contract.
            Op::Cast(f) => unsafe { f(src, dst, n) },
            // SAFETY: forwarded contract.
            Op::SwapCast(unit, f) => unsafe { self.swap_cast(unit, f, src, dst, n) },
        }
    }

    /// Byte swap then cast, staged through a block on the stack (kept out of line so that the
    /// block is on the stack only when used).
    ///
    /// # Safety
    /// As `run`.
    #[inline(never)]
    unsafe fn swap_cast(&self, unit: usize, f: CastFn, src: *const u8, dst: *mut u8, n: usize) {
        let mut scratch = [const { MaybeUninit::<u128>::uninit() }; BLOCK];
        let stage = scratch.as_mut_ptr().cast::<u8>();
        let mut done = 0;
        while done < n {
            let m = (n - done).min(BLOCK);
            // SAFETY: block `done..done + m` lies within the caller's buffers; the scratch
            // holds BLOCK elements of up to 16 bytes.
            unsafe {
                swap(
                    src.add(done * self.in_item),
                    stage,
                    m * self.in_item / unit,
                    unit,
                );
                f(stage, dst.add(done * self.out_item), m);
            }
            done += m;
        }
    }
}

/// Byte-swaps `units` units of `unit` bytes from `src` to `dst`.
///
/// # Safety
/// `src` readable and `dst` writable for `units * unit` bytes, no overlap.
unsafe fn swap(src: *const u8, dst: *mut u8, units: usize, unit: usize) {
    macro_rules! swap_as {
        ($t:ty) => {{
            let (s, d) = (src.cast::<$t>(), dst.cast::<$t>());
            for i in 0..units {
                // SAFETY: within both buffers per the contract; unaligned access allowed.
                unsafe {
                    d.add(i)
                        .write_unaligned(s.add(i).read_unaligned().swap_bytes())
                };
            }
        }};
    }
    match unit {
        2 => swap_as!(u16),
        4 => swap_as!(u32),
        8 => swap_as!(u64),
        _ => {
            for i in 0..units {
                for b in 0..unit {
                    // SAFETY: byte `b` of unit `i` is within both buffers.
                    unsafe { *dst.add(i * unit + b) = *src.add(i * unit + unit - 1 - b) };
                }
            }
        }
    }
}
