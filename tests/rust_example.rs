#![cfg(feature = "ndarray")]
//! Runs examples/rust_api.rs (the README's "Rust" section shows it) and checks that the README
//! shows the file as it is.

mod example {
    include!("../examples/rust_api.rs");

    pub fn run() -> Result<(), dlshare::Error> {
        main()
    }
}

#[test]
fn the_rust_example_runs() {
    example::run().expect("examples/rust_api.rs succeeds");
}

#[test]
fn the_readme_shows_the_rust_example_as_it_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example = std::fs::read_to_string(format!("{root}/examples/rust_api.rs")).expect("example");
    let section = readme
        .split("\n## Rust\n")
        .nth(1)
        .expect("README.md has a \"## Rust\" section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("\n```\n").next())
        .expect("the Rust section has a ```rust block");
    assert_eq!(
        format!("{block}\n"),
        example,
        "README's Rust block differs from examples/rust_api.rs: edit both together"
    );
}
