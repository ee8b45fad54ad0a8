//! [`NativeDriver`]: an SDK [`AnyDriver`] behind regstore-api's [`StorageDriver`], with the
//! same chunk sizes as the wasm host, so both sides make the same calls.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use regstore_api::{
    Capabilities, Error, FileInfo, FileReader, FileWriter, READ_CHUNK, Result, StorageDriver, WRITE_CHUNK, Walker,
    accepted_whole,
};
use regstore_sdk::Driver;
use regstore_sdk::native::Entry;

use crate::confined::{Confined, DriverLock};

/// A bundled driver's code, compiled for the host.
pub struct NativeDriver {
    name: String,
    driver: Confined<Box<dyn Driver>>,
    capabilities: Capabilities,
    max_concurrent_calls: Option<usize>,
    /// Whether calls may block on files or the network, so they leave tokio's worker thread.
    blocks: bool,
}

impl NativeDriver {
    pub(crate) fn open(name: &str, entry: Entry, parameters: &str) -> Result<Self> {
        let description = (entry.describe)(parameters).map_err(|e| to_error(name, e))?;
        let needs = &description.requirements;
        let blocks =
            !(needs.read_write_dirs.is_empty() && needs.read_only_dirs.is_empty() && needs.http_authorities.is_empty());
        let driver = run(blocks, || Confined::build(DriverLock::default(), || (entry.open)(parameters)))
            .map_err(|detail| Error::Crashed { driver: name.into(), detail })?;
        let driver = driver.map_err(|e| to_error(name, e))?;
        let caps = description.capabilities;
        Ok(NativeDriver {
            name: name.into(),
            driver,
            capabilities: Capabilities {
                native_walk: Some(caps.native_walk),
                redirect_methods: Some(caps.redirect_methods),
                appends_to_committed: Some(caps.appends_to_committed),
                max_object_size: caps.max_object_size,
            },
            max_concurrent_calls: needs.max_concurrent_calls.map(|n| n as usize),
            blocks,
        })
    }

    pub(crate) fn max_concurrent_calls(&self) -> Option<usize> {
        self.max_concurrent_calls
    }

    /// Runs `f` on the driver, off the async worker where it may block.
    fn call<R>(&self, f: impl FnOnce(&dyn Driver) -> regstore_sdk::Result<R>) -> Result<R> {
        let outcome = run(self.blocks, || self.driver.with(|d| f(&**d)));
        flatten(&self.name, outcome)
    }

    fn confine<T>(&self, value: T) -> Confined<T> {
        Confined::new(self.driver.lock().clone(), value)
    }
}

/// Runs a call that may block inline, or, on a multi-threaded runtime, where tokio lets the
/// worker's other tasks move on.
fn run<R>(blocks: bool, f: impl FnOnce() -> R) -> R {
    // The runtime is only looked up for calls that block: the others are the hot path.
    let multi_thread = || {
        tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    };
    if blocks && multi_thread() { tokio::task::block_in_place(f) } else { f() }
}

fn flatten<R>(driver: &str, outcome: std::result::Result<regstore_sdk::Result<R>, String>) -> Result<R> {
    match outcome {
        Ok(answer) => answer.map_err(|e| to_error(driver, e)),
        Err(detail) => Err(Error::Crashed { driver: driver.into(), detail }),
    }
}

fn to_error(driver: &str, e: regstore_sdk::Error) -> Error {
    use regstore_sdk::Error as E;
    let driver = driver.to_string();
    match e {
        E::PathNotFound(path) => Error::PathNotFound { driver, path },
        E::InvalidPath(path) => Error::InvalidPath { driver, path },
        E::InvalidOffset(o) => Error::InvalidOffset { driver, path: o.path, offset: o.offset },
        E::Unsupported(_) => Error::Unsupported { driver },
        E::InvalidParameter(detail) => Error::InvalidParameter { driver, detail },
        E::Other(detail) => Error::Other { driver, detail },
    }
}

