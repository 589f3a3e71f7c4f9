//! Checks of Arrow arrays against their types, before a byte of their data is read: lengths,
//! offsets and null counts non-negative, `offset + length` without overflow and within the
//! address space, the buffer and child counts the type needs, non-NULL buffers where data is
//! required, non-NULL release callbacks, children at least as long as the batch reads,
//! dictionaries present. Errors name the column and the field.

use super::abi::ArrowArray;
use super::schema::ArrowType;
use crate::error::{Error, Result};

/// Buffers an array of `ty` has (None: not read by dlshare, not checked).
fn buffer_count(ty: &ArrowType) -> Option<(i64, bool)> {
    // (count, exact): a string view array has 2 + variadic data buffers + 1 sizes buffer
    match ty {
        ArrowType::Bool
        | ArrowType::Number(_)
        | ArrowType::Date32
        | ArrowType::Date64
        | ArrowType::Timestamp(..)
        | ArrowType::Duration(_)
        | ArrowType::Decimal128 { .. }
        | ArrowType::Dictionary { .. } => Some((2, true)),
        ArrowType::Utf8 | ArrowType::LargeUtf8 => Some((3, true)),
        ArrowType::Utf8View => Some((3, false)),
        ArrowType::Struct(_) => Some((1, true)),
        ArrowType::Other(_) => None,
    }
}

/// Bits per value in buffer 1 (fixed-width types).
fn value_bits(ty: &ArrowType) -> Option<u64> {
    Some(match ty {
        ArrowType::Bool => 1,
        ArrowType::Number(d) => u64::from(d.bits),
        ArrowType::Date32 => 32,
        ArrowType::Date64 | ArrowType::Timestamp(..) | ArrowType::Duration(_) => 64,
        ArrowType::Dictionary { index, .. } => u64::from(index.bits),
        ArrowType::Utf8View | ArrowType::Decimal128 { .. } => 128,
        _ => return None,
    })
}

/// Checks one array (and what dlshare will read of its children and dictionary) against its
/// type. `extra` is the offset a parent struct adds; `at` names the column for messages.
///
/// # Safety
/// `a` is a valid `ArrowArray` per the C Data Interface (pointers valid when non-NULL).
pub(super) unsafe fn check(
    a: &ArrowArray,
    ty: &ArrowType,
    extra: i64,
    at: &str,
    depth: usize,
) -> Result<()> {
    let bad = |field: &str, what: String| Error::InvalidArgument(format!("{at}: {field} {what}"));
    if depth > 8 {
        return Err(bad("array", "nests too deeply".into()));
    }
    if a.release.is_none() {
        return Err(bad(
            "array.release",
            "is NULL (a released array); pass live arrays".into(),
        ));
    }
    if a.length < 0 {
        return Err(bad(
            "array.length",
            format!("is {}; it must be >= 0", a.length),
        ));
    }
    if a.offset < 0 {
        return Err(bad(
            "array.offset",
            format!("is {}; it must be >= 0", a.offset),
        ));
    }
    if a.null_count < -1 {
        return Err(bad(
            "array.null_count",
            format!("is {}; it must be >= 0, or -1 (unknown)", a.null_count),
        ));
    }
    if a.null_count > a.length {
        return Err(bad(
            "array.null_count",
            format!("is {} but array.length is {}", a.null_count, a.length),
        ));
    }
    if a.n_buffers < 0 || a.n_children < 0 {
        return Err(bad(
            "array.n_buffers/n_children",
            format!("are {}/{}; they must be >= 0", a.n_buffers, a.n_children),
        ));
    }
    let end = a
        .offset
        .checked_add(extra)
        .and_then(|o| o.checked_add(a.length))
        .ok_or_else(|| {
            Error::Overflow(format!(
                "{at}: array.offset {} + length {} overflows 64 bits",
                a.offset, a.length
            ))
        })?;
    if let Some(bits) = value_bits(ty)
        && (end as u128 * u128::from(bits)).div_ceil(8) > isize::MAX as u128
    {
        return Err(Error::Overflow(format!(
            "{at}: array.offset + length = {end} values do not fit in the address space"
        )));
    }
    if let Some((want, exact)) = buffer_count(ty) {
        let ok = if exact {
            a.n_buffers == want
        } else {
            a.n_buffers >= want
        };
        if !ok {
            return Err(bad(
                "array.n_buffers",
                format!(
                    "is {} but a {} array has {}{want}",
                    a.n_buffers,
                    ty.describe(),
                    if exact { "" } else { "at least " }
                ),
            ));
        }
        if a.buffers.is_null() {
            return Err(bad(
                "array.buffers",
                format!("is NULL but array.n_buffers is {}", a.n_buffers),
            ));
        }
        // SAFETY: `buffers` holds n_buffers (>= want >= 1) pointers (C Data Interface).
        let validity = unsafe { *a.buffers };
        if validity.is_null() && a.null_count > 0 {
            return Err(bad(
                "array.buffers[0] (validity)",
                format!("is NULL but array.null_count is {}", a.null_count),
            ));
        }
        if want >= 2 && end > 0 {
            // SAFETY: as above; index 1 < n_buffers.
            let values = unsafe { *a.buffers.add(1) };
            if values.is_null() {
                return Err(bad(
                    "array.buffers[1] (values)",
                    format!("is NULL but the array holds {} values", a.length),
                ));
            }
        }
    }
    if a.n_children > 0 && a.children.is_null() {
        return Err(bad(
            "array.children",
            format!("is NULL but array.n_children is {}", a.n_children),
        ));
    }
    match ty {
        ArrowType::Struct(fields) => {
            if a.n_children != fields.len() as i64 {
                return Err(bad(
                    "array.n_children",
                    format!(
                        "is {} but the schema has {} fields",
                        a.n_children,
                        fields.len()
                    ),
                ));
            }
            for (i, f) in fields.iter().enumerate() {
                // SAFETY: `children` holds n_children pointers.
                let child = unsafe { *a.children.add(i) };
                if child.is_null() {
                    return Err(bad(&format!("array.children[{i}]"), "is NULL".into()));
                }
                // SAFETY: non-NULL child of a valid array.
                let c = unsafe { &*child };
                let cat = format!("column '{}'", f.name);
                if c.length < a.offset + extra + a.length {
                    return Err(Error::InvalidArgument(format!(
                        "{cat}: array.length is {} but the record batch reads {} rows from \
                         offset {}",
                        c.length,
                        a.length,
                        a.offset + extra
                    )));
                }
                if f.ty.is_number()
                    || f.ty.is_temporal()
                    || matches!(
                        f.ty,
                        ArrowType::Bool
                            | ArrowType::Decimal128 { .. }
                            | ArrowType::Dictionary { .. }
                    )
                {
                    // SAFETY: valid child; the struct's offset applies to its children.
                    unsafe { check(c, &f.ty, a.offset + extra, &cat, depth + 1)? };
                }
            }
        }
        ArrowType::Dictionary { values, .. } => {
            if a.dictionary.is_null() {
                return Err(bad(
                    "array.dictionary",
                    "is NULL but the schema is dictionary-encoded".into(),
                ));
            }
            // SAFETY: non-NULL dictionary of a valid array.
            let d = unsafe { &*a.dictionary };
            // SAFETY: as above.
            unsafe { check(d, values, 0, &format!("{at} dictionary"), depth + 1)? };
        }
        _ => {}
    }
    Ok(())
}
