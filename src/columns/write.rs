//! The write pass: each column's typed operations behind one object-safe trait, and the
//! block-by-block writer that fills row ranges of the output.

use super::*;

/// What the write pass needs to know about one column.
pub(super) struct Plan {
    pub(super) fill: f64,
    pub(super) norm: Option<Vec<Norm>>,
}

/// Shared facts of one write.
pub(super) struct Layout {
    pub(super) policy: NanPolicy,
    pub(super) sink: Sink,
    pub(super) row_bytes: usize,
}

pub(super) trait ColumnOps: Sync {
    fn width(&self) -> usize;
    /// Clears `keep[r]` for every row where this column is missing.
    fn mark_missing(&self, keep: &mut [bool]);
    /// Walks the (kept) rows under the policy; returns the statistics and whether a missing
    /// value was met (for RAISE). `mean`: the second pass of a z-score, which adds the squared
    /// deviations from it to `stats`.
    fn scan(
        &self,
        policy: NanPolicy,
        fill: f64,
        keep: Option<&[bool]>,
        stats: &mut Stats,
        mean: Option<f64>,
    ) -> Result<bool>;
    fn new_stats(&self) -> Stats;
    /// A writer for rows `rows` of this column, at byte `offset` of each output row.
    fn writer<'s>(
        &'s self,
        plan: &'s Plan,
        layout: &'s Layout,
        rows: Range<usize>,
        offset: usize,
    ) -> Box<dyn BlockWriter + 's>;
}

/// Writes one column's cells for consecutive row blocks of one row range.
pub(super) trait BlockWriter {
    /// Writes rows `rows` (the kept ones, in order) into `out`, whose first row is the first
    /// kept row of the block. Backward (from the last row) when `backward`.
    fn write_block(
        &mut self,
        rows: Range<usize>,
        keep: Option<&[bool]>,
        out: &mut [u8],
        backward: bool,
    ) -> Result<()>;
    fn saw_missing(&self) -> bool;
}

pub(super) struct Typed<E>(pub(super) E);

pub(super) struct Writer<'s, E: Encoding> {
    pub(super) resolver: Resolver<E>,
    pub(super) norm: Option<&'s [Norm]>,
    pub(super) sink: Sink,
    pub(super) row_bytes: usize,
    pub(super) offset: usize,
    pub(super) cell_bytes: usize,
}

impl<E: Encoding> Writer<'_, E> {
    #[inline(always)]
    pub(super) fn run<O: Out>(
        &mut self,
        o: O,
        rows: Range<usize>,
        keep: Option<&[bool]>,
        out: &mut [u8],
        backward: bool,
    ) -> Result<()> {
        let (row_bytes, offset, cell_bytes, norm) =
            (self.row_bytes, self.offset, self.cell_bytes, self.norm);
        let mut resolver = self.resolver;
        let enc = resolver.enc;
        let result = (|| {
            if backward {
                let rows_out = out.chunks_exact_mut(row_bytes).take(rows.len());
                for (r, row) in rows.rev().zip(rows_out.rev()) {
                    let res = resolver.resolve(r);
                    enc.emit(res, &mut row[offset..offset + cell_bytes], o, norm)?;
                }
            } else if let Some(keep) = keep {
                let mut rows_out = out.chunks_exact_mut(row_bytes);
                for r in rows {
                    if keep[r] {
                        let row = rows_out.next().expect("one output row per kept row");
                        let res = resolver.resolve(r);
                        enc.emit(res, &mut row[offset..offset + cell_bytes], o, norm)?;
                    }
                }
            } else {
                for (r, row) in rows.zip(out.chunks_exact_mut(row_bytes)) {
                    enc.prefetch(r + PREFETCH_ROWS);
                    let res = resolver.resolve(r);
                    enc.emit(res, &mut row[offset..offset + cell_bytes], o, norm)?;
                }
            }
            Ok(())
        })();
        self.resolver = resolver;
        result
    }
}

impl<E: Encoding> BlockWriter for Writer<'_, E> {
    fn write_block(
        &mut self,
        rows: Range<usize>,
        keep: Option<&[bool]>,
        out: &mut [u8],
        backward: bool,
    ) -> Result<()> {
        if self.row_bytes == 0 {
            return Ok(());
        }
        match self.sink {
            Sink::F32 => self.run(OutF32, rows, keep, out, backward),
            Sink::F64 => self.run(OutF64, rows, keep, out, backward),
            Sink::Other(d) => self.run(OutAny(d), rows, keep, out, backward),
        }
    }

    fn saw_missing(&self) -> bool {
        self.resolver.saw_missing
    }
}

