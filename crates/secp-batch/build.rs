//! Builds `csrc/schnorr_batch.c`, kiln's BIP340 batch verifier, against the
//! libsecp256k1 sources that the `secp256k1-sys` crate ships (and links: the
//! batch code uses its internal arithmetic and its precomputed tables).
//!
//! The sources are found in `vendor/secp256k1-sys` (a `cargo vendor` tree) or
//! cargo's registry checkout of the pinned `secp256k1-sys` version, or
//! wherever `KILN_SECP256K1_SYS_DIR` points.

use std::env;
use std::path::{Path, PathBuf};

/// The `secp256k1-sys` version cargo resolved (the workspace pins it with
/// `=`), read from Cargo.lock so that there is one place to change it: the
/// sources compiled against are then always the ones linked.
fn locked_version() -> String {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let lock = manifest.ancestors().map(|d| d.join("Cargo.lock")).find(|p| p.is_file());
    println!("cargo:rerun-if-changed={}", lock.as_ref().map_or_else(String::new, |p| p.display().to_string()));
    let text = lock.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"secp256k1-sys\""
            && let Some(v) = lines.next().and_then(|v| v.trim().strip_prefix("version = \""))
        {
            return v.trim_end_matches('"').to_string();
        }
    }
    panic!("kiln-secp-batch: no secp256k1-sys in Cargo.lock (set KILN_SECP256K1_SYS_DIR to the unpacked crate)");
}

/// The symbol prefix secp256k1-sys renames libsecp256k1's symbols with: its
/// `links` key (`rustsecp256k1_v0_10_0`), plus the separating underscore.
fn symbol_prefix(crate_dir: &Path) -> String {
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
    let links = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("links = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("kiln-secp-batch: no `links` key in {}/Cargo.toml", crate_dir.display()));
    assert!(links.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "odd links key {links:?}");
    format!("{links}_")
}

fn registry_dirs(name: &str) -> Vec<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(home) = home else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(home.join("registry").join("src")) else { return Vec::new() };
    entries.flatten().map(|e| e.path().join(name)).collect()
}

/// The unpacked secp256k1-sys crate.
fn find_crate() -> PathBuf {
    println!("cargo:rerun-if-env-changed=KILN_SECP256K1_SYS_DIR");
    let candidates: Vec<PathBuf> = match env::var_os("KILN_SECP256K1_SYS_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            // `cargo vendor` layout first (a vendored build never reads the
            // registry), then every registry checkout.
            let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            let name = format!("secp256k1-sys-{}", locked_version());
            let mut dirs: Vec<PathBuf> = manifest.ancestors().map(|d| d.join("vendor").join("secp256k1-sys")).collect();
            dirs.extend(registry_dirs(&name));
            dirs
        }
    };
    for dir in &candidates {
        if dir.join("depend").join("secp256k1").join("src").join("ecmult_impl.h").is_file() {
            return dir.clone();
        }
    }
    panic!(
        "kiln: cannot find the secp256k1-sys sources (looked in {candidates:?}); \
         set KILN_SECP256K1_SYS_DIR to the unpacked crate"
    );
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/schnorr_batch.c");
    let krate = find_crate();
    let prefix = symbol_prefix(&krate);
    let secp = krate.join("depend").join("secp256k1");
    // The same configuration secp256k1-sys compiles with, so that the
    // structures agree. ECMULT_WINDOW_SIZE only sizes the declarations of the
    // precomputed G tables, which the batch code never reads (G is passed as
    // an explicit term); a different setting there cannot misdirect a read.
    cc::Build::new()
        .file("csrc/schnorr_batch.c")
        .include(&secp)
        .include(secp.join("include"))
        .include(secp.join("src"))
        .define("SECP256K1_API", Some(""))
        .define("KILN_SECP_PREFIX", Some(prefix.as_str()))
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
