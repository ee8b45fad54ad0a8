//! The driver's parameters, with distribution's names, defaults, coercion and messages
//! (docs/drivers/gcs.md), plus `endpoint` and `STORAGE_EMULATOR_HOST`, and what they make the
//! driver ask its sandbox for.

use std::rc::Rc;

use serde_json::Value;

use regstore_sdk::{Error, Params, Result};

use crate::key::{DEFAULT_TOKEN_URI, ServiceAccount};

/// GCS takes resumable chunks in multiples of this, and it is distribution's smallest chunksize.
pub const MIN_CHUNK_SIZE: i64 = 256 << 10;
const DEFAULT_CHUNK_SIZE: i64 = 16 << 20;
/// A writer holds one chunk in its instance's memory (at most 4 GiB).
const MAX_CHUNK_SIZE: i64 = 2 << 30;
/// distribution's `maxconcurrency` bounds (the minimum it raises a value to, and the default).
const MIN_CONCURRENCY: u64 = 25;
const DEFAULT_CONCURRENCY: u64 = 50;

pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// distribution opens its upload sessions here, so their URIs name it.
pub const LEGACY_UPLOAD_AUTHORITY: &str = "www.googleapis.com:443";
/// The GCE metadata server, by address: the sandbox refuses names that resolve to link-local
/// addresses unless the grant names the address itself.
pub const METADATA_URL: &str = "http://169.254.169.254";
pub const METADATA_AUTHORITY: &str = "169.254.169.254:80";
/// IAM Credentials, which signs redirect URLs for a driver without a key.
pub const IAM_URL: &str = "https://iamcredentials.googleapis.com";
pub const IAM_AUTHORITY: &str = "iamcredentials.googleapis.com:443";
/// Google's clients send every request here when it is set (the emulators' convention).
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://authority`, no trailing `/`.
    pub url: String,
    /// `host:port`, the port defaulting to the scheme's.
    pub authority: String,
    /// Not Google's: the `endpoint` parameter or `STORAGE_EMULATOR_HOST`.
    pub custom: bool,
}

/// How requests are authorised.
#[derive(Debug)]
pub enum Credentials {
    /// `keyfile`: a service-account key, read when the driver opens.
    KeyFile(String),
    /// `credentials`: the key's fields inline.
    Inline(Rc<ServiceAccount>),
    /// Neither, at Google's endpoint: Application Default Credentials from the metadata server.
    Metadata,
    /// Neither, at a custom endpoint: no credentials, as Google's clients do for emulators.
    Anonymous,
}

#[derive(Debug)]
pub struct Config {
    pub bucket: String,
    pub root_directory: String,
    pub chunk_size: u64,
    pub credentials: Credentials,
    pub user_agent: Option<String>,
    pub max_concurrency: u32,
    pub endpoint: Endpoint,
    /// Per-request connect, first-byte and idle limits (`connecttimeout`, `firstbytetimeout`,
    /// `idletimeout`).
    pub timeouts: regstore_objectstore::Timeouts,
}

impl Config {
    /// `env` reads the variables the host handed this driver (`STORAGE_EMULATOR_HOST`).
    pub fn from_params(p: &Params, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let non_empty = |key: &str| -> Result<Option<String>> { Ok(p.string(key)?.filter(|s| !s.is_empty())) };
        let bucket = non_empty("bucket")?.ok_or_else(|| Error::invalid_parameter("no bucket parameter provided"))?;
        let root_directory = p.string("rootdirectory")?.unwrap_or_default().trim().to_string();
        let chunk_size = chunk_size(p.get("chunksize"))?;
        let max_concurrency = p
            .limit("maxconcurrency", MIN_CONCURRENCY, DEFAULT_CONCURRENCY)
            .map_err(|e| Error::invalid_parameter(format!("maxconcurrency config error: {}", detail(&e))))?;
        let user_agent = non_empty("useragent")?;
        if let Some(agent) = &user_agent
            && http::HeaderValue::from_str(agent).is_err()
        {
            return Err(Error::invalid_parameter(format!("invalid useragent {agent:?}: not a valid header value")));
        }

        let endpoint = match non_empty("endpoint")? {
            Some(url) => parse_endpoint(&url, "https", "endpoint")?,
            None => match env(EMULATOR_ENV).filter(|v| !v.trim().is_empty()) {
                Some(host) => parse_endpoint(host.trim(), "http", EMULATOR_ENV)?,
                None => parse_endpoint(DEFAULT_ENDPOINT, "https", "endpoint")?,
            },
        };
        let endpoint = Endpoint { custom: endpoint.url != DEFAULT_ENDPOINT, ..endpoint };

        // As upstream, a keyfile wins over inline credentials.
        let credentials = match (non_empty("keyfile")?, p.get("credentials")) {
            (Some(path), _) => Credentials::KeyFile(path),
            (None, Some(value)) => Credentials::Inline(Rc::new(inline_credentials(value)?)),
            (None, None) if endpoint.custom => Credentials::Anonymous,
            (None, None) => Credentials::Metadata,
        };

        Ok(Config {
            bucket,
            root_directory,
            chunk_size,
            credentials,
            user_agent,
            max_concurrency: max_concurrency.min(u64::from(u32::MAX)) as u32,
            endpoint,
            timeouts: regstore_objectstore::Timeouts::from_params(p)?,
        })
    }

