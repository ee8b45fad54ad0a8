//! The gcs driver against the two GCS emulators (docs/testing.md), which this binary
//! installs on first use, starts on free loopback ports and stops at the end:
//!
//! - fake-gcs-server (the main target): the whole conformance suite with a fresh
//!   `rootdirectory` per test (anonymous, as Google's clients talk to emulators), the redirect
//!   tests again with a service-account key, redirect URLs fetched with reqwest, uploads in
//!   progress hidden, a walk of 3,000 objects counted request by request, access tokens, a
//!   failed delete after a move;
//! - gcp-storage-emulator (the one that answers resumable status queries and refuses resent
//!   chunks): the resumable writer across instances, a cut chunk, a lost chunk, a 308 without
//!   `Range`, an empty final chunk, a dead session;
//! - both: an upload in progress in distribution's exact format, resumed and committed here, and
//!   one closed here, finished the way distribution would.
//!
//! Faults are injected by a small recording proxy in front of an emulator, and tokens come from a
//! token endpoint in this binary that verifies each JWT with the key's public half. If an
//! emulator cannot be installed or started, its trials fail with the reason, unless
//! `REGSTORE_SKIP_EMULATORS=1` (outside CI) reports them as ignored
//! (`regstore_testsuite::emulators::require_emulator`).

#[path = "support/bench.rs"]
mod bench;
/// The shared fault-injecting proxy (this binary's own `Proxy` below records more and changes
/// its rule while a writer runs).
#[path = "support/proxy.rs"]
#[allow(dead_code)] // This binary gives only random faults through it.
mod faults;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use futures::future::BoxFuture;
use libtest_mimic::{Arguments, Failed, Trial};
use regstore::{
    Capabilities, Driver, Error, ErrorKind, FileWriter, Params, Registry, Sandbox, StorageDriver, WalkControl,
};
use regstore_testsuite::emulators::{
    FAKE_GCS_WRAPPER_VERSION, FakeGcs, GCP_STORAGE_EMULATOR_VERSION, GcpStorageEmulator, Unavailable, free_port,
    require_emulator,
};
use regstore_testsuite::util::{Context, Failure, expect_error, random_contents};
use regstore_testsuite::{Config, DriverFactory, Outcome, ensure, ensure_eq};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KIB: usize = 1 << 10;
/// GCS's chunk granularity, and the chunksize of the resumable trials.
const BLOCK: usize = 256 * KIB;
/// TestWriteReadLargeStreams against fake-gcs-server, which keeps everything in memory (as s3's
/// suite against moto; distribution: 5 GiB).
const LARGE_STREAM: u64 = 256 << 20;
const BUCKET: &str = "regstore-test";
const UPLOAD_SESSION: &str = "application/x-docker-upload-session";

// ---- a recording, fault-injecting HTTP proxy ----

/// A request the proxy saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, as on the wire.
    target: String,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body_len: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn content_range(&self) -> &str {
        self.header("content-range").unwrap_or("")
    }

    /// A PUT to a resumable upload session.
    fn is_session_put(&self) -> bool {
        self.method == "PUT" && self.target.contains("upload_id=")
    }

    /// A session PUT carrying the chunk that starts at `from`.
    fn is_chunk_from(&self, from: usize) -> bool {
        self.is_session_put() && self.content_range().starts_with(&format!("bytes {from}-"))
    }

    fn is_status_query(&self) -> bool {
        self.is_session_put() && self.content_range() == "bytes */*"
    }
}

/// What the proxy does with a request.
enum Action {
    Forward,
    /// Forwards it and reads the answer, then closes the connection without answering: the
    /// server applied the request, the client never learns it.
    ForwardThenCut,
    /// Closes the connection without forwarding: the request is lost.
    Drop,
    /// Answers itself, with this status and these headers and no body.
    Reply(u16, Vec<(&'static str, &'static str)>),
}

type Rule = Box<dyn FnMut(&Seen) -> Action + Send>;

/// A proxy on a free loopback port in front of `127.0.0.1:target`, one request per connection.
struct Proxy {
    endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    rule: Arc<Mutex<Rule>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(target: u16) -> Result<Proxy, Failure> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("binding the proxy: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_| Action::Forward)));
        let (s, r) = (seen.clone(), rule.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let _ = relay(client, target, &s, &r).await;
                });
            }
        });
        Ok(Proxy { endpoint: format!("http://127.0.0.1:{port}"), seen, rule, task })
    }

    fn set_rule(&self, rule: impl FnMut(&Seen) -> Action + Send + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }

    /// The requests seen since the last call.
    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Reads one HTTP/1.1 request: its head and its body (by Content-Length).
async fn read_request(stream: &mut TcpStream) -> Result<Option<(Seen, Vec<u8>)>, String> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 16 * KIB];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (request_line.next().unwrap_or_default(), request_line.next().unwrap_or_default());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        // The host sends a body of unknown length (a DELETE's empty one, say) chunked.
        read_chunked(stream, &mut rest).await?
    } else {
        let length: usize =
            headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        fill(stream, &mut rest, length).await?;
        rest.truncate(length);
        rest
    };
    // Forwarded with its length, whatever framing it came in.
    let mut headers: Vec<(String, String)> =
        headers.into_iter().filter(|(n, _)| n != "transfer-encoding" && n != "content-length").collect();
    if chunked || !body.is_empty() || matches!(method, "PUT" | "POST") {
        headers.push(("content-length".into(), body.len().to_string()));
    }
    let seen = Seen { method: method.into(), target: target.into(), headers, body_len: body.len() };
    Ok(Some((seen, body)))
}

/// Reads until `buf` holds at least `n` bytes.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Result<(), String> {
    while buf.len() < n {
        let mut chunk = vec![0u8; (n - buf.len()).clamp(16 * KIB, 1 << 20)];
        let got = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if got == 0 {
            return Err("the client closed the connection mid-body".into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    Ok(())
}

/// A chunked body (`size CRLF data CRLF ... 0 CRLF CRLF`), without trailers.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            let len = buf.len() + 1;
            fill(stream, buf, len).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("a bad chunk size {size_text:?}"))?;
        let (start, end) = (line_end + 2, line_end + 2 + size);
        fill(stream, buf, end + 2).await?;
        body.extend_from_slice(&buf[start..end]);
        buf.drain(..end + 2);
        if size == 0 {
            return Ok(body);
        }
    }
}

async fn relay(mut client: TcpStream, target: u16, seen: &Mutex<Vec<Seen>>, rule: &Mutex<Rule>) -> Result<(), String> {
    let Some((request, body)) = read_request(&mut client).await? else { return Ok(()) };
    let action = (rule.lock().unwrap())(&request);
    seen.lock().unwrap().push(request.clone());
    match action {
        Action::Drop => return Ok(()),
        Action::Reply(status, headers) => {
            let mut answer = format!("HTTP/1.1 {status} Injected\r\ncontent-length: 0\r\nconnection: close\r\n");
            for (n, v) in headers {
                answer.push_str(&format!("{n}: {v}\r\n"));
            }
            answer.push_str("\r\n");
            return client.write_all(answer.as_bytes()).await.map_err(|e| e.to_string());
        }
        Action::Forward | Action::ForwardThenCut => {}
    }
    // One request per upstream connection, read to its end.
    let mut upstream = TcpStream::connect(("127.0.0.1", target)).await.map_err(|e| e.to_string())?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (n, v) in request.headers.iter().filter(|(n, _)| n != "connection") {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    upstream.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    if matches!(action, Action::ForwardThenCut) {
        return Ok(());
    }
    client.write_all(&answer).await.map_err(|e| e.to_string())
}

// ---- service-account keys and a token endpoint that checks them ----

/// A service account of the tests: an RSA key made here, and its public half.
struct TestKey {
    pem: String,
    public: RsaPublicKey,
    email: String,
}

fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key");
        let pem = private.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM").to_string();
        TestKey {
            pem,
            public: private.to_public_key(),
            email: "regstore-test@regstore-test.iam.gserviceaccount.com".into(),
        }
    })
}

