//! A blocking HTTP client for drivers whose every call is synchronous to the host.
//!
//! Inside a component, requests go out through the host's `wasi:http` ([`wasi`]); built natively
//! (the benchmarks' baseline), through ureq ([`native`]). Both report the same [`Failure`]s in
//! the same words, naming the endpoint and the service.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use regstore_sdk::Params;

use crate::retry::Retry;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
mod wasi;

#[cfg(not(target_arch = "wasm32"))]
use native as transport;
#[cfg(target_arch = "wasm32")]
use wasi as transport;

pub use transport::BodyStream;

/// Per-request time limits, enforced by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the connection (TCP and TLS).
    pub connect: Duration,
    /// From the request's end to the response's first byte.
    pub first_byte: Duration,
    /// Between two chunks of the response body: a stalled transfer ends after this.
    pub idle: Duration,
}

impl Default for Timeouts {
    /// An endpoint that never answers fails a call within about 30 s, retries included.
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(5), first_byte: Duration::from_secs(20), idle: Duration::from_secs(20) }
    }
}

impl Timeouts {
    /// The parameter keys that set them, with what each sets.
    pub const PARAMETERS: [&str; 3] = ["connecttimeout", "firstbytetimeout", "idletimeout"];

    /// The defaults, with what `connecttimeout`, `firstbytetimeout` and `idletimeout` set: each
    /// a Go duration (`"30s"`, `"1m"`) or a number of seconds, above zero and at most an hour.
    pub fn from_params(params: &Params) -> regstore_sdk::Result<Timeouts> {
        let mut timeouts = Timeouts::default();
        for (key, slot) in
            Timeouts::PARAMETERS.into_iter().zip([&mut timeouts.connect, &mut timeouts.first_byte, &mut timeouts.idle])
        {
            let bad = |v: &serde_json::Value| {
                regstore_sdk::Error::invalid_parameter(format!(
                    "the {key} parameter must be a duration such as \"30s\" or a number of seconds, \
                     above zero and at most 1h (got {v})"
                ))
            };
            let value = match params.get(key) {
                None => continue,
                Some(v @ serde_json::Value::Number(n)) => {
                    n.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()).ok_or_else(|| bad(v))?
                }
                Some(v @ serde_json::Value::String(s)) => crate::time::parse_go_duration(s)
                    .ok()
                    .or_else(|| s.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()))
                    .ok_or_else(|| bad(v))?,
                Some(v) => return Err(bad(v)),
            };
            if value.is_zero() || value > Duration::from_secs(3600) {
                return Err(bad(params.get(key).unwrap_or(&serde_json::Value::Null)));
            }
            *slot = value;
        }
        Ok(timeouts)
    }
}

/// One request; the body is cheap to clone, so a retry resends it without a copy.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// An absolute `http` or `https` URL, query included.
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request { method, url: url.into(), headers: HeaderMap::new(), body: Bytes::new() }
    }

    /// Adds a header; a name or value HTTP cannot carry is a driver bug, reported as an error
    /// when the request is sent.
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value.as_ref())) {
            self.headers.append(name, value);
        } else {
            self.headers.append(HeaderName::from_static("x-regstore-invalid-header"), HeaderValue::from_static("1"));
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The value of a header, if it is set and is text.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response whose body has been read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no (complete) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The host refused it: the authority is not granted, or it resolves to an internal address.
    Refused(String),
    /// No connection: refused, unreachable, DNS, or the connect timeout.
    Unreachable(String),
    /// The endpoint's TLS certificate is not trusted, or TLS failed: trying again will not help.
    Tls(String),
    /// Sent, but the response did not start within the first-byte timeout.
    NoAnswer(String),
    /// The response started, then stopped or stalled: some of the body may have arrived.
    Cut(String),
    /// A request this client cannot send (a bad URL or header): a bug, never retried.
    Invalid(String),
}

impl Failure {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Failure::Refused(_) | Failure::Tls(_) | Failure::Invalid(_))
    }

    /// Whether the server may have received and applied the request.
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Failure::NoAnswer(_) | Failure::Cut(_))
    }

    pub fn cause(&self) -> &str {
        match self {
            Failure::Refused(c)
            | Failure::Unreachable(c)
            | Failure::Tls(c)
            | Failure::NoAnswer(c)
            | Failure::Cut(c)
            | Failure::Invalid(c) => c,
        }
    }
}

/// An HTTP client for one service endpoint: messages name the service and the endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    /// What the operator calls the service: "Azure Blob Storage", "Google Cloud Storage".
    service: String,
    /// `scheme://authority` of the endpoint, as messages show it.
    endpoint: String,
    pub timeouts: Timeouts,
    pub retry: Retry,
}

