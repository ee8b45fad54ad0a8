//! `regstore bench-report`: BENCHMARKS.md from the `--json` output of `regstore bench` runs, a
//! reference file with distribution's Go figures (measured separately) and the performance
//! targets, each target checked against the run's figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::Failure;

#[derive(Args)]
pub struct ReportArgs {
    /// The reference file: Go's figures and the targets (docs/bench/reference.json).
    #[arg(long, value_name = "FILE")]
    reference: PathBuf,
    /// Write the report here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// One `regstore bench --json` output per driver, in the order they are to appear.
    #[arg(required = true, value_name = "RUN.json")]
    runs: Vec<PathBuf>,
}

/// One row of a `--json` run.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    name: String,
    driver: String,
    wasm: f64,
    native: Option<f64>,
    unit: String,
    #[serde(default)]
    wasm_us_per_op: f64,
}

impl Row {
    /// How fast the wasm driver is against native, 1.0 = native speed, higher is better
    /// (throughputs as they are; times and sizes inverted).
    fn speed(&self) -> Option<f64> {
        let native = self.native.filter(|n| *n > 0.0)?;
        if self.wasm <= 0.0 {
            return None;
        }
        Some(if higher_is_better(&self.unit) { self.wasm / native } else { native / self.wasm })
    }
}

fn higher_is_better(unit: &str) -> bool {
    matches!(unit, "ops/s" | "MB/s")
}

#[derive(Debug, Deserialize)]
struct Reference {
    go: Go,
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Go {
    what: String,
    /// Driver → benchmark → µs per operation.
    us_per_op: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
}

impl Go {
    fn of(&self, row: &Row) -> Option<f64> {
        self.us_per_op.get(&row.driver)?.get(&row.name).copied()
    }
}

/// A bound on some rows of a driver (`*`: any driver, any row with a figure of that kind).
#[derive(Debug, Deserialize)]
struct Target {
    driver: String,
    benchmarks: Vec<String>,
    min_speed: Option<f64>,
    max_figure: Option<f64>,
    max_us_per_op: Option<f64>,
    max_vs_go: Option<f64>,
}

impl Target {
    fn covers(&self, row: &Row) -> bool {
        (self.driver == "*" || self.driver == row.driver) && self.benchmarks.iter().any(|b| b == "*" || *b == row.name)
    }

    /// The bound's words, the row's figure in the same terms, and whether it is met; `None`
    /// when the row has no such figure (no baseline, no Go time).
    fn check(&self, row: &Row, go: &Go) -> Option<(String, String, bool)> {
        if let Some(min) = self.min_speed {
            let speed = row.speed()?;
            return Some((format!("≥ {min}× native speed"), format!("{speed:.2}×"), speed >= min));
        }
        if let Some(max) = self.max_figure {
            return Some((format!("≤ {max} {}", row.unit), format!("{:.2} {}", row.wasm, row.unit), row.wasm <= max));
        }
        if let Some(max) = self.max_us_per_op {
            let us = row.wasm_us_per_op;
            return Some((format!("≤ {max} µs per operation"), format!("{us:.2} µs"), us > 0.0 && us <= max));
        }
        if let Some(max) = self.max_vs_go {
            let go = go.of(row)?;
            let vs = row.wasm_us_per_op / go;
            return Some((format!("≤ {max}× Go's time"), format!("{vs:.2}×"), vs <= max));
        }
        None
    }
}

fn read_runs(files: &[PathBuf]) -> Result<Vec<(String, Vec<Row>)>, Failure> {
    let mut runs = Vec::new();
    for file in files {
        let text = read(file)?;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with('{')) {
            let row: Row = serde_json::from_str(line)
                .map_err(|e| Failure::Message(format!("{}:{}: {e}: {line}", file.display(), n + 1)))?;
            rows.push(row);
        }
        let Some(driver) = rows.first().map(|r| r.driver.clone()) else {
            return Err(Failure::Message(format!(
                "{}: no benchmark rows (expected the output of `regstore bench --json`)",
                file.display()
            )));
        };
        runs.push((driver, rows));
    }
    Ok(runs)
}

