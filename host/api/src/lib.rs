//! The Rust face of regstore's storage-driver contract.
//!
//! [`StorageDriver`] is distribution's `StorageDriver` as an async, object-safe trait. The wasm
//! drivers of the `regstore` host implement it, and so do the conformance suite's native
//! baselines; programs and the suite are written against this crate alone. [`Base`] wraps every
//! driver once with the checks they all share.

mod base;
mod capabilities;
mod chunks;
mod error;
mod io;
pub mod metrics;
pub mod path;
pub mod walk;

use std::time::SystemTime;

use async_trait::async_trait;

pub use base::Base;
pub use capabilities::Capabilities;
pub use chunks::{READ_CHUNK, WRITE_CHUNK, accepted_whole};
pub use error::{Error, ErrorKind, Result};
pub use io::{DEFAULT_CHUNK_SIZE, FileWriterIo, ReaderIo};
pub use walk::{WalkControl, Walker};

/// What `stat` and a walk report about a path (distribution's FileInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path as the caller gave it.
    pub path: String,
    /// Bytes of content; 0 for a directory.
    pub size: u64,
    pub modified: SystemTime,
    pub is_dir: bool,
}

/// A stream of content, read in chunks as they cross from the driver. [`ReaderIo`] adapts it
/// to tokio's `AsyncRead`.
#[async_trait]
pub trait FileReader: Send {
    /// The next chunk; `None` at the end of the content.
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>>;
}

/// distribution's FileWriter. [`FileWriterIo`] adapts it to tokio's `AsyncWrite`.
#[async_trait]
pub trait FileWriter: Send {
    /// Appends `data`; returns its length once the driver has accepted all of it.
    async fn write(&mut self, data: &[u8]) -> Result<usize>;
    /// Bytes at the path so far: those the writer resumed plus every byte accepted (D5).
    fn size(&self) -> u64;
    /// Persists every byte written, without publishing. Succeeds after `commit`.
    async fn close(&mut self) -> Result<()>;
    /// Publishes the content.
    async fn commit(&mut self) -> Result<()>;
    /// Discards the content; an error after `commit`, which it leaves in place.
    async fn cancel(&mut self) -> Result<()>;
}

/// A storage driver, as distribution's `StorageDriver`. Errors carry the driver's name and
/// print in distribution's formats.
#[async_trait]
pub trait StorageDriver: Send + Sync {
    /// The driver's name, as its `Name()`.
    fn name(&self) -> &str;
    /// What the driver declares it does where drivers differ; undeclared by default.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn get_content(&self, path: &str) -> Result<Vec<u8>>;
    /// Replaces whatever is stored at `path`.
    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()>;
    /// The content from `offset`: negative is invalid-offset, at or past the end is empty.
    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>>;
    /// A writer; with `append`, resumes content written and closed but not committed.
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>>;
    async fn stat(&self, path: &str) -> Result<FileInfo>;
    /// Absolute paths of the direct children of `path`, sorted.
    async fn list(&self, path: &str) -> Result<Vec<String>>;
    /// Moves a file over `destination`; moving a directory is an error.
    async fn move_file(&self, source: &str, destination: &str) -> Result<()>;
    /// Removes `path` and everything under it.
    async fn delete(&self, path: &str) -> Result<()>;
    /// A URL through which a client may `method` (GET or HEAD) the content, or `None`: serve it
    /// yourself.
    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>>;
    /// A pull-style walk of the tree under `path`, pre-order and component-wise, skipping what
    /// sorts at or before `start_after`. `path` itself is not reported.
    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>>;

    /// distribution's `Walk`: calls `f` for every entry under `path`. `f` answers continue,
    /// skip-dir or stop (which ends the whole walk with success), or an error, which ends the
    /// walk and is returned as it is.
    async fn walk(
        &self,
        path: &str,
        start_after: Option<&str>,
        f: &mut (dyn for<'i> FnMut(&'i FileInfo) -> Result<WalkControl> + Send),
    ) -> Result<()> {
        let mut walker = self.walker(path, start_after).await?;
        while let Some(info) = walker.next().await? {
            match f(&info)? {
                WalkControl::Continue => {}
                WalkControl::SkipDir => walker.skip_dir(),
                WalkControl::Stop => break,
            }
        }
        Ok(())
    }
}
