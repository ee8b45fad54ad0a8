//! regstore's gcs driver: distribution's `gcs` as a wasm component (docs/drivers/gcs.md).
//!
//! It speaks Cloud Storage's JSON API over the host's `wasi:http`, to one configurable endpoint
//! (uploads included, unlike upstream). Keys are `rootdirectory` + path; a directory exists
//! while some object lies under `dir/`. Writers are GCS resumable uploads whose state lives in
//! the bucket, in distribution's format. Beyond upstream (docs/decisions.md): uploads in
//! progress are hidden from GetContent as from Reader (their directories still exist), a reader
//! past the end is empty (D3), appending to committed content is refused (D4), `Size()` counts
//! buffered bytes (D5), `Delete` removes the object and everything under it (D6), moving a
//! directory fails and a failed delete of a moved source is an error (D7), walks are one flat
//! listing.

mod api;
mod auth;
mod config;
mod jwt;
mod key;
mod reader;
mod session;
mod sign;
mod walk;
mod writer;

use std::rc::Rc;
use std::time::Duration;

use regstore_objectstore::keys::KeyMap;
use regstore_sdk::{
    Capabilities, Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Requirements, Result, Walker,
};

use api::{Api, LIST_MAX, OCTET_STREAM};
use auth::Auth;
use config::{Config, Credentials, LEGACY_UPLOAD_AUTHORITY};
use key::ServiceAccount;

/// distribution's name for this driver.
const NAME: &str = "gcs";
/// How long a redirect URL stays valid (D10).
const REDIRECT_EXPIRY_SECS: u64 = 20 * 60;
/// GCS's largest object.
const MAX_OBJECT_SIZE: u64 = 5 << 40;
/// A writer buffers up to `chunksize` (at most 2 GiB) in its instance.
const MEMORY: u64 = 4 << 30;
/// Calls wait on the network: rewriting a large object takes minutes.
const CALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub struct Gcs {
    inner: Rc<Inner>,
}

/// What readers, writers and walkers share with the driver.
pub(crate) struct Inner {
    api: Api,
    keys: KeyMap,
    chunk_size: usize,
    can_sign: bool,
}

impl Inner {
    /// Whether some object lies under `path/` (an upload in progress counts: its directory
    /// shows in List).
    fn is_dir(&self, path: &str) -> Result<bool> {
        let what = format!("looking for objects under {path}");
        let page = self.api.list(&self.keys.dir_prefix(path), false, None, None, 1, &what)?;
        Ok(!page.items.is_empty() || !page.prefixes.is_empty())
    }

    /// The committed object at `path`; `None` for no object or an upload in progress.
    fn file(&self, path: &str, what: &str) -> Result<Option<api::Object>> {
        Ok(self.api.get(&self.keys.key(path), what)?.filter(|o| !o.in_progress()))
    }
}

/// The credentials the parameters name; the key file is read here, never in describe.
fn auth(credentials: &Credentials) -> Result<Auth> {
    Ok(match credentials {
        Credentials::KeyFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::invalid_parameter(format!("cannot read the keyfile {path}: {e}")))?;
            Auth::with_key(Rc::new(ServiceAccount::from_json(&text, &format!("the keyfile {path}"))?))
        }
        Credentials::Inline(key) => Auth::with_key(key.clone()),
        Credentials::Metadata => Auth::metadata(),
        Credentials::Anonymous => Auth::anonymous(),
    })
}

impl Driver for Gcs {
    fn describe(params: &Params) -> Result<Description> {
        // With no environment, as describe runs: STORAGE_EMULATOR_HOST is open's concern, and
        // its authority is the operator's to grant.
        let config = Config::from_params(params, |_| None)?;
        let mut requirements =
            Requirements::new().memory(MEMORY).call_timeout(CALL_TIMEOUT).max_concurrent_calls(config.max_concurrency);
        for authority in config.authorities() {
            requirements = requirements.http_authority(authority);
        }
        // The SDK grants directories only: the key file's, read-only.
        if let Some(dir) = config.key_dir() {
            requirements = requirements.read_only_dir(dir);
        }
        let mut capabilities =
            Capabilities::new().native_walk().refuses_append_to_committed().max_object_size(MAX_OBJECT_SIZE);
        if config.can_sign() {
            capabilities = capabilities.redirect_method("GET").redirect_method("HEAD");
        }
        Ok(Description::new(requirements, capabilities))
    }

    fn open(params: Params) -> Result<Self> {
        let config = Config::from_params(&params, |k| std::env::var(k).ok())?;
        let auth = auth(&config.credentials)?;
        let mut api = Api::new(&config.endpoint.url, &config.bucket, auth, config.user_agent.as_deref());
        api.client.timeouts = config.timeouts;
        if !config.endpoint.custom {
            api = api.with_session_authority(LEGACY_UPLOAD_AUTHORITY);
        }
        let inner = Inner {
            api,
            keys: KeyMap::new(&config.root_directory),
            chunk_size: config.chunk_size as usize,
            can_sign: config.can_sign(),
        };
        Ok(Gcs { inner: Rc::new(inner) })
    }

