//! The bench row of the cloud drivers' test binaries: the wasm driver against its native build.

use std::sync::Arc;
use std::time::Duration;

use regstore_testsuite::bench::BenchConfig;
use regstore_testsuite::util::{Context, Failure};
use regstore_testsuite::{Config, DriverFactory, Outcome, ensure, ensure_eq};

/// The conformance tests that cover what the benchmarks do: the native baseline must pass them,
/// so the figures compare like with like.
const BENCHED: [&str; 5] = ["TestWriteRead4", "TestWriteReadStreams4", "TestList", "TestDeleteFolder", "TestTruncate"];

/// distribution's PutGet 1 KiB and Stream 1 MiB benchmarks on this emulator, against the wasm
/// driver and against its native build in this process (`regstore_native`, which must first
/// pass the conformance tests the benchmarks exercise), with the figures and ratios printed.
/// Only that both sides ran is checked: timings on a shared machine are no test.
pub async fn bench_against_native(driver: &str, wasm: DriverFactory, native: DriverFactory) -> Result<(), Failure> {
    let config = Arc::new(Config { short: true, ..Config::default() });
    for test in regstore_testsuite::all().into_iter().filter(|t| BENCHED.contains(&t.name.as_str())) {
        match regstore_testsuite::run_test(&test, &native, config.clone()).await {
            Ok(Outcome::Passed(_)) => {}
            other => return Err(format!("the native baseline fails {}: {other:?}", test.name)),
        }
    }
    let wasm = wasm().await.ctx("creating the wasm driver")?;
    let native = native().await.ctx("creating the native baseline")?;
    for (name, size) in [("BenchmarkPutGet1KBFiles", 1usize << 10), ("BenchmarkStream1MBFiles", 1 << 20)] {
        let bench = BenchConfig { target: Duration::from_millis(300), large: false, filter: Some(name.into()) };
        let figures = regstore_testsuite::bench::run(wasm.clone(), Some(native.clone()), &bench, |_| {})
            .await
            .ctx(&format!("{name} against the native baseline"))?;
        let [f] = figures.as_slice() else {
            return Err(format!("{name}: expected one figure, got {figures:?} (the wasm side failed?)"));
        };
        let native_figure = f.native.ok_or(format!("{name}: the native side gave no figure"))?;
        ensure!(
            f.wasm.is_finite() && f.wasm > 0.0 && native_figure.is_finite() && native_figure > 0.0,
            "{name}: figures must be positive: {f:?}"
        );
        let ops = |mb_per_s: f64| mb_per_s * 1e6 / size as f64;
        println!(
            "{driver} bench {name}: wasm {:.2} {unit} ({:.0} ops/s), native {:.2} {unit} ({:.0} ops/s), ratio {:.2}",
            f.wasm,
            ops(f.wasm),
            native_figure,
            ops(native_figure),
            f.ratio().unwrap_or(f64::NAN),
            unit = f.unit
        );
    }
    ensure_eq!(wasm.list("/").await.ctx("List(\"/\") of the wasm root")?, Vec::<String>::new(), "the wasm root");
    ensure_eq!(native.list("/").await.ctx("List(\"/\") of the native root")?, Vec::<String>::new(), "the native root");
    Ok(())
}
