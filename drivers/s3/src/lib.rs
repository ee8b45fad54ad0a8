//! regstore's s3 driver: distribution's `s3aws` as a wasm component (docs/drivers/s3.md).
//!
//! aws-sdk-s3 runs inside the component and reaches S3 only through the host's `wasi:http`,
//! which lets requests go to the configured endpoint alone. Keys are `rootdirectory` + path; a
//! "directory" exists while some key has its prefix. Beyond upstream, per regstore's decisions
//! (docs/decisions.md): `Size()` counts buffered bytes (D5), appending to non-empty committed
//! content is refused (D4), `Delete` is exact and prefix-safe (D6), moving a directory fails
//! (D7), a missing walk root is path-not-found (D9), walks are component-wise (D2), superseded
//! and failed multipart uploads are aborted.

mod client;
mod config;
mod reader;
mod transport;
mod walk;
mod writer;

use std::rc::Rc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{Delete, ObjectCannedAcl, ObjectIdentifier, ServerSideEncryption, StorageClass};
use futures::{StreamExt, TryStreamExt};
use regstore_objectstore::keys::KeyMap;
use regstore_sdk::{
    Capabilities, Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Requirements, Result, Walker,
};

use client::{Failure, classify, other, run};
use config::Config;
use transport::Transport;

/// distribution's name for this driver.
const NAME: &str = "s3aws";
/// S3 lists and deletes at most this many keys per request.
const LIST_MAX: i32 = 1000;
/// How long a redirect URL stays valid (D10).
const REDIRECT_EXPIRY: Duration = Duration::from_secs(20 * 60);
const CONTENT_TYPE: &str = "application/octet-stream";
/// A writer buffers up to `chunksize` (at most 5 GiB) in its instance.
const MEMORY: u64 = 4 << 30;
/// Calls wait on the network: a multipart copy of a large blob takes minutes.
const CALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub struct S3 {
    inner: Rc<Inner>,
}

/// What readers, writers and walkers share with the driver.
pub(crate) struct Inner {
    client: aws_sdk_s3::Client,
    /// Where the client's requests go; it counts the requests it had to send again.
    transport: Transport,
    config: Config,
    keys: KeyMap,
    /// Where requests go, for error messages.
    endpoint: String,
}

impl Inner {
    fn key(&self, path: &str) -> String {
        self.keys.key(path)
    }

    fn bucket(&self) -> &str {
        &self.config.bucket
    }

    /// The object's size and modification time; `None` when no object has exactly this key.
    async fn head(&self, path: &str) -> Result<Option<(u64, u64)>> {
        let key = self.key(path);
        match self.client.head_object().bucket(self.bucket()).key(&key).send().await {
            Ok(o) => Ok(Some((o.content_length.unwrap_or(0).max(0) as u64, modified_ns(o.last_modified.as_ref())))),
            Err(e) => match classify(e, &format!("stat {path}"), &self.endpoint) {
                Failure::NotFound => Ok(None),
                Failure::Unreachable(e) => Err(e),
                // HEAD may be forbidden where listing is allowed (upstream's fallback).
                Failure::Other(_) | Failure::InvalidRange | Failure::Changed => self.head_by_listing(path).await,
            },
        }
    }

