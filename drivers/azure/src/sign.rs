//! Shared Key authorization and SAS tokens, from Azure Storage's published string-to-sign
//! formats ("Authorize with Shared Key", "Create a service SAS", "Create a user delegation
//! SAS"), with HMAC-SHA256 over the account key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

use regstore_objectstore::Request;

/// The REST API version every request names.
pub const API_VERSION: &str = "2021-12-02";

/// Characters escaped in a blob name within a URL path: all but unreserved ones and '/'.
const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
/// Characters escaped in a query value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY).to_string()
}

fn hmac(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(text.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Adds `Authorization: SharedKey account:signature` to a request whose `x-ms-date` and
/// `x-ms-version` are set.
pub fn sign_shared_key(request: Request, account: &str, key: &[u8]) -> Request {
    let text = string_to_sign(&request, account);
    let signature = hmac(key, &text);
    request.header("authorization", format!("SharedKey {account}:{signature}"))
}

/// The Shared Key string-to-sign of a request (service version 2015-02-21 or later).
pub fn string_to_sign(request: &Request, account: &str) -> String {
    let header = |name: &str| request.header_value(name).unwrap_or("").to_string();
    let length = if request.body.is_empty() { String::new() } else { request.body.len().to_string() };
    let mut text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        request.method.as_str(),
        header("content-encoding"),
        header("content-language"),
        length,
        header("content-md5"),
        header("content-type"),
        // Empty: x-ms-date stands in for Date.
        "",
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    let mut ms: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| (name.as_str().to_string(), value.to_str().unwrap_or("").trim().to_string()))
        .collect();
    ms.sort();
    for (name, value) in ms {
        text.push_str(&format!("{name}:{value}\n"));
    }
    let rest = request.url.split_once("://").map_or(request.url.as_str(), |(_, r)| r);
    let (path, query) = match rest.find('/') {
        Some(i) => rest[i..].split_once('?').unwrap_or((&rest[i..], "")),
        None => ("/", rest.split_once('?').map_or("", |(_, q)| q)),
    };
    text.push_str(&format!("/{account}{path}"));
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().to_lowercase(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect();
    params.sort();
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let mut values = Vec::new();
        while i < params.len() && params[i].0 == name {
            values.push(params[i].1.clone());
            i += 1;
        }
        text.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    text
}

/// A read-only SAS for one blob: what a client needs to GET or HEAD it without credentials.
#[derive(Debug, Clone)]
pub struct BlobSas<'a> {
    pub account: &'a str,
    pub container: &'a str,
    pub blob: &'a str,
    /// ISO 8601, e.g. `2026-12-02T17:00:00Z`.
    pub start: &'a str,
    pub expiry: &'a str,
    /// `https`, or `https,http` for an emulator served over plain HTTP.
    pub protocol: &'a str,
}

/// A user delegation key, as Get User Delegation Key returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationKey {
    pub object_id: String,
    pub tenant_id: String,
    pub start: String,
    pub expiry: String,
    pub service: String,
    pub version: String,
    /// Base64, as sent.
    pub value: String,
}

