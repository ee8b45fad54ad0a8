//! The raw calls of the Cloud Storage JSON API the driver makes: object metadata, listings,
//! deletes, rewrites and uploads, each one request (retried by the shared client), with the
//! answers turned into values or errors that name the endpoint.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, StatusCode};
use md5::{Digest, Md5};
use regstore_objectstore::http::{BodyStream, Head};
use regstore_objectstore::{Client, Idempotence, Request, Response};
use regstore_sdk::{Error, Result};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::auth::Auth;
use crate::config::authority_of;
use crate::sign::encode;
use regstore_objectstore::time::parse_rfc3339_ns;

pub const SERVICE: &str = "Google Cloud Storage";
/// The content type of an upload in progress: the object holds the writer's state (see writer.rs).
pub const UPLOAD_SESSION: &str = "application/x-docker-upload-session";
pub const OCTET_STREAM: &str = "application/octet-stream";
/// What GCS returns at most per listing page.
pub const LIST_MAX: u32 = 1000;

/// An object's metadata, as far as the driver reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    pub name: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size: u64,
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub generation: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Object {
    /// An upload in progress: its bytes are a writer's unsent tail, not content.
    pub fn in_progress(&self) -> bool {
        self.content_type.as_deref().is_some_and(is_upload_session)
    }

    pub fn modified_ns(&self) -> u64 {
        self.updated.as_deref().and_then(parse_rfc3339_ns).unwrap_or(0)
    }

    pub fn meta(&self, name: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(name).map(String::as_str)
    }
}

/// Whether a `Content-Type` value is the upload-in-progress type (parameters ignored).
pub fn is_upload_session(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(UPLOAD_SESSION))
}

/// JSON's int64 fields are strings; emulators sometimes send numbers.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s.parse().map_err(serde::de::Error::custom)?,
        Value::Number(n) => n.as_u64().ok_or_else(|| serde::de::Error::custom("not a size"))?,
        _ => 0,
    })
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// One page of `objects.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    #[serde(default)]
    pub items: Vec<Object>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// One answer of `objects.rewrite`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub rewrite_token: Option<String>,
}

/// The JSON API of one bucket at one endpoint, with credentials.
pub struct Api {
    pub client: Client,
    pub auth: Auth,
    pub bucket: String,
    user_agent: String,
    /// Authorities besides the endpoint's where upload sessions may live (distribution opens
    /// them at www.googleapis.com).
    session_authorities: Vec<String>,
}

impl Api {
    pub fn new(endpoint: &str, bucket: &str, auth: Auth, user_agent: Option<&str>) -> Self {
        Api {
            client: Client::new(SERVICE, endpoint),
            auth,
            bucket: bucket.to_string(),
            user_agent: user_agent.unwrap_or(concat!("regstore-gcs/", env!("CARGO_PKG_VERSION"))).to_string(),
            session_authorities: vec![authority_of(endpoint)],
        }
    }

    /// Also accepts upload sessions at `authority` as they are.
    pub fn with_session_authority(mut self, authority: &str) -> Self {
        self.session_authorities.push(authority.to_string());
        self
    }

    /// Where to reach an upload session: its URI as is when it names this endpoint (or one
    /// accepted for sessions), otherwise its path at this endpoint, where every request goes
    /// (an emulator may name itself differently, behind a proxy say).
    pub fn session_url(&self, uri: &str) -> String {
        if self.session_authorities.contains(&authority_of(uri)) {
            return uri.to_string();
        }
        let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        format!("{}{path}", self.endpoint())
    }

    /// `scheme://authority` of the endpoint.
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    pub fn request(&self, method: Method, url: &str) -> Request {
        Request::new(method, url).header("user-agent", &self.user_agent)
    }

    /// One call with credentials, retried as the shared client does.
    pub fn call(&self, what: &str, idempotence: Idempotence, build: impl Fn() -> Result<Request>) -> Result<Response> {
        self.auth.call(&self.client, what, idempotence, build)
    }

    pub fn call_streaming(&self, what: &str, build: impl Fn() -> Result<Request>) -> Result<(Head, BodyStream)> {
        self.auth.call_streaming(&self.client, what, build)
    }

    fn bucket_url(&self) -> String {
        format!("{}/storage/v1/b/{}", self.endpoint(), encode(&self.bucket, false))
    }

