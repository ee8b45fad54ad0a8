//! regstore's azure driver: Azure Blob Storage through its REST API over the host's
//! `wasi:http`, with distribution's parameters and semantics (block blobs for PutContent,
//! append blobs for writers) and regstore's decisions D1-D12.

mod api;
mod auth;
mod config;
mod reader;
mod sign;
mod walk;
mod writer;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use regstore_objectstore::Idempotence;
use regstore_objectstore::reader::ResumingReader;
use regstore_sdk::{
    Capabilities, Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Requirements, Result, Walker,
};

use api::{Blobs, LIST_MAX, is_404};
use auth::Auth;
use config::{Config, Credentials, WORKLOAD_IDENTITY_ENV};
use regstore_objectstore::time::iso8601;
use sign::{BlobSas, DelegationKey};

/// Room for PutContent and GetContent of large objects, which go whole through memory.
const MEMORY: u64 = 4 << 30;
/// A call may copy a large blob or fill a 256 MiB content.
const CALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The largest content one Put Blob carries; larger content goes as blocks.
const SINGLE_PUT_MAX: usize = 256 << 20;
/// Blocks of PutContent over [`SINGLE_PUT_MAX`].
const PUT_BLOCK: usize = 64 << 20;
/// Redirect URLs: valid from 10 s ago (clock skew) for 20 minutes (D10).
const SAS_SKEW: u64 = 10;
const SAS_LIFETIME: u64 = 20 * 60;
/// User delegation keys last this long and are renewed when less than half an hour is left.
const DELEGATION_KEY_LIFETIME: u64 = 48 * 3600;
const DELEGATION_KEY_GRACE: u64 = 30 * 60;

pub struct Azure {
    blobs: Rc<Blobs>,
    delegation_key: RefCell<Option<(DelegationKey, u64)>>,
}

impl Driver for Azure {
    fn describe(params: &Params) -> Result<Description> {
        let config = Config::from_params(params)?;
        let mut requirements = Requirements::new().memory(MEMORY).call_timeout(CALL_TIMEOUT);
        for authority in config.authorities() {
            requirements = requirements.http_authority(authority);
        }
        if let Credentials::Default { federated_token_file, .. } = &config.credentials {
            for name in WORKLOAD_IDENTITY_ENV {
                requirements = requirements.env(name);
            }
            // The token file is read where it is; its directory holds nothing else (AKS mounts
            // a projected volume there).
            if let Some(dir) = federated_token_file.as_deref().and_then(|f| std::path::Path::new(f).parent()) {
                requirements = requirements.read_only_dir(dir.display().to_string());
            }
        }
        let capabilities = Capabilities::new()
            .native_walk()
            .redirect_method("GET")
            .redirect_method("HEAD")
            .refuses_append_to_committed()
            .max_object_size(writer::MAX_BLOCKS * writer::BLOCK as u64);
        Ok(Description::new(requirements, capabilities))
    }

    fn open(params: Params) -> Result<Self> {
        let config = Config::from_params(&params)?;
        let auth = Auth::new(&config, &|name| std::env::var(name).ok())?;
        Ok(Azure { blobs: Rc::new(Blobs::new(config, auth)), delegation_key: RefCell::new(None) })
    }

