//! regstore's conformance suite: every test of distribution's storage-driver testsuite, its
//! WalkFallback cases, and one test per decision D1–D12 (docs/decisions.md), written against
//! `regstore-api` only, so it runs against any driver: wasm components through the host, or
//! the same drivers compiled natively (`regstore-native`).
//!
//! Each test gets a fresh driver (and so a fresh, empty root) from a [`DriverFactory`], and must
//! leave `List("/")` empty, as distribution's `TearDownTest` requires.

#[macro_use]
pub mod util;
pub mod bench;
mod content;
mod decisions;
pub mod emulators;
pub mod runner;
mod streams;
mod tree;
pub mod walk;

use std::sync::Arc;

use futures::future::BoxFuture;
use regstore_api::{Capabilities, Error, StorageDriver};

pub use util::{Outcome, TestResult};

/// Makes a fresh driver over an empty root for each test.
pub type DriverFactory = Arc<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn StorageDriver>, Error>> + Send + Sync>;

/// Settings of a suite run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The size of `TestWriteReadLargeStreams` (distribution: 5 GiB).
    pub large_stream_size: u64,
    /// distribution's short mode: smaller concurrent tests, no large stream.
    pub short: bool,
    /// CA certificates (PEM files) trusted besides the usual roots when fetching redirect URLs,
    /// as the operator gives them to the driver (an emulator's self-signed certificate).
    pub ca_files: Vec<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config { large_stream_size: 5 << 30, short: false, ca_files: Vec::new() }
    }
}

/// What a test gets.
#[derive(Clone)]
pub struct Ctx {
    pub driver: Arc<dyn StorageDriver>,
    pub config: Arc<Config>,
}

impl Ctx {
    pub fn d(&self) -> &dyn StorageDriver {
        &*self.driver
    }

    pub fn name(&self) -> &str {
        self.driver.name()
    }

    /// What the driver declares it does where drivers differ.
    pub fn caps(&self) -> Capabilities {
        self.driver.capabilities()
    }
}

/// Whether a driver's declared capabilities let a test run.
pub type CapabilityCheck = fn(&Capabilities) -> bool;

/// One conformance test.
pub struct Test {
    /// distribution's test name (`TestList`), or regstore's for its own cases.
    pub name: String,
    pub run: Arc<dyn Fn(Ctx) -> BoxFuture<'static, TestResult> + Send + Sync>,
    /// A capability the test needs, and how to tell from a driver's declaration: a driver
    /// that does not declare it skips the test (as OpenDAL's behaviour tests do).
    pub requires: Option<(&'static str, CapabilityCheck)>,
}

impl Test {
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Test
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = TestResult> + Send + 'static,
    {
        Test { name: name.into(), run: Arc::new(move |cx| Box::pin(f(cx))), requires: None }
    }

    /// Runs the test only on drivers whose capabilities pass `check`; `what` says what it
    /// needs, for the skip line.
    pub fn requires(mut self, what: &'static str, check: CapabilityCheck) -> Test {
        self.requires = Some((what, check));
        self
    }

    /// Why the test does not apply to a driver with `caps`, if it does not.
    pub fn skip_reason(&self, caps: &Capabilities) -> Option<String> {
        let (what, check) = self.requires?;
        (!check(caps)).then(|| format!("the driver does not declare {what}"))
    }
}

/// Every test of the suite, in distribution's order, then the walk cases and the decisions.
pub fn all() -> Vec<Test> {
    let mut tests = Vec::new();
    tests.extend(content::tests());
    tests.extend(streams::tests());
    tests.extend(tree::tests());
    tests.extend(walk::tests());
    tests.extend(decisions::tests());
    tests
}

/// Runs one test on a fresh driver, then checks the driver was left empty. A test that needs a
/// capability the driver does not declare is skipped.
pub async fn run_test(test: &Test, factory: &DriverFactory, config: Arc<Config>) -> TestResult {
    let driver = factory().await.map_err(|e| format!("creating the driver: {e}"))?;
    if let Some(why) = test.skip_reason(&driver.capabilities()) {
        return Ok(Outcome::Skipped(why));
    }
    let outcome = (test.run)(Ctx { driver: driver.clone(), config }).await?;
    let left = driver.list("/").await.map_err(|e| format!("List(\"/\") after the test: {e}"))?;
    if !left.is_empty() {
        return Err(format!("Storage driver did not clean up properly: List(\"/\") = {left:?}"));
    }
    Ok(outcome)
}
