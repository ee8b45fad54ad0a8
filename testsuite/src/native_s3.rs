//! The s3 driver's native baseline: the wasm driver's semantics (drivers/s3) with native
//! aws-sdk-s3 in the host process, over the same plain-HTTP endpoint, so a benchmark measures
//! what running the SDK as a sandboxed component behind `wasi:http` costs.
//!
//! It sends the requests the wasm driver sends for what the benchmarks do: keys are
//! `rootdirectory` + path; PutContent is one PutObject; GetContent one GetObject; a reader
//! fetches 8 MiB ranged windows pinned to the first ETag and hands them out in 1 MiB chunks;
//! a writer aborts older uploads of its key, then runs one multipart upload in parts of
//! `chunksize`, Close uploads the tail, Commit completes (with an empty part when there is
//! none); Stat is HEAD, then a one-key listing under `path/`; List lists with a delimiter;
//! Delete removes the exact key and everything under `key/`, 1000 keys a request; Move is
//! CopyObject then DeleteObject. Object options are the driver's defaults (private ACL,
//! STANDARD class, no encryption), and checksums are sent only where S3 requires them, as the
//! driver does.
//!
//! Not mirrored, as no benchmark needs it: resuming a writer (`Writer(path, true)` is
//! unsupported), multipart copies of objects over 32 MiB (Move copies in one request, which S3
//! allows up to 5 GiB), HEAD-by-listing fallbacks, and presigned redirects (none are given).
//! Walks go through the generic [`FallbackWalker`] over List.
//!
//! Bodies are gathered with `AggregatedBytes::into_bytes` (memcpy), not `to_vec`, which
//! collects byte by byte: about 70 ms per MiB in a debug build, which would swamp every figure.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, ObjectCannedAcl, ObjectIdentifier, StorageClass,
};
use regstore_api::walk::FallbackWalker;
use regstore_api::{Error, FileInfo, FileReader, FileWriter, Result, StorageDriver, Walker};

use crate::s3native;

const NAME: &str = "native-s3";
const CONTENT_TYPE: &str = "application/octet-stream";
/// S3 lists and deletes at most this many keys per request.
const LIST_MAX: i32 = 1000;
/// S3's smallest part but the last, and distribution's smallest `chunksize`.
pub const MIN_CHUNK_SIZE: usize = 5 << 20;
/// distribution's default `chunksize`.
pub const DEFAULT_CHUNK_SIZE: usize = 10 << 20;
/// Bytes a reader fetches per request at least (the wasm driver's window).
const WINDOW: u64 = 8 << 20;
/// Bytes a reader hands out per chunk (what the host asks the wasm driver for).
const READ_CHUNK: usize = 1 << 20;

/// Where a [`NativeS3`] stores, as the s3 driver's parameters say it.
#[derive(Debug, Clone)]
pub struct NativeS3Config {
    /// `http://HOST:PORT`: plain HTTP only (the local emulators).
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub root_directory: String,
    /// At least [`MIN_CHUNK_SIZE`].
    pub chunk_size: usize,
}

/// The s3 driver's semantics with native aws-sdk-s3. Cloning shares the client.
#[derive(Clone)]
pub struct NativeS3 {
    inner: Arc<Inner>,
}

struct Inner {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The root's key, without leading or trailing '/'.
    root: String,
    chunk_size: usize,
}

impl NativeS3 {
    pub fn new(config: NativeS3Config) -> Result<Self> {
        if !config.endpoint.starts_with("http://") {
            return Err(Error::other(NAME, format!("plain-HTTP endpoints only, got {}", config.endpoint)));
        }
        if config.chunk_size < MIN_CHUNK_SIZE {
            return Err(Error::other(NAME, format!("chunksize {} is below {MIN_CHUNK_SIZE}", config.chunk_size)));
        }
        let base = s3native::client(&config.endpoint, &config.region, &config.access_key, &config.secret_key);
        // Checksums only where S3 requires them, as the wasm driver's client.
        let sdk = base
            .config()
            .to_builder()
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(NativeS3 {
            inner: Arc::new(Inner {
                client: aws_sdk_s3::Client::from_conf(sdk),
                bucket: config.bucket,
                root: config.root_directory.trim_matches('/').to_string(),
                chunk_size: config.chunk_size,
            }),
        })
    }
}

