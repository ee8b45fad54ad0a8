//! [`Driver`]: a wasm driver instance behind distribution's `StorageDriver` API, with the base
//! layer's checks in front of every call.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use regstore_api::walk::FallbackWalker;
use regstore_api::{Error, FileInfo, FileReader, FileWriter, Result, StorageDriver, Walker};

use crate::base::{check_offset, check_path, check_path_or_root, from_wit};
use crate::bindings::StorageDriver as Exports;
use crate::bindings::exports::registry::storage::driver::{GuestDriver, GuestFileReader, GuestFileWriter, GuestWalker};
use crate::bindings::{WitError, WitFileInfo};
use crate::instance::{Handle, Instance};

/// How much a reader asks the driver for per call. Large chunks keep the boundary cheap.
pub const READ_CHUNK: u64 = 1 << 20;
/// The most a writer hands the driver per call; larger writes are split.
pub const WRITE_CHUNK: usize = 4 << 20;

/// A storage driver running in its own sandboxed wasm instance. Cheap to clone; clones share
/// the instance, whose calls run one at a time.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// The instances serving this driver; one unless its sandbox allows a pool.
    pool: std::sync::Mutex<Vec<Arc<Instance>>>,
    /// Set once the driver answered `unsupported` to a native walk.
    walks_by_fallback: OnceLock<()>,
}

fn drv(e: &Exports) -> GuestDriver<'_> {
    e.registry_storage_driver().driver()
}

fn reader_api(e: &Exports) -> GuestFileReader<'_> {
    e.registry_storage_driver().file_reader()
}

fn writer_api(e: &Exports) -> GuestFileWriter<'_> {
    e.registry_storage_driver().file_writer()
}

fn walker_api(e: &Exports) -> GuestWalker<'_> {
    e.registry_storage_driver().walker()
}

/// Runs one guest call in a session (from `Instance::enter`): `$live` is the live instance
/// inside `$call`. A trap or timeout becomes a `Crashed` error; the driver's own error is left
/// for [`Driver::wit`].
macro_rules! guest_call {
    ($session:expr, |$live:ident| $call:expr) => {{
        let mut session = $session;
        let timeout = session.timeout();
        let outcome = {
            let $live = session.live();
            tokio::time::timeout(timeout, async {
                let answer = $call.await;
                answer
            })
            .await
        };
        session.finish(outcome)
    }};
}

impl Driver {
    pub(crate) fn new(name: String, instance: Arc<Instance>) -> Self {
        let pool = std::sync::Mutex::new(vec![instance]);
        Driver { inner: Arc::new(Inner { name, pool, walks_by_fallback: OnceLock::new() }) }
    }

    /// How many instances serve this driver now (a pool grows under concurrent calls up to the
    /// sandbox's `instances`).
    pub fn instance_count(&self) -> usize {
        self.inner.pool.lock().unwrap().len()
    }

    /// The instance for the next call: an idle one, or a new one while the pool may grow, or
    /// the least busy.
    async fn instance(&self) -> Result<Arc<Instance>> {
        let (least_busy, size) = {
            let pool = self.inner.pool.lock().unwrap();
            (pool.iter().min_by_key(|i| i.busy()).expect("a pool is never empty").clone(), pool.len())
        };
        if least_busy.busy() == 0 || size >= least_busy.max_instances() {
            return Ok(least_busy);
        }
        let fresh = least_busy.sibling().await?;
        let mut pool = self.inner.pool.lock().unwrap();
        if pool.len() < fresh.max_instances() {
            pool.push(fresh.clone());
        }
        Ok(fresh)
    }

    /// A driver's answer, its error normalised with the driver's name.
    fn wit<T>(&self, answer: Result<Result<T, WitError>>) -> Result<T> {
        answer?.map_err(|e| from_wit(&self.inner.name, e))
    }
}

fn file_info(info: WitFileInfo) -> FileInfo {
    FileInfo {
        path: info.path,
        size: if info.is_dir { 0 } else { info.size },
        modified: SystemTime::UNIX_EPOCH + Duration::from_nanos(info.modified_ns),
        is_dir: info.is_dir,
    }
}