    /// The metadata URL of an object.
    pub fn object_url(&self, key: &str) -> String {
        format!("{}/o/{}", self.bucket_url(), encode(key, false))
    }

    /// The upload URL with `query` (`uploadType=...`).
    pub fn upload_url(&self, query: &str) -> String {
        format!("{}/upload/storage/v1/b/{}/o?{query}", self.endpoint(), encode(&self.bucket, false))
    }

    /// An error for an answer the driver did not expect.
    pub fn unexpected(&self, what: &str, response: &Response) -> Error {
        unexpected(what, self.endpoint(), response.status, &message(response))
    }

    /// For a 404 where only the bucket can be missing (listings, uploads).
    pub fn no_bucket(&self, what: &str, response: &Response) -> Error {
        if response.status == StatusCode::NOT_FOUND {
            return Error::other(format!(
                "{what}: {} answered 404 Not Found: is there a bucket {:?}?",
                self.endpoint(),
                self.bucket
            ));
        }
        self.unexpected(what, response)
    }

    /// The object's metadata; `None` when there is no object at the key.
    pub fn get(&self, key: &str, what: &str) -> Result<Option<Object>> {
        let url = format!("{}?fields=name,size,updated,contentType,generation,metadata", self.object_url(key));
        let response = self.call(what, Idempotence::Safe, || Ok(self.request(Method::GET, &url)))?;
        match response.status {
            StatusCode::OK => parse(&response, what).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.unexpected(what, &response)),
        }
    }

    /// The bytes of the object at `key` in one answer (for small objects: upload states), of
    /// `generation` if given; `None` when it is gone or another generation replaced it.
    pub fn read_object(&self, key: &str, generation: Option<&str>, what: &str) -> Result<Option<Vec<u8>>> {
        let mut url = format!("{}?alt=media", self.object_url(key));
        if let Some(g) = generation {
            url.push_str(&format!("&ifGenerationMatch={g}"));
        }
        let response = self.call(what, Idempotence::Safe, || Ok(self.request(Method::GET, &url)))?;
        match response.status.as_u16() {
            200 => Ok(Some(response.body.to_vec())),
            404 | 412 => Ok(None),
            _ => Err(self.unexpected(what, &response)),
        }
    }

    /// One page of the objects whose names start with `prefix`, by name, from `start_offset`
    /// (inclusive) where the server supports it; with `delimiter`, the names that continue past
    /// the next `/` come as `prefixes`.
    pub fn list(
        &self,
        prefix: &str,
        delimiter: bool,
        start_offset: Option<&str>,
        token: Option<&str>,
        max: u32,
        what: &str,
    ) -> Result<ListPage> {
        let mut url = format!(
            "{}/o?prefix={}&maxResults={max}&fields=items(name,size,updated,contentType),prefixes,nextPageToken",
            self.bucket_url(),
            encode(prefix, false)
        );
        if delimiter {
            url.push_str("&delimiter=%2F");
        }
        if let Some(start) = start_offset {
            url.push_str(&format!("&startOffset={}", encode(start, false)));
        }
        if let Some(token) = token {
            url.push_str(&format!("&pageToken={}", encode(token, false)));
        }
        let response = self.call(what, Idempotence::Safe, || Ok(self.request(Method::GET, &url)))?;
        match response.status {
            StatusCode::OK => parse(&response, what),
            _ => Err(self.no_bucket(what, &response)),
        }
    }

    /// Deletes the object at `key` (the given generation only, if one is given); `false` when
    /// there was none, or the generation no longer matched.
    pub fn delete(&self, key: &str, generation: Option<&str>, what: &str) -> Result<bool> {
        let url = match generation {
            Some(g) => format!("{}?ifGenerationMatch={g}", self.object_url(key)),
            None => self.object_url(key),
        };
        let response = self.call(what, Idempotence::Safe, || Ok(self.request(Method::DELETE, &url)))?;
        match response.status.as_u16() {
            200..=299 => Ok(true),
            404 | 412 => Ok(false),
            _ => Err(self.unexpected(what, &response)),
        }
    }

    /// Stores a whole object in one multipart upload, with its MD5 so that GCS refuses a body
    /// that did not arrive intact (distribution issue #3018). Retried: it replaces the object.
    pub fn upload(
        &self,
        key: &str,
        content_type: &str,
        metadata: &[(&str, &str)],
        data: Bytes,
        what: &str,
    ) -> Result<Object> {
        let boundary = format!("regstore-{}", crate::sign::hex(&crate::key::random_bytes(16)));
        let mut resource = json!({
            "name": key,
            "contentType": content_type,
            "md5Hash": STANDARD.encode(Md5::digest(&data)),
        });
        if !metadata.is_empty() {
            resource["metadata"] = metadata.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
        }
        let body = multipart(&boundary, &resource.to_string(), content_type, &data);
        let url = self.upload_url("uploadType=multipart&fields=name,size,updated,contentType,generation");
        let response = self.call(what, Idempotence::Safe, || {
            Ok(self
                .request(Method::POST, &url)
                .header("content-type", format!("multipart/related; boundary={boundary}"))
                .body(body.clone()))
        })?;
        match response.status.as_u16() {
            200 | 201 => parse(&response, what),
            _ => Err(self.no_bucket(what, &response)),
        }
    }

    /// One step of a server-side copy; the first without `token`. `source_generation` pins the
    /// source to the version that was looked at.
    pub fn rewrite(
        &self,
        source: &str,
        destination: &str,
        source_generation: Option<&str>,
        token: Option<&str>,
        what: &str,
    ) -> Result<std::result::Result<Rewrite, StatusCode>> {
        let mut url = format!(
            "{}/rewriteTo/b/{}/o/{}?fields=done,rewriteToken",
            self.object_url(source),
            encode(&self.bucket, false),
            encode(destination, false)
        );
        if let Some(g) = source_generation {
            url.push_str(&format!("&ifSourceGenerationMatch={g}"));
        }
        if let Some(t) = token {
            url.push_str(&format!("&rewriteToken={}", encode(t, false)));
        }
        let response = self.call(what, Idempotence::Safe, || {
            Ok(self.request(Method::POST, &url).header("content-type", "application/json").body("{}"))
        })?;
        match response.status.as_u16() {
            200 => parse(&response, what).map(Ok),
            404 | 412 => Ok(Err(response.status)),
            _ => Err(self.unexpected(what, &response)),
        }
    }
}