fn read(file: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(file).map_err(|e| Failure::Message(format!("{}: {e}", file.display())))
}

pub fn run(args: ReportArgs) -> Result<(), Failure> {
    let text = read(&args.reference)?;
    let reference: Reference = serde_json::from_str(&text)
        .map_err(|e| Failure::Message(format!("{}: not a reference file: {e}", args.reference.display())))?;
    let runs = read_runs(&args.runs)?;
    let report = render(&reference, &runs, &machine());
    match &args.out {
        Some(out) => std::fs::write(out, report).map_err(|e| Failure::Message(format!("{}: {e}", out.display()))),
        None => {
            print!("{report}");
            Ok(())
        }
    }
}

/// The machine the figures were taken on, in one line.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(String::new(), |kib| format!(", {} GiB", (kib + (1 << 19)) >> 20));
    format!("{cores} cores ({cpu}){memory}, {}", std::env::consts::OS)
}

fn render(reference: &Reference, runs: &[(String, Vec<Row>)], machine: &str) -> String {
    let mut md = String::new();
    let drivers: Vec<&str> = runs.iter().map(|(d, _)| d.as_str()).collect();
    let _ = write!(
        md,
        "# regstore benchmarks\n\n\
         Generated by `scripts/main-job` (`regstore bench --json`, release build, then \
         `regstore bench-report`) on {machine}. Drivers: {}. Do not edit by hand: run \
         `scripts/main-job` to regenerate it.\n\n",
        drivers.join(", ")
    );
    md.push_str(METHOD);
    let _ = writeln!(
        md,
        "- Go: {}; `Go µs/op` and `vs Go` (regstore's time ÷ Go's, below 1 is ahead) compare the wasm driver with them.\n",
        reference.go.what
    );

    md.push_str("## Targets\n\n| driver | benchmark | target | figure | met |\n|---|---|---|---|---|\n");
    let (mut met, mut total) = (0, 0);
    for target in &reference.targets {
        for (_, rows) in runs {
            for row in rows.iter().filter(|r| target.covers(r)) {
                if let Some((bound, figure, ok)) = target.check(row, &reference.go) {
                    total += 1;
                    met += usize::from(ok);
                    let _ = writeln!(
                        md,
                        "| {} | {} | {bound} | {figure} | {} |",
                        row.driver,
                        row.name,
                        if ok { "yes" } else { "**no**" }
                    );
                }
            }
        }
    }
    let _ = writeln!(md, "\n{met} of {total} targets met in this run.\n");

    for (driver, rows) in runs {
        let _ = writeln!(md, "## {driver}\n");
        md.push_str("| benchmark | wasm | native | unit | speed vs native | µs/op | Go µs/op | vs Go |\n");
        md.push_str("|---|---:|---:|---|---:|---:|---:|---:|\n");
        for row in rows {
            let native = row.native.map_or("-".into(), |n| format!("{n:.2}"));
            let speed = row.speed().map_or("-".into(), |s| format!("{s:.3}"));
            let us = if row.wasm_us_per_op > 0.0 { format!("{:.2}", row.wasm_us_per_op) } else { "-".into() };
            let (go, vs) = match reference.go.of(row) {
                Some(go) if row.wasm_us_per_op > 0.0 => (format!("{go}"), format!("{:.2}", row.wasm_us_per_op / go)),
                Some(go) => (format!("{go}"), "-".into()),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                md,
                "| {} | {:.2} | {native} | {} | {speed} | {us} | {go} | {vs} |",
                row.name, row.wasm, row.unit
            );
        }
        md.push('\n');
    }
    md.push_str(REPRODUCE);
    md
}

