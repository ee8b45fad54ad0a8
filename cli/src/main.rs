//! `regstore`: load storage-driver components by name, run the conformance suite against them,
//! and work with the objects they store.

mod bench;
mod conformance;
mod copy;
mod describe;
mod metrics;
mod objects;
mod report;
mod wit;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use regstore::{Driver, Error, Params, Registry, Sandbox, StorageConfig};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "regstore", version, about = "Container-registry storage drivers as sandboxed WebAssembly components")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered drivers: name, origin and the contract version each was built for;
    /// with --describe, what one driver declares and what it would be granted.
    Drivers(DriversArgs),
    /// Run the conformance suite against a driver.
    Conformance(conformance::ConformanceArgs),
    /// Benchmark a driver against a native baseline in the same run.
    Bench(bench::BenchArgs),
    /// Write BENCHMARKS.md from `bench --json` runs, with Go's figures and the targets checked.
    BenchReport(report::ReportArgs),
    /// Store content at PATH, from a file or standard input (PutContent).
    Put(objects::PutArgs),
    /// Print the content at PATH, or write it to a file (Reader).
    Get(objects::GetArgs),
    /// Show what is at PATH (Stat).
    Stat(objects::ShowArgs),
    /// List the children of PATH (List).
    Ls(objects::ShowArgs),
    /// Delete PATH and everything under it (Delete).
    Rm(objects::PathArgs),
    /// Move SOURCE over DESTINATION (Move).
    Mv(objects::MoveArgs),
    /// Walk the tree under PATH, printing each entry (Walk).
    Walk(objects::WalkArgs),
    /// Print a URL through which a client can fetch PATH (RedirectURL).
    Url(objects::UrlArgs),
    /// Copy every object under PATH from one driver to another: streamed, blob digests
    /// checked, each object published whole, and what is already there skipped (so a stopped
    /// copy resumes).
    Copy(copy::CopyArgs),
    /// Print the driver contract (WIT), or write every version this host accepts, as WIT text
    /// and binary WIT packages, for building a driver in any language.
    Wit(wit::WitArgs),
}

/// Which driver to use, with what parameters, in what sandbox.
#[derive(Args, Clone)]
pub struct DriverArgs {
    /// A registered driver by name (bundled: inmemory, filesystem, s3, ...).
    #[arg(long, value_name = "NAME", conflicts_with = "component", required_unless_present_any = ["component", "config"])]
    driver: Option<String>,
    /// A third-party driver component file, loaded without rebuilding regstore.
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// distribution's config.yml: its storage section names the driver and its parameters,
    /// REGISTRY_STORAGE_* variables override them, and a regstore section may give a
    /// third-party driver's component file and grants (docs/configuration.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["driver", "component"])]
    config: Option<PathBuf>,
    /// A driver parameter, as in distribution's config.yml; over the configuration's (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    grants: GrantArgs,
}

