//! The transport of the native build, the benchmarks' baseline: blocking HTTP/1.1 through ureq
//! with rustls on ring, the client's connect, first-byte and idle timeouts on every request, no
//! proxy, no redirects, and a new connection per request: all as the wasm host sends, so that a
//! ratio against this baseline measures the sandbox, not a difference in connection reuse.
//!
//! Unlike a component, a native driver is not sandboxed: it reaches any endpoint its parameters
//! name. HTTPS trusts Mozilla's roots, or, once [`trust_ca_files`] is called, those files' CAs
//! instead (a local emulator's self-signed certificate, a private endpoint's CA).

use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use http::{Method, StatusCode};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, Timeout};

use super::{Client, Failure, Fault, Head, Request, Timeouts, body_cut, describe};

/// Makes HTTPS requests of this process trust the CAs in `files` (PEM) instead of Mozilla's
/// roots. A file that cannot be read or holds no certificate is an error naming it.
pub fn trust_ca_files(files: &[PathBuf]) -> Result<(), String> {
    let mut certs = Vec::new();
    for file in files {
        let pem = std::fs::read(file).map_err(|e| format!("cannot read the CA file {}: {e}", file.display()))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(format!("the CA file {} is not valid PEM: {e}", file.display())),
            }
        }
        if certs.len() == before {
            return Err(format!("the CA file {} holds no certificate", file.display()));
        }
    }
    *agents().lock().unwrap_or_else(|e| e.into_inner()) = None;
    *trusted().lock().unwrap_or_else(|e| e.into_inner()) = (!certs.is_empty()).then(|| Arc::new(certs));
    Ok(())
}

fn trusted() -> &'static Mutex<Option<Arc<Vec<Certificate<'static>>>>> {
    static TRUSTED: OnceLock<Mutex<Option<Arc<Vec<Certificate<'static>>>>>> = OnceLock::new();
    TRUSTED.get_or_init(|| Mutex::new(None))
}

fn agents() -> &'static Mutex<Option<Agent>> {
    static AGENT: OnceLock<Mutex<Option<Agent>>> = OnceLock::new();
    AGENT.get_or_init(|| Mutex::new(None))
}

/// The process's agent, built with the trust of the moment.
fn agent() -> Agent {
    let mut slot = agents().lock().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| {
        let roots = match trusted().lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(certs) => RootCerts::Specific(certs),
            None => RootCerts::WebPki,
        };
        Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent("regstore")
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build()
            .into()
    })
    .clone()
}

/// Sends `request` once and returns the head, with the body left to stream.
pub(super) fn open(client: &Client, request: &Request) -> Result<(Head, BodyStream), Failure> {
    let agent = agent();
    let mut builder = http::Request::builder().method(request.method.clone()).uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let invalid = |e: http::Error| Failure::Invalid(format!("{} {}: {e}", request.method, request.url));
    let t = client.timeouts;
    let sent = if matches!(request.method, Method::GET | Method::HEAD) && request.body.is_empty() {
        run(&agent, builder.body(()).map_err(invalid)?, t)
    } else {
        // A sized body, even when empty: Content-Length on every request that may carry one.
        run(&agent, builder.body(&request.body[..]).map_err(invalid)?, t)
    };
    let response = sent.map_err(|e| client.failure(&fault(&e), false))?;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers().clone();
    let body = response.into_body().into_reader();
    Ok((
        Head { status, headers },
        BodyStream {
            reader: Some(Box::new(body)),
            endpoint: client.endpoint().to_string(),
            timeouts: t,
            received: 0,
            failed: None,
        },
    ))
}

/// Runs `request` with the client's timeouts.
fn run<S: ureq::AsSendBody>(
    agent: &Agent,
    request: http::Request<S>,
    t: Timeouts,
) -> Result<http::Response<ureq::Body>, ureq::Error> {
    let request = agent
        .configure_request(request)
        .timeout_connect(Some(t.connect))
        .timeout_recv_response(Some(t.first_byte))
        .timeout_per_read(Some(t.idle))
        .build();
    agent.run(request)
}

/// A response body being received.
pub struct BodyStream {
    reader: Option<Box<dyn Read + Send>>,
    endpoint: String,
    timeouts: Timeouts,
    received: u64,
    /// A failure met after some bytes of a read: reported by the next read, so no byte is lost.
    failed: Option<Failure>,
}

impl BodyStream {
    /// Up to `max` bytes (fewer only at the end); empty at the end of the body.
    pub fn read(&mut self, max: usize) -> Result<Vec<u8>, Failure> {
        if let Some(failure) = self.failed.take() {
            return Err(failure);
        }
        // Grown as bytes arrive rather than zeroed to `max` up front: most reads are short.
        let mut out = Vec::new();
        while out.len() < max {
            let Some(reader) = self.reader.as_mut() else { break };
            let before = out.len();
            // On an error, the bytes read before it are in `out` already.
            let read = reader.by_ref().take((max - before) as u64).read_to_end(&mut out);
            self.received += (out.len() - before) as u64;
            match read {
                Ok(_) if out.len() < max => self.reader = None,
                Ok(_) => {}
                Err(e) => {
                    self.reader = None;
                    let fault = match e.kind() {
                        ErrorKind::TimedOut => Fault::ReadTimeout,
                        _ => Fault::Other(e.to_string()),
                    };
                    let cause = describe(&fault, &self.endpoint, "", self.timeouts, true).cause().to_string();
                    let failure = body_cut(&self.endpoint, self.received, &cause);
                    if out.is_empty() {
                        return Err(failure);
                    }
                    self.failed = Some(failure);
                }
            }
        }
        Ok(out)
    }

    /// Bytes of the body received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// A ureq error as a [`Fault`].
fn fault(e: &ureq::Error) -> Fault {
    match e {
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => Fault::ConnectTimeout,
        ureq::Error::Timeout(_) => Fault::ReadTimeout,
        ureq::Error::HostNotFound => Fault::Dns("host not found".into()),
        ureq::Error::ConnectionFailed => Fault::Unavailable("the connection failed".into()),
        ureq::Error::Rustls(e) => rustls_fault(e),
        ureq::Error::Tls(text) => Fault::Tls(text.to_string()),
        ureq::Error::Http(e) => Fault::InvalidRequest(e.to_string()),
        ureq::Error::BadUri(text) => Fault::InvalidRequest(text.clone()),
        ureq::Error::Io(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(e) => rustls_fault(e),
            None => match io.kind() {
                ErrorKind::ConnectionRefused => Fault::ConnectionRefused,
                ErrorKind::TimedOut => Fault::ReadTimeout,
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::AddrNotAvailable => {
                    Fault::Unavailable(io.to_string())
                }
                _ => Fault::Other(io.to_string()),
            },
        },
        other => Fault::Other(other.to_string()),
    }
}

fn rustls_fault(e: &rustls::Error) -> Fault {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => Fault::Certificate,
        other => Fault::Tls(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_endpoints_are_named() {
        // A port nothing listens on: bind one, learn its number, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new("Test Storage", &format!("http://127.0.0.1:{port}"));
        let request = Request::new(Method::GET, format!("http://127.0.0.1:{port}/x"));
        let failure = client.open(&request).err().expect("nothing listens there");
        assert!(matches!(failure, Failure::Unreachable(_)), "{failure:?}");
        assert!(failure.cause().contains(&format!("127.0.0.1:{port}")), "{failure:?}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let e = trust_ca_files(&[PathBuf::from("/nonexistent/ca.pem")]).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
