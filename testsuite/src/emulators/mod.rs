//! The local cloud-storage emulators the cloud drivers are tested against (docs/testing.md):
//! installed on first use into the repository's git-ignored `.emulators/` by
//! `scripts/emulators`, started on a free loopback port with their output in
//! `.emulators/logs/NAME-PORT.log`, polled until they answer, and stopped by SIGTERM to their pid
//! when dropped.
//!
//! - S3: [`Moto`]
//! - Azure Blob: [`Azurite`] over HTTPS with a self-signed certificate
//! - GCS: [`FakeGcs`] and [`GcpStorageEmulator`]
//!
//! When an emulator cannot be had, [`require_emulator`] says what becomes of the tests that need
//! it: never a silent skip.

mod azurite;
mod gcs;
mod moto;
pub mod s3_client;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use azurite::{
    AZURE_API_VERSION, AZURITE_ACCOUNT, AZURITE_KEY, AZURITE_VERSION, Azurite, AzuriteOptions, shared_key_authorization,
};
pub use gcs::{FAKE_GCS_WRAPPER_VERSION, FakeGcs, GCP_STORAGE_EMULATOR_VERSION, GcpStorageEmulator};
pub use moto::{MOTO_VERSION, Moto};

/// How long a started emulator may take to answer (about 1 s on an idle machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before SIGKILL (moto takes up to about 3 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many free ports to try when the one picked is taken before the emulator binds it.
const PORT_TRIES: usize = 3;

/// An answer to a request the harness sent: status, headers, body.
pub type Answer = (u16, http::HeaderMap, Vec<u8>);

/// How long one request of the harness may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one request to `127.0.0.1:port` over a fresh HTTP/1.1 connection, over TLS when `tls`
/// is given (server name `127.0.0.1`); `path_and_query` as it goes on the wire. The harness's
/// own client, so that it depends on no TLS backend of reqwest's.
pub(crate) async fn exchange(
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let what = format!("{method} {scheme}://127.0.0.1:{port}{path_and_query}");
    let send = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        match tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                exchange_on(stream, port, method, path_and_query, headers, body).await
            }
            None => exchange_on(tcp, port, method, path_and_query, headers, body).await,
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, send)
        .await
        .map_err(|_| format!("{what}: no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))
}

async fn exchange_on<S>(
    stream: S,
    port: u16,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, format!("127.0.0.1:{port}"));
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body))).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (head, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("reading the body: {e}"))?.to_bytes().to_vec();
    Ok((head.status.as_u16(), head.headers, body))
}

