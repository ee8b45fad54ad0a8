//! The resumable writer: an append blob, written in blocks of up to 4 MiB, each appended at
//! the position the writer expects and only to the version it last saw.
//!
//! All of a writer's state is the blob itself, so `Writer(path, true)` in any process resumes
//! at the blob's length. When an append's answer is lost (a timeout, a cut connection, or the
//! service's `OperationTimedOut`), the writer reads back what the blob holds before it goes on:
//! an append that landed is never appended twice (distribution issue #4571), and bytes that
//! differ from the block are `corrupted data found in the uploaded data`.

use std::rc::Rc;

use http::{Method, StatusCode};
use regstore_objectstore::Response;
use regstore_objectstore::chunks::ChunkBuffer;
use regstore_objectstore::retry::sleep;
use regstore_sdk::{Error, FileWriter, Result, WriterState};

use crate::api::{Blobs, Props, content_md5, error_code};

/// The largest block an append sends, and the write buffer's size.
pub const BLOCK: usize = 4 << 20;
/// The most blocks an append blob holds.
pub const MAX_BLOCKS: u64 = 50_000;
/// distribution's ErrCorruptedData.
pub const CORRUPTED: &str = "corrupted data found in the uploaded data";

pub struct Writer {
    blobs: Rc<Blobs>,
    path: String,
    key: String,
    /// Bytes in the blob.
    size: u64,
    etag: String,
    blocks: u64,
    buffer: ChunkBuffer,
    state: WriterState,
}

impl Writer {
    pub fn open(blobs: Rc<Blobs>, path: &str, append: bool) -> Result<Self> {
        let key = blobs.keys.key(path);
        let existing = blobs.properties(&key)?;
        let (size, etag, blocks) = match (existing, append) {
            (None, true) => return Err(Error::not_found(path)),
            (None, false) => (0, blobs.create_append_blob(&key)?, 0),
            (Some(_), false) => {
                // A new write replaces what is there.
                blobs.delete_blob(&key, None)?;
                (0, blobs.create_append_blob(&key)?, 0)
            }
            (Some(props), true) => resume(&blobs, path, &key, props)?,
        };
        Ok(Writer {
            blobs,
            path: path.into(),
            key,
            size,
            etag,
            blocks,
            buffer: ChunkBuffer::new(BLOCK),
            state: WriterState::Open,
        })
    }

    /// Appends everything buffered, in blocks of at most [`BLOCK`] bytes.
    fn flush(&mut self) -> Result<()> {
        let data = self.buffer.take();
        for block in data.chunks(BLOCK) {
            self.append(block)?;
        }
        Ok(())
    }