    /// The authorities, `host:port`, that requests go to.
    pub fn authorities(&self) -> Vec<String> {
        let mut out = vec![self.endpoint.authority.clone()];
        if !self.endpoint.custom {
            out.push(LEGACY_UPLOAD_AUTHORITY.into());
        }
        match &self.credentials {
            // The key file is read only when the driver opens: its token_uri is Google's, or
            // the operator grants another one.
            Credentials::KeyFile(_) => out.push(authority_of(DEFAULT_TOKEN_URI)),
            Credentials::Inline(key) => out.push(authority_of(&key.token_uri)),
            Credentials::Metadata => {
                out.push(METADATA_AUTHORITY.into());
                out.push(IAM_AUTHORITY.into());
            }
            Credentials::Anonymous => {}
        }
        out.dedup();
        out
    }

    /// The directory the key file is read from: the driver sees it read-only.
    pub fn key_dir(&self) -> Option<String> {
        match &self.credentials {
            Credentials::KeyFile(path) => Some(match path.rsplit_once('/') {
                Some(("", _)) => "/".to_string(),
                Some((dir, _)) => dir.to_string(),
                None => ".".to_string(),
            }),
            _ => None,
        }
    }

    /// Whether redirect URLs can be signed: with a key, or through IAM with default credentials.
    pub fn can_sign(&self) -> bool {
        !matches!(self.credentials, Credentials::Anonymous)
    }
}

/// The text of an invalid-parameter error.
fn detail(e: &Error) -> String {
    match e {
        Error::InvalidParameter(d) | Error::Other(d) => d.clone(),
        other => format!("{other:?}"),
    }
}

/// distribution's chunksize parsing: a decimal string or an integer, at least 256 KiB and a
/// multiple of it.
fn chunk_size(value: Option<&Value>) -> Result<u64> {
    let size = match value {
        None => DEFAULT_CHUNK_SIZE,
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| Error::invalid_parameter(format!("chunksize must be an integer, {s} invalid")))?,
        Some(Value::Number(n)) => {
            match n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)) {
                Some(i) => i,
                None => return Err(Error::invalid_parameter(format!("invalid valud for chunksize: {n}"))),
            }
        }
        Some(other) => return Err(Error::invalid_parameter(format!("invalid valud for chunksize: {other}"))),
    };
    if size < MIN_CHUNK_SIZE {
        return Err(Error::invalid_parameter(format!(
            "chunksize {size} must be larger than or equal to {MIN_CHUNK_SIZE}"
        )));
    }
    if size % MIN_CHUNK_SIZE != 0 {
        return Err(Error::invalid_parameter(format!("chunksize should be a multiple of {MIN_CHUNK_SIZE}")));
    }
    if size > MAX_CHUNK_SIZE {
        return Err(Error::invalid_parameter(format!(
            "chunksize {size} is more than a driver instance can buffer (at most {MAX_CHUNK_SIZE})"
        )));
    }
    Ok(size as u64)
}

