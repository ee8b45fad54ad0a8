//! The factory: drivers by name, as distribution's `factory.Create`. The bundled drivers are
//! registered out of the box; third-party components are registered from files.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::component::{Cache, DriverComponent, Origin, Wasm};
use crate::config::StorageConfig;
use crate::describe::Description;
use crate::driver::Driver;
use crate::engine::Runtime;
use crate::grants::{prepare_dirs, reconcile};
use crate::instance::Instance;
use crate::sandbox::{Grants, Sandbox};
use regstore_api::Error;

/// Aliases of the components embedded in this library (feature `bundled`).
#[cfg(feature = "bundled")]
use regstore_bundled::ALIASES;
#[cfg(not(feature = "bundled"))]
const ALIASES: &[(&str, &str)] = &[];

/// The components embedded in this library (feature `bundled`), by name; not copied.
fn bundled() -> impl Iterator<Item = (&'static str, Wasm)> {
    #[cfg(feature = "bundled")]
    let components = regstore_bundled::COMPONENTS.iter().map(|c| (c.name, Wasm::bundled(c.wasm, c.sha256)));
    #[cfg(not(feature = "bundled"))]
    let components = std::iter::empty();
    components
}

/// How many loads from the cache [`Registry::load_times`] takes the median of.
const LOAD_ROUNDS: usize = 15;

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
    wasm: Arc<Wasm>,
    compiled: OnceCell<Arc<DriverComponent>>,
    /// What the component declared for recent parameters (JSON), newest last. `describe` runs
    /// with nothing granted, so its answer depends on the parameters alone; remembering it
    /// spares every new driver a second instantiation.
    described: std::sync::Mutex<VecDeque<(String, Description)>>,
}

impl Entry {
    fn new(origin: Origin, wasm: Wasm) -> Self {
        Entry { origin, wasm: Arc::new(wasm), compiled: OnceCell::new(), described: Default::default() }
    }
}

