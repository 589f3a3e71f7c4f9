//! Every row of the decision table (docs/design.md) in all three modes, through raw NumPy-style
//! views (byte strides) and, where DLPack can express the input, through versioned and legacy
//! DLPack imports. For each: the status, the decision (shared, reason, non-empty detail), that the
//! matching `explain` call says the same without calling anything, the release callback or
//! deleter count, and then for copies the values (computed here from the source buffer) and
//! the copy's layout, for shares the pointer and writes visible both ways.

mod common;

use std::sync::atomic::AtomicUsize;

use common::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// Shared writable.
    Share,
    /// Shared as a read-only tensor.
    ShareRo,
    /// Copied, for this reason.
    Copy(dlshare_reason),
    /// Refused with this status; a SHARE refusal also fills the decision with the reason.
    Fail(dlshare_status, Option<dlshare_reason>),
}

use Want::*;

const MODES: [dlshare_mode; 3] = [SHARE, SHARE_OR_COPY, COPY];

fn cannot_share(r: dlshare_reason) -> Want {
    Fail(DLSHARE_ERR_CANNOT_SHARE, Some(r))
}

/// Converts one element's bytes (source dtype, native order) to the target dtype's bytes.
type Cast = fn(&[u8]) -> Vec<u8>;

struct Row {
    name: &'static str,
    dtype: DLDataType,
    shape: Vec<i64>,
    /// Byte strides; `None` for C-contiguous (NULL).
    byte_strides: Option<Vec<i64>>,
    buffer: Buf,
    /// Byte index of element (0, ..., 0) in the buffer; `None` for a NULL data pointer.
    first: Option<usize>,
    flags: u32,
    target_dtype: Option<DLDataType>,
    target_device: Option<DLDevice>,
    allow_read_only: bool,
    want: [Want; 3],
    cast: Option<Cast>,
    /// Whether DLPack can describe this input (element strides, no byte-order flag).
    dlpack: bool,
}

impl Row {
    fn new(name: &'static str, dtype: DLDataType, shape: &[i64], bytes: Vec<u8>) -> Row {
        Row {
            name,
            dtype,
            shape: shape.to_vec(),
            byte_strides: None,
            buffer: Buf::from_bytes(&bytes),
            first: Some(0),
            flags: 0,
            target_dtype: None,
            target_device: None,
            allow_read_only: false,
            want: [Share, Share, Copy(DLSHARE_REASON_COPY_REQUESTED)],
            cast: None,
            dlpack: true,
        }
    }
    fn strides(mut self, s: &[i64]) -> Row {
        self.byte_strides = Some(s.to_vec());
        self
    }
    fn first(mut self, at: usize) -> Row {
        self.first = Some(at);
        self
    }
    fn null_data(mut self) -> Row {
        self.first = None;
        self
    }
    fn flags(mut self, f: u32) -> Row {
        self.flags = f;
        self.dlpack = f & DLSHARE_VIEW_BYTE_SWAPPED == 0;
        self
    }
    fn want(mut self, w: [Want; 3]) -> Row {
        self.want = w;
        self
    }
    fn cast_to(mut self, d: DLDataType, cast: Cast) -> Row {
        self.target_dtype = Some(d);
        self.cast = Some(cast);
        self
    }
    fn onto(mut self, d: DLDevice) -> Row {
        self.target_device = Some(d);
        self
    }
    fn allow_read_only(mut self) -> Row {
        self.allow_read_only = true;
        self
    }
    fn no_dlpack(mut self) -> Row {
        self.dlpack = false;
        self
    }