    fn name(&self) -> String {
        "azure".into()
    }

    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let b = &self.blobs;
        let url = b.blob_url(&b.keys.key(path));
        let response = b.call(&format!("reading {path}"), Idempotence::Safe, |b| b.request(Method::GET, &url))?;
        if is_404(&response) {
            return Err(Error::not_found(path));
        }
        b.expect_success(&format!("reading {path}"), &response)?;
        Ok(response.body.to_vec())
    }

    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()> {
        let b = &self.blobs;
        let key = b.keys.key(path);
        // Earlier versions wrote PutContent as append blobs; replace such a blob only if it is
        // still the one seen (distribution's deleteLegacyPutContentBlob).
        if let Some(props) = b.properties(&key)?
            && props.blob_type != "BlockBlob"
        {
            b.delete_blob(&key, Some(&props.etag))?;
        }
        let content = bytes::Bytes::from(content);
        if content.len() <= SINGLE_PUT_MAX {
            return b.put_block_blob(&key, content);
        }
        let mut ids = Vec::new();
        for (i, start) in (0..content.len()).step_by(PUT_BLOCK).enumerate() {
            use base64::Engine;
            let id = base64::engine::general_purpose::STANDARD.encode(format!("regstore-{i:08}"));
            b.put_block(&key, &id, content.slice(start..(start + PUT_BLOCK).min(content.len())))?;
            ids.push(id);
        }
        b.put_block_list(&key, &ids)
    }

    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        let source = reader::BlobRange { blobs: self.blobs.clone(), path: path.into(), key: self.blobs.keys.key(path) };
        Ok(Box::new(ResumingReader::open(source, offset)?))
    }

    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        Ok(Box::new(writer::Writer::open(self.blobs.clone(), path, append)?))
    }

    fn stat(&self, path: &str) -> Result<FileInfo> {
        if path == "/" {
            return Ok(FileInfo::dir("/", 0));
        }
        let b = &self.blobs;
        if let Some(props) = b.properties(&b.keys.key(path))? {
            return Ok(FileInfo::file(path, props.size, props.modified_ns));
        }
        if b.any_under(&b.keys.dir_prefix(path))? { Ok(FileInfo::dir(path, 0)) } else { Err(Error::not_found(path)) }
    }

    /// The direct children through a delimited listing: O(children), where upstream lists the
    /// whole subtree.
    fn list(&self, path: &str) -> Result<Vec<String>> {
        let b = &self.blobs;
        let prefix = b.keys.dir_prefix(path);
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let page = b.list(&prefix, true, marker.as_deref(), LIST_MAX)?;
            names.extend(page.blobs.into_iter().map(|blob| blob.key));
            names.extend(page.prefixes);
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        let children = b.keys.children(&prefix, names);
        if children.is_empty() && path != "/" {
            return Err(Error::not_found(path));
        }
        Ok(children)
    }

    fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let b = &self.blobs;
        let (from, to) = (b.keys.key(source), b.keys.key(destination));
        if b.properties(&from)?.is_none() {
            return Err(if b.any_under(&b.keys.dir_prefix(source))? {
                Error::other(format!("cannot move directory {source}: only files can be moved"))
            } else {
                Error::not_found(source)
            });
        }
        if from == to {
            return Ok(());
        }
        let response = b.start_copy(&from, &to)?;
        if is_404(&response) {
            return Err(Error::not_found(source));
        }
        b.expect_success(&format!("copying {source} to {destination}"), &response)?;
        let mut status = response.header("x-ms-copy-status").unwrap_or("success").to_string();
        let copy_id = response.header("x-ms-copy-id").unwrap_or_default().to_string();
        let mut polls = 0;
        while status == "pending" {
            if polls >= b.config.max_retries {
                // Never a success for a copy that did not finish: stop it, keep the source.
                b.abort_copy(&to, &copy_id)?;
                return Err(Error::other(format!(
                    "max retries for copy polling reached, aborting copy of {source} to {destination}"
                )));
            }
            polls += 1;
            regstore_objectstore::retry::sleep(b.config.retry_delay * polls as u32);
            let Some(props) = b.properties(&to)? else {
                return Err(Error::other(format!("copying {source} to {destination}: the destination vanished")));
            };
            status = props.copy_status.unwrap_or_else(|| "success".into());
        }
        if status != "success" {
            return Err(Error::other(format!("failed to move blob: {source} to {destination}: copy {status}")));
        }
        b.delete_blob(&from, None)
            .map_err(|e| Error::other(format!("{destination} was written, but removing {source} failed: {e}")))?;
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<()> {
        let b = &self.blobs;
        // The blob at exactly the key, and everything under `key/`, never `keysuffix` (D6).
        // Whether the blob is there comes from asking first, not from the DELETE's status: a
        // DELETE whose answer was lost is sent again and meets 404 either way.
        let key = b.keys.key(path);
        let mut found = !key.is_empty() && b.properties(&key)?.is_some();
        if found {
            b.delete_blob(&key, None)?;
        }
        let prefix = b.keys.dir_prefix(path);
        loop {
            // Always the first page: the blobs of the last one are gone.
            let page = b.list(&prefix, false, None, LIST_MAX)?;
            if page.blobs.is_empty() {
                break;
            }
            found = true;
            for blob in &page.blobs {
                b.delete_blob(&blob.key, None)?;
            }
        }
        if found { Ok(()) } else { Err(Error::not_found(path)) }
    }

    fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        if method != "GET" && method != "HEAD" {
            return Ok(None);
        }
        let b = &self.blobs;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (start, expiry) = (iso8601(now - SAS_SKEW), iso8601(now + SAS_LIFETIME));
        let key = b.keys.key(path);
        let protocol = if b.config.service_url.starts_with("https://") { "https" } else { "https,http" };
        let sas = BlobSas {
            account: &b.config.account_name,
            container: &b.config.container,
            blob: &key,
            start: &start,
            expiry: &expiry,
            protocol,
        };
        let query = match &b.auth {
            Auth::SharedKey { key, .. } => sas.with_shared_key(key),
            Auth::Token { .. } => {
                let delegation = self.delegation_key(now)?;
                sas.with_delegation_key(&delegation)
                    .map_err(|e| Error::other(format!("the user delegation key is not base64: {e}")))?
            }
        };
        Ok(Some(format!("{}?{query}", b.blob_url(&key))))
    }

    fn walk(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Ok(Box::new(walk::BlobWalker::open(walk::BlobLister(self.blobs.clone()), path, start_after)?))
    }
}

