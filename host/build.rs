//! Builds the bundled driver components (the guest workspace in `drivers/`) for
//! wasm32-wasip2, so that the host can embed them like distribution's blank imports.
//!
//! The guests get their own target directory: sharing the host's deadlocks on its lock, and the
//! host's RUSTFLAGS are for the host, not for wasm.

use std::path::PathBuf;
use std::process::Command;

/// Crate name in `drivers/` → registration name.
const BUNDLED: &[(&str, &str)] = &[
    ("regstore-driver-inmemory", "inmemory"),
    ("regstore-driver-filesystem", "filesystem"),
    ("regstore-driver-s3", "s3"),
];
/// Components built for the host's tests only (not bundled): crate → environment variable
/// that gives the tests its path.
const TEST_COMPONENTS: &[(&str, &str)] = &[("regstore-driver-hostile", "REGSTORE_HOSTILE_WASM")];

fn main() {
    let host = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host.parent().unwrap().to_path_buf();
    let drivers = root.join("drivers");
    let target_dir = root.join("target").join("guest");
    for watched in ["drivers/Cargo.toml", "drivers/Cargo.lock", "drivers/sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&drivers)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    for krate in BUNDLED.iter().chain(TEST_COMPONENTS).map(|(krate, _)| krate) {
        cmd.args(["-p", krate]);
        let dir = krate.strip_prefix("regstore-driver-").unwrap();
        println!("cargo:rerun-if-changed={}", drivers.join(dir).display());
    }
    let status = cmd.status().expect("failed to run cargo for the guest drivers");
    if !status.success() {
        panic!(
            "building the bundled drivers failed; is the wasm32-wasip2 target installed? \
             (`rustup target add wasm32-wasip2`)"
        );
    }
    let out = target_dir.join("wasm32-wasip2").join("release");
    let wasm_of = |krate: &str| out.join(format!("{}.wasm", krate.replace('-', "_")));
    for (krate, var) in TEST_COMPONENTS {
        println!("cargo:rustc-env={var}={}", wasm_of(krate).display());
    }
    let mut table = String::from("&[\n");
    for (krate, name) in BUNDLED {
        let wasm = wasm_of(krate);
        assert!(wasm.exists(), "{} was not built", wasm.display());
        table.push_str(&format!("    ({name:?}, include_bytes!({:?}) as &[u8]),\n", wasm.display().to_string()));
    }
    table.push(']');
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bundled.rs");
    std::fs::write(dest, table).unwrap();
}
