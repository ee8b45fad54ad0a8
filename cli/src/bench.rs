//! `regstore bench`: distribution's benchmarks with a native baseline in the same run, plus
//! what only the host can measure (load, instantiation, per-call overhead, memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use regstore::{Registry, StorageDriver};
use regstore_testsuite::bench::{BenchConfig, Figure};
use serde_json::Value;

use super::{DriverArgs, Failure, Setting, open_setting};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    driver: DriverArgs,
    /// Print one JSON object per benchmark instead of a table.
    #[arg(long)]
    json: bool,
    /// Include the 1 GiB cases and the peak memory of a 1 GiB stream.
    #[arg(long)]
    large: bool,
    /// Only benchmarks whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Roughly how long each side of a benchmark runs, in seconds.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Also draw the wasm/native ratios as an SVG chart into this file.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// What each benchmark also runs against, for the ratios: `native`, the same driver's code
    /// compiled into this binary (the default for a bundled driver), or `none`.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// A previous `--json` output: print how each benchmark changed since.
    #[arg(long, value_name = "FILE")]
    compare: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// No baseline: figures without ratios.
    None,
    /// The driver's own code compiled natively, with the same parameters (a root of its own),
    /// called without the component boundary, WASI or a sandbox.
    Native,
}

pub async fn run(registry: &Registry, args: BenchArgs) -> Result<(), Failure> {
    let Setting { name, mut params, sandbox } = args.driver.setting(registry).await?;
    let base = params.get("rootdirectory").and_then(Value::as_str).map(str::to_string);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let unique = format!("{}-{}", std::process::id(), now.as_nanos());
    // Every run keeps to a root of its own: a bucket or a directory may be shared.
    let root = format!("{}/regstore-bench-{unique}", base.as_deref().unwrap_or("").trim_end_matches('/'));
    params.insert("rootdirectory".into(), Value::String(root));
    let setting = Setting { name, params, sandbox };
    let driver: Arc<dyn StorageDriver> = Arc::new(open_setting(registry, &setting).await?);
    let Setting { name, params, sandbox } = setting;
    let native_root = format!("{}/regstore-bench-native-{unique}", base.as_deref().unwrap_or("").trim_end_matches('/'));
    let baseline = args.baseline.unwrap_or(if regstore_native::has(&name) { Baseline::Native } else { Baseline::None });
    let native: Option<Arc<dyn StorageDriver>> = match baseline {
        Baseline::None => None,
        Baseline::Native => {
            let mut native_params = params.clone();
            native_params.insert("rootdirectory".into(), Value::String(native_root));
            if !sandbox.ca_files.is_empty() {
                regstore_native::trust_ca_files(&sandbox.ca_files)?;
            }
            Some(regstore_native::open_boxed(&name, &native_params)?)
        }
    };
    let previous = match &args.compare {
        Some(file) => Some(Previous::read(file)?),
        None => None,
    };
    let config = BenchConfig {
        target: Duration::from_secs_f64(args.seconds.max(0.01)),
        large: args.large,
        filter: args.filter.clone(),
    };
    let json = args.json;
    if !json {
        println!(
            "{:<36} {:>14} {:>14} {:>7} {:>8} {:>12}{}",
            "benchmark",
            driver.name(),
            "native",
            "unit",
            "ratio",
            "µs/op",
            if previous.is_some() {
                format!(" {:>14} {:>8} {:>15}", "before", "change", "ratio before")
            } else {
                String::new()
            }
        );
    }
    let print = |f: &Figure| {
        if json {
            println!("{}", f.json());
        } else {
            let native = f.native.map_or("-".into(), |n| format!("{n:.2}"));
            let ratio = f.ratio().map_or("-".into(), |r| format!("{r:.3}"));
            let change = previous.as_ref().map_or(String::new(), |p| p.change(f));
            println!(
                "{:<36} {:>14.2} {:>14} {:>7} {:>8} {:>12.2}{change}",
                f.name,
                f.wasm,
                native,
                f.unit,
                ratio,
                f.wasm_secs_per_op * 1e6
            );
        }
    };
    let mut figures = regstore_testsuite::bench::run(driver.clone(), native.clone(), &config, print).await?;
    for f in host_figures(registry, &name, &params, &sandbox, &driver, native.as_ref(), &args).await? {
        print(&f);
        figures.push(f);
    }
    if let Some(svg) = &args.svg {
        std::fs::write(svg, chart(&figures)).map_err(|e| Failure::Message(format!("{}: {e}", svg.display())))?;
    }
    // The roots were emptied by the benchmarks; remove them where they are local directories
    // (remove_dir touches only empty ones).
    if let Some(base) = &base {
        let _ = std::fs::remove_dir(format!("{base}/regstore-bench-{unique}"));
        let _ = std::fs::remove_dir_all(format!("{base}/regstore-bench-native-{unique}"));
    }
    Ok(())
}