/// `what: endpoint answered status: message`.
pub fn unexpected(what: &str, endpoint: &str, status: StatusCode, message: &str) -> Error {
    if message.is_empty() {
        Error::other(format!("{what}: {endpoint} answered {status}"))
    } else {
        Error::other(format!("{what}: {endpoint} answered {status}: {message}"))
    }
}

fn parse<T: serde::de::DeserializeOwned>(response: &Response, what: &str) -> Result<T> {
    serde_json::from_slice(&response.body).map_err(|e| Error::other(format!("{what}: cannot read the answer: {e}")))
}

/// The human part of an error answer: JSON API (`error.message`), OAuth (`error` and
/// `error_description`), or the start of whatever text came.
pub fn message(response: &Response) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(&response.body) {
        if let Some(m) = v["error"]["message"].as_str() {
            return m.to_string();
        }
        if let Some(e) = v["error"].as_str() {
            return match v["error_description"].as_str() {
                Some(d) => format!("{e}: {d}"),
                None => e.to_string(),
            };
        }
    }
    let text = response.text();
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// A `multipart/related` body: the JSON resource, then the media.
fn multipart(boundary: &str, resource: &str, content_type: &str, data: &[u8]) -> Bytes {
    let head = format!(
        "--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n\
         --{boundary}\r\ncontent-type: {content_type}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = Vec::with_capacity(head.len() + data.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(tail.as_bytes());
    body.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: body.to_string().into(),
        }
    }

    #[test]
    fn objects_from_gcs_and_the_emulators() {
        // GCS and gcp-storage-emulator write int64 fields as strings; tolerate numbers too.
        let o: Object = serde_json::from_str(
            r#"{"name":"a/b","size":"5","updated":"2026-12-02T17:12:34.826368Z","generation":"1796231554826387",
                "contentType":"application/x-docker-upload-session","metadata":{"Offset":"262144","Session-URI":"http://x/y"}}"#,
        )
        .unwrap();
        assert!(o.in_progress());
        assert_eq!((o.size, o.generation.as_deref()), (5, Some("1796231554826387")));
        assert_eq!((o.meta("Offset"), o.meta("Session-URI"), o.meta("x")), (Some("262144"), Some("http://x/y"), None));
        assert_eq!(o.modified_ns(), 1_796_231_554_826_368_000);
        let o: Object = serde_json::from_str(r#"{"name":"n","size":7,"generation":12}"#).unwrap();
        assert!(!o.in_progress());
        assert_eq!((o.size, o.generation.as_deref(), o.modified_ns()), (7, Some("12"), 0));
        assert!(is_upload_session("Application/X-Docker-Upload-Session; charset=x"));
        assert!(!is_upload_session("application/octet-stream"));
    }

    #[test]
    fn pages() {
        let p: ListPage =
            serde_json::from_str(r#"{"items":[{"name":"a"}],"prefixes":["d/"],"nextPageToken":"t"}"#).unwrap();
        assert_eq!((p.items.len(), p.prefixes, p.next_page_token.as_deref()), (1, vec!["d/".to_string()], Some("t")));
        let p: ListPage = serde_json::from_str(r#"{"kind":"storage#objects"}"#).unwrap();
        assert!(p.items.is_empty() && p.next_page_token.is_none());
    }

    #[test]
    fn error_messages() {
        let json = r#"{"error":{"code":403,"message":"caller lacks storage.objects.get"}}"#;
        assert_eq!(message(&response(403, json)), "caller lacks storage.objects.get");
        assert_eq!(
            message(&response(400, r#"{"error":"invalid_grant","error_description":"bad"}"#)),
            "invalid_grant: bad"
        );
        assert_eq!(message(&response(502, " <html>gateway</html>\n")), "<html>gateway</html>");
        assert_eq!(message(&response(502, &"x".repeat(500))).len(), 203);
        let e = unexpected("reading /a", "http://127.0.0.1:4443", StatusCode::FORBIDDEN, "no");
        assert_eq!(e, Error::other("reading /a: http://127.0.0.1:4443 answered 403 Forbidden: no"));
        let api = Api::new("http://127.0.0.1:4443", "regstore", Auth::anonymous(), None);
        let e = api.no_bucket("listing /", &response(404, r#"{"error":{"message":"Not Found"}}"#));
        assert_eq!(
            e,
            Error::other("listing /: http://127.0.0.1:4443 answered 404 Not Found: is there a bucket \"regstore\"?")
        );
        let e = api.no_bucket("listing /", &response(403, "{}"));
        assert!(e.to_string().contains("403 Forbidden"), "{e}");
    }

    #[test]
    fn multipart_bodies() {
        let body = multipart("B", r#"{"name":"k"}"#, OCTET_STREAM, b"\r\n--B\0data");
        let expected = "--B\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{\"name\":\"k\"}\r\n--B\r\n\
                        content-type: application/octet-stream\r\n\r\n\r\n--B\0data\r\n--B--\r\n";
        assert_eq!(&body[..], expected.as_bytes());
    }

    #[test]
    fn urls_encode_keys_whole() {
        let api = Api::new("http://127.0.0.1:4443", "b", Auth::anonymous(), None);
        assert_eq!(api.object_url("a/b c"), "http://127.0.0.1:4443/storage/v1/b/b/o/a%2Fb%20c");
        assert_eq!(
            api.upload_url("uploadType=resumable"),
            "http://127.0.0.1:4443/upload/storage/v1/b/b/o?uploadType=resumable"
        );
        assert_eq!(api.endpoint(), "http://127.0.0.1:4443");
    }

    #[test]
    fn sessions_go_to_the_endpoint() {
        let api = Api::new("https://storage.googleapis.com", "b", Auth::anonymous(), None)
            .with_session_authority("www.googleapis.com:443");
        let legacy = "https://www.googleapis.com/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=X";
        assert_eq!(api.session_url(legacy), legacy);
        let own = "https://storage.googleapis.com/upload/storage/v1/b/b/o?upload_id=Y";
        assert_eq!(api.session_url(own), own);
        let api = Api::new("http://127.0.0.1:4443", "b", Auth::anonymous(), None);
        assert_eq!(
            api.session_url("http://0.0.0.0:4443/upload/storage/v1/b/b/o?upload_id=Z"),
            "http://127.0.0.1:4443/upload/storage/v1/b/b/o?upload_id=Z"
        );
        assert_eq!(api.session_url("http://127.0.0.1:4443/u?id=1"), "http://127.0.0.1:4443/u?id=1");
    }
}
