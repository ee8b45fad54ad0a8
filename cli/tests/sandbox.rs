//! The hostile suite: a driver component that attacks its host, one attack per test, driven
//! through the public API. Each attack must fail with an error that says what was refused, while
//! another driver in the same process keeps passing a smoke test during and after the attack.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use regstore::{Error, ErrorKind, Params, Registry, Sandbox, StorageDriver};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOSTILE: &str = regstore_bundled::test_components::HOSTILE;

async fn registry() -> Registry {
    let registry = Registry::new();
    registry.register_file(Some("hostile"), Path::new(HOSTILE)).await.expect("the hostile component loads");
    registry
}

fn params(value: Value) -> Params {
    value.as_object().cloned().unwrap_or_default()
}

/// A quick sandbox: short deadlines keep the suite fast.
fn sandbox() -> Sandbox {
    Sandbox { call_deadline: Some(Duration::from_secs(2)), memory_limit: Some(64 << 20), ..Sandbox::default() }
}

/// Keeps an inmemory driver busy with put/get round trips until stopped.
struct Smoke {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
    driver: regstore::Driver,
}

impl Smoke {
    async fn start(registry: &Registry) -> Smoke {
        let driver = registry.create("inmemory", &Params::new()).await.unwrap();
        let (stop, rounds) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (d, s, r) = (driver.clone(), stop.clone(), rounds.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                d.put_content("/smoke", b"still alive").await?;
                assert_eq!(d.get_content("/smoke").await?, b"still alive");
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(())
        });
        // Running before the attack starts.
        while rounds.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Smoke { stop, rounds, task, driver }
    }

    /// Checks the loop goes on after the attack, then stops it: it must have run without error.
    async fn finish(self) {
        let seen = self.rounds.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.rounds.load(Ordering::SeqCst) <= seen && Instant::now() < deadline && !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap().expect("the other driver kept working during the attack");
        assert!(self.rounds.load(Ordering::SeqCst) > seen, "the other driver made no progress after the attack");
        self.driver.put_content("/after", b"ok").await.expect("the other driver works after the attack");
    }
}

/// Runs one attack through `get_content("/<attack>")` with a smoke test beside it; returns the
/// error the attack ended with.
async fn attack(name: &str, p: Value, sandbox: Sandbox) -> Error {
    let registry = registry().await;
    let smoke = Smoke::start(&registry).await;
    let hostile = registry.create_with("hostile", &params(p), sandbox).await.expect("the hostile driver opens");
    let outcome = hostile.get_content(&format!("/{name}")).await;
    smoke.finish().await;
    match outcome {
        Ok(stolen) => panic!("attack {name} succeeded: {}", String::from_utf8_lossy(&stolen)),
        Err(e) => {
            assert!(e.to_string().starts_with("hostile: "), "the error names the driver: {e}");
            e
        }
    }
}

