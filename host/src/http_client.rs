//! The host's HTTP/1.1 client for guests' `wasi:http` requests, once the gate
//! ([`crate::sandbox`]) has let them through: TCP to the addresses the gate checked, TLS with the
//! driver's own trust ([`TlsTrust`]), the guest's timeouts, and every failure mapped to the
//! `wasi:http` error code that says what went wrong (refused, timed out, certificate, ...).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long connecting may take (name lookup, TCP, then the TLS handshake) when the guest sets
/// no `connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the response's head may take once the request, body included, is sent, when the
/// guest sets no `first-byte-timeout`.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the response body may stall while the guest waits for it, when the guest sets no
/// `between-bytes-timeout`.
pub const DEFAULT_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(60);

/// The certificates one driver's HTTPS requests trust: the webpki roots (Mozilla's), the
/// system's native roots, and the operator's CA files for this driver (`Sandbox::ca_files`).
/// Built once per driver when CA files are given; shared by the whole process otherwise.
#[derive(Clone, Default)]
pub struct TlsTrust {
    /// `None`: the process-wide configuration without any operator CA.
    config: Option<Arc<ClientConfig>>,
    ca_files: Arc<[PathBuf]>,
}

impl TlsTrust {
    /// The usual roots and the certificates in `ca_files` (PEM). A file that cannot be read,
    /// holds no certificate or one that cannot be a trust anchor is an error naming it.
    pub fn with_ca_files(ca_files: &[PathBuf]) -> Result<TlsTrust, String> {
        if ca_files.is_empty() {
            return Ok(TlsTrust::default());
        }
        let mut roots = base_roots().clone();
        for file in ca_files {
            for cert in read_ca_file(file)? {
                roots.add(cert).map_err(|e| {
                    format!("the CA file {} holds a certificate that cannot be a trust anchor: {e}", file.display())
                })?;
            }
        }
        Ok(TlsTrust { config: Some(client_config(roots)), ca_files: ca_files.into() })
    }

    /// The operator's CA files this trust adds to the usual roots.
    pub fn ca_files(&self) -> &[PathBuf] {
        &self.ca_files
    }

    /// The rustls configuration requests are sent with.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        match &self.config {
            Some(config) => config.clone(),
            None => {
                static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
                DEFAULT.get_or_init(|| client_config(base_roots().clone())).clone()
            }
        }
    }
}

impl fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTrust").field("roots", &"webpki and native").field("ca_files", &self.ca_files).finish()
    }
}

/// The certificates of one PEM file.
fn read_ca_file(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read the CA file {}: {e}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA file {} is not valid PEM: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file {} holds no certificate (a PEM file with -----BEGIN CERTIFICATE----- blocks is expected)",
            file.display()
        ));
    }
    Ok(certs)
}

/// webpki's roots and the system's, loaded once per process. Native roots that cannot be
/// loaded are left out with a warning.
fn base_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!("cannot load the system's root certificates ({error}); using the others");
        }
        let (_, ignored) = roots.add_parsable_certificates(native.certs);
        if ignored > 0 {
            tracing::debug!("{ignored} of the system's root certificates cannot be used and were skipped");
        }
        roots
    })
}

fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The guest's timeouts, or the defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl From<Option<RequestOptions>> for Timeouts {
    fn from(options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        Timeouts {
            connect: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            first_byte: options.first_byte_timeout.unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT),
            between_bytes: options.between_bytes_timeout.unwrap_or(DEFAULT_BETWEEN_BYTES_TIMEOUT),
        }
    }
}

/// The addresses of `host` (a name: an IP literal needs no lookup), within `timeout`.
pub(crate) async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| Error::DnsTimeout)?
        .map_err(|e| {
            tracing::debug!("cannot resolve {host}: {e}");
            Error::DnsError { rcode: Some(format!("cannot resolve {host}: {e}")), info_code: None }
        })?
        .collect::<Vec<_>>();
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    Ok(addrs)
}

/// What finishes the exchange once the response head is back: the connection's I/O, which
/// streams the body.
pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Connection = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

