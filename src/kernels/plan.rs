//! The layout of one copy, simplified, and the loops that walk it.
//!
//! Axes of extent 1 are dropped and neighbours that step through the source as one axis are
//! merged (a C-contiguous or reversed array becomes one run). What is left is walked in one of
//! two ways:
//! - rows: the innermost axis is a run, copied/converted straight when it is contiguous in the
//!   source, else gathered (into the destination when no conversion is needed, otherwise into a
//!   scratch block that is then converted);
//! - tiles: when the innermost axis jumps far in the source but another axis is (nearly)
//!   contiguous there (F-order, transposed and permuted arrays), the two axes are walked in
//!   tiles that fit in L1, reading along the contiguous axis.
//!
//! The work is a range of units (rows or row parts; tile rows), so that threads take
//! contiguous pieces of the destination and first-touch their own pages.

use std::mem::MaybeUninit;

use super::contiguous::Converter;
use super::gather::{gather_row, transpose_tile};
use super::parallel::PIECES_PER_WORKER;
use crate::layout::MAX_NDIM;

/// Bytes of scratch for staging gathered elements before a conversion, and for one tile.
const SCRATCH_BYTES: usize = 16 * 1024;
/// Rows of a tile (along the source's contiguous axis), for elements of up to 256 bytes.
const TILE_ROWS: usize = 64;
/// A source stride beyond which the innermost axis is worth tiling (over a cache line).
const FAR_STRIDE: usize = 64;
/// Elements per part when a long row is split between threads.
const MIN_PART: usize = 16 * 1024;

#[derive(Clone, Copy, Default)]
pub(super) struct Dim {
    len: usize,
    /// Source byte stride.
    src: isize,
}

/// The source layout with extent-1 axes dropped and mergeable neighbours merged, written into
/// `buf` (at least one axis: a single element is one axis of extent 1). `buf` holds at least
/// `max(shape.len(), 1)` axes.
pub(super) fn simplify<'a>(
    shape: &[i64],
    byte_strides: &[i64],
    item: usize,
    buf: &'a mut [Dim],
) -> &'a [Dim] {
    let mut ndim = 0;
    for (&len, &stride) in shape.iter().zip(byte_strides) {
        let (len, src) = (len as usize, stride as isize);
        if len == 1 {
            continue;
        }
        // Merge with the previous (outer) axis when that one steps over a whole run of this one.
        if ndim > 0 && buf[ndim - 1].src == src.wrapping_mul(len as isize) {
            buf[ndim - 1] = Dim {
                len: buf[ndim - 1].len * len,
                src,
            };
        } else {
            buf[ndim] = Dim { len, src };
            ndim += 1;
        }
    }
    if ndim == 0 {
        buf[0] = Dim {
            len: 1,
            src: item as isize,
        };
        ndim = 1;
    }
    &buf[..ndim]
}

/// Whether a simplified layout is one run of adjacent elements of `item` bytes.
pub(super) fn is_one_run(dims: &[Dim], item: usize) -> bool {
    matches!(dims, [d] if d.src == item as isize)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Rows,
    /// Tiles over axis `k` (rows of the tile) and the innermost axis.
    Tiles {
        k: usize,
    },
}

/// A copy of a strided source into a C-contiguous destination, ready to run on unit ranges.
pub(super) struct Plan<'a> {
    dims: &'a [Dim],
    walk: Walk,
    conv: Converter,
    src: *const u8,
    dst: *mut u8,
    /// Row parts per row (rows walk) or tile rows per slab (tiles walk).
    per: usize,
    /// Elements per row part (rows walk).
    part: usize,
    /// Rows and columns of a tile (tiles walk).
    tile_rows: usize,
    tile_cols: usize,
    units: usize,
}

// SAFETY: a plan only reads through `src` and writes through `dst`; `run` is called on
// disjoint unit ranges, which write disjoint destination bytes. The caller of `Plan::new`
// guarantees both buffers outlive every run.
unsafe impl Sync for Plan<'_> {}