impl BlobSas<'_> {
    fn resource(&self) -> String {
        format!("/blob/{}/{}/{}", self.account, self.container, self.blob)
    }

    /// The query string of a service SAS signed with the account key (version 2020-12-06 and
    /// later: the encryption scope line is included).
    pub fn with_shared_key(&self, key: &[u8]) -> String {
        let text = format!(
            "r\n{}\n{}\n{}\n\n\n{}\n{API_VERSION}\nb\n\n\n\n\n\n\n",
            self.start,
            self.expiry,
            self.resource(),
            self.protocol
        );
        self.query(&hmac(key, &text), None)
    }

    /// The query string of a user delegation SAS signed with `key`.
    pub fn with_delegation_key(&self, key: &DelegationKey) -> Result<String, base64::DecodeError> {
        let secret = BASE64.decode(&key.value)?;
        let text = format!(
            "r\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n\n\n\n\n{}\n{API_VERSION}\nb\n\n\n\n\n\n\n",
            self.start,
            self.expiry,
            self.resource(),
            key.object_id,
            key.tenant_id,
            key.start,
            key.expiry,
            key.service,
            key.version,
            self.protocol
        );
        Ok(self.query(&hmac(&secret, &text), Some(key)))
    }

    fn query(&self, signature: &str, key: Option<&DelegationKey>) -> String {
        let mut pairs = vec![
            ("sv", API_VERSION.to_string()),
            ("st", self.start.to_string()),
            ("se", self.expiry.to_string()),
            ("sr", "b".into()),
            ("sp", "r".into()),
            ("spr", self.protocol.to_string()),
        ];
        if let Some(k) = key {
            pairs.extend([
                ("skoid", k.object_id.clone()),
                ("sktid", k.tenant_id.clone()),
                ("skt", k.start.clone()),
                ("ske", k.expiry.clone()),
                ("sks", k.service.clone()),
                ("skv", k.version.clone()),
            ]);
        }
        pairs.push(("sig", signature.to_string()));
        pairs.iter().map(|(k, v)| format!("{k}={}", encode_query(v))).collect::<Vec<_>>().join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn string_to_sign_follows_the_documented_layout() {
        let request = Request::new(
            Method::PUT,
            "https://myaccount.blob.core.windows.net/mycontainer/a%20b?comp=appendblock&Timeout=30",
        )
        .header("x-ms-version", API_VERSION)
        .header("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT")
        .header("If-Match", "\"0x8D\"")
        .header("x-ms-blob-condition-appendpos", "4")
        .body(vec![0u8; 3]);
        assert_eq!(
            string_to_sign(&request, "myaccount"),
            "PUT\n\n\n3\n\n\n\n\n\"0x8D\"\n\n\n\n\
             x-ms-blob-condition-appendpos:4\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2021-12-02\n\
             /myaccount/mycontainer/a%20b\ncomp:appendblock\ntimeout:30"
        );
    }

    #[test]
    fn zero_length_and_repeated_query_parameters() {
        let request = Request::new(
            Method::GET,
            "http://127.0.0.1:10000/devstoreaccount1/c?restype=container&comp=list&include=metadata&include=copy",
        );
        let text = string_to_sign(&request, "devstoreaccount1");
        assert!(text.starts_with("GET\n\n\n\n"));
        assert!(
            text.ends_with("/devstoreaccount1/devstoreaccount1/c\ncomp:list\ninclude:copy,metadata\nrestype:container")
        );
    }

    /// The expected signatures were computed independently, with Python's `hmac` module, over
    /// the same string-to-sign.
    #[test]
    fn signatures_are_hmac_sha256_of_the_decoded_key() {
        let key = BASE64.decode(KEY).unwrap();
        let signed = sign_shared_key(
            Request::new(Method::GET, "http://h/devstoreaccount1/c/b")
                .header("x-ms-date", "d")
                .header("x-ms-version", "v"),
            "devstoreaccount1",
            &key,
        );
        let auth = signed.header_value("authorization").unwrap();
        assert_eq!(auth, "SharedKey devstoreaccount1:rpfcDerr/7+gUDZx9Ba/o21XS5VQ7YRV0iZbpae21GI=");
    }

    #[test]
    fn sas_queries() {
        let sas = BlobSas {
            account: "a",
            container: "c",
            blob: "dir/blob",
            start: "2026-12-02T17:00:00Z",
            expiry: "2026-12-02T17:20:00Z",
            protocol: "https",
        };
        let q = sas.with_shared_key(b"k");
        assert_eq!(
            q,
            "sv=2021-12-02&st=2026-12-02T17%3A00%3A00Z&se=2026-12-02T17%3A20%3A00Z&sr=b&sp=r&spr=https\
             &sig=rJK4FV0wiXss%2FS5bIcf2y5Scn5ajNXEoMPPLf45kUuQ%3D"
        );
        let key = DelegationKey {
            object_id: "o".into(),
            tenant_id: "t".into(),
            start: "s".into(),
            expiry: "e".into(),
            service: "b".into(),
            version: API_VERSION.into(),
            value: BASE64.encode(b"secret"),
        };
        let q = sas.with_delegation_key(&key).unwrap();
        assert!(q.contains("&skoid=o&sktid=t&skt=s&ske=e&sks=b&skv=2021-12-02&sig="));
    }
}