impl Client {
    pub fn new(service: impl Into<String>, endpoint_url: &str) -> Self {
        Client {
            service: service.into(),
            endpoint: origin(endpoint_url),
            timeouts: Timeouts::default(),
            retry: Retry::default(),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// `scheme://authority` of the endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `request` once and reads the whole response.
    pub fn send(&self, request: &Request) -> Result<Response, Failure> {
        let (response, mut body) = self.open(request)?;
        let mut data = Vec::new();
        loop {
            match body.read(1 << 20) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(f) => return Err(f),
            }
        }
        Ok(Response { status: response.status, headers: response.headers, body: data.into() })
    }

    /// Sends `request` once and returns the status and headers, with the body left to stream.
    pub fn open(&self, request: &Request) -> Result<(Head, BodyStream), Failure> {
        check(request)?;
        transport::open(self, request)
    }

    /// As [`Client::exchange`], for an async caller that wants several requests in flight:
    /// instead of blocking, it waits for the network through `ready` (which resolves when the
    /// pollable it is given is ready) and between tries through `pause`.
    #[cfg(target_arch = "wasm32")]
    pub async fn exchange_async<R, P>(
        &self,
        idempotence: crate::retry::Idempotence,
        mut build: impl FnMut() -> Request,
        replayed: impl FnMut(),
        ready: impl Fn(wasip2::io::poll::Pollable) -> R,
        pause: impl Fn(Duration) -> P,
    ) -> Result<Response, crate::retry::Failed>
    where
        R: Future<Output = ()>,
        P: Future<Output = ()>,
    {
        let ready = &ready;
        let attempt = |request: Request| async move {
            let response = self.send_async(&request, ready).await?;
            Ok((Head { status: response.status, headers: response.headers.clone() }, response))
        };
        let build = || Ok::<_, std::convert::Infallible>(build());
        self.retried_with(idempotence, build, replayed, attempt, pause).await.map_err(crate::retry::Stop::into_failed)
    }

    /// One try of [`Client::exchange_async`]: the request sent, the whole answer read.
    #[cfg(target_arch = "wasm32")]
    async fn send_async<R: Future<Output = ()>>(
        &self,
        request: &Request,
        ready: &impl Fn(wasip2::io::poll::Pollable) -> R,
    ) -> Result<Response, Failure> {
        check(request)?;
        let pending = wasi::start(self, request)?;
        ready(pending.pollable()).await;
        let (head, mut body) = pending.finish(self)?;
        let mut data = Vec::new();
        loop {
            match body.read_available(1 << 20, &mut data)? {
                wasi::Available::More => {}
                wasi::Available::Wait => {
                    if let Some(pollable) = body.pollable() {
                        ready(pollable).await;
                    }
                }
                wasi::Available::End => {
                    // A failure after some bytes ends the body first and is reported next.
                    body.read_available(0, &mut data)?;
                    break;
                }
            }
        }
        Ok(Response { status: head.status, headers: head.headers, body: data.into() })
    }

    /// What a transport's fault means, for the operator.
    fn failure(&self, fault: &Fault, after_first_byte: bool) -> Failure {
        describe(fault, &self.endpoint, &self.service, self.timeouts, after_first_byte)
    }
}

/// The status line and headers of a response.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What went wrong below HTTP, in terms both transports can name.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// The host's sandbox refused the authority (only a component has one).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    Denied,
    /// The name resolves to an internal address the grant does not name.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    InternalAddress,
    ConnectionRefused,
    ConnectTimeout,
    /// The name does not resolve (the detail says how).
    Dns(String),
    /// No route, or the destination is unavailable.
    Unavailable(String),
    /// The certificate is not trusted.
    Certificate,
    /// TLS failed otherwise.
    Tls(String),
    /// Nothing arrived within the first-byte (or, after it, the idle) timeout.
    ReadTimeout,
    /// The request is not valid HTTP.
    InvalidRequest(String),
    /// Anything else, in the transport's words.
    Other(String),
}