impl<'a> Plan<'a> {
    /// `dims` is the simplified source layout (`simplify`); `dst` is its C-contiguous
    /// destination. `workers` is the number of threads that will share the work.
    pub fn new(
        dims: &'a [Dim],
        conv: Converter,
        src: *const u8,
        dst: *mut u8,
        workers: usize,
    ) -> Plan<'a> {
        let ndim = dims.len();
        let inner = dims[ndim - 1];
        let walk = (0..ndim - 1)
            .filter(|&a| dims[a].src != 0 && dims[a].src.unsigned_abs() < inner.src.unsigned_abs())
            .min_by_key(|&a| dims[a].src.unsigned_abs())
            .filter(|&a| {
                inner.src.unsigned_abs() > FAR_STRIDE
                    && dims[a].src.unsigned_abs() <= FAR_STRIDE
                    && conv.in_item <= SCRATCH_BYTES
            })
            .map_or(Walk::Rows, |k| Walk::Tiles { k });
        let mut plan = Plan {
            dims,
            walk,
            conv,
            src,
            dst,
            per: 1,
            part: inner.len,
            tile_rows: TILE_ROWS,
            tile_cols: inner.len,
            units: 0,
        };
        let outer: usize = dims[..ndim - 1].iter().map(|d| d.len).product();
        match walk {
            Walk::Rows => {
                // Split rows only when there are too few to share out.
                let wanted = workers * PIECES_PER_WORKER;
                if workers > 1 && outer < wanted {
                    let parts = wanted.div_ceil(outer);
                    plan.part = inner.len.div_ceil(parts).max(MIN_PART).min(inner.len);
                    plan.per = inner.len.div_ceil(plan.part);
                }
                plan.units = outer * plan.per;
            }
            Walk::Tiles { k } => {
                // A tile fills the scratch: 64 rows unless the elements are too wide for that.
                let item = conv.in_item.max(1);
                plan.tile_rows = (SCRATCH_BYTES / item).clamp(1, TILE_ROWS);
                plan.tile_cols = (SCRATCH_BYTES / (plan.tile_rows * item)).clamp(1, inner.len);
                plan.per = dims[k].len.div_ceil(plan.tile_rows);
                plan.units = outer / dims[k].len * plan.per;
            }
        }
        plan
    }

    /// Number of units of work (`run` takes a range of them).
    pub fn units(&self) -> usize {
        self.units
    }

    /// Destination byte stride of (merged) axis `a`.
    fn dst_stride(&self, a: usize) -> usize {
        self.dims[a + 1..].iter().map(|d| d.len).product::<usize>() * self.conv.out_item
    }

    /// Runs units `lo..hi`.
    ///
    /// # Safety
    /// The buffers given to `new` are valid (source readable over its whole layout, destination
    /// writable), and no other run covers an overlapping unit range at the same time.
    pub unsafe fn run(&self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        // SAFETY: forwarded contract.
        unsafe {
            match self.walk {
                Walk::Rows => self.run_rows(lo, hi),
                Walk::Tiles { k } => self.run_tiles(k, lo, hi),
            }
        }
    }

    /// # Safety
    /// As `run`.
    unsafe fn run_rows(&self, lo: usize, hi: usize) {
        let outer = &self.dims[..self.dims.len() - 1];
        let inner = self.dims[self.dims.len() - 1];
        let (in_item, out_item) = (self.conv.in_item, self.conv.out_item);
        let mut row = lo / self.per;
        let mut part = lo % self.per;
        let mut odo = Odometer::at(outer, row);
        for _ in lo..hi {
            let c0 = part * self.part;
            let c1 = (c0 + self.part).min(inner.len);
            let src = self
                .src
                .wrapping_offset(odo.offset + c0 as isize * inner.src);
            let dst = self.dst.wrapping_add((row * inner.len + c0) * out_item);
            let n = c1 - c0;
            // SAFETY: elements c0..c1 of this row are source elements and their destination
            // lies inside the destination buffer (contract).
            unsafe {
                if inner.src == in_item as isize {
                    self.conv.run(src, dst, n);
                } else if self.conv.is_copy() || in_item > 16 {
                    gather_row(src, inner.src, dst, n, in_item);
                } else {
                    gather_convert(&self.conv, src, inner.src, dst, n);
                }
            }
            part += 1;
            if part == self.per {
                part = 0;
                row += 1;
                odo.step(outer);
            }
        }
    }

    /// # Safety
    /// As `run`.
    #[inline(never)]
    unsafe fn run_tiles(&self, k: usize, lo: usize, hi: usize) {
        let nd = self.dims.len();
        let inner = self.dims[nd - 1];
        let axis = self.dims[k];
        let (in_item, out_item) = (self.conv.in_item, self.conv.out_item);
        // The slabs: every outer axis but `k`, each with its destination stride.
        let mut rest = [Dim::default(); MAX_NDIM];
        let mut rest_dst = [0usize; MAX_NDIM];
        let mut nrest = 0;
        for a in (0..nd - 1).filter(|&a| a != k) {
            rest[nrest] = self.dims[a];
            rest_dst[nrest] = self.dst_stride(a);
            nrest += 1;
        }
        let rest = &rest[..nrest];
        let k_dst = self.dst_stride(k);
        let slab = lo / self.per;
        let mut block = lo % self.per;
        let mut odo = Odometer::at(rest, slab);
        let slab_dst =
            |odo: &Odometer| -> usize { (0..nrest).map(|a| odo.index[a] * rest_dst[a]).sum() };
        let mut dst_base = slab_dst(&odo);
        let mut scratch = [const { MaybeUninit::<u128>::uninit() }; SCRATCH_BYTES / 16];
        let stage = scratch.as_mut_ptr().cast::<u8>();
        for _ in lo..hi {
            let r0 = block * self.tile_rows;
            let rows = self.tile_rows.min(axis.len - r0);
            let mut c0 = 0;
            while c0 < inner.len {
                let cols = self.tile_cols.min(inner.len - c0);
                let src = self
                    .src
                    .wrapping_offset(odo.offset + r0 as isize * axis.src + c0 as isize * inner.src);
                let dst = self.dst.wrapping_add(dst_base + r0 * k_dst + c0 * out_item);
                let row_bytes = cols * in_item;
                // SAFETY: the tile's elements are source elements and its destination lies in
                // the destination buffer (contract); the scratch holds rows * cols elements
                // (tile_cols was sized for it). Staging the tile keeps the writes of a tile
                // row contiguous: writing the destination column by column would touch lines
                // a whole row apart, which alias in L1 when rows are a power of two long.
                unsafe {
                    transpose_tile(
                        src, axis.src, inner.src, stage, row_bytes, rows, cols, in_item,
                    );
                    for r in 0..rows {
                        self.conv
                            .run(stage.add(r * row_bytes), dst.add(r * k_dst), cols);
                    }
                }
                c0 += cols;
            }
            block += 1;
            if block == self.per {
                block = 0;
                odo.step(rest);
                dst_base = slab_dst(&odo);
            }
        }
    }
}