    fn item(&self) -> usize {
        item_size(self.dtype)
    }
    fn data(&self) -> *mut u8 {
        self.first.map_or(std::ptr::null_mut(), |at| {
            self.buffer.ptr().wrapping_add(at)
        })
    }
    fn effective_byte_strides(&self) -> Vec<i64> {
        self.byte_strides.clone().unwrap_or_else(|| {
            c_strides(&self.shape)
                .iter()
                .map(|s| s * self.item() as i64)
                .collect()
        })
    }
    fn target(&self) -> DLDataType {
        self.target_dtype.unwrap_or(self.dtype)
    }
    fn options(&self, mode: dlshare_mode) -> dlshare_options {
        let mut o = opts(mode);
        if let Some(d) = self.target_dtype {
            o.has_dtype = true;
            o.dtype = d;
        }
        if let Some(d) = self.target_device {
            o.has_device = true;
            o.device = d;
        }
        o.allow_read_only = self.allow_read_only;
        o
    }
    fn view(&self, released: &AtomicUsize) -> dlshare_view {
        view(
            self.data(),
            self.dtype,
            &self.shape,
            self.byte_strides.as_deref(),
            self.flags,
            released,
        )
    }
    /// The values a copy must hold, computed from the source buffer: gather in C order, undo
    /// the byte order, cast.
    fn expected_copy(&self) -> Vec<u8> {
        if numel(&self.shape) == 0 {
            return Vec::new();
        }
        // SAFETY: the row's elements lie inside its buffer.
        let raw = unsafe {
            gather(
                self.data(),
                &self.shape,
                &self.effective_byte_strides(),
                self.item(),
            )
        };
        let native = if self.flags & DLSHARE_VIEW_BYTE_SWAPPED != 0 {
            let unit = if self.dtype.code == 5 {
                self.item() / 2
            } else {
                self.item()
            };
            swap_units(&raw, unit)
        } else {
            raw
        };
        match self.cast {
            Some(cast) => native.chunks_exact(self.item()).flat_map(cast).collect(),
            None => native,
        }
    }
    /// Element strides a shared tensor reports: byte stride / item size, except on axes of
    /// extent <= 1 whose byte stride is not a whole number of items (those get the C stride).
    fn expected_share_strides(&self) -> Vec<i64> {
        let item = self.item() as i64;
        let c = c_strides(&self.shape);
        self.effective_byte_strides()
            .iter()
            .zip(&self.shape)
            .zip(&c)
            .map(|((&s, &n), &cs)| {
                if n <= 1 && s % item != 0 {
                    cs
                } else {
                    s / item
                }
            })
            .collect()
    }
    /// The byte offset of the last element (C order) from the first.
    fn last_offset(&self, byte_strides: &[i64]) -> isize {
        self.shape
            .iter()
            .zip(byte_strides)
            .map(|(&n, &s)| (n - 1) * s)
            .sum::<i64>() as isize
    }
}

/// float64 with 4 lanes (32-byte elements).
const F64X4: DLDataType = DLDataType {
    code: 2,
    bits: 64,
    lanes: 4,
};

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

fn f32s(n: usize) -> Vec<u8> {
    to_bytes(&(0..n).map(|i| i as f32 * 0.75 - 3.0).collect::<Vec<_>>())
}

