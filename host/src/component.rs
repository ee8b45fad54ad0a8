//! A driver component, compiled and linked once per process ([`DriverComponent`]); instances
//! are made from its `InstancePre`.

use std::borrow::Cow;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::bindings::{DRIVER_INTERFACE, SUPPORTED_VERSIONS, WIT_PACKAGE, v0_1, v0_2};
use crate::engine::Runtime;
use crate::guest::Pre;
use crate::sandbox::Grants;
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

/// A component's bytes, with their SHA-256: the key of its compiled form in the [`Cache`].
pub(crate) struct Wasm {
    bytes: Cow<'static, [u8]>,
    sha256: [u8; 32],
}

impl Wasm {
    /// A component embedded in the binary, with the digest computed when it was built.
    pub fn bundled(bytes: &'static [u8], sha256: [u8; 32]) -> Self {
        Wasm { bytes: Cow::Borrowed(bytes), sha256 }
    }

    /// A component read at run time.
    pub fn owned(bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        Wasm { bytes: Cow::Owned(bytes), sha256 }
    }
}

impl std::ops::Deref for Wasm {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A compiled, linked driver component.
pub struct DriverComponent {
    pub(crate) pre: Pre,
    /// The version of the contract the component was built against.
    pub wit_version: String,
}

impl DriverComponent {
    /// Compiles and links `bytes`, or loads the compiled artifact from `cache`; `source` names
    /// the component in errors.
    pub fn load(runtime: &Runtime, cache: Option<&Cache>, source: &str, wasm: &Wasm) -> Result<Self, Error> {
        let fail = |reason: String| Error::Load { source_name: source.to_string(), reason };
        let cached = cache.and_then(|c| c.load(&runtime.engine, wasm));
        let component = match cached {
            Some(component) => component,
            None => {
                let component = compile(runtime, wasm).map_err(fail)?;
                if let Some(cache) = cache {
                    cache.store(&runtime.engine, wasm, &component);
                }
                component
            }
        };
        Self::link(runtime, component).map_err(fail)
    }

    fn link(runtime: &Runtime, component: Component) -> Result<Self, String> {
        let (wit_version, supported) = contract_version(runtime, &component)?;
        check_imports(runtime, &component)?;
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("it needs what a driver may not import: {}", one_line(&e)))?;
        let bad_exports =
            |e: wasmtime::Error| format!("its exports do not match {WIT_PACKAGE}@{wit_version}: {}", one_line(&e));
        let pre = match supported {
            "0.1.0" => Pre::V0_1(v0_1::StorageDriverPre::new(pre).map_err(bad_exports)?),
            _ => Pre::V0_2(v0_2::StorageDriverPre::new(pre).map_err(bad_exports)?),
        };
        Ok(DriverComponent { pre, wit_version })
    }

    /// Instantiates the component once in a store that grants nothing and type-checks every
    /// export against the contract version it claims: a mismatch is refused here, at load,
    /// naming the function and both types, rather than at the first call.
    pub(crate) async fn check_exports(&self, runtime: &Runtime, source: &str) -> Result<(), Error> {
        let fail = |reason: String| Error::Load { source_name: source.to_string(), reason };
        let grants = Grants::nothing(crate::describe::DEFAULT_MEMORY as usize);
        let mut store = crate::instance::new_store(runtime, &grants, source).map_err(fail)?;
        let pre = match &self.pre {
            Pre::V0_1(pre) => pre.instance_pre(),
            Pre::V0_2(pre) => pre.instance_pre(),
        };
        let instance = match tokio::time::timeout(grants.call_deadline, pre.instantiate_async(&mut store)).await {
            Ok(Ok(instance)) => instance,
            Ok(Err(e)) => return Err(fail(format!("instantiating it failed: {}", one_line(&e)))),
            Err(_) => return Err(fail("instantiating it did not finish within 30s".into())),
        };
        let checked = match &self.pre {
            Pre::V0_1(_) => check_signatures!(v0_1, instance, &mut store, &self.wit_version),
            Pre::V0_2(_) => check_signatures!(v0_2, instance, &mut store, &self.wit_version).and_then(|()| {
                let iface = interface(&instance, &mut store, &self.wit_version)?;
                type D = v0_2::exports::registry::storage::types::Description;
                type E = v0_2::exports::registry::storage::types::Error;
                signature!(instance, &mut store, &iface, "describe", (String,), (Result<D, E>,));
                Ok(())
            }),
        };
        checked.map_err(|reason| fail(format!("its exports do not match {WIT_PACKAGE}@{}: {reason}", self.wit_version)))
    }
}

/// The exported driver interface of `instance`.
fn interface(
    instance: &wasmtime::component::Instance,
    store: &mut wasmtime::Store<crate::sandbox::HostState>,
    version: &str,
) -> Result<wasmtime::component::ComponentExportIndex, String> {
    let name = format!("{DRIVER_INTERFACE}@{version}");
    instance.get_export_index(&mut *store, None, &name).ok_or_else(|| format!("it does not export {name}"))
}

