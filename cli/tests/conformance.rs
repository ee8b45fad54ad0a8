//! The conformance suite against every bundled driver that needs no cloud, and against a
//! component built for contract 0.1.0 (the inmemory driver exported for the old contract,
//! loaded as a third party's file), one libtest trial per test per driver
//! (`inmemory::TestList`, `filesystem::TestList`, `legacy-v0.1::TestList`, ...). Each test gets
//! a fresh instance; filesystem tests each get a fresh root directory. A test that needs a
//! capability the driver does not declare is reported as ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libtest_mimic::{Arguments, Failed, Trial};
use regstore::{Params, Registry, Sandbox, StorageDriver};
use regstore_testsuite::{Config, DriverFactory, Outcome};
use serde_json::Value;

/// A factory for `name` in `sandbox`; `roots`, when given, is where each test's fresh root
/// directory goes.
fn factory(registry: Registry, name: &'static str, roots: Option<PathBuf>, sandbox: Sandbox) -> DriverFactory {
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move || {
        let (registry, roots, next, sandbox) = (registry.clone(), roots.clone(), next.clone(), sandbox.clone());
        Box::pin(async move {
            let mut params = Params::new();
            if let Some(roots) = roots {
                let root = roots.join(format!("test-{}", next.fetch_add(1, Ordering::SeqCst)));
                params.insert("rootdirectory".into(), Value::String(root.display().to_string()));
            }
            let driver = registry.create_with(name, &params, sandbox).await?;
            Ok(Arc::new(driver) as Arc<dyn StorageDriver>)
        })
    })
}

fn main() {
    let args = Arguments::from_args();
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap());
    let registry = Registry::new();
    let legacy = regstore_bundled::test_components::LEGACY_V0_1;
    runtime
        .block_on(registry.register_file(Some("legacy-v0.1"), Path::new(legacy)))
        .expect("the 0.1.0 component loads");
    let scratch = tempfile::tempdir().expect("a scratch directory for filesystem roots");
    let config = Arc::new(Config::default());
    // The old component cannot say how much it holds; the operator grants it the memory of an
    // in-memory store and sizes the large stream for it.
    let legacy_sandbox = Sandbox { memory_limit: Some(4 << 30), ..Sandbox::default() };
    let legacy_config = Arc::new(Config { large_stream_size: 512 << 20, ..Config::default() });
    let drivers = [
        ("inmemory", factory(registry.clone(), "inmemory", None, Sandbox::default()), config.clone()),
        (
            "filesystem",
            factory(registry.clone(), "filesystem", Some(scratch.path().to_path_buf()), Sandbox::default()),
            config.clone(),
        ),
        ("legacy-v0.1", factory(registry.clone(), "legacy-v0.1", None, legacy_sandbox), legacy_config),
    ];
    let mut trials = Vec::new();
    for (driver, factory, config) in drivers {
        let caps = runtime.block_on(factory()).expect("the driver opens").capabilities();
        for test in regstore_testsuite::all() {
            let not_declared = test.skip_reason(&caps).is_some();
            let (runtime, factory, config) = (runtime.clone(), factory.clone(), config.clone());
            let name = format!("{driver}::{}", test.name);
            let trial = Trial::test(name, move || {
                match runtime.block_on(regstore_testsuite::run_test(&test, &factory, config)) {
                    Ok(Outcome::Passed(_)) => Ok(()),
                    Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped where it must run: {why}"))),
                    Err(why) => Err(Failed::from(why)),
                }
            });
            trials.push(trial.with_ignored_flag(not_declared));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(scratch);
    conclusion.exit();
}