fn rows() -> Vec<Row> {
    let cr = Copy(DLSHARE_REASON_COPY_REQUESTED);
    let i32s = |n: usize| to_bytes(&(0..n as i32).map(|i| i * 1001 - 77).collect::<Vec<_>>());
    let i16s = |n: usize| to_bytes(&(0..n as i16).map(|i| i * 3 - 20).collect::<Vec<_>>());
    let f64s = |n: usize| to_bytes(&(0..n).map(|i| i as f64 / 3.0 - 1.0).collect::<Vec<_>>());
    // int32 values 5 apart in a byte buffer with 6-byte spacing (a packed struct field).
    let mut packed = vec![0u8; 5 * 6];
    for i in 0..5 {
        packed[i * 6..i * 6 + 4].copy_from_slice(&(i as i32 * 5 - 9).to_ne_bytes());
    }
    // Misaligned float32: the values start at byte 1.
    let mut odd = vec![0u8];
    odd.extend(f32s(6));
    // complex128 at a 4-byte (not 8-byte) boundary.
    let mut c128_4 = vec![0u8; 4];
    c128_4.extend(to_bytes(&[1.5f64, -2.5, 3.5, -4.5]));
    // Non-native byte order sources.
    let swapped = |native: Vec<u8>, unit: usize| swap_units(&native, unit);
    let c64 = to_bytes(&[1.5f32, -2.0, 0.25, 8.0, -0.5, 3.0]);
    let c128 = to_bytes(&[1e10f64, -2.5, 0.125, 7.0]);
    let f16s = to_bytes(&[1.0f32, -2.5, 0.5, 65504.0].map(|x| half::f16::from_f32(x).to_bits()));

    vec![
        // Plain writable memory: C order, F order, strided and permuted views.
        Row::new("c_order_null_strides_f32", F32, &[3, 4], f32s(12)),
        Row::new("c_order_explicit_strides_f32", F32, &[3, 4], f32s(12)).strides(&[16, 4]),
        Row::new("f_order_f64", F64, &[3, 4], f64s(12)).strides(&[8, 24]),
        // Every other row and column of a 4 x 6 int16 array.
        Row::new("strided_view_i16", I16, &[2, 3], i16s(24)).strides(&[24, 4]),
        Row::new(
            "permuted_3d_u32",
            U32,
            &[4, 2, 3],
            to_bytes(&(0..24u32).collect::<Vec<_>>()),
        )
        .strides(&[4, 48, 16]),
        Row::new("c_order_c128", C128, &[2, 2], c128.clone().repeat(2)),
        // Elements wider than any computable type are copied unchanged, byte for byte.
        Row::new("vector_f64x4_f_order", F64X4, &[2, 3], bytes(6 * 32)).strides(&[32, 64]),
        Row::new(
            "opaque_200_bits_every_other",
            dt(3, 200),
            &[3],
            bytes(6 * 25),
        )
        .strides(&[50]),
        // Read-only memory.
        Row::new("read_only_f32", F32, &[3, 4], f32s(12))
            .flags(DLSHARE_VIEW_READ_ONLY)
            .want([
                cannot_share(DLSHARE_REASON_READ_ONLY),
                Copy(DLSHARE_REASON_READ_ONLY),
                cr,
            ]),
        Row::new("read_only_allowed_f32", F32, &[3, 4], f32s(12))
            .flags(DLSHARE_VIEW_READ_ONLY)
            .allow_read_only()
            .want([ShareRo, ShareRo, cr]),
        Row::new("read_only_allowed_but_negative_i32", I32, &[3, 4], i32s(12))
            .flags(DLSHARE_VIEW_READ_ONLY)
            .allow_read_only()
            .first(32)
            .strides(&[-16, 4])
            .want([
                cannot_share(DLSHARE_REASON_NEGATIVE_STRIDE),
                Copy(DLSHARE_REASON_NEGATIVE_STRIDE),
                cr,
            ]),
        // Negative strides.
        Row::new("negative_outer_stride_i32", I32, &[3, 4], i32s(12))
            .first(32)
            .strides(&[-16, 4])
            .want([
                cannot_share(DLSHARE_REASON_NEGATIVE_STRIDE),
                Copy(DLSHARE_REASON_NEGATIVE_STRIDE),
                cr,
            ]),
        Row::new("negative_inner_stride_f64", F64, &[6], f64s(6))
            .first(40)
            .strides(&[-8])
            .want([
                cannot_share(DLSHARE_REASON_NEGATIVE_STRIDE),
                Copy(DLSHARE_REASON_NEGATIVE_STRIDE),
                cr,
            ]),
        Row::new("negative_stride_on_size_1_axis_f32", F32, &[1, 4], f32s(4)).strides(&[-64, 4]),
        // Byte strides that are not whole items.
        Row::new("stride_not_item_multiple_i32", I32, &[5], packed)
            .strides(&[6])
            .no_dlpack()
            .want([
                cannot_share(DLSHARE_REASON_STRIDE_NOT_ITEM_MULTIPLE),
                Copy(DLSHARE_REASON_STRIDE_NOT_ITEM_MULTIPLE),
                cr,
            ]),
        Row::new("odd_stride_on_size_1_axis_f32", F32, &[1, 4], f32s(4))
            .strides(&[3, 4])
            .no_dlpack(),
        // Non-native byte order.
        Row::new("byte_swapped_i32", I32, &[2, 3], swapped(i32s(6), 4))
            .flags(DLSHARE_VIEW_BYTE_SWAPPED)
            .want([
                cannot_share(DLSHARE_REASON_BYTE_ORDER),
                Copy(DLSHARE_REASON_BYTE_ORDER),
                cr,
            ]),
        Row::new(
            "byte_swapped_f64_f_order",
            F64,
            &[3, 2],
            swapped(f64s(6), 8),
        )
        .strides(&[8, 24])
        .flags(DLSHARE_VIEW_BYTE_SWAPPED)
        .want([
            cannot_share(DLSHARE_REASON_BYTE_ORDER),
            Copy(DLSHARE_REASON_BYTE_ORDER),
            cr,
        ]),
        Row::new("byte_swapped_c64", C64, &[3], swapped(c64, 4))
            .flags(DLSHARE_VIEW_BYTE_SWAPPED)
            .want([
                cannot_share(DLSHARE_REASON_BYTE_ORDER),
                Copy(DLSHARE_REASON_BYTE_ORDER),
                cr,
            ]),
        Row::new("byte_swapped_c128", C128, &[2], swapped(c128, 8))
            .flags(DLSHARE_VIEW_BYTE_SWAPPED)
            .want([
                cannot_share(DLSHARE_REASON_BYTE_ORDER),
                Copy(DLSHARE_REASON_BYTE_ORDER),
                cr,
            ]),
        Row::new("byte_swapped_f16", F16, &[4], swapped(f16s, 2))
            .flags(DLSHARE_VIEW_BYTE_SWAPPED)
            .want([
                cannot_share(DLSHARE_REASON_BYTE_ORDER),
                Copy(DLSHARE_REASON_BYTE_ORDER),
                cr,
            ]),
        Row::new("byte_swapped_i32_to_f64", I32, &[3], swapped(i32s(3), 4))
            .flags(DLSHARE_VIEW_BYTE_SWAPPED)
            .cast_to(F64, |b| {
                (i32::from_ne_bytes(b.try_into().unwrap()) as f64)
                    .to_ne_bytes()
                    .to_vec()
            })
            .want([
                Fail(DLSHARE_ERR_INVALID_ARGUMENT, None),
                Copy(DLSHARE_REASON_DTYPE_CHANGE),
                cr,
            ]),
        // A one-byte type has no byte order: the flag changes nothing.
        Row::new("byte_swapped_flag_on_u8", U8, &[4], vec![1, 2, 3, 4])
            .flags(DLSHARE_VIEW_BYTE_SWAPPED),
        // Misaligned data.
        Row::new("misaligned_f32", F32, &[2, 3], odd)
            .first(1)
            .want([
                cannot_share(DLSHARE_REASON_MISALIGNED),
                Copy(DLSHARE_REASON_MISALIGNED),
                cr,
            ]),
        Row::new("misaligned_c128", C128, &[2], c128_4)
            .first(4)
            .want([
                cannot_share(DLSHARE_REASON_MISALIGNED),
                Copy(DLSHARE_REASON_MISALIGNED),
                cr,
            ]),
        // dtype changes.
        Row::new("dtype_change_f32_to_f64", F32, &[3, 4], f32s(12))
            .strides(&[4, 12])
            .cast_to(F64, |b| {
                (f32::from_ne_bytes(b.try_into().unwrap()) as f64)
                    .to_ne_bytes()
                    .to_vec()
            })
            .want([
                Fail(DLSHARE_ERR_INVALID_ARGUMENT, None),
                Copy(DLSHARE_REASON_DTYPE_CHANGE),
                cr,
            ]),
        Row::new("dtype_change_i32_to_i64", I32, &[5], i32s(5))
            .cast_to(I64, |b| {
                i64::from(i32::from_ne_bytes(b.try_into().unwrap()))
                    .to_ne_bytes()
                    .to_vec()
            })
            .want([
                Fail(DLSHARE_ERR_INVALID_ARGUMENT, None),
                Copy(DLSHARE_REASON_DTYPE_CHANGE),
                cr,
            ]),
        Row::new("same_dtype_requested_f32", F32, &[3], f32s(3)).cast_to(F32, |b| b.to_vec()),
        // device changes.
        Row::new("device_change_to_cuda", F32, &[3], f32s(3))
            .onto(CUDA0)
            .want([
                Fail(DLSHARE_ERR_INVALID_ARGUMENT, None),
                Fail(DLSHARE_ERR_DEVICE_UNAVAILABLE, None),
                Fail(DLSHARE_ERR_DEVICE_UNAVAILABLE, None),
            ]),
        Row::new("same_device_requested", F32, &[3], f32s(3)).onto(CPU),
        // Unsupported dtypes: refused in every mode.
        Row::new("unknown_code_99", dt(99, 32), &[2], vec![0; 8])
            .want([Fail(DLSHARE_ERR_UNSUPPORTED_DTYPE, None); 3]),
        Row::new("float_with_8_bits", dt(2, 8), &[2], vec![0; 2])
            .want([Fail(DLSHARE_ERR_UNSUPPORTED_DTYPE, None); 3]),
        Row::new("int_with_12_bits", dt(0, 12), &[2], vec![0; 4])
            .want([Fail(DLSHARE_ERR_UNSUPPORTED_DTYPE, None); 3]),
        Row::new("complex_with_32_bits", dt(5, 32), &[2], vec![0; 8])
            .want([Fail(DLSHARE_ERR_UNSUPPORTED_DTYPE, None); 3]),
        Row::new("bool_with_16_bits", dt(6, 16), &[2], vec![0; 4])
            .want([Fail(DLSHARE_ERR_UNSUPPORTED_DTYPE, None); 3]),
        // Zero-size and 0-d.
        Row::new("zero_size_null_data", F32, &[0, 4], Vec::new()).null_data(),
        Row::new("zero_size_with_data", I64, &[3, 0], vec![0; 8]),
        Row::new("zero_size_negative_stride", F32, &[0, 4], vec![0; 16]).strides(&[-16, 4]),
        Row::new("zero_d_f64", F64, &[], to_bytes(&[2.5f64])),
        Row::new("zero_d_i16", I16, &[], to_bytes(&[-12i16])),
        // Zero (broadcast) strides.
        Row::new("zero_stride_rows_f32", F32, &[3, 4], f32s(4)).strides(&[0, 4]),
        Row::new("all_zero_strides_u16", U16, &[2, 3], to_bytes(&[4242u16])).strides(&[0, 0]),
    ]
}

