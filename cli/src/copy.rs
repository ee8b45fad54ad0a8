//! `regstore copy`: a registry's storage from one driver to another (regstore-transfer's
//! `copy_tree`), with progress on stderr and a summary on stdout.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use regstore::{Driver, Params, Registry, Sandbox, StorageConfig};
use regstore_transfer::{CopyOptions, Outcome, Progress, Summary, copy_tree};
use serde_json::Value;

use super::{Failure, Setting, open_setting, parse_param, printable};

#[derive(Args)]
pub struct CopyArgs {
    /// Where to copy from: a distribution config.yml, or a driver's name.
    #[arg(long, value_name = "CONFIG.yml|DRIVER")]
    from: String,
    /// Where to copy to: a distribution config.yml, or a driver's name.
    #[arg(long, value_name = "CONFIG.yml|DRIVER")]
    to: String,
    /// A parameter of the source driver, over its configuration's (repeatable).
    #[arg(long = "from-param", value_name = "KEY=VALUE", value_parser = parse_param)]
    from_params: Vec<(String, String)>,
    /// A parameter of the destination driver, over its configuration's (repeatable).
    #[arg(long = "to-param", value_name = "KEY=VALUE", value_parser = parse_param)]
    to_params: Vec<(String, String)>,
    /// The source is this third-party component, registered as --from's name (its grants
    /// come from a config's regstore section, or use a config instead).
    #[arg(long, value_name = "FILE.wasm")]
    from_component: Option<PathBuf>,
    /// The destination is this third-party component, registered as --to's name.
    #[arg(long, value_name = "FILE.wasm")]
    to_component: Option<PathBuf>,
    /// Copy only what is under this path.
    #[arg(default_value = "/")]
    path: String,
    /// Objects in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Afterwards, read every object back from both sides and compare.
    #[arg(long)]
    verify: bool,
    /// Say what would be copied (and deleted), and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete what the destination holds under the path and the source does not.
    #[arg(long)]
    delete_extraneous: bool,
    /// Print the summary as one JSON object (fields in docs/cli.md).
    #[arg(long)]
    json: bool,
    /// At the end, print the storage metrics of both drivers on stderr (docs/cli.md).
    #[arg(long)]
    metrics: bool,
}

pub async fn run(registry: &Registry, args: CopyArgs) -> Result<(), Failure> {
    // Before the drivers exist: their metric handles bind to the recorder installed then.
    let metrics = if args.metrics { super::metrics::install() } else { None };
    let from = side(registry, "from", &args.from, &args.from_params, args.from_component.as_deref()).await?;
    let to = side(registry, "to", &args.to, &args.to_params, args.to_component.as_deref()).await?;
    let options = CopyOptions {
        jobs: args.jobs as usize,
        verify: args.verify,
        dry_run: args.dry_run,
        delete_extraneous: args.delete_extraneous,
        ..CopyOptions::default()
    };
    let progress = Arc::new(Report::new());
    let ticker = (!progress.on_terminal()).then(|| tokio::spawn(progress.clone().tick_every(Duration::from_secs(10))));
    let copied = super::objects::interruptible(copy_tree(&from, &to, &args.path, &options, &*progress)).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    progress.finish();
    let summary = match copied {
        Ok(copied) => copied?,
        Err(Failure::Message(m)) => {
            let resume = "what was copied is kept, and the same command resumes";
            return Err(Failure::Message(format!("{m}; {resume}")));
        }
        Err(other) => return Err(other),
    };
    print_summary(&summary, args.dry_run, args.json);
    if let Some(metrics) = &metrics {
        super::metrics::print(metrics);
    }
    for (path, why) in &summary.failed {
        eprintln!("failed {}: {}", printable(path), printable(why));
    }
    match summary.failed.len() {
        0 => Ok(()),
        n => Err(Failure::Message(format!("{n} of {} objects failed (listed above)", summary.objects))),
    }
}

