//! The resumable writer: one S3 multipart upload per written path, in parts of `chunksize`.
//!
//! All of a writer's state lives in S3 (the upload and its parts), so `Writer(path, true)` in
//! any process resumes where the last `Close` left off. `Close` uploads the buffered tail as a
//! short part; S3 accepts no part after a short one, so a resumed writer that has to add parts
//! first rebuilds the upload with equal parts (see [`Writer::make_parts_uniform`]).

use std::rc::Rc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use regstore_sdk::{Error, FileWriter, Result, WriterState};

use crate::client::{Failure, classify, other, run};
use crate::{CONTENT_TYPE, Inner, LIST_MAX};

/// An uploaded part.
#[derive(Debug, Clone)]
pub struct Part {
    pub number: i32,
    pub etag: String,
    pub size: u64,
}

pub struct Writer {
    s3: Rc<Inner>,
    path: String,
    key: String,
    upload: String,
    /// Uploaded parts, in part-number order.
    parts: Vec<Part>,
    /// Bytes accepted but not uploaded yet: less than a chunk after every `write`.
    buffer: Vec<u8>,
    state: WriterState,
}

impl Writer {
    pub fn open(s3: Rc<Inner>, path: &str, append: bool) -> Result<Self> {
        let key = s3.key(path);
        let (upload, parts) = run(async {
            if !append {
                // A new write supersedes any upload left for this key.
                for (upload, _) in uploads_for(&s3, &key).await? {
                    abort_upload(&s3, &key, &upload).await;
                }
                return Ok((create_upload(&s3, &key).await?, Vec::new()));
            }
            let mut uploads = uploads_for(&s3, &key).await?;
            uploads.sort_by_key(|u| u.1);
            let Some((newest, _)) = uploads.pop() else {
                return match s3.head(path).await? {
                    None => Err(Error::not_found(path)),
                    // Appending to empty committed content works: the upload replaces it.
                    Some((0, _)) => Ok((create_upload(&s3, &key).await?, Vec::new())),
                    Some(_) => Err(Error::other(format!(
                        "cannot append to {path}: its content is committed, and committed content \
                         cannot be appended to; write a new path instead"
                    ))),
                };
            };
            for (older, _) in uploads {
                abort_upload(&s3, &key, &older).await;
            }
            let parts = list_parts(&s3, &key, &newest).await.map_err(|e| match e {
                Failure::NotFound => Error::not_found(path),
                Failure::Other(e) | Failure::Unreachable(e) => e,
                _ => Error::other(format!("listing the parts of {path}: unexpected answer")),
            })?;
            Ok((newest, parts))
        })?;
        Ok(Writer { s3, path: path.into(), key, upload, parts, buffer: Vec::new(), state: WriterState::Open })
    }

    fn chunk_size(&self) -> usize {
        self.s3.config.chunk_size as usize
    }

    fn uploaded(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// Uploads every full chunk of the buffer, then the tail too when `all`.
    async fn flush(&mut self, all: bool) -> Result<()> {
        let chunk = self.chunk_size();
        if self.buffer.is_empty() || (!all && self.buffer.len() < chunk) {
            return Ok(());
        }
        self.make_parts_uniform().await?;
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
        if number > 10_000 {
            return Err(Error::other(format!(
                "{}: S3 allows at most 10000 parts; raise chunksize to write more than {} bytes",
                self.path,
                self.uploaded()
            )));
        }
        let size = data.len() as u64;
        let s3 = &self.s3;
        let out = s3
            .client
            .upload_part()
            .bucket(s3.bucket())
            .key(&self.key)
            .upload_id(&self.upload)
            .part_number(number)
            .content_length(size as i64)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| other(e, &format!("writing part {number} of {}", self.path), &s3.endpoint))?;
        self.parts.push(Part { number, etag: out.e_tag.unwrap_or_default(), size });
        Ok(())
    }

