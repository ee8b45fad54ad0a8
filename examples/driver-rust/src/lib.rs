//! A complete regstore storage driver: the object at `/a/b` is the file `<rootdirectory>/a/b`,
//! directories are directories, and nothing else is kept. The host grants the driver its root
//! directory (a WASI preopen) and nothing more, so it reaches it with `std::fs` and nothing else.
//!
//! Each method says what the contract expects of it. The host has already checked every path
//! (`/` then components of `[A-Za-z0-9._-]`, no `.` or `..`), refused negative offsets, sorts
//! what `list` returns and prefixes every error with the driver's name, so none of that is here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use regstore_sdk::{
    Capabilities, Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Requirements, Result,
    WriterState,
};

pub struct MyDriver {
    root: PathBuf,
}

/// One parser for `describe` and `open`, so both refuse bad parameters with the same words.
fn root(params: &Params) -> Result<String> {
    params.string("rootdirectory")?.ok_or_else(|| Error::invalid_parameter("no rootdirectory parameter provided"))
}

/// `~` can never appear in a valid path, so a temporary file's name collides with no object
/// and is easy to leave out of listings.
const TEMPORARY: char = '~';

impl Driver for MyDriver {
    /// Runs before `open`, with nothing granted: read the parameters, touch nothing. The
    /// driver keeps no state in memory (every object is a file), so the host may run several
    /// instances and replace one between calls.
    fn describe(params: &Params) -> Result<Description> {
        let requirements = Requirements::new().read_write_dir(root(params)?);
        // Defaults: no native walk (the host walks with list and stat), no redirects, writers
        // may append to committed content, no size limit.
        Ok(Description::new(requirements, Capabilities::new()))
    }

    fn open(params: Params) -> Result<Self> {
        Ok(MyDriver { root: PathBuf::from(root(&params)?) })
    }

    fn name(&self) -> String {
        "mydriver".into()
    }

    /// The whole object. Missing: path-not-found. A directory is not content: other.
    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let file = self.file(path)?;
        fs::read(&file).map_err(|e| io_error(path, e))
    }

    /// Replaces the object atomically, creating its parents: the content goes to a temporary
    /// sibling, is synced, and is renamed over the path, so a reader or a crash sees the old
    /// content or the new, whole. A directory at the path, or a file where a parent should be,
    /// is other.
    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()> {
        let target = self.full(path);
        if target.is_dir() {
            return Err(Error::other(format!("{path} is a directory")));
        }
        create_parents(&target).map_err(|e| parents_error(path, e))?;
        let temporary = temporary_sibling(&target);
        let written = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(&content)?;
            file.sync_all()?;
            fs::rename(&temporary, &target)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temporary);
            return Err(io_error(path, e));
        }
        Ok(())
    }

    /// A stream from `offset` (never negative here). At or past the end: an empty stream.
    /// Missing: path-not-found, when the reader is opened. A directory: other.
    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        let mut file = File::open(self.file(path)?).map_err(|e| io_error(path, e))?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| io_error(path, e))?;
        Ok(Box::new(Reader { file }))
    }

    /// `append: false` starts new content at the path (created or truncated now, as
    /// distribution's filesystem driver does). `append: true` resumes what an earlier writer
    /// closed, in this instance or any other: its bytes are in the file, so `size` starts at
    /// the file's length; nothing there is path-not-found.
    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let target = self.full(path);
        if target.is_dir() {
            return Err(Error::other(format!("{path} is a directory")));
        }
        let file = if append {
            OpenOptions::new().append(true).open(&target).map_err(|e| io_error(path, e))?
        } else {
            create_parents(&target).map_err(|e| parents_error(path, e))?;
            File::create(&target).map_err(|e| io_error(path, e))?
        };
        let size = file.metadata().map_err(|e| io_error(path, e))?.len();
        Ok(Box::new(Writer {
            path: path.to_string(),
            target,
            root: self.root.clone(),
            file,
            size,
            state: WriterState::Open,
        }))
    }

    /// A file's size and modification time, or a directory (size 0). `/` is always a
    /// directory. Missing: path-not-found.
    fn stat(&self, path: &str) -> Result<FileInfo> {
        let meta = fs::metadata(self.full(path)).map_err(|e| io_error(path, e))?;
        let modified = modified_ns(&meta);
        Ok(if meta.is_dir() { FileInfo::dir(path, modified) } else { FileInfo::file(path, meta.len(), modified) })
    }

    /// Absolute paths of the direct children. `/` on empty storage is `[]`; any other missing
    /// path, or a file, is path-not-found. Temporaries are not objects.
    fn list(&self, path: &str) -> Result<Vec<String>> {
        let entries = match fs::read_dir(self.full(path)) {
            Ok(entries) => entries,
            Err(e) if path == "/" && e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(path, e)),
        };
        let prefix = if path == "/" { "" } else { path };
        let mut children = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| io_error(path, e))?.file_name().to_string_lossy().into_owned();
            if !name.contains(TEMPORARY) {
                children.push(format!("{prefix}/{name}"));
            }
        }
        Ok(children)
    }

    /// Moves a file over the destination, creating its parents. Missing source: path-not-found
    /// naming the source, destination untouched. A directory source: other, nothing moved.
    fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let from = self.full(source);
        let meta = fs::metadata(&from).map_err(|e| io_error(source, e))?;
        if meta.is_dir() {
            return Err(Error::other(format!("{source} is a directory; only files can be moved")));
        }
        let to = self.full(destination);
        create_parents(&to).map_err(|e| parents_error(destination, e))?;
        fs::rename(&from, &to).map_err(|e| io_error(source, e))?;
        prune_empty_parents(&self.root, &from);
        Ok(())
    }

    /// Removes the path and everything under `path/` (never a sibling such as `pathsuffix`),
    /// then the directories that leaves empty: an empty directory must not linger. Nothing
    /// there: path-not-found.
    fn delete(&self, path: &str) -> Result<()> {
        let target = self.full(path);
        let meta = fs::symlink_metadata(&target).map_err(|e| io_error(path, e))?;
        let removed = if meta.is_dir() { fs::remove_dir_all(&target) } else { fs::remove_file(&target) };
        removed.map_err(|e| io_error(path, e))?;
        prune_empty_parents(&self.root, &target);
        Ok(())
    }

    // `redirect_url` (default: no URL, the registry serves the content itself) and `walk`
    // (default: unsupported, the host walks with `list` and `stat`) are optional.
}