    async fn head_by_listing(&self, path: &str) -> Result<Option<(u64, u64)>> {
        let key = self.key(path);
        let page = self.list_page(&key, None, None, None, 1).await?;
        Ok(page
            .contents
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.key.as_deref() == Some(key.as_str()))
            .map(|o| (o.size.unwrap_or(0).max(0) as u64, modified_ns(o.last_modified.as_ref()))))
    }

    /// Whether some key lies under `path/` (a "directory").
    async fn is_dir(&self, path: &str) -> Result<bool> {
        let page = self.list_page(&self.keys.dir_prefix(path), None, None, None, 1).await?;
        Ok(page.key_count.unwrap_or(0) > 0 || !page.contents.unwrap_or_default().is_empty())
    }

    async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<String>,
        token: Option<String>,
        max_keys: i32,
    ) -> Result<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output> {
        self.client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_start_after(start_after)
            .set_continuation_token(token)
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| other(e, &format!("listing {prefix:?}"), &self.endpoint))
    }

    /// Deletes keys, at most [`LIST_MAX`] per request; per-key failures are reported together.
    async fn delete_keys(&self, keys: Vec<String>) -> Result<()> {
        for batch in keys.chunks(LIST_MAX as usize) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().map_err(Error::other))
                .collect::<Result<Vec<_>>>()?;
            let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(Error::other)?;
            let out = self
                .client
                .delete_objects()
                .bucket(self.bucket())
                .delete(delete)
                .send()
                .await
                .map_err(|e| other(e, "deleting objects", &self.endpoint))?;
            let failed: Vec<String> = out
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| format!("{}: {}", e.key.unwrap_or_default(), e.message.or(e.code).unwrap_or_default()))
                .collect();
            if !failed.is_empty() {
                return Err(Error::other(format!("deleting objects failed: {}", failed.join("; "))));
            }
        }
        Ok(())
    }

    fn storage_class(&self) -> Option<StorageClass> {
        self.config.storage_class.as_deref().map(StorageClass::from)
    }

    fn acl(&self) -> ObjectCannedAcl {
        ObjectCannedAcl::from(self.config.object_acl.as_str())
    }

    /// Server-side encryption as distribution sends it: AES256, or aws:kms with a key id.
    fn encryption(&self) -> Option<ServerSideEncryption> {
        match (self.config.encrypt, &self.config.key_id) {
            (false, _) => None,
            (true, None) => Some(ServerSideEncryption::Aes256),
            (true, Some(_)) => Some(ServerSideEncryption::AwsKms),
        }
    }

    /// A one-request copy, carrying the object options (objects up to the copy threshold).
    async fn copy_object(&self, source_key: &str, dest_key: &str) -> Result<()> {
        self.client
            .copy_object()
            .bucket(self.bucket())
            .key(dest_key)
            .copy_source(copy_source(self.bucket(), source_key))
            .content_type(CONTENT_TYPE)
            .acl(self.acl())
            .set_server_side_encryption(self.encryption())
            .set_ssekms_key_id(self.config.key_id.clone())
            .set_storage_class(self.storage_class())
            .send()
            .await
            .map_err(|e| other(e, &format!("copying {source_key} to {dest_key}"), &self.endpoint))?;
        Ok(())
    }

    /// A multipart copy in `multipartcopychunksize` parts, `multipartcopymaxconcurrency` at a
    /// time (in flight together inside a component; one after another in the native build); the
    /// upload is aborted if any part fails.
    async fn multipart_copy(&self, source_key: &str, dest_key: &str, size: u64) -> Result<()> {
        let upload = writer::create_upload(self, dest_key).await?;
        let chunk = self.config.copy_chunk_size;
        let ranges: Vec<(i32, u64, u64)> =
            (0..size.div_ceil(chunk)).map(|i| (i as i32 + 1, i * chunk, ((i + 1) * chunk).min(size) - 1)).collect();
        let source = copy_source(self.bucket(), source_key);
        let copied: Result<Vec<writer::Part>> = futures::stream::iter(ranges)
            .map(|(number, first, last)| {
                let (source, upload) = (source.clone(), upload.clone());
                async move {
                    let out = self
                        .client
                        .upload_part_copy()
                        .bucket(self.bucket())
                        .key(dest_key)
                        .upload_id(upload)
                        .part_number(number)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={first}-{last}"))
                        .send()
                        .await
                        .map_err(|e| other(e, &format!("copying part {number} of {source_key}"), &self.endpoint))?;
                    let etag = out.copy_part_result.and_then(|r| r.e_tag).unwrap_or_default();
                    Ok(writer::Part { number, etag, size: last - first + 1 })
                }
            })
            .buffer_unordered(self.config.copy_max_concurrency)
            .try_collect()
            .await;
        let result = match copied {
            Ok(parts) => writer::complete_upload(self, dest_key, &upload, parts).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            writer::abort_upload(self, dest_key, &upload).await;
            return Err(e);
        }
        Ok(())
    }
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