/// What the operator grants a driver beyond what it declares (a bundled driver gets what it
/// declares anyway; a third-party one only what these allow).
#[derive(Args, Clone, Default)]
pub struct GrantArgs {
    /// Let the driver read and write this host directory, at the same path (repeatable).
    #[arg(long = "allow-dir", value_name = "DIR")]
    allow_dirs: Vec<PathBuf>,
    /// Let the driver read this host directory, at the same path (repeatable).
    #[arg(long = "allow-read", value_name = "DIR")]
    allow_read: Vec<PathBuf>,
    /// Let the driver send HTTP requests to this authority, `host` or `host:port` (repeatable).
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    allow_hosts: Vec<String>,
    /// Hand the driver this environment variable of regstore's own environment (repeatable).
    #[arg(long = "allow-env", value_name = "NAME")]
    allow_env: Vec<String>,
    /// Grant a third-party driver everything it declares, and print what was granted.
    #[arg(long)]
    grant_requested: bool,
    /// Most linear memory one driver instance may use, in MiB (default: what the driver
    /// declares; a third-party driver gets at most 256 MiB unless this grants more).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    memory_limit: Option<u64>,
    /// Longest one call into the driver may run, in seconds (default: what the driver declares;
    /// a third-party driver gets at most 60 s unless this grants more).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    deadline: Option<Duration>,
    /// Most instances serving the driver at once (only for drivers that keep no state in
    /// their memory; default 8 for those, 1 for the others).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    instances: Option<u64>,
    /// Trust the CA certificates in this PEM file for the driver's HTTPS requests, besides the
    /// usual roots (webpki's and the system's): a self-signed endpoint, a corporate CA (repeatable).
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_files: Vec<PathBuf>,
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    if k.is_empty() {
        return Err(format!("empty parameter name in {s:?}"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A positive number of seconds, at most a day.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&secs) {
        return Err(format!("{s} s is outside 0.001 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl GrantArgs {
    pub fn sandbox(&self) -> Sandbox {
        let mut sandbox = Sandbox::default();
        self.add_to(&mut sandbox);
        sandbox
    }

    /// These flags on top of a sandbox a configuration gave: lists grow, limits given here win.
    pub fn add_to(&self, sandbox: &mut Sandbox) {
        sandbox.dirs.extend(self.allow_dirs.iter().cloned());
        sandbox.read_only_dirs.extend(self.allow_read.iter().cloned());
        sandbox.hosts.extend(self.allow_hosts.iter().cloned());
        sandbox.env_names.extend(self.allow_env.iter().cloned());
        sandbox.ca_files.extend(self.ca_files.iter().cloned());
        sandbox.memory_limit = self.memory_limit.map(|mib| (mib as usize) << 20).or(sandbox.memory_limit);
        sandbox.call_deadline = self.deadline.or(sandbox.call_deadline);
        sandbox.instances = self.instances.map(|n| n as usize).or(sandbox.instances);
        sandbox.grant_requested |= self.grant_requested;
    }
}

/// The driver a command uses: its registered name, its parameters and its sandbox.
pub struct Setting {
    pub name: String,
    pub params: Params,
    pub sandbox: Sandbox,
}

impl DriverArgs {
    /// Reads the configuration or registers the component, if one is given, and adds the
    /// command line's parameters and grants.
    pub async fn setting(&self, registry: &Registry) -> Result<Setting, Error> {
        let (name, mut params, mut sandbox) = match (&self.config, &self.component, &self.driver) {
            (Some(file), ..) => {
                let config = StorageConfig::load(file)?;
                for warning in &config.warnings {
                    eprintln!("warning: {}", printable(warning));
                }
                if let Some(component) = &config.component {
                    registry.register_file(Some(&config.driver), component).await?;
                }
                (config.driver, config.params, config.sandbox)
            }
            (None, Some(file), _) => (registry.register_file(None, file).await?, Params::new(), Sandbox::default()),
            (None, None, Some(name)) => (name.clone(), Params::new(), Sandbox::default()),
            (None, None, None) => unreachable!("clap requires --driver, --component or --config"),
        };
        for (k, v) in &self.params {
            params.insert(k.clone(), Value::String(v.clone()));
        }
        self.grants.add_to(&mut sandbox);
        Ok(Setting { name, params, sandbox })
    }

    /// How the driver was chosen, for a run's heading.
    pub fn origin(&self) -> String {
        match (&self.config, &self.component, &self.driver) {
            (Some(file), ..) => format!("configuration {}", file.display()),
            (None, Some(file), _) => format!("component {}", file.display()),
            (None, None, Some(name)) => format!("driver {name}"),
            (None, None, None) => String::new(),
        }
    }

    /// Builds the driver; with `--grant-requested`, says on stderr what it was granted.
    pub async fn open(&self, registry: &Registry) -> Result<Driver, Error> {
        let setting = self.setting(registry).await?;
        open_setting(registry, &setting).await
    }
}

/// Builds the driver of `setting`; with `grant_requested`, says on stderr what it was granted.
pub async fn open_setting(registry: &Registry, setting: &Setting) -> Result<Driver, Error> {
    let Setting { name, params, sandbox } = setting;
    if sandbox.grant_requested {
        let plan = registry.plan(name, params, sandbox).await?;
        if let Ok(grants) = &plan.grants {
            eprintln!("granted to {name}: {}", describe::grants_line(grants));
        }
    }
    registry.create_with(name, params, sandbox.clone()).await
}

#[derive(Args)]
pub struct DriversArgs {
    /// Also register these component files; one that cannot be loaded is listed with why.
    #[arg(long = "component", value_name = "FILE.wasm")]
    components: Vec<PathBuf>,
    /// Describe one driver (--driver NAME or --component FILE, with its --param values): what
    /// it declares it needs and can do, and what this sandbox would grant it.
    #[arg(long)]
    describe: bool,
    /// The driver to describe.
    #[arg(long, value_name = "NAME")]
    driver: Option<String>,
    /// Describe the driver of this distribution config.yml, with its parameters and grants.
    #[arg(long, value_name = "FILE", requires = "describe", conflicts_with = "driver")]
    config: Option<PathBuf>,
    /// A driver parameter for --describe (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    grants: GrantArgs,
    /// Print one JSON object per driver instead of the table (fields in docs/cli.md).
    #[arg(long, conflicts_with = "describe")]
    json: bool,
}

/// Why a command failed: a typed error or a plain message (I/O of local files).
pub enum Failure {
    Driver(Error),
    Message(String),
    /// The command printed its own report and only needs a non-zero exit.
    Silent,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Driver(e)
    }
}

/// The command line, or how to exit: help and version as clap prints them, a usage error as
/// one line on stderr (exit 2), like every other error of this command.
fn parse() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Err(ExitCode::from(e.exit_code().clamp(0, 255) as u8))
        }
        Err(e) => {
            eprintln!("{} (see --help)", one_line(&e.to_string()));
            Err(ExitCode::from(2))
        }
    }
}

/// clap's message and tips on one line, without the usage block that follows them.
fn one_line(text: &str) -> String {
    let lines = text.lines().take_while(|l| !l.starts_with("Usage:"));
    let kept = lines.map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    kept.collect::<Vec<_>>().join(" ")
}

/// An error message kept on one line: control characters (a newline in a path the user gave,
/// say) are escaped, so a script reading stderr line by line sees one error as one line.
pub(crate) fn printable(message: &str) -> String {
    message.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Logs, and one line per driver call (its span: driver, method, path, bytes, outcome, time),
/// on stderr, only when `RUST_LOG` asks for them (`RUST_LOG=regstore=debug`).
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::format::FmtSpan;
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_span_events(FmtSpan::CLOSE)
            .init(),
        Err(e) => eprintln!("warning: RUST_LOG is ignored: {}", printable(&e.to_string())),
    }
}