/// Where the source memory of one conversion is.
struct Src<'a> {
    /// Address of element (0, ..., 0) (NULL for NULL data).
    first: *mut u8,
    /// The whole source buffer, when it outlives the conversion (views), to check that
    /// copies do not alias it.
    buffer: Option<&'a Buf>,
    /// For DLPack: the `data` and `byte_offset` the producer gave.
    dlpack: Option<(*mut std::ffi::c_void, u64)>,
    /// The source's values in C order, converted to the target dtype.
    expected: &'a [u8],
}

/// The checks common to views and DLPack once a conversion succeeded or failed. `taken`
/// counts the release callback / deleter calls.
fn check_outcome(
    row: &Row,
    mode: dlshare_mode,
    path: &str,
    (s, h, d): (dlshare_status, *mut dlshare_tensor, dlshare_decision),
    explained: (dlshare_status, dlshare_decision),
    taken: &dyn Fn() -> usize,
    src: Src<'_>,
) {
    let expected_values = src.expected;
    let want = row.want[mode as usize];
    let what = format!("{} / {:?} / {path}", row.name, mode);
    assert_eq!(explained.0, s, "{what}: explain gives another status");
    match want {
        Share | ShareRo => {
            ok(s);
            assert!(d.shared, "{what}: not shared");
            assert_eq!(d.reason, DLSHARE_REASON_NONE, "{what}");
            assert!(!detail(&d).is_empty(), "{what}: empty detail");
            assert_eq!(
                summary(&explained.1),
                summary(&d),
                "{what}: explain differs"
            );
            assert_eq!(taken(), 0, "{what}: released while shared");
            let (dl, flags) = info(h);
            match src.dlpack {
                Some((data, off)) => {
                    assert_eq!(dl.data, data, "{what}: data pointer differs");
                    assert_eq!(dl.byte_offset, off, "{what}");
                }
                None => {
                    assert_eq!(dl.data.cast::<u8>(), src.first, "{what}: pointer differs");
                    assert_eq!(dl.byte_offset, 0);
                }
            }
            assert_eq!(data_of(h), src.first, "{what}: first element");
            assert_eq!(dl.dtype, row.dtype);
            assert_eq!(dl.device, CPU);
            assert_eq!(dl_shape(&dl), row.shape);
            if numel(&row.shape) > 0 {
                assert_eq!(
                    dl_strides(&dl).unwrap(),
                    row.expected_share_strides(),
                    "{what}: strides"
                );
                assert_eq!(contents(h), expected_values, "{what}: shared values");
            }
            let ro = want == ShareRo;
            assert_eq!(flags & FLAG_READ_ONLY != 0, ro, "{what}: READ_ONLY flag");
            assert_eq!(flags & FLAG_IS_COPIED, 0, "{what}: IS_COPIED on a share");
            if !ro && numel(&row.shape) > 0 {
                check_writes_both_ways(row, h, src.first, &what);
            }
            release(h);
            assert_eq!(
                taken(),
                1,
                "{what}: not released exactly once on the last release"
            );
        }
        Copy(reason) => {
            ok(s);
            assert!(!d.shared, "{what}: shared");
            assert_eq!(d.reason, reason, "{what}: reason");
            assert!(!detail(&d).is_empty(), "{what}: empty detail");
            assert_eq!(
                summary(&explained.1),
                summary(&d),
                "{what}: explain differs"
            );
            assert_eq!(
                taken(),
                1,
                "{what}: source not released right after the copy"
            );
            assert_is_fresh_copy(h, row.target(), &row.shape);
            assert_eq!(contents(h), expected_values, "{what}: copied values");
            if let (Some(buf), true) = (src.buffer, numel(&row.shape) > 0) {
                let before = buf.bytes();
                // SAFETY: the copy is writable and holds at least one element.
                unsafe { data_of(h).write_bytes(0xA5, item_size(row.target())) };
                assert_eq!(buf.bytes(), before, "{what}: the copy aliases the source");
            }
            release(h);
            assert_eq!(taken(), 1, "{what}: released twice");
        }
        Fail(status, reason) => {
            fails(s, status);
            assert_eq!(h, SENTINEL, "{what}: output written on failure");
            assert_eq!(taken(), 0, "{what}: released on failure");
            match reason {
                Some(r) => {
                    assert!(!d.shared);
                    assert_eq!(d.reason, r, "{what}: refusal reason");
                    assert!(!detail(&d).is_empty());
                    assert_eq!(
                        summary(&explained.1),
                        summary(&d),
                        "{what}: explain differs"
                    );
                }
                None => {
                    assert_untouched(&d);
                    assert_untouched(&explained.1);
                }
            }
        }
    }
}