/// Sends `request` to one of `addrs` (already checked by the gate, tried in order), over TLS
/// with `tls` for `https`, and returns the response head with its body, and the I/O future that
/// streams that body.
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    timeouts: Timeouts,
    addrs: &[SocketAddr],
    tls: &TlsTrust,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri().clone();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.trim_start_matches('[').trim_end_matches(']');
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);

    // Connecting, TLS included, within the connect timeout.
    let connect = async {
        let tcp = connect_tcp(addrs).await?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return handshake(tcp).await;
        }
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?,
        };
        let connector = tokio_rustls::TlsConnector::from(tls.client_config());
        let stream = connector.connect(name, tcp).await.map_err(|e| tls_error(host, e))?;
        handshake(stream).await
    };
    let (mut sender, connection) =
        tokio::time::timeout(timeouts.connect, connect).await.map_err(|_| Error::ConnectionTimeout)??;

    // On the wire the request names only its path; the authority is in the Host header.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

    // The first-byte clock starts once the request body is sent in full (or dropped).
    let (sent_tx, mut sent_rx) = oneshot::channel();
    let request = request.map(|body| WatchedBody { inner: body, sent: Some(sent_tx) });
    let mut response = pin!(sender.send_request(request));
    let mut connection = Some(connection);
    let mut first_byte: Option<Pin<Box<Sleep>>> = None;
    let head = poll_fn(|cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(hyper_error));
        }
        if let Some(conn) = connection.as_mut()
            && let Poll::Ready(result) = conn.as_mut().poll(cx)
        {
            connection = None;
            if let Err(e) = result {
                return Poll::Ready(Err(hyper_error(e)));
            }
            // The connection closed cleanly: the response settles now, one way or the other.
            if let Poll::Ready(result) = response.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(hyper_error));
            }
        }
        if first_byte.is_none() && Pin::new(&mut sent_rx).poll(cx).is_ready() {
            first_byte = Some(Box::pin(tokio::time::sleep(timeouts.first_byte)));
        }
        if let Some(timer) = first_byte.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(Error::ConnectionReadTimeout));
        }
        Poll::Pending
    })
    .await?;

    let response = head
        .map(|incoming| ResponseBody { inner: incoming, timeout: timeouts.between_bytes, timer: None }.boxed_unsync());
    let io: IoFuture = Box::new(async move {
        match connection {
            Some(conn) => conn.await.map_err(hyper_error),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

/// A TCP connection to the first of `addrs` that accepts one.
async fn connect_tcp(addrs: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = Error::DestinationNotFound;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                tracing::debug!("cannot connect to {addr}: {e}");
                last = connect_error(e);
            }
        }
    }
    Err(last)
}

fn connect_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        io::ErrorKind::TimedOut => Error::ConnectionTimeout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Error::DestinationUnavailable,
        io::ErrorKind::AddrNotAvailable => Error::DestinationIpUnroutable,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Error::ConnectionTerminated,
        _ => Error::Connect(e),
    }
}

/// What a failed TLS handshake means: the certificate, an alert from the server, or the protocol.
fn tls_error(host: &str, e: io::Error) -> Error {
    tracing::warn!("TLS handshake with {host} failed: {e}");
    let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(_)) | Some(rustls::Error::NoCertificatesPresented) => {
            Error::TlsCertificateError
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            Error::TlsAlertReceived { alert_id: Some(u8::from(*alert)), alert_message: Some(format!("{alert:?}")) }
        }
        Some(_) => Error::TlsProtocolError,
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                Error::ConnectionTerminated
            }
            io::ErrorKind::TimedOut => Error::ConnectionTimeout,
            _ => Error::TlsProtocolError,
        },
    }
}

fn hyper_error(e: hyper::Error) -> Error {
    use std::error::Error as _;
    if e.is_timeout() {
        return Error::HttpResponseTimeout;
    }
    if e.is_incomplete_message() {
        return Error::HttpResponseIncomplete;
    }
    if e.is_canceled() || e.is_closed() {
        return Error::ConnectionTerminated;
    }
    if e.is_parse() || e.is_parse_status() {
        return Error::HttpProtocolError;
    }
    if let Some(io) = e.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        return match io.kind() {
            io::ErrorKind::TimedOut => Error::ConnectionReadTimeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::ConnectionTerminated,
            _ => Error::Hyper(e),
        };
    }
    Error::Hyper(e)
}

async fn handshake<S>(stream: S) -> Result<(hyper::client::conn::http1::SendRequest<WatchedBody>, Connection), Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(hyper_error)?;
    Ok((sender, Box::pin(connection)))
}

/// The guest's request body, telling when it has been sent in full (or given up).
struct WatchedBody {
    inner: WasiBody,
    sent: Option<oneshot::Sender<()>>,
}