/// Gathers a strided run into a scratch block and converts it from there, block by block. Kept
/// out of line so that the 16 KiB scratch is on the stack only when it is used.
///
/// # Safety
/// The `n` source elements at `src + i * stride` are readable; `dst` is writable for `n`
/// destination elements.
#[inline(never)]
unsafe fn gather_convert(conv: &Converter, src: *const u8, stride: isize, dst: *mut u8, n: usize) {
    let mut scratch = [const { MaybeUninit::<u128>::uninit() }; SCRATCH_BYTES / 16];
    let stage = scratch.as_mut_ptr().cast::<u8>();
    let block = SCRATCH_BYTES / conv.in_item;
    let mut done = 0;
    while done < n {
        let m = (n - done).min(block);
        // SAFETY: block `done..done + m` of the run (contract); the scratch holds `block`
        // source elements.
        unsafe {
            gather_row(
                src.wrapping_offset(done as isize * stride),
                stride,
                stage,
                m,
                conv.in_item,
            );
            conv.run(stage, dst.add(done * conv.out_item), m);
        }
        done += m;
    }
}

/// A multi-index over some axes (C order) with the source byte offset it points at.
struct Odometer {
    index: [usize; MAX_NDIM],
    offset: isize,
}

impl Odometer {
    /// Positioned at linear (C-order) index `at`.
    fn at(dims: &[Dim], mut at: usize) -> Odometer {
        let mut odo = Odometer {
            index: [0; MAX_NDIM],
            offset: 0,
        };
        for a in (0..dims.len()).rev() {
            let i = at % dims[a].len;
            at /= dims[a].len;
            odo.index[a] = i;
            odo.offset += i as isize * dims[a].src;
        }
        odo
    }

    /// One step forward in C order (wrapping past the end is harmless: the caller stops).
    fn step(&mut self, dims: &[Dim]) {
        for a in (0..dims.len()).rev() {
            self.index[a] += 1;
            self.offset = self.offset.wrapping_add(dims[a].src);
            if self.index[a] < dims[a].len {
                return;
            }
            self.offset = self
                .offset
                .wrapping_sub(dims[a].src.wrapping_mul(dims[a].len as isize));
            self.index[a] = 0;
        }
    }
}
