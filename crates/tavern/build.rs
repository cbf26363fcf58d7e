//! Lays out the `tavern` binary's code: the functions a server runs at start
//! and at rest (listed in `symbol-order.txt`, made by
//! `bench/symbol-order.sh`) are linked next to each other, so the kernel
//! maps a few megabytes of the binary for them instead of most of it.

fn main() {
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    // Only lld reads an ordering file: Rust's own linker on x86_64 Linux
    // (where the list was made), unless another linker was configured.
    // Names missing from a build (another profile, features or version)
    // are skipped without a word.
    let linux_x86 = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let own_linker = std::env::var_os("RUSTC_LINKER").is_none();
    if linux_x86 && own_linker && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
