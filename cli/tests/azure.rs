//! The azure driver against a real Azurite (docs/testing.md) that this binary installs on
//! first use, starts over HTTPS with a self-signed certificate the host is told to trust, and
//! stops at the end: the conformance suite with a fresh `rootdirectory` per test, distribution's
//! azure tests, and regstore's: resume across instances, an append whose answer is
//! lost after it landed (distribution issue #4571), a large Move, RedirectURL, refused,
//! unreachable and silent endpoints.
//!
//! If Azurite cannot be installed or started, every trial fails with the reason, unless
//! `REGSTORE_SKIP_EMULATORS=1` (outside CI) reports them as ignored.

#[path = "support/bench.rs"]
mod bench;
#[path = "support/cloud.rs"]
mod cloud;
#[path = "support/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use regstore::{Capabilities, Driver, ErrorKind, FileWriter, Params, Registry, Sandbox, StorageDriver};
use regstore_testsuite::emulators::{AZURITE_VERSION, Answer, Azurite, AzuriteOptions, repo_root};
use regstore_testsuite::util::{Context, Failure, expect_error, random_contents};
use regstore_testsuite::{Config, DriverFactory, ensure, ensure_eq};
use serde_json::{Value, json};

use cloud::{Specific, Suite};
use proxy::{Action, Proxy};

const MIB: usize = 1 << 20;
/// TestWriteReadLargeStreams against Azurite, which keeps everything in memory (distribution: 5 GiB).
const LARGE_STREAM: u64 = 256 << 20;

struct Env {
    azurite: Azurite,
    /// A second Azurite over plain HTTP, behind fault-injecting proxies.
    plain: Azurite,
    /// A third over HTTPS that also accepts OAuth bearer tokens.
    oauth: Azurite,
    /// A proxy in front of `plain` that gives 10 % of the driver's requests a fault, for the
    /// conformance suite's `azure-faults` run.
    faulty: Proxy,
    faults_given: Arc<AtomicU64>,
    container: String,
    registry: Registry,
    next_root: AtomicU64,
}

impl Env {
    fn fresh_root(&self) -> String {
        format!("/regstore-test-{}", self.next_root.fetch_add(1, Ordering::SeqCst))
    }

    fn params_for(&self, service_url: &str, root: &str) -> Params {
        params(json!({
            "accountname": self.azurite.account,
            "accountkey": self.azurite.key,
            "container": self.container,
            "serviceurl": service_url,
            "rootdirectory": root,
        }))
    }

    fn params(&self, root: &str) -> Params {
        self.params_for(&self.azurite.service_url, root)
    }

    /// What the operator hands the bundled driver: trust for Azurite's certificate.
    fn sandbox(&self) -> Sandbox {
        Sandbox { ca_files: vec![self.azurite.ca_file.clone()], ..Sandbox::default() }
    }

    async fn create(&self, params: &Params) -> Result<Driver, Failure> {
        self.registry
            .create_with("azure", params, self.sandbox())
            .await
            .map_err(|e| format!("creating the azure driver: {e}"))
    }

    async fn fresh(&self) -> Result<(Driver, String), Failure> {
        let root = self.fresh_root();
        Ok((self.create(&self.params(&root)).await?, root))
    }

    /// The blob name of `path` under `root`.
    fn blob(&self, root: &str, path: &str) -> String {
        format!("{}{path}", root.trim_end_matches('/')).trim_start_matches('/').to_string()
    }