fn to_info(info: regstore_sdk::FileInfo) -> FileInfo {
    FileInfo {
        path: info.path,
        size: if info.is_dir { 0 } else { info.size },
        modified: SystemTime::UNIX_EPOCH + Duration::from_nanos(info.modified_ns),
        is_dir: info.is_dir,
    }
}

#[async_trait]
impl StorageDriver for NativeDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.call(|d| d.get_content(path))
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        self.call(|d| d.put_content(path, content.to_vec()))
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        let Ok(from) = u64::try_from(offset) else {
            return Err(Error::InvalidOffset { driver: self.name.clone(), path: path.into(), offset });
        };
        let reader = self.call(|d| d.reader(path, from))?;
        Ok(Box::new(NativeReader { name: self.name.clone(), blocks: self.blocks, reader: self.confine(reader) }))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let writer = self.call(|d| d.writer(path, append))?;
        let writer = self.confine(writer);
        let size = flatten(&self.name, writer.with(|w| Ok(w.size())))?;
        Ok(Box::new(NativeWriter { name: self.name.clone(), blocks: self.blocks, writer, size }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        self.call(|d| d.stat(path)).map(to_info)
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        self.call(|d| d.list(path))
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        self.call(|d| d.move_file(source, destination))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.call(|d| d.delete(path))
    }

    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        self.call(|d| d.redirect_url(method, path))
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        let walker = self.call(|d| d.walk(path, start_after))?;
        Ok(Box::new(NativeWalker { name: self.name.clone(), blocks: self.blocks, walker: self.confine(walker) }))
    }
}

struct NativeReader {
    name: String,
    blocks: bool,
    reader: Confined<Box<dyn regstore_sdk::FileReader>>,
}

#[async_trait]
impl FileReader for NativeReader {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let reader = &mut self.reader;
        let chunk = flatten(&self.name, run(self.blocks, || reader.with_mut(|r| r.read(READ_CHUNK))))?;
        Ok(if chunk.is_empty() { None } else { Some(chunk) })
    }
}

struct NativeWriter {
    name: String,
    blocks: bool,
    writer: Confined<Box<dyn regstore_sdk::FileWriter>>,
    /// Resumed bytes plus every byte accepted (D5), counted here as the wasm host does.
    size: u64,
}

impl NativeWriter {
    fn call<R>(&mut self, f: impl FnOnce(&mut dyn regstore_sdk::FileWriter) -> regstore_sdk::Result<R>) -> Result<R> {
        let writer = &mut self.writer;
        flatten(&self.name, run(self.blocks, || writer.with_mut(|w| f(&mut **w))))
    }
}

#[async_trait]
impl FileWriter for NativeWriter {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        for chunk in data.chunks(WRITE_CHUNK) {
            let accepted = self.call(|w| w.write(chunk.to_vec()))?;
            self.size += accepted_whole(&self.name, accepted, chunk)?;
        }
        Ok(data.len())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(&mut self) -> Result<()> {
        self.call(|w| w.close())
    }

    async fn commit(&mut self) -> Result<()> {
        self.call(|w| w.commit())
    }

    async fn cancel(&mut self) -> Result<()> {
        self.call(|w| w.cancel())
    }
}

struct NativeWalker {
    name: String,
    blocks: bool,
    walker: Confined<Box<dyn regstore_sdk::Walker>>,
}

#[async_trait]
impl Walker for NativeWalker {
    async fn next(&mut self) -> Result<Option<FileInfo>> {
        let walker = &mut self.walker;
        flatten(&self.name, run(self.blocks, || walker.with_mut(|w| w.next()))).map(|info| info.map(to_info))
    }

    fn skip_dir(&mut self) {
        // Only marks the walker; it cannot fail or block.
        let _ = self.walker.with_mut(|w| w.skip_dir());
    }
}
