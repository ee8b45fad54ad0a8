//! The `regstore` command line.

mod bench;
mod conformance;
mod objects;

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
    /// List the registered drivers: name, origin and the contract version each was built for.
    Drivers {
        /// Also register these component files.
        #[arg(long = "component", value_name = "FILE.wasm")]
        components: Vec<PathBuf>,
    },
    /// Run the conformance suite against a driver.
    Conformance(conformance::ConformanceArgs),
    /// Benchmark a driver against a native baseline in the same run.
    Bench(bench::BenchArgs),
    /// Store content at PATH, from a file or standard input (PutContent).
    Put(objects::PutArgs),
    /// Print the content at PATH, or write it to a file (Reader).
    Get(objects::GetArgs),
    /// Show what is at PATH (Stat).
    Stat(objects::PathArgs),
    /// List the children of PATH (List).
    Ls(objects::PathArgs),
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
    /// A registered driver by name (bundled: inmemory, ...).
    #[arg(long, value_name = "NAME", conflicts_with = "component", required_unless_present = "component")]
    driver: Option<String>,
    /// A third-party driver component file, loaded without rebuilding regstore.
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// A driver parameter, as in distribution's config.yml (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Grant the driver this host directory, at the same path (repeatable).
    #[arg(long = "allow-dir", value_name = "DIR")]
    allow_dirs: Vec<PathBuf>,
    /// Let the driver send HTTP requests to this authority, `host` or `host:port` (repeatable).
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    allow_hosts: Vec<String>,
    /// Most linear memory one driver instance may use, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<usize>,
    /// Longest one call into the driver may run, in seconds.
    #[arg(long, value_name = "SECONDS")]
    deadline: Option<f64>,
    /// Most instances serving the driver at once (only for drivers that keep no state in
    /// their memory; filesystem's default is 8, any other's 1).
    #[arg(long, value_name = "N")]
    instances: Option<usize>,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    if k.is_empty() {
        return Err(format!("empty parameter name in {s:?}"));
    }
    Ok((k.to_string(), v.to_string()))
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

    /// The sandbox for `name`: what the registry grants for these parameters, plus the
    /// operator's grants and limits.
    pub fn sandbox(&self, registry: &Registry, name: &str, params: &Params) -> Result<Sandbox, Error> {
        let mut sandbox = registry.sandbox_for(name, params)?;
        sandbox.dirs.extend(self.allow_dirs.iter().cloned());
        sandbox.hosts.extend(self.allow_hosts.iter().cloned());
        if let Some(mib) = self.memory_limit {
            sandbox.memory_limit = mib << 20;
        }
        if let Some(n) = self.instances {
            sandbox.instances = n.max(1);
        }
        if let Some(secs) = self.deadline {
            sandbox.call_deadline = Duration::from_secs_f64(secs.max(0.001));
        }
        Ok(sandbox)
    }

    /// Resolves, then builds the driver.
    pub async fn open(&self, registry: &Registry) -> Result<Driver, Error> {
        let name = self.resolve(registry).await?;
        let params = self.params();
        let sandbox = self.sandbox(registry, &name, &params)?;
        registry.create_with(&name, &params, sandbox).await
    }
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Drivers { components } => drivers(&registry, &components).await,
            Command::Conformance(args) => conformance::run(&registry, args).await,
            Command::Bench(args) => bench::run(&registry, args).await,
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
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Message(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
        Err(Failure::Silent) => ExitCode::FAILURE,
    }
}

async fn drivers(registry: &Registry, components: &[PathBuf]) -> Result<(), Failure> {
    for file in components {
        registry.register_file(None, file).await?;
    }
    println!("{:<16} {:<10} {:<24} SOURCE", "NAME", "ORIGIN", "WIT");
    for info in registry.describe().await {
        let (origin, source) = match &info.origin {
            regstore::Origin::Bundled => ("bundled", String::from("-")),
            regstore::Origin::File(p) => ("file", p.display().to_string()),
        };
        let wit = match &info.wit_version {
            Ok(v) => format!("registry:storage@{v}"),
            Err(e) => format!("unloadable: {e}"),
        };
        println!("{:<16} {:<10} {:<24} {source}", info.name, origin, wit);
    }
    Ok(())
}
