//! std's files, for the driver compiled for the host: the root is a plain directory.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use std::fs::File;

/// The directory that holds the tree.
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn find(root: &Path) -> io::Result<Root> {
        Ok(Root { dir: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.trim_start_matches('/'))
    }

    /// Opens the file behind `key` for writing: created and truncated, or (with `append`) as it is.
    pub fn open_for_write(&self, key: &str, append: bool) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(!append).truncate(!append).open(self.path(key))
    }

    /// Opens the file behind `key` for reading; a directory is refused.
    pub fn open_for_read(&self, key: &str) -> io::Result<File> {
        let file = File::open(self.path(key))?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        Ok(file)
    }

    /// The names in the directory behind `key`.
    pub fn list_dir(&self, key: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.path(key))? {
            // A name that is not UTF-8 cannot be a key: skipped, as in the component.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Removes the file behind `key`, or the directory and everything under it. A symbolic link
    /// is removed, not followed.
    pub fn remove_tree(&self, key: &str) -> io::Result<()> {
        let path = self.path(key);
        if std::fs::symlink_metadata(&path)?.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        }
    }
}

/// The length of an open file.
pub fn size(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// Writes all of `data` at `offset`.
pub fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(data, offset)
}

/// Up to `len` bytes from `offset` (at most 64 MiB at once); fewer only at the end of the file.
pub fn read_at(file: &File, len: u64, offset: u64) -> io::Result<Vec<u8>> {
    let mut data = vec![0; len.min(64 << 20) as usize];
    let mut filled = 0;
    while filled < data.len() {
        match file.read_at(&mut data[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    Ok(data)
}

/// The whole file.
pub fn read_to_end(mut file: &File) -> io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(size(file)? as usize);
    io::Read::read_to_end(&mut file, &mut data)?;
    Ok(data)
}

pub fn sync(file: &File) -> io::Result<()> {
    file.sync_all()
}
