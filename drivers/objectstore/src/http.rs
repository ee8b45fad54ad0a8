//! A blocking HTTP client over the host's `wasi:http`, for drivers whose every call is
//! synchronous to the host.
//!
//! It speaks to `wasi:http` directly rather than through wstd: wstd sends the body and awaits the
//! response side by side and reports whichever fails first, so a request the host refuses shows
//! up as a reset body stream instead of `HttpRequestDenied`. Here the response's error always
//! wins, and every failure is worded with the endpoint it concerns.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::retry::Retry;

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
        let url = request.url.as_str();
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| Failure::Invalid(format!("{url} is not an absolute URL")))?;
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(Failure::Invalid(format!("{url}: the scheme {other} is not http or https"))),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if request.headers.contains_key("x-regstore-invalid-header") {
            return Err(Failure::Invalid(format!("{} {url}: a header cannot be sent over HTTP", request.method)));
        }
        let mut fields: Vec<(String, Vec<u8>)> =
            request.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
        // A length on every request that may carry a body, so that none goes chunked.
        if !request.body.is_empty() || !matches!(request.method, Method::GET | Method::HEAD) {
            fields.push(("content-length".into(), request.body.len().to_string().into_bytes()));
        }
        let headers = Fields::from_list(&fields)
            .map_err(|e| Failure::Invalid(format!("{} {url}: the headers are not valid: {e:?}", request.method)))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = wasi_method(&request.method);
        let invalid = |what: &str| Failure::Invalid(format!("{} {url}: invalid {what}", request.method));
        outgoing.set_method(&method).map_err(|()| invalid("method"))?;
        outgoing.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
        outgoing.set_authority(Some(authority)).map_err(|()| invalid("authority"))?;
        outgoing.set_path_with_query(Some(&path)).map_err(|()| invalid("path"))?;
        let options = RequestOptions::new();
        // A host that does not support an option keeps its own limit for it.
        let _ = options.set_connect_timeout(Some(nanos(self.timeouts.connect)));
        let _ = options.set_first_byte_timeout(Some(nanos(self.timeouts.first_byte)));
        let _ = options.set_between_bytes_timeout(Some(nanos(self.timeouts.idle)));
        let body = outgoing.body().map_err(|()| invalid("body"))?;
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| self.failure(&e, false))?;

        // The body first (the host streams it as it comes), then the answer. A failed write is
        // remembered, but the response's own error says better what happened.
        let write_error = write_body(&body, &request.body).err();
        let finish_error = OutgoingBody::finish(body, None).err();
        future.subscribe().block();
        let incoming = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(self.failure(&code, false)),
            Some(Err(())) | None => {
                return Err(Failure::Unreachable(format!("no response from {}", self.endpoint)));
            }
        };
        if let Some(cause) = write_error.or(finish_error.map(|e| format!("{e:?}"))) {
            // The server answered before taking the whole body (an early error status): the
            // answer stands, the body was not needed.
            if !(400..600).contains(&incoming.status()) {
                return Err(Failure::Cut(format!("sending the request body to {}: {cause}", self.endpoint)));
            }
        }
        let head = Head::from_incoming(&incoming);
        let stream = BodyStream::new(incoming, self.endpoint.clone(), self.timeouts.idle)?;
        Ok((head, stream))
    }

    /// What a `wasi:http` error code means, for the operator.
    fn failure(&self, code: &ErrorCode, after_first_byte: bool) -> Failure {
        describe(code, &self.endpoint, &self.service, self.timeouts, after_first_byte)
    }
}