impl Azure {
    /// A user delegation key for signing with token credentials, fetched once and renewed when
    /// less than half an hour of its 48 hours is left.
    fn delegation_key(&self, now: u64) -> Result<DelegationKey> {
        if let Some((key, expires)) = self.delegation_key.borrow().as_ref()
            && now + DELEGATION_KEY_GRACE < *expires
        {
            return Ok(key.clone());
        }
        let b = &self.blobs;
        let expires = now + DELEGATION_KEY_LIFETIME;
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            iso8601(now - SAS_SKEW),
            iso8601(expires)
        );
        let url = format!("{}/?restype=service&comp=userdelegationkey", b.config.service_url);
        let response = b.call("getting a user delegation key", Idempotence::Safe, |b| {
            b.request(Method::POST, &url).header("content-type", "application/xml").body(body.clone())
        })?;
        if response.status != StatusCode::OK {
            return Err(b.unexpected("getting a user delegation key to sign the redirect URL", &response));
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct UserDelegationKey {
            signed_oid: String,
            signed_tid: String,
            signed_start: String,
            signed_expiry: String,
            signed_service: String,
            signed_version: String,
            value: String,
        }
        let k: UserDelegationKey = regstore_objectstore::xml::parse(&response.body, "getting a user delegation key")?;
        let key = DelegationKey {
            object_id: k.signed_oid,
            tenant_id: k.signed_tid,
            start: k.signed_start,
            expiry: k.signed_expiry,
            service: k.signed_service,
            version: k.signed_version,
            value: k.value,
        };
        self.delegation_key.replace(Some((key.clone(), expires)));
        Ok(key)
    }
}

regstore_sdk::export_driver!(Azure);

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(json: &str) -> Result<Description> {
        Azure::describe(&Params::parse(json).unwrap())
    }

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn describes_itself() {
        let d = describe(&format!(
            r#"{{"accountname":"devstoreaccount1","accountkey":"{KEY}","container":"c","serviceurl":"https://127.0.0.1:10001/devstoreaccount1"}}"#
        ))
        .unwrap();
        let r = &d.requirements;
        assert_eq!(r.http_authorities, ["127.0.0.1:10001"]);
        assert!(r.env.is_empty() && r.read_only_dirs.is_empty() && !r.keeps_state);
        let c = &d.capabilities;
        assert!(c.native_walk && !c.appends_to_committed);
        assert_eq!(c.redirect_methods, ["GET", "HEAD"]);
        assert_eq!(c.max_object_size, Some(50_000 * (4 << 20)));
    }

    #[test]
    fn default_credentials_ask_for_the_workload_identity() {
        let d = describe(
            r#"{"accountname":"a","container":"c","credentials":{"type":"default_credentials","federatedtokenfile":"/var/run/secrets/azure/tokens/azure-identity-token"}}"#,
        )
        .unwrap();
        let r = &d.requirements;
        assert_eq!(r.env, WORKLOAD_IDENTITY_ENV);
        assert_eq!(r.read_only_dirs, ["/var/run/secrets/azure/tokens"]);
        // The metadata endpoint is never declared: the operator grants it by name.
        assert!(!r.http_authorities.iter().any(|a| a.starts_with("169.254.")));
    }

    #[test]
    fn bad_parameters_fail_describe_as_open() {
        assert!(describe(r#"{"container":"c"}"#).unwrap_err().to_string().contains("no accountname"));
    }
}
