//! Azurite's Blob service (docs/testing.md), over HTTPS with a self-signed certificate
//! for `127.0.0.1`, and the harness's own Shared Key client to set it up (Create Container, Put
//! Blob, Get Blob, any other signed request).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{Answer, Server, answers_http, exchange, install, repo_root, start_on_free_port};

/// The Azurite release `scripts/emulators` installs (3.37 wants Node 22).
pub const AZURITE_VERSION: &str = "3.35.0";
/// Azurite's development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The development account's public, well-known key (base64).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The Blob service version the harness's requests ask for (`x-ms-version`).
pub const AZURE_API_VERSION: &str = "2021-08-06";

/// The certificate is made again when it expires within this long.
const CERT_MIN_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// How to start Azurite.
#[derive(Debug, Clone, Default)]
pub struct AzuriteOptions {
    /// Also accept OAuth bearer tokens (`--oauth basic`: the token's issuer, audience and times
    /// are checked, not its signature); see [`Azurite::oauth_token`]. Shared Key still works.
    /// Needs HTTPS.
    pub oauth: bool,
    /// Serve plain HTTP instead of HTTPS (no certificate; for proxies that inject faults).
    pub plain_http: bool,
}

/// Azurite's Blob service on a free loopback port, over HTTPS unless asked otherwise, state in
/// memory. Stopped when dropped.
pub struct Azurite {
    /// `https://127.0.0.1:PORT` (`http://` with [`AzuriteOptions::plain_http`])
    pub endpoint: String,
    /// `{endpoint}/devstoreaccount1`: path-style, the account is the first path segment.
    pub service_url: String,
    /// [`AZURITE_ACCOUNT`]
    pub account: String,
    /// [`AZURITE_KEY`], base64.
    pub key: String,
    /// The PEM certificate an HTTPS Azurite presents (self-signed, `IP:127.0.0.1`, in
    /// `.emulators/certs/cert.pem`); trust it as a CA (`Sandbox::ca_files`, `--ca-file`).
    pub ca_file: PathBuf,
    pub port: u16,
    /// Whether bearer tokens are accepted ([`AzuriteOptions::oauth`]).
    pub oauth: bool,
    /// How long it took from spawn to its first answer.
    pub ready_in: Duration,
    /// A client configuration that trusts `ca_file`; `None` over plain HTTP.
    tls: Option<Arc<rustls::ClientConfig>>,
    server: Server,
}

impl Azurite {
    /// Azurite over HTTPS, with Shared Key and SAS ([`Azurite::start_with`] the defaults).
    pub fn start() -> Result<Azurite, String> {
        Azurite::start_with(AzuriteOptions::default())
    }

    /// Azurite over plain HTTP.
    pub fn start_http() -> Result<Azurite, String> {
        Azurite::start_with(AzuriteOptions { plain_http: true, ..AzuriteOptions::default() })
    }