/// An SDK failure as an error of kind other, with its causes.
fn fail<E: std::error::Error + Send + Sync + 'static>(what: &str) -> impl FnOnce(SdkError<E>) -> Error + '_ {
    move |e| Error::other(NAME, format!("{what}: {}", DisplayErrorContext(e)))
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn is_missing<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    matches!(e.code(), Some("NoSuchKey" | "NotFound" | "NoSuchUpload")) || status(e) == Some(404)
}

fn time(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or(UNIX_EPOCH)
}

/// `CopySource` is `bucket/key`, URL-encoded.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut encoded = String::with_capacity(bucket.len() + key.len() + 1);
    for b in format!("{bucket}/{key}").bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => encoded.push(b as char),
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    encoded
}

impl Inner {
    /// `/a/b` gives `root/a/b` (or `a/b`); `/` gives the root's key.
    fn key(&self, path: &str) -> String {
        let rel = path.trim_start_matches('/');
        match (self.root.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{rel}", self.root),
        }
    }

    /// The prefix of every key under `path`.
    fn dir_prefix(&self, path: &str) -> String {
        let key = self.key(path.trim_end_matches('/'));
        if key.is_empty() { key } else { key + "/" }
    }

    /// The path of a key under the root.
    fn path(&self, key: &str) -> Option<String> {
        if self.root.is_empty() {
            return Some(format!("/{key}"));
        }
        match key.strip_prefix(self.root.as_str())? {
            "" => Some("/".into()),
            rest if rest.starts_with('/') => Some(rest.to_string()),
            _ => None,
        }
    }

    /// The size and modification time of the object at exactly `path`, if there is one.
    async fn head(&self, path: &str) -> Result<Option<(u64, SystemTime)>> {
        match self.client.head_object().bucket(&self.bucket).key(self.key(path)).send().await {
            Ok(o) => Ok(Some((o.content_length.unwrap_or(0).max(0) as u64, time(o.last_modified.as_ref())))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(fail(&format!("stat {path}"))(e)),
        }
    }

    /// Whether some key lies under `path/`.
    async fn is_dir(&self, path: &str) -> Result<bool> {
        let page = self.list_page(&self.dir_prefix(path), None, None, None, 1).await?;
        Ok(page.key_count.unwrap_or(0) > 0 || !page.contents().is_empty())
    }

    async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<String>,
        token: Option<String>,
        max_keys: i32,
    ) -> Result<ListObjectsV2Output> {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_start_after(start_after)
            .set_continuation_token(token)
            .max_keys(max_keys)
            .send()
            .await
            .map_err(fail(&format!("listing {prefix:?}")))
    }

    /// Deletes keys, [`LIST_MAX`] per request; per-key failures are reported together.
    async fn delete_keys(&self, keys: Vec<String>) -> Result<()> {
        for batch in keys.chunks(LIST_MAX as usize) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().map_err(|e| Error::other(NAME, e)))
                .collect::<Result<Vec<_>>>()?;
            let delete =
                Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(|e| Error::other(NAME, e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(fail("deleting objects"))?;
            let failed: Vec<String> = out
                .errors()
                .iter()
                .map(|e| format!("{}: {}", e.key().unwrap_or_default(), e.message().or(e.code()).unwrap_or_default()))
                .collect();
            if !failed.is_empty() {
                return Err(Error::other(NAME, format!("deleting objects failed: {}", failed.join("; "))));
            }
        }
        Ok(())
    }

