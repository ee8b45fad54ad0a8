//! The conformance suite against every bundled driver that needs no cloud, one libtest trial
//! per test per driver (`inmemory::TestList`, ...).

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use regstore::{Params, Registry, StorageDriver};
use regstore_testsuite::{Config, DriverFactory, Outcome};

fn factory(registry: Arc<Registry>, name: &'static str) -> DriverFactory {
    Arc::new(move || {
        let registry = registry.clone();
        Box::pin(async move {
            let driver = registry.create(name, &Params::new()).await?;
            Ok(Arc::new(driver) as Arc<dyn StorageDriver>)
        })
    })
}

fn main() {
    let args = Arguments::from_args();
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap());
    let registry = Arc::new(Registry::new());
    let config = Arc::new(Config::default());
    let mut trials = Vec::new();
    for driver in ["inmemory"] {
        let factory = factory(registry.clone(), driver);
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
    libtest_mimic::run(&args, trials).exit();
}
