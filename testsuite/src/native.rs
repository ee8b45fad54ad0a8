//! Native baselines for the benchmarks: the same semantics as the bundled wasm drivers, in plain
//! Rust in the host process, behind the same trait. A benchmark runs the same code against
//! both, so the ratio measures what running a driver as a sandboxed component costs.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use regstore_api::walk::FallbackWalker;
use regstore_api::{Error, FileInfo, FileReader, FileWriter, Result, StorageDriver, Walker};

/// Content and modification time by path.
type Files = BTreeMap<String, (Arc<Vec<u8>>, SystemTime)>;

/// The inmemory driver's semantics in an in-process map.
#[derive(Clone, Default)]
pub struct NativeMemory {
    files: Arc<Mutex<Files>>,
}

const MEM: &str = "native-inmemory";

fn under(dir: &str) -> String {
    if dir == "/" { "/".into() } else { format!("{dir}/") }
}

#[async_trait]
impl StorageDriver for NativeMemory {
    fn name(&self) -> &str {
        MEM
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let files = self.files.lock().unwrap();
        files.get(path).map(|(d, _)| d.to_vec()).ok_or_else(|| Error::not_found(MEM, path))
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        self.files.lock().unwrap().insert(path.into(), (Arc::new(content.to_vec()), SystemTime::now()));
        Ok(())
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        let data =
            self.files.lock().unwrap().get(path).map(|(d, _)| d.clone()).ok_or_else(|| Error::not_found(MEM, path))?;
        let offset = (offset.max(0) as usize).min(data.len());
        Ok(Box::new(MemReader { data, offset }))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let mut files = self.files.lock().unwrap();
        let resumed = if append {
            files.get(path).map(|(d, _)| d.len() as u64).ok_or_else(|| Error::not_found(MEM, path))?
        } else {
            files.insert(path.into(), (Arc::default(), SystemTime::now()));
            0
        };
        Ok(Box::new(MemWriter { driver: self.clone(), path: path.into(), buffer: Vec::new(), size: resumed }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let files = self.files.lock().unwrap();
        if let Some((d, t)) = files.get(path) {
            return Ok(FileInfo { path: path.into(), size: d.len() as u64, modified: *t, is_dir: false });
        }
        let prefix = under(path);
        let newest =
            files.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(_, (_, t))| *t).max();
        match newest {
            Some(t) => Ok(FileInfo { path: path.into(), size: 0, modified: t, is_dir: true }),
            None => Err(Error::not_found(MEM, path)),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let files = self.files.lock().unwrap();
        let prefix = under(path);
        let mut out: Vec<String> = files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| format!("{prefix}{}", k[prefix.len()..].split('/').next().unwrap_or_default()))
            .collect();
        out.dedup();
        if out.is_empty() && path != "/" {
            return Err(Error::not_found(MEM, path));
        }
        Ok(out)
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        let file = files.remove(source).ok_or_else(|| Error::not_found(MEM, source))?;
        files.insert(destination.into(), file);
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        let prefix = under(path);
        let doomed: Vec<String> =
            files.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()).collect();
        let found = files.remove(path).is_some() || !doomed.is_empty();
        for k in doomed {
            files.remove(&k);
        }
        if found { Ok(()) } else { Err(Error::not_found(MEM, path)) }
    }

    async fn redirect_url(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Ok(Box::new(FallbackWalker::new(Arc::new(self.clone()), path, start_after)))
    }
}

struct MemReader {
    data: Arc<Vec<u8>>,
    offset: usize,
}

#[async_trait]
impl FileReader for MemReader {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let end = (self.offset + (1 << 20)).min(self.data.len());
        if end == self.offset {
            return Ok(None);
        }
        let chunk = self.data[self.offset..end].to_vec();
        self.offset = end;
        Ok(Some(chunk))
    }
}

/// Buffers until close or commit, as the wasm inmemory writer does.
struct MemWriter {
    driver: NativeMemory,
    path: String,
    buffer: Vec<u8>,
    size: u64,
}

