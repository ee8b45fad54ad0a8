//! The emulator harness itself (`regstore_testsuite::emulators`, docs/testing.md): each
//! emulator the cloud drivers are tested against is installed on first use, started on a free
//! loopback port, given a container or bucket, made to store and return one object through plain
//! HTTP calls, and stopped.
//!
//! If an emulator cannot be installed or started, its trials fail with the reason, unless
//! `REGSTORE_SKIP_EMULATORS=1` (outside CI) reports them as ignored (`require_emulator`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use regstore_testsuite::emulators::{
    AZURITE_VERSION, Azurite, AzuriteOptions, FAKE_GCS_WRAPPER_VERSION, FakeGcs, GCP_STORAGE_EMULATOR_VERSION,
    GcpStorageEmulator, Unavailable, require_emulator,
};

type Check<E> = fn(Arc<E>) -> Result<(), String>;

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(future)
}

/// Starts an emulator and reports how long it took; `None` with the policy's verdict when it
/// cannot be had.
fn start<E>(
    label: &str,
    start: impl FnOnce() -> Result<E, String>,
    ready_in: impl Fn(&E) -> Duration,
) -> Result<Arc<E>, Unavailable> {
    let started = Instant::now();
    match start() {
        Ok(e) => {
            eprintln!(
                "emulators: {label} started in {:.2} s (ready {:.2} s after spawn)",
                started.elapsed().as_secs_f64(),
                ready_in(&e).as_secs_f64()
            );
            Ok(Arc::new(e))
        }
        Err(e) => Err(require_emulator(label, &e)),
    }
}

/// One trial per check, on the emulator or under the missing-emulator policy.
fn trials<E: Send + Sync + 'static>(
    prefix: &str,
    emulator: &Result<Arc<E>, Unavailable>,
    checks: &[(&str, Check<E>)],
) -> Vec<Trial> {
    checks
        .iter()
        .map(|&(name, check)| {
            let name = format!("{prefix}::{name}");
            match emulator {
                Ok(e) => {
                    let e = e.clone();
                    Trial::test(name, move || check(e).map_err(Failed::from))
                }
                Err(Unavailable::Fail(reason)) => {
                    let reason = reason.clone();
                    Trial::test(name, move || Err(Failed::from(reason)))
                }
                Err(Unavailable::Ignore(_)) => Trial::test(name, || Ok(())).with_ignored_flag(true),
            }
        })
        .collect()
}

fn azurite_put_get(azurite: Arc<Azurite>) -> Result<(), String> {
    block_on(async {
        azurite.create_container("harness").await?;
        azurite.put_blob("harness", "dir/hello.txt", b"hello azurite").await?;
        let got = azurite.get_blob("harness", "dir/hello.txt").await?;
        if got != b"hello azurite" {
            return Err(format!("Get Blob returned {:?}", String::from_utf8_lossy(&got)));
        }
        Ok(())
    })
}

