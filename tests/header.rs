//! The committed `include/dlshare.h` must equal what the pinned cbindgen generates from the
//! crate. Regenerate with `DLSHARE_UPDATE_HEADER=1 cargo test --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("utf-8 header");
    let path = root.join("include/dlshare.h");
    if std::env::var_os("DLSHARE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/dlshare.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/dlshare.h is stale: regenerate it with DLSHARE_UPDATE_HEADER=1 cargo test --test header"
    );
}