impl WatchedBody {
    fn done(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.done();
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body, failing with a read timeout when the server sends nothing for
/// `timeout` while the guest waits for it. Time the guest spends not reading does not count.
struct ResponseBody {
    inner: hyper::body::Incoming,
    timeout: Duration,
    /// Running while the last poll found nothing to read.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(hyper_error)))
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.timer = Some(Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
                        Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Empty, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request(uri: &str) -> http::Request<WasiBody> {
        let host = uri.split('/').nth(2).unwrap().to_string();
        http::Request::get(uri)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
            .unwrap()
    }

    fn options(connect: u64, first_byte: u64, between_bytes: u64) -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(connect),
            first_byte: Duration::from_millis(first_byte),
            between_bytes: Duration::from_millis(between_bytes),
        }
    }

    async fn get(uri: &str, timeouts: Timeouts, tls: &TlsTrust) -> Result<(u16, Vec<u8>), Error> {
        let parsed: http::Uri = uri.parse().unwrap();
        let https = parsed.scheme_str() == Some("https");
        let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs = resolve(parsed.host().unwrap(), port, timeouts.connect).await?;
        let (response, io) = send(request(uri), timeouts, &addrs, tls).await?;
        tokio::spawn(Box::into_pin(io));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }

    /// A server on loopback that reads a request head, then does what `then` says.
    async fn server<F, Fut>(then: F) -> SocketAddr
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let then = Arc::new(then);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let then = then.clone();
                tokio::spawn(async move { then(stream).await });
            }
        });
        addr
    }

    async fn read_head(stream: &mut TcpStream) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
    }

    #[test]
    fn defaults_apply_where_the_guest_sets_nothing() {
        let t = Timeouts::from(None);
        assert_eq!(
            (t.connect, t.first_byte, t.between_bytes),
            (DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_BETWEEN_BYTES_TIMEOUT)
        );
        let t = Timeouts::from(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(1)),
            ..RequestOptions::default()
        }));
        assert_eq!((t.connect, t.first_byte), (Duration::from_secs(1), DEFAULT_FIRST_BYTE_TIMEOUT));
    }

    #[tokio::test]
    async fn a_plain_request_gets_its_answer() {
        let addr = server(|mut s| async move {
            read_head(&mut s).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        })
        .await;
        let (status, body) =
            get(&format!("http://{addr}/x?y=1"), Timeouts::from(None), &TlsTrust::default()).await.unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_at_once() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let started = std::time::Instant::now();
        let e =
            get(&format!("http://127.0.0.1:{port}/"), Timeouts::from(None), &TlsTrust::default()).await.unwrap_err();
        assert!(matches!(e, Error::ConnectionRefused), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_silent_server_hits_the_first_byte_timeout() {
        let addr = server(|mut s| async move {
            read_head(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let started = std::time::Instant::now();
        let e = get(&format!("http://{addr}/"), options(1000, 200, 1000), &TlsTrust::default()).await.unwrap_err();
        assert!(matches!(e, Error::ConnectionReadTimeout), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_stalled_body_hits_the_between_bytes_timeout() {
        let addr = server(|mut s| async move {
            read_head(&mut s).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let started = std::time::Instant::now();
        let e = get(&format!("http://{addr}/"), options(1000, 1000, 200), &TlsTrust::default()).await.unwrap_err();
        assert!(matches!(e, Error::ConnectionReadTimeout), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_server_that_never_speaks_tls_hits_the_connect_timeout() {
        let addr = server(|s| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        })
        .await;
        let e = get(&format!("https://{addr}/"), options(300, 1000, 1000), &TlsTrust::default()).await.unwrap_err();
        assert!(matches!(e, Error::ConnectionTimeout), "{e:?}");
    }

    /// An HTTPS server on 127.0.0.1 with a self-signed certificate for IP:127.0.0.1; returns
    /// its address and the certificate's PEM.
    async fn tls_server() -> (SocketAddr, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(IpAddr::from([127, 0, 0, 1]))];
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else { return };
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure").await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, pem)
    }

    #[tokio::test]
    async fn tls_trusts_the_operator_ca_and_only_then() {
        let (addr, pem) = tls_server().await;
        let uri = format!("https://{addr}/");
        let e = get(&uri, Timeouts::from(None), &TlsTrust::default()).await.unwrap_err();
        assert!(matches!(e, Error::TlsCertificateError), "{e:?}");

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pem).unwrap();
        let trust = TlsTrust::with_ca_files(std::slice::from_ref(&ca)).unwrap();
        assert_eq!(trust.ca_files(), [ca]);
        let (status, body) = get(&uri, Timeouts::from(None), &trust).await.unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"secure"[..]));
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = TlsTrust::with_ca_files(std::slice::from_ref(&missing)).unwrap_err();
        assert!(e.contains("cannot read the CA file") && e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsTrust::with_ca_files(std::slice::from_ref(&empty)).unwrap_err();
        assert!(e.contains("holds no certificate") && e.contains("empty.pem"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = TlsTrust::with_ca_files(std::slice::from_ref(&garbage)).unwrap_err();
        assert!(e.contains("garbage.pem"), "{e}");
    }

    #[tokio::test]
    async fn a_request_body_is_sent() {
        let addr = server(|mut s| async move {
            read_head(&mut s).await;
            let mut body = [0u8; 4];
            let _ = s.read_exact(&mut body).await;
            let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{}", String::from_utf8_lossy(&body));
            let _ = s.write_all(reply.as_bytes()).await;
        })
        .await;
        let uri = format!("http://{addr}/put");
        let request = http::Request::put(&uri)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::CONTENT_LENGTH, "4")
            .body(Full::new(Bytes::from_static(b"data")).map_err(|e| match e {}).boxed_unsync())
            .unwrap();
        let (response, io) = send(request, Timeouts::from(None), &[addr], &TlsTrust::default()).await.unwrap();
        tokio::spawn(Box::into_pin(io));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"data");
    }
}
