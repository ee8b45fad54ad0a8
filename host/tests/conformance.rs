//! The conformance suite against every bundled driver that needs no cloud, one libtest trial
//! per test per driver (`inmemory::TestList`, `filesystem::TestList`, ...). Each test gets a
//! fresh instance; filesystem tests each get a fresh root directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libtest_mimic::{Arguments, Failed, Trial};
use regstore::{Params, Registry, StorageDriver};
use regstore_testsuite::{Config, DriverFactory, Outcome};
use serde_json::Value;

/// A factory for `name`; `roots`, when given, is where each test's fresh root directory goes.
fn factory(registry: Registry, name: &'static str, roots: Option<std::path::PathBuf>) -> DriverFactory {
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move || {
        let (registry, roots, next) = (registry.clone(), roots.clone(), next.clone());
        Box::pin(async move {
            let mut params = Params::new();
            if let Some(roots) = roots {
                let root = roots.join(format!("test-{}", next.fetch_add(1, Ordering::SeqCst)));
                params.insert("rootdirectory".into(), Value::String(root.display().to_string()));
            }
            let driver = registry.create(name, &params).await?;
            Ok(Arc::new(driver) as Arc<dyn StorageDriver>)
        })
    })
}

fn main() {
    let args = Arguments::from_args();
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap());
    let registry = Registry::new();
    let config = Arc::new(Config::default());
    let scratch = tempfile::tempdir().expect("a scratch directory for filesystem roots");
    let drivers = [
        ("inmemory", factory(registry.clone(), "inmemory", None)),
        ("filesystem", factory(registry.clone(), "filesystem", Some(scratch.path().to_path_buf()))),
    ];
    let mut trials = Vec::new();
    for (driver, factory) in drivers {
        for test in regstore_testsuite::all() {
            let (runtime, factory, config) = (runtime.clone(), factory.clone(), config.clone());
            let name = format!("{driver}::{}", test.name);
            trials.push(Trial::test(name, move || {
                match runtime.block_on(regstore_testsuite::run_test(&test, &factory, config)) {
                    Ok(Outcome::Passed(_)) => Ok(()),
                    Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped where it must run: {why}"))),
                    Err(why) => Err(Failed::from(why)),
                }
            }));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(scratch);
    conclusion.exit();
}
