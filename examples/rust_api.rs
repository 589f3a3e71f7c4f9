// The safe Rust API: tensors over ndarray memory, the three conversion modes with their
// reasons, views, and where mutable access is allowed. Run with
// `cargo run --example rust_api`; `cargo test` runs it too (tests/rust_example.rs).

use dlshare::convert::{Mode, Options, convert_tensor};
use dlshare::{DType, Error, Reason, Tensor};
use ndarray::{ArrayD, IxDyn};

fn main() -> Result<(), Error> {
    // An ndarray moves into a tensor without a copy.
    let array = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
        .expect("six values for 2 x 3");
    let first = array.as_ptr();
    let mut t = Tensor::from_ndarray(array);
    assert_eq!(t.data_ptr().cast_const(), first.cast::<u8>());

    // The tensor alone holds that memory, so it may be viewed mutably.
    t.as_array_view_mut::<f32>()?[[0, 0]] = 10.0;

    // SHARE (torch.from_numpy): the same memory, nothing copied.
    let (shared, decision) = convert_tensor(&t, &Options::new(Mode::Share))?;
    assert!(decision.shared && shared.shares_storage_with(&t));
    assert_eq!(shared.as_array_view::<f32>()?[[0, 0]], 10.0);

    // Two tensors now see the memory: a mutable view is refused until one of them is gone.
    assert!(t.as_array_view_mut::<f32>().is_err());
    drop(shared);
    assert!(t.as_array_view_mut::<f32>().is_ok());

    // SHARE_OR_COPY (torch.as_tensor) with a dtype change copies, and says why.
    let opts = Options::new(Mode::ShareOrCopy).with_dtype(DType::F16);
    let (halves, decision) = convert_tensor(&t, &opts)?;
    assert!(!decision.shared && decision.reason == Reason::DtypeChange);
    assert!(halves.is_copy() && halves.is_c_contiguous());
    println!("float16 copy: {}", decision.detail());

    // A view with the rows reversed (NumPy's a[::-1]) shares the storage ...
    let reversed = t.restride(&[2, 3], &[-3, 1], 3)?;
    assert!(reversed.shares_storage_with(&t));
    assert_eq!(reversed.as_array_view::<f32>()?[[0, 0]], 4.0);
    // ... and SHARE refuses it, with the reason and what to do instead.
    match convert_tensor(&reversed, &Options::new(Mode::Share)) {
        Err(Error::CannotShare(Reason::NegativeStride, message)) => println!("refused: {message}"),
        other => panic!("expected a negative-stride refusal, got {other:?}"),
    }
    // COPY (torch.tensor) always copies: C-contiguous, aligned, writable.
    let (copy, decision) = convert_tensor(&reversed, &Options::new(Mode::Copy))?;
    assert_eq!(decision.reason, Reason::CopyRequested);
    assert_eq!(
        copy.as_array_view::<f32>()?.as_slice(),
        Some(&[4.0, 5.0, 6.0, 10.0, 2.0, 3.0][..])
    );
    Ok(())
}