/// How many declarations an entry remembers.
const DESCRIPTIONS_KEPT: usize = 16;

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
        for (name, wasm) in bundled() {
            registry.insert(name, Origin::Bundled, wasm);
        }
        // distribution registers its s3 driver under both names; one component serves both.
        for (alias, name) in ALIASES {
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
    /// (written first if needed; the median of several loads). For benchmarks; the registry's own
    /// copy is not touched.
    pub fn load_times(&self, name: &str) -> Result<(std::time::Duration, Option<std::time::Duration>), Error> {
        let entry = self.entry(name)?;
        let fail = |reason: String| Error::Load { source_name: name.to_string(), reason };
        let started = std::time::Instant::now();
        let component = crate::component::compile(&self.runtime, &entry.wasm).map_err(fail)?;
        let cold = started.elapsed();
        let Some(cache) = &self.cache else { return Ok((cold, None)) };
        cache.store(&self.runtime.engine, &entry.wasm, &component);
        // The median of several loads: one alone is at the mercy of the page cache and the scheduler.
        let mut times = Vec::new();
        for _ in 0..LOAD_ROUNDS {
            let started = std::time::Instant::now();
            if cache.load(&self.runtime.engine, &entry.wasm).is_none() {
                return Ok((cold, None));
            }
            times.push(started.elapsed());
        }
        times.sort();
        Ok((cold, Some(times[times.len() / 2])))
    }

    fn insert(&self, name: &str, origin: Origin, wasm: Wasm) {
        self.entries.write().unwrap().insert(name.to_string(), Arc::new(Entry::new(origin, wasm)));
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
        // Registered only once it loads: a bad file neither shows up as a driver nor replaces
        // one registered under the same name.
        let entry = Entry::new(Origin::File(PathBuf::from(path)), Wasm::owned(wasm));
        self.compiled(&name, &entry).await?;
        self.entries.write().unwrap().insert(name.clone(), Arc::new(entry));
        Ok(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.read().unwrap().keys().cloned().collect()
    }

    /// Every registered driver with its origin and contract version (compiling it if needed).
    pub async fn drivers(&self) -> Vec<DriverInfo> {
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
        self.compiled(name, &entry).await
    }

    /// `entry`'s compiled component, compiling it on first use.
    async fn compiled(&self, name: &str, entry: &Entry) -> Result<Arc<DriverComponent>, Error> {
        let source = match &entry.origin {
            Origin::Bundled => format!("bundled driver {name}"),
            Origin::File(p) => p.display().to_string(),
        };
        entry
            .compiled
            .get_or_try_init(|| async {
                let (runtime, wasm, cache) = (self.runtime.clone(), entry.wasm.clone(), self.cache.clone());
                let source_for_check = source.clone();
                let load = move || DriverComponent::load(&runtime, cache.as_ref(), &source, &wasm).map(Arc::new);
                let component = tokio::task::spawn_blocking(load)
                    .await
                    .unwrap_or_else(|e| Err(Error::Load { source_name: name.to_string(), reason: e.to_string() }))?;
                component.check_exports(&self.runtime, &source_for_check).await?;
                Ok(component)
            })
            .await
            .cloned()
    }

    /// What the driver registered as `name` declares for `params`: what it needs and what it
    /// can do. Its parameter errors come back from here, as from `open`.
    pub async fn describe(&self, name: &str, params: &Params) -> Result<Description, Error> {
        let entry = self.entry(name)?;
        let params = serde_json::to_string(params).expect("a JSON map always serialises");
        let remembered = entry.described.lock().unwrap().iter().find(|(p, _)| *p == params).map(|(_, d)| d.clone());
        if let Some(description) = remembered {
            return Ok(description);
        }
        let component = self.component(name).await?;
        let description = crate::instance::describe(
            &self.runtime,
            &component,
            &params,
            name,
            crate::describe::DEFAULT_MEMORY as usize,
        )
        .await?;
        // Only answers are remembered: a crash or a parameter error is asked again next time.
        let mut described = entry.described.lock().unwrap();
        if described.len() == DESCRIPTIONS_KEPT {
            described.pop_front();
        }
        described.push_back((params, description.clone()));
        Ok(description)
    }

    /// What [`Registry::create_with`] would do: the driver's declaration, and the grants it
    /// would get under `sandbox` (or why it would get none).
    pub async fn plan(&self, name: &str, params: &Params, sandbox: &Sandbox) -> Result<Plan, Error> {
        let trusted = self.entry(name)?.origin == Origin::Bundled;
        let description = self.describe(name, params).await?;
        let grants = reconcile(name, &description.requirements, sandbox, trusted);
        Ok(Plan { description, grants, trusted })
    }

    /// Builds the driver registered as `name` from `params`. A bundled driver gets what it
    /// declares; a third-party one only what it needs nothing for (see [`Registry::create_with`]).
    pub async fn create(&self, name: &str, params: &Params) -> Result<Driver, Error> {
        self.create_with(name, params, Sandbox::default()).await
    }

    /// Builds the driver a configuration names (distribution's `config.yml`, see
    /// [`StorageConfig`]), registering its `regstore.component` file first if it gives one.
    pub async fn create_from_config(&self, config: &StorageConfig) -> Result<Driver, Error> {
        if let Some(file) = &config.component {
            self.register_file(Some(&config.driver), file).await?;
        }
        self.create_with(&config.driver, &config.params, config.sandbox.clone()).await
    }

    /// Builds the driver registered as `name` from `params` under the operator's `sandbox`: a
    /// bundled driver gets what it declares and what `sandbox` adds; a third-party one gets what
    /// it declares only where `sandbox` allows it, and otherwise fails with one error that lists
    /// every missing grant.
    pub async fn create_with(&self, name: &str, params: &Params, sandbox: Sandbox) -> Result<Driver, Error> {
        let plan = self.plan(name, params, &sandbox).await?;
        let grants = plan.grants?;
        prepare_dirs(name, &grants, &sandbox, plan.trusted)?;
        let component = self.component(name).await?;
        let json = serde_json::to_string(params).expect("a JSON map always serialises");
        let limit = grants.max_concurrent_calls;
        let (instance, driver_name) =
            Instance::start(self.runtime.clone(), component, grants, json, name.to_string()).await?;
        Ok(Driver::new(driver_name, instance, plan.description.capabilities, limit))
    }
}

/// A driver's declaration and what the host would grant it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub description: Description,
    /// The grants, or the error listing what the operator has not granted.
    pub grants: Result<Grants, Error>,
    /// A bundled driver, granted what it declares.
    pub trusted: bool,
}

/// `regstore_driver_foo.wasm` and `foo.wasm` both register as `foo`.
fn file_driver_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("driver");
    let stem = stem.strip_prefix("regstore_driver_").or_else(|| stem.strip_prefix("regstore-driver-")).unwrap_or(stem);
    stem.to_string()
}