    fn name(&self) -> String {
        NAME.into()
    }

    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        reader::read_all(self.inner.clone(), path)
    }

    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()> {
        let gcs = &self.inner;
        gcs.api.upload(&gcs.keys.key(path), OCTET_STREAM, &[], content.into(), &format!("writing {path}"))?;
        Ok(())
    }

    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        Ok(Box::new(reader::open(self.inner.clone(), path, offset)?))
    }

    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        Ok(Box::new(writer::Writer::open(self.inner.clone(), path, append)?))
    }

    fn stat(&self, path: &str) -> Result<FileInfo> {
        if path == "/" {
            return Ok(FileInfo::dir("/", 0));
        }
        let gcs = &self.inner;
        if let Some(object) = gcs.file(path, &format!("stat {path}"))? {
            return Ok(FileInfo::file(path, object.size, object.modified_ns()));
        }
        // A directory: some object under `path/`, never a bare prefix (which would make `/a/b` a
        // directory because `/a/bc` exists).
        if gcs.is_dir(path)? { Ok(FileInfo::dir(path, 0)) } else { Err(Error::not_found(path)) }
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let gcs = &self.inner;
        let prefix = gcs.keys.dir_prefix(path);
        let what = format!("listing {path}");
        let (mut children, mut exists, mut token) = (Vec::new(), false, None);
        loop {
            let page = gcs.api.list(&prefix, true, None, token.as_deref(), LIST_MAX, &what)?;
            exists |= !page.items.is_empty() || !page.prefixes.is_empty();
            let files = page.items.into_iter().filter(|o| !o.in_progress()).map(|o| o.name);
            for key in files.chain(page.prefixes) {
                // A `dir/` marker lists as the directory itself: never an empty name.
                let key = key.trim_end_matches('/');
                if key.len() > prefix.len() {
                    children.extend(gcs.keys.path(key));
                }
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        if !exists && path != "/" {
            return Err(Error::not_found(path));
        }
        children.sort();
        children.dedup();
        Ok(children)
    }

    fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let gcs = &self.inner;
        let what = format!("moving {source} to {destination}");
        let Some(object) = gcs.file(source, &what)? else {
            return Err(if gcs.is_dir(source)? {
                Error::other(format!("cannot move directory {source}: only files can be moved"))
            } else {
                Error::not_found(source)
            });
        };
        if source == destination {
            // A rewrite onto itself and a delete of the old generation would lose it.
            return Ok(());
        }
        let (from, to) = (gcs.keys.key(source), gcs.keys.key(destination));
        let generation = object.generation.as_deref();
        let mut token = None;
        loop {
            match gcs.api.rewrite(&from, &to, generation, token.as_deref(), &what)? {
                Ok(step) if step.done => break,
                Ok(step) => {
                    token = Some(step.rewrite_token.filter(|t| !t.is_empty()).ok_or_else(|| {
                        Error::other(format!(
                            "{what}: {} answered an unfinished rewrite without a token",
                            gcs.api.endpoint()
                        ))
                    })?);
                }
                Err(status) if status == http::StatusCode::NOT_FOUND => return Err(Error::not_found(source)),
                Err(_) => {
                    return Err(Error::other(format!(
                        "{what}: {source} changed while it was being moved; nothing was moved"
                    )));
                }
            }
        }
        // Only the version copied, so a source rewritten meanwhile survives; and an error if
        // the source stays (upstream only logs it).
        if !gcs.api.delete(&from, generation, &format!("removing {source} after copying it to {destination}"))?
            && gcs.file(source, &what)?.is_some()
        {
            return Err(Error::other(format!(
                "{what}: {source} was copied, but changed before it could be removed; both now exist"
            )));
        }
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<()> {
        let gcs = &self.inner;
        let what = format!("deleting {path}");
        // The object at exactly the key, and everything under `key/`, never `keysuffix` (D6).
        // Whether the object is there comes from asking first, not from the DELETE's status: a
        // DELETE whose answer was lost is sent again and meets 404 either way.
        let key = gcs.keys.key(path);
        let mut found = gcs.api.get(&key, &what)?.is_some();
        if found {
            gcs.api.delete(&key, None, &what)?;
        }
        let prefix = gcs.keys.dir_prefix(path);
        let mut token = None;
        loop {
            let page = gcs.api.list(&prefix, false, None, token.as_deref(), LIST_MAX, &what)?;
            for object in &page.items {
                // A 404 is an object someone else deleted meanwhile: gone all the same.
                gcs.api.delete(&object.name, None, &what)?;
                found = true;
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        if found { Ok(()) } else { Err(Error::not_found(path)) }
    }

    fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        let gcs = &self.inner;
        if !matches!(method, "GET" | "HEAD") || !gcs.can_sign {
            return Ok(None);
        }
        let Some(email) = gcs.api.auth.signer_email()? else { return Ok(None) };
        let endpoint = gcs.api.endpoint();
        let (scheme, authority) = endpoint.split_once("://").unwrap_or(("https", endpoint));
        let object_path = format!("/{}/{}", gcs.api.bucket, gcs.keys.key(path));
        let url = sign::UrlToSign {
            method,
            scheme,
            authority,
            path: &object_path,
            headers: &[],
            query: &[],
            email: &email,
            now_secs: regstore_sdk::now_ns() / 1_000_000_000,
            expires_secs: REDIRECT_EXPIRY_SECS,
        };
        // Each method gets a URL signed for itself (D10).
        let signed = url
            .sign(|data| gcs.api.auth.sign(&email, data))
            .map_err(|e| Error::other(format!("signing a {method} URL for {path}: {}", detail(&e))))?;
        Ok(Some(signed))
    }

    fn walk(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Ok(Box::new(walk::ObjectWalker::open(walk::ObjectLister(self.inner.clone()), path, start_after)?))
    }
}

fn detail(e: &Error) -> String {
    match e {
        Error::Other(d) | Error::InvalidParameter(d) => d.clone(),
        other => format!("{other:?}"),
    }
}

regstore_sdk::export_driver!(Gcs);
