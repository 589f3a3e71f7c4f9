// Gives the shared library an SONAME carrying the ABI (major) version, so that installed
// consumers link against libdlshare.so.0 and survive minor upgrades.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdlshare.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