/// The status line and headers of a response.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl Head {
    fn from_incoming(incoming: &IncomingResponse) -> Head {
        let status = StatusCode::from_u16(incoming.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut headers = HeaderMap::new();
        for (name, value) in incoming.headers().entries() {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.append(name, value);
            }
        }
        Head { status, headers }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response body being received.
pub struct BodyStream {
    // Dropped in this order: a stream before its body, a body before its response.
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    _response: IncomingResponse,
    endpoint: String,
    idle: Duration,
    received: u64,
    /// A failure met after some bytes of a read: reported by the next read, so no byte is lost.
    failed: Option<Failure>,
}

impl BodyStream {
    fn new(response: IncomingResponse, endpoint: String, idle: Duration) -> Result<Self, Failure> {
        let body = response.consume().map_err(|()| Failure::Cut(format!("the response of {endpoint} has no body")))?;
        let stream = body.stream().map_err(|()| Failure::Cut(format!("the response of {endpoint} has no body")))?;
        Ok(BodyStream {
            stream: Some(stream),
            body: Some(body),
            _response: response,
            endpoint,
            idle,
            received: 0,
            failed: None,
        })
    }

    /// Up to `max` bytes (fewer only at the end); empty at the end of the body.
    pub fn read(&mut self, max: usize) -> Result<Vec<u8>, Failure> {
        if let Some(failure) = self.failed.take() {
            return Err(failure);
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(stream) = &self.stream else { break };
            match stream.blocking_read((max - out.len()) as u64) {
                Ok(chunk) => {
                    self.received += chunk.len() as u64;
                    if out.is_empty() {
                        out = chunk;
                    } else {
                        out.extend_from_slice(&chunk);
                    }
                }
                Err(StreamError::Closed) => self.finish(),
                Err(StreamError::LastOperationFailed(e)) => {
                    self.finish();
                    let cause = match wasip2::http::types::http_error_code(&e) {
                        Some(code) => describe(&code, &self.endpoint, "", self.timeouts(), true).cause().to_string(),
                        None => e.to_debug_string(),
                    };
                    let failure = Failure::Cut(format!(
                        "the response from {} stopped after {} bytes: {cause}",
                        self.endpoint, self.received
                    ));
                    if out.is_empty() {
                        return Err(failure);
                    }
                    self.failed = Some(failure);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Bytes of the body received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts { idle: self.idle, ..Timeouts::default() }
    }

    fn finish(&mut self) {
        self.stream = None;
        if let Some(body) = self.body.take() {
            drop(IncomingBody::finish(body));
        }
    }
}

/// Writes all of `data` to the request body, waiting whenever the host's buffer is full.
fn write_body(body: &OutgoingBody, data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    let stream = body.write().map_err(|()| "the request body cannot be written".to_string())?;
    let mut rest = data;
    while !rest.is_empty() {
        let ready = match stream.check_write() {
            Ok(0) => {
                stream.subscribe().block();
                continue;
            }
            Ok(n) => n as usize,
            Err(e) => return Err(stream_error(e)),
        };
        let (now, later) = rest.split_at(ready.min(rest.len()));
        stream.write(now).map_err(stream_error)?;
        rest = later;
    }
    match stream.blocking_flush() {
        // Every byte was handed over, and the host closes the stream as soon as it has sent
        // Content-Length bytes, which may be before the flush looks; `finish` still checks the
        // count.
        Err(StreamError::Closed) => Ok(()),
        other => other.map_err(stream_error),
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the connection was closed".into(),
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
            Some(code) => format!("{code:?}"),
            None => e.to_debug_string(),
        },
    }
}

/// The operator's words for a `wasi:http` error code.
fn describe(code: &ErrorCode, endpoint: &str, service: &str, t: Timeouts, after_first_byte: bool) -> Failure {
    let service = if service.is_empty() { String::new() } else { format!("{service} at ") };
    match code {
        ErrorCode::HttpRequestDenied => Failure::Refused(format!(
            "the host refused the request to {endpoint}: it is not an endpoint this driver is granted"
        )),
        ErrorCode::DestinationIpProhibited => Failure::Refused(format!(
            "the host refused the request to {endpoint}: the name resolves to an internal address"
        )),
        ErrorCode::ConnectionRefused => {
            Failure::Unreachable(format!("cannot reach {service}{endpoint}: the connection was refused"))
        }
        ErrorCode::ConnectionTimeout => Failure::Unreachable(format!(
            "cannot reach {service}{endpoint}: no connection within {}",
            seconds(t.connect)
        )),
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            Failure::Unreachable(format!("cannot reach {service}{endpoint}: its name does not resolve ({code:?})"))
        }
        ErrorCode::DestinationUnavailable | ErrorCode::DestinationIpUnroutable => {
            Failure::Unreachable(format!("cannot reach {service}{endpoint}: {code:?}"))
        }
        ErrorCode::TlsCertificateError => Failure::Tls(format!(
            "cannot reach {service}{endpoint}: its TLS certificate is not trusted \
             (give the host its CA, e.g. --ca-file)"
        )),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            Failure::Tls(format!("cannot reach {service}{endpoint}: TLS failed ({code:?})"))
        }
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout if after_first_byte => {
            Failure::Cut(format!("{endpoint} sent nothing for {}", seconds(t.idle)))
        }
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            Failure::NoAnswer(format!("{service}{endpoint} did not answer within {}", seconds(t.first_byte)))
        }
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            Failure::Invalid(format!("the request to {endpoint} is not valid HTTP ({code:?})"))
        }
        ErrorCode::InternalError(Some(text)) => Failure::Cut(format!("{service}{endpoint}: {text}")),
        other => Failure::Cut(format!("{service}{endpoint}: {other:?}")),
    }
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

fn wasi_method(method: &Method) -> wasip2::http::types::Method {
    use wasip2::http::types::Method as M;
    match *method {
        Method::GET => M::Get,
        Method::HEAD => M::Head,
        Method::PUT => M::Put,
        Method::POST => M::Post,
        Method::DELETE => M::Delete,
        Method::PATCH => M::Patch,
        Method::OPTIONS => M::Options,
        _ => M::Other(method.as_str().to_string()),
    }
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
