//! moto's S3 server (docs/testing.md).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Server, answers_http, exchange, install, repo_root, start_on_free_port};

/// The moto release `scripts/emulators` installs.
pub const MOTO_VERSION: &str = "5.2.5";

/// moto's S3 server on a free loopback port: path-style addressing, region `us-east-1`, any
/// credentials, state in memory. Stopped when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    /// How long it took from spawn to its first HTTP answer.
    pub ready_in: Duration,
    server: Server,
}

impl Moto {
    /// Installs moto if missing (`scripts/emulators install moto`), starts it on a free port
    /// and waits until it answers.
    pub fn start() -> Result<Moto, String> {
        let root = repo_root()?;
        let executable = install(&root, "moto", &root.join(".emulators/venv/bin/moto_server"))?;
        let (server, port, ready_in) = start_on_free_port(
            &root,
            "moto_server",
            "moto",
            |port| {
                let mut command = Command::new(&executable);
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(&root);
                command
            },
            |port| answers_http(SocketAddr::from(([127, 0, 0, 1], port))),
        )?;
        Ok(Moto { endpoint: format!("http://127.0.0.1:{port}"), port, ready_in, server })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Its log file, `.emulators/logs/moto-PORT.log`.
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Creates a bucket with a plain (unsigned) `PUT /NAME`; moto accepts any request.
    pub async fn create_bucket(&self, name: &str) -> Result<(), String> {
        let (status, _, body) = exchange(self.port, None, "PUT", &format!("/{name}"), &[], Vec::new()).await?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "creating bucket {name}: PUT {}/{name} answered {status}: {}",
                self.endpoint,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(())
    }

    /// Stops the server now (SIGTERM to its pid, and waits for it); returns how long it took.
    /// Dropping it does the same.
    pub fn stop(mut self) -> Duration {
        self.server.stop()
    }
}