/// One side of the copy: a config.yml (a file that exists, or a name ending in .yml/.yaml) or
/// a registered driver's name, with the command line's parameters on top.
async fn side(
    registry: &Registry,
    flag: &str,
    spec: &str,
    params: &[(String, String)],
    component: Option<&Path>,
) -> Result<Driver, Failure> {
    let looks_like_config = Path::new(spec).is_file() || spec.ends_with(".yml") || spec.ends_with(".yaml");
    let mut setting = match (looks_like_config, component) {
        (true, Some(_)) => {
            let why = format!("--{flag}-component names a driver's file; --{flag} {spec} is a configuration");
            return Err(Failure::Message(why));
        }
        (true, None) => {
            let config = StorageConfig::load(Path::new(spec))?;
            for warning in &config.warnings {
                eprintln!("warning: {}", printable(warning));
            }
            if let Some(file) = &config.component {
                registry.register_file(Some(&config.driver), file).await?;
            }
            Setting { name: config.driver, params: config.params, sandbox: config.sandbox }
        }
        (false, component) => {
            if let Some(file) = component {
                registry.register_file(Some(spec), file).await?;
            }
            Setting { name: spec.to_string(), params: Params::new(), sandbox: Sandbox::default() }
        }
    };
    for (k, v) in params {
        setting.params.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(open_setting(registry, &setting).await?)
}

fn print_summary(s: &Summary, dry_run: bool, json: bool) {
    let seconds = s.elapsed.as_secs_f64();
    if json {
        let failed: Vec<Value> =
            s.failed.iter().map(|(path, why)| serde_json::json!({ "path": path, "error": why })).collect();
        let summary = serde_json::json!({
            "dry_run": dry_run, "objects": s.objects, "bytes": s.bytes, "copied": s.copied,
            "copied_bytes": s.copied_bytes, "skipped": s.skipped, "verified": s.verified,
            "deleted": s.deleted, "failed": failed, "seconds": seconds,
        });
        println!("{summary}");
        return;
    }
    let (copied, deleted) = if dry_run { ("would copy", "would delete") } else { ("copied", "deleted") };
    let rate = if seconds > 0.0 { s.copied_bytes as f64 / seconds } else { 0.0 };
    println!(
        "{} objects ({}) under the path: {copied} {} ({}), skipped {} already there, failed {}, {deleted} {}, \
         verified {}, in {seconds:.1} s ({}/s)",
        s.objects,
        human(s.bytes as f64),
        s.copied,
        human(s.copied_bytes as f64),
        s.skipped,
        s.failed.len(),
        s.deleted,
        s.verified,
        human(rate)
    );
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Progress on stderr: a bar on a terminal, else a line every few seconds.
struct Report {
    bar: Option<ProgressBar>,
    objects: AtomicU64,
    bytes: AtomicU64,
    done: AtomicU64,
    moved: AtomicU64,
}

impl Report {
    fn new() -> Report {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Report {
            bar,
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            done: AtomicU64::new(0),
            moved: AtomicU64::new(0),
        }
    }

    fn on_terminal(&self) -> bool {
        self.bar.is_some()
    }

    fn line(&self) -> String {
        let (done, objects) = (self.done.load(Ordering::Relaxed), self.objects.load(Ordering::Relaxed));
        let (moved, bytes) = (self.moved.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed));
        format!("copy: {done}/{objects} objects, {} read of {}", human(moved as f64), human(bytes as f64))
    }

    async fn tick_every(self: Arc<Self>, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            eprintln!("{}", self.line());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Report {
    fn planned(&self, objects: u64, bytes: u64) {
        self.objects.store(objects, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
            bar.set_message(format!("0/{objects} objects"));
        }
    }

    fn bytes(&self, bytes: u64) {
        self.moved.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn done(&self, _path: &str, _size: u64, _outcome: &Outcome) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{done}/{} objects", self.objects.load(Ordering::Relaxed)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(0.0), "0 B");
        assert_eq!(human(1023.0), "1023 B");
        assert_eq!(human(1536.0), "1.5 KiB");
        assert_eq!(human(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }
}
