//! `regstore conformance`: the suite against any registered or file-given driver.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use regstore::{DEFAULT_MEMORY, Description, MEMORY_LIMIT_TRAP, Registry, Sandbox, StorageDriver};
use regstore_testsuite::runner::Summary;
use regstore_testsuite::{Config, DriverFactory};
use serde_json::Value;

use super::{DriverArgs, Failure, Setting, open_setting};

#[derive(Args)]
pub struct ConformanceArgs {
    #[command(flatten)]
    driver: DriverArgs,
    /// Run only the tests whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// How many tests run at once, each on its own driver instance.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// distribution's short mode: smaller concurrency tests, no large stream.
    #[arg(long)]
    short: bool,
    /// Bytes streamed by TestWriteReadLargeStreams (distribution: 5 GiB; 1 GiB for a driver
    /// whose HTTP endpoints are all on loopback, taken to be an in-memory emulator; never more
    /// than the largest object the driver declares).
    #[arg(long, value_name = "BYTES")]
    large_stream_size: Option<u64>,
    /// List the tests instead of running them.
    #[arg(long)]
    list: bool,
}

pub async fn run(registry: &Registry, args: ConformanceArgs) -> Result<(), Failure> {
    if args.list {
        for test in regstore_testsuite::all() {
            println!("{}", test.name);
        }
        return Ok(());
    }
    let mut setting = args.driver.setting(registry).await?;
    let scratch = grant_scratch_root(registry, &mut setting).await?;
    // Fail early, with the driver's own message, if it cannot even be built.
    let probe = open_setting(registry, &setting).await?;
    println!("conformance of {} ({})", probe.name(), args.driver.origin());
    let Setting { name, params, sandbox } = setting;
    drop(probe);
    let description = registry.describe(&name, &params).await?;
    let large_stream_size =
        args.large_stream_size.unwrap_or_else(|| default_large_stream(&description.requirements.http_authorities));
    let large_stream_size =
        description.capabilities.max_object_size.map_or(large_stream_size, |m| m.min(large_stream_size));
    if !args.short {
        println!("TestWriteReadLargeStreams streams {} MiB (--large-stream-size to change)", large_stream_size >> 20);
    }

    let registry = registry.clone();
    let roots = Arc::new(Mutex::new(Vec::new()));
    let factory: DriverFactory = {
        let (name, params, sandbox, roots) = (name.clone(), params.clone(), sandbox.clone(), roots.clone());
        Arc::new(move || {
            let (registry, name, mut params, sandbox) =
                (registry.clone(), name.clone(), params.clone(), sandbox.clone());
            let roots = roots.clone();
            Box::pin(async move {
                // A fresh, empty root for every test, under the configured one.
                let base =
                    params.get("rootdirectory").and_then(Value::as_str).unwrap_or("").trim_end_matches('/').to_string();
                let fresh = format!("{base}/regstore-conformance-{}", unique());
                roots.lock().unwrap().push(fresh.clone());
                params.insert("rootdirectory".into(), Value::String(fresh));
                let driver = registry.create_with(&name, &params, sandbox).await?;
                Ok(Arc::new(driver) as Arc<dyn StorageDriver>)
            })
        })
    };
    // Redirect URLs are fetched trusting what the driver is given to trust (--ca-file).
    let config = Config { large_stream_size, short: args.short, ca_files: sandbox.ca_files.clone() };
    let mut out = std::io::stdout();
    let summary = regstore_testsuite::runner::run(
        regstore_testsuite::all(),
        factory,
        config,
        args.filter.as_deref(),
        args.jobs,
        &mut out,
    )
    .await;
    // Each test left its root empty; remove the roots that are local directories. (remove_dir
    // touches only empty directories, and for drivers whose root is no local path it is a no-op.)
    for root in roots.lock().unwrap().iter() {
        let _ = std::fs::remove_dir(root);
    }
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir(dir);
    }
    for hint in hints(&summary, &sandbox, &description, large_stream_size) {
        println!("hint: {hint}");
    }
    if summary.failed > 0 { Err(Failure::Silent) } else { Ok(()) }
}