    /// A Shared Key request to the HTTPS Azurite, outside the driver: (status, headers, body).
    async fn rest(
        &self,
        method: &str,
        blob: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, Failure> {
        let path = format!("{}/{blob}{query}", self.container);
        self.azurite.request(method, &path, headers, body).await
    }
}

fn params(value: Value) -> Params {
    value.as_object().cloned().expect("an object")
}

async fn ensure_clean(d: &Driver) -> Result<(), Failure> {
    let left = d.list("/").await.ctx("List(\"/\") after the test")?;
    ensure!(left.is_empty(), "the test left content behind: List(\"/\") = {left:?}");
    Ok(())
}

async fn write_all(w: &mut dyn FileWriter, mut data: &[u8]) -> Result<(), Failure> {
    while !data.is_empty() {
        let n = w.write(&data[..data.len().min(MIB)]).await.ctx("Write")?;
        ensure!(n > 0, "Write accepted nothing");
        data = &data[n..];
    }
    Ok(())
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

// ---- distribution's azure tests ----

/// Writer + 4 MiB + Commit + Close, then GetContent, Move and GetContent of the destination.
async fn commit_after_move(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let data = random_contents(4 * MIB);
    let mut w = d.writer("/upload/data", false).await.ctx("Writer")?;
    write_all(&mut *w, &data).await?;
    w.commit().await.ctx("Commit")?;
    w.close().await.ctx("Close")?;
    ensure!(d.get_content("/upload/data").await.ctx("GetContent")? == data, "GetContent differs");
    d.move_file("/upload/data", "/blobs/data").await.ctx("Move")?;
    ensure!(d.get_content("/blobs/data").await.ctx("GetContent after Move")? == data, "the moved content differs");
    expect_error(d.stat("/upload/data").await, ErrorKind::PathNotFound, d.name(), "Stat of the moved source")?;
    d.delete("/blobs").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// PutContent stores a block blob.
async fn put_content_creates_block_blob(env: Arc<Env>) -> Result<(), Failure> {
    let (d, root) = env.fresh().await?;
    d.put_content("/link", b"sha256:abc").await.ctx("PutContent")?;
    let (status, headers, _) = env.rest("HEAD", &env.blob(&root, "/link"), "", &[], Vec::new()).await?;
    d.delete("/link").await.ctx("Delete")?;
    ensure_eq!(status, 200, "HEAD of the blob");
    ensure_eq!(header(&headers, "x-ms-blob-type"), "BlockBlob", "the blob type");
    ensure_clean(&d).await
}

/// An append blob left by an earlier PutContent is replaced by a block blob with exactly the
/// new content.
async fn put_content_migrates_legacy_append_blob(env: Arc<Env>) -> Result<(), Failure> {
    let (d, root) = env.fresh().await?;
    let blob = env.blob(&root, "/legacy");
    let (status, _, _) = env.rest("PUT", &blob, "", &[("x-ms-blob-type", "AppendBlob")], Vec::new()).await?;
    ensure_eq!(status, 201, "creating the legacy append blob");
    let (status, _, _) = env.rest("PUT", &blob, "?comp=appendblock", &[], b"old old old".to_vec()).await?;
    ensure_eq!(status, 201, "appending to the legacy blob");
    d.put_content("/legacy", b"new").await.ctx("PutContent over the append blob")?;
    let (_, headers, _) = env.rest("HEAD", &blob, "", &[], Vec::new()).await?;
    let got = d.get_content("/legacy").await.ctx("GetContent")?;
    d.delete("/legacy").await.ctx("Delete")?;
    ensure_eq!(header(&headers, "x-ms-blob-type"), "BlockBlob", "the blob type after PutContent");
    ensure_eq!(got, b"new".to_vec(), "the content");
    ensure_clean(&d).await
}

/// 16 concurrent PutContent calls of the same link: one block blob holding it once.
async fn concurrent_put_content_same_path(env: Arc<Env>) -> Result<(), Failure> {
    let (d, root) = env.fresh().await?;
    let link = format!("sha256:{}", "0123456789abcdef".repeat(4)).into_bytes();
    ensure_eq!(link.len(), 71, "the link's length");
    let results: Vec<_> = futures::stream::iter(0..16)
        .map(|_| {
            let (d, link) = (d.clone(), link.clone());
            async move { d.put_content("/repo/_layers/link", &link).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r.ctx("PutContent")?;
    }
    let got = d.get_content("/repo/_layers/link").await.ctx("GetContent")?;
    let (_, headers, _) = env.rest("HEAD", &env.blob(&root, "/repo/_layers/link"), "", &[], Vec::new()).await?;
    d.delete("/repo").await.ctx("Delete")?;
    ensure_eq!(got, link, "the content (never duplicated)");
    ensure_eq!(header(&headers, "x-ms-blob-type"), "BlockBlob", "the blob type");
    ensure_clean(&d).await
}

/// distribution's TestParamParsing, with regstore's texts: what parses and what is refused.
async fn param_parsing(env: Arc<Env>) -> Result<(), Failure> {
    let ok = [
        json!({"accountname": "a", "accountkey": env.azurite.key, "container": "c", "max_retries": 1, "retry_delay": "10ms"}),
        json!({"accountname": "a", "container": "c", "credentials": {"type": "client_secret", "clientid": "i", "tenantid": "t", "secret": "s"}}),
        json!({"accountname": "a", "container": "c", "credentials": {"type": "default_credentials"}}),
    ];
    for p in ok {
        env.registry.describe("azure", &params(p.clone())).await.map_err(|e| format!("{p}: {e}"))?;
    }
    let refused = [
        (json!({}), "no accountname parameter provided"),
        (json!({"accountname": "a"}), "no container parameter provider"),
        (json!({"accountname": "a", "container": "c", "credentials": {"type": "default"}}), "invalid credentials type"),
        (
            json!({"accountname": "a", "container": "c", "accountkey": env.azurite.key, "retry_delay": "soon"}),
            "retry_delay",
        ),
        (
            json!({"accountname": "a", "container": "c", "accountkey": env.azurite.key, "skipverify": true}),
            "skipverify",
        ),
    ];
    let mut issues = Vec::new();
    for (p, text) in refused {
        let result = env.registry.describe("azure", &params(p.clone())).await.map(|_| ());
        match expect_error(result, ErrorKind::InvalidParameter, "azure", &p.to_string()) {
            Ok(e) if !e.to_string().contains(text) => issues.push(format!("{p}: the error must say {text:?}: {e}")),
            Ok(_) => {}
            Err(why) => issues.push(why),
        }
    }
    ensure!(issues.is_empty(), "{}", issues.join("; "));
    Ok(())
}

// ---- regstore's ----

/// A writer resumed by two later driver instances (the registry's chunked upload across
/// requests): sizes and content.
async fn resume_across_instances(env: Arc<Env>) -> Result<(), Failure> {
    let root = env.fresh_root();
    let p = env.params(&root);
    let path = "/uploads/resumed";
    let data = random_contents(9 * MIB + 3);
    let a = env.create(&p).await?;
    let mut w = a.writer(path, false).await.ctx("Writer on instance A")?;
    write_all(&mut *w, &data[..5 * MIB + 1]).await?;
    ensure_eq!(w.size(), (5 * MIB + 1) as u64, "Size counts buffered bytes (D5)");
    w.close().await.ctx("Close on instance A")?;
    drop((w, a));

    let b = env.create(&p).await?;
    let mut w = b.writer(path, true).await.ctx("Writer(append) on instance B")?;
    ensure_eq!(w.size(), (5 * MIB + 1) as u64, "Size on resuming on instance B");
    write_all(&mut *w, &data[5 * MIB + 1..8 * MIB]).await?;
    w.close().await.ctx("Close on instance B")?;
    drop((w, b));

    let c = env.create(&p).await?;
    let mut w = c.writer(path, true).await.ctx("Writer(append) on instance C")?;
    ensure_eq!(w.size(), 8 * MIB as u64, "Size on resuming on instance C");
    write_all(&mut *w, &data[8 * MIB..]).await?;
    w.commit().await.ctx("Commit on instance C")?;
    drop(w);
    let got = c.get_content(path).await.ctx("GetContent")?;
    let again = c.writer(path, true).await.map(|_| ());
    c.delete("/uploads").await.ctx("Delete")?;
    ensure!(got == data, "GetContent returned {} bytes that differ from the {} written", got.len(), data.len());
    let e = expect_error(again, ErrorKind::Other, "azure", "Writer(append) after Commit (D4)")?;
    ensure!(e.to_string().contains(path), "the D4 error must name the path: {e}");
    ensure_clean(&c).await
}

/// distribution issue #4571: an append that landed, whose answer was lost (cut after Azurite
/// applied it). The writer must find the block in the blob and go on, never append it twice.
async fn lost_append_answer_is_not_repeated(env: Arc<Env>) -> Result<(), Failure> {
    let appends = Arc::new(AtomicU64::new(0));
    let counter = appends.clone();
    // The second append's answer is cut; every other request passes.
    let rule: proxy::Rule = Arc::new(move |head| {
        if head.target.contains("comp=appendblock") && counter.fetch_add(1, Ordering::SeqCst) == 1 {
            Action::CutAfterApplying
        } else {
            Action::Forward
        }
    });
    let proxy = Proxy::start(env.plain.addr(), rule).await?;
    let root = env.fresh_root();
    let service_url = format!("{}/{}", proxy.endpoint, env.plain.account);
    let mut p = env.params_for(&service_url, &root);
    p.insert("retry_delay".into(), json!("10ms"));
    let d = Registry::new().create("azure", &p).await.map_err(|e| format!("creating the driver: {e}"))?;
    let data = random_contents(3 * 4 * MIB + 17);
    let mut w = d.writer("/blob", false).await.ctx("Writer")?;
    write_all(&mut *w, &data).await?;
    w.commit().await.ctx("Commit")?;
    drop(w);
    let got = d.get_content("/blob").await.ctx("GetContent")?;
    d.delete("/blob").await.ctx("Delete")?;
    ensure!(appends.load(Ordering::SeqCst) >= 2, "the cut never happened: {} appends", appends.load(Ordering::SeqCst));
    ensure_eq!(got.len(), data.len(), "the blob's length (a repeated block would add 4 MiB)");
    ensure!(got == data, "the blob's bytes differ from those written");
    ensure_clean(&d).await
}

/// Move of a 40 MiB blob written by a writer (an append blob of 10 blocks): server-side copy,
/// content identical, source gone.
async fn move_large_blob(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let data = random_contents(40 * MIB + 5);
    let mut w = d.writer("/uploads/big", false).await.ctx("Writer")?;
    write_all(&mut *w, &data).await?;
    w.commit().await.ctx("Commit")?;
    drop(w);
    d.move_file("/uploads/big", "/blobs/big").await.ctx("Move")?;
    let got = d.get_content("/blobs/big").await.ctx("GetContent(/blobs/big)")?;
    let source = d.stat("/uploads/big").await;
    d.delete("/blobs").await.ctx("Delete")?;
    ensure!(got == data, "the moved content differs ({} bytes read, {} written)", got.len(), data.len());
    expect_error(source, ErrorKind::PathNotFound, d.name(), "Stat of the source after the Move")?;
    ensure_clean(&d).await
}

/// PutContent above the single-upload limit (256 MiB) goes as blocks instead of being refused.
async fn put_content_over_single_upload_limit(env: Arc<Env>) -> Result<(), Failure> {
    let (d, root) = env.fresh().await?;
    // Four distinct 64 MiB blocks (the suite's random pool is 128 MiB), each marked with its
    // number, and one byte more.
    let mut data = Vec::with_capacity(256 * MIB + 1);
    for i in 0..4u8 {
        let mut block = random_contents(64 * MIB);
        block[..8].copy_from_slice(&[i; 8]);
        data.extend_from_slice(&block);
    }
    data.push(7);
    d.put_content("/huge", &data).await.ctx("PutContent of 256 MiB + 1")?;
    let stat = d.stat("/huge").await.ctx("Stat")?;
    let (_, headers, _) = env.rest("HEAD", &env.blob(&root, "/huge"), "", &[], Vec::new()).await?;
    let got = d.get_content("/huge").await.ctx("GetContent")?;
    d.delete("/huge").await.ctx("Delete")?;
    ensure_eq!(stat.size, data.len() as u64, "the size");
    ensure_eq!(header(&headers, "x-ms-blob-type"), "BlockBlob", "the blob type");
    ensure!(got == data, "the content differs");
    ensure_clean(&d).await
}

/// RedirectURL: a read SAS for GET and HEAD that works as it is, refused for a PUT; none for
/// other methods (D10).
async fn redirect_url(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let content = random_contents(4321);
    d.put_content("/r/blob", &content).await.ctx("PutContent")?;
    let outcome = async {
        let client = regstore_testsuite::util::http_client(std::slice::from_ref(&env.azurite.ca_file))?;
        let get = d.redirect_url("GET", "/r/blob").await.ctx("RedirectURL(GET)")?.ok_or("no GET URL")?;
        ensure!(get.starts_with("https://"), "the URL must be https: {get}");
        let response = client.get(&get).send().await.map_err(|e| format!("GET {get}: {e}"))?;
        ensure_eq!(response.status().as_u16(), 200, "the status of GET");
        ensure!(response.bytes().await.map_err(|e| e.to_string())?[..] == content[..], "GET returned other bytes");
        let head = d.redirect_url("HEAD", "/r/blob").await.ctx("RedirectURL(HEAD)")?.ok_or("no HEAD URL")?;
        let response = client.head(&head).send().await.map_err(|e| format!("HEAD {head}: {e}"))?;
        ensure_eq!(response.status().as_u16(), 200, "the status of HEAD");
        let response = client
            .put(&get)
            .header("x-ms-blob-type", "BlockBlob")
            .body("overwritten")
            .send()
            .await
            .map_err(|e| format!("PUT {get}: {e}"))?;
        ensure_eq!(response.status().as_u16(), 403, "a PUT through the read URL");
        for method in ["PUT", "DELETE", "POST"] {
            let url = d.redirect_url(method, "/r/blob").await.ctx("RedirectURL")?;
            ensure!(url.is_none(), "RedirectURL({method}) must give no URL, got {url:?}");
        }
        ensure!(d.get_content("/r/blob").await.ctx("GetContent")? == content, "the PUT changed the content");
        Ok::<(), Failure>(())
    }
    .await;
    d.delete("/r").await.ctx("Delete")?;
    outcome?;
    ensure_clean(&d).await
}

/// Azurite's certificate is trusted only when the operator hands its CA over: without it, the
/// first call fails naming the endpoint and the certificate.
async fn untrusted_certificate(env: Arc<Env>) -> Result<(), Failure> {
    let d = Registry::new().create("azure", &env.params(&env.fresh_root())).await.ctx("create")?;
    let e = d.stat("/x").await.err().ok_or("a call succeeded without trusting Azurite's certificate")?;
    let text = e.to_string();
    ensure!(text.contains(&env.azurite.endpoint), "the error must name {}: {text}", env.azurite.endpoint);
    ensure!(text.contains("certificate"), "the error must say the certificate is not trusted: {text}");
    Ok(())
}

/// A closed port fails fast, naming the endpoint; an endpoint that accepts and never answers
/// fails within 30 s, naming it.
async fn unreachable_and_silent_endpoints(env: Arc<Env>) -> Result<(), Failure> {
    let port = regstore_testsuite::emulators::free_port()?;
    let closed = format!("http://127.0.0.1:{port}");
    let d = Registry::new().create("azure", &env.params_for(&format!("{closed}/acct"), "/x")).await.ctx("create")?;
    let started = Instant::now();
    let e = d.stat("/a").await.err().ok_or("Stat on a closed port succeeded")?;
    ensure!(e.to_string().contains(&closed), "the error must name {closed}: {e}");
    ensure!(started.elapsed() < Duration::from_secs(10), "took {:?}: {e}", started.elapsed());

    let silent = Proxy::start(env.plain.addr(), Arc::new(|_| Action::Silent)).await?;
    let d = Registry::new()
        .create("azure", &env.params_for(&format!("{}/acct", silent.endpoint), "/x"))
        .await
        .ctx("create")?;
    let started = Instant::now();
    let e = d.stat("/a").await.err().ok_or("Stat on a silent endpoint succeeded")?;
    let took = started.elapsed();
    ensure!(e.to_string().contains(&silent.endpoint), "the error must name {}: {e}", silent.endpoint);
    ensure!(took <= Duration::from_secs(31), "a silent endpoint took {took:?} to fail: {e}");
    ensure!(!e.to_string().contains("crashed"), "a timeout is no crash: {e}");
    println!("azure: a silent endpoint failed in {:.1} s: {e}", took.as_secs_f64());
    Ok(())
}

/// default_credentials without workload identity falls to managed identity, whose metadata
/// endpoint the sandbox blocks: the error names the grant that would allow it.
async fn managed_identity_needs_its_grant(env: Arc<Env>) -> Result<(), Failure> {
    let mut p = env.params(&env.fresh_root());
    p.remove("accountkey");
    p.insert("credentials".into(), json!({"type": "default_credentials"}));
    let d = env.create(&p).await?;
    let started = Instant::now();
    let e = d.stat("/a").await.err().ok_or("Stat without credentials succeeded")?;
    let text = e.to_string();
    ensure!(text.contains("--allow-host 169.254.169.254:80"), "the error must name the grant: {text}");
    ensure!(started.elapsed() < Duration::from_secs(5), "a refusal must be immediate: {:?}", started.elapsed());
    Ok(())
}

/// The driver is granted its service URL's authority (and, for token credentials, the token
/// endpoint) and nothing else; the same component from a file gets nothing unless granted.
async fn grants(env: Arc<Env>) -> Result<(), Failure> {
    let p = env.params(&env.fresh_root());
    let authority = env.azurite.endpoint.trim_start_matches("https://").to_string();
    let plan = env.registry.plan("azure", &p, &env.sandbox()).await.ctx("plan")?;
    ensure_eq!(plan.grants.ctx("grants")?.hosts, vec![authority.clone()], "the bundled grant");
    let wasm = regstore_bundled::get("azure").ok_or("no bundled azure")?.wasm;
    let dir = tempfile::tempdir().ctx("a temporary directory")?;
    let file = dir.path().join("azurefile.wasm");
    std::fs::write(&file, wasm).ctx("writing the component")?;
    let registry = Registry::empty();
    registry.register_file(None, &file).await.ctx("registering the file")?;
    let e = registry.create("azurefile", &p).await.err().ok_or("a third-party azure opened without grants")?;
    ensure_eq!(e.kind(), ErrorKind::NotGranted, "the error's kind ({e})");
    ensure!(e.to_string().contains(&format!("--allow-host {authority}")), "the error must name the grant: {e}");
    let sandbox = Sandbox {
        hosts: vec![authority],
        memory_limit: Some(4 << 30),
        call_deadline: Some(Duration::from_secs(900)),
        ..env.sandbox()
    };
    let d = registry.create_with("azurefile", &p, sandbox).await.ctx("with its grants")?;
    expect_error(d.stat("/missing").await.map(|_| ()), ErrorKind::PathNotFound, d.name(), "Stat")?;
    Ok(())
}

/// A stand-in for Entra ID's token endpoint (no emulator exists for it): it checks that the
/// request is a client-credentials grant for Azure Storage with the configured client, and
/// answers with a token Azurite's OAuth mode accepts. Returns its URL and the number of tokens
/// it issued.
async fn token_endpoint(
    tenant: &'static str,
    client_id: &'static str,
    secret: &'static str,
) -> Result<(String, Arc<AtomicU64>, tokio::task::JoinHandle<()>), Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let issued = Arc::new(AtomicU64::new(0));
    let counter = issued.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            // The head, then as much body as Content-Length says.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&request).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let form: Vec<(String, String)> = body
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect();
            let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let ok = head.starts_with(&format!("POST /{tenant}/oauth2/v2.0/token HTTP/1.1"))
                && head.to_ascii_lowercase().contains("content-type: application/x-www-form-urlencoded")
                && field("grant_type") == Some("client_credentials")
                && field("client_id") == Some(client_id)
                && field("client_secret") == Some(secret)
                && field("scope") == Some("https://storage.azure.com/.default");
            let (status, answer) = if ok {
                counter.fetch_add(1, Ordering::SeqCst);
                ("200 OK", json!({"token_type": "Bearer", "expires_in": 3600, "access_token": access_token(tenant)}))
            } else {
                (
                    "400 Bad Request",
                    json!({"error": "invalid_request", "error_description": format!("unexpected: {head} {body}")}),
                )
            };
            let answer = answer.to_string();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    Ok((url, issued, task))
}

fn percent_decode(v: &str) -> String {
    let bytes = v.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JWT with the claims Azurite's OAuth mode checks (issuer, audience, times); it does not
/// check signatures, so this one carries none that verifies.
fn access_token(tenant: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "regstore-test"});
    let claims = json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": tenant,
        "appid": "regstore-test",
    });
    format!("{}.{}.c2lnbmF0dXJl", b64(&header), b64(&claims))
}

/// client_secret credentials: the driver fetches a token from the (stand-in) token endpoint,
/// caches it, and Azurite in OAuth mode accepts it; redirect URLs are user delegation SAS
/// tokens that work.
async fn token_credentials(env: Arc<Env>) -> Result<(), Failure> {
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let (authority, issued, task) = token_endpoint(TENANT, "regstore-client", "s3cr3t+/=").await?;
    let oauth = &env.oauth;
    let p = params(json!({
        "accountname": oauth.account,
        "container": env.container,
        "serviceurl": oauth.service_url,
        "rootdirectory": env.fresh_root(),
        "credentials": {"type": "client_secret", "tenantid": TENANT, "clientid": "regstore-client",
                        "secret": "s3cr3t+/=", "authorityhost": authority},
    }));
    let sandbox = Sandbox { ca_files: vec![oauth.ca_file.clone()], ..Sandbox::default() };
    let d = env.registry.create_with("azure", &p, sandbox).await.ctx("create with client_secret")?;
    let outcome = async {
        d.put_content("/t/blob", b"token").await.ctx("PutContent with a bearer token")?;
        ensure_eq!(d.get_content("/t/blob").await.ctx("GetContent")?, b"token".to_vec(), "the content");
        ensure_eq!(issued.load(Ordering::SeqCst), 1, "tokens fetched (one, then cached)");
        let url =
            d.redirect_url("GET", "/t/blob").await.ctx("RedirectURL with a user delegation key")?.ok_or("no URL")?;
        ensure!(url.contains("skoid="), "a user delegation SAS names its key: {url}");
        let client = regstore_testsuite::util::http_client(std::slice::from_ref(&oauth.ca_file))?;
        let response = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        ensure_eq!(response.status().as_u16(), 200, "GET through the user delegation SAS");
        Ok::<(), Failure>(())
    }
    .await;
    let _ = d.delete("/t").await;
    task.abort();
    outcome
}

/// A native walk: one flat listing for the whole tree, never a request per directory (upstream
/// walks with List and Stat per entry). Counted by a proxy in front of the plain Azurite.
async fn walk_is_one_listing(env: Arc<Env>) -> Result<(), Failure> {
    let proxy = Proxy::start(env.plain.addr(), Arc::new(|_| Action::Forward)).await?;
    let service_url = format!("{}/{}", proxy.endpoint, env.plain.account);
    let d = Registry::new()
        .create("azure", &env.params_for(&service_url, &env.fresh_root()))
        .await
        .map_err(|e| format!("creating the driver: {e}"))?;
    let paths: Vec<String> = (0..120).map(|i| format!("/repos/r{}/_layers/l{i}/link", i % 40)).collect();
    let results: Vec<_> = futures::stream::iter(paths.clone())
        .map(|p| {
            let d = d.clone();
            async move { d.put_content(&p, p.as_bytes()).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r.ctx("PutContent")?;
    }
    let before = proxy.seen().len();
    let mut files = 0;
    d.walk("/repos", None, &mut |fi| {
        files += usize::from(!fi.is_dir);
        Ok(regstore::WalkControl::Continue)
    })
    .await
    .ctx("Walk")?;
    let during: Vec<proxy::Head> = proxy.seen().into_iter().skip(before).collect();
    d.delete("/repos").await.ctx("Delete")?;
    ensure_eq!(files, paths.len(), "files walked");
    let listings = during.iter().filter(|h| h.target.contains("comp=list")).count();
    ensure!(
        listings == 1 && during.len() == 1,
        "the walk made {} requests ({listings} listings): {:?}",
        during.len(),
        during.iter().map(|h| format!("{} {}", h.method, h.target)).collect::<Vec<_>>()
    );
    ensure_clean(&d).await
}

fn specific() -> Vec<(&'static str, Specific<Env>)> {
    vec![
        ("TestCommitAfterMove", |e| Box::pin(commit_after_move(e))),
        ("TestPutContentCreatesBlockBlob", |e| Box::pin(put_content_creates_block_blob(e))),
        ("TestPutContentMigratesLegacyAppendBlob", |e| Box::pin(put_content_migrates_legacy_append_blob(e))),
        ("TestConcurrentPutContentSamePath", |e| Box::pin(concurrent_put_content_same_path(e))),
        ("TestParamParsing", |e| Box::pin(param_parsing(e))),
        ("TestResumeAcrossInstances", |e| Box::pin(resume_across_instances(e))),
        ("TestLostAppendAnswerIsNotRepeated", |e| Box::pin(lost_append_answer_is_not_repeated(e))),
        ("TestMoveLargeBlob", |e| Box::pin(move_large_blob(e))),
        ("TestPutContentOverSingleUploadLimit", |e| Box::pin(put_content_over_single_upload_limit(e))),
        ("TestAzureRedirectURL", |e| Box::pin(redirect_url(e))),
        ("TestUntrustedCertificate", |e| Box::pin(untrusted_certificate(e))),
        ("TestUnreachableAndSilentEndpoints", |e| Box::pin(unreachable_and_silent_endpoints(e))),
        ("TestManagedIdentityNeedsItsGrant", |e| Box::pin(managed_identity_needs_its_grant(e))),
        ("TestGrants", |e| Box::pin(grants(e))),
        ("TestTokenCredentials", |e| Box::pin(token_credentials(e))),
        ("TestWalkIsOneListing", |e| Box::pin(walk_is_one_listing(e))),
        ("BenchAgainstNative", |e| Box::pin(bench_against_native(e))),
    ]
}

/// The azure driver's own code built natively (`regstore_native`) over a fresh root, trusting
/// Azurite's certificate as the component's sandbox does.
fn native_factory(env: Arc<Env>) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            regstore_native::trust_ca_files(&env.sandbox().ca_files)?;
            regstore_native::open_boxed("azure", &env.params(&env.fresh_root()))
        })
    })
}