    /// Installs Azurite if missing (`scripts/emulators install azurite`, needs node and npm),
    /// makes the certificate in `.emulators/certs/` if missing or about to expire, starts
    /// `azurite-blob` in memory on a free port (`--loose --skipApiVersionCheck
    /// --disableTelemetry`) and waits until it answers.
    pub fn start_with(options: AzuriteOptions) -> Result<Azurite, String> {
        if options.oauth && options.plain_http {
            return Err("Azurite accepts OAuth tokens only over HTTPS".into());
        }
        let root = repo_root()?;
        let executable = install(&root, "azurite", &root.join(".emulators/node/node_modules/.bin/azurite-blob"))?;
        let (cert, key) = ensure_certificate(&root)?;
        let tls = if options.plain_http { None } else { Some(client_config(&cert)?) };
        let (server, port, ready_in) = start_on_free_port(
            &root,
            "azurite-blob",
            if options.plain_http { "azurite-http" } else { "azurite" },
            |port| {
                let mut command = Command::new(&executable);
                command.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()]);
                if !options.plain_http {
                    command.arg("--cert").arg(&cert).arg("--key").arg(&key);
                }
                if options.oauth {
                    command.args(["--oauth", "basic"]);
                }
                command
                    .args(["--inMemoryPersistence", "--loose", "--skipApiVersionCheck", "--disableTelemetry"])
                    .current_dir(root.join(".emulators/node"));
                command
            },
            |port| match &tls {
                Some(tls) => answers_https(port, tls),
                None => answers_http(SocketAddr::from(([127, 0, 0, 1], port))),
            },
        )?;
        let endpoint = format!("{}://127.0.0.1:{port}", if options.plain_http { "http" } else { "https" });
        Ok(Azurite {
            service_url: format!("{endpoint}/{AZURITE_ACCOUNT}"),
            endpoint,
            account: AZURITE_ACCOUNT.to_string(),
            key: AZURITE_KEY.to_string(),
            ca_file: cert,
            port,
            oauth: options.oauth,
            ready_in,
            tls,
            server,
        })
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Its log file, `.emulators/logs/azurite-PORT.log` (`azurite-http-PORT.log`).
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    /// Stops the server now (SIGTERM to its pid, and waits for it); returns how long it took.
    pub fn stop(mut self) -> Duration {
        self.server.stop()
    }

    /// A connection string for Azure SDKs and tools.
    pub fn connection_string(&self) -> String {
        let protocol = if self.tls.is_some() { "https" } else { "http" };
        format!(
            "DefaultEndpointsProtocol={protocol};AccountName={};AccountKey={};BlobEndpoint={};",
            self.account, self.key, self.service_url
        )
    }

    /// Creates container `name` (`PUT {service_url}/NAME?restype=container`, Shared Key).
    pub async fn create_container(&self, name: &str) -> Result<(), String> {
        let (status, _, body) = self.request("PUT", &format!("/{name}?restype=container"), &[], Vec::new()).await?;
        if status != 201 {
            return Err(format!("creating container {name}: answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(())
    }

    /// Stores a block blob (`Put Blob`, Shared Key).
    pub async fn put_blob(&self, container: &str, blob: &str, content: &[u8]) -> Result<(), String> {
        let path = format!("/{container}/{}", encode_blob_name(blob));
        let headers = [("x-ms-blob-type", "BlockBlob"), ("content-type", "application/octet-stream")];
        let (status, _, body) = self.request("PUT", &path, &headers, content.to_vec()).await?;
        if status != 201 {
            return Err(format!("Put Blob {container}/{blob}: answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(())
    }

    /// A blob's content (`Get Blob`, Shared Key).
    pub async fn get_blob(&self, container: &str, blob: &str) -> Result<Vec<u8>, String> {
        let path = format!("/{container}/{}", encode_blob_name(blob));
        let (status, _, body) = self.request("GET", &path, &[], Vec::new()).await?;
        if status != 200 {
            return Err(format!("Get Blob {container}/{blob}: answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(body)
    }

    /// Sends a request signed with Shared Key and returns (status, headers, body). `resource`
    /// is what follows the service URL, percent-encoded as it goes on the wire, with or without
    /// its leading `/` (`container/blob?comp=blocklist`); `x-ms-date`, `x-ms-version` and
    /// `content-length` are added, and `headers` go as given (and are signed).
    pub async fn request(
        &self,
        method: &str,
        resource: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        self.request_with_key(&self.key, method, resource, headers, body).await
    }

    /// As [`Azurite::request`], signed with `key` (base64) instead of the account's: a wrong key
    /// must be refused with 403.
    pub async fn request_with_key(
        &self,
        key: &str,
        method: &str,
        resource: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let path_and_query = self.path_of(resource);
        let mut all = standard_headers(&body);
        all.extend(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())));
        let authorization = shared_key_authorization(&self.account, key, method, &path_and_query, &all)?;
        all.push(("authorization".into(), authorization));
        self.send(method, &path_and_query, &all, body).await
    }

    /// Sends a request with `Authorization: Bearer TOKEN` (Azurite started with
    /// [`AzuriteOptions::oauth`]); otherwise as [`Azurite::request`].
    pub async fn request_with_token(
        &self,
        token: &str,
        method: &str,
        resource: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let path_and_query = self.path_of(resource);
        let mut all = standard_headers(&body);
        all.extend(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())));
        all.push(("authorization".into(), format!("Bearer {token}")));
        self.send(method, &path_and_query, &all, body).await
    }

    /// A bearer token that Azurite's `--oauth basic` accepts for an hour: an unsigned JWT with
    /// the storage audience and an Azure AD issuer.
    pub fn oauth_token(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let claims = format!(
            r#"{{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/","iat":{},"nbf":{},"exp":{},"oid":"regstore-test","tid":"ab1f708d-50f6-404c-a006-d71b2ac7a606","scp":"user_impersonation"}}"#,
            now - 60,
            now - 60,
            now + 3600
        );
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(b"not-checked")
        )
    }

    /// Sends a request as it is (a SAS URL's path and query, say), over HTTPS trusting
    /// [`Azurite::ca_file`] (or plain HTTP). `path_and_query` is the whole path, account
    /// included (`/devstoreaccount1/c/b?sv=...`).
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        exchange(self.port, self.tls.as_ref(), method, path_and_query, headers, body).await
    }

    /// `/devstoreaccount1/RESOURCE`
    fn path_of(&self, resource: &str) -> String {
        format!("/{}/{}", self.account, resource.trim_start_matches('/'))
    }
}

fn standard_headers(body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("x-ms-date".into(), httpdate::fmt_http_date(SystemTime::now())),
        ("x-ms-version".into(), AZURE_API_VERSION.into()),
        ("content-length".into(), body.len().to_string()),
    ]
}

/// The `Authorization` header of a Blob service request signed with Shared Key ("Authorize
/// with Shared Key", service version 2015-02-21 and later): `path_and_query` as sent, account
/// included for path-style URLs (`/devstoreaccount1/c?restype=container`); `headers` with
/// lower-case names, as they will be sent (`x-ms-date` among them).
pub fn shared_key_authorization(
    account: &str,
    key: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
) -> Result<String, String> {
    let header =
        |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()).unwrap_or("");
    // Since 2015-02-21 a zero Content-Length is signed as empty.
    let content_length = match header("content-length") {
        "0" => "",
        other => other,
    };
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();

    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k).to_ascii_lowercase(), percent_decode(v))
        })
        .collect();
    params.sort();
    let mut canonical_resource = format!("/{account}{path}");
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let values: Vec<&str> = params[i..].iter().take_while(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
        i += values.len();
        canonical_resource.push_str(&format!("\n{name}:{}", values.join(",")));
    }

    let string_to_sign = [
        method.to_ascii_uppercase().as_str(),
        header("content-encoding"),
        header("content-language"),
        content_length,
        header("content-md5"),
        header("content-type"),
        header("date"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ]
    .join("\n")
        + "\n"
        + &canonical_headers
        + &canonical_resource;
    let key = STANDARD.decode(key).map_err(|e| format!("the account key is not base64: {e}"))?;
    let mut mac = hmac::Hmac::<sha2_11::Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(string_to_sign.as_bytes());
    Ok(format!("SharedKey {account}:{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// `%XX` decoded, `+` as a space (as Azure decodes query values).
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A blob name for a URL path: each `/`-separated segment percent-encoded.
fn encode_blob_name(name: &str) -> String {
    name.split('/').map(super::gcs::encode).collect::<Vec<_>>().join("/")
}

/// Makes `.emulators/certs/cert.pem` and `key.pem` (self-signed, `IP:127.0.0.1`, 30 days) unless
/// they exist and stay valid for another day; one process at a time (flock).
fn ensure_certificate(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let dir = root.join(".emulators/certs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let script = format!(
        "set -e\n\
         if [ -s cert.pem ] && [ -s key.pem ] && openssl x509 -checkend {} -noout -in cert.pem >/dev/null 2>&1; then exit 0; fi\n\
         openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem.new -out cert.pem.new -days 30 \
           -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
           -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature,keyEncipherment \
           -addext extendedKeyUsage=serverAuth 2>&1\n\
         mv key.pem.new key.pem\n\
         mv cert.pem.new cert.pem\n",
        CERT_MIN_VALIDITY.as_secs()
    );
    let mut command = if Command::new("flock").arg("--version").output().is_ok() {
        let mut c = Command::new("flock");
        c.args([".lock", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    let out = command
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl to make Azurite's certificate (is openssl installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "making Azurite's certificate in {} failed ({}): {}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((dir.join("cert.pem"), dir.join("key.pem")))
}

/// A rustls client that trusts `ca_file` alone.
fn client_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
        roots.add(cert).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether an HTTPS server trusted by `tls` answers on loopback `port` (any status).
fn answers_https(port: u16, tls: &Arc<rustls::ClientConfig>) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut tcp) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(2)));
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let Ok(mut connection) = rustls::ClientConnection::new(tls.clone(), name) else { return false };
    let mut stream = rustls::Stream::new(&mut connection, &mut tcp);
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn the_canonical_resource_sorts_and_joins_parameters() {
        // Same inputs, parameters in another order: the same signature.
        let headers = vec![("x-ms-date".to_string(), "Mon, 01 Jan 2024 00:00:00 GMT".to_string())];
        let a = shared_key_authorization("acct", AZURITE_KEY, "GET", "/acct/c?restype=container&comp=list", &headers)
            .unwrap();
        let b = shared_key_authorization("acct", AZURITE_KEY, "GET", "/acct/c?comp=list&restype=container", &headers)
            .unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("SharedKey acct:"));
        let c = shared_key_authorization("acct", AZURITE_KEY, "PUT", "/acct/c?comp=list&restype=container", &headers)
            .unwrap();
        assert_ne!(a, c);
    }
}
