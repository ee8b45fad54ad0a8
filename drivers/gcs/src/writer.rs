//! The resumable writer, in distribution's format (docs/drivers/gcs.md, Writers): chunks of
//! `chunksize` go to a GCS resumable upload session; `Close` stores the unsent tail (less than
//! 256 KiB) as the object at the key itself, with the upload-in-progress content type and the
//! metadata `Session-URI` and `Offset`, so that a writer closed by distribution resumes here and
//! the other way round, in any process. `Commit` finishes the session (or, if none was needed,
//! uploads the content in one request).

use std::rc::Rc;

use bytes::Bytes;
use regstore_objectstore::chunks::ChunkBuffer;
use regstore_sdk::{Error, FileWriter, Result, WriterState};

use crate::Inner;
use crate::api::{OCTET_STREAM, UPLOAD_SESSION};
use crate::config::MIN_CHUNK_SIZE;
use crate::session::{self, Progress, Session};

/// The state object's metadata, as distribution names it.
const SESSION_URI: &str = "Session-URI";
const OFFSET: &str = "Offset";
/// GCS takes every chunk but the last in multiples of this.
const ALIGN: usize = MIN_CHUNK_SIZE as usize;

pub struct Writer {
    gcs: Rc<Inner>,
    path: String,
    key: String,
    /// The upload session's URI, once one was started (here or by the writer resumed).
    session: Option<String>,
    /// Bytes the session holds.
    offset: u64,
    /// Accepted bytes not sent yet.
    buffer: ChunkBuffer,
    state: WriterState,
    /// Why a chunk could not be sent: the bytes it held are gone, so the writer may only be
    /// cancelled (a new writer resumes from the last Close).
    broken: Option<String>,
}

impl Writer {
    /// A new writer, or (`append`) the one a `Close` left at `path`. A new writer makes no
    /// request: the object stays as it is until `Close` or `Commit`.
    pub fn open(gcs: Rc<Inner>, path: &str, append: bool) -> Result<Self> {
        let key = gcs.keys.key(path);
        let mut writer = Writer {
            buffer: ChunkBuffer::new(gcs.chunk_size),
            gcs,
            path: path.to_string(),
            key,
            session: None,
            offset: 0,
            state: WriterState::Open,
            broken: None,
        };
        if append {
            writer.resume()?;
        }
        Ok(writer)
    }