#[async_trait]
impl StorageDriver for Driver {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        check_path(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_get_content(
            &mut live.store,
            live.driver,
            path
        ));
        self.wit(answer)
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        check_path(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_put_content(
            &mut live.store,
            live.driver,
            path,
            content
        ));
        self.wit(answer)
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        check_offset(self.name(), path, offset)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_reader(
            &mut live.store,
            live.driver,
            path,
            offset
        ));
        let handle = instance.handle(self.wit(answer)?);
        Ok(Box::new(WasmReader { driver: self.clone(), handle, done: false }))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        check_path(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_writer(
            &mut live.store,
            live.driver,
            path,
            append
        ));
        let resource = self.wit(answer)?;
        let handle = instance.handle(resource);
        let mut writer = WasmWriter { driver: self.clone(), handle, size: 0 };
        // The host counts accepted bytes on top of what the driver resumed (D5).
        writer.size = guest_call!(instance.enter_with(&writer.handle).await?, |live| writer_api(&live.exports)
            .call_size(&mut live.store, resource))?;
        Ok(Box::new(writer))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        check_path_or_root(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_stat(
            &mut live.store,
            live.driver,
            path
        ));
        self.wit(answer).map(file_info)
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_path_or_root(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_list(
            &mut live.store,
            live.driver,
            path
        ));
        let mut children = self.wit(answer)?;
        // D11 for every driver, whatever order a third-party component answers in.
        children.sort_unstable();
        Ok(children)
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        check_path(self.name(), source)?;
        check_path(self.name(), destination)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_move(
            &mut live.store,
            live.driver,
            source,
            destination
        ));
        self.wit(answer)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_path(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_delete(
            &mut live.store,
            live.driver,
            path
        ));
        self.wit(answer)
    }

    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        check_path(self.name(), path)?;
        let instance = self.instance().await?;
        let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_redirect_url(
            &mut live.store,
            live.driver,
            method,
            path
        ));
        self.wit(answer)
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        check_path_or_root(self.name(), path)?;
        if self.inner.walks_by_fallback.get().is_none() {
            let instance = self.instance().await?;
            let answer = guest_call!(instance.enter().await?, |live| drv(&live.exports).call_walk(
                &mut live.store,
                live.driver,
                path,
                start_after
            ));
            match self.wit(answer) {
                Ok(resource) => {
                    let handle = instance.handle(resource);
                    return Ok(Box::new(WasmWalker { driver: self.clone(), handle, skip: false }));
                }
                Err(Error::Unsupported { .. }) => {
                    let _ = self.inner.walks_by_fallback.set(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Box::new(FallbackWalker::new(Arc::new(self.clone()), path, start_after)))
    }
}

struct WasmReader {
    driver: Driver,
    handle: Handle,
    done: bool,
}

#[async_trait]
impl FileReader for WasmReader {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let r = self.handle.resource;
        let answer =
            guest_call!(self.handle.instance.enter_with(&self.handle).await?, |live| reader_api(&live.exports)
                .call_read(&mut live.store, r, READ_CHUNK));
        let chunk = self.driver.wit(answer)?;
        if chunk.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(chunk))
    }
}

impl Drop for WasmReader {
    fn drop(&mut self) {
        self.handle.instance.orphan(&self.handle);
    }
}

struct WasmWriter {
    driver: Driver,
    handle: Handle,
    size: u64,
}

/// One call of a writer method that takes no argument.
macro_rules! writer_call {
    ($writer:ident, $method:ident) => {{
        let w = $writer.handle.resource;
        let answer =
            guest_call!($writer.handle.instance.enter_with(&$writer.handle).await?, |live| writer_api(&live.exports)
                .$method(&mut live.store, w));
        $writer.driver.wit(answer)
    }};
}

#[async_trait]
impl FileWriter for WasmWriter {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        let w = self.handle.resource;
        for chunk in data.chunks(WRITE_CHUNK) {
            let answer =
                guest_call!(self.handle.instance.enter_with(&self.handle).await?, |live| writer_api(&live.exports)
                    .call_write(&mut live.store, w, chunk));
            let accepted = self.driver.wit(answer)?;
            if accepted != chunk.len() as u64 {
                return Err(Error::other(
                    self.driver.name(),
                    format!("the driver accepted {accepted} of {} bytes", chunk.len()),
                ));
            }
            self.size += accepted;
        }
        Ok(data.len())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(&mut self) -> Result<()> {
        writer_call!(self, call_close)
    }

    async fn commit(&mut self) -> Result<()> {
        writer_call!(self, call_commit)
    }

    async fn cancel(&mut self) -> Result<()> {
        writer_call!(self, call_cancel)
    }
}

impl Drop for WasmWriter {
    fn drop(&mut self) {
        self.handle.instance.orphan(&self.handle);
    }
}

struct WasmWalker {
    driver: Driver,
    handle: Handle,
    /// A skip-dir to send with the next call.
    skip: bool,
}

#[async_trait]
impl Walker for WasmWalker {
    async fn next(&mut self) -> Result<Option<FileInfo>> {
        let skip = std::mem::take(&mut self.skip);
        let w = self.handle.resource;
        let answer = guest_call!(self.handle.instance.enter_with(&self.handle).await?, |live| async {
            if skip {
                walker_api(&live.exports).call_skip_dir(&mut live.store, w).await?;
            }
            walker_api(&live.exports).call_next(&mut live.store, w).await
        });
        Ok(self.driver.wit(answer)?.map(file_info))
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
