//! The native builds must pass the conformance suite as their components do, or the benchmarks'
//! ratios would compare different behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use regstore_api::StorageDriver;
use regstore_testsuite::{Config, DriverFactory};
use serde_json::{Map, json};

fn factory(name: &'static str, roots: Option<std::path::PathBuf>) -> DriverFactory {
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move || {
        let mut params = Map::new();
        if let Some(roots) = &roots {
            let root = roots.join(format!("test-{}", next.fetch_add(1, Ordering::SeqCst)));
            params.insert("rootdirectory".into(), json!(root.display().to_string()));
        }
        Box::pin(async move { regstore_native::open_boxed(name, &params) })
    })
}

fn run_suite(name: &'static str, roots: Option<std::path::PathBuf>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = Config { short: true, large_stream_size: 64 << 20, ..Config::default() };
    let mut out = Vec::new();
    let summary = runtime.block_on(regstore_testsuite::runner::run(
        regstore_testsuite::all(),
        factory(name, roots),
        config,
        None,
        2,
        &mut out,
    ));
    let report = String::from_utf8_lossy(&out);
    let failures: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(summary.failed == 0 && summary.passed > 50, "native {name}: {summary}\n{}", failures.join("\n"));
}

#[test]
fn native_inmemory_passes_the_suite() {
    run_suite("inmemory", None);
}

#[test]
fn native_filesystem_passes_the_suite() {
    let scratch = tempfile::tempdir().unwrap();
    run_suite("filesystem", Some(scratch.path().to_path_buf()));
}

#[test]
fn unknown_and_bad_parameters_are_typed_errors() {
    let err = regstore_native::open("nosuch", &Map::new()).err().expect("no such native driver");
    assert_eq!(err.kind(), regstore_api::ErrorKind::InvalidStorageDriver);
    let params = json!({ "maxthreads": "fail" }).as_object().cloned().unwrap();
    let err = regstore_native::open("filesystem", &params).err().expect("a bad maxthreads");
    assert_eq!(err.kind(), regstore_api::ErrorKind::InvalidParameter, "{err}");
    let driver = regstore_native::open("inmemory", &Map::new()).unwrap();
    assert_eq!(driver.name(), "inmemory");
}
