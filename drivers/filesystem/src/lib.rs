//! regstore's `filesystem` driver: distribution's on-disk layout (the key `/a/b` is the file
//! `<root>/a/b`, directories are directories, nothing else is kept), reached only through the
//! WASI preopen of its root directory that the host grants.
//!
//! regstore's departures from upstream: `PutContent` writes a temporary sibling whose name no
//! valid key can have, so it never shows in `List`, `Stat` or `Walk`; emptied directories are
//! pruned (D12); moving a directory is an error (D7); `List` is sorted (D11).

mod config;
mod raw;
mod writer;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regstore_sdk::{
    Capabilities, Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Requirements, Result,
};

pub use config::Config;
use raw::Root;
use writer::Writer;

/// Marks temporary files: `~` cannot appear in a valid key, so no key collides with one.
const TMP_MARK: &str = "~tmp-";
/// A temporary file older than this was left by a writer that died; it may be removed.
const STALE_TMP: Duration = Duration::from_secs(600);
/// One instance may hold a whole `put_content` or `get_content` of a large blob.
const MEMORY: u64 = 4 << 30;

pub struct Filesystem {
    root: PathBuf,
    /// The granted directory, for content streams.
    files: Rc<Root>,
}

impl Filesystem {
    /// The file behind a key.
    fn full(&self, path: &str) -> PathBuf {
        full_path(&self.root, path)
    }

    /// The file behind a key, open for reading; a directory is an error of its own, and any
    /// other failure is `op`'s.
    fn open_for_read(&self, path: &str, op: &str) -> Result<raw::File> {
        self.files.open_for_read(path).map_err(|e| match e.kind() {
            io::ErrorKind::IsADirectory => Error::other(format!("{path}: is a directory")),
            _ => io_error(op, path, e),
        })
    }
}

/// A driver error for an I/O failure on `path`.
fn io_error(op: &str, path: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Error::not_found(path),
        _ => Error::other(format!("{op} {path}: {}", words(&e))),
    }
}

/// The error's words without the errno number std adds: inside the sandbox that number is
/// WASI's, which differs from the host's and would mislead.
fn words(e: &io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_string(),
        _ => text,
    }
}

fn modified_ns(meta: &fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
}

fn is_temporary(name: &str) -> bool {
    name.contains(TMP_MARK)
}

/// Creates the parents of `file`.
fn create_parents(file: &Path) -> io::Result<()> {
    match file.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// Runs `f` after creating `file`'s parents, again while a concurrent prune (another
/// instance deleting the last file of the same directory) removes them in between.
fn with_parents<T>(file: &Path, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempts = 0;
    loop {
        create_parents(file)?;
        match f() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 8 => attempts += 1,
            other => return other,
        }
    }
}

/// The key of a temporary sibling of the file behind the key `path`, unique to this call.
fn temporary_sibling(path: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let nonce = RandomState::new().hash_one(regstore_sdk::now_ns());
    format!("{dir}/.{name}{TMP_MARK}{nonce:016x}")
}

/// fsync of a directory, so a rename in it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The file behind a key under `root`.
fn full_path(root: &Path, path: &str) -> PathBuf {
    if path == "/" { root.to_path_buf() } else { root.join(&path[1..]) }
}

/// Removes the emptied directories above `path`, up to the root (D12). A directory that holds
/// only stale temporaries counts as empty. Only stale temporaries are ever removed here: a
/// concurrent writer may create a file between our check and the `remove_dir`, and that file
/// must survive (rmdir of a non-empty directory simply fails).
fn prune(root: &Path, files: &Root, path: &str) {
    let mut dir = parent_key(path);
    while dir != "/" {
        let full = full_path(root, dir);
        let removed = fs::remove_dir(&full).is_ok()
            || (remove_stale_temporaries_in(root, files, dir) && fs::remove_dir(&full).is_ok());
        if !removed {
            return;
        }
        dir = parent_key(dir);
    }
}