impl MemWriter {
    fn flush(&mut self) {
        let mut files = self.driver.files.lock().unwrap();
        let entry = files.entry(self.path.clone()).or_insert_with(|| (Arc::default(), SystemTime::now()));
        let data = Arc::make_mut(&mut entry.0);
        if data.is_empty() {
            *data = std::mem::take(&mut self.buffer);
        } else {
            data.append(&mut self.buffer);
        }
        entry.1 = SystemTime::now();
    }
}

#[async_trait]
impl FileWriter for MemWriter {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        if self.buffer.is_empty() {
            self.buffer = data.to_vec();
        } else {
            self.buffer.extend_from_slice(data);
        }
        self.size += data.len() as u64;
        Ok(data.len())
    }
    fn size(&self) -> u64 {
        self.size
    }
    async fn close(&mut self) -> Result<()> {
        self.flush();
        Ok(())
    }
    async fn commit(&mut self) -> Result<()> {
        self.flush();
        Ok(())
    }
    async fn cancel(&mut self) -> Result<()> {
        self.driver.files.lock().unwrap().remove(&self.path);
        Ok(())
    }
}

/// The filesystem driver's semantics with std::fs and the same fsync discipline: PutContent
/// writes a temporary sibling, fsyncs, renames and fsyncs the directory; writers fsync on close
/// and commit. Blocking calls run on tokio's blocking pool, as wasmtime-wasi runs the guest's.
#[derive(Clone)]
pub struct NativeFs {
    root: Arc<PathBuf>,
}

const FS: &str = "native-filesystem";

impl NativeFs {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(NativeFs { root: Arc::new(root) })
    }

    fn full(&self, path: &str) -> PathBuf {
        if path == "/" { self.root.to_path_buf() } else { self.root.join(&path[1..]) }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        path: &str,
        f: impl FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (full, p) = (self.full(path), path.to_string());
        tokio::task::spawn_blocking(move || f(&full)).await.map_err(|e| Error::other(FS, e))?.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound { Error::not_found(FS, p) } else { Error::other(FS, e) }
        })
    }
}

