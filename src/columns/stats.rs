//! Statistics: the moments and category counts a MEAN fill or a normalisation needs, and the
//! per-column plans (fill values, normalisations) computed from them.

use super::*;

/// Normalisation of one output column: `(x - shift) / scale`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Norm {
    pub(super) shift: f64,
    pub(super) scale: f64,
}

impl Norm {
    #[inline(always)]
    pub(super) fn apply(self, x: f64) -> f64 {
        (x - self.shift) / self.scale
    }
}

#[inline(always)]
pub(super) fn normed(norm: Option<&[Norm]>, k: usize, x: f64) -> f64 {
    match norm {
        Some(n) => n[k].apply(x),
        None => x,
    }
}

/// Statistics of one output column: count, sum, min, max of the present values, the rows
/// that take the fill value, and (second pass, z-score only) the sum of squared deviations.
/// Two passes as pandas computes a variance (mean first, then squared deviations).
#[derive(Clone, Copy, Debug)]
pub(super) struct Moments {
    pub(super) n: u64,
    pub(super) sum: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) fills: u64,
    pub(super) m2: f64,
}

impl Moments {
    pub(super) fn new() -> Moments {
        Moments {
            n: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            fills: 0,
            m2: 0.0,
        }
    }

    /// First pass: a present value.
    #[inline(always)]
    pub(super) fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub(super) fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }

    /// Adds the rows that took the fill value `x` (a NaN fill adds nothing: still missing).
    pub(super) fn add_fills(&mut self, x: f64) {
        if self.fills == 0 || x.is_nan() {
            return;
        }
        self.n += self.fills;
        self.sum += x * self.fills as f64;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub(super) fn norm(&self, how: Normalize) -> Norm {
        if self.n == 0 {
            return Norm {
                shift: f64::NAN,
                scale: f64::NAN,
            };
        }
        match how {
            Normalize::MinMax => Norm {
                shift: self.min,
                scale: self.max - self.min,
            },
            _ => Norm {
                shift: self.mean(),
                scale: (self.m2 / (self.n as f64 - 1.0)).sqrt(),
            },
        }
    }
}

/// What a statistics pass learned about one column.
pub(super) enum Stats {
    /// Width-1 columns.
    Moments(Moments),
    /// One-hot columns: rows per category and rows in all.
    Counts { counts: Vec<u64>, rows: u64 },
}

/// Adds one result to the statistics: a present value (first pass), a fill row, or the squared
/// deviation from `mean` (second pass).
#[inline(always)]
pub(super) fn visit_moments<E: Encoding>(
    m: &mut Moments,
    enc: &E,
    res: Res<E::V>,
    mean: Option<f64>,
) {
    match (res, mean) {
        (Res::Fill(_), None) => m.fills += 1,
        (Res::Fill(x), Some(mean)) => m.m2 += (x - mean) * (x - mean),
        (res, None) => {
            if let Some(x) = enc.number(res) {
                m.push(x);
            }
        }
        (res, Some(mean)) => {
            if let Some(x) = enc.number(res) {
                m.m2 += (x - mean) * (x - mean);
            }
        }
    }
}

/// The statistics of the rows `rows` (in walk order) added to `start`. Two interleaved
/// accumulators, so that the sums' addition chains overlap.
pub(super) fn scan_moments<E: Encoding>(
    start: Moments,
    mut rows: impl Iterator<Item = usize>,
    resolver: &mut Resolver<E>,
    mean: Option<f64>,
) -> Moments {
    let mut local = *resolver;
    let enc = local.enc;
    let (mut a, mut b) = (start, Moments::new());
    while let Some(r) = rows.next() {
        visit_moments(&mut a, &enc, local.resolve(r), mean);
        let Some(r) = rows.next() else { break };
        visit_moments(&mut b, &enc, local.resolve(r), mean);
    }
    *resolver = local;
    Moments {
        n: a.n + b.n,
        sum: a.sum + b.sum,
        min: a.min.min(b.min),
        max: a.max.max(b.max),
        fills: a.fills + b.fills,
        m2: a.m2 + b.m2,
    }
}

/// The per-column plans: fill values and normalisations, from a statistics pass when needed.
pub(super) fn plan(
    ops: &[Box<dyn ColumnOps + '_>],
    opts: &ColumnsOptions,
    keep: Option<&[bool]>,
    threads: usize,
) -> Result<Vec<Plan>> {
    let given_fill = match opts.nan {
        NanPolicy::Fill(x) => x,
        _ => f64::NAN,
    };
    if opts.normalize == Normalize::None && opts.nan != NanPolicy::Mean {
        return Ok(ops
            .iter()
            .map(|_| Plan {
                fill: given_fill,
                norm: None,
            })
            .collect());
    }
    let scan = |op: &(dyn ColumnOps + '_)| -> Result<Option<Plan>> {
        let mut stats = op.new_stats();
        if op.scan(opts.nan, given_fill, keep, &mut stats, None)? {
            return Ok(None);
        }
        let mut fill = given_fill;
        if let Stats::Moments(m) = &mut stats {
            if opts.nan == NanPolicy::Mean {
                fill = m.mean();
            }
            m.add_fills(fill);
        }
        if opts.normalize == Normalize::ZScore
            && let Stats::Moments(m) = &stats
        {
            let mean = m.mean();
            op.scan(opts.nan, fill, keep, &mut stats, Some(mean))?;
        }
        let norm = (opts.normalize != Normalize::None).then(|| match &stats {
            Stats::Moments(m) => vec![m.norm(opts.normalize)],
            Stats::Counts { counts, rows } => counts
                .iter()
                .map(|&ones| {
                    let (zeros, n) = ((rows - ones) as f64, *rows as f64);
                    let mean = ones as f64 / n;
                    let m = Moments {
                        n: *rows,
                        sum: ones as f64,
                        min: if zeros > 0.0 { 0.0 } else { 1.0 },
                        max: if ones > 0 { 1.0 } else { 0.0 },
                        fills: 0,
                        m2: ones as f64 * (1.0 - mean) * (1.0 - mean) + zeros * mean * mean,
                    };
                    m.norm(opts.normalize)
                })
                .collect(),
        });
        Ok(Some(Plan { fill, norm }))
    };
    let results = kernels::parallel_map(ops.iter().collect(), threads, |op| scan(op.as_ref()));
    let mut plans = Vec::with_capacity(ops.len());
    let mut missing = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result? {
            Some(plan) => plans.push(plan),
            None => missing.push(index),
        }
    }
    if !missing.is_empty() {
        return Err(missing_error(&missing));
    }
    Ok(plans)
}