    fn resume(&mut self) -> Result<()> {
        let what = format!("resuming the upload of {}", self.path);
        let api = &self.gcs.api;
        let object = api.get(&self.key, &what)?.ok_or_else(|| Error::not_found(&self.path))?;
        if !object.in_progress() {
            if object.size == 0 {
                // Committed empty content: a new upload replaces it.
                return Ok(());
            }
            return Err(Error::other(format!(
                "cannot append to {}: its content is committed, and committed content cannot be appended to; \
                 write a new path instead",
                self.path
            )));
        }
        let offset = match object.meta(OFFSET).map(str::trim).filter(|o| !o.is_empty()) {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                Error::other(format!("{what}: the upload state names the offset {text:?}, which is no number"))
            })?,
        };
        let session = object.meta(SESSION_URI).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        if session.is_none() && offset > 0 {
            return Err(Error::other(format!(
                "{what}: the upload state says {offset} bytes were sent, but names no upload session"
            )));
        }
        let tail = api.read_object(&self.key, object.generation.as_deref(), &what)?.ok_or_else(|| {
            Error::other(format!("{what}: the upload state changed while it was being read; try again"))
        })?;
        self.offset = offset;
        self.session = session;
        self.buffer.unshift(tail);
        Ok(())
    }

    /// Sends `data` (a multiple of 256 KiB) as the next chunk of the session; a failure
    /// breaks the writer.
    fn send(&mut self, data: Vec<u8>) -> Result<()> {
        let sent = self.try_send(data);
        if let Err(e) = &sent {
            self.broken = Some(crate::detail(e));
        }
        sent
    }

    fn try_send(&mut self, data: Vec<u8>) -> Result<()> {
        let api = &self.gcs.api;
        let uri = match &self.session {
            Some(uri) => uri.clone(),
            None => {
                let uri = session::start(api, &self.key, &self.path)?;
                self.session = Some(uri.clone());
                uri
            }
        };
        // Without its total a chunk never finishes the upload: `upload` reports that as an error.
        if let Progress::Stored(n) = Session::new(api, &uri, &self.path).upload(self.offset, Bytes::from(data), None)? {
            self.offset = n;
        }
        Ok(())
    }

    fn store_state(&mut self) -> Result<()> {
        self.send_aligned()?;
        let offset = self.offset.to_string();
        let session = self.session.clone().unwrap_or_default();
        let metadata = [(SESSION_URI, session.as_str()), (OFFSET, offset.as_str())];
        let what = format!("storing the upload state of {}", self.path);
        let tail = Bytes::from(self.buffer.take());
        self.gcs.api.upload(&self.key, UPLOAD_SESSION, &metadata, tail, &what)?;
        Ok(())
    }

    /// Publishes: the rest as the session's final chunk, or one upload if none was needed.
    fn finish(&mut self) -> Result<()> {
        let data = Bytes::from(self.buffer.take());
        let Some(uri) = &self.session else {
            return self
                .gcs
                .api
                .upload(&self.key, OCTET_STREAM, &[], data, &format!("writing {}", self.path))
                .map(drop);
        };
        let total = self.offset + data.len() as u64;
        match Session::new(&self.gcs.api, uri, &self.path).upload(self.offset, data, Some(total))? {
            Progress::Finished => {
                self.offset = total;
                Ok(())
            }
            Progress::Stored(n) => Err(Error::other(format!(
                "committing {}: the upload holds {n} of {total} bytes and did not finish",
                self.path
            ))),
        }
    }

    /// A failed Close or Commit took the buffer with it: the writer is broken.
    fn note(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            self.broken.get_or_insert_with(|| crate::detail(e));
        }
        result
    }

    /// Refuses to go on after a chunk was lost.
    fn check_broken(&self) -> Result<()> {
        match &self.broken {
            Some(cause) => Err(Error::other(format!(
                "an earlier write to {} failed ({cause}); cancel this writer, and resume from the last Close \
                 with a new one",
                self.path
            ))),
            None => Ok(()),
        }
    }

    /// Sends the buffered bytes that fill whole 256 KiB blocks; the rest stays buffered.
    fn send_aligned(&mut self) -> Result<()> {
        let whole = self.buffer.len() / ALIGN * ALIGN;
        if whole == 0 {
            return Ok(());
        }
        let mut data = self.buffer.take();
        let tail = data.split_off(whole);
        self.buffer.unshift(tail);
        self.send(data)
    }
}

impl FileWriter for Writer {
    fn write(&mut self, data: Vec<u8>) -> Result<u64> {
        self.state.check_write()?;
        self.check_broken()?;
        let n = data.len() as u64;
        for chunk in self.buffer.push(data) {
            self.send(chunk)?;
        }
        Ok(n)
    }

    /// Sent and buffered bytes (D5).
    fn size(&self) -> u64 {
        self.offset + self.buffer.len() as u64
    }

    /// Persists every byte without publishing: whole blocks to the session, the tail in the
    /// state object.
    fn close(&mut self) -> Result<()> {
        if !self.state.check_close()? {
            return Ok(());
        }
        self.check_broken()?;
        let closed = self.store_state();
        self.note(closed)?;
        self.state = WriterState::Closed;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.state.check_commit()?;
        self.check_broken()?;
        let finished = self.finish();
        self.note(finished)?;
        self.state = WriterState::Committed;
        Ok(())
    }

    /// Ends the session and removes the state a `Close` left; committed content is never touched.
    fn cancel(&mut self) -> Result<()> {
        self.state.check_cancel()?;
        self.state = WriterState::Cancelled;
        self.buffer.take();
        let api = &self.gcs.api;
        let what = format!("cancelling the upload of {}", self.path);
        let state = api.get(&self.key, &what)?.filter(|o| o.in_progress());
        let stored = state.as_ref().and_then(|o| o.meta(SESSION_URI)).filter(|s| !s.is_empty());
        let mut sessions: Vec<&str> = self.session.iter().map(String::as_str).chain(stored).collect();
        sessions.dedup();
        for uri in sessions {
            Session::new(api, uri, &self.path).cancel();
        }
        if let Some(object) = state {
            api.delete(&self.key, object.generation.as_deref(), &what)?;
        }
        Ok(())
    }
}
