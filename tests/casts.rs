//! Element casts for every pair of the 15 computable dtypes, checked against reference results
//! made by NumPy's `astype` (PyTorch's `.to()` for bfloat16) in tests/data/casts.txt
//! (regenerate with `python3 tests/data/gen_casts.py`). Each pair is also run from a
//! byte-swapped source and from a reversed (negative-stride) source: same results expected.

use dlshare::SourceFlags;
use dlshare::convert::{Mode, Options, Source, convert};
use dlshare::{DType, Device, Kind};
use std::sync::Arc;

fn dtype(name: &str) -> DType {
    DType::from_name(name).expect("known dtype name")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn is_nan(bytes: &[u8], d: DType) -> bool {
    let f = |b: &[u8]| match d.kind() {
        Some(Kind::F16) => half::f16::from_le_bytes([b[0], b[1]]).is_nan(),
        Some(Kind::BF16) => half::bf16::from_le_bytes([b[0], b[1]]).is_nan(),
        Some(Kind::F32) | Some(Kind::C64) => {
            f32::from_le_bytes(b[..4].try_into().unwrap()).is_nan()
        }
        Some(Kind::F64) | Some(Kind::C128) => {
            f64::from_le_bytes(b[..8].try_into().unwrap()).is_nan()
        }
        _ => false,
    };
    match d.kind() {
        Some(Kind::C64) | Some(Kind::C128) => {
            let h = bytes.len() / 2;
            f(&bytes[..h]) || f(&bytes[h..])
        }
        _ => f(bytes),
    }
}

/// Elements equal bit for bit, or both NaN where the reference is NaN (NaN payloads and signs
/// are not part of NumPy's contract).
fn same_element(got: &[u8], want: &[u8], d: DType) -> bool {
    got == want || (is_nan(want, d) && is_nan(got, d))
}

fn run_cast(
    src_bytes: &[u8],
    from: DType,
    to: DType,
    n: usize,
    swapped: bool,
    reversed: bool,
) -> Vec<u8> {
    let item = from.item_size();
    let mut data = src_bytes.to_vec();
    if swapped {
        for element in data.chunks_exact_mut(item) {
            for unit in element.chunks_exact_mut(from.swap_unit()) {
                unit.reverse();
            }
        }
    }
    let (first, stride) = if reversed {
        data.reverse_elements(item);
        (n.saturating_sub(1) * item, -(item as i64))
    } else {
        (0, item as i64)
    };
    let src =
        // SAFETY: `data` is a live buffer holding every element described (the test keeps it
        // alive past the conversion).
        unsafe {
            Source::from_raw_parts(
                data.as_mut_ptr().wrapping_add(first),
                0,
                from,
                vec![n as i64],
                vec![stride],
                Device::CPU,
                SourceFlags {
                    read_only: false,
                    byte_swapped: swapped && item > 1,
                    subbyte_padded: false,
                },
            )
        };
    let opts = Options::new(Mode::Copy)
        .with_dtype(to)
        .allowing_complex_to_real();
    let (t, decision) = convert(&src, &opts, || {
        Arc::new(dlshare::storage::Storage::foreign(
            std::ptr::null_mut(),
            0,
            Device::CPU,
            dlshare::storage::Release::none(),
        ))
    })
    .unwrap_or_else(|e| panic!("cast {from} -> {to}: {e}"));
    assert!(!decision.shared);
    assert!(t.is_c_contiguous() && t.is_copy() && !t.is_read_only());
    // SAFETY: the tensor is C-contiguous with n elements of `to` and alive here.
    unsafe { std::slice::from_raw_parts(t.data_ptr(), n * to.item_size()) }.to_vec()
}

trait ReverseElements {
    fn reverse_elements(&mut self, item: usize);
}
impl ReverseElements for Vec<u8> {
    fn reverse_elements(&mut self, item: usize) {
        let chunks: Vec<Vec<u8>> = self.chunks_exact(item).rev().map(<[u8]>::to_vec).collect();
        *self = chunks.concat();
    }
}

#[test]
fn every_dtype_pair_matches_numpy_and_torch() {
    let table = include_str!("data/casts.txt");
    let mut pairs = 0;
    let mut elements = 0;
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let (from, to) = (dtype(fields[0]), dtype(fields[1]));
        let n: usize = fields[2].parse().unwrap();
        let src = hex(fields[3]);
        let want = hex(fields.get(4).copied().unwrap_or(""));
        assert_eq!(want.len(), n * to.item_size(), "{line}");
        for (swapped, reversed) in [(false, false), (true, false), (false, true), (true, true)] {
            let got = run_cast(&src, from, to, n, swapped, reversed);
            for i in 0..n {
                let size = to.item_size();
                let (g, w) = (&got[i * size..][..size], &want[i * size..][..size]);
                assert!(
                    same_element(g, w, to),
                    "{from} -> {to} element {i} (swapped={swapped}, reversed={reversed}): got {g:02x?}, NumPy/torch give {w:02x?}; source {:02x?}",
                    &src[i * from.item_size()..][..from.item_size()]
                );
            }
        }
        pairs += 1;
        elements += n;
    }
    assert_eq!(
        pairs,
        15 * 15,
        "every ordered pair of the 15 dtypes is in the table"
    );
    assert!(elements > 225 * 4);
}

#[test]
fn complex_to_real_is_refused_unless_allowed() {
    let mut data = [1.0f32, 2.0];
    let src =
        // SAFETY: `data` is a live buffer holding every element described (the test keeps it
        // alive past the conversion).
        unsafe {
            Source::from_raw_parts(
                data.as_mut_ptr().cast(),
                0,
                DType::C64,
                vec![1],
                vec![8],
                Device::CPU,
                SourceFlags {
                    read_only: false,
                    byte_swapped: false,
                    subbyte_padded: false,
                },
            )
        };
    let opts = Options::new(Mode::ShareOrCopy).with_dtype(DType::F32);
    let err = dlshare::convert::decide(&src, &opts).unwrap_err();
    assert!(matches!(err, dlshare::Error::InvalidArgument(_)), "{err:?}");
    assert!(err.message().contains("imaginary"), "{err}");
    let ok = dlshare::convert::decide(&src, &opts.allowing_complex_to_real()).unwrap();
    assert_eq!(ok.reason, dlshare::Reason::DtypeChange);
}
