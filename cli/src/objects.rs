//! Object commands: put, get, stat, ls, rm, mv, walk, url, for people and scripts.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use clap::Args;
use regstore::{FileInfo, ReaderIo, Registry, StorageDriver, WalkControl};
use regstore_transfer::{StageError, WHOLE_PUT_MAX, stage};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{DriverArgs, Failure};

#[derive(Args)]
pub struct PathArgs {
    #[command(flatten)]
    driver: DriverArgs,
    /// A storage path, such as /docker/registry/v2.
    path: String,
}

/// `stat` and `ls`: a path, and how to print what is found.
#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    driver: DriverArgs,
    /// A storage path, such as /docker/registry/v2.
    path: String,
    /// Print one JSON object per entry instead of text (fields in docs/cli.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    driver: DriverArgs,
    path: String,
    /// Read the content from this file instead of standard input.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    driver: DriverArgs,
    path: String,
    /// Write the content to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Start at this byte offset (a negative one is the driver's invalid-offset error).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    offset: i64,
}

#[derive(Args)]
pub struct MoveArgs {
    #[command(flatten)]
    driver: DriverArgs,
    source: String,
    destination: String,
}

#[derive(Args)]
pub struct WalkArgs {
    #[command(flatten)]
    driver: DriverArgs,
    /// Where to start; `/` by default.
    #[arg(default_value = "/")]
    path: String,
    /// Skip what sorts at or before this path.
    #[arg(long, value_name = "PATH")]
    start_after: Option<String>,
    /// Print one JSON object per entry instead of its path (fields in docs/cli.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UrlArgs {
    #[command(flatten)]
    driver: DriverArgs,
    path: String,
    /// The HTTP method the URL is for.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Print a JSON object, its `url` null when there is none (fields in docs/cli.md).
    #[arg(long)]
    json: bool,
}

fn io_failure(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| match e.get_ref().and_then(|inner| inner.downcast_ref::<regstore::Error>()) {
        Some(typed) => Failure::Driver(typed.clone()),
        None => Failure::Message(format!("{what}: {e}")),
    }
}

/// Stores the content at the path so that the path holds the old content or the new, whole,
/// whatever happens: an input that fails to read, an interrupt (Ctrl-C, SIGTERM) or a kill at
/// any moment never leaves a prefix of it at the path (regstore-transfer's `stage`: up to 8 MiB
/// in one PutContent, more written under /regstore-staging and moved into place).
pub async fn put(registry: &Registry, args: PutArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    let mut source: Box<dyn AsyncRead + Unpin + Send> = match &args.file {
        Some(f) => {
            let file = tokio::fs::File::open(f).await.map_err(|e| Failure::Message(format!("{}: {e}", f.display())))?;
            let meta = file.metadata().await.map_err(|e| Failure::Message(format!("{}: {e}", f.display())))?;
            if meta.is_dir() {
                return Err(Failure::Message(format!("{}: is a directory, not a file", f.display())));
            }
            Box::new(file)
        }
        None => Box::new(tokio::io::stdin()),
    };
    let staged = match interruptible(stage(&driver, &mut source, WHOLE_PUT_MAX)).await? {
        Ok(staged) => staged,
        Err(StageError::Source(e)) => return Err(Failure::Message(format!("reading the content: {e}"))),
        Err(StageError::Destination(e)) => return Err(Failure::Driver(e)),
    };
    // Dropped by an interrupt before it returns, a Move or PutContent either happened or not.
    interruptible(staged.publish(&driver, &args.path)).await?.map_err(Failure::from)
}

/// Runs `work` unless Ctrl-C or SIGTERM comes first; then it is dropped (so its writer is never
/// committed) and the command fails as interrupted.
pub(crate) async fn interruptible<T>(work: impl std::future::Future<Output = T>) -> Result<T, Failure> {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        out = work => Ok(out),
        _ = tokio::signal::ctrl_c() => Err(Failure::Message("interrupted; the path was left as it was".into())),
        _ = terminate => Err(Failure::Message("terminated; the path was left as it was".into())),
    }
}

pub async fn get(registry: &Registry, args: GetArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    let mut reader = ReaderIo::new(driver.reader(&args.path, args.offset).await?);
    let mut sink: Box<dyn AsyncWrite + Unpin + Send> = match &args.output {
        Some(f) => {
            Box::new(tokio::fs::File::create(f).await.map_err(|e| Failure::Message(format!("{}: {e}", f.display())))?)
        }
        None => Box::new(tokio::io::stdout()),
    };
    tokio::io::copy(&mut reader, &mut sink).await.map_err(io_failure("copying the content"))?;
    sink.flush().await.map_err(io_failure("flushing"))?;
    Ok(())
}

/// `file|dir SIZE MODIFIED PATH`, or with `json` the entry as a JSON object.
fn print_info(fi: &FileInfo, json: bool) {
    if json {
        println!("{}", info_json(fi));
        return;
    }
    let modified = fi.modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let kind = if fi.is_dir { "dir " } else { "file" };
    println!("{kind} {:>12} {modified:>18.6} {}", fi.size, fi.path);
}

/// An entry as `stat --json` and `walk --json` print it.
pub fn info_json(fi: &FileInfo) -> serde_json::Value {
    let modified_ns = fi.modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    serde_json::json!({ "path": fi.path, "is_dir": fi.is_dir, "size": fi.size, "modified_ns": modified_ns })
}

pub async fn stat(registry: &Registry, args: ShowArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    print_info(&driver.stat(&args.path).await?, args.json);
    Ok(())
}

pub async fn ls(registry: &Registry, args: ShowArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    for child in driver.list(&args.path).await? {
        if args.json {
            println!("{}", serde_json::json!({ "path": child }));
        } else {
            println!("{child}");
        }
    }
    Ok(())
}

pub async fn rm(registry: &Registry, args: PathArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    driver.delete(&args.path).await?;
    Ok(())
}

pub async fn mv(registry: &Registry, args: MoveArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    driver.move_file(&args.source, &args.destination).await?;
    Ok(())
}

pub async fn walk(registry: &Registry, args: WalkArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    driver
        .walk(&args.path, args.start_after.as_deref(), &mut |fi| {
            if args.json {
                println!("{}", info_json(fi));
            } else {
                println!("{}", fi.path);
            }
            Ok(WalkControl::Continue)
        })
        .await?;
    Ok(())
}

pub async fn url(registry: &Registry, args: UrlArgs) -> Result<(), Failure> {
    let driver = args.driver.open(registry).await?;
    let url = driver.redirect_url(&args.method, &args.path).await?;
    if args.json {
        println!("{}", serde_json::json!({ "path": args.path, "method": args.method, "url": url }));
        return Ok(());
    }
    match url {
        Some(url) => println!("{url}"),
        // Nothing on stdout means no URL: the registry serves the content itself.
        None => eprintln!("{}: no redirect URL for {} {}", driver.name(), args.method, args.path),
    }
    Ok(())
}