/// Removes the temporaries that writers which died left in the directory `dir` (a key); true
/// when nothing else was found there. Only names marked as temporaries are looked at closely.
fn remove_stale_temporaries_in(root: &Path, files: &Root, dir: &str) -> bool {
    let Ok(names) = files.list_dir(dir) else { return false };
    let full = full_path(root, dir);
    let mut only_stale = true;
    for name in names {
        let path = full.join(&name);
        let stale = is_temporary(&name) && fs::symlink_metadata(&path).and_then(|m| m.modified()).is_ok_and(is_stale);
        if stale {
            let _ = fs::remove_file(path);
        } else {
            only_stale = false;
        }
    }
    only_stale
}

fn is_stale(t: SystemTime) -> bool {
    t.elapsed().is_ok_and(|age| age > STALE_TMP)
}

/// The parent of a valid key; `/` for a top-level key.
fn parent_key(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Driver for Filesystem {
    fn describe(params: &Params) -> Result<Description> {
        let config = Config::from_params(params)?;
        // The root exactly as given: the host grants it at this very path, so a relative root
        // resolves against the host's working directory and is still found here as given.
        let requirements = Requirements::new()
            .read_write_dir(config.root)
            .max_concurrent_calls(u32::try_from(config.max_threads).unwrap_or(u32::MAX))
            .memory(MEMORY);
        Ok(Description::new(requirements, Capabilities::new()))
    }

    fn open(params: Params) -> Result<Self> {
        let config = Config::from_params(&params)?;
        // A relative root is granted relative to the host's working directory, at that path.
        let root = PathBuf::from(raw::guest_root(&config.root));
        fs::create_dir_all(&root).map_err(|e| {
            Error::other(format!(
                "cannot use rootdirectory {}: {} (is it granted to the driver?)",
                config.root,
                words(&e)
            ))
        })?;
        let files =
            Rc::new(Root::find(&root).map_err(|e| Error::other(format!("rootdirectory {}: {e}", config.root)))?);
        Ok(Filesystem { root, files })
    }

    fn name(&self) -> String {
        "filesystem".into()
    }

    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        // Through the descriptor API: one host call for content up to `IO_CHUNK`, where std's
        // `fs::read` would make one per 4 KiB.
        let file = self.open_for_read(path, "reading")?;
        raw::read_to_end(&file).map_err(|e| io_error("reading", path, e))
    }

    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()> {
        let file = self.full(path);
        if file.is_dir() {
            return Err(Error::other(format!("{path}: is a directory")));
        }
        let tmp_key = temporary_sibling(path);
        let tmp = self.full(&tmp_key);
        let written = with_parents(&tmp, || {
            // The descriptor API again: std's writes would cross in 4 KiB pieces.
            let f = self.files.open_for_write(&tmp_key, false)?;
            raw::write_all_at(&f, &content, 0)?;
            raw::sync(&f)
        })
        .and_then(|()| fs::rename(&tmp, &file));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("writing", path, e));
        }
        if let Some(dir) = file.parent() {
            sync_dir(dir).map_err(|e| io_error("syncing the directory of", path, e))?;
        }
        // What writers that died in this directory left behind goes with the next writer.
        remove_stale_temporaries_in(&self.root, &self.files, parent_key(path));
        Ok(())
    }

    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        let file = self.open_for_read(path, "opening")?;
        // Reading past the end gives end of stream (D3).
        Ok(Box::new(Reader { file, offset, path: path.to_string() }))
    }

    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        Ok(Box::new(Writer::open(&self.root, &self.files, path, append)?))
    }

    fn stat(&self, path: &str) -> Result<FileInfo> {
        let meta = fs::metadata(self.full(path)).map_err(|e| io_error("stat", path, e))?;
        Ok(if meta.is_dir() {
            FileInfo::dir(path, modified_ns(&meta))
        } else {
            FileInfo::file(path, meta.len(), modified_ns(&meta))
        })
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let names = self.files.list_dir(path).map_err(|e| io_error("listing", path, e))?;
        let prefix = if path == "/" { "" } else { path };
        // Temporaries are not content.
        let mut children: Vec<String> =
            names.iter().filter(|n| !is_temporary(n)).map(|name| format!("{prefix}/{name}")).collect();
        children.sort_unstable();
        Ok(children)
    }

    fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let (from, to) = (self.full(source), self.full(destination));
        let meta = fs::metadata(&from).map_err(|e| io_error("moving", source, e))?;
        if meta.is_dir() {
            return Err(Error::other(format!("cannot move directory {source}: only files can be moved")));
        }
        with_parents(&to, || fs::rename(&from, &to)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(source),
            _ => Error::other(format!("moving {source} to {destination}: {e}")),
        })?;
        prune(&self.root, &self.files, source);
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.files.remove_tree(path).map_err(|e| io_error("deleting", path, e))?;
        prune(&self.root, &self.files, path);
        Ok(())
    }
}

