//! The transport inside a component: the host's `wasi:http`, spoken directly rather than
//! through wstd. wstd sends the body and awaits the response side by side and reports whichever
//! fails first, so a request the host refuses shows up as a reset body stream instead of
//! `HttpRequestDenied`. Here the response's error always wins.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use wasip2::http::outgoing_handler;
use wasip2::http::types::FutureIncomingResponse;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll::Pollable;
use wasip2::io::streams::{InputStream, StreamError};

use super::{Client, Failure, Fault, Head, Request, Timeouts, body_cut, describe};

/// Sends `request` once over `wasi:http` and returns the head, with the body left to stream.
pub(super) fn open(client: &Client, request: &Request) -> Result<(Head, BodyStream), Failure> {
    let pending = start(client, request)?;
    pending.pollable().block();
    pending.finish(client)
}

/// A request whose body is sent and whose answer is awaited: the pollable says when it came.
pub struct Pending {
    future: FutureIncomingResponse,
    /// Why sending the body failed, if it did: reported unless the answer says better.
    send_error: Option<String>,
}

impl Pending {
    /// Ready when the answer (or its failure) is there.
    pub fn pollable(&self) -> Pollable {
        self.future.subscribe()
    }

    /// The answer's head, with the body left to stream; call it once the pollable is ready.
    pub(super) fn finish(self, client: &Client) -> Result<(Head, BodyStream), Failure> {
        let incoming = match self.future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(client.failure(&fault(&code), false)),
            Some(Err(())) | None => {
                return Err(Failure::Unreachable(format!("no response from {}", client.endpoint())));
            }
        };
        if let Some(cause) = self.send_error {
            // The server answered before taking the whole body (an early error status): the
            // answer stands, the body was not needed.
            if !(400..600).contains(&incoming.status()) {
                return Err(Failure::Cut(format!("sending the request body to {}: {cause}", client.endpoint())));
            }
        }
        let head = head(&incoming);
        let stream = BodyStream::new(incoming, client.endpoint().to_string(), client.timeouts.idle)?;
        Ok((head, stream))
    }
}

/// Sends `request` (its body included) without waiting for the answer.
pub(super) fn start(client: &Client, request: &Request) -> Result<Pending, Failure> {
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
    let mut fields: Vec<(String, Vec<u8>)> =
        request.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
    // A length on every request that may carry a body, so that none goes chunked.
    // (The host takes one Content-Length only; a caller may have set it already.)
    let has_length = request.headers.contains_key(http::header::CONTENT_LENGTH);
    if !has_length && (!request.body.is_empty() || !matches!(request.method, Method::GET | Method::HEAD)) {
        fields.push(("content-length".into(), request.body.len().to_string().into_bytes()));
    }
    let headers = Fields::from_list(&fields).map_err(|e| {
        // Name the header the host refuses.
        let bad = fields.iter().find(|f| Fields::from_list(std::slice::from_ref(f)).is_err());
        let which = bad.map(|(name, _)| format!(" ({name})")).unwrap_or_default();
        Failure::Invalid(format!("{} {url}: the headers are not valid{which}: {e:?}", request.method))
    })?;
    let outgoing = OutgoingRequest::new(headers);
    let method = wasi_method(&request.method);
    let invalid = |what: &str| Failure::Invalid(format!("{} {url}: invalid {what}", request.method));
    outgoing.set_method(&method).map_err(|()| invalid("method"))?;
    outgoing.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
    outgoing.set_authority(Some(authority)).map_err(|()| invalid("authority"))?;
    outgoing.set_path_with_query(Some(&path)).map_err(|()| invalid("path"))?;
    let options = RequestOptions::new();
    // A host that does not support an option keeps its own limit for it.
    let _ = options.set_connect_timeout(Some(nanos(client.timeouts.connect)));
    let _ = options.set_first_byte_timeout(Some(nanos(client.timeouts.first_byte)));
    let _ = options.set_between_bytes_timeout(Some(nanos(client.timeouts.idle)));
    let body = outgoing.body().map_err(|()| invalid("body"))?;
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| client.failure(&fault(&e), false))?;

    // The body first (the host streams it as it comes), then the answer. A failed write is
    // remembered, but the response's own error says better what happened.
    let write_error = write_body(&body, &request.body).err();
    let finish_error = OutgoingBody::finish(body, None).err();
    Ok(Pending { future, send_error: write_error.or(finish_error.map(|e| format!("{e:?}"))) })
}