/// The fields of a key file for `key`, with its tokens at `token_uri`.
fn key_fields(key: &TestKey, token_uri: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "regstore-test",
        "private_key_id": "0123456789abcdef",
        "private_key": key.pem,
        "client_email": key.email,
        "client_id": "1",
        "token_uri": token_uri,
    })
}

/// Google's published, inactive test key (the driver's signing test data): a key the token
/// endpoint does not know.
fn foreign_key_fields(token_uri: &str) -> Result<Value, Failure> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../drivers/gcs/testdata/test_service_account.not-a-test.json");
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut fields: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    fields["token_uri"] = token_uri.into();
    Ok(fields)
}

/// An OAuth 2.0 token endpoint (JWT bearer grant) that issues `tok-N` for assertions signed by
/// the test key, with the claims Google checks, and refuses any other.
struct TokenServer {
    token_uri: String,
    authority: String,
    issued: Arc<AtomicUsize>,
    refused: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    async fn start() -> Result<TokenServer, Failure> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("binding the token server: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let token_uri = format!("http://127.0.0.1:{port}/token");
        let (issued, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
        let (i, r, uri) = (issued.clone(), refused.clone(), token_uri.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (i, r, uri) = (i.clone(), r.clone(), uri.clone());
                tokio::spawn(async move {
                    let Ok(Some((request, body))) = read_request(&mut stream).await else { return };
                    let verdict = check_grant(&request, &body, &uri);
                    let (status, answer) = match verdict {
                        Ok(()) => {
                            let n = i.fetch_add(1, Ordering::SeqCst) + 1;
                            (
                                "200 OK",
                                json!({"access_token": format!("tok-{n}"), "expires_in": 3600, "token_type": "Bearer"}),
                            )
                        }
                        Err(why) => {
                            r.lock().unwrap().push(why.clone());
                            ("400 Bad Request", json!({"error": "invalid_grant", "error_description": why}))
                        }
                    };
                    let body = answer.to_string();
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Ok(TokenServer { token_uri, authority: format!("127.0.0.1:{port}"), issued, refused, task })
    }
}

/// Whether a token request is a JWT bearer grant signed by the test key, for this endpoint.
fn check_grant(request: &Seen, body: &[u8], token_uri: &str) -> Result<(), String> {
    if request.method != "POST" || request.header("content-type") != Some("application/x-www-form-urlencoded") {
        return Err(format!("not a form POST: {} {:?}", request.method, request.header("content-type")));
    }
    let form = String::from_utf8_lossy(body);
    let field = |name: &str| form.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")));
    if field("grant_type") != Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
        return Err(format!("grant_type is not jwt-bearer: {form}"));
    }
    let jwt = field("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else { return Err(format!("not a JWT: {jwt}")) };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|e| format!("not base64url: {e}"));
    let key = test_key();
    let signature = Signature::try_from(decode(signature)?.as_slice()).map_err(|e| e.to_string())?;
    VerifyingKey::<Sha256>::new(key.public.clone())
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the service account's public key".to_string())?;
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
    let checks = [
        (header["alg"] == "RS256", "alg is not RS256"),
        (claims["iss"] == key.email.as_str(), "iss is not the service account"),
        (claims["aud"] == token_uri, "aud is not the token endpoint"),
        (claims["scope"].as_str().is_some_and(|s| s.contains("devstorage")), "no storage scope"),
        (iat <= now + 60 && exp > now && exp - iat <= 3600, "iat/exp out of range"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(format!("{why}: {claims}")),
        None => Ok(()),
    }
}

// ---- the environment the trials share ----

/// An emulator and the plain HTTP client of the trials.
struct Emulator {
    endpoint: String,
    port: u16,
}

struct Env {
    fake: Result<Emulator, String>,
    /// In front of fake-gcs-server, a proxy that gives 10 % of requests a fault, for the
    /// conformance suite's `gcs-faults` run; and the faults it gave.
    faulty: Option<(faults::Proxy, Arc<AtomicU64>)>,
    gcp: Result<Emulator, String>,
    tokens: TokenServer,
    registry: Registry,
    http: reqwest::Client,
    next_root: AtomicU64,
}

impl Env {
    fn fresh_root(&self) -> String {
        format!("/regstore-test-{}", self.next_root.fetch_add(1, Ordering::SeqCst))
    }

    fn fake(&self) -> Result<&Emulator, Failure> {
        self.fake.as_ref().map_err(Clone::clone)
    }

    fn gcp(&self) -> Result<&Emulator, Failure> {
        self.gcp.as_ref().map_err(Clone::clone)
    }

    /// Anonymous parameters for `endpoint` under `root`.
    fn params(&self, endpoint: &str, root: &str) -> Params {
        params(json!({ "bucket": BUCKET, "endpoint": endpoint, "rootdirectory": root }))
    }

    /// With the test key inline, its tokens from this binary's token endpoint.
    fn keyed_params(&self, endpoint: &str, root: &str) -> Params {
        let mut p = self.params(endpoint, root);
        p.insert("credentials".into(), key_fields(test_key(), &self.tokens.token_uri));
        p
    }

    async fn create(&self, params: &Params) -> Result<Driver, Failure> {
        self.registry.create("gcs", params).await.map_err(|e| format!("creating the gcs driver: {e}"))
    }

    /// A plain request to an emulator: (status, headers, body).
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), Failure> {
        let response = request.send().await.map_err(|e| format!("plain HTTP request: {e}"))?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok((status, headers, body))
    }

    /// An object's metadata, by plain HTTP.
    async fn object(&self, emulator: &Emulator, key: &str) -> Result<Value, Failure> {
        let url = format!("{}/storage/v1/b/{BUCKET}/o/{}", emulator.endpoint, encode(key));
        let (status, _, body) = self.call(self.http.get(&url)).await?;
        ensure_eq!(status, 200, "GET {url}");
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }

    async fn media(&self, emulator: &Emulator, key: &str) -> Result<Vec<u8>, Failure> {
        let url = format!("{}/storage/v1/b/{BUCKET}/o/{}?alt=media", emulator.endpoint, encode(key));
        let (status, _, body) = self.call(self.http.get(&url)).await?;
        ensure_eq!(status, 200, "GET {url}");
        Ok(body)
    }
}

fn params(value: Value) -> Params {
    value.as_object().cloned().expect("an object")
}

/// The object name of `path` under `root`, as the driver maps it (docs/drivers/gcs.md, Layout).
fn key(root: &str, path: &str) -> String {
    format!("{}{path}", root.trim_matches('/')).trim_start_matches('/').to_string()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn write_all(w: &mut dyn FileWriter, data: &[u8], piece: usize) -> Result<(), Failure> {
    for chunk in data.chunks(piece) {
        let n = w.write(chunk).await.ctx("Write")?;
        ensure_eq!(n, chunk.len(), "bytes accepted by Write");
    }
    Ok(())
}

async fn ensure_clean(d: &Driver) -> Result<(), Failure> {
    let left = d.list("/").await.ctx("List(\"/\") after the test")?;
    ensure!(left.is_empty(), "the test left content behind: List(\"/\") = {left:?}");
    Ok(())
}

// ---- trials on fake-gcs-server ----

/// RedirectURL with a key: GET and HEAD URLs that work as they are (fetched with reqwest), V4
/// signed for 20 minutes by the service account; none for PUT (D10).
async fn redirect_url(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let d = env.create(&env.keyed_params(&fake.endpoint, &env.fresh_root())).await?;
    let path = "/redirect/blob";
    let content = random_contents(4321);
    d.put_content(path, &content).await.ctx("PutContent")?;
    let outcome = async {
        let get = d.redirect_url("GET", path).await.ctx("RedirectURL(GET)")?.ok_or("RedirectURL(GET) gave no URL")?;
        ensure!(get.starts_with(&format!("{}/{BUCKET}/", fake.endpoint)), "a path-style URL at the endpoint: {get}");
        for part in [
            "X-Goog-Algorithm=GOOG4-RSA-SHA256",
            "X-Goog-Expires=1200",
            "X-Goog-SignedHeaders=host",
            "X-Goog-Credential=regstore-test%40regstore-test.iam.gserviceaccount.com%2F",
        ] {
            ensure!(get.contains(part), "the GET URL must carry {part}: {get}");
        }
        let (status, _, body) = env.call(env.http.get(&get)).await?;
        ensure_eq!(status, 200, "the status of GET {get}");
        ensure!(body == content, "GET {get} returned {} bytes that differ from the content", body.len());
        let head =
            d.redirect_url("HEAD", path).await.ctx("RedirectURL(HEAD)")?.ok_or("RedirectURL(HEAD) gave no URL")?;
        ensure!(head != get, "HEAD must get a URL signed for HEAD, not GET's");
        let (status, headers, _) = env.call(env.http.head(&head)).await?;
        ensure_eq!(status, 200, "the status of HEAD {head}");
        let length = headers.get("content-length").and_then(|v| v.to_str().ok()).map(str::to_string);
        ensure_eq!(length, Some(content.len().to_string()), "Content-Length of HEAD {head}");
        for method in ["PUT", "POST", "DELETE"] {
            let url = d.redirect_url(method, path).await.ctx("RedirectURL")?;
            ensure!(url.is_none(), "RedirectURL({method}) must give no URL, got {url:?}");
        }
        Ok::<(), Failure>(())
    }
    .await;
    d.delete("/redirect").await.ctx("Delete")?;
    outcome?;
    ensure_clean(&d).await
}

/// An anonymous driver (endpoint, no key) cannot sign: it declares no redirects and gives none.
async fn anonymous_gives_no_redirects(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let p = env.params(&fake.endpoint, &env.fresh_root());
    let caps = env.registry.describe("gcs", &p).await.ctx("describe")?.capabilities;
    ensure!(
        caps.redirect_methods.as_ref().is_some_and(|m| m.is_empty()),
        "an anonymous driver declares redirects: {:?}",
        caps.redirect_methods
    );
    let d = env.create(&p).await?;
    d.put_content("/r", b"x").await.ctx("PutContent")?;
    let url = d.redirect_url("GET", "/r").await.ctx("RedirectURL");
    d.delete("/r").await.ctx("Delete")?;
    ensure_eq!(url?, None, "RedirectURL(GET) without credentials");
    Ok(())
}

/// Tokens: one signed JWT for many calls, `Authorization: Bearer` on every request, a fresh
/// token after a 401, and a clear error when the token endpoint refuses the key.
async fn tokens(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let proxy = Proxy::start(fake.port).await?;
    let d = env.create(&env.keyed_params(&proxy.endpoint, &env.fresh_root())).await?;
    let before = env.tokens.issued.load(Ordering::SeqCst);
    d.put_content("/t/a", b"abc").await.ctx("PutContent")?;
    ensure_eq!(d.get_content("/t/a").await.ctx("GetContent")?, b"abc".to_vec(), "content");
    d.stat("/t/a").await.ctx("Stat")?;
    d.list("/t").await.ctx("List")?;
    ensure_eq!(env.tokens.issued.load(Ordering::SeqCst) - before, 1, "tokens fetched for four calls (cached)");
    let seen = proxy.take_seen();
    let first = format!("Bearer tok-{}", before + 1);
    ensure!(
        seen.len() >= 4 && seen.iter().all(|s| s.header("authorization") == Some(first.as_str())),
        "every request must carry {first}: {:?}",
        seen.iter().map(|s| (s.method.as_str(), s.header("authorization"))).collect::<Vec<_>>()
    );

    // The server no longer takes the token: one 401, then the driver fetches another.
    let mut once = true;
    proxy.set_rule(move |_| if std::mem::take(&mut once) { Action::Reply(401, vec![]) } else { Action::Forward });
    d.stat("/t/a").await.ctx("Stat after a 401")?;
    ensure_eq!(env.tokens.issued.load(Ordering::SeqCst) - before, 2, "tokens fetched after a 401");
    let seen = proxy.take_seen();
    let second = format!("Bearer tok-{}", before + 2);
    ensure!(
        seen.len() == 2 && seen[1].header("authorization") == Some(second.as_str()),
        "the retried request must carry {second}: {seen:?}"
    );
    d.delete("/t").await.ctx("Delete")?;

    // A key the token endpoint does not know: the error names the endpoint and says why.
    let mut p = env.params(&proxy.endpoint, &env.fresh_root());
    p.insert("credentials".into(), foreign_key_fields(&env.tokens.token_uri)?);
    let stranger = env.create(&p).await?;
    let e = expect_error(stranger.stat("/x").await, ErrorKind::Other, "gcs", "Stat with a key the endpoint refuses")?;
    let text = e.to_string();
    for part in [env.tokens.token_uri.as_str(), "invalid_grant", "does not verify"] {
        ensure!(text.contains(part), "the error must say {part:?}: {text}");
    }
    ensure!(
        env.tokens.refused.lock().unwrap().iter().any(|r| r.contains("does not verify")),
        "the token endpoint must have refused the foreign key"
    );
    Ok(())
}

/// `keyfile`: the driver reads the key from its directory, granted read-only. Its token_uri is
/// not one the driver can declare (it reads the file only when it opens), so the request is
/// refused, naming the endpoint, until the operator grants it.
async fn keyfile(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let dir = tempfile::tempdir().ctx("a temporary directory")?;
    let file = dir.path().join("key.json");
    std::fs::write(&file, key_fields(test_key(), &env.tokens.token_uri).to_string()).ctx("writing the key file")?;
    let mut p = env.params(&fake.endpoint, &env.fresh_root());
    p.insert("keyfile".into(), json!(file.to_str().unwrap()));
    let described = env.registry.describe("gcs", &p).await.ctx("describe")?;
    let dir_name = dir.path().to_str().unwrap().to_string();
    ensure_eq!(described.requirements.read_only_dirs, vec![dir_name.clone()], "the read-only grant");
    ensure!(described.requirements.read_write_dirs.is_empty(), "no read-write directory");

    let d = env.create(&p).await?;
    let e = expect_error(d.stat("/x").await, ErrorKind::Other, "gcs", "Stat with an ungranted token endpoint")?;
    let text = e.to_string();
    ensure!(
        text.contains(&format!("http://{}", env.tokens.authority)) && text.contains("refused"),
        "the error must name the token endpoint and say it was refused: {text}"
    );
    let granted = Sandbox { hosts: vec![env.tokens.authority.clone()], ..Sandbox::default() };
    let d = env.registry.create_with("gcs", &p, granted).await.ctx("with the token endpoint granted")?;
    d.put_content("/k", b"key").await.ctx("PutContent with the key file")?;
    d.delete("/k").await.ctx("Delete")?;

    let mut missing = p.clone();
    missing.insert("keyfile".into(), json!(format!("{dir_name}/nope.json")));
    let opened = env.registry.create("gcs", &missing).await.map(|_| ());
    let e = expect_error(opened, ErrorKind::InvalidParameter, "gcs", "a missing key file")?;
    ensure!(e.to_string().contains("nope.json"), "the error must name the key file: {e}");
    Ok(())
}

/// Uploads in progress are no files (Stat, GetContent, Reader, List), but their directory
/// exists (Stat, List, Walk agree); Cancel removes the state.
async fn uploads_in_progress_are_hidden(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let d = env.create(&env.params(&fake.endpoint, &env.fresh_root())).await?;
    d.put_content("/up/done", b"done").await.ctx("PutContent")?;
    let path = "/up/_uploads/1/data";
    let mut w = d.writer(path, false).await.ctx("Writer")?;
    write_all(&mut *w, &random_contents(100), 100).await?;
    w.close().await.ctx("Close")?;
    drop(w);
    let name = d.name().to_string();
    expect_error(d.stat(path).await, ErrorKind::PathNotFound, &name, "Stat of an upload in progress")?;
    expect_error(d.get_content(path).await, ErrorKind::PathNotFound, &name, "GetContent of an upload in progress")?;
    expect_error(d.reader(path, 0).await.map(|_| ()), ErrorKind::PathNotFound, &name, "Reader(0)")?;
    expect_error(d.reader(path, 100).await.map(|_| ()), ErrorKind::PathNotFound, &name, "Reader at its size")?;
    ensure_eq!(d.list("/up/_uploads/1").await.ctx("List of its directory")?, Vec::<String>::new(), "List");
    ensure_eq!(d.list("/up").await.ctx("List(/up)")?, vec!["/up/_uploads".to_string(), "/up/done".into()], "List(/up)");
    ensure!(d.stat("/up/_uploads/1").await.ctx("Stat of its directory")?.is_dir, "its directory is a directory");
    let mut walked = Vec::new();
    d.walk("/up", None, &mut |fi| {
        walked.push(fi.path.clone());
        Ok(WalkControl::Continue)
    })
    .await
    .ctx("Walk")?;
    ensure_eq!(walked, vec!["/up/_uploads", "/up/_uploads/1", "/up/done"], "Walk(/up)");
    let mut w = d.writer(path, true).await.ctx("Writer(append)")?;
    ensure_eq!(w.size(), 100, "Size on resuming");
    w.cancel().await.ctx("Cancel")?;
    drop(w);
    expect_error(d.stat("/up/_uploads").await, ErrorKind::PathNotFound, &name, "Stat after Cancel")?;
    d.delete("/up").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// A walk of 3,000 objects costs at most 3 listing requests, and not one Stat (upstream: a
/// Stat per entry, two requests per directory).
async fn walk_request_count(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let root = env.fresh_root();
    // 30 directories of 100 files, planted straight into the emulator.
    let names: Vec<String> = (0..3000).map(|i| format!("/tree/dir{:02}/file{:03}", i / 100, i % 100)).collect();
    let urls: Vec<String> = names
        .iter()
        .map(|p| {
            format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={}", fake.endpoint, encode(&key(&root, p)))
        })
        .collect();
    let planted: Vec<Result<(), Failure>> = futures::stream::iter(urls)
        .map(|url| {
            let env = env.clone();
            async move {
                let (status, _, body) = env.call(env.http.post(&url).body("x")).await?;
                ensure!(status == 200, "planting {url}: {status} {}", String::from_utf8_lossy(&body));
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    planted.into_iter().collect::<Result<Vec<()>, Failure>>()?;

    let proxy = Proxy::start(fake.port).await?;
    let d = env.create(&env.params(&proxy.endpoint, &root)).await?;
    let mut walked = Vec::new();
    d.walk("/", None, &mut |fi| {
        walked.push((fi.path.clone(), fi.is_dir, fi.size));
        Ok(WalkControl::Continue)
    })
    .await
    .ctx("Walk(/)")?;
    let seen = proxy.take_seen();
    let list = format!("/storage/v1/b/{BUCKET}/o?");
    let object = format!("/storage/v1/b/{BUCKET}/o/");
    let listings = seen.iter().filter(|s| s.method == "GET" && s.target.starts_with(&list)).count();
    let stats = seen.iter().filter(|s| s.target.starts_with(&object)).count();
    println!(
        "gcs: a walk of 3000 objects took {listings} listing requests, {stats} object requests, {} in all",
        seen.len()
    );
    ensure!(listings <= 3, "{listings} listing requests for 3000 objects (at most 3)");
    ensure_eq!(stats, 0, "object requests (Stat) during the walk");
    ensure_eq!(seen.len(), listings, "requests other than listings");
    ensure_eq!(walked.len(), 3031, "entries walked (/tree, 30 directories, 3000 files)");
    ensure!(walked.iter().filter(|(_, dir, _)| !dir).all(|(_, _, size)| *size == 1), "every file has size 1");
    let mut sorted = walked.iter().map(|(p, _, _)| p.clone()).collect::<Vec<_>>();
    sorted.sort_by(|a, b| regstore_api::path::cmp_components(a, b));
    ensure!(sorted == walked.iter().map(|(p, _, _)| p.clone()).collect::<Vec<_>>(), "the walk is component-wise");

    let d = env.create(&env.params(&fake.endpoint, &root)).await?;
    d.delete("/tree").await.ctx("Delete(/tree): 3000 objects, past a listing page")?;
    ensure_clean(&d).await
}

/// Move copies, then removes the source; when that removal fails, Move fails too (upstream
/// only logs it), naming the paths.
async fn move_with_failed_delete(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let proxy = Proxy::start(fake.port).await?;
    let root = env.fresh_root();
    let d = env.create(&env.params(&proxy.endpoint, &root)).await?;
    d.put_content("/m/source", b"moved").await.ctx("PutContent")?;
    d.move_file("/m/source", "/m/dest").await.ctx("Move")?;
    ensure_eq!(d.get_content("/m/dest").await.ctx("GetContent(dest)")?, b"moved".to_vec(), "moved content");
    expect_error(d.stat("/m/source").await, ErrorKind::PathNotFound, d.name(), "Stat(source) after the move")?;

    d.put_content("/m/source", b"again").await.ctx("PutContent")?;
    proxy.set_rule(|s| if s.method == "DELETE" { Action::Reply(403, vec![]) } else { Action::Forward });
    let e = expect_error(
        d.move_file("/m/source", "/m/other").await,
        ErrorKind::Other,
        d.name(),
        "Move with a refused delete",
    )?;
    let text = e.to_string();
    ensure!(
        text.contains("/m/source") && text.contains(&proxy.endpoint) && text.contains("403"),
        "the error must name the source, the endpoint and the status: {text}"
    );
    proxy.set_rule(|_| Action::Forward);
    d.delete("/m").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// The bundled driver is granted its endpoint alone; loaded as a third party's file it gets it
/// only when the operator grants it, and the error names what is missing.
async fn refused_endpoint(env: Arc<Env>) -> Result<(), Failure> {
    let fake = env.fake()?;
    let p = env.params(&fake.endpoint, &env.fresh_root());
    let authority = fake.endpoint.trim_start_matches("http://").to_string();
    let plan = env.registry.plan("gcs", &p, &Sandbox::default()).await.ctx("plan")?;
    ensure!(plan.trusted, "a bundled driver is trusted");
    ensure_eq!(plan.grants.ctx("grants")?.hosts, vec![authority.clone()], "the bundled grant: the endpoint only");

    let wasm = regstore_bundled::get("gcs").ok_or("no bundled gcs")?.wasm;
    let dir = tempfile::tempdir().ctx("a temporary directory")?;
    let file = dir.path().join("gcsfile.wasm");
    std::fs::write(&file, wasm).ctx("writing the component file")?;
    let registry = Registry::empty();
    registry.register_file(None, &file).await.ctx("registering the gcs component file")?;
    let e = registry.create("gcsfile", &p).await.err().ok_or("a third-party gcs opened without its grant")?;
    let text = e.to_string();
    ensure_eq!(e.kind(), ErrorKind::NotGranted, "the kind of the error ({text})");
    for part in [format!("--allow-host {authority}"), "--memory-limit 4096".into(), "--deadline 900".into()] {
        ensure!(text.contains(&part), "the error must name {part}: {text}");
    }
    // Default credentials need the metadata server, by address.
    let adc = params(json!({ "bucket": BUCKET }));
    let e = registry.create("gcsfile", &adc).await.err().ok_or("opened without grants")?;
    ensure!(e.to_string().contains("--allow-host 169.254.169.254:80"), "the metadata server must be named: {e}");
    let grants = Sandbox {
        hosts: vec![authority],
        memory_limit: Some(4 << 30),
        call_deadline: Some(Duration::from_secs(900)),
        ..Sandbox::default()
    };
    let d = registry.create_with("gcsfile", &p, grants).await.ctx("with its grants")?;
    expect_error(d.stat("/missing").await, ErrorKind::PathNotFound, d.name(), "Stat")?;
    Ok(())
}

/// `regstore stat` against a loopback port where nothing listens fails fast, naming it.
async fn unreachable_endpoint(_env: Arc<Env>) -> Result<(), Failure> {
    let port = free_port().map_err(|e| format!("a free port: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let arg = format!("endpoint={endpoint}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_regstore"))
            .args(["stat", "--driver", "gcs", "--param", "bucket=b", "--param", &arg, "/docker"])
            .output()
    })
    .await
    .map_err(|e| format!("running regstore: {e}"))?
    .map_err(|e| format!("running regstore: {e}"))?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "stat against a dead endpoint must fail");
    ensure!(
        stderr.contains(&endpoint) && stderr.contains("/docker"),
        "the error must name {endpoint} and the path: {stderr}"
    );
    ensure!(!stderr.contains("panicked"), "regstore panicked: {stderr}");
    ensure!(took < Duration::from_secs(10), "took {took:?} (limit 10 s): {stderr}");
    Ok(())
}

/// Bad parameters are refused with invalid-parameter errors and distribution's texts.
async fn parameters(env: Arc<Env>) -> Result<(), Failure> {
    let base = env.params("http://127.0.0.1:1", "/p");
    let with = |k: &str, v: Option<Value>| {
        let mut p = base.clone();
        match v {
            Some(v) => p.insert(k.to_string(), v),
            None => p.remove(k),
        };
        p
    };
    let cases: Vec<(&str, Params, &str)> = vec![
        ("missing bucket", with("bucket", None), "no bucket parameter provided"),
        (
            "chunksize too small",
            with("chunksize", Some(json!(1000))),
            "chunksize 1000 must be larger than or equal to 262144",
        ),
        (
            "chunksize not a multiple",
            with("chunksize", Some(json!("300000"))),
            "chunksize should be a multiple of 262144",
        ),
        ("chunksize of another type", with("chunksize", Some(json!(true))), "invalid valud for chunksize: true"),
        ("maxconcurrency", with("maxconcurrency", Some(json!("many"))), "maxconcurrency config error"),
        (
            "credentials",
            with("credentials", Some(json!(5))),
            "the credentials were not specified in the correct format",
        ),
        ("credentials without key", with("credentials", Some(json!({"client_email": "a@b"}))), "has no private_key"),
        ("endpoint", with("endpoint", Some(json!("ftp://x"))), "invalid endpoint"),
    ];
    let mut issues = Vec::new();
    for (name, p, text) in cases {
        let result = env.registry.create("gcs", &p).await.map(|_| ());
        match expect_error(result, ErrorKind::InvalidParameter, "gcs", name) {
            Ok(e) if !e.to_string().contains(text) => issues.push(format!("{name}: the error must say {text:?}: {e}")),
            Ok(_) => {}
            Err(why) => issues.push(why),
        }
    }
    let described = env.registry.describe("gcs", &with("maxconcurrency", Some(json!(7)))).await.ctx("describe")?;
    ensure_eq!(
        described.requirements.max_concurrent_calls,
        Some(25),
        "maxconcurrency raised to distribution's minimum"
    );
    ensure!(issues.is_empty(), "{}", issues.join("; "));
    Ok(())
}

// ---- resumable uploads on gcp-storage-emulator ----

/// Parameters with 256 KiB chunks.
fn chunked(mut p: Params) -> Params {
    p.insert("chunksize".into(), json!(BLOCK));
    p
}

/// A driver with 256 KiB chunks on gcp-storage-emulator through a proxy, over a fresh root.
async fn resumable(env: &Env) -> Result<(Driver, Proxy, String), Failure> {
    let gcp = env.gcp()?;
    let proxy = Proxy::start(gcp.port).await?;
    let root = env.fresh_root();
    Ok((env.create(&chunked(env.params(&proxy.endpoint, &root))).await?, proxy, root))
}

/// Writes `content` through a new writer in 100 KiB pieces and commits; checks what was stored.
async fn commit_and_check(d: &Driver, path: &str, content: &[u8]) -> Result<(), Failure> {
    let mut w = d.writer(path, false).await.ctx("Writer")?;
    write_all(&mut *w, content, 100 * KIB).await?;
    ensure_eq!(w.size(), content.len() as u64, "Size before Commit");
    w.commit().await.ctx("Commit")?;
    w.close().await.ctx("Close after Commit")?;
    drop(w);
    let got = d.get_content(path).await.ctx("GetContent")?;
    ensure!(got == content, "the stored content differs: {} bytes, {} written", got.len(), content.len());
    Ok(())
}

/// Close and resume across driver instances; the state between is distribution's format.
async fn resume_across_instances(env: Arc<Env>) -> Result<(), Failure> {
    let gcp = env.gcp()?;
    let root = env.fresh_root();
    let instance = || async { env.create(&chunked(env.params(&gcp.endpoint, &root))).await };
    let path = "/uploads/resumed";
    let content = random_contents(3 * BLOCK + 1000);
    let (first, second) = (300 * KIB, 700 * KIB);

    let a = instance().await?;
    let mut w = a.writer(path, false).await.ctx("Writer on instance A")?;
    write_all(&mut *w, &content[..first], 100 * KIB).await?;
    w.close().await.ctx("Close on instance A")?;
    ensure_eq!(w.size(), first as u64, "Size after Close");
    drop((w, a));

    let state = env.object(gcp, &key(&root, path)).await?;
    ensure_eq!(state["contentType"], json!(UPLOAD_SESSION), "the state object's content type");
    ensure_eq!(state["metadata"]["Offset"], json!(BLOCK.to_string()), "the state's Offset");
    let session = state["metadata"]["Session-URI"].as_str().unwrap_or_default();
    ensure!(session.contains("upload_id="), "the state's Session-URI names the session: {state}");
    ensure_eq!(state["size"], json!((first - BLOCK).to_string()), "the state object holds the unsent tail");
    ensure!(env.media(gcp, &key(&root, path)).await? == content[BLOCK..first], "the tail's bytes");

    let b = instance().await?;
    let mut w = b.writer(path, true).await.ctx("Writer(append) on instance B")?;
    ensure_eq!(w.size(), first as u64, "Size on resuming on instance B");
    write_all(&mut *w, &content[first..second], 100 * KIB).await?;
    w.close().await.ctx("Close on instance B")?;
    drop((w, b));

    let c = instance().await?;
    let mut w = c.writer(path, true).await.ctx("Writer(append) on instance C")?;
    ensure_eq!(w.size(), second as u64, "Size on resuming on instance C");
    write_all(&mut *w, &content[second..], 100 * KIB).await?;
    w.commit().await.ctx("Commit on instance C")?;
    drop(w);
    let got = c.get_content(path).await.ctx("GetContent")?;
    ensure!(got == content, "the resumed content differs: {} bytes, {} written", got.len(), content.len());
    let stored = env.object(gcp, &key(&root, path)).await?;
    ensure_eq!(stored["contentType"], json!("application/octet-stream"), "the committed object's content type");
    c.delete("/uploads").await.ctx("Delete")?;
    ensure_clean(&c).await
}

/// A chunk that reached the server but whose answer was cut: the driver asks the session what it
/// holds and goes on without sending it again (gcp-storage-emulator refuses a resent chunk).
async fn status_query_after_cut_chunk(env: Arc<Env>) -> Result<(), Failure> {
    let (d, proxy, _) = resumable(&env).await?;
    let mut cut = true;
    proxy.set_rule(move |s| {
        if s.is_chunk_from(BLOCK) && std::mem::take(&mut cut) { Action::ForwardThenCut } else { Action::Forward }
    });
    let content = random_contents(3 * BLOCK + 1000);
    commit_and_check(&d, "/cut/blob", &content).await?;
    let seen = proxy.take_seen();
    let sent = seen.iter().filter(|s| s.is_chunk_from(BLOCK)).count();
    let queries = seen.iter().filter(|s| s.is_status_query()).count();
    ensure_eq!(sent, 1, "sends of the chunk whose answer was cut (the server had it)");
    ensure_eq!(queries, 1, "status queries");
    let query_at = seen.iter().position(Seen::is_status_query).unwrap_or_default();
    ensure!(seen[query_at + 1].is_chunk_from(2 * BLOCK), "after the query, the next chunk: {:?}", seen[query_at + 1]);
    d.delete("/cut").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// A chunk lost on the way: the status query says the session lacks it, and it is sent again.
async fn resent_chunk(env: Arc<Env>) -> Result<(), Failure> {
    let (d, proxy, _) = resumable(&env).await?;
    let mut lose = true;
    proxy.set_rule(
        move |s| if s.is_chunk_from(BLOCK) && std::mem::take(&mut lose) { Action::Drop } else { Action::Forward },
    );
    let content = random_contents(3 * BLOCK + 1000);
    commit_and_check(&d, "/lost/blob", &content).await?;
    let seen = proxy.take_seen();
    ensure_eq!(seen.iter().filter(|s| s.is_chunk_from(BLOCK)).count(), 2, "sends of the lost chunk");
    ensure_eq!(seen.iter().filter(|s| s.is_status_query()).count(), 1, "status queries");
    d.delete("/lost").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// A 308 without `Range` means the session holds nothing yet (real GCS omits it; upstream
/// panicked): the chunk is sent again, and no byte is lost.
async fn no_range_308(env: Arc<Env>) -> Result<(), Failure> {
    let (d, proxy, _) = resumable(&env).await?;
    let mut once = true;
    proxy.set_rule(move |s| {
        if s.is_chunk_from(0) && std::mem::take(&mut once) { Action::Reply(308, vec![]) } else { Action::Forward }
    });
    let content = random_contents(2 * BLOCK + 1000);
    commit_and_check(&d, "/norange/blob", &content).await?;
    let seen = proxy.take_seen();
    ensure_eq!(seen.iter().filter(|s| s.is_chunk_from(0)).count(), 2, "sends of the first chunk");
    ensure_eq!(seen.iter().filter(|s| s.is_status_query()).count(), 0, "status queries (a 308 is an answer)");
    d.delete("/norange").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// Content that ends on a chunk boundary: every chunk goes during Write, and Commit finishes
/// the upload with an empty final chunk, `bytes */TOTAL`.
async fn empty_final_chunk(env: Arc<Env>) -> Result<(), Failure> {
    let (d, proxy, _) = resumable(&env).await?;
    let content = random_contents(2 * BLOCK);
    commit_and_check(&d, "/boundary/blob", &content).await?;
    let seen = proxy.take_seen();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.is_session_put()).collect();
    let ranges: Vec<(&str, usize)> = puts.iter().map(|s| (s.content_range(), s.body_len)).collect();
    let expected = vec![("bytes 0-262143/*", BLOCK), ("bytes 262144-524287/*", BLOCK), ("bytes */524288", 0)];
    ensure_eq!(ranges, expected, "the session's requests");
    d.delete("/boundary").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// A state object whose session no longer exists: resuming and committing fails, naming the
/// path, and nothing is published.
async fn dead_session(env: Arc<Env>) -> Result<(), Failure> {
    let gcp = env.gcp()?;
    let (d, _proxy, root) = resumable(&env).await?;
    let path = "/dead/blob";
    let name = key(&root, path);
    let dead = format!(
        "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name={}&upload_id=gone",
        gcp.endpoint,
        encode(&name)
    );
    put_state(&env, gcp, &name, &dead, BLOCK as u64, b"tail").await?;
    let mut w = d.writer(path, true).await.ctx("Writer(append)")?;
    ensure_eq!(w.size(), BLOCK as u64 + 4, "Size on resuming");
    // Less than a chunk: the session is first needed by Commit.
    write_all(&mut *w, &random_contents(1000), 1000).await?;
    let result = w.commit().await;
    drop(w);
    let e = expect_error(result, ErrorKind::Other, "", "Commit into a dead session")?;
    let text = e.to_string();
    ensure!(
        text.contains(path) && text.contains("gone"),
        "the error must name the path and say the session is gone: {text}"
    );
    expect_error(d.stat(path).await, ErrorKind::PathNotFound, d.name(), "Stat after the failed commit")?;
    d.delete("/dead").await.ctx("Delete")?;
    ensure_clean(&d).await
}

// ---- distribution's format, both ways ----

/// Stores a state object as distribution's gcs driver does: the tail as the object, content
/// type `application/x-docker-upload-session`, metadata `Session-URI` and `Offset` (the Go
/// client's multipart upload).
async fn put_state(
    env: &Env,
    emulator: &Emulator,
    name: &str,
    session: &str,
    offset: u64,
    tail: &[u8],
) -> Result<(), Failure> {
    let resource = json!({
        "name": name,
        "contentType": UPLOAD_SESSION,
        "metadata": { "Session-URI": session, "Offset": offset.to_string() },
    });
    let mut body = format!(
        "--b0undary\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n--b0undary\r\nContent-Type: {UPLOAD_SESSION}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(tail);
    body.extend_from_slice(b"\r\n--b0undary--\r\n");
    let url = format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=multipart", emulator.endpoint);
    let request = env.http.post(&url).header("content-type", "multipart/related; boundary=b0undary").body(body);
    let (status, _, answer) = env.call(request).await?;
    ensure!(status == 200, "storing the state object: {status} {}", String::from_utf8_lossy(&answer));
    Ok(())
}

/// An upload distribution's driver left in progress (a session holding one 256 KiB chunk, and
/// a tail in the state object) is resumed and committed by regstore.
async fn resume_distributions_upload(env: Arc<Env>, on_gcp: bool) -> Result<(), Failure> {
    let emulator = if on_gcp { env.gcp()? } else { env.fake()? };
    let root = env.fresh_root();
    let path = "/docker/registry/v2/repositories/x/_uploads/u1/data";
    let name = key(&root, path);
    let content = random_contents(BLOCK + 1000 + 5000);

    // distribution: start the session, send one chunk, Close.
    let start =
        format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name={}", emulator.endpoint, encode(&name));
    let request =
        env.http.post(&start).header("x-upload-content-type", "application/octet-stream").header("content-length", "0");
    let (status, headers, _) = env.call(request).await?;
    ensure_eq!(status, 200, "starting the session");
    let session = headers.get("location").and_then(|l| l.to_str().ok()).ok_or("no Location")?.to_string();
    let chunk = env
        .http
        .put(&session)
        .header("content-range", format!("bytes 0-{}/*", BLOCK - 1))
        .header("content-type", "application/octet-stream")
        .body(content[..BLOCK].to_vec());
    let (status, _, _) = env.call(chunk).await?;
    ensure_eq!(status, 308, "the first chunk");
    put_state(&env, emulator, &name, &session, BLOCK as u64, &content[BLOCK..BLOCK + 1000]).await?;

    // regstore: resume, write the rest, commit.
    let d = env.create(&env.params(&emulator.endpoint, &root)).await?;
    expect_error(d.stat(path).await, ErrorKind::PathNotFound, d.name(), "Stat of distribution's upload in progress")?;
    let mut w = d.writer(path, true).await.ctx("Writer(append) on distribution's upload")?;
    ensure_eq!(w.size(), (BLOCK + 1000) as u64, "Size straight after resuming");
    write_all(&mut *w, &content[BLOCK + 1000..], 4096).await?;
    w.commit().await.ctx("Commit")?;
    drop(w);
    let got = d.get_content(path).await.ctx("GetContent")?;
    ensure!(got == content, "the committed content differs: {} bytes, {} written", got.len(), content.len());
    d.delete("/docker").await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// An upload regstore closed is left as distribution's driver expects it, and finishing it the
/// way that driver does (the tail as the final chunk to the stored session) gives the content.
async fn distribution_resumes_regstores_upload(env: Arc<Env>) -> Result<(), Failure> {
    let gcp = env.gcp()?;
    let root = env.fresh_root();
    let mut p = env.params(&gcp.endpoint, &root);
    p.insert("chunksize".into(), json!(BLOCK));
    let d = env.create(&p).await?;
    let path = "/docker/registry/v2/repositories/x/_uploads/u2/data";
    let name = key(&root, path);
    let content = random_contents(2 * BLOCK + 777);
    let mut w = d.writer(path, false).await.ctx("Writer")?;
    write_all(&mut *w, &content, 64 * KIB).await?;
    w.close().await.ctx("Close")?;
    drop(w);

    // distribution: read the state, send the tail with the total, done.
    let state = env.object(gcp, &name).await?;
    ensure_eq!(state["contentType"], json!(UPLOAD_SESSION), "the state's content type");
    let offset: usize =
        state["metadata"]["Offset"].as_str().and_then(|o| o.parse().ok()).ok_or(format!("no Offset: {state}"))?;
    let session = state["metadata"]["Session-URI"].as_str().ok_or(format!("no Session-URI: {state}"))?.to_string();
    ensure_eq!(offset, 2 * BLOCK, "the state's Offset");
    let tail = env.media(gcp, &name).await?;
    ensure!(tail == content[offset..], "the state object holds the unsent tail");
    let total = content.len();
    let last = env
        .http
        .put(&session)
        .header("content-range", format!("bytes {offset}-{}/{total}", total - 1))
        .header("content-type", "application/octet-stream")
        .body(tail);
    let (status, _, body) = env.call(last).await?;
    ensure!(status == 200 || status == 201, "the final chunk: {status} {}", String::from_utf8_lossy(&body));
    ensure!(d.get_content(path).await.ctx("GetContent")? == content, "the content distribution finished");
    d.delete("/docker").await.ctx("Delete")?;
    ensure_clean(&d).await
}

// ---- the harness ----

type GcsTest = fn(Arc<Env>) -> BoxFuture<'static, Result<(), Failure>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Fake,
    Gcp,
}

fn specific() -> Vec<(&'static str, Needs, GcsTest)> {
    vec![
        ("TestGcsRedirectURL", Needs::Fake, |e| Box::pin(redirect_url(e))),
        ("TestAnonymousGivesNoRedirects", Needs::Fake, |e| Box::pin(anonymous_gives_no_redirects(e))),
        ("TestTokens", Needs::Fake, |e| Box::pin(tokens(e))),
        ("TestKeyfile", Needs::Fake, |e| Box::pin(keyfile(e))),
        ("TestUploadsInProgressAreHidden", Needs::Fake, |e| Box::pin(uploads_in_progress_are_hidden(e))),
        ("TestWalkRequestCount", Needs::Fake, |e| Box::pin(walk_request_count(e))),
        ("TestMoveWithFailedDelete", Needs::Fake, |e| Box::pin(move_with_failed_delete(e))),
        ("TestRefusedEndpoint", Needs::Fake, |e| Box::pin(refused_endpoint(e))),
        ("TestUnreachableEndpoint", Needs::Fake, |e| Box::pin(unreachable_endpoint(e))),
        ("TestParams", Needs::Fake, |e| Box::pin(parameters(e))),
        ("TestResumeAcrossInstances", Needs::Gcp, |e| Box::pin(resume_across_instances(e))),
        ("TestStatusQueryAfterCutChunk", Needs::Gcp, |e| Box::pin(status_query_after_cut_chunk(e))),
        ("TestResentChunk", Needs::Gcp, |e| Box::pin(resent_chunk(e))),
        ("Test308WithoutRange", Needs::Gcp, |e| Box::pin(no_range_308(e))),
        ("TestEmptyFinalChunk", Needs::Gcp, |e| Box::pin(empty_final_chunk(e))),
        ("TestDeadSession", Needs::Gcp, |e| Box::pin(dead_session(e))),
        ("TestResumeDistributionsUploadFakeGcs", Needs::Fake, |e| Box::pin(resume_distributions_upload(e, false))),
        ("TestResumeDistributionsUploadGcpEmulator", Needs::Gcp, |e| Box::pin(resume_distributions_upload(e, true))),
        ("TestDistributionResumesRegstoresUpload", Needs::Gcp, |e| Box::pin(distribution_resumes_regstores_upload(e))),
        ("BenchAgainstNative", Needs::Fake, |e| Box::pin(bench_against_native(e))),
    ]
}

/// The gcs driver's own code built natively (`regstore_native`), anonymous, each over a fresh
/// root of fake-gcs-server.
fn native_factory(env: Arc<Env>) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            let endpoint = env.fake.as_ref().map_err(|e| Error::other("gcs", e))?.endpoint.clone();
            regstore_native::open_boxed("gcs", &env.params(&endpoint, &env.fresh_root()))
        })
    })
}

async fn bench_against_native(env: Arc<Env>) -> Result<(), Failure> {
    bench::bench_against_native("gcs", factory(env.clone(), false, false), native_factory(env)).await
}

type Shared = Arc<OnceLock<Arc<Env>>>;

fn env_of(shared: &Shared) -> Result<Arc<Env>, Failed> {
    shared.get().cloned().ok_or_else(|| "the emulators were not started".into())
}

/// A fresh driver over a fresh root of fake-gcs-server for each conformance test, anonymous
/// or (`keyed`) with the test key.
fn factory(env: Arc<Env>, keyed: bool, faulty: bool) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            let mut endpoint = env.fake.as_ref().map_err(|e| Error::other("gcs", e))?.endpoint.clone();
            if faulty && let Some((proxy, _)) = &env.faulty {
                endpoint = proxy.endpoint.clone();
            }
            let root = env.fresh_root();
            let p = if keyed { env.keyed_params(&endpoint, &root) } else { env.params(&endpoint, &root) };
            Ok(Arc::new(env.registry.create("gcs", &p).await?) as Arc<dyn StorageDriver>)
        })
    })
}

fn capabilities(runtime: &tokio::runtime::Runtime, keyed: bool) -> Capabilities {
    let mut p = params(json!({ "bucket": "b", "endpoint": "http://127.0.0.1:1" }));
    if keyed {
        p.insert("credentials".into(), foreign_key_fields("http://127.0.0.1:1/token").expect("the test key"));
    }
    runtime.block_on(Registry::new().describe("gcs", &p)).expect("the gcs driver describes itself").capabilities
}

/// Whether the trials of an emulator are reported as ignored (`REGSTORE_SKIP_EMULATORS=1`).
#[derive(Clone, Copy, Default)]
struct Ignored {
    fake: bool,
    gcp: bool,
}

fn trials(
    shared: &Shared,
    runtime: &Arc<tokio::runtime::Runtime>,
    config: &Arc<Config>,
    ignored: Ignored,
) -> Vec<Trial> {
    let mut trials = Vec::new();
    // Anonymous, as emulators are reached; then the redirect tests with a key.
    // And anonymous behind a proxy that gives 10 % of requests a fault.
    for (prefix, keyed, faulty) in [("gcs", false, false), ("gcs-keyed", true, false), ("gcs-faults", false, true)] {
        let caps = capabilities(runtime, keyed);
        for test in regstore_testsuite::all() {
            if keyed && !(test.name.contains("Redirect") || test.name.starts_with("TestD10")) {
                continue;
            }
            let not_declared = test.skip_reason(&caps).is_some();
            let (shared, runtime, config) = (shared.clone(), runtime.clone(), config.clone());
            trials.push(
                Trial::test(format!("{prefix}::{}", test.name), move || {
                    let factory = factory(env_of(&shared)?, keyed, faulty);
                    match runtime.block_on(regstore_testsuite::run_test(&test, &factory, config)) {
                        Ok(Outcome::Passed(_)) => Ok(()),
                        Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped where it must run: {why}"))),
                        Err(why) => Err(Failed::from(why)),
                    }
                })
                .with_ignored_flag(ignored.fake || not_declared),
            );
        }
    }
    for (name, needs, test) in specific() {
        let (shared, runtime) = (shared.clone(), runtime.clone());
        let ignore = match needs {
            Needs::Fake => ignored.fake,
            Needs::Gcp => ignored.gcp,
        };
        trials.push(
            Trial::test(format!("gcs::{name}"), move || {
                let env = env_of(&shared)?;
                runtime.block_on(test(env)).map_err(Failed::from)
            })
            .with_ignored_flag(ignore),
        );
    }
    trials
}

/// Starts one emulator and creates the suite's bucket; `Err` carries the policy's verdict.
fn start_one<E>(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    start: impl FnOnce() -> Result<E, String>,
    describe: impl FnOnce(&E) -> (String, u16, String),
    bucket: impl FnOnce(&E) -> BoxFuture<'_, Result<(), String>>,
) -> (Option<E>, Result<Emulator, String>, bool) {
    let started = start().and_then(|e| {
        runtime.block_on(bucket(&e))?;
        Ok(e)
    });
    match started {
        Ok(e) => {
            let (endpoint, port, line) = describe(&e);
            eprintln!("gcs: {line}");
            (Some(e), Ok(Emulator { endpoint, port }), false)
        }
        Err(error) => match require_emulator(name, &error) {
            Unavailable::Fail(reason) => (None, Err(reason), false),
            Unavailable::Ignore(reason) => (None, Err(reason), true),
        },
    }
}

fn main() {
    let args = Arguments::from_args();
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap());
    let config = Arc::new(Config { large_stream_size: LARGE_STREAM, ..Config::default() });
    let shared: Shared = Arc::default();
    let mut all = trials(&shared, &runtime, &config, Ignored::default());
    let mut names: Vec<&str> = all.iter().map(|t| t.name()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        panic!("two trials are named {}", w[0]);
    }
    // The emulators start only when a trial will run.
    let wanted = !args.list && all.iter().any(|t| !args.is_filtered_out(t));
    let (mut fake, mut gcp) = (None, None);
    if wanted {
        let (f, fake_env, ignore_fake) = start_one(
            &runtime,
            "fake-gcs-server (GCS)",
            FakeGcs::start,
            |e| {
                let line = format!(
                    "fake-gcs-server (wrapper {FAKE_GCS_WRAPPER_VERSION}) ready on {} in {:.2} s (pid {}, log {})",
                    e.endpoint,
                    e.ready_in.as_secs_f64(),
                    e.pid(),
                    e.log().display()
                );
                (e.endpoint.clone(), e.port, line)
            },
            |e| Box::pin(e.create_bucket(BUCKET)),
        );
        let (g, gcp_env, ignore_gcp) = start_one(
            &runtime,
            "gcp-storage-emulator (GCS)",
            GcpStorageEmulator::start,
            |e| {
                let line = format!(
                    "gcp-storage-emulator {GCP_STORAGE_EMULATOR_VERSION} ready on {} in {:.2} s (pid {}, log {})",
                    e.endpoint,
                    e.ready_in.as_secs_f64(),
                    e.pid(),
                    e.log().display()
                );
                (e.endpoint.clone(), e.port, line)
            },
            |e| Box::pin(e.create_bucket(BUCKET)),
        );
        (fake, gcp) = (f, g);
        let tokens = runtime.block_on(TokenServer::start()).expect("a token endpoint on loopback");
        // Made once, before the trials: an RSA key takes seconds in a debug build.
        let started = std::time::Instant::now();
        let _ = test_key();
        eprintln!("gcs: test service-account key made in {:.1} s", started.elapsed().as_secs_f64());
        let http = regstore_testsuite::util::http_client(&[]).expect("an HTTP client");
        let faulty = fake_env.as_ref().ok().map(|fake| {
            let given = Arc::new(AtomicU64::new(0));
            let faults = faults::random_faults(10, 5, given.clone());
            // Not the chunks of resumable uploads: after a lost chunk the driver asks the session
            // what it holds, and fake-gcs-server answers that question by finishing the upload
            // (200), where GCS answers 308. Lost chunks are tried against gcp-storage-emulator,
            // which answers as GCS does (TestStatusQueryAfterCutChunk, TestResentChunk).
            let rule: faults::Rule = Arc::new(move |h: &faults::Head| {
                if h.method == "PUT" && h.target.contains("upload_id=") { faults::Action::Forward } else { faults(h) }
            });
            let proxy = runtime.block_on(faults::Proxy::start(([127, 0, 0, 1], fake.port).into(), rule));
            (proxy.expect("a proxy on loopback"), given)
        });
        let env = Env {
            fake: fake_env,
            faulty,
            gcp: gcp_env,
            tokens,
            registry: Registry::new(),
            http,
            next_root: AtomicU64::new(0),
        };
        let _ = shared.set(Arc::new(env));
        println!("gcs: TestWriteReadLargeStreams uses {} MiB against fake-gcs-server", LARGE_STREAM >> 20);
        if ignore_fake || ignore_gcp {
            all = trials(&shared, &runtime, &config, Ignored { fake: ignore_fake, gcp: ignore_gcp });
        }
    }
    let conclusion = libtest_mimic::run(&args, all);
    if let Some((proxy, given)) = shared.get().and_then(|env| env.faulty.as_ref())
        && proxy.requests() > 0
    {
        let (faults, requests) = (given.load(Ordering::Relaxed), proxy.requests());
        println!("gcs: the gcs-faults run's proxy gave {faults} faults in {requests} requests");
    }
    // `exit` skips destructors: stop the emulators first.
    if let Some(f) = fake {
        let (port, pid) = (f.port, f.pid());
        println!("gcs: fake-gcs-server on 127.0.0.1:{port} (pid {pid}) stopped in {:.2} s", f.stop().as_secs_f64());
    }
    if let Some(g) = gcp {
        let (port, pid) = (g.port, g.pid());
        println!(
            "gcs: gcp-storage-emulator on 127.0.0.1:{port} (pid {pid}) stopped in {:.2} s",
            g.stop().as_secs_f64()
        );
    }
    conclusion.exit();
}
