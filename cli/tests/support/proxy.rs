//! A plain-HTTP proxy in front of a real emulator, for fault injection and request counting:
//! each connection carries one request, which a rule may forward, answer with the upstream's
//! response cut off (after the upstream has applied the request), or leave unanswered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// Forward it, let the upstream answer, then close the client's connection before the
    /// answer: the request took effect, but the client never hears so.
    CutAfterApplying,
    /// Accept it and never answer.
    Silent,
    /// Close the connection without forwarding the request: it never took effect.
    Close,
    /// Answer with this status and no body, without forwarding: as a server that is overloaded
    /// (503) or failing (500) before it does anything.
    Reply(u16),
    /// Forward it and send the head and half of the upstream's body, then close: the request took
    /// effect and the client hears part of the answer.
    CutBody,
    /// Hold it this long, then forward it: a slow server.
    #[allow(dead_code)] // Not every test binary holds requests.
    Delay(std::time::Duration),
}

/// A rule that gives a fault to about `percent` % of requests, spread evenly over close, 500,
/// 503, cut after applying and cut mid-body, from a seeded sequence so that a run can be
/// repeated; `counts` tallies the faults given.
#[allow(dead_code)] // Not every test binary injects faults.
pub fn random_faults(percent: u64, seed: u64, counts: Arc<AtomicU64>) -> Rule {
    const FAULTS: [Action; 5] =
        [Action::Close, Action::Reply(500), Action::Reply(503), Action::CutAfterApplying, Action::CutBody];
    let next = Arc::new(AtomicU64::new(seed));
    Arc::new(move |_: &Head| {
        // splitmix64 over a counter: independent draws without a random-number crate.
        let mut z = next.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if z % 100 >= percent {
            return Action::Forward;
        }
        counts.fetch_add(1, Ordering::Relaxed);
        FAULTS[((z / 100) % FAULTS.len() as u64) as usize]
    })
}

/// The request line and headers of a request, for rules and counts.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub type Rule = Arc<dyn Fn(&Head) -> Action + Send + Sync>;

pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Head>>>,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port, in the current runtime.
    pub async fn start(upstream: SocketAddr, rule: Rule) -> Result<Proxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("binding the proxy: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let (seen2, requests2) = (seen.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (rule, seen, requests) = (rule.clone(), seen2.clone(), requests2.clone());
                tokio::spawn(async move {
                    let _ = serve(client, upstream, rule, seen, requests).await;
                });
            }
        });
        Ok(Proxy { endpoint: format!("http://127.0.0.1:{port}"), seen, requests, task })
    }

    /// Requests received so far.
    #[allow(dead_code)] // Not every test binary counts.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The heads of the requests received so far.
    pub fn seen(&self) -> Vec<Head> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 message head (up to the blank line) and what followed it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(raw: &[u8]) -> Head {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Head { method, target, headers }
}

/// Reads the body that `head` announces, as it was sent (a chunked body with its framing).
async fn read_body(stream: &mut TcpStream, head: &Head, mut have: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if head.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        return read_chunked(stream, have).await;
    }
    let length: usize = head.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    while have.len() < length {
        let mut chunk = vec![0u8; (length - have.len()).min(1 << 20)];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        have.extend_from_slice(&chunk[..n]);
    }
    Ok(have)
}

/// A chunked body up to and including its last (empty) chunk and the blank line after it.
async fn read_chunked(stream: &mut TcpStream, mut have: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut at = 0;
    loop {
        // The chunk-size line.
        while !have[at..].windows(2).any(|w| w == b"\r\n") {
            if !read_more(stream, &mut have).await? {
                return Ok(have);
            }
        }
        let line_end = at + have[at..].windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&have[at..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        // The data and its CRLF; after the last chunk, the (empty) trailer's CRLF.
        let end = line_end + 2 + size + 2;
        while have.len() < end {
            if !read_more(stream, &mut have).await? {
                return Ok(have);
            }
        }
        at = end;
        if size == 0 {
            return Ok(have);
        }
    }
}

async fn read_more(stream: &mut TcpStream, have: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 64 << 10];
    let n = stream.read(&mut chunk).await?;
    have.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    rule: Rule,
    seen: Arc<Mutex<Vec<Head>>>,
    requests: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let Some((raw, rest)) = read_head(&mut client).await? else { return Ok(()) };
    let head = parse_head(&raw);
    let body = read_body(&mut client, &head, rest).await?;
    requests.fetch_add(1, Ordering::SeqCst);
    seen.lock().unwrap().push(head.clone());
    let action = rule(&head);
    match action {
        Action::Silent => {
            // Hold the connection open without a word until the client gives up.
            let mut sink = [0u8; 1024];
            while client.read(&mut sink).await? > 0 {}
            return Ok(());
        }
        Action::Close => return Ok(()),
        Action::Reply(status) => {
            let reason = if status == 503 { "Service Unavailable" } else { "Internal Server Error" };
            let answer = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Action::Delay(pause) => tokio::time::sleep(pause).await,
        Action::Forward | Action::CutAfterApplying | Action::CutBody => {}
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&raw).await?;
    server.write_all(&body).await?;
    let Some((response_raw, response_rest)) = read_head(&mut server).await? else { return Ok(()) };
    let response_head = parse_head(&response_raw);
    let no_body =
        head.method == "HEAD" || response_head.target.starts_with("204") || response_head.target.starts_with("304");
    let response_body =
        if no_body { response_rest } else { read_body(&mut server, &response_head, response_rest).await? };
    if action == Action::CutAfterApplying {
        // The upstream has answered (so applied the request); the client gets nothing.
        drop(client);
        return Ok(());
    }
    client.write_all(&response_raw).await?;
    if action == Action::CutBody {
        // Half the body, then the connection is dropped (an answer without a body goes
        // through whole).
        client.write_all(&response_body[..response_body.len() / 2]).await?;
        return Ok(());
    }
    client.write_all(&response_body).await?;
    client.shutdown().await
}
