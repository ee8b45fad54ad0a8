//! regstore's `inmemory` driver: content lives in the instance's memory and is gone when the
//! instance is. For tests and trials, as distribution's.
//!
//! Files are kept in one ordered map from path to content; directories are implied by the keys
//! under them, like an object store's prefixes. An emptied directory therefore disappears with
//! its last file (D12), and a directory's modification time is that of its newest descendant.
//!
//! This module holds the whole driver without its export, so that the legacy test component
//! exports the same code against the previous contract.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;

use regstore_sdk::{
    Capabilities, Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Requirements, Result,
    WriterState, now_ns,
};

/// Content lives in a 32-bit guest's memory: let it use all it can address.
const MEMORY: u64 = 4 << 30;
/// The largest object that still leaves room to copy it in that memory (`get_content`).
const MAX_OBJECT_SIZE: u64 = 1 << 30;

struct File {
    /// Shared with open readers; a write to a file being read copies it (`Rc::make_mut`),
    /// so every reader sees the content as it was when it opened.
    data: Rc<Vec<u8>>,
    modified_ns: u64,
}

#[derive(Default)]
struct Tree {
    files: BTreeMap<String, File>,
}

/// The children of `dir` start with this prefix.
fn child_prefix(dir: &str) -> String {
    if dir == "/" { "/".to_string() } else { format!("{dir}/") }
}

/// The keys under `dir/`: from `dir/` up to `dir0`, the first name after them that valid names
/// can hold ('0' follows '/'); under the root, every key.
fn subtree(dir: &str) -> Range<String> {
    let prefix = child_prefix(dir);
    let end = format!("{}0", &prefix[..prefix.len() - 1]);
    prefix..end
}

impl Tree {
    /// The keys under `dir/`, in order.
    fn descendants<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a File)> + 'a {
        self.files.range(subtree(dir))
    }

    fn is_dir(&self, path: &str) -> bool {
        path == "/" || self.descendants(path).next().is_some()
    }

    /// A file may be created at `path` when it is not a directory and no ancestor is a file.
    fn check_creatable(&self, path: &str) -> Result<()> {
        let not_a_file = || Error::other(format!("{path:?}: not a file"));
        if self.is_dir(path) {
            return Err(not_a_file());
        }
        let mut ancestor = path;
        while let Some(i) = ancestor.rfind('/').filter(|&i| i > 0) {
            ancestor = &ancestor[..i];
            if self.files.contains_key(ancestor) {
                return Err(not_a_file());
            }
        }
        Ok(())
    }

    fn file(&self, path: &str) -> Result<&File> {
        match self.files.get(path) {
            Some(f) => Ok(f),
            None if self.is_dir(path) => Err(Error::other(format!("{path:?} is a directory"))),
            None => Err(Error::not_found(path)),
        }
    }
}

pub struct InMemory {
    tree: Rc<RefCell<Tree>>,
}

impl Driver for InMemory {
    fn describe(_params: &Params) -> Result<Description> {
        // One instance must keep the tree; there is no native walk (the host walks with list).
        Ok(Description::new(
            Requirements::new().keeps_state().memory(MEMORY),
            Capabilities::new().max_object_size(MAX_OBJECT_SIZE),
        ))
    }

    fn open(_params: Params) -> Result<Self> {
        // Like distribution, the inmemory factory ignores whatever it is given.
        Ok(InMemory { tree: Rc::default() })
    }