/// The figures of an earlier run (its `--json` lines), for `--compare`.
struct Previous {
    /// Benchmark name → (figure, unit, ratio).
    rows: std::collections::HashMap<String, (f64, String, Option<f64>)>,
}

impl Previous {
    fn read(file: &std::path::Path) -> Result<Previous, Failure> {
        let text = std::fs::read_to_string(file).map_err(|e| Failure::Message(format!("{}: {e}", file.display())))?;
        let mut rows = std::collections::HashMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with('{')) {
            let bad = |why: &str| Failure::Message(format!("{}:{}: {why}: {line}", file.display(), n + 1));
            let row: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
            let name = row["name"].as_str().ok_or_else(|| bad("no \"name\""))?;
            let wasm = row["wasm"].as_f64().ok_or_else(|| bad("no \"wasm\" figure"))?;
            let unit = row["unit"].as_str().unwrap_or_default().to_string();
            rows.insert(name.to_string(), (wasm, unit, row["ratio"].as_f64()));
        }
        if rows.is_empty() {
            return Err(Failure::Message(format!(
                "{}: no benchmark rows (expected the output of `regstore bench --json`)",
                file.display()
            )));
        }
        Ok(Previous { rows })
    }

    /// The before figure, the change (positive: better) and the ratio before, as columns.
    fn change(&self, f: &Figure) -> String {
        let Some((before, unit, ratio)) = self.rows.get(&f.name) else {
            return format!(" {:>14} {:>8} {:>15}", "-", "new", "-");
        };
        let ratio = ratio.map_or("-".into(), |r| format!("{r:.3}"));
        if unit != f.unit || *before <= 0.0 {
            return format!(" {before:>14.2} {:>8} {ratio:>15}", "?");
        }
        format!(" {before:>14.2} {:>+7.1}% {ratio:>15}", improvement(f.unit, *before, f.wasm) * 100.0)
    }
}

/// How much better `now` is than `before`, as a fraction: figures in throughput units are
/// better higher, times and sizes better lower.
fn improvement(unit: &str, before: f64, now: f64) -> f64 {
    match unit {
        "ops/s" | "MB/s" => now / before - 1.0,
        _ => before / now.max(f64::MIN_POSITIVE) - 1.0,
    }
}

fn figure(name: &str, driver: &str, wasm: f64, native: Option<f64>, unit: &'static str) -> Figure {
    Figure { name: name.into(), driver: driver.into(), wasm, native, unit, wasm_secs_per_op: 0.0 }
}

fn selected(args: &BenchArgs, name: &str) -> bool {
    args.filter.as_ref().is_none_or(|f| name.contains(f.as_str()))
}

