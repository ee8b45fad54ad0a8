//! The local cloud-storage emulators the cloud drivers are tested against (spec
//! `emulators.md`): installed on first use into the repository's git-ignored `.emulators/` by
//! `scripts/emulators`, started on a free loopback port with their output in
//! `.emulators/logs/`, polled until they answer, and stopped by SIGTERM to their pid.
//!
//! When an emulator cannot be had, [`require_emulator`] says what becomes of the tests that need
//! it: never a silent skip.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release the recipe pins (spec `emulators.md` §3).
pub const MOTO_VERSION: &str = "5.2.5";

/// How long a started emulator may take to answer (it takes about 1 s on an idle machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before SIGKILL (moto takes up to about 3 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
fn install(root: &Path, name: &str, executable: &Path) -> Result<PathBuf, String> {
    if executable.is_file() {
        return Ok(executable.to_path_buf());
    }
    let logs = root.join(".emulators/logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let log = logs.join(format!("install-{name}.log"));
    let out = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    eprintln!(
        "emulators: installing {name} into {} (first run only; it takes a minute)",
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
fn answers_http(addr: SocketAddr) -> bool {
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
struct Server {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Server, String> {
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

    /// Polls `addr` every 10 ms until it answers HTTP; fails with the log's tail if the server
    /// exits first or does not answer in time.
    fn wait_ready(&mut self, addr: SocketAddr) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before answering on {addr}; the end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 20)
                ));
            }
            if answers_http(addr) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "{} did not answer on {addr} within {} s; the end of {}:\n{}",
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
    fn stop(&mut self) -> Duration {
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

/// moto's S3 server on a free loopback port (spec `emulators.md` §3): path-style addressing,
/// region `us-east-1`, any credentials, state in memory. Stopped when dropped.
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
        let venv = root.join(".emulators/venv");
        let executable = install(&root, "moto", &venv.join("bin/moto_server"))?;
        let logs = root.join(".emulators/logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        let mut last_error = String::new();
        // The port is free when picked but may be taken before moto binds it: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let mut command = Command::new(&executable);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(&root);
            let mut server = Server::spawn("moto_server", command, logs.join(format!("moto-{port}.log")))?;
            match server.wait_ready(SocketAddr::from(([127, 0, 0, 1], port))) {
                Ok(ready_in) => {
                    return Ok(Moto { endpoint: format!("http://127.0.0.1:{port}"), port, ready_in, server });
                }
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.child.id()
    }

    /// Its log file, `.emulators/logs/moto-PORT.log`.
    pub fn log(&self) -> &Path {
        &self.server.log
    }

    /// Creates a bucket with a plain (unsigned) `PUT /NAME`; moto accepts any request.
    pub async fn create_bucket(&self, name: &str) -> Result<(), String> {
        let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        let url = format!("{}/{name}", self.endpoint);
        let response = client.put(&url).send().await.map_err(|e| format!("PUT {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("creating bucket {name}: PUT {url} answered {status}: {body}"));
        }
        Ok(())
    }

    /// Stops the server now (SIGTERM to its pid, and waits for it); returns how long it took.
    /// Dropping it does the same.
    pub fn stop(mut self) -> Duration {
        self.server.stop()
    }
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
