//! The Blob service's REST calls the driver makes, each authorised and retried, with answers
//! turned into typed results and errors that name the endpoint.

use http::{Method, StatusCode};
use regstore_objectstore::keys::KeyMap;
use regstore_objectstore::walk::Listed;
use regstore_objectstore::{Client, Idempotence, Request, Response};
use regstore_sdk::{Error, Result};
use serde::Deserialize;

use crate::auth::Auth;
use crate::config::Config;
use crate::sign::{API_VERSION, encode_path, encode_query};

/// Names per listing request, the most the service returns.
pub const LIST_MAX: u32 = 5000;
/// Metadata that marks an append blob as committed by a writer (D4): only such blobs, and
/// block blobs, are committed content.
pub const COMMITTED_META: &str = "x-ms-meta-regstorecommitted";

pub struct Blobs {
    pub client: Client,
    pub auth: Auth,
    pub config: Config,
    pub keys: KeyMap,
    container_url: String,
}

/// A blob's properties, from Get Blob Properties.
#[derive(Debug, Clone)]
pub struct Props {
    pub size: u64,
    pub modified_ns: u64,
    pub etag: String,
    pub blob_type: String,
    pub committed_blocks: Option<u64>,
    /// Append blobs only: a regstore writer committed it.
    pub committed: bool,
    pub copy_status: Option<String>,
}