    /// Appends one block at the current size, verifying by length and MD5 whenever its answer
    /// was lost, so that the block lands exactly once.
    fn append(&mut self, block: &[u8]) -> Result<()> {
        if self.blocks >= MAX_BLOCKS {
            return Err(Error::other(format!(
                "cannot write more to {}: its append blob holds {MAX_BLOCKS} blocks, the most Azure allows \
                 ({} bytes written)",
                self.path, self.size
            )));
        }
        let body = bytes::Bytes::copy_from_slice(block);
        let md5 = content_md5(block);
        let url = format!("{}?comp=appendblock", self.blobs.blob_url(&self.key));
        let max_tries = self.blobs.config.max_retries.max(1) as u32 + 1;
        // Whether an earlier try may have landed without us hearing of it.
        let mut uncertain = false;
        let mut last = String::new();
        for attempt in 1..=max_tries {
            if attempt > 1 {
                sleep(self.blobs.client.retry.delay(attempt, None));
            }
            let request = self
                .blobs
                .request(Method::PUT, &url)
                .header("x-ms-blob-condition-appendpos", self.size.to_string())
                .header("if-match", &self.etag)
                .header("content-md5", &md5)
                .body(body.clone());
            let request = self.blobs.auth.authorize(request)?;
            match self.blobs.client.send(&request) {
                Ok(r) if r.status.is_success() => {
                    self.etag = r.header("etag").unwrap_or_default().to_string();
                    self.size += block.len() as u64;
                    self.blocks = r
                        .header("x-ms-blob-committed-block-count")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(self.blocks + 1);
                    return Ok(());
                }
                Ok(r) if is_condition_failure(&r) && uncertain => {
                    if self.verify(block, &md5)? {
                        return Ok(());
                    }
                }
                Ok(r) if is_condition_failure(&r) => {
                    return Err(Error::other(format!(
                        "appending blob: {} changed under this writer (another writer?): {}",
                        self.path,
                        error_code(&r)
                    )));
                }
                Ok(r) if matches!(r.status.as_u16(), 429 | 503) => last = format!("{} {}", r.status, error_code(&r)),
                Ok(r) if matches!(r.status.as_u16(), 500 | 502 | 504) => {
                    // OperationTimedOut and gateway errors: the append may or may not have landed.
                    uncertain = true;
                    last = format!("{} {}", r.status, error_code(&r));
                    if self.verify(block, &md5)? {
                        return Ok(());
                    }
                }
                Ok(r) => return Err(self.blobs.unexpected(&format!("appending blob {}", self.path), &r)),
                Err(failure) if !failure.is_transient() => {
                    return Err(Error::other(format!("appending blob {}: {}", self.path, failure.cause())));
                }
                Err(failure) => {
                    last = failure.cause().to_string();
                    if failure.may_have_applied() {
                        uncertain = true;
                        if self.verify(block, &md5)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Err(Error::other(format!("appending blob {}: gave up after {max_tries} tries: {last}", self.path)))
    }

    /// After an append whose answer was lost: `Ok(true)` when the block landed (the writer
    /// moves on), `Ok(false)` when it did not (append it again), an error when the blob holds
    /// anything else.
    fn verify(&mut self, block: &[u8], md5: &str) -> Result<bool> {
        let Some(props) = self.blobs.properties(&self.key)? else {
            return Err(Error::other(format!("appending blob: {} was deleted while it was written", self.path)));
        };
        let end = self.size + block.len() as u64;
        if props.size == self.size {
            self.etag = props.etag;
            return Ok(false);
        }
        if props.size != end {
            return Err(Error::other(format!(
                "{CORRUPTED}: {} holds {} bytes where {} or {end} were expected",
                self.path, props.size, self.size
            )));
        }
        let url = self.blobs.blob_url(&self.key);
        let range = format!("bytes={}-{}", self.size, end - 1);
        let response = self.blobs.call("verifying an append", regstore_objectstore::Idempotence::Safe, |b| {
            b.request(Method::GET, &url)
                .header("x-ms-range", &range)
                .header("x-ms-range-get-content-md5", "true")
                .header("if-match", &props.etag)
        })?;
        if !response.status.is_success() {
            return Err(self.blobs.unexpected(&format!("verifying the end of {}", self.path), &response));
        }
        let landed = response.header("content-md5").map(str::to_string).unwrap_or_else(|| content_md5(&response.body));
        if landed != md5 {
            return Err(Error::other(format!(
                "{CORRUPTED}: the bytes {}..{end} of {} differ from what was appended",
                self.size, self.path
            )));
        }
        self.etag = props.etag;
        self.size = end;
        self.blocks = props.committed_blocks.unwrap_or(self.blocks + 1);
        Ok(true)
    }
}

fn is_condition_failure(response: &Response) -> bool {
    response.status == StatusCode::PRECONDITION_FAILED
        || matches!(error_code(response).as_str(), "AppendPositionConditionNotMet" | "ConditionNotMet")
}

/// Where `Writer(path, true)` starts on an existing blob: (size, etag, blocks).
fn resume(blobs: &Blobs, path: &str, key: &str, props: Props) -> Result<(u64, String, u64)> {
    match props.blob_type.as_str() {
        "AppendBlob" if props.committed && props.size > 0 => Err(committed(path)),
        "AppendBlob" => Ok((props.size, props.etag, props.committed_blocks.unwrap_or(0))),
        // An empty block blob (PutContent of nothing) becomes an append blob, as upstream.
        "BlockBlob" if props.size == 0 => {
            blobs.delete_blob(key, Some(&props.etag))?;
            Ok((0, blobs.create_append_blob(key)?, 0))
        }
        "BlockBlob" => Err(committed(path)),
        other => Err(Error::other(format!("cannot append to existing {other} blob: {path}"))),
    }
}

/// D4: appending to committed content.
fn committed(path: &str) -> Error {
    Error::other(format!(
        "cannot append to {path}: its content is committed, and committed content cannot be appended to; \
         write a new path instead"
    ))
}

impl FileWriter for Writer {
    fn write(&mut self, data: Vec<u8>) -> Result<u64> {
        self.state.check_write()?;
        let n = data.len() as u64;
        for block in self.buffer.push(data) {
            self.append(&block)?;
        }
        Ok(n)
    }

    /// The blob's bytes and the buffered ones (D5).
    fn size(&self) -> u64 {
        self.size + self.buffer.len() as u64
    }

    fn close(&mut self) -> Result<()> {
        if !self.state.check_close()? {
            return Ok(());
        }
        self.state = WriterState::Closed;
        self.flush()
    }

    fn commit(&mut self) -> Result<()> {
        self.state.check_commit()?;
        self.flush()?;
        self.blobs.mark_committed(&self.key)?;
        self.state = WriterState::Committed;
        Ok(())
    }

    fn cancel(&mut self) -> Result<()> {
        self.state.check_cancel()?;
        self.state = WriterState::Cancelled;
        self.buffer.take();
        self.blobs.delete_blob(&self.key, None)?;
        Ok(())
    }
}