    /// S3 takes no part after a short one, and some stores want all parts but the last equal
    /// (R2). When the uploaded parts are not all exactly `chunksize` (a `Close` left a short
    /// tail, or another `chunksize` wrote them), the upload is completed, its full chunks are
    /// copied server-side into a new upload, the remainder is read back into the buffer, and
    /// the interim object is deleted. Only the remainder (less than a chunk) crosses the wire.
    async fn make_parts_uniform(&mut self) -> Result<()> {
        let chunk = self.chunk_size() as u64;
        if self.parts.iter().all(|p| p.size == chunk) {
            return Ok(());
        }
        let s3 = self.s3.clone();
        let total = self.uploaded();
        complete_upload(&s3, &self.key, &self.upload, std::mem::take(&mut self.parts)).await?;
        self.upload = create_upload(&s3, &self.key).await?;
        let source = crate::copy_source(s3.bucket(), &self.key);
        let full = total / chunk;
        for i in 0..full {
            let number = i as i32 + 1;
            let out = s3
                .client
                .upload_part_copy()
                .bucket(s3.bucket())
                .key(&self.key)
                .upload_id(&self.upload)
                .part_number(number)
                .copy_source(&source)
                .copy_source_range(format!("bytes={}-{}", i * chunk, (i + 1) * chunk - 1))
                .send()
                .await
                .map_err(|e| other(e, &format!("rebuilding part {number} of {}", self.path), &s3.endpoint))?;
            let etag = out.copy_part_result.and_then(|r| r.e_tag).unwrap_or_default();
            self.parts.push(Part { number, etag, size: chunk });
        }
        if total > full * chunk {
            let out = s3
                .client
                .get_object()
                .bucket(s3.bucket())
                .key(&self.key)
                .range(format!("bytes={}-{}", full * chunk, total - 1))
                .send()
                .await
                .map_err(|e| other(e, &format!("reading back the tail of {}", self.path), &s3.endpoint))?;
            let tail = out.body.collect().await.map_err(|e| Error::other(format!("{}: {e}", self.path)))?;
            let mut buffer = Vec::from(tail.into_bytes());
            buffer.append(&mut self.buffer);
            self.buffer = buffer;
        }
        // The interim object was never committed content: remove it again.
        s3.client
            .delete_object()
            .bucket(s3.bucket())
            .key(&self.key)
            .send()
            .await
            .map_err(|e| other(e, &format!("removing the interim object of {}", self.path), &s3.endpoint))?;
        Ok(())
    }
}

impl FileWriter for Writer {
    fn write(&mut self, data: Vec<u8>) -> Result<u64> {
        self.state.check_write()?;
        let n = data.len() as u64;
        if self.buffer.is_empty() {
            self.buffer = data;
        } else {
            self.buffer.extend_from_slice(&data);
        }
        run(self.flush(false))?;
        Ok(n)
    }

    /// Uploaded and buffered bytes (D5).
    fn size(&self) -> u64 {
        self.uploaded() + self.buffer.len() as u64
    }