impl<E: Encoding> ColumnOps for Typed<E> {
    fn width(&self) -> usize {
        self.0.width()
    }

    fn mark_missing(&self, keep: &mut [bool]) {
        let enc = self.0;
        if !enc.may_miss() {
            return;
        }
        for (r, k) in keep.iter_mut().enumerate() {
            if *k && enc.get(r).is_none() {
                *k = false;
            }
        }
    }

    fn new_stats(&self) -> Stats {
        if self.0.is_onehot() {
            Stats::Counts {
                counts: vec![0; self.0.width()],
                rows: 0,
            }
        } else {
            Stats::Moments(Moments::new())
        }
    }

    fn scan(
        &self,
        policy: NanPolicy,
        fill: f64,
        keep: Option<&[bool]>,
        stats: &mut Stats,
        mean: Option<f64>,
    ) -> Result<bool> {
        let enc = self.0;
        let n = enc.len();
        let mut resolver = Resolver::new(enc, policy, fill, &(0..n));
        let kept = |r: usize| keep.is_none_or(|k| k[r]);
        match stats {
            Stats::Moments(m) => {
                *m = if policy == NanPolicy::Bfill {
                    scan_moments(*m, (0..n).rev().filter(|&r| kept(r)), &mut resolver, mean)
                } else {
                    scan_moments(*m, (0..n).filter(|&r| kept(r)), &mut resolver, mean)
                };
            }
            Stats::Counts { counts, rows } => {
                let mut visit = |res: Res<E::V>| -> Result<()> {
                    *rows += 1;
                    if let Some(k) = enc.category(res)? {
                        counts[k] += 1;
                    }
                    Ok(())
                };
                if policy == NanPolicy::Bfill {
                    for r in (0..n).rev().filter(|&r| kept(r)) {
                        visit(resolver.resolve(r))?;
                    }
                } else {
                    for r in (0..n).filter(|&r| kept(r)) {
                        visit(resolver.resolve(r))?;
                    }
                }
            }
        }
        Ok(resolver.saw_missing)
    }

    fn writer<'s>(
        &'s self,
        plan: &'s Plan,
        layout: &'s Layout,
        rows: Range<usize>,
        offset: usize,
    ) -> Box<dyn BlockWriter + 's> {
        Box::new(Writer {
            resolver: Resolver::new(self.0, layout.policy, plan.fill, &rows),
            norm: plan.norm.as_deref(),
            sink: layout.sink,
            row_bytes: layout.row_bytes,
            offset,
            cell_bytes: self.0.width() * layout.sink.item(),
        })
    }
}

/// Checks one column and gives its typed operations.
pub(super) fn prepare<'c>(
    index: usize,
    c: &'c Column<'_>,
    rows: usize,
) -> Result<Box<dyn ColumnOps + 'c>> {
    if c.len != rows {
        return Err(Error::InvalidArgument(format!(
            "column {index} has {} rows, column 0 has {rows}; all columns must have the same \
             length",
            c.len
        )));
    }
    if let Some((bits, offset)) = c.valid
        && offset
            .checked_add(c.len)
            .is_none_or(|end| end.div_ceil(8) > bits.len())
    {
        return Err(Error::InvalidArgument(format!(
            "the validity bitmap of column {index} has {} bytes for {} rows from bit {offset}",
            bits.len(),
            c.len
        )));
    }
    if c.missing.is_some_and(|m| m.len() != c.len) {
        return Err(Error::InvalidArgument(format!(
            "the missing mask of column {index} has {} entries for {} rows",
            c.missing.map_or(0, <[u8]>::len),
            c.len
        )));
    }
    let unsupported = || {
        let what = match c.kind {
            ColumnKind::Value => "a value column needs a real number or bool dtype",
            ColumnKind::Datetime { .. } => "a datetime column needs int64 ticks",
            ColumnKind::Codes | ColumnKind::OneHot { .. } => {
                "a category column needs integer codes"
            }
        };
        Error::UnsupportedDtype(format!("column {index} has dtype {}: {what}", c.dtype))
    };
    let kind = c.dtype.kind().ok_or_else(unsupported)?;
    let ops: Box<dyn ColumnOps + 'c> = match c.kind {
        ColumnKind::Value => match kind {
            Kind::Bool => Box::new(Typed(ValueEnc(Reader::<Bool8>::new(c)))),
            Kind::F16 => Box::new(Typed(ValueEnc(Reader::<f16>::new(c)))),
            Kind::BF16 => Box::new(Typed(ValueEnc(Reader::<bf16>::new(c)))),
            Kind::F32 => Box::new(Typed(ValueEnc(Reader::<f32>::new(c)))),
            Kind::F64 => Box::new(Typed(ValueEnc(Reader::<f64>::new(c)))),
            k => for_int_kind!(k, T => Box::new(Typed(ValueEnc(Reader::<T>::new(c)))), {
                return Err(unsupported());
            }),
        },
        ColumnKind::Datetime { divisor, floor } => {
            if kind != Kind::I64 {
                return Err(unsupported());
            }
            if divisor <= 0 {
                return Err(Error::InvalidArgument(format!(
                    "column {index}: the datetime divisor is {divisor}; it must be > 0 (ticks \
                     per output unit, e.g. 86400000000000 for days of a nanosecond column)"
                )));
            }
            Box::new(Typed(TimeEnc {
                reader: Reader::new(c),
                divisor,
                floor,
            }))
        }
        ColumnKind::Codes => {
            for_int_kind!(kind, T => Box::new(Typed(CodesEnc(Reader::<T>::new(c)))), {
                return Err(unsupported());
            })
        }
        ColumnKind::OneHot { categories } => for_int_kind!(kind, T => Box::new(Typed(OneHotEnc {
            reader: Reader::<T>::new(c),
            categories,
        })), {
            return Err(unsupported());
        }),
    };
    Ok(ops)
}