impl MyDriver {
    /// The file behind a path (`/` is the root itself).
    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The file behind a path that must hold content: a directory there is an error of kind
    /// other, as distribution's filesystem driver answers.
    fn file(&self, path: &str) -> Result<PathBuf> {
        let file = self.full(path);
        if file.is_dir() {
            return Err(Error::other(format!("{path} is a directory, not content")));
        }
        Ok(file)
    }
}

struct Reader {
    file: File,
}

impl FileReader for Reader {
    /// Up to `len` bytes, as many as there are: the host asks for 1 MiB at a time, and a short
    /// answer before the end would only cost it another call. Empty means the end.
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity(len);
        (&mut self.file).take(len as u64).read_to_end(&mut data).map_err(|e| Error::other(format!("read: {e}")))?;
        Ok(data)
    }
}

struct Writer {
    path: String,
    target: PathBuf,
    root: PathBuf,
    file: File,
    size: u64,
    /// distribution's state machine; its checks give the exact error texts.
    state: WriterState,
}

impl FileWriter for Writer {
    /// Accepts all of `data` (the host sends at most 4 MiB per call) or fails.
    fn write(&mut self, data: Vec<u8>) -> Result<u64> {
        self.state.check_write()?;
        self.file.write_all(&data).map_err(|e| io_error(&self.path, e))?;
        self.size += data.len() as u64;
        Ok(data.len() as u64)
    }

    /// The resumed length plus every byte written.
    fn size(&self) -> u64 {
        self.size
    }

    /// Persists every byte without publishing; a later `writer(path, true)` resumes here.
    /// After a commit or a cancel there is nothing to do.
    fn close(&mut self) -> Result<()> {
        if self.state.check_close()? {
            self.file.sync_all().map_err(|e| io_error(&self.path, e))?;
            self.state = WriterState::Closed;
        }
        Ok(())
    }

    /// Publishes the content: here it is already at its path, so make it durable.
    fn commit(&mut self) -> Result<()> {
        self.state.check_commit()?;
        self.file.sync_all().map_err(|e| io_error(&self.path, e))?;
        self.state = WriterState::Committed;
        Ok(())
    }

    /// Discards what this writer and earlier ones of the upload wrote.
    fn cancel(&mut self) -> Result<()> {
        self.state.check_cancel()?;
        match fs::remove_file(&self.target) {
            Ok(()) => prune_empty_parents(&self.root, &self.target),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&self.path, e)),
        }
        self.state = WriterState::Cancelled;
        Ok(())
    }
}

/// A missing file (or a file where a directory should be) is path-not-found carrying the path
/// as the caller gave it; anything else is other, worded for the operator.
fn io_error(path: &str, e: io::Error) -> Error {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => Error::not_found(path),
        _ => Error::other(format!("{path}: {e}")),
    }
}

/// A parent that cannot be made (a file is in the way) is other, never path-not-found: the
/// path is not missing, it cannot exist.
fn parents_error(path: &str, e: io::Error) -> Error {
    Error::other(format!("{path}: cannot create its parent directories: {e}"))
}

fn modified_ns(meta: &fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
}

fn create_parents(file: &Path) -> io::Result<()> {
    file.parent().map_or(Ok(()), fs::create_dir_all)
}

/// A name beside `target` that no object can have, unique to this write.
fn temporary_sibling(target: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let nonce = regstore_sdk::now_ns() ^ NEXT.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!("{name}{TEMPORARY}{nonce:x}"))
}

/// Removes the directories above `removed` that are now empty, up to (not including) the
/// root. `remove_dir` only ever removes an empty directory, so a concurrent writer that just
/// put a file in one keeps it.
fn prune_empty_parents(root: &Path, removed: &Path) {
    let mut dir = removed.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

regstore_sdk::export_driver!(MyDriver);