/// `credentials`: the key's fields as a map (YAML), or as a JSON text (`--param`, environment
/// overrides).
fn inline_credentials(value: &Value) -> Result<ServiceAccount> {
    const SOURCE: &str = "the credentials parameter";
    let bad = || Error::invalid_parameter("the credentials were not specified in the correct format");
    match value {
        Value::Object(fields) => ServiceAccount::from_fields(fields, SOURCE),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => ServiceAccount::from_fields(&fields, SOURCE),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// `scheme://host[:port]`, from a URL or a bare `host[:port]` (then `default_scheme`). A
/// trailing `/storage/v1` (how Google's clients write API endpoints) is dropped.
fn parse_endpoint(value: &str, default_scheme: &str, name: &str) -> Result<Endpoint> {
    let bad = |why: &str| Error::invalid_parameter(format!("invalid {name} {value:?}: {why}"));
    let trimmed = value.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/storage/v1").unwrap_or(trimmed);
    let with_scheme =
        if trimmed.contains("://") { trimmed.to_string() } else { format!("{default_scheme}://{trimmed}") };
    let uri: http::Uri = with_scheme.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("it must be scheme://host[:port], without a path or a query"));
    }
    let port = uri.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
    let url = match uri.port_u16() {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    };
    Ok(Endpoint { url, authority: format!("{host}:{port}"), custom: true })
}