async fn bench_against_native(env: Arc<Env>) -> Result<(), Failure> {
    bench::bench_against_native("azure", factory(env.clone()), native_factory(env)).await
}

fn factory(env: Arc<Env>) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            let params = env.params(&env.fresh_root());
            let driver = env.registry.create_with("azure", &params, env.sandbox()).await?;
            Ok(Arc::new(driver) as Arc<dyn StorageDriver>)
        })
    })
}

/// A fresh driver per conformance test whose requests go through the faulty proxy.
fn faulty_factory(env: Arc<Env>) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            let service_url = format!("{}/{}", env.faulty.endpoint, env.plain.account);
            let params = env.params_for(&service_url, &env.fresh_root());
            Ok(Arc::new(env.registry.create("azure", &params).await?) as Arc<dyn StorageDriver>)
        })
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        let (faults, requests) = (self.faults_given.load(Ordering::Relaxed), self.faulty.requests());
        if requests > 0 {
            println!("azure: the azure-faults run's proxy gave {faults} faults in {requests} requests");
        }
    }
}

fn capabilities(runtime: &tokio::runtime::Runtime) -> Capabilities {
    let p = params(json!({"accountname": "a", "accountkey": "a2V5", "container": "c"}));
    runtime.block_on(Registry::new().describe("azure", &p)).expect("the azure driver describes itself").capabilities
}

