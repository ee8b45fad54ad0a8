//! Helpers of distribution's testsuite: random content and paths, round trips, and
//! the assertions tests use.

use std::sync::OnceLock;

use rand::{Rng, RngCore, SeedableRng};
use regstore_api::{Error, ErrorKind, FileReader, FileWriterIo, ReaderIo, StorageDriver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// What a test returns when it fails: a sentence saying what was wrong.
pub type Failure = String;

/// How a test that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed, with an optional note (for example the size a test used).
    Passed(Option<String>),
    /// Not run, and why.
    Skipped(String),
}

pub type TestResult = Result<Outcome, Failure>;

pub const PASSED: TestResult = Ok(Outcome::Passed(None));

/// Fails the test with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Fails the test unless both sides are equal, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: expected {:?}, got {:?}", format!($($msg)+), r, l));
        }
    }};
}

/// Turns a driver error into a test failure that says what was being done.
pub trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, Error> {
    fn ctx(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Checks that `result` failed with an error of `kind` whose message names the driver.
pub fn expect_error<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    driver: &str,
    what: &str,
) -> Result<Error, Failure> {
    match result {
        Ok(v) => Err(format!("{what}: expected a {kind:?} error, got Ok({v:?})")),
        Err(e) if e.kind() != kind => Err(format!("{what}: expected a {kind:?} error, got {:?}: {e}", e.kind())),
        Err(e) if !e.to_string().contains(driver) => {
            Err(format!("{what}: the error does not name the driver {driver:?}: {e}"))
        }
        Err(e) => Ok(e),
    }
}

const POOL: usize = 128 << 20;

/// The 128 MiB random pool distribution's suite draws content from.
fn pool() -> &'static [u8] {
    static POOL_DATA: OnceLock<Vec<u8>> = OnceLock::new();
    POOL_DATA.get_or_init(|| {
        let mut data = vec![0u8; POOL];
        rand::rngs::StdRng::from_os_rng().fill_bytes(&mut data);
        data
    })
}

/// `n` random bytes (up to 128 MiB), as `randomContents`.
pub fn random_contents(n: usize) -> Vec<u8> {
    assert!(n <= POOL, "random_contents is limited to the 128 MiB pool; use RandomReader");
    pool()[..n].to_vec()
}

/// A reader of `n` pseudo-random bytes drawn from the pool at shifting offsets, for sizes above
/// the pool (the 5 GiB stream).
pub struct RandomReader {
    remaining: u64,
    offset: usize,
    pass: usize,
}

impl RandomReader {
    pub fn new(n: u64) -> Self {
        RandomReader { remaining: n, offset: 0, pass: 0 }
    }
}

impl AsyncRead for RandomReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let pool = pool();
        let n = (buf.remaining() as u64).min(self.remaining).min((POOL - self.offset) as u64) as usize;
        buf.put_slice(&pool[self.offset..self.offset + n]);
        self.remaining -= n as u64;
        self.offset += n;
        if self.offset == POOL {
            // Start the next pass at another offset, so repeated passes differ.
            self.pass += 1;
            self.offset = (self.pass * 7919) % 4096;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// A random path component of `n` characters from `[a-z0-9]`, with an occasional `-` that is
/// never first or last (`randomFilename`).
pub fn random_filename(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|i| {
            if i > 0 && i + 1 < n && rng.random_ratio(1, 10) {
                '-'
            } else {
                CHARS[rng.random_range(0..CHARS.len())] as char
            }
        })
        .collect()
}

/// An absolute path exactly `n` characters long (`randomPath`).
pub fn random_path(n: usize) -> String {
    let mut rng = rand::rng();
    let mut path = String::new();
    while path.len() < n {
        let left = n - path.len() - 1;
        let len = if left <= 4 { left } else { rng.random_range(1..=left.min(8)) };
        if len == 0 {
            // A lone `/` would be an empty component; lengthen the previous one instead.
            path.push_str(&random_filename(1));
            continue;
        }
        path.push('/');
        path.push_str(&random_filename(len));
    }
    path
}

/// The top-level `/component` of a path (`firstPart`).
pub fn first_part(path: &str) -> String {
    let rest = &path[1..];
    format!("/{}", rest.split('/').next().unwrap_or(rest))
}

/// Reads all of a reader.
pub async fn read_all(reader: Box<dyn FileReader>) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    ReaderIo::new(reader).read_to_end(&mut out).await.ctx("reading")?;
    Ok(out)
}

/// PutContent, GetContent, compare, delete (`writeReadCompare`).
pub async fn write_read_compare(d: &dyn StorageDriver, path: &str, data: &[u8]) -> Result<(), Failure> {
    d.put_content(path, data).await.ctx("PutContent")?;
    let got = d.get_content(path).await.ctx("GetContent")?;
    ensure!(got == data, "GetContent returned {} bytes that differ from the {} written", got.len(), data.len());
    d.delete(&first_part(path)).await.ctx("Delete")?;
    Ok(())
}

/// Writer, copy, Commit, Close, Reader(0), compare, delete (`writeReadCompareStreams`).
pub async fn write_read_compare_streams(d: &dyn StorageDriver, path: &str, data: &[u8]) -> Result<(), Failure> {
    let writer = d.writer(path, false).await.ctx("Writer")?;
    let mut io = FileWriterIo::new(writer);
    io.write_all(data).await.ctx("writing")?;
    let mut writer = io.into_inner().await.ctx("flushing")?;
    ensure_eq!(writer.size(), data.len() as u64, "Size after writing");
    writer.commit().await.ctx("Commit")?;
    writer.close().await.ctx("Close after Commit")?;
    let got = read_all(d.reader(path, 0).await.ctx("Reader")?).await?;
    ensure!(got == data, "read back {} bytes that differ from the {} written", got.len(), data.len());
    d.delete(&first_part(path)).await.ctx("Delete")?;
    Ok(())
}

/// Copies everything from `src` into a new writer at `path`; returns the writer and the count.
pub async fn copy_into_writer(
    d: &dyn StorageDriver,
    path: &str,
    append: bool,
    src: &mut (dyn AsyncRead + Unpin + Send),
) -> Result<(Box<dyn regstore_api::FileWriter>, u64), Failure> {
    let writer = d.writer(path, append).await.ctx("Writer")?;
    let mut io = FileWriterIo::new(writer);
    let n = tokio::io::copy(src, &mut io).await.ctx("copying into the writer")?;
    Ok((io.into_inner().await.ctx("flushing")?, n))
}

/// The HTTP client tests fetch redirect URLs with: the web's roots plus `ca_files` (PEM), with
/// ring as rustls's provider, and no proxy.
pub fn http_client(ca_files: &[std::path::PathBuf]) -> Result<reqwest::Client, Failure> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for file in ca_files {
        let pem = std::fs::read(file).map_err(|e| format!("reading the CA file {}: {e}", file.display()))?;
        let mut found = false;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|e| format!("the CA file {}: {e}", file.display()))?;
            roots.add(cert).map_err(|e| format!("the CA file {}: {e}", file.display()))?;
            found = true;
        }
        if !found {
            return Err(format!("the CA file {} holds no certificate", file.display()));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_paths_are_valid_and_exact() {
        for _ in 0..500 {
            let p = random_path(32);
            assert_eq!(p.len(), 32, "{p}");
            assert!(regstore_api::path::is_valid(&p), "{p}");
        }
        assert_eq!(first_part("/abc/def"), "/abc");
    }
}
