//! A reader that streams an object from an offset in one ranged GET, pinned to the version the
//! first response names, and picks up from the last byte received when a response is cut or
//! stalls, so a long read survives a flaky network without ever mixing two versions.

use regstore_sdk::{Error, FileReader, Result};

use crate::http::BodyStream;

/// How a cloud driver fetches a range of one object.
pub trait RangeSource: 'static {
    /// The content from `offset` to the end, pinned to `version` (an ETag or a generation) when
    /// it is given. `Ok(None)`: the offset is at or past the end (D3). A version that no
    /// longer matches is an error saying that the object changed.
    fn open_range(&self, offset: u64, version: Option<&str>) -> Result<Option<Range>>;

    /// The path, for messages.
    fn path(&self) -> &str;
}

/// A response that delivers the object from the offset asked for.
pub struct Range {
    pub body: BodyStream,
    /// What later ranges must match.
    pub version: Option<String>,
    /// The object's whole size, when the response says it: a body that ends early is resumed.
    pub total: Option<u64>,
}

/// Consecutive cuts without a byte of progress before the read fails.
const MAX_RESUMES_WITHOUT_PROGRESS: u32 = 5;

pub struct ResumingReader<S: RangeSource> {
    source: S,
    offset: u64,
    version: Option<String>,
    total: Option<u64>,
    body: Option<BodyStream>,
    at_end: bool,
    stalled: u32,
}

impl<S: RangeSource> ResumingReader<S> {
    /// Opens the first range now, so that a missing object fails here.
    pub fn open(source: S, offset: u64) -> Result<Self> {
        let mut reader =
            ResumingReader { source, offset, version: None, total: None, body: None, at_end: false, stalled: 0 };
        reader.reopen()?;
        Ok(reader)
    }

    fn reopen(&mut self) -> Result<()> {
        match self.source.open_range(self.offset, self.version.as_deref())? {
            Some(range) => {
                self.version = self.version.take().or(range.version);
                self.total = self.total.or(range.total);
                self.body = Some(range.body);
            }
            None => self.at_end = true,
        }
        Ok(())
    }
}

impl<S: RangeSource> FileReader for ResumingReader<S> {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        while !self.at_end && len > 0 {
            let Some(body) = self.body.as_mut() else {
                self.reopen()?;
                continue;
            };
            match body.read(len) {
                Ok(chunk) if chunk.is_empty() => {
                    self.body = None;
                    // A body that ends before the size the server announced was cut short.
                    if self.total.is_none_or(|total| self.offset >= total) {
                        self.at_end = true;
                    } else {
                        self.note_stall(&format!("the response ended at byte {}", self.offset))?;
                    }
                }
                Ok(chunk) => {
                    self.offset += chunk.len() as u64;
                    self.stalled = 0;
                    return Ok(chunk);
                }
                Err(failure) => {
                    // What arrived before the cut was handed out already; go on from there.
                    self.body = None;
                    self.note_stall(failure.cause())?;
                }
            }
        }
        Ok(Vec::new())
    }
}

impl<S: RangeSource> ResumingReader<S> {
    fn note_stall(&mut self, cause: &str) -> Result<()> {
        self.stalled += 1;
        if self.stalled > MAX_RESUMES_WITHOUT_PROGRESS {
            return Err(Error::other(format!(
                "reading {} at byte {}: {cause} ({} times in a row)",
                self.source.path(),
                self.offset,
                self.stalled
            )));
        }
        Ok(())
    }
}
