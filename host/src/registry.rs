//! The factory: drivers by name, as distribution's `factory.Create`. The bundled drivers are
//! registered out of the box; third-party components are registered from files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::bundled::{bundled_params, bundled_sandbox};
use crate::component::{Cache, DriverComponent, Origin};
use crate::driver::Driver;
use crate::engine::Runtime;
use crate::instance::Instance;
use crate::sandbox::Sandbox;
use regstore_api::Error;

/// The components built from `drivers/` and embedded in this binary: (name, wasm).
const BUNDLED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Driver parameters, as distribution's `map[string]any`.
pub type Params = Map<String, Value>;

/// What the registry knows about one registered driver.
#[derive(Debug, Clone)]
pub struct DriverInfo {
    pub name: String,
    pub origin: Origin,
    /// The contract version the component was built for, or why it cannot be loaded.
    pub wit_version: Result<String, Error>,
}

struct Entry {
    origin: Origin,
    wasm: Arc<[u8]>,
    compiled: OnceCell<Arc<DriverComponent>>,
}

/// Maps driver names to components and builds drivers from them. Clones share their
/// registrations.
#[derive(Clone)]
pub struct Registry {
    runtime: Arc<Runtime>,
    entries: Arc<RwLock<BTreeMap<String, Arc<Entry>>>>,
    cache: Option<Cache>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the bundled drivers.
    pub fn new() -> Self {
        let registry = Self::empty();
        for (name, wasm) in BUNDLED {
            registry.insert(name, Origin::Bundled, Arc::from(*wasm));
        }
        // distribution registers its s3 driver under both names; one component serves both.
        for (alias, name) in crate::bundled::ALIASES {
            let entry = registry.entries.read().unwrap().get(*name).cloned();
            if let Some(entry) = entry {
                registry.entries.write().unwrap().insert(alias.to_string(), entry);
            }
        }
        registry
    }

    /// A registry with no driver at all.
    pub fn empty() -> Self {
        Registry { runtime: Runtime::global(), entries: Arc::default(), cache: Cache::from_env() }
    }

    /// Keeps compiled components in `cache` (or nowhere, with `None`) instead of the default
    /// from `REGSTORE_CACHE_DIR`. Set it before the first driver is created.
    pub fn with_cache(mut self, cache: Option<Cache>) -> Self {
        self.cache = cache;
        self
    }

    /// How long loading `name` takes: compiling it, and loading it from the precompiled cache
    /// (written first if needed). For benchmarks; the registry's own copy is not touched.
    pub fn load_times(&self, name: &str) -> Result<(std::time::Duration, Option<std::time::Duration>), Error> {
        let entry = self.entry(name)?;
        let fail = |reason: String| Error::Load { source_name: name.to_string(), reason };
        let started = std::time::Instant::now();
        let component = crate::component::compile(&self.runtime, &entry.wasm).map_err(fail)?;
        let cold = started.elapsed();
        let Some(cache) = &self.cache else { return Ok((cold, None)) };
        cache.store(&self.runtime.engine, &entry.wasm, &component);
        let started = std::time::Instant::now();
        let loaded = cache.load(&self.runtime.engine, &entry.wasm);
        let cached = started.elapsed();
        Ok((cold, loaded.map(|_| cached)))
    }

    fn insert(&self, name: &str, origin: Origin, wasm: Arc<[u8]>) {
        let entry = Arc::new(Entry { origin, wasm, compiled: OnceCell::new() });
        self.entries.write().unwrap().insert(name.to_string(), entry);
    }

    /// Registers the component in `path` under `name`, or under its file name (without a
    /// `regstore_driver_` prefix) when `name` is `None`. The component is compiled and checked
    /// now, so a bad file fails here, with the reason. Returns the name used.
    pub async fn register_file(&self, name: Option<&str>, path: &Path) -> Result<String, Error> {
        let source = path.display().to_string();
        let wasm =
            std::fs::read(path).map_err(|e| Error::Load { source_name: source.clone(), reason: e.to_string() })?;
        let name = match name {
            Some(n) => n.to_string(),
            None => file_driver_name(path),
        };
        self.insert(&name, Origin::File(PathBuf::from(path)), Arc::from(wasm));
        self.component(&name).await?;
        Ok(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.read().unwrap().keys().cloned().collect()
    }

    /// Every registered driver with its origin and contract version (compiling it if needed).
    pub async fn describe(&self) -> Vec<DriverInfo> {
        let mut out = Vec::new();
        for name in self.names() {
            let origin = self.entry(&name).map(|e| e.origin.clone()).unwrap_or(Origin::Bundled);
            let wit_version = self.component(&name).await.map(|c| c.wit_version.clone());
            out.push(DriverInfo { name, origin, wit_version });
        }
        out
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, Error> {
        self.entries.read().unwrap().get(name).cloned().ok_or_else(|| Error::InvalidStorageDriver(name.to_string()))
    }

    /// The compiled component for `name`; compiled once per process, off the async threads.
    async fn component(&self, name: &str) -> Result<Arc<DriverComponent>, Error> {
        let entry = self.entry(name)?;
        let source = match &entry.origin {
            Origin::Bundled => format!("bundled driver {name}"),
            Origin::File(p) => p.display().to_string(),
        };
        entry
            .compiled
            .get_or_try_init(|| async {
                let (runtime, wasm, cache) = (self.runtime.clone(), entry.wasm.clone(), self.cache.clone());
                let load = move || DriverComponent::load(&runtime, cache.as_ref(), &source, &wasm).map(Arc::new);
                match tokio::runtime::Handle::try_current() {
                    Ok(_) => tokio::task::spawn_blocking(load)
                        .await
                        .unwrap_or_else(|e| Err(Error::Load { source_name: name.to_string(), reason: e.to_string() })),
                    Err(_) => load(),
                }
            })
            .await
            .cloned()
    }

    /// Builds the driver registered as `name` from `params`, in the sandbox its parameters call
    /// for (see [`Registry::create_with`] to set grants and limits yourself).
    pub async fn create(&self, name: &str, params: &Params) -> Result<Driver, Error> {
        let sandbox = self.sandbox_for(name, params)?;
        self.create_with(name, params, sandbox).await
    }

    /// The sandbox [`Registry::create`] would grant: what a bundled driver's parameters call for
    /// (its root directory, its endpoint), or nothing beyond the defaults for any other.
    pub fn sandbox_for(&self, name: &str, params: &Params) -> Result<Sandbox, Error> {
        let bundled = self.entry(name)?.origin == Origin::Bundled;
        if bundled { bundled_sandbox(name, params) } else { Ok(Sandbox::default()) }
    }

    /// Builds the driver registered as `name` from `params`, granting exactly `sandbox`.
    pub async fn create_with(&self, name: &str, params: &Params, sandbox: Sandbox) -> Result<Driver, Error> {
        let component = self.component(name).await?;
        let params =
            if self.entry(name)?.origin == Origin::Bundled { bundled_params(name, params) } else { params.clone() };
        let params = serde_json::to_string(&params).expect("a JSON map always serialises");
        let (instance, driver_name) =
            Instance::start(self.runtime.clone(), component, sandbox, params, name.to_string()).await?;
        Ok(Driver::new(driver_name, instance))
    }
}

/// `regstore_driver_foo.wasm` and `foo.wasm` both register as `foo`.
fn file_driver_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("driver");
    let stem = stem.strip_prefix("regstore_driver_").or_else(|| stem.strip_prefix("regstore-driver-")).unwrap_or(stem);
    stem.to_string()
}
