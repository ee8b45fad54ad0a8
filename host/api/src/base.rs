//! distribution's `base.Base`, once for every driver, wasm or native: path validation before
//! the driver is called, errors carrying the driver's name, `list` sorted (D11), the walk
//! fallback for drivers that do not walk natively, the `maxthreads`-style concurrency limit,
//! and a tracing span per call.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tracing::Instrument;
use tracing::field::Empty;

use crate::metrics::{Action, Metrics};
use crate::walk::FallbackWalker;
use crate::{Capabilities, Error, FileInfo, FileReader, FileWriter, Result, StorageDriver, Walker, path};

/// A driver behind the checks every driver shares. The inner driver sees only valid paths and
/// non-negative offsets, and need not sort, name its errors or walk.
pub struct Base<D> {
    inner: Arc<D>,
    metrics: Metrics,
    /// Admits at most this many calls at once (distribution's regulator); `None`: no limit.
    regulator: Option<Semaphore>,
}

impl<D: StorageDriver + 'static> Base<D> {
    pub fn new(inner: D) -> Self {
        let metrics = Metrics::new(inner.name());
        Base { inner: Arc::new(inner), metrics, regulator: None }
    }

    /// Lets at most `calls` driver calls run at once (the opening of readers and writers counts,
    /// their reads and writes do not, as upstream).
    pub fn with_max_concurrent_calls(mut self, calls: usize) -> Self {
        self.regulator = Some(Semaphore::new(calls.max(1)));
        self
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The span of one driver call; a subscriber sees its outcome (and, for whole-object
    /// calls, its bytes) recorded when it closes.
    fn span(&self, action: Action, path: &str) -> tracing::Span {
        let (driver, method) = (self.inner.name(), action.name());
        tracing::debug_span!("storage", driver, method, path, bytes = Empty, outcome = Empty)
    }

    /// Runs one driver call in a span of its own.
    async fn call<T>(&self, action: Action, path: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.call_in(action, &self.span(action, path), call).await
    }

    /// Runs one driver call: throttled, in `span`, timed, its error carrying the driver's name.
    async fn call_in<T>(
        &self,
        action: Action,
        span: &tracing::Span,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        async {
            let _permit = match &self.regulator {
                Some(regulator) => Some(regulator.acquire().await.expect("the regulator is never closed")),
                None => None,
            };
            let started = std::time::Instant::now();
            let outcome = call.await.map_err(|e| e.with_driver(self.inner.name()));
            self.metrics.record(action, started.elapsed(), outcome.is_err());
            match &outcome {
                Ok(_) => span.record("outcome", "ok"),
                Err(e) => span.record("outcome", tracing::field::display(e)),
            };
            outcome
        }
        .instrument(span.clone())
        .await
    }

    fn check(&self, p: &str) -> Result<()> {
        if path::is_valid(p) { Ok(()) } else { Err(Error::InvalidPath { driver: self.name().into(), path: p.into() }) }
    }

    /// `stat`, `list` and `walk` also accept the root.
    fn check_or_root(&self, p: &str) -> Result<()> {
        if p == "/" { Ok(()) } else { self.check(p) }
    }
}

#[async_trait]
impl<D: StorageDriver + 'static> StorageDriver for Base<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.check(path)?;
        let span = self.span(Action::GetContent, path);
        let content = self.call_in(Action::GetContent, &span, self.inner.get_content(path)).await?;
        span.record("bytes", content.len());
        self.metrics.read.increment(content.len() as u64);
        Ok(content)
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        self.check(path)?;
        let span = self.span(Action::PutContent, path);
        span.record("bytes", content.len());
        self.call_in(Action::PutContent, &span, self.inner.put_content(path, content)).await?;
        self.metrics.written.increment(content.len() as u64);
        Ok(())
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        // distribution checks the offset before the path.
        if offset < 0 {
            return Err(Error::InvalidOffset { driver: self.name().into(), path: path.into(), offset });
        }
        self.check(path)?;
        let reader = self.call(Action::Reader, path, self.inner.reader(path, offset)).await?;
        Ok(Box::new(Counted { inner: reader, bytes: self.metrics.read.clone() }))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        self.check(path)?;
        let writer = self.call(Action::Writer, path, self.inner.writer(path, append)).await?;
        Ok(Box::new(Counted { inner: writer, bytes: self.metrics.written.clone() }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        self.check_or_root(path)?;
        self.call(Action::Stat, path, self.inner.stat(path)).await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        self.check_or_root(path)?;
        let mut children = self.call(Action::List, path, self.inner.list(path)).await?;
        // D11 for every driver, whatever order it answers in.
        children.sort_unstable();
        Ok(children)
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        self.check(source)?;
        self.check(destination)?;
        self.call(Action::Move, source, self.inner.move_file(source, destination)).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.check(path)?;
        self.call(Action::Delete, path, self.inner.delete(path)).await
    }

    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        self.check(path)?;
        self.call(Action::RedirectUrl, path, self.inner.redirect_url(method, path)).await
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        self.check_or_root(path)?;
        let fallback = || -> Box<dyn Walker> {
            let inner: Arc<dyn StorageDriver> = self.inner.clone();
            Box::new(NamedWalker { walker: FallbackWalker::new(inner, path, start_after), driver: self.name().into() })
        };
        if self.capabilities().native_walk == Some(false) {
            return Ok(fallback());
        }
        match self.call(Action::Walk, path, self.inner.walker(path, start_after)).await {
            Ok(walker) => Ok(walker),
            Err(Error::Unsupported { .. }) => Ok(fallback()),
            Err(e) => Err(e),
        }
    }
}

/// A reader or writer whose content bytes are counted.
struct Counted<T> {
    inner: T,
    bytes: metrics::Counter,
}

#[async_trait]
impl FileReader for Counted<Box<dyn FileReader>> {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let chunk = self.inner.read_chunk().await?;
        if let Some(chunk) = &chunk {
            self.bytes.increment(chunk.len() as u64);
        }
        Ok(chunk)
    }
}

#[async_trait]
impl FileWriter for Counted<Box<dyn FileWriter>> {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        let written = self.inner.write(data).await?;
        self.bytes.increment(written as u64);
        Ok(written)
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }

    async fn commit(&mut self) -> Result<()> {
        self.inner.commit().await
    }

    async fn cancel(&mut self) -> Result<()> {
        self.inner.cancel().await
    }
}

/// The fallback walk's errors carry the driver's name, as every other call's.
struct NamedWalker<W> {
    walker: W,
    driver: String,
}

#[async_trait]
impl<W: Walker> Walker for NamedWalker<W> {
    async fn next(&mut self) -> Result<Option<FileInfo>> {
        self.walker.next().await.map_err(|e| e.with_driver(&self.driver))
    }

    fn skip_dir(&mut self) {
        self.walker.skip_dir()
    }
}

#[cfg(test)]
mod tests;
