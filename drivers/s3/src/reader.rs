//! A reader at an offset: ranged GETs of at least [`WINDOW`] bytes, each pinned to the ETag of
//! the first, so a reader never mixes two versions of an object.

use std::rc::Rc;

use regstore_sdk::{Error, FileReader, Result};

use crate::Inner;
use crate::client::{Failure, classify, run};

/// Bytes fetched per request at least: few round trips, bounded memory per reader.
const WINDOW: u64 = 8 << 20;

pub struct Reader {
    s3: Rc<Inner>,
    path: String,
    key: String,
    /// The offset of the first byte not fetched yet.
    offset: u64,
    etag: Option<String>,
    window: Vec<u8>,
    consumed: usize,
    at_end: bool,
}

impl Reader {
    /// Fetches the first window now, so a missing path fails here, as distribution's does.
    pub fn open(s3: Rc<Inner>, path: &str, offset: u64) -> Result<Self> {
        let key = s3.key(path);
        let mut reader =
            Reader { s3, path: path.into(), key, offset, etag: None, window: Vec::new(), consumed: 0, at_end: false };
        reader.fetch(WINDOW)?;
        Ok(reader)
    }

    fn fetch(&mut self, len: u64) -> Result<()> {
        let s3 = self.s3.clone();
        let range = format!("bytes={}-{}", self.offset, self.offset + len - 1);
        let request =
            s3.client.get_object().bucket(s3.bucket()).key(&self.key).range(range).set_if_match(self.etag.clone());
        let fetched = run(async {
            match request.send().await {
                Ok(out) => {
                    let etag = out.e_tag.clone();
                    let body =
                        out.body.collect().await.map_err(|e| Error::other(format!("reading {}: {e}", self.path)))?;
                    Ok(Some((etag, Vec::from(body.into_bytes()))))
                }
                Err(e) => match classify(e, &format!("reading {}", self.path), &s3.endpoint) {
                    Failure::NotFound => Err(Error::not_found(&self.path)),
                    // At or past the end: an empty stream (D3).
                    Failure::InvalidRange => Ok(None),
                    Failure::Changed => {
                        Err(Error::other(format!("{} changed while it was being read; read it again", self.path)))
                    }
                    Failure::Other(e) | Failure::Unreachable(e) => Err(e),
                },
            }
        })?;
        match fetched {
            Some((etag, bytes)) => {
                self.at_end = (bytes.len() as u64) < len;
                self.offset += bytes.len() as u64;
                self.etag = self.etag.take().or(etag);
                self.window = bytes;
            }
            None => {
                self.at_end = true;
                self.window = Vec::new();
            }
        }
        self.consumed = 0;
        Ok(())
    }
}

impl FileReader for Reader {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        if self.consumed == self.window.len() {
            if self.at_end || len == 0 {
                return Ok(Vec::new());
            }
            self.fetch(WINDOW.max(len as u64))?;
        }
        let n = len.min(self.window.len() - self.consumed);
        if self.consumed == 0 && n == self.window.len() {
            // The whole window: hand it over without a copy.
            return Ok(std::mem::take(&mut self.window));
        }
        let chunk = self.window[self.consumed..self.consumed + n].to_vec();
        self.consumed += n;
        Ok(chunk)
    }
}
