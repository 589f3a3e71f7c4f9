//! The missing-value policy, applied row by row (drop, fill, mean, ffill/bfill, raise).

use super::*;

/// Resolves rows of one column under the policy, carrying values for the ffill/bfill family.
/// Small and `Copy`: the loops work on a local copy (kept in registers) and store it back.
#[derive(Clone, Copy)]
pub(super) struct Resolver<E: Encoding> {
    pub(super) enc: E,
    pub(super) policy: NanPolicy,
    pub(super) fill: f64,
    pub(super) carry: Option<E::V>,
    pub(super) saw_missing: bool,
}

impl<E: Encoding> Resolver<E> {
    /// A resolver for rows `rows` (walked backward for BFILL): the carry starts from the rows
    /// outside the range, as a sequential walk over the whole column would have left it.
    pub(super) fn new(enc: E, policy: NanPolicy, fill: f64, rows: &Range<usize>) -> Self {
        let carry = match policy {
            NanPolicy::Ffill => (0..rows.start).rev().find_map(|r| enc.get(r)),
            NanPolicy::FfillBfill => (0..rows.start)
                .rev()
                .find_map(|r| enc.get(r))
                .or_else(|| (rows.start..enc.len()).find_map(|r| enc.get(r))),
            NanPolicy::Bfill => (rows.end..enc.len()).find_map(|r| enc.get(r)),
            _ => None,
        };
        Resolver {
            enc,
            policy,
            fill,
            carry,
            saw_missing: false,
        }
    }

    #[inline(always)]
    pub(super) fn resolve(&mut self, r: usize) -> Res<E::V> {
        match self.enc.get(r) {
            Some(v) => {
                self.carry = Some(v);
                Res::Val(v)
            }
            None => self.missing(),
        }
    }

    #[inline(always)]
    pub(super) fn missing(&mut self) -> Res<E::V> {
        match self.policy {
            NanPolicy::Raise => {
                self.saw_missing = true;
                Res::Missing
            }
            NanPolicy::Drop => Res::Missing,
            NanPolicy::Fill(_) | NanPolicy::Mean if self.enc.fillable() => Res::Fill(self.fill),
            NanPolicy::Fill(_) | NanPolicy::Mean => Res::Missing,
            NanPolicy::Ffill | NanPolicy::Bfill | NanPolicy::FfillBfill => {
                self.carry.map_or(Res::Missing, Res::Val)
            }
        }
    }
}

pub(super) fn missing_error(columns: &[usize]) -> Error {
    let list: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    Error::InvalidArgument(format!(
        "column{} {} hold{} missing values (NaN, NaT or a missing category) and the NaN policy \
         is RAISE; choose drop, fill (a value), mean, ffill, bfill or ffill_bfill",
        if columns.len() == 1 { "" } else { "s" },
        list.join(", "),
        if columns.len() == 1 { "s" } else { "" },
    ))
}