/// The suite hands the driver a fresh root for every test under `rootdirectory`: it makes that
/// directory (a scratch one under the system's temporary directory when none is given) and, if
/// the driver declares it as a directory it writes and the operator did not grant it, grants it
/// for the run and says so. Returns the scratch directory it made.
async fn grant_scratch_root(registry: &Registry, setting: &mut Setting) -> Result<Option<PathBuf>, Failure> {
    let mut scratch = None;
    if !setting.params.contains_key("rootdirectory") {
        let dir = std::env::temp_dir().join(format!("regstore-conformance-{}", unique()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::Message(format!("cannot make a scratch root {}: {e}", dir.display())))?;
        println!("rootdirectory {} (a scratch directory; --param rootdirectory=DIR to choose)", dir.display());
        setting.params.insert("rootdirectory".into(), Value::String(dir.display().to_string()));
        scratch = Some(dir);
    }
    let root = setting.params.get("rootdirectory").and_then(Value::as_str).unwrap_or_default().to_string();
    let Ok(plan) = registry.plan(&setting.name, &setting.params, &setting.sandbox).await else {
        // Opening the driver reports its parameter error in its own words.
        return Ok(scratch);
    };
    let declared = plan.description.requirements.read_write_dirs.iter().any(|d| Path::new(d) == Path::new(&root));
    let granted = plan.trusted
        || setting.sandbox.grant_requested
        || setting.sandbox.dirs.iter().any(|dir| Path::new(&root).starts_with(dir));
    if declared && !granted {
        std::fs::create_dir_all(&root).map_err(|e| Failure::Message(format!("cannot make {root}: {e}")))?;
        println!("granting {root} read-write for this run: the suite's per-test roots are made under it");
        setting.sandbox.dirs.push(PathBuf::from(&root));
    }
    Ok(scratch)
}

/// What to try when tests failed for a reason the operator can change.
fn hints(summary: &Summary, sandbox: &Sandbox, description: &Description, large_stream: u64) -> Vec<String> {
    let mut hints = Vec::new();
    let at_limit: Vec<&str> =
        summary.failures.iter().filter(|(_, why)| why.contains(MEMORY_LIMIT_TRAP)).map(|(n, _)| n.as_str()).collect();
    if !at_limit.is_empty() {
        let now = sandbox.memory_limit.map_or(description.requirements.memory_bytes.min(DEFAULT_MEMORY), |m| m as u64);
        let more = (now >> 20).saturating_mul(2).max(512);
        hints.push(format!(
            "{} failed at the memory limit of {} MiB ({}): run with --memory-limit {more}, and declare it in the \
             driver's describe (memory-bytes) once it is known",
            at_limit.join(", "),
            now >> 20,
            if description.requirements.memory_bytes > now {
                "less than the driver declares"
            } else {
                "what the driver declares"
            },
        ));
    }
    if summary.failures.iter().any(|(name, _)| name == "TestWriteReadLargeStreams") {
        hints.push(format!(
            "TestWriteReadLargeStreams failed streaming {} MiB: if the backend cannot hold that, try \
             --large-stream-size BYTES, and declare the driver's max-object-size",
            large_stream >> 20
        ));
    }
    hints
}

/// distribution's 5 GiB, or 1 GiB for a driver that talks only to loopback endpoints:
/// emulators hold every byte in memory, several times over while an upload completes.
fn default_large_stream(authorities: &[String]) -> u64 {
    let loopback = |authority: &String| {
        let host = authority.rsplit_once(':').map_or(authority.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    if !authorities.is_empty() && authorities.iter().all(loopback) { 1 << 30 } else { 5 << 30 }
}

/// A short unique suffix for per-test roots.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{nanos:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