fn assert_refused(e: &Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(e.to_string().contains(what), "the error must say what was refused ({what}): {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_etc_passwd() {
    assert_refused(&attack("read-passwd", json!({}), sandbox()).await, "filesystem refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_proc_self_environ() {
    assert_refused(&attack("read-environ", json!({}), sandbox()).await, "filesystem refused");
}

/// A granted directory inside another that holds a secret.
fn granted_inside_secret() -> (tempfile::TempDir, std::path::PathBuf) {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret"), b"top secret").unwrap();
    let inner = outer.path().join("granted");
    std::fs::create_dir(&inner).unwrap();
    (outer, inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_the_root_with_dotdot() {
    let (_outer, inner) = granted_inside_secret();
    let e = attack("escape-dotdot", json!({}), Sandbox { dirs: vec![inner], ..sandbox() }).await;
    assert_refused(&e, "filesystem refused ../secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_the_root_through_a_symlink() {
    let (outer, inner) = granted_inside_secret();
    std::os::unix::fs::symlink(outer.path().join("secret"), inner.join("link")).unwrap();
    let p = json!({ "dir": inner.display().to_string() });
    let e = attack("escape-symlink", p, Sandbox { dirs: vec![inner], ..sandbox() }).await;
    assert_refused(&e, "filesystem refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_an_environment_variable_not_given() {
    // The host has it; the driver must not.
    let key = "PATH";
    assert!(std::env::var(key).is_ok());
    let e = attack("env", json!({ "env": key }), sandbox()).await;
    assert_refused(&e, "environment refused PATH");
    // What the operator hands over on purpose is visible: the attack can succeed when allowed.
    let registry = registry().await;
    let given = Sandbox { env: vec![("GIVEN".into(), "yes".into())], ..sandbox() };
    let d = registry.create_with("hostile", &params(json!({ "env": "GIVEN" })), given).await.unwrap();
    assert_eq!(d.get_content("/env").await.unwrap(), b"stolen: \"yes\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_runs_with_nothing_granted() {
    // Even where the operator grants a directory, a host and a variable, the instance that
    // answers `describe` gets none of them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), b"s").unwrap();
    let registry = registry().await;
    let granted =
        Sandbox { dirs: vec![dir.path().to_path_buf()], env: vec![("GIVEN".into(), "yes".into())], ..sandbox() };
    for (attack, target, refused) in [
        ("read-passwd", json!({}), "filesystem refused"),
        ("env", json!({ "env": "GIVEN" }), "environment refused GIVEN"),
        ("escape-symlink", json!({ "dir": dir.path().display().to_string() }), "filesystem refused"),
    ] {
        let mut p = params(target);
        p.insert("attack_on_describe".into(), Value::String(attack.into()));
        let e = registry.create_with("hostile", &p, granted.clone()).await.err().expect("describe must fail");
        let text = e.to_string();
        assert!(text.contains(refused) && !text.contains("stolen"), "{attack}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_a_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let e = attack("socket", json!({ "socket": addr.to_string() }), sandbox()).await;
    assert_refused(&e, "socket refused");
    let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(accepted.is_err(), "no connection may have reached the listener");
}

/// A loopback HTTP server that answers every request with `response`, counting connections.
async fn http_server(response: String) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_host_not_granted() {
    let (addr, hits) = http_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
    let e = attack("http-direct", json!({ "url": format!("http://{addr}/") }), sandbox()).await;
    assert_refused(&e, "HttpRequestDenied");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the request must be refused before it leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_following_a_redirect_out_of_the_grant() {
    let (target, target_hits) = http_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
    let redirect = format!("HTTP/1.1 302 Found\r\nlocation: http://{target}/stolen\r\ncontent-length: 0\r\n\r\n");
    let (granted, granted_hits) = http_server(redirect).await;
    let p = json!({ "url": format!("http://{granted}/") });
    let e = attack("http-redirect", p, Sandbox { hosts: vec![granted.to_string()], ..sandbox() }).await;
    assert_refused(&e, "HttpRequestDenied");
    assert_eq!(granted_hits.load(Ordering::SeqCst), 1, "the granted host is reachable");
    assert_eq!(target_hits.load(Ordering::SeqCst), 0, "the redirect target must not be reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_forever() {
    let registry = registry().await;
    let smoke = Smoke::start(&registry).await;
    let hostile = registry.create_with("hostile", &Params::new(), sandbox()).await.unwrap();
    let started = Instant::now();
    let e = hostile.get_content("/loop").await.unwrap_err();
    let took = started.elapsed();
    smoke.finish().await;
    assert_eq!(e.kind(), ErrorKind::Crashed, "{e}");
    assert!(e.to_string().contains("deadline of 2s"), "the error names the deadline: {e}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(2 + 3), "took {took:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_guest_does_not_block_the_runtime() {
    // One thread: if the guest never yielded, the timer task below could not run.
    let registry = registry().await;
    let hostile = registry.create_with("hostile", &Params::new(), sandbox()).await.unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            t.fetch_add(1, Ordering::SeqCst);
        }
    });
    let e = hostile.get_content("/loop").await.unwrap_err();
    ticker.abort();
    assert_eq!(e.kind(), ErrorKind::Crashed);
    assert!(ticks.load(Ordering::SeqCst) >= 10, "only {} ticks in 2 s", ticks.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_memory_past_the_limit() {
    let e = attack("grow-memory", json!({}), sandbox()).await;
    assert_eq!(e.kind(), ErrorKind::Crashed, "{e}");
    assert!(e.to_string().contains(&format!("{} of 64 MiB", regstore::MEMORY_LIMIT_TRAP)), "{e}");
    assert!(e.to_string().contains("--memory-limit"), "{e}");
}

/// A reader whose instance grows by every chunk it returns (256 MiB of them, against a limit
/// of 64 MiB) reads to the end, every byte right: the host moves it, at the offset it reached,
/// to a fresh instance before the old one meets its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_moves_off_an_instance_that_outgrew_its_memory() {
    let registry = registry().await;
    let hostile = registry.create_with("hostile", &params(json!({})), sandbox()).await.unwrap();
    let start = 3u64 << 20;
    let mut reader = hostile.reader("/leaky-stream", start as i64).await.unwrap();
    let mut at = start;
    while let Some(chunk) = reader.read_chunk().await.unwrap_or_else(|e| panic!("at {at}: {e}")) {
        assert!(chunk.iter().enumerate().all(|(i, b)| *b == ((at + i as u64) % 251) as u8), "wrong bytes at {at}");
        at += chunk.len() as u64;
    }
    assert_eq!(at, 256 << 20);
}

/// A driver that keeps no state in memory, whose heap only grows (16 MiB a call, against a
/// limit of 64 MiB), never meets the limit: its instance is replaced between calls once it has
/// used half of it. Without that, the fourth call traps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_instance_is_recycled_before_its_limit() {
    let registry = registry().await;
    let hostile = registry.create_with("hostile", &params(json!({})), sandbox()).await.unwrap();
    let mut most = 0;
    for call in 0..20 {
        let held = hostile.get_content("/leak").await.unwrap_or_else(|e| panic!("call {call}: {e}"));
        let held: u32 = String::from_utf8_lossy(&held).split(' ').nth(1).unwrap().parse().unwrap();
        most = most.max(held);
    }
    assert!(most <= 48, "an instance held {most} MiB of a 64 MiB limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurse_until_the_stack_overflows() {
    let e = attack("stack-overflow", json!({}), sandbox()).await;
    assert_eq!(e.kind(), ErrorKind::Crashed, "{e}");
    // Rust guests keep their stack in linear memory: overflowing it runs off the bottom of
    // memory. Either way the trap is named.
    let message = e.to_string();
    assert!(message.contains("stack overflow") || message.contains("out of bounds memory access"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic() {
    let e = attack("panic", json!({}), sandbox()).await;
    assert_eq!(e.kind(), ErrorKind::Crashed, "{e}");
    assert!(e.to_string().contains("hostile driver panicked on purpose"), "the guest's message is carried: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_may_print_as_much_as_it_likes() {
    // 3 x 4000 lines of stderr, far more than a fixed capture buffer holds: printing never fails.
    let registry = registry().await;
    let d = registry.create_with("hostile", &Params::new(), sandbox()).await.unwrap();
    for _ in 0..3 {
        assert_eq!(d.get_content("/chatter").await.unwrap(), b"said 4000 lines");
    }
    let e = d.get_content("/panic").await.unwrap_err();
    assert!(e.to_string().contains("hostile driver panicked on purpose"), "a later trap keeps its message: {e}");
}

#[test]
fn a_drivers_output_is_logged_in_the_span_of_its_call() {
    // The hostile driver's Stat of /chatter prints 4000 lines, then answers "not found".
    let stat = |log: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"));
        command.args(["stat", "--component", HOSTILE, "/chatter"]).env_remove("RUST_LOG");
        if let Some(filter) = log {
            command.env("RUST_LOG", filter);
        }
        command.output().unwrap()
    };
    let out = stat(Some("regstore=debug"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr:.2000}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("chatter line")).collect();
    assert_eq!(lines.len(), 4000, "{stderr:.2000}");
    for line in [lines[0], lines[3999]] {
        assert!(
            line.contains("storage{") && line.contains("method=\"Stat\"") && line.contains("path=\"/chatter\""),
            "{line}"
        );
        assert!(line.contains("regstore::guest") && line.contains("stream=\"stderr\""), "{line}");
    }
    assert!(
        stderr.trim_end().ends_with("not found") || stderr.contains("error: "),
        "the error still comes: {stderr:.2000}"
    );
    // Without RUST_LOG, only the error shows.
    let quiet = stat(None);
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:.2000}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_a_multi_gigabyte_list() {
    let e = attack("huge-list", json!({}), sandbox()).await;
    assert_eq!(e.kind(), ErrorKind::Crashed, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_is_replaced_and_its_streams_fail() {
    let registry = registry().await;
    let d = registry.create_with("hostile", &Params::new(), sandbox()).await.unwrap();
    let mut reader = d.reader("/anything", 0).await.unwrap();
    assert!(reader.read_chunk().await.unwrap().is_some());
    assert_eq!(d.get_content("/panic").await.unwrap_err().kind(), ErrorKind::Crashed);
    // The next call runs on a fresh instance...
    assert!(d.get_content("/nothing-here").await.unwrap_err().is_not_found());
    // ...and the reader of the dead one fails clearly.
    let e = reader.read_chunk().await.unwrap_err();
    assert!(e.to_string().contains("instance that opened this stream was lost"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_that_keeps_crashing_is_reported_as_failing() {
    let registry = registry().await;
    let d = registry.create_with("hostile", &Params::new(), sandbox()).await.unwrap();
    for _ in 0..3 {
        assert_eq!(d.get_content("/panic").await.unwrap_err().kind(), ErrorKind::Crashed);
    }
    let e = d.get_content("/nothing-here").await.unwrap_err();
    assert!(e.to_string().contains("the driver is failing"), "{e}");
}

#[test]
fn conformance_of_a_driver_that_loops_in_open_ends_at_the_deadline() {
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["conformance", "--component", HOSTILE, "--param", "attack_on_open=loop", "--deadline", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(2 + 8), "took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deadline of 2s"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn conformance_of_a_hostile_driver_reports_failures() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["conformance", "--component", HOSTILE, "--deadline", "2", "--short", "--filter", "TestWriteRead"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("0 passed") && last.contains("failed"), "{stdout}");
}

// ---- The host's HTTP client: failures a driver can explain, and per-driver TLS trust.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_closed_port_is_refused_at_once() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let granted = Sandbox { hosts: vec![format!("127.0.0.1:{port}")], ..sandbox() };
    let hostile = registry().await.create_with("hostile", &params(json!({ "url": url })), granted).await.unwrap();
    let started = Instant::now();
    let e = hostile.get_content("/http-direct").await.unwrap_err();
    eprintln!("refused after {:?}: {e}", started.elapsed());
    assert_refused(&e, "ConnectionRefused");
    // Refused at once: no connect timeout waited for (10 s by default), nothing retried.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// A self-signed certificate for `IP:127.0.0.1`: (certificate DER, key DER, certificate PEM).
fn self_signed() -> (rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "regstore test 127.0.0.1");
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    let cert = params.self_signed(&key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (cert.der().clone(), key, cert.pem())
}

/// Terminates TLS on a loopback port with `cert` and forwards the bytes to `backend`; returns
/// the port.
async fn tls_proxy(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    backend: std::net::SocketAddr,
) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// Moto on a free port, or what `require_emulator` says when it cannot be had (`None`: the
/// test is to be skipped, which has been printed loudly).
fn moto() -> Option<regstore_testsuite::emulators::Moto> {
    use regstore_testsuite::emulators::{Moto, Unavailable, require_emulator};
    match Moto::start() {
        Ok(moto) => Some(moto),
        Err(e) => match require_emulator("S3 (moto)", &e) {
            Unavailable::Fail(reason) => panic!("{reason}"),
            Unavailable::Ignore(reason) => {
                eprintln!("SKIPPED (REGSTORE_SKIP_EMULATORS=1): {reason}");
                None
            }
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_over_https_trusts_the_operator_ca_and_only_then() {
    let Some(moto) = tokio::task::spawn_blocking(moto).await.unwrap() else { return };
    moto.create_bucket("tls").await.unwrap();
    let (cert, key, pem) = self_signed();
    let port = tls_proxy(cert, key, std::net::SocketAddr::from(([127, 0, 0, 1], moto.port))).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let p = params(json!({
        "regionendpoint": format!("https://127.0.0.1:{port}"),
        "region": "us-east-1",
        "bucket": "tls",
        "forcepathstyle": true,
        "accesskey": "a",
        "secretkey": "b",
    }));
    let registry = Registry::new();

    let trusted = Sandbox { ca_files: vec![ca.clone()], ..Sandbox::default() };
    let plan = registry.plan("s3", &p, &trusted).await.unwrap();
    assert_eq!(plan.grants.unwrap().tls.ca_files(), std::slice::from_ref(&ca));
    let driver = registry.create_with("s3", &p, trusted).await.unwrap();
    let put = tokio::time::timeout(Duration::from_secs(60), driver.put_content("/over/tls", b"sealed")).await;
    put.expect("no hang").expect("PutContent over TLS with the CA trusted");
    let got = tokio::time::timeout(Duration::from_secs(60), driver.get_content("/over/tls")).await;
    assert_eq!(got.expect("no hang").expect("GetContent over TLS"), b"sealed");

    // Without the CA, the certificate is not trusted, and the error says so.
    let untrusted = registry.create_with("s3", &p, Sandbox::default()).await.unwrap();
    let started = Instant::now();
    let put = tokio::time::timeout(Duration::from_secs(60), untrusted.put_content("/over/tls", b"x")).await;
    let e = put.expect("no hang").expect_err("the self-signed certificate must not be trusted");
    let text = e.to_string();
    assert!(text.contains("TLS certificate is not trusted"), "the error must name the certificate: {text}");
    eprintln!("without the CA, after {:?}: {text}", started.elapsed());
    // A CA given to one driver is not trusted by another.
    let got = tokio::time::timeout(Duration::from_secs(60), untrusted.get_content("/over/tls")).await;
    assert!(got.expect("no hang").is_err());
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ca_file_is_a_typed_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let p = params(json!({ "bucket": "b", "region": "us-east-1", "regionendpoint": "https://127.0.0.1:1" }));
    let sandbox = Sandbox { ca_files: vec![missing.clone()], ..Sandbox::default() };
    let e = Registry::new().create_with("s3", &p, sandbox).await.err().expect("a missing CA file must fail");
    assert_eq!(e.kind(), ErrorKind::InvalidParameter, "{e}");
    assert!(e.to_string().contains(&missing.display().to_string()), "{e}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let sandbox = Sandbox { ca_files: vec![empty.clone()], ..Sandbox::default() };
    let e = Registry::new().create_with("s3", &p, sandbox).await.err().expect("an empty CA file must fail");
    assert_eq!(e.kind(), ErrorKind::InvalidParameter, "{e}");
    assert!(e.to_string().contains("holds no certificate") && e.to_string().contains("empty.pem"), "{e}");

    // The same through the CLI's --ca-file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["stat", "--driver", "s3", "--param", "bucket=b", "--param", "region=us-east-1"])
        .arg("--ca-file")
        .arg(&missing)
        .arg("/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the CA file") && stderr.contains("no-such-ca.pem"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