/// Checks that `$name` in `$iface` has the Rust signature `$params -> $results`.
macro_rules! signature {
    ($instance:expr, $store:expr, $iface:expr, $name:literal, $params:ty, $results:ty) => {{
        let index = $instance
            .get_export_index(&mut *$store, Some($iface), $name)
            .ok_or_else(|| format!("it does not export the function `{}`", $name))?;
        $instance
            .get_typed_func::<$params, $results>(&mut *$store, &index)
            .map_err(|e| format!("the function `{}` has the wrong type: {}", $name, one_line(&e)))?;
    }};
}
use signature;

/// Every function of the driver interface, in contract version `$v`'s types (the same in every
/// version so far; 0.2.0 adds `describe`).
macro_rules! check_signatures {
    ($v:ident, $instance:expr, $store:expr, $version:expr) => {{
        use wasmtime::component::ResourceAny as Res;
        type E = $v::exports::registry::storage::types::Error;
        type Info = $v::exports::registry::storage::types::FileInfo;
        type R<T> = Result<T, E>;
        (|| -> Result<(), String> {
            let store = $store;
            let iface = interface(&$instance, store, $version)?;
            let iface = &iface;
            signature!($instance, store, iface, "[static]driver.open", (String,), (R<Res>,));
            signature!($instance, store, iface, "[method]driver.name", (Res,), (String,));
            signature!($instance, store, iface, "[method]driver.get-content", (Res, String), (R<Vec<u8>>,));
            signature!($instance, store, iface, "[method]driver.put-content", (Res, String, Vec<u8>), (R<()>,));
            signature!($instance, store, iface, "[method]driver.reader", (Res, String, i64), (R<Res>,));
            signature!($instance, store, iface, "[method]driver.writer", (Res, String, bool), (R<Res>,));
            signature!($instance, store, iface, "[method]driver.stat", (Res, String), (R<Info>,));
            signature!($instance, store, iface, "[method]driver.list", (Res, String), (R<Vec<String>>,));
            signature!($instance, store, iface, "[method]driver.move", (Res, String, String), (R<()>,));
            signature!($instance, store, iface, "[method]driver.delete", (Res, String), (R<()>,));
            signature!(
                $instance,
                store,
                iface,
                "[method]driver.redirect-url",
                (Res, String, String),
                (R<Option<String>>,)
            );
            signature!($instance, store, iface, "[method]driver.walk", (Res, String, Option<String>), (R<Res>,));
            signature!($instance, store, iface, "[method]file-reader.read", (Res, u64), (R<Vec<u8>>,));
            signature!($instance, store, iface, "[method]file-writer.write", (Res, Vec<u8>), (R<u64>,));
            signature!($instance, store, iface, "[method]file-writer.size", (Res,), (u64,));
            signature!($instance, store, iface, "[method]file-writer.close", (Res,), (R<()>,));
            signature!($instance, store, iface, "[method]file-writer.commit", (Res,), (R<()>,));
            signature!($instance, store, iface, "[method]file-writer.cancel", (Res,), (R<()>,));
            signature!($instance, store, iface, "[method]walker.next", (Res,), (R<Option<Info>>,));
            signature!($instance, store, iface, "[method]walker.skip-dir", (Res,), ());
            Ok(())
        })()
    }};
}
use check_signatures;

/// Compiles a component from its bytes, after checking they are one.
pub(crate) fn compile(runtime: &Runtime, bytes: &[u8]) -> Result<Component, String> {
    if !bytes.starts_with(b"\0asm") {
        return Err("not a WebAssembly file".into());
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err("a core WebAssembly module, not a component (build it with --target wasm32-wasip2)".into());
    }
    Component::new(&runtime.engine, bytes).map_err(|e| one_line(&e))
}

/// The on-disk cache of compiled components. An entry is keyed by the SHA-256 of the wasm and of
/// the engine's compatibility settings, and carries a checksum of the artifact (CRC-32, fast
/// enough to keep a load under a millisecond): an entry that is corrupted, truncated, foreign
/// or from another engine is recompiled, never loaded.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

