//! distribution's 12 benchmarks, plus concurrent streams, each run against the
//! driver under test and, in the same process and run, against a native baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regstore_api::{Result, StorageDriver};

use crate::util::{random_filename, random_path};

/// One benchmark's figures. Throughputs are per second; `ratio` is wasm / native.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub driver: String,
    /// The driver's throughput, in `unit`.
    pub wasm: f64,
    /// The native baseline's throughput, when there is a baseline.
    pub native: Option<f64>,
    pub unit: &'static str,
    /// Time per iteration of the driver, in seconds.
    pub wasm_secs_per_op: f64,
}

impl Figure {
    pub fn ratio(&self) -> Option<f64> {
        self.native.filter(|n| *n > 0.0).map(|n| self.wasm / n)
    }

    /// One JSON object: `name`, `driver`, `wasm`, `native`, `unit`, `ratio`.
    pub fn json(&self) -> String {
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        format!(
            "{{\"name\":\"{}\",\"driver\":\"{}\",\"wasm\":{},\"native\":{},\"unit\":\"{}\",\"ratio\":{},\"wasm_us_per_op\":{:.3}}}",
            self.name,
            self.driver,
            num(Some(self.wasm)),
            num(self.native),
            self.unit,
            num(self.ratio()),
            self.wasm_secs_per_op * 1e6
        )
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Roughly how long each side of a benchmark runs.
    pub target: Duration,
    /// Include the 1 GiB cases.
    pub large: bool,
    /// Only benchmarks whose name contains this.
    pub filter: Option<String>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig { target: Duration::from_secs(2), large: false, filter: None }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    PutGet(usize),
    Stream(usize),
    List(usize),
    Delete(usize),
    /// `n` concurrent Stream loops of `size` bytes each.
    ParallelStreams(usize, usize),
}

fn benchmarks(large: bool) -> Vec<(String, Kind)> {
    let mut out = Vec::new();
    let sizes: &[(&str, usize)] = &[("Empty", 0), ("1KB", 1 << 10), ("1MB", 1 << 20), ("1GB", 1 << 30)];
    for (label, size) in sizes {
        if *size == 1 << 30 && !large {
            continue;
        }
        out.push((format!("BenchmarkPutGet{label}Files"), Kind::PutGet(*size)));
        out.push((format!("BenchmarkStream{label}Files"), Kind::Stream(*size)));
    }
    for n in [5, 50] {
        out.push((format!("BenchmarkList{n}Files"), Kind::List(n)));
        out.push((format!("BenchmarkDelete{n}Files"), Kind::Delete(n)));
    }
    for n in [2, 8] {
        out.push((format!("BenchmarkParallelStream1MBFiles/{n}"), Kind::ParallelStreams(n, 1 << 20)));
    }
    out
}

/// Content of `size` bytes, without the 128 MiB limit of the tests' pool.
fn content(size: usize) -> Vec<u8> {
    let pool = crate::util::random_contents(size.min(128 << 20));
    if pool.len() == size {
        return pool;
    }
    pool.iter().copied().cycle().take(size).collect()
}

/// Runs every selected benchmark against `driver` and `native` alternately.
pub async fn run(
    driver: Arc<dyn StorageDriver>,
    native: Option<Arc<dyn StorageDriver>>,
    config: &BenchConfig,
    mut progress: impl FnMut(&Figure),
) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for (name, kind) in benchmarks(config.large) {
        if config.filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let (wasm, secs) = match measure(&driver, kind, config.target).await {
            Ok(m) => m,
            Err(e) => {
                // Reported and skipped: one benchmark the driver cannot do must not hide the rest.
                eprintln!("{name}: failed: {e}");
                continue;
            }
        };
        let native = match &native {
            Some(n) => Some(measure(n, kind, config.target).await?.0),
            None => None,
        };
        let unit = match kind {
            Kind::PutGet(0) | Kind::Stream(0) | Kind::List(_) | Kind::Delete(_) => "ops/s",
            _ => "MB/s",
        };
        let figure = Figure { name, driver: driver.name().to_string(), wasm, native, unit, wasm_secs_per_op: secs };
        progress(&figure);
        figures.push(figure);
    }
    Ok(figures)
}