    fn name(&self) -> String {
        "inmemory".into()
    }

    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self.tree.borrow().file(path)?.data.to_vec())
    }

    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()> {
        let mut tree = self.tree.borrow_mut();
        tree.check_creatable(path)?;
        tree.files.insert(path.to_string(), File { data: Rc::new(content), modified_ns: now_ns() });
        Ok(())
    }

    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        let data = self.tree.borrow().file(path)?.data.clone();
        let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        Ok(Box::new(Reader { data, offset }))
    }

    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let mut tree = self.tree.borrow_mut();
        let resumed = if append {
            // Resuming a path that was never written is path-not-found (upstream created it).
            tree.file(path)?.data.len() as u64
        } else {
            tree.check_creatable(path)?;
            // As upstream, a new writer creates (or truncates) the file at once.
            tree.files.insert(path.to_string(), File { data: Rc::default(), modified_ns: now_ns() });
            0
        };
        Ok(Box::new(Writer {
            tree: self.tree.clone(),
            path: path.to_string(),
            resumed,
            buffer: Vec::new(),
            state: WriterState::Open,
        }))
    }

    fn stat(&self, path: &str) -> Result<FileInfo> {
        let tree = self.tree.borrow();
        if let Some(f) = tree.files.get(path) {
            return Ok(FileInfo::file(path, f.data.len() as u64, f.modified_ns));
        }
        let newest = tree.descendants(path).map(|(_, f)| f.modified_ns).max();
        match newest {
            Some(modified) => Ok(FileInfo::dir(path, modified)),
            None if path == "/" => Ok(FileInfo::dir(path, 0)),
            None => Err(Error::not_found(path)),
        }
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let tree = self.tree.borrow();
        if tree.files.contains_key(path) {
            return Err(Error::other(format!("{path:?}: not a directory")));
        }
        let (mut children, mut has_dirs) = (Vec::new(), false);
        // One pass over the keys under `path/`: a file child is the next key; a directory
        // child's subtree is skipped by seeking to its end. A seek compares whole keys, which
        // wasm does byte by byte, so files are never sought.
        let within = subtree(path);
        let prefix = &within.start;
        let mut keys = tree.files.range(within.clone());
        while let Some((key, _)) = keys.next() {
            // Every key in the range starts with the prefix.
            match key[prefix.len()..].split_once('/') {
                Some((name, _)) => {
                    let child = format!("{prefix}{name}");
                    keys = tree.files.range(subtree(&child).end..within.end.clone());
                    children.push(child);
                    has_dirs = true;
                }
                None => children.push(key.clone()),
            }
        }
        // Siblings such as `c-x` sort between `c` and `c/...`, so with directories among the
        // children the order is restored here; files alone come in order.
        if has_dirs {
            children.sort_unstable();
        }
        if children.is_empty() && path != "/" {
            return Err(Error::not_found(path));
        }
        Ok(children)
    }

    fn move_file(&self, source: &str, destination: &str) -> Result<()> {
        let mut tree = self.tree.borrow_mut();
        if !tree.files.contains_key(source) {
            return Err(if tree.is_dir(source) {
                Error::other(format!("cannot move directory {source:?}: only files can be moved"))
            } else {
                Error::not_found(source)
            });
        }
        if source == destination {
            return Ok(());
        }
        tree.check_creatable(destination)?;
        let mut file = tree.files.remove(source).expect("checked above");
        file.modified_ns = now_ns();
        tree.files.insert(destination.to_string(), file);
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<()> {
        let mut tree = self.tree.borrow_mut();
        let file = tree.files.remove(path);
        // Everything under it, in one pass over that range.
        let removed = tree.files.extract_if(subtree(path), |_, _| true).count();
        if file.is_none() && removed == 0 {
            return Err(Error::not_found(path));
        }
        Ok(())
    }
}

struct Reader {
    data: Rc<Vec<u8>>,
    offset: usize,
}

impl FileReader for Reader {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        let end = self.offset.saturating_add(len).min(self.data.len());
        let chunk = self.data[self.offset..end].to_vec();
        self.offset = end;
        Ok(chunk)
    }
}

/// Buffers until `close` or `commit`, then appends to the file, as upstream.
struct Writer {
    tree: Rc<RefCell<Tree>>,
    path: String,
    /// The file's length when the buffer was last flushed.
    resumed: u64,
    buffer: Vec<u8>,
    state: WriterState,
}

impl Writer {
    fn flush(&mut self) -> Result<()> {
        let mut tree = self.tree.borrow_mut();
        let Some(file) = tree.files.get_mut(&self.path) else {
            return Err(Error::other(format!("{}: deleted while being written", self.path)));
        };
        let data = Rc::make_mut(&mut file.data);
        if data.is_empty() {
            *data = std::mem::take(&mut self.buffer);
        } else {
            data.append(&mut self.buffer);
        }
        file.modified_ns = now_ns();
        self.resumed = file.data.len() as u64;
        Ok(())
    }
}

impl FileWriter for Writer {
    fn write(&mut self, data: Vec<u8>) -> Result<u64> {
        self.state.check_write()?;
        let n = data.len() as u64;
        if self.buffer.is_empty() {
            self.buffer = data;
        } else {
            self.buffer.extend_from_slice(&data);
        }
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.resumed + self.buffer.len() as u64
    }

    fn close(&mut self) -> Result<()> {
        if self.state.check_close()? {
            self.flush()?;
            self.state = WriterState::Closed;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.state.check_commit()?;
        self.flush()?;
        self.state = WriterState::Committed;
        Ok(())
    }

    fn cancel(&mut self) -> Result<()> {
        self.state.check_cancel()?;
        self.buffer = Vec::new();
        self.tree.borrow_mut().files.remove(&self.path);
        self.state = WriterState::Cancelled;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself() {
        let d = InMemory::describe(&Params::parse(r#"{"anything":1}"#).unwrap()).unwrap();
        let r = &d.requirements;
        assert!(r.keeps_state && r.read_write_dirs.is_empty() && r.http_authorities.is_empty() && r.env.is_empty());
        assert_eq!(r.memory_bytes, 4 << 30);
        let c = &d.capabilities;
        assert!(!c.native_walk && c.redirect_methods.is_empty() && c.appends_to_committed);
        assert_eq!(c.max_object_size, Some(1 << 30));
    }
}
