//! The driver's parameters, with distribution's names, defaults and error texts
//! (docs/drivers/azure.md), and what regstore adds: a connection string that is honoured, a
//! shared key assumed when a key is given without a credentials type, and a configurable Entra
//! ID authority host.

use std::time::Duration;

use regstore_sdk::{Error, Params, Result};
use serde_json::Value;

const DEFAULT_REALM: &str = "core.windows.net";
const DEFAULT_MAX_RETRIES: i64 = 5;
const DEFAULT_RETRY_DELAY: &str = "100ms";
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// The instance metadata endpoint managed identities get tokens from.
pub const METADATA_AUTHORITY: &str = "169.254.169.254:80";
/// The variables workload identity reads (set by AKS's webhook).
pub const WORKLOAD_IDENTITY_ENV: [&str; 4] =
    ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    SharedKey {
        key: Vec<u8>,
    },
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: String,
        authority_host: String,
    },
    /// Workload identity (a federated token file), then managed identity (the metadata endpoint).
    Default {
        federated_token_file: Option<String>,
        authority_host: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub account_name: String,
    pub container: String,
    pub credentials: Credentials,
    /// Without a trailing '/': `https://ACCOUNT.blob.core.windows.net`, or Azurite's
    /// `https://127.0.0.1:10000/devstoreaccount1`.
    pub service_url: String,
    pub root_directory: String,
    /// Polls of a pending copy in `Move`, and re-checks of an append that may have landed;
    /// `-1`: do not wait for a copy at all.
    pub max_retries: i64,
    pub retry_delay: Duration,
    /// Per-request connect, first-byte and idle limits (`connecttimeout`, `firstbytetimeout`,
    /// `idletimeout`).
    pub timeouts: regstore_objectstore::Timeouts,
}

impl Config {
    pub fn from_params(p: &Params) -> Result<Self> {
        let text = |key: &str| -> Result<String> { Ok(p.string(key)?.unwrap_or_default()) };
        let connection = parse_connection_string(&text("connectionstring")?)?;
        let from_connection =
            |key: &str| connection.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());

        let account_name = Some(text("accountname")?)
            .filter(|s| !s.is_empty())
            .or_else(|| from_connection("AccountName"))
            .ok_or_else(|| Error::invalid_parameter("no accountname parameter provided"))?;
        let container = Some(text("container")?)
            .filter(|s| !s.is_empty())
            // distribution's text, typo included.
            .ok_or_else(|| Error::invalid_parameter("no container parameter provider"))?;
        let account_key = Some(text("accountkey")?).filter(|s| !s.is_empty()).or_else(|| from_connection("AccountKey"));
        let realm = Some(text("realm")?).filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_REALM.into());
        let service_url = Some(text("serviceurl")?)
            .filter(|s| !s.is_empty())
            .or_else(|| from_connection("BlobEndpoint"))
            .unwrap_or_else(|| format!("https://{account_name}.blob.{realm}"))
            .trim_end_matches('/')
            .to_string();
        if !(service_url.starts_with("https://") || service_url.starts_with("http://")) {
            return Err(Error::invalid_parameter(format!(
                "invalid serviceurl {service_url:?}: it must start with https:// (or http:// for an emulator)"
            )));
        }
        if p.bool("skipverify", false)? && service_url.starts_with("https://") {
            return Err(Error::invalid_parameter(
                "skipverify=true is not supported: TLS is verified by the host for every driver; give it the \
                 endpoint's CA (--ca-file), or use an http:// serviceurl",
            ));
        }
        let credentials = credentials(p.get("credentials"), account_key)?;

        let max_retries = match p.i64("max_retries", 0)? {
            0 => DEFAULT_MAX_RETRIES,
            n if n < -1 => {
                return Err(Error::invalid_parameter(format!("max_retries must be -1 or more, not {n}")));
            }
            n => n,
        };
        let delay_text =
            Some(text("retry_delay")?).filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_RETRY_DELAY.into());
        let retry_delay = regstore_objectstore::time::parse_go_duration(&delay_text)
            .map_err(|e| Error::invalid_parameter(format!("invalid retry_delay {delay_text:?}: {e}")))?;

        Ok(Config {
            account_name,
            container,
            credentials,
            service_url,
            root_directory: text("rootdirectory")?,
            max_retries,
            retry_delay,
            timeouts: regstore_objectstore::Timeouts::from_params(p)?,
        })
    }

    /// `host:port` of the service URL.
    pub fn service_authority(&self) -> String {
        authority(&self.service_url)
    }

    /// Authorities this configuration sends requests to, besides the metadata endpoint.
    pub fn authorities(&self) -> Vec<String> {
        let mut out = vec![self.service_authority()];
        match &self.credentials {
            Credentials::ClientSecret { authority_host, .. } => out.push(authority(authority_host)),
            Credentials::Default { authority_host, .. } => {
                out.push(authority(authority_host.as_deref().unwrap_or(DEFAULT_AUTHORITY_HOST)))
            }
            Credentials::SharedKey { .. } => {}
        }
        out.dedup();
        out
    }
}

