//! Builds the bundled driver components (the guest workspace in `drivers/`) for wasm32-wasip2,
//! so that the host can embed them like distribution's blank imports; with the feature
//! `test-components`, also the components only tests load.
//!
//! The guests get their own target directory: sharing the host's deadlocks on its lock, and the
//! host's RUSTFLAGS are for the host, not for wasm.

use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};

/// Crate name in `drivers/` → registration name.
const BUNDLED: &[(&str, &str)] = &[
    ("regstore-driver-inmemory", "inmemory"),
    ("regstore-driver-filesystem", "filesystem"),
    ("regstore-driver-s3", "s3"),
    ("regstore-driver-azure", "azure"),
    ("regstore-driver-gcs", "gcs"),
];
/// Components for tests only: crate → the constant in `test_components` holding its path.
const TEST_COMPONENTS: &[(&str, &str)] = &[
    ("regstore-driver-hostile", "HOSTILE"),
    ("regstore-driver-legacy", "LEGACY_V0_1"),
    ("regstore-driver-mismatched", "MISMATCHED"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.ancestors().nth(2).unwrap().to_path_buf();
    let drivers = root.join("drivers");
    let target_dir = root.join("target").join("guest");
    let with_tests = std::env::var_os("CARGO_FEATURE_TEST_COMPONENTS").is_some();
    let crates: Vec<&str> = BUNDLED
        .iter()
        .map(|(krate, _)| *krate)
        .chain(TEST_COMPONENTS.iter().filter(|_| with_tests).map(|(krate, _)| *krate))
        .collect();

    for watched in ["Cargo.toml", "Cargo.lock", "sdk", "objectstore"] {
        println!("cargo:rerun-if-changed={}", drivers.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&drivers)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    for krate in &crates {
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
    let wasm_of = |krate: &str| {
        let wasm = out.join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        wasm.display().to_string()
    };

    let mut table = String::from("&[\n");
    for (krate, name) in BUNDLED {
        let wasm = wasm_of(krate);
        // The digest keys the host's cache of compiled components; computed here, a process
        // loading a bundled driver does not hash its bytes again.
        let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {wasm}: {e}"));
        let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:#04x}, ")).collect();
        table.push_str(&format!(
            "    Bundled {{ name: {name:?}, wasm: include_bytes!({wasm:?}), sha256: [{sha256}] }},\n"
        ));
    }
    table.push(']');
    let mut tests = String::new();
    if with_tests {
        for (krate, constant) in TEST_COMPONENTS {
            tests.push_str(&format!("pub const {constant}: &str = {:?};\n", wasm_of(krate)));
        }
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("bundled.rs"), table).unwrap();
    std::fs::write(out_dir.join("test_components.rs"), tests).unwrap();
}