fn modified_ns(t: Option<&DateTime>) -> u64 {
    t.map(|t| (t.secs().max(0) as u64) * 1_000_000_000 + t.subsec_nanos() as u64).unwrap_or(0)
}

impl Driver for S3 {
    fn describe(params: &Params) -> Result<Description> {
        // With no environment, as describe runs: credentials missing here are open's concern.
        let config = Config::from_params(params, |_| None)?;
        let mut requirements = Requirements::new().memory(MEMORY).call_timeout(CALL_TIMEOUT);
        for authority in config.authorities() {
            requirements = requirements.http_authority(authority);
        }
        // Keys in the parameters win; otherwise, as distribution's default chain, the environment.
        if config.credentials.is_none() {
            for name in config::CREDENTIALS_ENV {
                requirements = requirements.env(name);
            }
        }
        let capabilities = Capabilities::new()
            .native_walk()
            .redirect_method("GET")
            .redirect_method("HEAD")
            .refuses_append_to_committed();
        Ok(Description::new(requirements, capabilities))
    }

    fn open(params: Params) -> Result<Self> {
        let config = Config::from_params(&params, |k| std::env::var(k).ok())?;
        if config.credentials.is_none() {
            return Err(Error::invalid_parameter(
                "no credentials: set accesskey and secretkey, or have the host hand this driver \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.{}", config.region, config::aws_domain(&config.region)));
        let mut http = regstore_objectstore::Client::new("S3", &endpoint);
        http.timeouts = config.timeouts;
        let transport = Transport::new(http);
        let client = client::build(&config, &transport)?;
        let keys = KeyMap::new(&config.root_directory);
        Ok(S3 { inner: Rc::new(Inner { client, transport, config, keys, endpoint }) })
    }

    fn name(&self) -> String {
        NAME.into()
    }

    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let s3 = &self.inner;
        run(async {
            let out = match s3.client.get_object().bucket(s3.bucket()).key(s3.key(path)).send().await {
                Ok(out) => out,
                Err(e) => {
                    return Err(match classify(e, &format!("reading {path}"), &s3.endpoint) {
                        Failure::NotFound => Error::not_found(path),
                        Failure::Other(e) | Failure::Unreachable(e) => e,
                        _ => Error::other(format!("reading {path}: unexpected answer")),
                    });
                }
            };
            let body = out.body.collect().await.map_err(|e| Error::other(format!("reading {path}: {e}")))?;
            Ok(Vec::from(body.into_bytes()))
        })
    }

    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()> {
        let s3 = &self.inner;
        run(async {
            s3.client
                .put_object()
                .bucket(s3.bucket())
                .key(s3.key(path))
                .content_type(CONTENT_TYPE)
                .acl(s3.acl())
                .set_server_side_encryption(s3.encryption())
                .set_ssekms_key_id(s3.config.key_id.clone())
                .set_storage_class(s3.storage_class())
                .body(ByteStream::from(content))
                .send()
                .await
                .map_err(|e| other(e, &format!("writing {path}"), &s3.endpoint))?;
            Ok(())
        })
    }

    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        Ok(Box::new(reader::Reader::open(self.inner.clone(), path, offset)?))
    }

    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        Ok(Box::new(writer::Writer::open(self.inner.clone(), path, append)?))
    }

    fn stat(&self, path: &str) -> Result<FileInfo> {
        if path == "/" {
            return Ok(FileInfo::dir("/", 0));
        }
        let s3 = &self.inner;
        run(async {
            if let Some((size, modified)) = s3.head(path).await? {
                return Ok(FileInfo::file(path, size, modified));
            }
            // A directory: some key under `path/`, never a bare prefix (upstream's Stat took `/a/b`
            // for a directory because `/a/bc` existed).
            if s3.is_dir(path).await? { Ok(FileInfo::dir(path, 0)) } else { Err(Error::not_found(path)) }
        })
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let s3 = &self.inner;
        let prefix = s3.keys.dir_prefix(path);
        run(async {
            let mut names = Vec::new();
            let mut token = None;
            loop {
                let page = s3.list_page(&prefix, Some("/"), None, token, LIST_MAX).await?;
                names.extend(page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
                names.extend(page.common_prefixes.unwrap_or_default().into_iter().filter_map(|p| p.prefix));
                token = page.next_continuation_token.filter(|_| page.is_truncated == Some(true));
                if token.is_none() {
                    break;
                }
            }
            let children = s3.keys.children(&prefix, names);
            if children.is_empty() && path != "/" {
                return Err(Error::not_found(path));
            }
            Ok(children)
        })
    }

    fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let s3 = &self.inner;
        run(async {
            let Some((size, _)) = s3.head(source).await? else {
                return Err(if s3.is_dir(source).await? {
                    Error::other(format!("cannot move directory {source}: only files can be moved"))
                } else {
                    Error::not_found(source)
                });
            };
            let (from, to) = (s3.key(source), s3.key(destination));
            if size <= s3.config.copy_threshold {
                s3.copy_object(&from, &to).await?;
            } else {
                s3.multipart_copy(&from, &to, size).await?;
            }
            s3.client
                .delete_object()
                .bucket(s3.bucket())
                .key(&from)
                .send()
                .await
                .map_err(|e| other(e, &format!("removing {source} after copying it"), &s3.endpoint))?;
            Ok(())
        })
    }

    fn delete(&self, path: &str) -> Result<()> {
        let s3 = &self.inner;
        let (key, prefix) = (s3.key(path), s3.keys.dir_prefix(path));
        run(async {
            // The object at exactly the key, and everything under `key/`, never `keysuffix` (D6).
            let exact = s3.head(path).await?.is_some();
            let mut found = exact;
            if exact {
                s3.delete_keys(vec![key]).await?;
            }
            let mut start_after = None;
            loop {
                let page = s3.list_page(&prefix, None, start_after, None, LIST_MAX).await?;
                let keys: Vec<String> = page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect();
                let Some(last) = keys.last().cloned() else { break };
                found = true;
                s3.delete_keys(keys).await?;
                if page.is_truncated != Some(true) {
                    break;
                }
                start_after = Some(last);
            }
            if found { Ok(()) } else { Err(Error::not_found(path)) }
        })
    }

    fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        let s3 = &self.inner;
        let expiry = PresigningConfig::expires_in(REDIRECT_EXPIRY).map_err(Error::other)?;
        let key = s3.key(path);
        // upstream replaces the scheme and host before signing, so the URL is signed for them.
        let redirect = s3.config.redirect_endpoint.clone();
        let retarget = move |request: &mut aws_smithy_runtime_api::http::Request| {
            if let Some(endpoint) = &redirect {
                let uri = request.uri().to_string();
                let rest = uri.split_once("://").and_then(|(_, r)| r.find('/').map(|i| &r[i..])).unwrap_or("/");
                let _ = request.set_uri(format!("{endpoint}{rest}"));
            }
        };
        run(async {
            // Each method gets a URL signed for itself (D10); signing is local.
            let failed = |e: &dyn std::fmt::Display| Error::other(format!("signing a {method} URL for {path}: {e}"));
            let request = match method {
                "GET" => {
                    let op = s3.client.get_object().bucket(s3.bucket()).key(key);
                    op.customize().mutate_request(retarget).presigned(expiry).await.map_err(|e| failed(&e))?
                }
                "HEAD" => {
                    let op = s3.client.head_object().bucket(s3.bucket()).key(key);
                    op.customize().mutate_request(retarget).presigned(expiry).await.map_err(|e| failed(&e))?
                }
                _ => return Ok(None),
            };
            Ok(Some(request.uri().to_string()))
        })
    }

    fn walk(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Ok(Box::new(walk::ObjectWalker::open(walk::S3Lister(self.inner.clone()), path, start_after)?))
    }
}