/// Iterates `kind` for about `target`; returns the throughput (MB/s or ops/s) and the seconds
/// per iteration.
async fn measure(d: &Arc<dyn StorageDriver>, kind: Kind, target: Duration) -> Result<(f64, f64)> {
    let data = match kind {
        Kind::PutGet(s) | Kind::Stream(s) | Kind::ParallelStreams(_, s) => Arc::new(content(s)),
        _ => Arc::new(Vec::new()),
    };
    let started = Instant::now();
    let (mut timed, mut iterations) = (Duration::ZERO, 0u64);
    // At least a few iterations, at least `target` long, and never more than 4x `target`.
    while iterations < 3 || (timed < target && started.elapsed() < target * 4) {
        timed += once(d, kind, &data).await?;
        iterations += 1;
    }
    let per_iter = timed.as_secs_f64() / iterations as f64;
    let throughput = match kind {
        Kind::PutGet(s) | Kind::Stream(s) if s > 0 => s as f64 / per_iter / 1e6,
        Kind::ParallelStreams(n, s) => (n * s) as f64 / per_iter / 1e6,
        _ => 1.0 / per_iter,
    };
    Ok((throughput, per_iter))
}

/// One iteration; returns the time that counts (set-up excluded).
async fn once(d: &Arc<dyn StorageDriver>, kind: Kind, data: &Arc<Vec<u8>>) -> Result<Duration> {
    let path = format!("{}{}", random_path(8), random_path(32));
    let top = crate::util::first_part(&path);
    Ok(match kind {
        Kind::PutGet(_) => {
            let t = Instant::now();
            d.put_content(&path, data).await?;
            let got = d.get_content(&path).await?;
            let took = t.elapsed();
            assert_eq!(got.len(), data.len());
            d.delete(&top).await?;
            took
        }
        Kind::Stream(_) => {
            let t = Instant::now();
            stream(&**d, &path, data).await?;
            let took = t.elapsed();
            d.delete(&top).await?;
            took
        }
        Kind::List(n) => {
            let dir = format!("/{}", random_filename(16));
            for _ in 0..n {
                d.put_content(&format!("{dir}/{}", random_filename(16)), &[]).await?;
            }
            let t = Instant::now();
            let listed = d.list(&dir).await?;
            let took = t.elapsed();
            assert_eq!(listed.len(), n);
            d.delete(&dir).await?;
            took
        }
        Kind::Delete(n) => {
            let dir = format!("/{}", random_filename(16));
            for _ in 0..n {
                d.put_content(&format!("{dir}/{}", random_filename(16)), &[]).await?;
            }
            let t = Instant::now();
            d.delete(&dir).await?;
            t.elapsed()
        }
        Kind::ParallelStreams(n, _) => {
            let t = Instant::now();
            // Separate tasks, so they can run in parallel on the runtime's threads.
            let runs: Vec<_> = (0..n)
                .map(|i| {
                    let (d, data, p) = (d.clone(), data.clone(), format!("{path}-{i}"));
                    tokio::spawn(async move { stream(&*d, &p, &data).await })
                })
                .collect();
            for r in runs {
                r.await.map_err(|e| regstore_api::Error::other(d.name(), e))??;
            }
            let took = t.elapsed();
            d.delete(&top).await?;
            took
        }
    })
}

/// Streams `times` copies of `chunk` through a writer and reads them back, holding no more than
/// one chunk on this side: what the driver itself keeps in memory shows.
pub async fn stream_repeated(d: &dyn StorageDriver, path: &str, chunk: &[u8], times: usize) -> Result<()> {
    stream_chunks(d, path, std::iter::repeat_n(chunk, times)).await?;
    d.delete(&crate::util::first_part(path)).await
}

/// Writer, write, Commit, Close, Reader(0), read to the end: `writeReadCompareStreams` without
/// the comparison. The content crosses as it would from a registry's request body, through
/// the writer and reader APIs, without staging copies in between.
async fn stream(d: &dyn StorageDriver, path: &str, data: &[u8]) -> Result<()> {
    stream_chunks(d, path, data.chunks(regstore_api::DEFAULT_CHUNK_SIZE)).await
}

/// Writes the chunks, commits, and reads everything back, checking the length.
async fn stream_chunks<'a>(d: &dyn StorageDriver, path: &str, chunks: impl Iterator<Item = &'a [u8]>) -> Result<()> {
    let mut w = d.writer(path, false).await?;
    let mut written = 0;
    for chunk in chunks {
        written += w.write(chunk).await?;
    }
    w.commit().await?;
    w.close().await?;
    drop(w);
    let mut r = d.reader(path, 0).await?;
    let mut total = 0;
    while let Some(c) = r.read_chunk().await? {
        total += c.len();
    }
    assert_eq!(total, written);
    Ok(())
}