const CACHE_MAGIC: &[u8] = b"regstore-cwasm-2\n";

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    /// `$REGSTORE_CACHE_DIR`, else `$XDG_CACHE_HOME/regstore`, else `~/.cache/regstore`; none when
    /// `REGSTORE_CACHE_DIR` is `off`.
    pub fn from_env() -> Option<Self> {
        match std::env::var_os("REGSTORE_CACHE_DIR") {
            Some(v) if v == "off" => None,
            Some(v) => Some(Cache::new(v)),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
                Some(Cache::new(base.join("regstore")))
            }
        }
    }

    fn entry(&self, engine: &wasmtime::Engine, wasm: &Wasm) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        let mut key = Sha256::new();
        key.update(wasm.sha256);
        key.update(compat.finish().to_le_bytes());
        key.update(env!("CARGO_PKG_VERSION").as_bytes());
        self.dir.join(format!("{}.cwasm", hex(&key.finalize())))
    }

    /// The cached component for `wasm`, if a sound entry exists.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, wasm: &Wasm) -> Option<Component> {
        let data = std::fs::read(self.entry(engine, wasm)).ok()?;
        let rest = data.strip_prefix(CACHE_MAGIC)?;
        let (checksum, artifact) = rest.split_at_checked(4)?;
        if checksum != checksum_of(artifact) {
            return None;
        }
        if wasmtime::Engine::detect_precompiled(artifact) != Some(wasmtime::Precompiled::Component) {
            return None;
        }
        // SAFETY: the artifact is one this cache wrote (its checksum matches), for this engine's
        // settings (they are part of the key), and wasmtime checks its header again.
        unsafe { Component::deserialize(engine, artifact) }.ok()
    }

    /// Stores the compiled component; failures only cost a compile next time.
    pub(crate) fn store(&self, engine: &wasmtime::Engine, wasm: &Wasm, component: &Component) {
        let Ok(artifact) = component.serialize() else { return };
        let path = self.entry(engine, wasm);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut data = Vec::with_capacity(CACHE_MAGIC.len() + 4 + artifact.len());
            data.extend_from_slice(CACHE_MAGIC);
            data.extend_from_slice(&checksum_of(&artifact));
            data.extend_from_slice(&artifact);
            std::fs::write(&tmp, data)?;
            std::fs::rename(&tmp, &path)
        };
        if write().is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn checksum_of(artifact: &[u8]) -> [u8; 4] {
    crc32fast::hash(artifact).to_le_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The version of `registry:storage/driver` the component exports, and the supported version
/// it is compatible with.
fn contract_version(runtime: &Runtime, component: &Component) -> Result<(String, &'static str), String> {
    let ty = component.component_type();
    let prefix = format!("{DRIVER_INTERFACE}@");
    let exported = ty.exports(&runtime.engine).find_map(|(name, _)| name.strip_prefix(&prefix).map(str::to_string));
    let Some(version) = exported else {
        return Err(format!("it does not export {DRIVER_INTERFACE} (is it a regstore storage driver?)"));
    };
    match SUPPORTED_VERSIONS.iter().find(|ours| compatible(&version, ours)) {
        Some(supported) => Ok((version, supported)),
        None => {
            let ours: Vec<String> = SUPPORTED_VERSIONS.iter().map(|v| format!("{WIT_PACKAGE}@{v}")).collect();
            Err(format!("it was built against {WIT_PACKAGE}@{version}, and this host supports {}", ours.join(" and ")))
        }
    }
}

/// The interfaces a driver may import, by `package/interface`, at any WASI 0.2 version. The
/// sockets interfaces are linked because language runtimes built on wasi-libc (CPython under
/// componentize-py, for one) import them whether or not they use them; the sandbox refuses every
/// socket operation (docs/contract.md).
const ALLOWED_IMPORTS: &[(&str, &[&str])] = &[
    ("wasi:io", &["error", "poll", "streams"]),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:filesystem", &["types", "preopens"]),
    (
        "wasi:sockets",
        &["network", "instance-network", "tcp", "tcp-create-socket", "udp", "udp-create-socket", "ip-name-lookup"],
    ),
    ("wasi:http", &["types", "outgoing-handler"]),
];

/// Refuses a component that imports anything outside the `storage-driver` world, naming the
/// first such import, before linking would fail with a less direct message.
fn check_imports(runtime: &Runtime, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    for (name, _) in ty.imports(&runtime.engine) {
        if !import_allowed(name) {
            return Err(format!(
                "it imports {name}, which is outside the storage-driver world (a driver may import WASI 0.2's io, \
                 clocks, random, cli, filesystem and sockets, and wasi:http's types and outgoing-handler)"
            ));
        }
    }
    Ok(())
}

fn import_allowed(name: &str) -> bool {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let Some((package, interface)) = path.split_once('/') else { return false };
    let wasi_0_2 = version
        .strip_prefix("0.2.")
        .is_some_and(|patch| patch.split(['-', '+']).next().is_some_and(|p| p.parse::<u64>().is_ok()));
    wasi_0_2 && ALLOWED_IMPORTS.iter().any(|(p, interfaces)| *p == package && interfaces.contains(&interface))
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
    fn imports_outside_the_world_are_refused() {
        assert!(super::import_allowed("wasi:io/streams@0.2.0"));
        assert!(super::import_allowed("wasi:sockets/tcp@0.2.9"));
        assert!(super::import_allowed("wasi:http/outgoing-handler@0.2.6"));
        assert!(!super::import_allowed("wasi:http/incoming-handler@0.2.6"));
        assert!(!super::import_allowed("wasi:io/streams@0.3.0"));
        assert!(!super::import_allowed("wasi:io/streams"));
        assert!(!super::import_allowed("wasi:keyvalue/store@0.2.0"));
        assert!(!super::import_allowed("evil:host/backdoor"));
        assert!(!super::import_allowed("open"));
    }

    #[test]
    fn versions_compatible_by_semver() {
        assert!(super::compatible("0.1.0", "0.1.0"));
        assert!(super::compatible("0.1.3", "0.1.0"));
        assert!(!super::compatible("0.2.0", "0.1.0"));
        assert!(super::compatible("0.2.1", "0.2.0"));
        assert!(!super::compatible("1.1.0", "0.1.0"));
        assert!(!super::compatible("x", "0.1.0"));
    }
}