/// Writes through the tensor land in the source memory and the other way round.
fn check_writes_both_ways(row: &Row, h: *mut dlshare_tensor, first: *mut u8, what: &str) {
    let item = row.item();
    let (dl, _) = info(h);
    let tensor_bs: Vec<i64> = dl_strides(&dl)
        .unwrap()
        .iter()
        .map(|s| s * item as i64)
        .collect();
    let via_tensor = data_of(h).wrapping_offset(row.last_offset(&tensor_bs));
    let via_source = first.wrapping_offset(row.last_offset(&row.effective_byte_strides()));
    // SAFETY: both addresses are the last element of live, writable memory.
    unsafe {
        via_tensor.write_bytes(0x3C, item);
        assert_eq!(
            std::slice::from_raw_parts(via_source, item),
            vec![0x3C; item],
            "{what}: a write through the tensor is not seen in the source"
        );
        first.write_bytes(0x5A, item);
        assert_eq!(
            std::slice::from_raw_parts(data_of(h), item),
            vec![0x5A; item],
            "{what}: a write to the source is not seen through the tensor"
        );
    }
}

#[test]
fn every_row_through_views() {
    let _g = lock();
    for mode in MODES {
        for row in rows() {
            let expected = row.expected_copy();
            let released = AtomicUsize::new(0);
            let v = row.view(&released);
            let o = row.options(mode);
            let mut e = blank_decision();
            // SAFETY: valid pointers.
            let es = unsafe { dlshare_explain_view(&v, &o, &mut e) };
            assert_eq!(count(&released), 0, "{}: explain released", row.name);
            let result = from_view(&v, &o);
            let src = Src {
                first: row.data(),
                buffer: Some(&row.buffer),
                dlpack: None,
                expected: &expected,
            };
            check_outcome(
                &row,
                mode,
                "view",
                result,
                (es, e),
                &|| count(&released),
                src,
            );
        }
    }
}