fn run() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let registry = Registry::new();
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Drivers(args) => describe::drivers(&registry, args).await,
            Command::Conformance(args) => conformance::run(&registry, args).await,
            Command::Bench(args) => bench::run(&registry, args).await,
            Command::BenchReport(args) => report::run(args),
            Command::Put(args) => objects::put(&registry, args).await,
            Command::Get(args) => objects::get(&registry, args).await,
            Command::Stat(args) => objects::stat(&registry, args).await,
            Command::Ls(args) => objects::ls(&registry, args).await,
            Command::Rm(args) => objects::rm(&registry, args).await,
            Command::Mv(args) => objects::mv(&registry, args).await,
            Command::Walk(args) => objects::walk(&registry, args).await,
            Command::Url(args) => objects::url(&registry, args).await,
            Command::Copy(args) => copy::run(&registry, args).await,
            Command::Wit(args) => wit::run(args),
        }
    });
    // Instances may still be running guest code on blocking threads; do not wait for them.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Driver(e)) => {
            eprintln!("error: {}", printable(&e.to_string()));
            ExitCode::FAILURE
        }
        Err(Failure::Message(m)) => {
            eprintln!("error: {}", printable(&m));
            ExitCode::FAILURE
        }
        Err(Failure::Silent) => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fold_to_one_line() {
        let e = Cli::try_parse_from(["regstore", "get", "--driver", "inmemory"]).err().unwrap();
        let line = one_line(&e.to_string());
        assert!(line.starts_with("error: the following required arguments were not provided: <PATH>"), "{line}");
        assert!(!line.contains('\n') && !line.contains("Usage"), "{line}");
        let e = Cli::try_parse_from(["regstore", "get", "--driver", "x", "/a", "--deadline", "inf"]).err().unwrap();
        let line = one_line(&e.to_string());
        assert!(line.contains("--deadline") && line.contains("inf") && !line.contains("For more"), "{line}");
    }

    #[test]
    fn messages_print_on_one_line() {
        assert_eq!(printable("invalid path: /a\nb\r\t"), "invalid path: /a\\nb\\r\\t");
        assert_eq!(printable("/é ok"), "/é ok");
    }
}