/// Load times, instantiation, call overhead and (with `--large`) peak memory of a 1 GiB stream.
async fn host_figures(
    registry: &Registry,
    name: &str,
    params: &regstore::Params,
    sandbox: &regstore::Sandbox,
    driver: &Arc<dyn StorageDriver>,
    native: Option<&Arc<dyn StorageDriver>>,
    args: &BenchArgs,
) -> Result<Vec<Figure>, Failure> {
    let label = driver.name().to_string();
    let mut out = Vec::new();
    if selected(args, "Load") {
        let (cold, cached) = registry.load_times(name)?;
        out.push(figure("LoadCompile", &label, cold.as_secs_f64() * 1e3, None, "ms"));
        if let Some(cached) = cached {
            out.push(figure("LoadFromCache", &label, cached.as_secs_f64() * 1e3, None, "ms"));
        }
    }
    if selected(args, "NewInstance") {
        let n = 200;
        let started = Instant::now();
        for _ in 0..n {
            drop(registry.create_with(name, params, sandbox.clone()).await?);
        }
        out.push(figure("NewInstance", &label, started.elapsed().as_secs_f64() * 1e6 / n as f64, None, "µs"));
    }
    if selected(args, "CallOverhead") {
        // 5000 calls, or fewer where each call is a network round trip (s3): at least 20, and
        // no more than `--seconds` once there are.
        let budget = Duration::from_secs_f64(args.seconds.max(0.01));
        let per_call = |d: Arc<dyn StorageDriver>| async move {
            let started = Instant::now();
            let mut n = 0u32;
            while n < 5000 && (n < 20 || started.elapsed() < budget) {
                let _ = d.stat("/regstore-bench-missing").await;
                n += 1;
            }
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        };
        let wasm = per_call(driver.clone()).await;
        let base = match native {
            Some(n) => Some(per_call(n.clone()).await),
            None => None,
        };
        out.push(figure("CallOverhead(stat missing)", &label, wasm, base, "µs"));
    }
    if args.large && selected(args, "PeakRSS") {
        // A fresh instance, so memory earlier benchmarks left with the old one does not hide
        // what this stream needs.
        let fresh: Arc<dyn StorageDriver> = Arc::new(registry.create_with(name, params, sandbox.clone()).await?);
        let idle = rss_bytes();
        let peak = Arc::new(AtomicU64::new(idle));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    peak.fetch_max(rss_bytes(), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let chunk = vec![0x5au8; 1 << 20];
        let result = regstore_testsuite::bench::stream_repeated(&*fresh, "/regstore-bench-rss/1g", &chunk, 1024).await;
        done.store(true, Ordering::SeqCst);
        let _ = sampler.join();
        result?;
        let above = peak.load(Ordering::SeqCst).saturating_sub(idle) as f64 / (1 << 20) as f64;
        out.push(figure("PeakRSSAboveIdle(Stream1GB)", &label, above, None, "MiB"));
    }
    Ok(out)
}

/// The process's resident memory, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// A horizontal bar chart of the wasm/native ratios, with the 1.0 line.
fn chart(figures: &[Figure]) -> String {
    let rows: Vec<(&str, f64)> = figures.iter().filter_map(|f| f.ratio().map(|r| (f.name.as_str(), r))).collect();
    let (left, width, row) = (300.0, 400.0, 22.0);
    let max = rows.iter().map(|(_, r)| *r).fold(1.2f64, f64::max).min(3.0);
    let scale = width / max;
    let height = row * rows.len() as f64 + 50.0;
    let driver = figures.first().map_or("", |f| f.driver.as_str());
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"16\" font-weight=\"bold\">{driver}: wasm / native (higher is better; 1.0 = native speed)</text>\n",
        left + width + 80.0
    );
    for (i, (name, ratio)) in rows.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let w = ratio.min(max) * scale;
        let color = if *ratio >= 0.9 { "#4c9a2a" } else { "#c0504d" };
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{name}</text>\n<rect x=\"{left}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"/>\n<text x=\"{}\" y=\"{}\">{ratio:.2}</text>\n",
            left - 6.0,
            y + 14.0,
            y + 3.0,
            row - 6.0,
            left + w + 4.0,
            y + 14.0
        ));
    }
    let x1 = left + scale;
    svg.push_str(&format!(
        "<line x1=\"{x1}\" y1=\"26\" x2=\"{x1}\" y2=\"{}\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n</svg>\n",
        height - 10.0
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(name: &str, wasm: f64, unit: &'static str) -> Figure {
        Figure { name: name.into(), driver: "inmemory".into(), wasm, native: None, unit, wasm_secs_per_op: 0.0 }
    }

    #[test]
    fn compare_reads_json_lines_and_signs_changes_by_unit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("before.json");
        let lines = [
            figure("BenchmarkList50Files", 100.0, "ops/s").json(),
            figure("CallOverhead(stat missing)", 2.0, "µs").json(),
        ];
        std::fs::write(&file, format!("benchmark header\n{}\n", lines.join("\n"))).unwrap();
        let Ok(previous) = Previous::read(&file) else { panic!("the previous run reads") };
        assert!(previous.change(&figure("BenchmarkList50Files", 150.0, "ops/s")).contains("+50.0%"));
        assert!(previous.change(&figure("CallOverhead(stat missing)", 4.0, "µs")).contains("-50.0%"));
        assert!(previous.change(&figure("BenchmarkNew", 1.0, "ops/s")).contains("new"));
        std::fs::write(&file, "not json\n").unwrap();
        assert!(Previous::read(&file).is_err());
    }
}