/// The repository root: the nearest directory, from `CARGO_MANIFEST_DIR` (set by cargo for tests),
/// the current directory or this crate's source directory upwards, that holds
/// `scripts/emulators`.
pub fn repo_root() -> Result<PathBuf, String> {
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(dir.into());
    }
    if let Ok(dir) = std::env::current_dir() {
        starts.push(dir);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for start in &starts {
        if let Some(root) = start.ancestors().find(|d| d.join("scripts/emulators").is_file()) {
            return Ok(root.to_path_buf());
        }
    }
    Err(format!(
        "cannot find the regstore repository (a directory holding scripts/emulators) above any of {}",
        starts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// Makes sure `executable` exists, running `scripts/emulators install NAME` if it does not.
pub fn install(root: &Path, name: &str, executable: &Path) -> Result<PathBuf, String> {
    if executable.is_file() {
        return Ok(executable.to_path_buf());
    }
    let logs = logs_dir(root)?;
    let log = logs.join(format!("install-{name}.log"));
    let out = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    eprintln!(
        "emulators: installing {name} into {} (first run only; it takes up to a minute)",
        root.join(".emulators").display()
    );
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(root.join("scripts/emulators"))
        .args(["install", name])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run bash scripts/emulators install {name}: {e}"))?;
    if !status.success() || !executable.is_file() {
        return Err(format!("installing {name} failed ({status}); the end of {}:\n{}", log.display(), tail(&log, 20)));
    }
    eprintln!("emulators: {name} installed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(executable.to_path_buf())
}

/// `.emulators/logs`, created if missing.
fn logs_dir(root: &Path) -> Result<PathBuf, String> {
    let logs = root.join(".emulators/logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    Ok(logs)
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Whether anything answers HTTP at `addr` (the status does not matter).
pub fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// A running emulator process, stopped (SIGTERM, then SIGKILL after a grace period) when dropped.
/// A watchdog shell stops it too if this process dies without dropping it (SIGKILL, abort).
pub struct Server {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with its output in `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Server, String> {
        let out = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({command:?}): {e}"))?;
        // Polls once a second that both this process and the server live; stops the server when
        // this process is gone.
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; \
                 kill -TERM \"$2\" 2>/dev/null; exit 0",
                "regstore-emulator-watchdog",
            ])
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Ok(Server { name: name.to_string(), child, watchdog, log })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Polls `addr` every 10 ms until it answers HTTP.
    pub fn wait_ready(&mut self, addr: SocketAddr) -> Result<Duration, String> {
        self.wait_until(&addr.to_string(), || answers_http(addr))
    }

    /// Polls `ready` every 10 ms until it holds; fails with the log's tail if the server exits
    /// first or is not ready in time. `what` names where it should answer, for the message.
    pub fn wait_until(&mut self, what: &str, ready: impl Fn() -> bool) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before answering on {what}; the end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 20)
                ));
            }
            if ready() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "{} did not answer on {what} within {} s; the end of {}:\n{}",
                    self.name,
                    READY_TIMEOUT.as_secs(),
                    self.log.display(),
                    tail(&self.log, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server; returns how long it took to exit.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).stdout(Stdio::null()).stderr(Stdio::null()).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match self.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        eprintln!("emulators: {} (pid {pid}) ignored SIGTERM; killing it", self.name);
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Whether a failed start was a lost race for the port.
fn port_taken(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    error.contains("address already in use") || error.contains("eaddrinuse")
}

/// Starts an emulator on a free loopback port: `command(port)` is what to run, `ready(port)` how
/// to tell it answers. The port is free when picked but may be taken before the emulator binds
/// it, so a few are tried. Logs go to `.emulators/logs/LOG_NAME-PORT.log`. Returns the server,
/// its port, and how long it took to answer.
fn start_on_free_port(
    root: &Path,
    name: &str,
    log_name: &str,
    command: impl Fn(u16) -> Command,
    ready: impl Fn(u16) -> bool,
) -> Result<(Server, u16, Duration), String> {
    let logs = logs_dir(root)?;
    let mut last_error = String::new();
    for _ in 0..PORT_TRIES {
        let port = free_port()?;
        let mut server = Server::spawn(name, command(port), logs.join(format!("{log_name}-{port}.log")))?;
        match server.wait_until(&format!("127.0.0.1:{port}"), || ready(port)) {
            Ok(ready_in) => return Ok((server, port, ready_in)),
            Err(e) if port_taken(&e) => last_error = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_error)
}

/// What becomes of the tests that need an emulator which could not be installed or started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Report each of them as failed, with this reason.
    Fail(String),
    /// Report each of them as ignored (`REGSTORE_SKIP_EMULATORS=1`, outside CI); the reason has
    /// been printed loudly.
    Ignore(String),
}

impl Unavailable {
    pub fn reason(&self) -> &str {
        match self {
            Unavailable::Fail(r) | Unavailable::Ignore(r) => r,
        }
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The policy when emulator `name` cannot be had (`error` says why), printed to stderr:
/// with `CI=true` the tests that need it fail, whatever else is set; otherwise they fail too,
/// unless `REGSTORE_SKIP_EMULATORS=1`, which reports them as ignored. Never a silent skip.
pub fn require_emulator(name: &str, error: &str) -> Unavailable {
    let reason = format!("the {name} emulator is not available: {error}");
    let rule = "=".repeat(78);
    let (verdict, policy) = if env_flag("CI") {
        let note = if env_flag("REGSTORE_SKIP_EMULATORS") {
            " (REGSTORE_SKIP_EMULATORS is not honoured when CI=true)"
        } else {
            ""
        };
        (Unavailable::Fail(reason.clone()), format!("CI=true: every test that needs it FAILS{note}."))
    } else if env_flag("REGSTORE_SKIP_EMULATORS") {
        (
            Unavailable::Ignore(reason.clone()),
            "REGSTORE_SKIP_EMULATORS=1: every test that needs it is IGNORED. They did NOT run.".to_string(),
        )
    } else {
        (
            Unavailable::Fail(reason.clone()),
            "Every test that needs it FAILS; set REGSTORE_SKIP_EMULATORS=1 to report them as ignored instead."
                .to_string(),
        )
    };
    eprintln!("{rule}\nregstore: {reason}\nregstore: {policy}\n{rule}");
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_port_race_is_recognised() {
        assert!(port_taken("OSError: [Errno 98] Address already in use"));
        assert!(port_taken("Error: listen EADDRINUSE: address already in use 127.0.0.1:10000"));
        assert!(!port_taken("ModuleNotFoundError: No module named 'moto'"));
    }
}
