//! [`Driver`]: a wasm driver behind distribution's `StorageDriver` API. [`WasmDriver`] is only
//! the wasm plumbing (a pool of instances, guest calls, resources); every check that all
//! drivers share is in [`Base`], which wraps it.

use std::sync::Arc;

use async_trait::async_trait;
use regstore_api::{
    Base, Capabilities, FileInfo, FileReader, FileWriter, READ_CHUNK, Result, StorageDriver, WRITE_CHUNK, Walker,
    accepted_whole,
};

use crate::guest::Answer;
use crate::instance::{Handle, Instance, Live};

/// A storage driver running in its own sandboxed wasm instance (or a pool of them, for a driver
/// that keeps no state in memory), behind the base layer's checks. Cheap to clone; clones
/// share the instances.
#[derive(Clone)]
pub struct Driver {
    base: Arc<Base<WasmDriver>>,
}

impl Driver {
    pub(crate) fn new(name: String, instance: Arc<Instance>, capabilities: Capabilities, limit: Option<usize>) -> Self {
        let pool = Arc::new(Pool(std::sync::Mutex::new(vec![instance])));
        let base = Base::new(WasmDriver { name, pool, capabilities });
        let base = match limit {
            Some(calls) => base.with_max_concurrent_calls(calls),
            None => base,
        };
        Driver { base: Arc::new(base) }
    }

    /// How many instances serve this driver now (a pool grows under concurrent calls up to
    /// what its grants allow).
    pub fn instance_count(&self) -> usize {
        self.base.inner().pool.0.lock().unwrap().len()
    }
}

/// The wasm side of a driver: which instance serves a call, and the calls themselves.
pub struct WasmDriver {
    name: String,
    pool: Arc<Pool>,
    capabilities: Capabilities,
}

/// The instances serving one driver; one unless its grants allow a pool.
struct Pool(std::sync::Mutex<Vec<Arc<Instance>>>);

/// Runs one guest call on `$instance` (entered with `$enter`): `$live` is the live instance
/// inside `$call`. A trap or timeout becomes a `Crashed` error, the driver's own error the
/// typed error under the driver's name.
macro_rules! guest_call {
    ($name:expr, $session:expr, |$live:ident| $call:expr) => {{
        let mut session = $session;
        let timeout = session.timeout();
        let outcome = {
            let $live: &mut Live = session.live();
            crate::instance::bounded(timeout, async { $call.await }).await
        };
        answer(&$name, session.finish(outcome))
    }};
}

fn answer<T>(driver: &str, outcome: Result<Result<T, crate::guest::GuestError>>) -> Result<T> {
    outcome?.map_err(|e| e.into_error(driver))
}

/// A call that traps or times out, or succeeds with a plain value.
fn plain<T>(outcome: wasmtime::Result<T>) -> Answer<T> {
    outcome.map(Ok)
}

impl WasmDriver {
    async fn instance(&self) -> Result<Arc<Instance>> {
        self.pool.instance().await
    }
}

impl Pool {
    /// The instance for the next call: an idle one, or a new one while the pool may grow, or
    /// the least busy.
    async fn instance(&self) -> Result<Arc<Instance>> {
        let (least_busy, size) = {
            let pool = self.0.lock().unwrap();
            (pool.iter().min_by_key(|i| i.busy()).expect("a pool is never empty").clone(), pool.len())
        };
        if least_busy.busy() == 0 || size >= least_busy.max_instances() {
            return Ok(least_busy);
        }
        let fresh = least_busy.sibling().await?;
        let mut pool = self.0.lock().unwrap();
        if pool.len() < fresh.max_instances() {
            pool.push(fresh.clone());
        }
        Ok(fresh)
    }
}

#[async_trait]
impl StorageDriver for WasmDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.get_content(
            &mut live.store,
            live.driver,
            path
        ))
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.put_content(
            &mut live.store,
            live.driver,
            path,
            content
        ))
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        let (name, pool, path) = (self.name.clone(), self.pool.clone(), path.to_string());
        // The base layer has refused a negative offset.
        let mut reader = WasmReader { name, handle: None, pool, path, offset: offset.max(0) as u64, done: false };
        reader.handle = Some(reader.open().await?);
        Ok(Box::new(reader))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let instance = self.instance().await?;
        let session = instance.enter().await?;
        let reservation = instance.reserve();
        let resource =
            guest_call!(self.name, session, |live| live.exports.writer(&mut live.store, live.driver, path, append))?;
        let mut writer = WasmWriter { name: self.name.clone(), handle: reservation.handle(resource), size: 0 };
        // The host counts accepted bytes on top of what the driver resumed (D5).
        writer.size = guest_call!(writer.name, instance.enter_with(&writer.handle).await?, |live| async {
            plain(live.exports.size(&mut live.store, resource).await)
        })?;
        Ok(Box::new(writer))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.stat(&mut live.store, live.driver, path))
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.list(&mut live.store, live.driver, path))
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.move_file(
            &mut live.store,
            live.driver,
            source,
            destination
        ))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.delete(&mut live.store, live.driver, path))
    }

    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        let instance = self.instance().await?;
        guest_call!(self.name, instance.enter().await?, |live| live.exports.redirect_url(
            &mut live.store,
            live.driver,
            method,
            path
        ))
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        let instance = self.instance().await?;
        let session = instance.enter().await?;
        let reservation = instance.reserve();
        let resource =
            guest_call!(self.name, session, |live| live.exports.walk(&mut live.store, live.driver, path, start_after))?;
        Ok(Box::new(WasmWalker { name: self.name.clone(), handle: reservation.handle(resource), skip: false }))
    }
}

