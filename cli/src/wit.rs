//! `regstore wit`: the contract, as this host accepts it, for authors of drivers in any language.
//!
//! Every supported version is written as WIT text (`VERSION/storage.wit`, what wit-bindgen,
//! componentize-py and ComponentizeJS read) and as a binary WIT package
//! (`registry-storage@VERSION.wasm`, for tools that take one). The repository's `wit/` folder,
//! which the SDK carries, holds the same files; a test keeps them equal.

use std::path::{Path, PathBuf};

use clap::Args;
use regstore::{WIT_SOURCES, WIT_VERSION};

use super::Failure;

#[derive(Args)]
pub struct WitArgs {
    /// Write every supported version into this directory instead of printing the current one.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(args: WitArgs) -> Result<(), Failure> {
    let Some(out) = args.out else {
        let (_, text) = WIT_SOURCES.iter().find(|(v, _)| *v == WIT_VERSION).expect("the current version has its WIT");
        print!("{text}");
        return Ok(());
    };
    for (version, text) in WIT_SOURCES {
        let package = binary_package(version, text).map_err(Failure::Message)?;
        write(&out.join(version).join("storage.wit"), text.as_bytes())?;
        write(&out.join(format!("registry-storage@{version}.wasm")), &package)?;
        let dir = out.display();
        println!("registry:storage@{version}: {dir}/{version}/storage.wit, {dir}/registry-storage@{version}.wasm");
    }
    Ok(())
}

/// The binary WIT package of one version's text.
pub fn binary_package(version: &str, text: &str) -> Result<Vec<u8>, String> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str(format!("{version}/storage.wit"), text)
        .map_err(|e| format!("the WIT of registry:storage@{version} does not parse: {e:#}"))?;
    wit_component::encode(&resolve, package).map_err(|e| format!("cannot encode registry:storage@{version}: {e:#}"))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::Message(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, bytes).map_err(fail)
}