regstore_sdk::export_driver!(S3);

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(json: &str) -> Result<Description> {
        S3::describe(&Params::parse(json).unwrap())
    }

    fn authorities(json: &str) -> Vec<String> {
        describe(json).unwrap().requirements.http_authorities
    }

    #[test]
    fn grants_only_its_endpoint() {
        let p = r#"{"regionendpoint":"http://127.0.0.1:9000","forcepathstyle":"true","bucket":"b"}"#;
        assert_eq!(authorities(p), ["127.0.0.1:9000"]);
        let p = r#"{"regionendpoint":"minio.local","secure":false,"bucket":"b"}"#;
        assert_eq!(authorities(p), ["minio.local:80", "b.minio.local:80"]);
        let p = r#"{"regionendpoint":"https://[::1]","bucket":"b","forcepathstyle":true}"#;
        assert_eq!(authorities(p), ["[::1]:443"]);
        let p = r#"{"region":"eu-west-1","bucket":"b"}"#;
        assert_eq!(authorities(p), ["s3.eu-west-1.amazonaws.com:443", "b.s3.eu-west-1.amazonaws.com:443"]);
        let p = r#"{"region":"cn-north-1","bucket":"b","usefipsendpoint":true,"usedualstack":"1"}"#;
        assert_eq!(authorities(p)[0], "s3-fips.dualstack.cn-north-1.amazonaws.com.cn:443");
        let p = r#"{"region":"us-east-1","bucket":"b","accelerate":true}"#;
        assert_eq!(authorities(p)[1], "b.s3-accelerate.amazonaws.com:443");
        let p = r#"{"region":"us-east-1","bucket":"b","secure":false}"#;
        assert_eq!(authorities(p), ["s3.us-east-1.amazonaws.com:80", "b.s3.us-east-1.amazonaws.com:80"]);
    }

    #[test]
    fn parameter_errors_are_opens() {
        for json in [r#"{"bucket":"b"}"#, r#"{"region":"us-east-1"}"#, r#"{"bucket":"b","region":"mars-1"}"#] {
            let Err(Error::InvalidParameter(described)) = describe(json) else { panic!("{json} was accepted") };
            let Err(Error::InvalidParameter(opened)) = S3::open(Params::parse(json).unwrap()) else {
                panic!("{json} was opened")
            };
            assert_eq!(described, opened);
        }
        assert_eq!(
            describe(r#"{"bucket":"b","region":"mars-1"}"#).unwrap_err(),
            Error::InvalidParameter("invalid region provided: mars-1".into())
        );
        let Err(Error::InvalidParameter(m)) = describe(r#"{"bucket":"b","regionendpoint":"http://a b"}"#) else {
            panic!("an endpoint that is no URL was accepted")
        };
        assert!(m.starts_with("invalid regionendpoint \"http://a b\": "), "{m}");
    }

    #[test]
    fn credentials_come_from_params_first() {
        let d = describe(r#"{"region":"us-east-1","bucket":"b","accesskey":"a","secretkey":"s"}"#).unwrap();
        assert!(d.requirements.env.is_empty());
        // Without both keys, and with no environment while describing: ask for the variables.
        let d = describe(r#"{"region":"us-east-1","bucket":"b","accesskey":"a"}"#).unwrap();
        assert_eq!(d.requirements.env, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]);
    }

    #[test]
    fn describes_itself() {
        let d = describe(r#"{"region":"us-east-1","bucket":"b"}"#).unwrap();
        let r = &d.requirements;
        assert!(!r.keeps_state && r.read_write_dirs.is_empty() && r.read_only_dirs.is_empty());
        assert_eq!((r.memory_bytes, r.call_timeout_ms, r.max_concurrent_calls), (4 << 30, 15 * 60_000, None));
        let c = &d.capabilities;
        assert!(c.native_walk && !c.appends_to_committed);
        assert_eq!(c.redirect_methods, ["GET", "HEAD"]);
        assert_eq!(c.max_object_size, None);
    }
}