/// `host:port` of an http(s) URL.
pub fn authority_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    if has_port { authority.to_string() } else { format!("{authority}:{}", if scheme == "http" { 80 } else { 443 }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::TEST_KEY;

    fn parse(json: &str) -> Result<Config> {
        Config::from_params(&Params::parse(json).unwrap(), |_| None)
    }

    fn message(json: &str) -> String {
        match parse(json) {
            Err(Error::InvalidParameter(m)) => m,
            other => panic!("expected an invalid-parameter error for {json}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_as_distribution() {
        let c = parse(r#"{"bucket":"b"}"#).unwrap();
        assert_eq!((c.chunk_size, c.max_concurrency), (16 << 20, 50));
        assert_eq!(
            c.endpoint,
            Endpoint { url: DEFAULT_ENDPOINT.into(), authority: "storage.googleapis.com:443".into(), custom: false }
        );
        assert!(matches!(c.credentials, Credentials::Metadata));
        assert_eq!(c.root_directory, "");
        assert_eq!(message("{}"), "no bucket parameter provided");
    }

    #[test]
    fn chunk_sizes_as_distribution() {
        assert_eq!(parse(r#"{"bucket":"b","chunksize":"524288"}"#).unwrap().chunk_size, 512 << 10);
        assert_eq!(parse(r#"{"bucket":"b","chunksize":262144}"#).unwrap().chunk_size, 256 << 10);
        assert_eq!(
            message(r#"{"bucket":"b","chunksize":1000}"#),
            "chunksize 1000 must be larger than or equal to 262144"
        );
        assert_eq!(message(r#"{"bucket":"b","chunksize":"300000"}"#), "chunksize should be a multiple of 262144");
        assert_eq!(message(r#"{"bucket":"b","chunksize":"big"}"#), "chunksize must be an integer, big invalid");
        assert_eq!(message(r#"{"bucket":"b","chunksize":true}"#), "invalid valud for chunksize: true");
        assert!(message(r#"{"bucket":"b","chunksize":4294967296}"#).contains("at most 2147483648"));
    }

    #[test]
    fn concurrency_as_distribution() {
        assert_eq!(parse(r#"{"bucket":"b","maxconcurrency":"5"}"#).unwrap().max_concurrency, 25);
        assert_eq!(parse(r#"{"bucket":"b","maxconcurrency":100}"#).unwrap().max_concurrency, 100);
        assert!(message(r#"{"bucket":"b","maxconcurrency":"x"}"#).starts_with("maxconcurrency config error: "));
    }

    #[test]
    fn endpoints() {
        let e = |json: &str| parse(json).unwrap().endpoint;
        let local = e(r#"{"bucket":"b","endpoint":"http://127.0.0.1:4443/"}"#);
        assert_eq!(
            (local.url.as_str(), local.authority.as_str(), local.custom),
            ("http://127.0.0.1:4443", "127.0.0.1:4443", true)
        );
        assert_eq!(e(r#"{"bucket":"b","endpoint":"gcs.example.com"}"#).url, "https://gcs.example.com");
        assert_eq!(
            e(r#"{"bucket":"b","endpoint":"https://gcs.example.com/storage/v1/"}"#).authority,
            "gcs.example.com:443"
        );
        assert_eq!(e(r#"{"bucket":"b","endpoint":"http://[::1]:9000"}"#).authority, "[::1]:9000");
        assert!(message(r#"{"bucket":"b","endpoint":"ftp://x"}"#).contains("http or https"));
        assert!(message(r#"{"bucket":"b","endpoint":"http://x/base"}"#).contains("without a path"));
        // The emulator variable, when the host hands it over; the parameter wins.
        let p = Params::parse(r#"{"bucket":"b"}"#).unwrap();
        let env = |k: &str| (k == EMULATOR_ENV).then(|| "localhost:9023".to_string());
        let c = Config::from_params(&p, env).unwrap();
        assert_eq!(c.endpoint.url, "http://localhost:9023");
        assert!(matches!(c.credentials, Credentials::Anonymous));
        let p = Params::parse(r#"{"bucket":"b","endpoint":"http://127.0.0.1:1"}"#).unwrap();
        assert_eq!(Config::from_params(&p, env).unwrap().endpoint.url, "http://127.0.0.1:1");
    }

    #[test]
    fn credentials_and_what_they_need() {
        let c = parse(r#"{"bucket":"b","endpoint":"http://127.0.0.1:4443"}"#).unwrap();
        assert!(matches!(c.credentials, Credentials::Anonymous) && !c.can_sign());
        assert_eq!(c.authorities(), ["127.0.0.1:4443"]);
        let c = parse(r#"{"bucket":"b"}"#).unwrap();
        assert!(c.can_sign());
        assert_eq!(
            c.authorities(),
            [
                "storage.googleapis.com:443",
                "www.googleapis.com:443",
                "169.254.169.254:80",
                "iamcredentials.googleapis.com:443"
            ]
        );
        let c = parse(r#"{"bucket":"b","keyfile":"/etc/gcs/key.json","credentials":{}}"#).unwrap();
        assert!(matches!(&c.credentials, Credentials::KeyFile(p) if p == "/etc/gcs/key.json"));
        assert_eq!(c.key_dir().as_deref(), Some("/etc/gcs"));
        assert_eq!(
            c.authorities(),
            ["storage.googleapis.com:443", "www.googleapis.com:443", "oauth2.googleapis.com:443"]
        );
        assert_eq!(parse(r#"{"bucket":"b","keyfile":"key.json"}"#).unwrap().key_dir().as_deref(), Some("."));
        assert_eq!(parse(r#"{"bucket":"b","keyfile":"/key.json"}"#).unwrap().key_dir().as_deref(), Some("/"));

        let mut fields: serde_json::Map<String, Value> = serde_json::from_str(TEST_KEY).unwrap();
        fields.insert("token_uri".into(), "http://127.0.0.1:7000/token".into());
        let json = serde_json::json!({"bucket": "b", "endpoint": "http://127.0.0.1:4443", "credentials": fields});
        let c = parse(&json.to_string()).unwrap();
        assert!(matches!(&c.credentials, Credentials::Inline(k) if k.token_uri == "http://127.0.0.1:7000/token"));
        assert_eq!(c.authorities(), ["127.0.0.1:4443", "127.0.0.1:7000"]);
        // The same fields as a JSON text, as --param and environment overrides give them.
        let json = serde_json::json!({"bucket": "b", "credentials": Value::Object(fields).to_string()});
        assert!(matches!(parse(&json.to_string()).unwrap().credentials, Credentials::Inline(_)));
        assert_eq!(
            message(r#"{"bucket":"b","credentials":7}"#),
            "the credentials were not specified in the correct format"
        );
        assert_eq!(
            message(r#"{"bucket":"b","credentials":"nope"}"#),
            "the credentials were not specified in the correct format"
        );
        assert_eq!(
            message(r#"{"bucket":"b","credentials":{"type":"service_account"}}"#),
            "the credentials parameter has no client_email"
        );
    }

    #[test]
    fn authorities_of_urls() {
        assert_eq!(authority_of("https://oauth2.googleapis.com/token"), "oauth2.googleapis.com:443");
        assert_eq!(authority_of("http://127.0.0.1:7000/token"), "127.0.0.1:7000");
        assert_eq!(authority_of("http://[::1]/t"), "[::1]:80");
        assert_eq!(authority_of("http://[::1]:81/t"), "[::1]:81");
    }

    #[test]
    fn user_agents_must_be_header_values() {
        assert_eq!(
            parse(r#"{"bucket":"b","useragent":"registry/3"}"#).unwrap().user_agent.as_deref(),
            Some("registry/3")
        );
        assert!(message(r#"{"bucket":"b","useragent":"a\nb"}"#).starts_with("invalid useragent"));
    }
}