/// A reader of a driver that keeps no state in memory moves to another instance, reopened at
/// the offset it reached, when its own has outgrown its memory (see
/// `Instance::should_recycle`): the instance can then be replaced, so a long stream from a
/// runtime whose heap only grows as it returns data (componentize-py keeps every returned
/// list) never meets the limit. Reopening at an offset is what distribution's own file reader
/// does on every seek.
struct WasmReader {
    name: String,
    /// None once a move to another instance failed: the stream cannot go on.
    handle: Option<Handle>,
    pool: Arc<Pool>,
    path: String,
    /// Where the next byte comes from.
    offset: u64,
    done: bool,
}

impl WasmReader {
    /// Opens the guest's reader at the offset reached, on the instance the pool picks, and
    /// releases the one it had.
    async fn open(&mut self) -> Result<Handle> {
        let instance = self.pool.instance().await?;
        // Released first, so that an outgrown instance, if it is picked again, has no handle
        // left and is replaced before the reader opens there.
        if let Some(old) = self.handle.take() {
            old.instance.orphan(&old);
        }
        let (path, offset) = (self.path.as_str(), self.offset as i64);
        let session = instance.enter().await?;
        let reservation = instance.reserve();
        let resource =
            guest_call!(self.name, session, |live| live.exports.reader(&mut live.store, live.driver, path, offset))?;
        Ok(reservation.handle(resource))
    }
}

#[async_trait]
impl FileReader for WasmReader {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let handle = match self.handle.take() {
            Some(handle) if handle.instance.outgrown() => {
                self.handle = Some(handle);
                self.open().await?
            }
            Some(handle) => handle,
            None => {
                let detail = format!("reading {} failed to resume on a fresh instance; open it again", self.path);
                return Err(regstore_api::Error::other(&self.name, detail));
            }
        };
        let handle = self.handle.insert(handle);
        let r = handle.resource;
        let chunk = guest_call!(self.name, handle.instance.enter_with(handle).await?, |live| live.exports.read(
            &mut live.store,
            r,
            READ_CHUNK as u64
        ))?;
        if chunk.is_empty() {
            self.done = true;
            return Ok(None);
        }
        self.offset += chunk.len() as u64;
        Ok(Some(chunk))
    }
}

impl Drop for WasmReader {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.instance.orphan(handle);
        }
    }
}

struct WasmWriter {
    name: String,
    handle: Handle,
    size: u64,
}

#[async_trait]
impl FileWriter for WasmWriter {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        let w = self.handle.resource;
        for chunk in data.chunks(WRITE_CHUNK) {
            let accepted = guest_call!(self.name, self.handle.instance.enter_with(&self.handle).await?, |live| live
                .exports
                .write(&mut live.store, w, chunk))?;
            self.size += accepted_whole(&self.name, accepted, chunk)?;
        }
        Ok(data.len())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(&mut self) -> Result<()> {
        let w = self.handle.resource;
        guest_call!(self.name, self.handle.instance.enter_with(&self.handle).await?, |live| live
            .exports
            .close(&mut live.store, w))
    }

    async fn commit(&mut self) -> Result<()> {
        let w = self.handle.resource;
        guest_call!(self.name, self.handle.instance.enter_with(&self.handle).await?, |live| live
            .exports
            .commit(&mut live.store, w))
    }

    async fn cancel(&mut self) -> Result<()> {
        let w = self.handle.resource;
        guest_call!(self.name, self.handle.instance.enter_with(&self.handle).await?, |live| live
            .exports
            .cancel(&mut live.store, w))
    }
}

impl Drop for WasmWriter {
    fn drop(&mut self) {
        self.handle.instance.orphan(&self.handle);
    }
}

struct WasmWalker {
    name: String,
    handle: Handle,
    /// A skip-dir to send with the next call.
    skip: bool,
}

#[async_trait]
impl Walker for WasmWalker {
    async fn next(&mut self) -> Result<Option<FileInfo>> {
        let skip = std::mem::take(&mut self.skip);
        let w = self.handle.resource;
        guest_call!(self.name, self.handle.instance.enter_with(&self.handle).await?, |live| async {
            if skip {
                live.exports.skip_dir(&mut live.store, w).await?;
            }
            live.exports.next(&mut live.store, w).await
        })
    }

    fn skip_dir(&mut self) {
        self.skip = true;
    }
}

impl Drop for WasmWalker {
    fn drop(&mut self) {
        self.handle.instance.orphan(&self.handle);
    }
}

/// Every call goes through the base layer.
#[async_trait]
impl StorageDriver for Driver {
    fn name(&self) -> &str {
        self.base.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.base.capabilities()
    }
    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.base.get_content(path).await
    }
    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        self.base.put_content(path, content).await
    }
    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        self.base.reader(path, offset).await
    }
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        self.base.writer(path, append).await
    }
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        self.base.stat(path).await
    }
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        self.base.list(path).await
    }
    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        self.base.move_file(source, destination).await
    }
    async fn delete(&self, path: &str) -> Result<()> {
        self.base.delete(path).await
    }
    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        self.base.redirect_url(method, path).await
    }
    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        self.base.walker(path, start_after).await
    }
}
