//! `regstore`: load storage-driver components by name, run the conformance suite against them,
//! and work with the objects they store.

mod bench;
mod conformance;
mod describe;
mod objects;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use regstore::{Driver, Error, Params, Registry, Sandbox};
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
}

/// Which driver to use, with what parameters, in what sandbox.
#[derive(Args, Clone)]
pub struct DriverArgs {
    /// A registered driver by name (bundled: inmemory, filesystem, s3, ...).
    #[arg(long, value_name = "NAME", conflicts_with = "component", required_unless_present = "component")]
    driver: Option<String>,
    /// A third-party driver component file, loaded without rebuilding regstore.
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// A driver parameter, as in distribution's config.yml (repeatable).
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

fn parse_param(s: &str) -> Result<(String, String), String> {
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
        Sandbox {
            dirs: self.allow_dirs.clone(),
            read_only_dirs: self.allow_read.clone(),
            hosts: self.allow_hosts.clone(),
            env_names: self.allow_env.clone(),
            env: Vec::new(),
            memory_limit: self.memory_limit.map(|mib| (mib as usize) << 20),
            call_deadline: self.deadline,
            instances: self.instances.map(|n| n as usize),
            grant_requested: self.grant_requested,
            ca_files: self.ca_files.clone(),
        }
    }
}

impl DriverArgs {
    pub fn params(&self) -> Params {
        self.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
    }

    /// Registers the component, if one is given, and returns the driver's registered name.
    pub async fn resolve(&self, registry: &Registry) -> Result<String, Error> {
        match (&self.driver, &self.component) {
            (_, Some(file)) => registry.register_file(None, file).await,
            (Some(name), None) => Ok(name.clone()),
            (None, None) => unreachable!("clap requires --driver or --component"),
        }
    }

    /// The operator's grants and limits from the command line.
    pub fn sandbox(&self) -> Sandbox {
        self.grants.sandbox()
    }

    /// Resolves, then builds the driver; with `--grant-requested`, says on stderr what the
    /// driver was granted.
    pub async fn open(&self, registry: &Registry) -> Result<Driver, Error> {
        let name = self.resolve(registry).await?;
        self.open_as(registry, &name, &self.params()).await
    }

    /// Builds the registered driver `name` with `params` in this sandbox.
    pub async fn open_as(&self, registry: &Registry, name: &str, params: &Params) -> Result<Driver, Error> {
        let sandbox = self.sandbox();
        if sandbox.grant_requested {
            let plan = registry.plan(name, params, &sandbox).await?;
            if let Ok(grants) = &plan.grants {
                eprintln!("granted to {name}: {}", describe::grants_line(grants));
            }
        }
        registry.create_with(name, params, sandbox).await
    }
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
fn printable(message: &str) -> String {
    message.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn run() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
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
