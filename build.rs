// Gives the shared library an SONAME carrying its ABI version (docs/abi.md): the major version
// from 1.0 on (libdlshare.so.1), and `0.MINOR` before 1.0 (libdlshare.so.0.1), where a minor
// release may break the ABI (Cargo's semver rule for 0.x). Consumers link against the SONAME and
// survive every upgrade that keeps it. cmake/CMakeLists.txt applies the same rule to the file
// names and to the CMake package's version compatibility.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_else(|_| "0".into());
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdlshare.so.{abi}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