fn credentials(value: Option<&Value>, account_key: Option<String>) -> Result<Credentials> {
    let map = match value {
        None => None,
        Some(Value::Object(map)) => Some(map),
        // The CLI and environment overrides hand maps over as JSON text.
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            return credentials(
                Some(&serde_json::from_str(s).map_err(|e| Error::invalid_parameter(format!("credentials: {e}")))?),
                account_key,
            );
        }
        Some(other) => {
            return Err(Error::invalid_parameter(format!("credentials must be a map with a type, not {other}")));
        }
    };
    let field = |key: &str| -> String {
        map.and_then(|m| m.get(key))
            .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
            .unwrap_or_default()
    };
    let kind = field("type");
    // distribution requires a type; a key given alone plainly means a shared key.
    let kind = if map.is_none() && account_key.is_some() { "shared_key".to_string() } else { kind };
    match kind.as_str() {
        "shared_key" => {
            let key = account_key
                .ok_or_else(|| Error::invalid_parameter("shared_key credentials need the accountkey parameter"))?;
            let key = base64_decode(&key)
                .map_err(|_| Error::invalid_parameter("the accountkey parameter is not valid base64"))?;
            Ok(Credentials::SharedKey { key })
        }
        "client_secret" => {
            let (tenant_id, client_id, secret) = (field("tenantid"), field("clientid"), field("secret"));
            for (name, value) in [("tenantid", &tenant_id), ("clientid", &client_id), ("secret", &secret)] {
                if value.is_empty() {
                    return Err(Error::invalid_parameter(format!("client_secret credentials need credentials.{name}")));
                }
            }
            let authority_host =
                Some(field("authorityhost")).filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.into());
            Ok(Credentials::ClientSecret {
                tenant_id,
                client_id,
                secret,
                authority_host: authority_host.trim_end_matches('/').into(),
            })
        }
        "default_credentials" => Ok(Credentials::Default {
            federated_token_file: Some(field("federatedtokenfile")).filter(|s| !s.is_empty()),
            authority_host: Some(field("authorityhost"))
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_end_matches('/').into()),
        }),
        other => Err(Error::invalid_parameter(format!(
            "invalid credentials type: {other:?} (one of shared_key, client_secret, default_credentials)"
        ))),
    }
}