struct Reader {
    file: raw::File,
    offset: u64,
    path: String,
}

impl FileReader for Reader {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        // WASI refuses a read that would end past i64::MAX; no file reaches there, so such a read
        // is past the end (D3) and stops there.
        let len = (len as u64).min((i64::MAX as u64).saturating_sub(self.offset));
        if len == 0 {
            return Ok(Vec::new());
        }
        let chunk = raw::read_at(&self.file, len, self.offset).map_err(|e| io_error("reading", &self.path, e))?;
        self.offset += chunk.len() as u64;
        Ok(chunk)
    }
}

regstore_sdk::export_driver!(Filesystem);

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(json: &str) -> Result<Description> {
        Filesystem::describe(&Params::parse(json).unwrap())
    }

    #[test]
    fn declares_its_root_as_given() {
        let d = describe("{}").unwrap();
        let r = &d.requirements;
        assert_eq!(r.read_write_dirs, [config::DEFAULT_ROOT]);
        assert!(r.read_only_dirs.is_empty() && r.http_authorities.is_empty() && r.env.is_empty());
        assert!(!r.keeps_state);
        assert_eq!((r.memory_bytes, r.max_concurrent_calls), (4 << 30, Some(100)));
        assert_eq!(d.capabilities, Capabilities::new());
        // Relative roots stay relative: the host grants them at that very path.
        let d = describe(r#"{"rootdirectory":"./data/registry","maxthreads":"5"}"#).unwrap();
        assert_eq!(d.requirements.read_write_dirs, ["./data/registry"]);
        assert_eq!(d.requirements.max_concurrent_calls, Some(25));
    }

    #[test]
    fn a_put_removes_what_dead_writers_left_in_its_directory() {
        let root = std::env::temp_dir().join(format!("regstore-fs-stale-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("dir")).unwrap();
        let params = Params::parse(&format!(r#"{{"rootdirectory":{:?}}}"#, root.display().to_string())).unwrap();
        let driver = Filesystem::open(params).unwrap();
        let temporary = |name: &str, age: Duration| {
            let path = root.join("dir").join(format!(".{name}{TMP_MARK}0123456789abcdef"));
            let file = File::create(&path).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
            path
        };
        let dead = temporary("other", STALE_TMP * 2);
        let live = temporary("busy", Duration::ZERO);
        assert_eq!(driver.list("/dir").unwrap(), Vec::<String>::new(), "temporaries are not content");
        driver.put_content("/dir/new", b"x".to_vec()).unwrap();
        assert!(!dead.exists(), "a temporary of another key, left by a dead writer, is removed");
        assert!(live.exists(), "a temporary a writer may still be using is kept");
        assert_eq!(driver.list("/dir").unwrap(), ["/dir/new"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn parameter_errors_are_opens() {
        let json = r#"{"maxthreads":"fail"}"#;
        let expected = Config::from_params(&Params::parse(json).unwrap()).unwrap_err();
        assert_eq!(describe(json).unwrap_err(), expected);
    }
}
