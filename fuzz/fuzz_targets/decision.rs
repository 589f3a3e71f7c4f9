//! Fuzzes the decision itself (`dlshare::convert::decide`, DESIGN §3) with arbitrary sources and
//! options. The data pointer is any number: deciding never reads memory. Checks the table's
//! invariants: deciding never panics and is deterministic; SHARE either shares or names its
//! obstacle; COPY never shares; SHARE_OR_COPY shares exactly when SHARE would (same dtype and
//! device) and otherwise copies for the obstacle SHARE named; the Display text is never empty.

#![no_main]

#[path = "common.rs"]
mod common;

use common::Bytes;
use dlshare::{DType, Decision, Device, Error, Mode, Options, Reason, Source, SourceFlags};
use libfuzzer_sys::fuzz_target;

fn options(mode: Mode, b: &mut Bytes) -> Options {
    let mut o = Options::new(mode);
    if b.u8() < 60 {
        o.dtype = Some(b.dtype().into());
    }
    if b.u8() < 20 {
        o.device = Some(b.device().into());
    }
    o.allow_read_only = b.bool();
    o.allow_complex_to_real = b.bool();
    o
}

fn decide(src: &Source, o: &Options) -> Result<Decision, Error> {
    let first = dlshare::convert::decide(src, o);
    assert_eq!(first, dlshare::convert::decide(src, o), "not deterministic");
    if let Err(e) = &first {
        assert!(!e.message().is_empty(), "an error without a message");
    }
    first
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let ndim = usize::from(b.u8() % 6);
    let shape: Vec<i64> = (0..ndim).map(|_| b.extent()).collect();
    let byte_strides: Vec<i64> = if b.u8() < 8 {
        // a mismatched stride count
        (0..usize::from(b.u8() % 6)).map(|_| b.stride()).collect()
    } else {
        (0..ndim).map(|_| b.stride()).collect()
    };
    let dtype: DType = b.dtype().into();
    // The bytes are read in the order the struct literal of earlier versions read them, so the
    // corpus keeps its meaning.
    let data = (match b.u8() {
        0 => 0,
        1..=200 => 0x1000_0000 + usize::from(b.u8()),
        _ => b.u64() as usize,
    }) as *mut u8;
    let byte_offset = match b.u8() {
        0..=230 => u64::from(b.u8() % 16),
        _ => b.u64(),
    };
    let device = b.device().into();
    let flags = SourceFlags {
        read_only: b.bool(),
        byte_swapped: b.bool(),
        subbyte_padded: b.bool(),
    };
    // SAFETY: only decided upon, never converted: `decide` reads no memory.
    let src = unsafe {
        Source::from_raw_parts(data, byte_offset, dtype, shape, byte_strides, device, flags)
    };
    let mut tail = Bytes(b.0);
    let share_opts = options(Mode::Share, &mut tail);
    let share = decide(&src, &share_opts);
    let soc_opts = Options {
        mode: Mode::ShareOrCopy,
        ..share_opts
    };
    let soc = decide(&src, &soc_opts);
    let copy = decide(
        &src,
        &Options {
            mode: Mode::Copy,
            ..share_opts
        },
    );

    if let Ok(d) = &share {
        assert!(d.shared && d.reason == Reason::None, "SHARE copied: {d:?}");
    }
    if let Ok(d) = &copy {
        assert!(
            !d.shared && d.reason == Reason::CopyRequested,
            "COPY shared: {d:?}"
        );
    }
    let same_place = share_opts.dtype.is_none_or(|t| t == src.dtype)
        && share_opts.device.is_none_or(|t| t == src.device);
    match (&share, &soc) {
        (Ok(_), Ok(d)) => assert!(d.shared, "SHARE shares but SHARE_OR_COPY copied: {d:?}"),
        (Ok(_), Err(e)) => panic!("SHARE shares but SHARE_OR_COPY failed: {e:?}"),
        (Err(Error::CannotShare(reason, _)), Ok(d)) if same_place => {
            assert!(!d.shared && d.reason == *reason, "{reason:?} vs {d:?}")
        }
        (Err(Error::CannotShare(..)), Ok(d)) => assert!(!d.shared),
        (Err(_), Ok(d)) if same_place => {
            panic!("SHARE_OR_COPY decided {d:?} where SHARE found the input invalid")
        }
        _ => {}
    }
    if let (Ok(d), Ok(_)) = (&soc, &copy) {
        assert!(d.shared || d.reason != Reason::None);
    }
    // An input SHARE_OR_COPY shares is never refused by COPY for validity reasons.
    if let (Ok(d), Err(e)) = (&soc, &copy) {
        assert!(
            !d.shared || !matches!(e, Error::InvalidArgument(_) | Error::InvalidDlpack(_)),
            "shared, but COPY calls it invalid: {e:?}"
        );
    }
    let _ = Device::CPU;
});
