//! `regstore bench`: distribution's benchmarks with a native baseline in the same run, plus
//! what only the host can measure (load, instantiation, per-call overhead, memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use regstore::{Registry, StorageDriver};
use regstore_testsuite::bench::{BenchConfig, Figure};
use regstore_testsuite::native::{NativeFs, NativeMemory};
use regstore_testsuite::native_s3::{NativeS3, NativeS3Config};
use serde_json::Value;

use super::{DriverArgs, Failure};

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
    /// The native implementation each benchmark also runs against, for the ratios: an
    /// in-process map, std::fs under the driver's rootdirectory, or aws-sdk-s3 with the
    /// driver's S3 parameters.
    #[arg(long, value_enum, default_value_t = Baseline::None)]
    baseline: Baseline,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// No baseline: figures without ratios.
    None,
    /// A BTreeMap in this process.
    Memory,
    /// std::fs, with the same fsync discipline, under the driver's rootdirectory.
    Fs,
    /// aws-sdk-s3 compiled natively, against the same endpoint and bucket.
    AwsSdkS3,
}

pub async fn run(registry: &Registry, args: BenchArgs) -> Result<(), Failure> {
    let name = args.driver.resolve(registry).await?;
    let mut params = args.driver.params();
    let base = params.get("rootdirectory").and_then(Value::as_str).map(str::to_string);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let unique = format!("{}-{}", std::process::id(), now.as_nanos());
    // Every run keeps to a root of its own: a bucket or a directory may be shared.
    let root = format!("{}/regstore-bench-{unique}", base.as_deref().unwrap_or("").trim_end_matches('/'));
    params.insert("rootdirectory".into(), Value::String(root));
    let sandbox = args.driver.sandbox();
    let driver: Arc<dyn StorageDriver> = Arc::new(args.driver.open_as(registry, &name, &params).await?);
    let native_root = format!("{}/regstore-bench-native-{unique}", base.as_deref().unwrap_or("").trim_end_matches('/'));
    let native: Option<Arc<dyn StorageDriver>> = match args.baseline {
        Baseline::None => None,
        Baseline::Memory => Some(Arc::new(NativeMemory::default())),
        Baseline::Fs if base.is_some() => Some(Arc::new(
            NativeFs::new(&native_root).map_err(|e| Failure::Message(format!("native baseline root: {e}")))?,
        )),
        Baseline::Fs => return Err(Failure::Message("--baseline fs needs a rootdirectory parameter".into())),
        Baseline::AwsSdkS3 => match native_s3(&params, native_root) {
            Ok(n) => Some(Arc::new(n)),
            Err(why) => return Err(Failure::Message(format!("--baseline aws-sdk-s3: {why}"))),
        },
    };
    let config = BenchConfig {
        target: Duration::from_secs_f64(args.seconds.max(0.01)),
        large: args.large,
        filter: args.filter.clone(),
    };
    let json = args.json;
    if !json {
        println!(
            "{:<36} {:>14} {:>14} {:>7} {:>8} {:>12}",
            "benchmark",
            driver.name(),
            "native",
            "unit",
            "ratio",
            "µs/op"
        );
    }
    let print = |f: &Figure| {
        if json {
            println!("{}", f.json());
        } else {
            let native = f.native.map_or("-".into(), |n| format!("{n:.2}"));
            let ratio = f.ratio().map_or("-".into(), |r| format!("{r:.3}"));
            println!(
                "{:<36} {:>14.2} {:>14} {:>7} {:>8} {:>12.2}",
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

/// The s3 driver's native baseline (native aws-sdk-s3) from the driver's parameters, rooted at
/// `root`: the same endpoint, region, bucket, credentials and chunk size.
fn native_s3(params: &regstore::Params, root: String) -> Result<NativeS3, String> {
    let text = |key: &str| match params.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        _ => None,
    };
    let endpoint = text("regionendpoint").ok_or("it needs a regionendpoint (an http:// emulator)")?;
    let endpoint = if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_string()
    } else {
        let secure = text("secure").is_none_or(|s| !matches!(s.to_ascii_lowercase().as_str(), "false" | "0"));
        format!("{}://{}", if secure { "https" } else { "http" }, endpoint.trim_end_matches('/'))
    };
    let credential = |key: &str, var: &str| {
        text(key)
            .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .ok_or(format!("no {key} parameter and no {var}"))
    };
    let chunk_size = match text("chunksize") {
        Some(c) => c.parse::<usize>().map_err(|e| format!("chunksize {c:?}: {e}"))?,
        None => regstore_testsuite::native_s3::DEFAULT_CHUNK_SIZE,
    };
    NativeS3::new(NativeS3Config {
        endpoint,
        region: text("region").unwrap_or_else(|| "us-east-1".into()),
        bucket: text("bucket").ok_or("no bucket parameter")?,
        access_key: credential("accesskey", "AWS_ACCESS_KEY_ID")?,
        secret_key: credential("secretkey", "AWS_SECRET_ACCESS_KEY")?,
        root_directory: root,
        chunk_size,
    })
    .map_err(|e| e.to_string())
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