/// An error answer: its status and the service's error code.
pub fn error_code(response: &Response) -> String {
    if let Some(code) = response.header("x-ms-error-code") {
        return code.to_string();
    }
    let text = response.text();
    between(&text, "<Code>", "</Code>").unwrap_or_default().to_string()
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// Whether an answer means "no such blob" (distribution's `is404`).
pub fn is_404(response: &Response) -> bool {
    response.status == StatusCode::NOT_FOUND
        || matches!(
            error_code(response).as_str(),
            "BlobNotFound" | "ContainerNotFound" | "ResourceNotFound" | "CannotVerifyCopySource"
        )
}

impl Blobs {
    pub fn new(config: Config, auth: Auth) -> Self {
        let mut client = Client::new("Azure Blob Storage", &config.service_url);
        client.timeouts = config.timeouts;
        let container_url = format!("{}/{}", config.service_url, encode_path(&config.container));
        let keys = KeyMap::new(&config.root_directory);
        Blobs { client, auth, config, keys, container_url }
    }

    pub fn blob_url(&self, key: &str) -> String {
        format!("{}/{}", self.container_url, encode_path(key))
    }

    /// A request with the headers every call carries; `authorize` signs it per try.
    pub fn request(&self, method: Method, url: &str) -> Request {
        Request::new(method, url)
            .header("x-ms-version", API_VERSION)
            .header("x-ms-date", httpdate::fmt_http_date(std::time::SystemTime::now()))
    }

    /// Sends the request `build` makes, retried, signed anew per try. A 401 with a cached token
    /// gets one more try with a fresh token.
    pub fn call(&self, what: &str, idempotence: Idempotence, build: impl Fn(&Blobs) -> Request) -> Result<Response> {
        let refresh = || {
            let token = matches!(self.auth, Auth::Token { .. });
            if token {
                self.auth.forget_token();
            }
            token
        };
        self.client.call_authorized(what, idempotence, || self.auth.authorize(build(self)), refresh)
    }

    /// An error for an answer the caller did not expect: what failed, where, and why.
    pub fn unexpected(&self, what: &str, response: &Response) -> Error {
        let text = response.text();
        let message = between(&text, "<Message>", "</Message>")
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .unwrap_or_else(|| text.chars().take(200).collect());
        let code = error_code(response);
        let detail = [code.as_str(), message.as_str()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
        let detail = if detail.is_empty() { String::new() } else { format!(": {}", detail.join(": ")) };
        let hint = if response.status == StatusCode::FORBIDDEN {
            " (check accountname, the credentials and the container's permissions)"
        } else {
            ""
        };
        Error::other(format!("{what}: {} answered {}{detail}{hint}", self.client.endpoint(), response.status))
    }

    /// Get Blob Properties; `None` when the blob does not exist.
    pub fn properties(&self, key: &str) -> Result<Option<Props>> {
        if key.is_empty() {
            return Ok(None);
        }
        let url = self.blob_url(key);
        let response = self.call("reading blob properties", Idempotence::Safe, |b| b.request(Method::HEAD, &url))?;
        if is_404(&response) {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(self.unexpected(&format!("reading the properties of {key}"), &response));
        }
        let header = |name: &str| response.header(name).map(str::to_string);
        let size = header("content-length").and_then(|v| v.parse().ok());
        let modified = header("last-modified").and_then(|v| httpdate::parse_http_date(&v).ok());
        let (Some(size), Some(modified)) = (size, modified) else {
            // distribution's text, typo included.
            return Err(Error::other(format!(
                "missing required prroperties (content length, last modified) for blob: {key}"
            )));
        };
        Ok(Some(Props {
            size,
            modified_ns: ns(modified),
            etag: header("etag").unwrap_or_default(),
            blob_type: header("x-ms-blob-type").unwrap_or_default(),
            committed_blocks: header("x-ms-blob-committed-block-count").and_then(|v| v.parse().ok()),
            committed: header(COMMITTED_META).is_some_and(|v| v == "true"),
            copy_status: header("x-ms-copy-status"),
        }))
    }

    /// Delete Blob, optionally only if it still has `etag`; `Ok(false)` when it was not there
    /// (or had changed).
    pub fn delete_blob(&self, key: &str, etag: Option<&str>) -> Result<bool> {
        let url = self.blob_url(key);
        let response = self.call("deleting a blob", Idempotence::Safe, |b| {
            let request = b.request(Method::DELETE, &url);
            match etag {
                Some(etag) => request.header("if-match", etag),
                None => request,
            }
        })?;
        if is_404(&response) || response.status == StatusCode::PRECONDITION_FAILED {
            return Ok(false);
        }
        if !response.status.is_success() {
            return Err(self.unexpected(&format!("deleting {key}"), &response));
        }
        Ok(true)
    }

    /// Put Blob of a block blob, replacing whatever is at `key`.
    pub fn put_block_blob(&self, key: &str, content: bytes::Bytes) -> Result<()> {
        let url = self.blob_url(key);
        let md5 = content_md5(&content);
        let response = self.call("writing a blob", Idempotence::Safe, |b| {
            b.request(Method::PUT, &url)
                .header("x-ms-blob-type", "BlockBlob")
                .header("content-type", "application/octet-stream")
                .header("content-md5", &md5)
                .body(content.clone())
        })?;
        self.expect_success(&format!("writing {key}"), &response)
    }

    /// Put Block: stages one block of a block blob under `id`.
    pub fn put_block(&self, key: &str, id: &str, content: bytes::Bytes) -> Result<()> {
        let url = format!("{}?comp=block&blockid={}", self.blob_url(key), encode_query(id));
        let md5 = content_md5(&content);
        let response = self.call("staging a block", Idempotence::Safe, |b| {
            b.request(Method::PUT, &url).header("content-md5", &md5).body(content.clone())
        })?;
        self.expect_success(&format!("staging a block of {key}"), &response)
    }

    /// Put Block List: commits the staged blocks, in order, as the blob's content.
    pub fn put_block_list(&self, key: &str, ids: &[String]) -> Result<()> {
        let url = format!("{}?comp=blocklist", self.blob_url(key));
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        let body = bytes::Bytes::from(xml);
        let response = self.call("committing blocks", Idempotence::Safe, |b| {
            b.request(Method::PUT, &url)
                .header("x-ms-blob-content-type", "application/octet-stream")
                .header("content-type", "application/xml")
                .body(body.clone())
        })?;
        self.expect_success(&format!("committing the blocks of {key}"), &response)
    }

    /// Put Blob of an empty append blob; returns its ETag.
    pub fn create_append_blob(&self, key: &str) -> Result<String> {
        let url = self.blob_url(key);
        let response = self.call("creating an append blob", Idempotence::Safe, |b| {
            b.request(Method::PUT, &url)
                .header("x-ms-blob-type", "AppendBlob")
                .header("x-ms-blob-content-type", "application/octet-stream")
        })?;
        self.expect_success(&format!("creating {key}"), &response)?;
        Ok(response.header("etag").unwrap_or_default().to_string())
    }

    /// Set Blob Metadata: marks an append blob as committed; returns its new ETag.
    pub fn mark_committed(&self, key: &str) -> Result<()> {
        let url = format!("{}?comp=metadata", self.blob_url(key));
        let response = self.call("committing an upload", Idempotence::Safe, |b| {
            b.request(Method::PUT, &url).header(COMMITTED_META, "true")
        })?;
        self.expect_success(&format!("committing {key}"), &response)
    }

    /// Start Copy Blob: `source` onto `destination` within the container.
    pub fn start_copy(&self, source: &str, destination: &str) -> Result<Response> {
        let (from, to) = (self.blob_url(source), self.blob_url(destination));
        self.call("copying a blob", Idempotence::Safe, |b| {
            b.request(Method::PUT, &to).header("x-ms-copy-source", &from)
        })
    }

    /// Abort Copy Blob; a copy that has ended already is no error.
    pub fn abort_copy(&self, key: &str, copy_id: &str) -> Result<()> {
        let url = format!("{}?comp=copy&copyid={}", self.blob_url(key), encode_query(copy_id));
        let response = self.call("aborting a copy", Idempotence::Safe, |b| {
            b.request(Method::PUT, &url).header("x-ms-copy-action", "abort")
        })?;
        if response.status.is_success() || response.status == StatusCode::CONFLICT || is_404(&response) {
            return Ok(());
        }
        Err(self.unexpected(&format!("aborting the copy onto {key}"), &response))
    }

    /// One page of List Blobs under `prefix`, with `/` as the delimiter or without one.
    pub fn list(&self, prefix: &str, delimiter: bool, marker: Option<&str>, max: u32) -> Result<Listing> {
        let mut url = format!("{}?restype=container&comp=list&maxresults={max}", self.container_url);
        if !prefix.is_empty() {
            url.push_str(&format!("&prefix={}", encode_query(prefix)));
        }
        if delimiter {
            url.push_str("&delimiter=%2F");
        }
        if let Some(marker) = marker {
            url.push_str(&format!("&marker={}", encode_query(marker)));
        }
        let response = self.call("listing blobs", Idempotence::Safe, |b| b.request(Method::GET, &url))?;
        if !response.status.is_success() {
            return Err(self.unexpected(&format!("listing blobs under {prefix:?}"), &response));
        }
        let parsed: EnumerationResults = regstore_objectstore::xml::parse(&response.body, "listing blobs")?;
        let mut listing = Listing::default();
        for item in parsed.blobs.items {
            match item {
                Item::Blob(blob) => listing.blobs.push(Listed {
                    size: blob.properties.content_length.unwrap_or(0),
                    modified_ns: blob
                        .properties
                        .last_modified
                        .as_deref()
                        .and_then(|t| httpdate::parse_http_date(t).ok())
                        .map(ns)
                        .unwrap_or(0),
                    key: blob.name,
                }),
                Item::BlobPrefix(p) => listing.prefixes.push(p.name),
            }
        }
        listing.next_marker = parsed.next_marker.filter(|m| !m.is_empty());
        Ok(listing)
    }

    /// Whether any blob's name starts with `prefix`.
    pub fn any_under(&self, prefix: &str) -> Result<bool> {
        let page = self.list(prefix, false, None, 1)?;
        Ok(!page.blobs.is_empty() || !page.prefixes.is_empty())
    }

    pub fn expect_success(&self, what: &str, response: &Response) -> Result<()> {
        if response.status.is_success() { Ok(()) } else { Err(self.unexpected(what, response)) }
    }
}

#[derive(Debug, Default)]
pub struct Listing {
    pub blobs: Vec<Listed>,
    /// `BlobPrefix` names (with their trailing '/') when listed with a delimiter.
    pub prefixes: Vec<String>,
    pub next_marker: Option<String>,
}

#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: BlobItems,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct BlobItems {
    #[serde(rename = "$value", default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
enum Item {
    Blob(BlobItem),
    BlobPrefix(PrefixItem),
}

#[derive(Deserialize)]
struct BlobItem {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Properties", default)]
    properties: BlobProperties,
}

#[derive(Deserialize, Default)]
struct BlobProperties {
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
}

#[derive(Deserialize)]
struct PrefixItem {
    #[serde(rename = "Name")]
    name: String,
}

pub fn ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Base64 of the MD5 of `data`, as `Content-MD5` carries it.
pub fn content_md5(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
  <Prefix>a/</Prefix><MaxResults>5000</MaxResults><Delimiter>/</Delimiter>
  <Blobs>
    <Blob><Name>a/b</Name><Properties><Last-Modified>Wed, 02 Dec 2026 17:00:00 GMT</Last-Modified><Etag>0x1</Etag><Content-Length>12</Content-Length><BlobType>BlockBlob</BlobType></Properties><Metadata/></Blob>
    <BlobPrefix><Name>a/c/</Name></BlobPrefix>
    <Blob><Name>a/d</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker/>
</EnumerationResults>"#;
        let parsed: EnumerationResults = regstore_objectstore::xml::parse(xml.as_bytes(), "listing").unwrap();
        assert_eq!(parsed.blobs.items.len(), 3);
        assert!(matches!(&parsed.blobs.items[1], Item::BlobPrefix(p) if p.name == "a/c/"));
        assert!(matches!(&parsed.blobs.items[0], Item::Blob(b) if b.properties.content_length == Some(12)));
        assert_eq!(parsed.next_marker.filter(|m| !m.is_empty()), None);
        let empty = r#"<EnumerationResults><Blobs /><NextMarker>x</NextMarker></EnumerationResults>"#;
        let parsed: EnumerationResults = regstore_objectstore::xml::parse(empty.as_bytes(), "listing").unwrap();
        assert!(parsed.blobs.items.is_empty());
        assert_eq!(parsed.next_marker.as_deref(), Some("x"));
    }

    #[test]
    fn md5_of_content() {
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
