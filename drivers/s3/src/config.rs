//! The driver's parameters, with distribution's names, defaults, coercion and error texts
//! (docs/drivers/s3.md).

use regstore_objectstore::Timeouts;
use regstore_sdk::{Error, Params, Result};

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;
/// S3's smallest part (all but the last) and distribution's smallest `chunksize`.
pub const MIN_CHUNK_SIZE: i64 = 5 * MIB;
const MAX_CHUNK_SIZE: i64 = 5 * GIB;

const STORAGE_CLASSES: [&str; 9] = [
    "NONE",
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "OUTPOSTS",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

const OBJECT_ACLS: [&str; 7] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// The variables that carry AWS credentials when the parameters do not.
pub const CREDENTIALS_ENV: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

#[derive(Debug, Clone)]
pub struct Config {
    pub credentials: Option<Credentials>,
    pub region: String,
    /// The endpoint every request goes to, with its scheme; `None` lets the SDK derive the AWS
    /// endpoint from the region and the addressing options.
    pub endpoint: Option<String>,
    /// `host:port` of the endpoint requests go to, the SDK's or the given one.
    pub authority: String,
    pub force_path_style: bool,
    pub bucket: String,
    pub encrypt: bool,
    pub key_id: Option<String>,
    pub chunk_size: u64,
    pub copy_chunk_size: u64,
    pub copy_max_concurrency: usize,
    pub copy_threshold: u64,
    pub root_directory: String,
    /// `None` for `NONE`: send no storage class.
    pub storage_class: Option<String>,
    pub object_acl: String,
    pub user_agent: Option<String>,
    pub dual_stack: bool,
    pub accelerate: bool,
    /// Per-request connect, first-byte and idle limits (`connecttimeout`, `firstbytetimeout`,
    /// `idletimeout`; regstore's own parameters).
    pub timeouts: Timeouts,
    pub fips: bool,
    /// Scheme and authority that replace the endpoint's in presigned redirect URLs.
    pub redirect_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl Config {
    /// `env` reads the variables the host handed this driver (`AWS_ACCESS_KEY_ID`, ...).
    pub fn from_params(p: &Params, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let text = |key: &str| -> Result<String> { Ok(p.string(key)?.unwrap_or_default()) };
        let non_empty = |key: &str| -> Result<Option<String>> { Ok(Some(text(key)?).filter(|s| !s.is_empty())) };

        let region_endpoint = non_empty("regionendpoint")?;
        let region = match (non_empty("region")?, &region_endpoint) {
            (Some(region), Some(_)) => region,
            (Some(region), None) if is_aws_region(&region) => region,
            (Some(region), None) => return Err(Error::invalid_parameter(format!("invalid region provided: {region}"))),
            // A custom endpoint (MinIO and others) rarely cares; SigV4 needs some region.
            (None, Some(_)) => "us-east-1".to_string(),
            (None, None) => return Err(Error::invalid_parameter("no region parameter provided")),
        };
        let bucket = non_empty("bucket")?.ok_or_else(|| Error::invalid_parameter("no bucket parameter provided"))?;

        let secure = p.bool("secure", true)?;
        let endpoint = match region_endpoint {
            Some(ep) if ep.contains("://") => Some(ep.trim_end_matches('/').to_string()),
            Some(ep) => Some(format!("{}://{}", if secure { "https" } else { "http" }, ep.trim_end_matches('/'))),
            // The AWS endpoint over plain HTTP: only the SDK's https default would be wrong here.
            None if !secure => Some(format!("http://s3.{region}.{}", aws_domain(&region))),
            None => None,
        };

        if !p.bool("v4auth", true)? {
            return Err(Error::invalid_parameter(
                "v4auth=false is not supported: regstore signs every request with AWS Signature Version 4, \
                 which Amazon S3 and current S3-compatible stores require",
            ));
        }
        if p.bool("skipverify", false)? && endpoint.as_deref().is_none_or(|e| e.starts_with("https://")) {
            return Err(Error::invalid_parameter(
                "skipverify=true is not supported: TLS is verified by the host for every driver; \
                 give the endpoint a certificate the host trusts, or use an http:// regionendpoint",
            ));
        }

        let (dual_stack, accelerate, fips) =
            (p.bool("usedualstack", false)?, p.bool("accelerate", false)?, p.bool("usefipsendpoint", false)?);
        let authority = match &endpoint {
            Some(endpoint) => endpoint_authority(endpoint)?,
            None => format!("{}:443", aws_host(&region, dual_stack, accelerate, fips)),
        };

        let credentials =
            credentials(non_empty("accesskey")?, non_empty("secretkey")?, non_empty("sessiontoken")?, env);

        let chunk_size = p.i64("chunksize", 2 * MIN_CHUNK_SIZE)?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(Error::invalid_parameter(format!(
                "the chunksize {chunk_size} parameter should be a number between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} (inclusive)"
            )));
        }
        let copy_chunk_size = p.i64_in("multipartcopychunksize", 32 * MIB, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)?;
        let copy_max_concurrency = p.i64_in("multipartcopymaxconcurrency", 100, 1, i64::MAX)?;
        let copy_threshold = p.i64_in("multipartcopythresholdsize", 32 * MIB, 0, MAX_CHUNK_SIZE)?;

        let storage_class = match p.get("storageclass") {
            None => "STANDARD".to_string(),
            Some(serde_json::Value::String(s)) => s.to_uppercase(),
            Some(v) => return Err(invalid_storage_class(v)),
        };
        if !STORAGE_CLASSES.contains(&storage_class.as_str()) {
            return Err(invalid_storage_class(&storage_class));
        }
        let object_acl = non_empty("objectacl")?.unwrap_or_else(|| "private".into());
        if !OBJECT_ACLS.contains(&object_acl.as_str()) {
            return Err(Error::invalid_parameter(format!("invalid value for objectacl parameter: {object_acl}")));
        }

        Ok(Config {
            credentials,
            region,
            endpoint,
            authority,
            force_path_style: p.bool("forcepathstyle", false)?,
            bucket,
            encrypt: p.bool("encrypt", false)?,
            key_id: non_empty("keyid")?,
            chunk_size: chunk_size as u64,
            copy_chunk_size: copy_chunk_size as u64,
            copy_max_concurrency: copy_max_concurrency.min(10_000) as usize,
            copy_threshold: copy_threshold as u64,
            root_directory: text("rootdirectory")?,
            storage_class: (storage_class != "NONE").then_some(storage_class),
            object_acl,
            user_agent: non_empty("useragent")?,
            dual_stack,
            accelerate,
            fips,
            redirect_endpoint: non_empty("redirectendpoint")?.map(|e| redirect_endpoint(&e)).transpose()?,
            timeouts: Timeouts::from_params(p)?,
        })
    }
}

impl Config {
    /// The authorities, `host:port`, that requests go to: the endpoint (path-style requests)
    /// and, unless path-style is forced, the bucket's virtual host under it.
    pub fn authorities(&self) -> Vec<String> {
        let mut authorities = vec![self.authority.clone()];
        if !self.force_path_style {
            authorities.push(format!("{}.{}", self.bucket, self.authority));
        }
        authorities
    }
}

/// The AWS endpoint's host that the region and the addressing options select, as the SDK's
/// endpoint rules do.
fn aws_host(region: &str, dual_stack: bool, accelerate: bool, fips: bool) -> String {
    let domain = aws_domain(region);
    let dual_stack = if dual_stack { ".dualstack" } else { "" };
    if accelerate {
        format!("s3-accelerate{dual_stack}.{domain}")
    } else {
        let fips = if fips { "-fips" } else { "" };
        format!("s3{fips}{dual_stack}.{region}.{domain}")
    }
}

/// `host:port` of an endpoint URL, the port defaulting to its scheme's.
fn endpoint_authority(endpoint: &str) -> Result<String> {
    let bad = |why: String| Error::invalid_parameter(format!("invalid regionendpoint {endpoint:?}: {why}"));
    let uri: http::Uri = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host".into()))?;
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
    Ok(format!("{host}:{port}"))
}

fn invalid_storage_class(value: impl std::fmt::Display) -> Error {
    Error::invalid_parameter(format!("the storageclass parameter must be one of {STORAGE_CLASSES:?}, {value} invalid"))
}

/// Static keys when both are given, else the variables the host handed over (upstream reads
/// the SDK's default chain; instance roles are out of a sandboxed driver's reach).
fn credentials(
    access_key: Option<String>,
    secret_key: Option<String>,
    session_token: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Credentials> {
    match (access_key, secret_key) {
        (Some(access_key), Some(secret_key)) => Some(Credentials { access_key, secret_key, session_token }),
        _ => Some(Credentials {
            access_key: env("AWS_ACCESS_KEY_ID").filter(|s| !s.is_empty())?,
            secret_key: env("AWS_SECRET_ACCESS_KEY").filter(|s| !s.is_empty())?,
            session_token: env("AWS_SESSION_TOKEN").filter(|s| !s.is_empty()),
        }),
    }
}

/// Whether `region` names a region of one of the AWS partitions.
fn is_aws_region(region: &str) -> bool {
    const PREFIXES: [&str; 16] = [
        "us-gov-", "us-isob-", "us-isof-", "us-iso-", "eu-isoe-", "eusc-", "us-", "eu-", "ap-", "sa-", "ca-", "me-",
        "af-", "il-", "mx-", "cn-",
    ];
    let Some(rest) = PREFIXES.iter().find_map(|p| region.strip_prefix(p)) else { return false };
    match rest.rsplit_once('-') {
        Some((name, number)) => {
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase())
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The DNS suffix of the partition a region belongs to.
pub fn aws_domain(region: &str) -> &'static str {
    if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" }
}

/// `redirectendpoint`: a scheme and a host, no path other than `/`, no query.
fn redirect_endpoint(value: &str) -> Result<String> {
    let bad = |why: String| Error::invalid_parameter(why);
    let uri: http::Uri = value.parse().map_err(|e| bad(format!("invalid redirectendpoint {value:?}: {e}")))?;
    let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme specified for redirectendpoint".into()))?;
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| bad("no host specified for redirectendpoint".into()))?;
    let path = uri.path();
    if !(path.is_empty() || path == "/") || value.trim_end_matches('/').matches('/').count() > 2 {
        return Err(bad(format!("redirectendpoint cannot contain a base path: {path}")));
    }
    if uri.query().is_some() {
        return Err(bad("redirectendpoint cannot contain query parameters".into()));
    }
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config> {
        Config::from_params(&Params::parse(json).unwrap(), |_| None)
    }

    fn message(json: &str) -> String {
        match parse(json) {
            Err(Error::InvalidParameter(m)) => m,
            other => panic!("expected an invalid-parameter error for {json}, got {other:?}"),
        }
    }

    const BASE: &str = r#""bucket":"b","region":"us-east-1","accesskey":"a","secretkey":"s""#;

    #[test]
    fn defaults_as_distribution() {
        let c = parse(&format!("{{{BASE}}}")).unwrap();
        assert_eq!(c.chunk_size, 10 << 20);
        assert_eq!((c.copy_chunk_size, c.copy_max_concurrency, c.copy_threshold), (32 << 20, 100, 32 << 20));
        assert_eq!(c.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(c.object_acl, "private");
        assert_eq!(c.endpoint, None);
    }

    #[test]
    fn required_parameters() {
        assert_eq!(message(r#"{"region":"us-east-1"}"#), "no bucket parameter provided");
        assert_eq!(message(r#"{"bucket":"b"}"#), "no region parameter provided");
        assert_eq!(message(r#"{"bucket":"b","region":"mars-1"}"#), "invalid region provided: mars-1");
        let c = parse(r#"{"bucket":"b","regionendpoint":"127.0.0.1:9000","secure":"false"}"#).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn strings_coerce() {
        let c = parse(&format!(
            r#"{{{BASE},"chunksize":"5242880","forcepathstyle":"true","encrypt":"1","storageclass":"reduced_redundancy"}}"#
        ))
        .unwrap();
        assert_eq!(c.chunk_size, 5 << 20);
        assert!(c.force_path_style && c.encrypt);
        assert_eq!(c.storage_class.as_deref(), Some("REDUCED_REDUNDANCY"));
        assert!(message(&format!(r#"{{{BASE},"chunksize":1}}"#)).starts_with("the chunksize 1 parameter should be"));
        assert!(message(&format!(r#"{{{BASE},"encrypt":"maybe"}}"#)).contains("should be a boolean"));
        assert_eq!(parse(&format!(r#"{{{BASE},"storageclass":"none"}}"#)).unwrap().storage_class, None);
    }

    #[test]
    fn rejected_values_say_why() {
        assert!(message(&format!(r#"{{{BASE},"storageclass":"COLD"}}"#)).contains("COLD invalid"));
        assert!(message(&format!(r#"{{{BASE},"storageclass":3}}"#)).starts_with("the storageclass parameter must"));
        assert_eq!(message(&format!(r#"{{{BASE},"objectacl":"x"}}"#)), "invalid value for objectacl parameter: x");
        assert!(message(&format!(r#"{{{BASE},"v4auth":false}}"#)).contains("v4auth=false is not supported"));
        assert!(message(&format!(r#"{{{BASE},"redirectendpoint":"cdn.example.com"}}"#)).contains("no scheme"));
        assert!(
            message(&format!(r#"{{{BASE},"redirectendpoint":"https://cdn.example.com/p"}}"#)).contains("base path")
        );
        assert!(message(&format!(r#"{{{BASE},"redirectendpoint":"https://cdn.example.com?a=b"}}"#)).contains("query"));
        let c = parse(&format!(r#"{{{BASE},"redirectendpoint":"https://cdn.example.com/"}}"#)).unwrap();
        assert_eq!(c.redirect_endpoint.as_deref(), Some("https://cdn.example.com"));
    }

    #[test]
    fn credentials_from_params_or_env() {
        let c = parse(&format!("{{{BASE},\"sessiontoken\":\"t\"}}")).unwrap().credentials.unwrap();
        assert_eq!((c.access_key.as_str(), c.session_token.as_deref()), ("a", Some("t")));
        let env = |k: &str| (k != "AWS_SESSION_TOKEN").then(|| format!("env-{k}"));
        let p = Params::parse(r#"{"bucket":"b","region":"eu-west-1"}"#).unwrap();
        let c = Config::from_params(&p, env).unwrap().credentials.unwrap();
        assert_eq!(c.access_key, "env-AWS_ACCESS_KEY_ID");
        assert!(parse(r#"{"bucket":"b","region":"eu-west-1"}"#).unwrap().credentials.is_none());
    }
}
