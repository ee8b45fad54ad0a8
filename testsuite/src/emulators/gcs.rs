//! The two GCS emulators (docs/testing.md): fake-gcs-server, the main target, and
//! gcp-storage-emulator, for resumable-upload status queries and resent chunks. Both speak the
//! JSON API over plain HTTP, with project `test` and anonymous credentials.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Answer, Server, answers_http, exchange, install, repo_root, start_on_free_port};

/// The PyPI wrapper that carries fake-gcs-server v1.54.0, as `scripts/emulators` installs it.
pub const FAKE_GCS_WRAPPER_VERSION: &str = "0.1.1";
/// The gcp-storage-emulator release `scripts/emulators` installs.
pub const GCP_STORAGE_EMULATOR_VERSION: &str = "2026.7.19";

/// fake-gcs-server on a free loopback port, in memory. Stopped when dropped.
pub struct FakeGcs {
    /// `http://127.0.0.1:PORT` (also what `STORAGE_EMULATOR_HOST` would be).
    pub endpoint: String,
    pub port: u16,
    /// How long it took from spawn to its first HTTP answer.
    pub ready_in: Duration,
    server: Server,
}

impl FakeGcs {
    /// Installs the wrapper if missing (`scripts/emulators install fake-gcs`), starts the binary
    /// it carries (`-scheme http -backend memory`, every URL flag on the same free port) and
    /// waits until it answers.
    pub fn start() -> Result<FakeGcs, String> {
        let root = repo_root()?;
        let executable = install(&root, "fake-gcs", &root.join(".emulators/venv/bin/fake-gcs-server"))?;
        let (server, port, ready_in) = start_on_free_port(
            &root,
            "fake-gcs-server",
            "fake-gcs",
            |port| {
                let url = format!("http://127.0.0.1:{port}");
                let mut command = Command::new(&executable);
                command
                    .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string()])
                    .args(["-backend", "memory", "-external-url", &url])
                    .args(["-public-host", &format!("127.0.0.1:{port}"), "-log-level", "error"])
                    .current_dir(&root);
                command
            },
            |port| answers_http(SocketAddr::from(([127, 0, 0, 1], port))),
        )?;
        Ok(FakeGcs { endpoint: format!("http://127.0.0.1:{port}"), port, ready_in, server })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its log file, `.emulators/logs/fake-gcs-PORT.log`.
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    /// Creates a bucket: `POST /storage/v1/b?project=test` with `{"name": NAME}`.
    pub async fn create_bucket(&self, name: &str) -> Result<(), String> {
        create_bucket(self.port, name).await
    }

    /// A simple upload: `POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=OBJECT`; the
    /// answer (its body is the object's JSON resource).
    pub async fn upload(&self, bucket: &str, object: &str, content: &[u8]) -> Result<Answer, String> {
        upload(self.port, bucket, object, content).await
    }

    /// An object's content: `GET /storage/v1/b/BUCKET/o/OBJECT?alt=media`.
    pub async fn download(&self, bucket: &str, object: &str) -> Result<Vec<u8>, String> {
        download(self.port, bucket, object).await
    }

    /// Stops the server now (SIGTERM to its pid, and waits for it); returns how long it took.
    pub fn stop(mut self) -> Duration {
        self.server.stop()
    }
}

/// gcp-storage-emulator on a free loopback port, in memory. Stopped when dropped.
pub struct GcpStorageEmulator {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    /// How long it took from spawn to its first HTTP answer.
    pub ready_in: Duration,
    server: Server,
}

impl GcpStorageEmulator {
    /// Installs it if missing (`scripts/emulators install gcp-storage-emulator`, its own venv
    /// `.emulators/venv-gcp`), starts it (`start --in-memory -q`) and waits until it answers.
    pub fn start() -> Result<GcpStorageEmulator, String> {
        let root = repo_root()?;
        let executable =
            install(&root, "gcp-storage-emulator", &root.join(".emulators/venv-gcp/bin/gcp-storage-emulator"))?;
        let (server, port, ready_in) = start_on_free_port(
            &root,
            "gcp-storage-emulator",
            "gcp-storage-emulator",
            |port| {
                let mut command = Command::new(&executable);
                command
                    .args(["start", "--host", "127.0.0.1", "--port", &port.to_string(), "--in-memory", "-q"])
                    .current_dir(&root);
                command
            },
            |port| answers_http(SocketAddr::from(([127, 0, 0, 1], port))),
        )?;
        Ok(GcpStorageEmulator { endpoint: format!("http://127.0.0.1:{port}"), port, ready_in, server })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its log file, `.emulators/logs/gcp-storage-emulator-PORT.log`.
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    /// Creates a bucket: `POST /storage/v1/b?project=test` with `{"name": NAME}`.
    pub async fn create_bucket(&self, name: &str) -> Result<(), String> {
        create_bucket(self.port, name).await
    }

    /// A simple upload: `POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=OBJECT`; the
    /// answer (its body is the object's JSON resource).
    pub async fn upload(&self, bucket: &str, object: &str, content: &[u8]) -> Result<Answer, String> {
        upload(self.port, bucket, object, content).await
    }

    /// An object's content: `GET /storage/v1/b/BUCKET/o/OBJECT?alt=media`.
    pub async fn download(&self, bucket: &str, object: &str) -> Result<Vec<u8>, String> {
        download(self.port, bucket, object).await
    }

    /// Stops the server now (SIGTERM to its pid, and waits for it); returns how long it took.
    pub fn stop(mut self) -> Duration {
        self.server.stop()
    }
}

/// Percent-encodes `s` for one path segment or query value (RFC 3986 unreserved kept).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends a request to the emulator on `port` and fails unless it answers 2xx.
async fn checked(
    port: u16,
    what: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let answer =
        exchange(port, None, method, path_and_query, headers, body).await.map_err(|e| format!("{what}: {e}"))?;
    if !(200..300).contains(&answer.0) {
        return Err(format!(
            "{what}: {method} {path_and_query} answered {}: {}",
            answer.0,
            String::from_utf8_lossy(&answer.2)
        ));
    }
    Ok(answer)
}

async fn create_bucket(port: u16, name: &str) -> Result<(), String> {
    let body = format!("{{\"name\":{}}}", serde_json::Value::String(name.to_string()));
    let headers = [("content-type".to_string(), "application/json".to_string())];
    let what = format!("creating bucket {name}");
    checked(port, &what, "POST", "/storage/v1/b?project=test", &headers, body.into_bytes()).await?;
    Ok(())
}

async fn upload(port: u16, bucket: &str, object: &str, content: &[u8]) -> Result<Answer, String> {
    let path = format!("/upload/storage/v1/b/{}/o?uploadType=media&name={}", encode(bucket), encode(object));
    let headers = [("content-type".to_string(), "application/octet-stream".to_string())];
    checked(port, &format!("uploading {bucket}/{object}"), "POST", &path, &headers, content.to_vec()).await
}

async fn download(port: u16, bucket: &str, object: &str) -> Result<Vec<u8>, String> {
    let path = format!("/storage/v1/b/{}/o/{}?alt=media", encode(bucket), encode(object));
    Ok(checked(port, &format!("downloading {bucket}/{object}"), "GET", &path, &[], Vec::new()).await?.2)
}