    /// The in-progress multipart uploads of exactly `key`.
    async fn uploads_for(&self, key: &str) -> Result<Vec<String>> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(key)
                .max_uploads(LIST_MAX)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .map_err(fail(&format!("listing the uploads of {key}")))?;
            uploads.extend(
                page.uploads()
                    .iter()
                    .filter(|u| u.key() == Some(key))
                    .filter_map(|u| u.upload_id().map(str::to_string)),
            );
            if page.is_truncated != Some(true) {
                return Ok(uploads);
            }
            (key_marker, id_marker) = (page.next_key_marker, page.next_upload_id_marker);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(uploads);
            }
        }
    }

    /// Best effort: an upload left behind costs storage, not correctness.
    async fn abort_upload(&self, key: &str, upload: &str) {
        let _ = self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload).send().await;
    }
}

#[async_trait]
impl StorageDriver for NativeS3 {
    fn name(&self) -> &str {
        NAME
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let s3 = &self.inner;
        let out = match s3.client.get_object().bucket(&s3.bucket).key(s3.key(path)).send().await {
            Ok(out) => out,
            Err(e) if is_missing(&e) => return Err(Error::not_found(NAME, path)),
            Err(e) => return Err(fail(&format!("reading {path}"))(e)),
        };
        let body = out.body.collect().await.map_err(|e| Error::other(NAME, format!("reading {path}: {e}")))?;
        Ok(body.into_bytes().into())
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        let s3 = &self.inner;
        s3.client
            .put_object()
            .bucket(&s3.bucket)
            .key(s3.key(path))
            .content_type(CONTENT_TYPE)
            .acl(ObjectCannedAcl::Private)
            .storage_class(StorageClass::Standard)
            .body(ByteStream::from(content.to_vec()))
            .send()
            .await
            .map_err(fail(&format!("writing {path}")))?;
        Ok(())
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        if offset < 0 {
            return Err(Error::InvalidOffset { driver: NAME.into(), path: path.into(), offset });
        }
        let mut reader = S3Reader {
            s3: self.inner.clone(),
            path: path.into(),
            key: self.inner.key(path),
            offset: offset as u64,
            etag: None,
            window: Vec::new(),
            consumed: 0,
            at_end: false,
        };
        // The first window now, so a missing path fails here.
        reader.fetch().await?;
        Ok(Box::new(reader))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        if append {
            return Err(Error::Unsupported { driver: NAME.into() });
        }
        let s3 = &self.inner;
        let key = s3.key(path);
        // A new write supersedes any upload left for this key.
        for upload in s3.uploads_for(&key).await? {
            s3.abort_upload(&key, &upload).await;
        }
        let out = s3
            .client
            .create_multipart_upload()
            .bucket(&s3.bucket)
            .key(&key)
            .content_type(CONTENT_TYPE)
            .acl(ObjectCannedAcl::Private)
            .storage_class(StorageClass::Standard)
            .send()
            .await
            .map_err(fail(&format!("starting an upload of {key}")))?;
        let upload = out.upload_id.ok_or_else(|| Error::other(NAME, format!("starting an upload of {key}: no id")))?;
        Ok(Box::new(S3Writer {
            s3: s3.clone(),
            path: path.into(),
            key,
            upload,
            parts: Vec::new(),
            uploaded: 0,
            buffer: Vec::new(),
            state: State::Open,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        if path == "/" {
            return Ok(FileInfo { path: path.into(), size: 0, modified: UNIX_EPOCH, is_dir: true });
        }
        let s3 = &self.inner;
        if let Some((size, modified)) = s3.head(path).await? {
            return Ok(FileInfo { path: path.into(), size, modified, is_dir: false });
        }
        if s3.is_dir(path).await? {
            Ok(FileInfo { path: path.into(), size: 0, modified: UNIX_EPOCH, is_dir: true })
        } else {
            Err(Error::not_found(NAME, path))
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let s3 = &self.inner;
        let prefix = s3.dir_prefix(path);
        let mut children = Vec::new();
        let mut token = None;
        loop {
            let page = s3.list_page(&prefix, Some("/"), None, token, LIST_MAX).await?;
            let files = page.contents().iter().filter_map(|o| o.key());
            let dirs = page.common_prefixes().iter().filter_map(|p| p.prefix());
            for key in files.chain(dirs) {
                // A `dir/` marker object lists as the directory itself: never an empty name.
                let key = key.trim_end_matches('/');
                if key.len() > prefix.len() {
                    children.extend(s3.path(key));
                }
            }
            token = page.next_continuation_token.filter(|_| page.is_truncated == Some(true));
            if token.is_none() {
                break;
            }
        }
        if children.is_empty() && path != "/" {
            return Err(Error::not_found(NAME, path));
        }
        children.sort();
        children.dedup();
        Ok(children)
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let s3 = &self.inner;
        if s3.head(source).await?.is_none() {
            return Err(if s3.is_dir(source).await? {
                Error::other(NAME, format!("cannot move directory {source}: only files can be moved"))
            } else {
                Error::not_found(NAME, source)
            });
        }
        let (from, to) = (s3.key(source), s3.key(destination));
        s3.client
            .copy_object()
            .bucket(&s3.bucket)
            .key(&to)
            .copy_source(copy_source(&s3.bucket, &from))
            .content_type(CONTENT_TYPE)
            .acl(ObjectCannedAcl::Private)
            .storage_class(StorageClass::Standard)
            .send()
            .await
            .map_err(fail(&format!("copying {from} to {to}")))?;
        s3.client
            .delete_object()
            .bucket(&s3.bucket)
            .key(&from)
            .send()
            .await
            .map_err(fail(&format!("removing {source} after copying it")))?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let s3 = &self.inner;
        // The object at exactly the key, and everything under `key/`, never `keysuffix`.
        let exact = s3.head(path).await?.is_some();
        let mut found = exact;
        if exact {
            s3.delete_keys(vec![s3.key(path)]).await?;
        }
        let prefix = s3.dir_prefix(path);
        let mut start_after = None;
        loop {
            let page = s3.list_page(&prefix, None, start_after, None, LIST_MAX).await?;
            let keys: Vec<String> = page.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
            let Some(last) = keys.last().cloned() else { break };
            found = true;
            s3.delete_keys(keys).await?;
            if page.is_truncated != Some(true) {
                break;
            }
            start_after = Some(last);
        }
        if found { Ok(()) } else { Err(Error::not_found(NAME, path)) }
    }

    async fn redirect_url(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Ok(Box::new(FallbackWalker::new(Arc::new(self.clone()), path, start_after)))
    }
}

/// Ranged GETs of [`WINDOW`] bytes, each pinned to the first answer's ETag.
struct S3Reader {
    s3: Arc<Inner>,
    path: String,
    key: String,
    /// The offset of the first byte not fetched yet.
    offset: u64,
    etag: Option<String>,
    window: Vec<u8>,
    /// Bytes of the window handed out already.
    consumed: usize,
    at_end: bool,
}

impl S3Reader {
    async fn fetch(&mut self) -> Result<()> {
        let s3 = &self.s3;
        let range = format!("bytes={}-{}", self.offset, self.offset + WINDOW - 1);
        let request =
            s3.client.get_object().bucket(&s3.bucket).key(&self.key).range(range).set_if_match(self.etag.clone());
        match request.send().await {
            Ok(out) => {
                let etag = out.e_tag.clone();
                let body =
                    out.body.collect().await.map_err(|e| Error::other(NAME, format!("reading {}: {e}", self.path)))?;
                let bytes: Vec<u8> = body.into_bytes().into();
                self.at_end = (bytes.len() as u64) < WINDOW;
                self.offset += bytes.len() as u64;
                self.etag = self.etag.take().or(etag);
                self.window = bytes;
            }
            Err(e) if is_missing(&e) => return Err(Error::not_found(NAME, &self.path)),
            // At or past the end: an empty stream.
            Err(e) if e.code() == Some("InvalidRange") || status(&e) == Some(416) => {
                self.at_end = true;
                self.window = Vec::new();
            }
            Err(e) if status(&e) == Some(412) => {
                return Err(Error::other(NAME, format!("{} changed while it was being read", self.path)));
            }
            Err(e) => return Err(fail(&format!("reading {}", self.path))(e)),
        }
        self.consumed = 0;
        Ok(())
    }
}

#[async_trait]
impl FileReader for S3Reader {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.consumed == self.window.len() {
            if self.at_end {
                return Ok(None);
            }
            self.fetch().await?;
            if self.window.is_empty() {
                return Ok(None);
            }
        }
        let n = READ_CHUNK.min(self.window.len() - self.consumed);
        if self.consumed == 0 && n == self.window.len() {
            // The whole window: hand it over without a copy, as the wasm driver does.
            return Ok(Some(std::mem::take(&mut self.window)));
        }
        let chunk = self.window[self.consumed..self.consumed + n].to_vec();
        self.consumed += n;
        Ok(Some(chunk))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    Committed,
    Cancelled,
}

impl State {
    fn check_open(self) -> Result<()> {
        let why = match self {
            State::Open => return Ok(()),
            State::Closed => "already closed",
            State::Committed => "already committed",
            State::Cancelled => "already cancelled",
        };
        Err(Error::other(NAME, why))
    }
}

/// One multipart upload in parts of `chunksize`; less than a chunk stays buffered between
/// writes.
struct S3Writer {
    s3: Arc<Inner>,
    path: String,
    key: String,
    upload: String,
    parts: Vec<CompletedPart>,
    uploaded: u64,
    buffer: Vec<u8>,
    state: State,
}

impl S3Writer {
    /// Uploads every full chunk of the buffer, then the tail too when `all`.
    async fn flush(&mut self, all: bool) -> Result<()> {
        let chunk = self.s3.chunk_size;
        if self.buffer.is_empty() || (!all && self.buffer.len() < chunk) {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let mut rest = buffer.as_slice();
        while rest.len() >= chunk || (all && !rest.is_empty()) {
            let (part, tail) = rest.split_at(chunk.min(rest.len()));
            self.upload_part(part.to_vec()).await?;
            rest = tail;
        }
        self.buffer = rest.to_vec();
        Ok(())
    }

    async fn upload_part(&mut self, data: Vec<u8>) -> Result<()> {
        let number = self.parts.len() as i32 + 1;
        let size = data.len() as u64;
        let s3 = &self.s3;
        let out = s3
            .client
            .upload_part()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(&self.upload)
            .part_number(number)
            .content_length(size as i64)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(fail(&format!("writing part {number} of {}", self.path)))?;
        self.parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build());
        self.uploaded += size;
        Ok(())
    }
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        self.state.check_open()?;
        self.buffer.extend_from_slice(data);
        self.flush(false).await?;
        Ok(data.len())
    }

    fn size(&self) -> u64 {
        self.uploaded + self.buffer.len() as u64
    }

    async fn close(&mut self) -> Result<()> {
        match self.state {
            State::Open => {
                // Persists every byte without publishing: the upload stays open.
                self.flush(true).await?;
                self.state = State::Closed;
                Ok(())
            }
            State::Committed | State::Cancelled => Ok(()),
            State::Closed => Err(Error::other(NAME, "already closed")),
        }
    }

    async fn commit(&mut self) -> Result<()> {
        self.state.check_open()?;
        self.flush(true).await?;
        if self.parts.is_empty() {
            // S3 refuses to complete an upload with no parts.
            self.upload_part(Vec::new()).await?;
        }
        let s3 = &self.s3;
        let completed = CompletedMultipartUpload::builder().set_parts(Some(self.parts.clone())).build();
        let done = s3
            .client
            .complete_multipart_upload()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(&self.upload)
            .multipart_upload(completed)
            .send()
            .await;
        if let Err(e) = done {
            s3.abort_upload(&self.key, &self.upload).await;
            return Err(fail(&format!("completing the upload of {}", self.path))(e));
        }
        self.state = State::Committed;
        Ok(())
    }

    async fn cancel(&mut self) -> Result<()> {
        self.state.check_open()?;
        self.state = State::Cancelled;
        self.buffer = Vec::new();
        let s3 = &self.s3;
        s3.client
            .abort_multipart_upload()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(&self.upload)
            .send()
            .await
            .map_err(fail(&format!("cancelling the upload of {}", self.path)))?;
        Ok(())
    }
}