/// The row as a DLPack producer would describe it: data = buffer start, byte_offset = where
/// element 0 lives, element strides.
fn row_spec(row: &Row) -> Spec {
    let item = row.item() as i64;
    let mut spec = Spec::new(row.dtype, &row.shape, row.buffer.bytes());
    spec.strides = row
        .byte_strides
        .as_ref()
        .map(|bs| bs.iter().map(|s| s / item).collect());
    match row.first {
        Some(at) => spec.byte_offset = at as u64,
        None => spec.null_data = true,
    }
    if row.flags & DLSHARE_VIEW_READ_ONLY != 0 {
        spec.flags = FLAG_READ_ONLY;
    }
    spec
}

/// Where element 0 of a producer's tensor lives.
fn producer_first(row: &Row, base: *mut u8) -> *mut u8 {
    row.first
        .map_or(std::ptr::null_mut(), |at| base.wrapping_add(at))
}

#[test]
fn every_row_through_versioned_dlpack() {
    let _g = lock();
    for mode in MODES {
        for row in rows().into_iter().filter(|r| r.dlpack) {
            let expected = row.expected_copy();
            let spec = row_spec(&row);
            let p = produce_versioned(&spec);
            let before = p.snapshot();
            let o = row.options(mode);
            let mut e = blank_decision();
            // SAFETY: valid pointers.
            let es = unsafe { dlshare_explain_dlpack(p.managed, &o, &mut e) };
            assert_eq!(p.deletions(), 0, "{}: explain deleted", row.name);
            assert_eq!(p.snapshot(), before, "{}: explain modified", row.name);
            let result = import_versioned(p.managed, &o);
            let failed = result.0 != DLSHARE_OK;
            let src = Src {
                first: producer_first(&row, p.base),
                buffer: None,
                dlpack: Some((p.data, spec.byte_offset)),
                expected: &expected,
            };
            check_outcome(
                &row,
                mode,
                "versioned",
                result,
                (es, e),
                &|| p.deletions(),
                src,
            );
            if failed {
                assert_eq!(
                    p.snapshot(),
                    before,
                    "{}: struct changed on failure",
                    row.name
                );
                call_deleter_versioned(p.managed);
                assert_eq!(p.deletions(), 1);
            }
        }
    }
}

