//! The release binary's code laid out by use: the functions a running server executes
//! (`symbol-order.txt`, recorded by `scripts/symbol-order.sh`) are placed together at the start of
//! `.text`, so that the pages a server touches are few. Without it they are spread over the whole
//! 17 MB of code, and the kernel maps each touched page with its 64 KiB neighbourhood: a steady
//! server then holds most of the binary resident. A name the build no longer has is skipped.
fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=TESSERA_NO_SYMBOL_ORDER");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    // x86_64 Linux (glibc) is where rustc links with its own lld by default (since 1.90); GNU ld
    // has no --symbol-ordering-file
    let lld_by_default = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if !release || !lld_by_default || std::env::var_os("TESSERA_NO_SYMBOL_ORDER").is_some() {
        return;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else { return };
    let order = std::path::Path::new(&dir).join("symbol-order.txt");
    if order.exists() {
        println!("cargo:rustc-link-arg-bin=tessera=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bin=tessera=-Wl,--no-warn-symbol-ordering");
    }
}