/// `Key=Value;Key=Value` pairs; the key's base64 may itself contain '='.
fn parse_connection_string(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| Error::invalid_parameter(format!("connectionstring: {part:?} is not Key=Value")))?;
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// `host:port` of an http(s) URL.
pub fn authority(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let has_port =
        host.rsplit_once(':').is_some_and(|(h, p)| p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')));
    if has_port { host.to_string() } else { format!("{host}:{}", if scheme == "http" { 80 } else { 443 }) }
}

pub fn base64_decode(text: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn config(json: &str) -> Result<Config> {
        Config::from_params(&Params::parse(json).unwrap())
    }

    fn message(json: &str) -> String {
        match config(json).unwrap_err() {
            Error::InvalidParameter(detail) => detail,
            other => panic!("not an invalid-parameter error: {other:?}"),
        }
    }

    #[test]
    fn required_parameters_with_distributions_texts() {
        assert!(message(r#"{"container":"c"}"#).contains("no accountname parameter provided"));
        assert!(message(r#"{"accountname":"a"}"#).contains("no container parameter provider"));
        assert!(
            message(r#"{"accountname":"a","container":"c","credentials":{"type":"default"}}"#)
                .contains("invalid credentials type: \"default\"")
        );
        assert!(message(r#"{"accountname":"a","container":"c"}"#).contains("invalid credentials type: \"\""));
    }

    #[test]
    fn defaults() {
        let c = config(&format!(r#"{{"accountname":"acct","container":"c","accountkey":"{KEY}"}}"#)).unwrap();
        assert_eq!(c.service_url, "https://acct.blob.core.windows.net");
        assert_eq!(c.service_authority(), "acct.blob.core.windows.net:443");
        assert_eq!((c.max_retries, c.retry_delay), (5, Duration::from_millis(100)));
        assert!(matches!(c.credentials, Credentials::SharedKey { .. }));
        let c = config(&format!(
            r#"{{"accountname":"acct","container":"c","accountkey":"{KEY}","realm":"core.chinacloudapi.cn","max_retries":"-1","retry_delay":"1.5s"}}"#
        ))
        .unwrap();
        assert_eq!(c.service_url, "https://acct.blob.core.chinacloudapi.cn");
        assert_eq!((c.max_retries, c.retry_delay), (-1, Duration::from_millis(1500)));
    }

    #[test]
    fn connection_strings_are_honoured() {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        );
        let c = config(&serde_json::json!({"connectionstring": cs, "container": "c"}).to_string()).unwrap();
        assert_eq!(c.account_name, "devstoreaccount1");
        assert_eq!(c.service_url, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(c.authorities(), ["127.0.0.1:10000"]);
        assert!(matches!(c.credentials, Credentials::SharedKey { ref key } if key.len() == 64));
    }

    #[test]
    fn token_credentials() {
        let c = config(
            r#"{"accountname":"a","container":"c","credentials":{"type":"client_secret","clientid":"i","tenantid":"t","secret":"s","authorityhost":"https://127.0.0.1:9/"}}"#,
        )
        .unwrap();
        assert_eq!(c.authorities(), ["a.blob.core.windows.net:443", "127.0.0.1:9"]);
        assert!(
            message(r#"{"accountname":"a","container":"c","credentials":{"type":"client_secret","clientid":"i"}}"#)
                .contains("credentials.tenantid")
        );
        let c = config(r#"{"accountname":"a","container":"c","credentials":"{\"type\":\"default_credentials\"}"}"#)
            .unwrap();
        assert_eq!(c.authorities(), ["a.blob.core.windows.net:443", "login.microsoftonline.com:443"]);
    }

    #[test]
    fn refusals() {
        let base = format!(r#""accountname":"a","container":"c","accountkey":"{KEY}""#);
        assert!(message(&format!(r#"{{{base},"skipverify":true}}"#)).contains("skipverify=true is not supported"));
        assert!(config(&format!(r#"{{{base},"skipverify":true,"serviceurl":"http://127.0.0.1:1/a"}}"#)).is_ok());
        assert!(message(&format!(r#"{{{base},"retry_delay":"soon"}}"#)).contains("invalid retry_delay"));
        assert!(message(&format!(r#"{{{base},"max_retries":-2}}"#)).contains("max_retries"));
        assert!(message(&format!(r#"{{{base},"serviceurl":"ftp://x"}}"#)).contains("invalid serviceurl"));
        assert!(message(r#"{"accountname":"a","container":"c","accountkey":"%%%"}"#).contains("base64"));
    }
}