/// Azurite checks Shared Key signatures: a request signed with another key is refused, so the
/// harness's signer is really exercised by the other checks.
fn azurite_refuses_a_wrong_key(azurite: Arc<Azurite>) -> Result<(), String> {
    block_on(async {
        azurite.create_container("wrongkey").await?;
        let other_key = "b3RoZXIga2V5IG9mIHNpeHR5LWZvdXIgYnl0ZXMsIG5vdCBBenVyaXRlJ3Mgd2VsbC1rbm93biBrZXkhIQ==";
        let headers = [("x-ms-blob-type", "BlockBlob")];
        let (status, _, body) =
            azurite.request_with_key(other_key, "PUT", "wrongkey/x", &headers, b"x".to_vec()).await?;
        if status != 403 {
            return Err(format!("a wrong key got {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(())
    })
}

fn azurite_trusts_its_certificate_only(azurite: Arc<Azurite>) -> Result<(), String> {
    let pem = std::fs::read_to_string(&azurite.ca_file).map_err(|e| format!("{}: {e}", azurite.ca_file.display()))?;
    if !pem.contains("BEGIN CERTIFICATE") || !azurite.endpoint.starts_with("https://127.0.0.1:") {
        return Err(format!(
            "{} is not a PEM certificate, or {} not HTTPS",
            azurite.ca_file.display(),
            azurite.endpoint
        ));
    }
    if azurite.service_url != format!("{}/devstoreaccount1", azurite.endpoint) {
        return Err(format!("service_url {}", azurite.service_url));
    }
    Ok(())
}

fn azurite_oauth(azurite: Arc<Azurite>) -> Result<(), String> {
    block_on(async {
        azurite.create_container("oauth").await?;
        let token = azurite.oauth_token();
        let headers = [("x-ms-blob-type", "BlockBlob")];
        let (status, _, body) =
            azurite.request_with_token(&token, "PUT", "oauth/t", &headers, b"token".to_vec()).await?;
        if status != 201 {
            return Err(format!("Put Blob with a bearer token: {status}: {}", String::from_utf8_lossy(&body)));
        }
        let (status, _, body) = azurite.request_with_token(&token, "GET", "oauth/t", &[], Vec::new()).await?;
        if (status, body.as_slice()) != (200, b"token".as_slice()) {
            return Err(format!("Get Blob with a bearer token: {status}: {}", String::from_utf8_lossy(&body)));
        }
        let (status, _, _) = azurite.request_with_token("not-a-token", "GET", "oauth/t", &[], Vec::new()).await?;
        if status != 401 && status != 403 {
            return Err(format!("a bad bearer token got {status}"));
        }
        Ok(())
    })
}

fn fake_gcs_put_get(gcs: Arc<FakeGcs>) -> Result<(), String> {
    block_on(async {
        gcs.create_bucket("harness").await?;
        gcs.upload("harness", "dir/x", b"hello fake-gcs").await?;
        let got = gcs.download("harness", "dir/x").await?;
        if got != b"hello fake-gcs" {
            return Err(format!("download returned {:?}", String::from_utf8_lossy(&got)));
        }
        Ok(())
    })
}

fn gcp_put_get(gcs: Arc<GcpStorageEmulator>) -> Result<(), String> {
    block_on(async {
        gcs.create_bucket("harness").await?;
        gcs.upload("harness", "dir/x", b"hello gcp-storage-emulator").await?;
        let got = gcs.download("harness", "dir/x").await?;
        if got != b"hello gcp-storage-emulator" {
            return Err(format!("download returned {:?}", String::from_utf8_lossy(&got)));
        }
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    // Started one after the other (installs are serialised anyway), before any trial runs.
    let azurite = start(&format!("Azurite {AZURITE_VERSION} (Azure, HTTPS)"), Azurite::start, |a| a.ready_in);
    let azurite_http = start(&format!("Azurite {AZURITE_VERSION} (Azure, HTTP)"), Azurite::start_http, |a| a.ready_in);
    let azurite_oauth_server = start(
        &format!("Azurite {AZURITE_VERSION} (Azure, HTTPS, OAuth)"),
        || Azurite::start_with(AzuriteOptions { oauth: true, ..AzuriteOptions::default() }),
        |a| a.ready_in,
    );
    let fake_gcs =
        start(&format!("fake-gcs-server (wrapper {FAKE_GCS_WRAPPER_VERSION}, GCS)"), FakeGcs::start, |g| g.ready_in);
    let gcp =
        start(&format!("gcp-storage-emulator {GCP_STORAGE_EMULATOR_VERSION} (GCS)"), GcpStorageEmulator::start, |g| {
            g.ready_in
        });

    let mut all = Vec::new();
    all.extend(trials(
        "azurite",
        &azurite,
        &[
            ("put_and_get_a_blob", azurite_put_get),
            ("refuses_a_wrong_key", azurite_refuses_a_wrong_key),
            ("serves_https_with_its_ca_file", azurite_trusts_its_certificate_only),
        ],
    ));
    all.extend(trials("azurite_http", &azurite_http, &[("put_and_get_a_blob", azurite_put_get)]));
    all.extend(trials("azurite_oauth", &azurite_oauth_server, &[("bearer_token_put_and_get", azurite_oauth)]));
    all.extend(trials("fake_gcs", &fake_gcs, &[("put_and_get_an_object", fake_gcs_put_get)]));
    all.extend(trials("gcp_storage_emulator", &gcp, &[("put_and_get_an_object", gcp_put_get)]));
    let conclusion = libtest_mimic::run(&args, all);

    // Stopped by SIGTERM to their pids; each must be gone afterwards.
    let mut stopped = Vec::new();
    if let Ok(a) = azurite {
        stopped.push(("Azurite (HTTPS)", a.pid(), Arc::into_inner(a).map(Azurite::stop)));
    }
    if let Ok(a) = azurite_http {
        stopped.push(("Azurite (HTTP)", a.pid(), Arc::into_inner(a).map(Azurite::stop)));
    }
    if let Ok(a) = azurite_oauth_server {
        stopped.push(("Azurite (OAuth)", a.pid(), Arc::into_inner(a).map(Azurite::stop)));
    }
    if let Ok(g) = fake_gcs {
        stopped.push(("fake-gcs-server", g.pid(), Arc::into_inner(g).map(FakeGcs::stop)));
    }
    if let Ok(g) = gcp {
        stopped.push(("gcp-storage-emulator", g.pid(), Arc::into_inner(g).map(GcpStorageEmulator::stop)));
    }
    let mut alive = Vec::new();
    for (name, pid, took) in stopped {
        if let Some(took) = took {
            eprintln!("emulators: {name} (pid {pid}) stopped in {:.2} s", took.as_secs_f64());
        }
        let running = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        if running.is_ok_and(|s| s.success()) {
            alive.push(format!("{name} (pid {pid})"));
        }
    }
    if !alive.is_empty() {
        eprintln!("emulators: still running after stop: {}", alive.join(", "));
        std::process::exit(101);
    }
    conclusion.exit();
}