const METHOD: &str = "## What the figures mean\n\n\
- distribution's 12 storage-driver benchmarks, plus concurrent Stream loops (2 and 8 tasks), each \
run for about 2 s against the wasm component and then, in the same process, against the same \
driver's Rust source compiled natively (`regstore-native`) behind the same `Base` layer, with the \
same parameters and a root of its own. `speed vs native` is therefore the cost of the component \
boundary and WASI alone: 1.0 is native speed, higher is better (throughputs as measured, times \
inverted). `µs/op` is the wasm driver's time per iteration (for PutGet: one PutContent and one \
GetContent).\n\
- Host-only rows: `LoadCompile` (compiling the component), `LoadFromCache` (reading and checking \
the precompiled artifact from the on-disk cache, then deserialising it), `NewInstance` (a fresh \
instance, opened), `CallOverhead` (a Stat of a missing path, wasm and native), \
`PeakRSSAboveIdle` (resident memory above the idle process while a fresh instance streams 1 GiB \
through a writer and back).\n\
- The machine is shared and has 2 cores: expect ±20 % between runs; ratios within one run are \
steadier than absolute figures.\n";

const REPRODUCE: &str = "## Reproducing\n\n\
```sh\n\
scripts/main-job                      # both drivers, this file regenerated\n\
regstore bench --driver inmemory --large --json > now.json\n\
regstore bench --driver inmemory --compare now.json    # later: the change per row\n\
```\n\n\
The cloud drivers are benchmarked the same way against an endpoint of your own (for example \
`regstore bench --driver s3 --param regionendpoint=http://127.0.0.1:PORT ...`); their test \
binaries print a PutGet 1 KiB and a Stream 1 MiB row against the native build on every run \
(`BenchAgainstNative`).\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, driver: &str, wasm: f64, native: Option<f64>, unit: &str, us: f64) -> Row {
        Row { name: name.into(), driver: driver.into(), wasm, native, unit: unit.into(), wasm_us_per_op: us }
    }

    fn reference() -> Reference {
        serde_json::from_str(
            r#"{"go": {"what": "Go", "us_per_op": {"filesystem": {"BenchmarkList5Files": 10.0}}},
                "targets": [
                  {"driver": "filesystem", "benchmarks": ["*"], "min_speed": 0.9},
                  {"driver": "filesystem", "benchmarks": ["BenchmarkList5Files"], "max_vs_go": 2.0},
                  {"driver": "*", "benchmarks": ["LoadFromCache"], "max_figure": 1.0}
                ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn speed_inverts_times() {
        assert_eq!(row("a", "d", 50.0, Some(100.0), "ops/s", 0.0).speed(), Some(0.5));
        assert_eq!(row("a", "d", 2.0, Some(1.0), "µs", 0.0).speed(), Some(0.5));
        assert_eq!(row("a", "d", 2.0, None, "µs", 0.0).speed(), None);
    }

    #[test]
    fn targets_are_checked_and_counted() {
        let runs = vec![(
            "filesystem".to_string(),
            vec![
                row("BenchmarkList5Files", "filesystem", 100.0, Some(100.0), "ops/s", 30.0),
                row("BenchmarkStream1MBFiles", "filesystem", 80.0, Some(100.0), "MB/s", 10.0),
                row("LoadFromCache", "filesystem", 0.8, None, "ms", 0.0),
            ],
        )];
        let md = render(&reference(), &runs, "test machine");
        // List: 1.0× native (met), 3× Go's time (not met); Stream 0.8× (not met); load met.
        assert!(md.contains("| filesystem | BenchmarkList5Files | ≥ 0.9× native speed | 1.00× | yes |"), "{md}");
        assert!(md.contains("| filesystem | BenchmarkList5Files | ≤ 2× Go's time | 3.00× | **no** |"), "{md}");
        assert!(md.contains("| filesystem | BenchmarkStream1MBFiles | ≥ 0.9× native speed | 0.80× | **no** |"), "{md}");
        assert!(md.contains("| filesystem | LoadFromCache | ≤ 1 ms | 0.80 ms | yes |"), "{md}");
        assert!(md.contains("2 of 4 targets met"), "{md}");
        assert!(md.contains("| BenchmarkList5Files | 100.00 | 100.00 | ops/s | 1.000 | 30.00 | 10 | 3.00 |"), "{md}");
    }

    #[test]
    fn a_run_without_rows_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.json");
        std::fs::write(&file, "benchmark header only\n").unwrap();
        assert!(matches!(read_runs(&[file]), Err(Failure::Message(m)) if m.contains("no benchmark rows")));
    }
}