fn head(incoming: &IncomingResponse) -> Head {
    let status = StatusCode::from_u16(incoming.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in incoming.headers().entries() {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    Head { status, headers }
}

/// What a read without waiting found.
pub(crate) enum Available {
    /// Bytes were added; more may follow.
    More,
    /// Nothing has arrived yet: wait for the stream's pollable.
    Wait,
    /// The body is over (or failed after some bytes, reported by the next read).
    End,
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
        let mut out = Vec::new();
        loop {
            match self.read_available(max - out.len(), &mut out)? {
                Available::More if out.len() < max => {}
                Available::Wait => {
                    if let Some(stream) = &self.stream {
                        stream.subscribe().block();
                    }
                }
                Available::More | Available::End => return Ok(out),
            }
        }
    }

    /// Appends to `out` what has arrived, up to `max` bytes, without waiting.
    pub(crate) fn read_available(&mut self, max: usize, out: &mut Vec<u8>) -> Result<Available, Failure> {
        if let Some(failure) = self.failed.take() {
            return Err(failure);
        }
        let Some(stream) = &self.stream else { return Ok(Available::End) };
        if max == 0 {
            return Ok(Available::More);
        }
        match stream.read(max as u64) {
            Ok(chunk) if chunk.is_empty() => Ok(Available::Wait),
            Ok(chunk) => {
                self.received += chunk.len() as u64;
                if out.is_empty() {
                    *out = chunk;
                } else {
                    out.extend_from_slice(&chunk);
                }
                Ok(Available::More)
            }
            Err(StreamError::Closed) => {
                self.finish();
                Ok(Available::End)
            }
            Err(StreamError::LastOperationFailed(e)) => {
                self.finish();
                let cause = match wasip2::http::types::http_error_code(&e) {
                    Some(code) => {
                        let timeouts = Timeouts { idle: self.idle, ..Timeouts::default() };
                        describe(&fault(&code), &self.endpoint, "", timeouts, true).cause().to_string()
                    }
                    None => e.to_debug_string(),
                };
                let failure = body_cut(&self.endpoint, self.received, &cause);
                if out.is_empty() {
                    return Err(failure);
                }
                // The bytes read stand; the next read reports the failure.
                self.failed = Some(failure);
                Ok(Available::End)
            }
        }
    }

    /// Ready when more of the body (or its end) has arrived; `None` at the end.
    pub fn pollable(&self) -> Option<Pollable> {
        self.stream.as_ref().map(InputStream::subscribe)
    }

    /// Bytes of the body received so far.
    pub fn received(&self) -> u64 {
        self.received
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

/// A `wasi:http` error code as a [`Fault`].
fn fault(code: &ErrorCode) -> Fault {
    match code {
        ErrorCode::HttpRequestDenied => Fault::Denied,
        ErrorCode::DestinationIpProhibited => Fault::InternalAddress,
        ErrorCode::ConnectionRefused => Fault::ConnectionRefused,
        ErrorCode::ConnectionTimeout => Fault::ConnectTimeout,
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            Fault::Dns(format!("{code:?}"))
        }
        ErrorCode::DestinationUnavailable | ErrorCode::DestinationIpUnroutable => {
            Fault::Unavailable(format!("{code:?}"))
        }
        ErrorCode::TlsCertificateError => Fault::Certificate,
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => Fault::Tls(format!("{code:?}")),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => Fault::ReadTimeout,
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            Fault::InvalidRequest(format!("{code:?}"))
        }
        ErrorCode::InternalError(Some(text)) => Fault::Other(text.clone()),
        other => Fault::Other(format!("{other:?}")),
    }
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