pub(super) fn check_output_dtype(opts: &ColumnsOptions) -> Result<DType> {
    let dtype = opts.dtype.validate()?;
    let kind = dtype.kind().filter(|k| !k.is_complex()).ok_or_else(|| {
        Error::UnsupportedDtype(format!(
            "cannot write columns as {dtype}; use bool, an integer type, float16, bfloat16, \
             float32 or float64"
        ))
    })?;
    if opts.normalize != Normalize::None
        && !matches!(kind, Kind::F16 | Kind::BF16 | Kind::F32 | Kind::F64)
    {
        return Err(Error::InvalidArgument(format!(
            "normalised values are fractions and cannot be written as {dtype}; use a float dtype"
        )));
    }
    if let NanPolicy::Fill(x) = opts.nan
        && x.is_nan()
    {
        return Err(Error::InvalidArgument(
            "the fill value is NaN, which fills nothing; use a number".into(),
        ));
    }
    Ok(dtype)
}

/// Threads for `bytes` of traffic split over `items` independent pieces: the copy kernels' rule
/// (at most `dlshare_set_num_threads`' cap, at least `PARALLEL_MIN_BYTES` per thread).
pub(super) fn threads_for(bytes: usize, items: usize) -> usize {
    kernels::num_threads()
        .min(bytes / kernels::PARALLEL_MIN_BYTES)
        .min(items)
        .max(1)
}

/// Writes input rows `rows` of every column into `out` (their output rows), block by block.
/// Returns, per column, whether a missing value was met (for RAISE).
pub(super) fn write_range(
    ops: &[Box<dyn ColumnOps + '_>],
    plans: &[Plan],
    offsets: &[usize],
    layout: &Layout,
    keep: Option<&[bool]>,
    rows: Range<usize>,
    out: &mut [u8],
) -> Result<Vec<bool>> {
    let mut writers: Vec<Box<dyn BlockWriter + '_>> = ops
        .iter()
        .zip(plans)
        .zip(offsets)
        .map(|((op, plan), &offset)| op.writer(plan, layout, rows.clone(), offset))
        .collect();
    let block = (BLOCK_BYTES / layout.row_bytes.max(1)).max(1);
    let blocks = rows.len().div_ceil(block);
    let span = |b: usize| rows.start + b * block..(rows.start + (b + 1) * block).min(rows.end);
    if layout.policy == NanPolicy::Bfill {
        // Backward, so that each row's next present value is known; no rows are dropped.
        for b in (0..blocks).rev() {
            let span = span(b);
            let at = (span.start - rows.start) * layout.row_bytes;
            let out = &mut out[at..at + span.len() * layout.row_bytes];
            for w in &mut writers {
                w.write_block(span.clone(), None, out, true)?;
            }
        }
    } else {
        let mut at = 0;
        for b in 0..blocks {
            let span = span(b);
            let kept = keep.map_or(span.len(), |k| {
                k[span.clone()].iter().filter(|&&x| x).count()
            });
            let out = &mut out[at..at + kept * layout.row_bytes];
            for w in &mut writers {
                w.write_block(span.clone(), keep, out, false)?;
            }
            at += kept * layout.row_bytes;
        }
    }
    Ok(writers.iter().map(|w| w.saw_missing()).collect())
}