    fn close(&mut self) -> Result<()> {
        if self.state.check_close()? {
            // Persist every byte without publishing: the upload stays open.
            run(self.flush(true))?;
            self.state = WriterState::Closed;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.state.check_commit()?;
        let s3 = self.s3.clone();
        run(async {
            self.flush(true).await?;
            if self.parts.is_empty() {
                // S3 refuses to complete an upload with no parts.
                self.upload_part(Vec::new()).await?;
            }
            if let Err(e) = complete_upload(&s3, &self.key, &self.upload, self.parts.clone()).await {
                abort_upload(&s3, &self.key, &self.upload).await;
                return Err(e);
            }
            Ok(())
        })?;
        self.state = WriterState::Committed;
        Ok(())
    }

    fn cancel(&mut self) -> Result<()> {
        self.state.check_cancel()?;
        self.state = WriterState::Cancelled;
        self.buffer = Vec::new();
        let s3 = self.s3.clone();
        let what = format!("cancelling the upload of {}", self.path);
        let sent =
            run(s3.client.abort_multipart_upload().bucket(s3.bucket()).key(&self.key).upload_id(&self.upload).send());
        match sent.map_err(|e| classify(e, &what, &s3.endpoint)) {
            // Already gone (an earlier try's answer was lost, or another writer superseded it):
            // what Cancel asks for holds.
            Ok(_) | Err(Failure::NotFound) => Ok(()),
            Err(Failure::Other(e) | Failure::Unreachable(e)) => Err(e),
            Err(Failure::InvalidRange | Failure::Changed) => Err(Error::other(format!("{what}: unexpected answer"))),
        }
    }
}

/// A new multipart upload for `key`, with every object option (upstream's rebuilt upload on a
/// resume dropped the KMS key id).
///
/// When the transport had to send the request again after a lost answer, the first try may
/// have made an upload too: every other upload of `key` is aborted, so that no stray is left
/// and a later `Writer(path, true)` cannot pick one up. (A writer owns its key: a new write
/// supersedes what is left for it.)
pub async fn create_upload(s3: &Inner, key: &str) -> Result<String> {
    let replays = s3.transport.replays();
    let out = s3
        .client
        .create_multipart_upload()
        .bucket(s3.bucket())
        .key(key)
        .content_type(CONTENT_TYPE)
        .acl(s3.acl())
        .set_server_side_encryption(s3.encryption())
        .set_ssekms_key_id(s3.config.key_id.clone())
        .set_storage_class(s3.storage_class())
        .send()
        .await
        .map_err(|e| other(e, &format!("starting an upload of {key}"), &s3.endpoint))?;
    let upload = out
        .upload_id
        .ok_or_else(|| Error::other(format!("starting an upload of {key}: no upload id in the answer")))?;
    if s3.transport.replays() != replays {
        for (stray, _) in uploads_for(s3, key).await? {
            if stray != upload {
                abort_upload(s3, key, &stray).await;
            }
        }
    }
    Ok(upload)
}

/// Completes an upload. A retry after a lost answer finds the upload gone (`NoSuchUpload`): the
/// first try did complete it when the object now has the upload's size and part count.
pub async fn complete_upload(s3: &Inner, key: &str, upload: &str, mut parts: Vec<Part>) -> Result<()> {
    parts.sort_by_key(|p| p.number);
    let size: u64 = parts.iter().map(|p| p.size).sum();
    let count = parts.len();
    let completed = parts
        .into_iter()
        .map(|p| CompletedPart::builder().part_number(p.number).e_tag(p.etag).build())
        .collect::<Vec<_>>();
    let replays = s3.transport.replays();
    let what = format!("completing the upload of {key}");
    let sent = s3
        .client
        .complete_multipart_upload()
        .bucket(s3.bucket())
        .key(key)
        .upload_id(upload)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await;
    let Err(e) = sent else { return Ok(()) };
    match classify(e, &what, &s3.endpoint) {
        Failure::NotFound if s3.transport.replays() != replays => {
            let done = s3.client.head_object().bucket(s3.bucket()).key(key).send().await.is_ok_and(|o| {
                o.content_length == Some(size as i64)
                    && o.e_tag.as_deref().is_some_and(|t| t.trim_matches('"').ends_with(&format!("-{count}")))
            });
            if done {
                Ok(())
            } else {
                Err(Error::other(format!("{what}: the upload is gone, and the object is not what it would have made")))
            }
        }
        Failure::NotFound => Err(Error::other(format!("{what}: NoSuchUpload: the upload does not exist"))),
        Failure::Other(e) | Failure::Unreachable(e) => Err(e),
        Failure::InvalidRange | Failure::Changed => Err(Error::other(format!("{what}: unexpected answer"))),
    }
}

/// Best effort: an upload left behind costs storage, not correctness.
pub async fn abort_upload(s3: &Inner, key: &str, upload: &str) {
    let _ = s3.client.abort_multipart_upload().bucket(s3.bucket()).key(key).upload_id(upload).send().await;
}

/// The in-progress uploads of exactly `key`, with their initiation times.
async fn uploads_for(s3: &Inner, key: &str) -> Result<Vec<(String, i64)>> {
    let mut uploads = Vec::new();
    let (mut key_marker, mut id_marker) = (None, None);
    loop {
        let page = s3
            .client
            .list_multipart_uploads()
            .bucket(s3.bucket())
            .prefix(key)
            .max_uploads(LIST_MAX)
            .set_key_marker(key_marker)
            .set_upload_id_marker(id_marker)
            .send()
            .await
            .map_err(|e| other(e, &format!("listing the uploads of {key}"), &s3.endpoint))?;
        for u in page.uploads.unwrap_or_default() {
            if u.key.as_deref() == Some(key)
                && let Some(id) = u.upload_id
            {
                uploads.push((id, u.initiated.map(|t| t.as_nanos() as i64).unwrap_or(0)));
            }
        }
        if page.is_truncated != Some(true) {
            return Ok(uploads);
        }
        (key_marker, id_marker) = (page.next_key_marker, page.next_upload_id_marker);
        if key_marker.is_none() && id_marker.is_none() {
            return Ok(uploads);
        }
    }
}

/// Every part of an upload, paginated past 1000 parts (issue #2814), sorted by number.
async fn list_parts(s3: &Inner, key: &str, upload: &str) -> Result<Vec<Part>, Failure> {
    let mut parts = Vec::new();
    let mut marker = None;
    loop {
        let page = s3
            .client
            .list_parts()
            .bucket(s3.bucket())
            .key(key)
            .upload_id(upload)
            .set_part_number_marker(marker)
            .customize()
            .interceptor(crate::client::ListPartsRootCompat)
            .send()
            .await
            .map_err(|e| classify(e, &format!("listing the parts of {key}"), &s3.endpoint))?;
        for p in page.parts.unwrap_or_default() {
            parts.push(Part {
                number: p.part_number.unwrap_or(0),
                etag: p.e_tag.unwrap_or_default(),
                size: p.size.unwrap_or(0).max(0) as u64,
            });
        }
        marker = page.next_part_number_marker.filter(|_| page.is_truncated == Some(true));
        if marker.is_none() {
            break;
        }
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}