#[test]
fn every_writable_row_through_legacy_dlpack() {
    let _g = lock();
    for mode in MODES {
        for row in rows()
            .into_iter()
            .filter(|r| r.dlpack && r.flags & DLSHARE_VIEW_READ_ONLY == 0)
        {
            let expected = row.expected_copy();
            let spec = row_spec(&row);
            let l = produce_legacy(&spec);
            let before = l.snapshot();
            let o = row.options(mode);
            let mut e = blank_decision();
            // SAFETY: valid pointers.
            let es = unsafe { dlshare_explain_dlpack_legacy(l.managed, &o, &mut e) };
            assert_eq!(l.deletions(), 0);
            assert_eq!(l.snapshot(), before);
            let result = import_legacy(l.managed, &o);
            let failed = result.0 != DLSHARE_OK;
            let src = Src {
                first: producer_first(&row, l.base),
                buffer: None,
                dlpack: Some((l.data, spec.byte_offset)),
                expected: &expected,
            };
            check_outcome(
                &row,
                mode,
                "legacy",
                result,
                (es, e),
                &|| l.deletions(),
                src,
            );
            if failed {
                assert_eq!(l.snapshot(), before);
                call_deleter_legacy(l.managed);
                assert_eq!(l.deletions(), 1);
            }
        }
    }
}

/// A view and its options both wrong: the conversion reports what `explain` reports, the view's
/// error first (found by the view_convert fuzz target when the two disagreed).
#[test]
fn explain_and_convert_report_the_same_error_first() {
    let mut data = [0u8; 16];
    let released = AtomicUsize::new(0);
    let shape = [4i64];
    let mut bad_mode = opts(SHARE);
    bad_mode.mode = 7;
    let cases = [
        (dt(99, 32), bad_mode, DLSHARE_ERR_UNSUPPORTED_DTYPE),
        (F32, bad_mode, DLSHARE_ERR_INVALID_ARGUMENT),
    ];
    for (dtype, o, want) in cases {
        let v = view(data.as_mut_ptr(), dtype, &shape, None, 0, &released);
        let mut e = blank_decision();
        // SAFETY: valid pointers.
        let se = unsafe { dlshare_explain_view(&v, &o, &mut e) };
        let (s, h, _) = from_view(&v, &o);
        assert_eq!((se, s), (want, want), "explain then convert");
        assert_eq!(h, SENTINEL, "a failure writes no handle");
    }
    assert_eq!(count(&released), 0, "no release after failures");
}