#[async_trait]
impl StorageDriver for NativeFs {
    fn name(&self) -> &str {
        FS
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.blocking(path, |f| std::fs::read(f)).await
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        let content = content.to_vec();
        self.blocking(path, move |f| {
            std::fs::create_dir_all(f.parent().unwrap())?;
            let tmp = f.with_file_name(format!(".{}~tmp-native", f.file_name().unwrap().to_string_lossy()));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&content)?;
            file.sync_all()?;
            std::fs::rename(&tmp, f)?;
            std::fs::File::open(f.parent().unwrap())?.sync_all()
        })
        .await
    }

    async fn reader(&self, path: &str, offset: i64) -> Result<Box<dyn FileReader>> {
        let file = self
            .blocking(path, move |f| {
                let mut file = std::fs::File::open(f)?;
                file.seek(SeekFrom::Start(offset.max(0) as u64))?;
                Ok(file)
            })
            .await?;
        Ok(Box::new(FsReader { file: Some(file) }))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let (file, size) = self
            .blocking(path, move |f| {
                let file = if append {
                    std::fs::OpenOptions::new().append(true).open(f)?
                } else {
                    std::fs::create_dir_all(f.parent().unwrap())?;
                    std::fs::File::create(f)?
                };
                let size = file.metadata()?.len();
                Ok((file, size))
            })
            .await?;
        Ok(Box::new(FsWriter { file: Some(file), size, full: self.full(path) }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let p = path.to_string();
        self.blocking(path, move |f| {
            let m = std::fs::metadata(f)?;
            Ok(FileInfo {
                path: p,
                size: if m.is_dir() { 0 } else { m.len() },
                modified: m.modified()?,
                is_dir: m.is_dir(),
            })
        })
        .await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let prefix = if path == "/" { String::new() } else { path.to_string() };
        self.blocking(path, move |f| {
            let mut out = Vec::new();
            for e in std::fs::read_dir(f)? {
                out.push(format!("{prefix}/{}", e?.file_name().to_string_lossy()));
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let to = self.full(destination);
        self.blocking(source, move |f| {
            std::fs::create_dir_all(to.parent().unwrap())?;
            std::fs::rename(f, &to)
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.blocking(path, |f| if f.is_dir() { std::fs::remove_dir_all(f) } else { std::fs::remove_file(f) }).await
    }

    async fn redirect_url(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }

    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Ok(Box::new(FallbackWalker::new(Arc::new(self.clone()), path, start_after)))
    }
}

struct FsReader {
    file: Option<std::fs::File>,
}

#[async_trait]
impl FileReader for FsReader {
    async fn read_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(mut file) = self.file.take() else { return Ok(None) };
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(1 << 20);
            let r = (&mut file).take(1 << 20).read_to_end(&mut chunk).map(|_| chunk);
            (file, r)
        })
        .await
        .map_err(|e| Error::other(FS, e))?;
        let chunk = chunk.map_err(|e| Error::other(FS, e))?;
        if chunk.is_empty() {
            return Ok(None);
        }
        self.file = Some(file);
        Ok(Some(chunk))
    }
}

struct FsWriter {
    file: Option<std::fs::File>,
    size: u64,
    full: PathBuf,
}

impl FsWriter {
    async fn with_file(
        &mut self,
        f: impl FnOnce(&mut std::fs::File) -> std::io::Result<()> + Send + 'static,
    ) -> Result<()> {
        let Some(mut file) = self.file.take() else { return Ok(()) };
        let (file, r) = tokio::task::spawn_blocking(move || {
            let r = f(&mut file);
            (file, r)
        })
        .await
        .map_err(|e| Error::other(FS, e))?;
        self.file = Some(file);
        r.map_err(|e| Error::other(FS, e))
    }
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, data: &[u8]) -> Result<usize> {
        let data = data.to_vec();
        let n = data.len();
        self.with_file(move |f| f.write_all(&data)).await?;
        self.size += n as u64;
        Ok(n)
    }
    fn size(&self) -> u64 {
        self.size
    }
    async fn close(&mut self) -> Result<()> {
        self.with_file(|f| f.sync_all()).await?;
        self.file = None;
        Ok(())
    }
    async fn commit(&mut self) -> Result<()> {
        self.with_file(|f| f.sync_all()).await
    }
    async fn cancel(&mut self) -> Result<()> {
        self.file = None;
        std::fs::remove_file(&self.full).map_err(|e| Error::other(FS, e))
    }
}

#[cfg(test)]
mod tests {
    //! The baselines pass the conformance tests that matter to the benchmarks, so the figures
    //! compare like with like.
    use super::*;
    use crate::{Config, DriverFactory, Outcome, run_test};

    async fn run(factory: DriverFactory, names: &[&str]) {
        for test in crate::all().into_iter().filter(|t| names.contains(&t.name.as_str())) {
            let outcome = run_test(&test, &factory, Arc::new(Config { short: true, ..Config::default() })).await;
            assert!(matches!(outcome, Ok(Outcome::Passed(_))), "{}: {outcome:?}", test.name);
        }
    }

    const BENCHED: &[&str] =
        &["TestWriteRead4", "TestWriteReadStreams4", "TestList", "TestDeleteFolder", "TestTruncate"];

    #[tokio::test(flavor = "multi_thread")]
    async fn native_memory_keeps_the_semantics() {
        run(Arc::new(|| Box::pin(async { Ok(Arc::new(NativeMemory::default()) as Arc<dyn StorageDriver>) })), BENCHED)
            .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn native_fs_keeps_the_semantics() {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let factory: DriverFactory = Arc::new(move || {
            let root = dir.path().join(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_string());
            Box::pin(async move { Ok(Arc::new(NativeFs::new(root).unwrap()) as Arc<dyn StorageDriver>) })
        });
        // Deletes do not prune here, so only tests that delete a whole top-level tree apply.
        run(factory, &["TestWriteRead4", "TestWriteReadStreams4", "TestList", "TestTruncate"]).await;
    }
}
