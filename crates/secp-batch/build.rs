//! Builds `csrc/schnorr_batch.c`, kiln's BIP340 batch verifier, against the
//! libsecp256k1 sources that the `secp256k1-sys` crate ships (and links: the
//! batch code uses its internal arithmetic and its precomputed tables).
//!
//! The sources are found in `vendor/secp256k1-sys` (a `cargo vendor` tree) or
//! cargo's registry checkout of the pinned `secp256k1-sys` version, or
//! wherever `KILN_SECP256K1_SYS_DIR` points.

use std::env;
use std::path::{Path, PathBuf};

/// Must match the `secp256k1-sys = "=…"` pin in Cargo.toml: the C code uses
/// this version's symbol prefix (`rustsecp256k1_v0_10_0_`).
const SECP256K1_SYS: &str = "secp256k1-sys-0.10.1";

fn registry_dirs() -> Vec<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(home) = home else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(home.join("registry").join("src")) else { return Vec::new() };
    entries.flatten().map(|e| e.path().join(SECP256K1_SYS)).collect()
}

fn find_sources() -> PathBuf {
    println!("cargo:rerun-if-env-changed=KILN_SECP256K1_SYS_DIR");
    let candidates: Vec<PathBuf> = match env::var_os("KILN_SECP256K1_SYS_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            // `cargo vendor` layout first (a vendored build never reads the
            // registry), then every registry checkout.
            let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            let mut dirs = vec![manifest.join("vendor").join("secp256k1-sys")];
            dirs.extend(registry_dirs());
            dirs
        }
    };
    for dir in &candidates {
        let src = dir.join("depend").join("secp256k1");
        if src.join("src").join("ecmult_impl.h").is_file() {
            return src;
        }
    }
    panic!(
        "kiln: cannot find the {SECP256K1_SYS} sources (looked in {candidates:?}); \
         set KILN_SECP256K1_SYS_DIR to the unpacked crate"
    );
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/schnorr_batch.c");
    let secp = find_sources();
    // The same configuration secp256k1-sys compiles with, so that the
    // structures and the extern G tables agree.
    cc::Build::new()
        .file("csrc/schnorr_batch.c")
        .include(&secp)
        .include(secp.join("include"))
        .include(secp.join("src"))
        .define("SECP256K1_API", Some(""))
        .define("ECMULT_WINDOW_SIZE", Some("15"))
        .define("ECMULT_GEN_PREC_BITS", Some("4"))
        .define("USE_EXTERNAL_DEFAULT_CALLBACKS", Some("1"))
        .define("ENABLE_MODULE_SCHNORRSIG", Some("1"))
        .define("ENABLE_MODULE_EXTRAKEYS", Some("1"))
        .flag_if_supported("-Wno-unused-function")
        .flag_if_supported("-Wno-unused-parameter")
        .opt_level(3)
        .compile("kiln_schnorr_batch");
}