/// The operator's words for a transport's fault.
fn describe(fault: &Fault, endpoint: &str, service: &str, t: Timeouts, after_first_byte: bool) -> Failure {
    let service = if service.is_empty() { String::new() } else { format!("{service} at ") };
    match fault {
        Fault::Denied => Failure::Refused(format!(
            "the host refused the request to {endpoint}: it is not an endpoint this driver is granted"
        )),
        Fault::InternalAddress => Failure::Refused(format!(
            "the host refused the request to {endpoint}: the name resolves to an internal address"
        )),
        Fault::ConnectionRefused => {
            Failure::Unreachable(format!("cannot reach {service}{endpoint}: the connection was refused"))
        }
        Fault::ConnectTimeout => Failure::Unreachable(format!(
            "cannot reach {service}{endpoint}: no connection within {}",
            seconds(t.connect)
        )),
        Fault::Dns(detail) => {
            Failure::Unreachable(format!("cannot reach {service}{endpoint}: its name does not resolve ({detail})"))
        }
        Fault::Unavailable(detail) => Failure::Unreachable(format!("cannot reach {service}{endpoint}: {detail}")),
        Fault::Certificate => Failure::Tls(format!(
            "cannot reach {service}{endpoint}: its TLS certificate is not trusted \
             (give the host its CA, e.g. --ca-file)"
        )),
        Fault::Tls(detail) => Failure::Tls(format!("cannot reach {service}{endpoint}: TLS failed ({detail})")),
        Fault::ReadTimeout if after_first_byte => {
            Failure::Cut(format!("{endpoint} sent nothing for {}", seconds(t.idle)))
        }
        Fault::ReadTimeout => {
            Failure::NoAnswer(format!("{service}{endpoint} did not answer within {}", seconds(t.first_byte)))
        }
        Fault::InvalidRequest(detail) => {
            Failure::Invalid(format!("the request to {endpoint} is not valid HTTP ({detail})"))
        }
        Fault::Other(text) => Failure::Cut(format!("{service}{endpoint}: {text}")),
    }
}

/// A response body that stopped after `received` bytes.
fn body_cut(endpoint: &str, received: u64, cause: &str) -> Failure {
    Failure::Cut(format!("the response from {endpoint} stopped after {received} bytes: {cause}"))
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Refuses a request that [`Request::header`] marked as carrying a header HTTP cannot carry.
fn check(request: &Request) -> Result<(), Failure> {
    if request.headers.contains_key("x-regstore-invalid-header") {
        return Err(Failure::Invalid(format!("{} {}: a header cannot be sent over HTTP", request.method, request.url)));
    }
    Ok(())
}

/// `scheme://authority` of a URL, for messages.
pub fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", &rest[..rest.find(['/', '?']).unwrap_or(rest.len())]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_from_parameters() {
        let params = |json: &str| Params::parse(json).unwrap();
        assert_eq!(Timeouts::from_params(&params("{}")).unwrap(), Timeouts::default());
        let t =
            Timeouts::from_params(&params(r#"{"connecttimeout": "2s", "firstbytetimeout": 45, "idletimeout": "1m"}"#))
                .unwrap();
        assert_eq!(
            (t.connect, t.first_byte, t.idle),
            (Duration::from_secs(2), Duration::from_secs(45), Duration::from_secs(60))
        );
        assert_eq!(
            Timeouts::from_params(&params(r#"{"idletimeout": "2.5"}"#)).unwrap().idle,
            Duration::from_millis(2500)
        );
        for bad in [
            r#"{"connecttimeout": "0s"}"#,
            r#"{"idletimeout": "2h"}"#,
            r#"{"firstbytetimeout": -1}"#,
            r#"{"idletimeout": "soon"}"#,
            r#"{"idletimeout": true}"#,
        ] {
            let e = Timeouts::from_params(&params(bad)).unwrap_err().to_string();
            assert!(e.contains("must be a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn origins() {
        assert_eq!(origin("https://127.0.0.1:10000/devstoreaccount1/c?x=1"), "https://127.0.0.1:10000");
        assert_eq!(origin("http://h?x"), "http://h");
        assert_eq!(origin("http://h"), "http://h");
    }

    #[test]
    fn failures_say_whether_to_retry() {
        assert!(!Failure::Refused("x".into()).is_transient());
        assert!(!Failure::Tls("x".into()).is_transient());
        assert!(Failure::Unreachable("x".into()).is_transient());
        assert!(!Failure::Unreachable("x".into()).may_have_applied());
        assert!(Failure::Cut("x".into()).may_have_applied());
        assert!(Failure::NoAnswer("x".into()).may_have_applied());
    }

    #[test]
    fn requests_carry_headers() {
        let r = Request::new(Method::PUT, "http://h/x").header("x-ms-version", "2021-08-06").body(vec![1, 2]);
        assert_eq!(r.header_value("x-ms-version"), Some("2021-08-06"));
        assert_eq!(r.body.len(), 2);
        let bad = Request::new(Method::GET, "http://h/").header("bad header", "v");
        assert!(bad.headers.contains_key("x-regstore-invalid-header"));
    }
}
