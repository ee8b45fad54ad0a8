//! What each bundled driver is granted, derived from its documented parameters (a third-party
//! driver gets only what the operator grants). The drivers validate their parameters
//! themselves; here an unreadable parameter just grants nothing.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::registry::Params;
use crate::sandbox::Sandbox;
use regstore_api::Error;

/// Other names of bundled drivers: (alias, name). distribution registers s3 as both.
pub(crate) const ALIASES: &[(&str, &str)] = &[("s3aws", "s3")];

/// The sandbox a bundled driver needs for its documented parameters, and nothing more.
pub(crate) fn bundled_sandbox(name: &str, params: &Params) -> Result<Sandbox, Error> {
    let mut sandbox = Sandbox::default();
    match name {
        // Its content lives in its memory: let it use all a 32-bit guest can address.
        "inmemory" => sandbox.memory_limit = 4 << 30,
        // Exactly its root directory, created if missing, as distribution does.
        "filesystem" => {
            let root = filesystem_root(params)?;
            std::fs::create_dir_all(&root).map_err(|e| {
                Error::other("filesystem", format!("cannot create rootdirectory {}: {e}", root.display()))
            })?;
            sandbox.dirs.push(root);
            // It keeps no state in memory: a pool serves concurrent calls in parallel, and an
            // instance that grew for a large PutContent or GetContent is recycled after it.
            sandbox.instances = STATELESS_INSTANCES;
            sandbox.memory_limit = 4 << 30;
        }
        // Only its endpoint; its credentials when the parameters do not carry them. A pool, as
        // for filesystem; a writer buffers up to `chunksize` (at most 5 GiB) in its instance.
        "s3" | "s3aws" => {
            sandbox.hosts = s3_authorities(params);
            sandbox.env = s3_credentials_env(params);
            sandbox.instances = STATELESS_INSTANCES;
            sandbox.memory_limit = 4 << 30;
            // Calls wait on the network: a multipart copy of a large blob takes minutes.
            sandbox.call_deadline = Duration::from_secs(15 * 60);
        }
        _ => {}
    }
    Ok(sandbox)
}

/// How many instances may serve one stateless driver: enough for the concurrency of a
/// registry's uploads on a small machine; each is created only when the others are busy.
const STATELESS_INSTANCES: usize = 8;

/// A bundled driver's parameters as its component must see them.
pub(crate) fn bundled_params(name: &str, params: &Params) -> Params {
    let mut params = params.clone();
    if name == "filesystem" {
        // The guest sees its root at the host path; a relative one is made absolute here.
        if let Ok(root) = filesystem_root(&params) {
            params.insert("rootdirectory".into(), Value::String(root.display().to_string()));
        }
    }
    params
}

/// The filesystem driver's `rootdirectory`, absolute (default `/var/lib/registry`).
fn filesystem_root(params: &Params) -> Result<PathBuf, Error> {
    let root = match params.get("rootdirectory") {
        None | Some(Value::Null) => "/var/lib/registry".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(v) => {
            return Err(Error::InvalidParameter {
                driver: "filesystem".into(),
                detail: format!("the rootdirectory parameter should be a string, not {v}"),
            });
        }
    };
    std::path::absolute(&root).map_err(|e| Error::InvalidParameter {
        driver: "filesystem".into(),
        detail: format!("rootdirectory {root:?}: {e}"),
    })
}

/// The authorities the s3 driver's requests go to: `regionendpoint`, or the AWS endpoint that
/// the region and addressing options select, each path-style and virtual-hosted, on the port
/// of the scheme.
fn s3_authorities(params: &Params) -> Vec<String> {
    let secure = param_bool(params, "secure", true);
    let bucket = param_text(params, "bucket").unwrap_or_default();
    let (host, port) = match param_text(params, "regionendpoint") {
        Some(endpoint) => {
            let uri = if endpoint.contains("://") {
                endpoint
            } else {
                format!("{}://{endpoint}", if secure { "https" } else { "http" })
            };
            let Ok(uri) = uri.parse::<http::Uri>() else { return Vec::new() };
            let Some(host) = uri.host() else { return Vec::new() };
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
            (host.to_string(), port)
        }
        None => {
            let Some(region) = param_text(params, "region") else { return Vec::new() };
            let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
            let dualstack = if param_bool(params, "usedualstack", false) { ".dualstack" } else { "" };
            let host = if param_bool(params, "accelerate", false) {
                format!("s3-accelerate{dualstack}.{domain}")
            } else {
                let fips = if param_bool(params, "usefipsendpoint", false) { "-fips" } else { "" };
                format!("s3{fips}{dualstack}.{region}.{domain}")
            };
            (host, if secure { 443 } else { 80 })
        }
    };
    let mut hosts = vec![format!("{host}:{port}")];
    if !bucket.is_empty() && !param_bool(params, "forcepathstyle", false) {
        hosts.push(format!("{bucket}.{host}:{port}"));
    }
    hosts
}

/// The AWS credentials of the host's environment, handed over only when the parameters do not
/// name both keys (distribution falls back to the SDK's default chain then).
fn s3_credentials_env(params: &Params) -> Vec<(String, String)> {
    if param_text(params, "accesskey").is_some() && param_text(params, "secretkey").is_some() {
        return Vec::new();
    }
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// A non-empty parameter as text (numbers and booleans printed), as the drivers read it.
fn param_text(params: &Params, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// A boolean parameter as distribution parses it; anything unreadable is the default here.
fn param_bool(params: &Params, key: &str, default: bool) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => default,
        },
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn s3_grants_only_its_endpoint() {
        let p = params(r#"{"regionendpoint":"http://127.0.0.1:9000","forcepathstyle":"true","bucket":"b"}"#);
        assert_eq!(s3_authorities(&p), ["127.0.0.1:9000"]);
        let p = params(r#"{"regionendpoint":"minio.local","secure":false,"bucket":"b"}"#);
        assert_eq!(s3_authorities(&p), ["minio.local:80", "b.minio.local:80"]);
        let p = params(r#"{"region":"eu-west-1","bucket":"b"}"#);
        assert_eq!(s3_authorities(&p), ["s3.eu-west-1.amazonaws.com:443", "b.s3.eu-west-1.amazonaws.com:443"]);
        let p = params(r#"{"region":"cn-north-1","bucket":"b","usefipsendpoint":true,"usedualstack":"1"}"#);
        assert_eq!(s3_authorities(&p)[0], "s3-fips.dualstack.cn-north-1.amazonaws.com.cn:443");
        let p = params(r#"{"region":"us-east-1","bucket":"b","accelerate":true}"#);
        assert_eq!(s3_authorities(&p)[1], "b.s3-accelerate.amazonaws.com:443");
        assert!(s3_authorities(&params(r#"{"bucket":"b"}"#)).is_empty());
    }

    #[test]
    fn s3_credentials_come_from_params_first() {
        let p = params(r#"{"accesskey":"a","secretkey":"s"}"#);
        assert!(s3_credentials_env(&p).is_empty());
    }
}