/// Starts the three Azurites and creates the suite's container in each.
fn start(runtime: &tokio::runtime::Runtime) -> Result<((), Arc<Env>), String> {
    let azurite = Azurite::start()?;
    let plain = Azurite::start_http()?;
    let oauth = Azurite::start_with(AzuriteOptions { oauth: true, ..AzuriteOptions::default() })?;
    for a in [&azurite, &plain, &oauth] {
        eprintln!(
            "azure: Azurite {AZURITE_VERSION} ready on {} in {:.2} s (pid {}, log {})",
            a.endpoint,
            a.ready_in.as_secs_f64(),
            a.pid(),
            a.log().display()
        );
    }
    let container = "regstore-test".to_string();
    runtime.block_on(azurite.create_container(&container))?;
    runtime.block_on(plain.create_container(&container))?;
    runtime.block_on(oauth.create_container(&container))?;
    let faults_given = Arc::new(AtomicU64::new(0));
    let faults = proxy::random_faults(10, 3, faults_given.clone());
    // Only the driver's requests (signed in a header): the suite fetches redirect URLs (signed
    // in the query) with a client that does not retry.
    let rule: proxy::Rule =
        Arc::new(move |h| if h.header("authorization").is_some() { faults(h) } else { Action::Forward });
    let faulty = runtime.block_on(Proxy::start(plain.addr(), rule))?;
    let env = Env {
        azurite,
        plain,
        oauth,
        faulty,
        faults_given,
        container,
        registry: Registry::new(),
        next_root: AtomicU64::new(0),
    };
    Ok(((), Arc::new(env)))
}

fn main() {
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap());
    // Redirect URLs are fetched trusting the certificate the harness makes for Azurite.
    // (the harness keeps it at .emulators/certs/cert.pem).
    let ca_files = vec![repo_root().expect("the repository root").join(".emulators/certs/cert.pem")];
    let suite = Suite {
        name: "azure",
        emulator: "Azurite (Azure)",
        config: Config { large_stream_size: LARGE_STREAM, ca_files, ..Config::default() },
        capabilities: capabilities(&runtime),
        variants: vec![("azure", factory), ("azure-faults", faulty_factory)],
        specific: specific(),
    };
    suite.main(runtime, start, |()| {})
}
