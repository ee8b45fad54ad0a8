//! A driver component, compiled and linked once per process ([`DriverComponent`]); instances
//! are made from its `InstancePre`.

use wasmtime::component::Component;

use crate::bindings::{DRIVER_INTERFACE, StorageDriverPre, WIT_PACKAGE, WIT_VERSION};
use crate::engine::Runtime;
use crate::sandbox::HostState;
use regstore_api::Error;

/// Where a registered driver comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into this binary.
    Bundled,
    /// Loaded from a component file.
    File(std::path::PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Bundled => f.write_str("bundled"),
            Origin::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// A compiled, linked driver component.
pub struct DriverComponent {
    pub(crate) pre: StorageDriverPre<HostState>,
    /// The version of the contract the component was built against.
    pub wit_version: String,
}

impl DriverComponent {
    /// Compiles and links `bytes`; `source` names it in errors.
    pub fn load(runtime: &Runtime, source: &str, bytes: &[u8]) -> Result<Self, Error> {
        let fail = |reason: String| Error::Load { source_name: source.to_string(), reason };
        if !bytes.starts_with(b"\0asm") {
            return Err(fail("not a WebAssembly file".into()));
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(fail(
                "a core WebAssembly module, not a component (build it with --target wasm32-wasip2)".into(),
            ));
        }
        let component = Component::new(&runtime.engine, bytes).map_err(|e| fail(one_line(&e)))?;
        let wit_version = contract_version(runtime, &component).map_err(fail)?;
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("it needs what a driver may not import: {}", one_line(&e))))?;
        let pre = StorageDriverPre::new(pre).map_err(|e| fail(one_line(&e)))?;
        Ok(DriverComponent { pre, wit_version })
    }
}

/// The version of `registry:storage/driver` the component exports, if this host supports it.
fn contract_version(runtime: &Runtime, component: &Component) -> Result<String, String> {
    let ty = component.component_type();
    let prefix = format!("{DRIVER_INTERFACE}@");
    let exported = ty.exports(&runtime.engine).find_map(|(name, _)| name.strip_prefix(&prefix).map(str::to_string));
    let Some(version) = exported else {
        return Err(format!("it does not export {DRIVER_INTERFACE} (is it a regstore storage driver?)"));
    };
    if !compatible(&version, WIT_VERSION) {
        return Err(format!(
            "it was built against {WIT_PACKAGE}@{version}, and this host supports {WIT_PACKAGE}@{WIT_VERSION}"
        ));
    }
    Ok(version)
}

/// Semver compatibility: the same major, and below 1.0 the same minor.
fn compatible(theirs: &str, ours: &str) -> bool {
    let parts = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parts(theirs), parts(ours)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

/// A wasmtime error chain on one line.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compatible_by_semver() {
        assert!(super::compatible("0.1.0", "0.1.0"));
        assert!(super::compatible("0.1.3", "0.1.0"));
        assert!(!super::compatible("0.2.0", "0.1.0"));
        assert!(!super::compatible("1.1.0", "0.1.0"));
        assert!(!super::compatible("x", "0.1.0"));
    }
}
