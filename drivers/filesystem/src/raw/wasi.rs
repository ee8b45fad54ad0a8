//! Files opened through the WASI descriptor API directly. Streams of content go through
//! `descriptor.write(buffer, offset)` and `descriptor.read(length, offset)`: one host call per
//! chunk, where std's files pass through a 4 KiB stream buffer (256 host calls per MiB).

use std::io;
use std::path::Path;

use super::{IO_CHUNK, inside, preopen_form};

use wasip2::filesystem::preopens::get_directories;
pub use wasip2::filesystem::types::Descriptor as File;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, DirectoryEntry, ErrorCode, OpenFlags, PathFlags,
};

/// The preopened directory that holds the root, and the root's path inside it.
pub struct Root {
    dir: Descriptor,
    inside: String,
}

impl Root {
    /// Finds the preopen the host granted for `root`, matched as std's file calls match it
    /// (wasi-libc: the longest preopen that is a prefix by components), so that both reach the
    /// same directory. The host grants the root at the path the driver declared, relative or not.
    pub fn find(root: &Path) -> io::Result<Root> {
        let root = root.to_str().ok_or_else(|| io::Error::other("the root is not UTF-8"))?;
        let wanted = preopen_form(root);
        let mut best: Option<(usize, Descriptor, String)> = None;
        for (dir, name) in get_directories() {
            let prefix = preopen_form(&name);
            let Some(inside) = inside(wanted, prefix) else { continue };
            // On a tie the later preopen wins, as in wasi-libc.
            if best.as_ref().is_none_or(|(len, ..)| prefix.len() >= *len) {
                best = Some((prefix.len(), dir, inside.to_string()));
            }
        }
        match best {
            Some((_, dir, inside)) => Ok(Root { dir, inside }),
            None => Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("no directory granted for {root}"))),
        }
    }

    fn relative(&self, key: &str) -> String {
        match (self.inside.is_empty(), key.trim_start_matches('/')) {
            (true, k) => k.to_string(),
            (false, k) => format!("{}/{k}", self.inside),
        }
    }

    /// Opens the file behind `key` for writing: created and truncated, or (with `append`) as it is.
    pub fn open_for_write(&self, key: &str, append: bool) -> io::Result<Descriptor> {
        let open = if append { OpenFlags::empty() } else { OpenFlags::CREATE | OpenFlags::TRUNCATE };
        let file = self
            .dir
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                &self.relative(key),
                open,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(to_io)?;
        Ok(file)
    }

    /// Opens the file behind `key` for reading; a directory is refused.
    pub fn open_for_read(&self, key: &str) -> io::Result<Descriptor> {
        let file = self
            .dir
            .open_at(PathFlags::SYMLINK_FOLLOW, &self.relative(key), OpenFlags::empty(), DescriptorFlags::READ)
            .map_err(to_io)?;
        if file.get_type().map_err(to_io)? == DescriptorType::Directory {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        Ok(file)
    }

    /// The names in the directory behind `key`: one host call per entry, where std's `read_dir`
    /// makes two (wasi-libc also asks for each entry's inode, a stat on the host). A name that
    /// is not UTF-8 cannot be a key and is left out.
    pub fn list_dir(&self, key: &str) -> io::Result<Vec<String>> {
        let relative = self.relative(key);
        let path = if relative.is_empty() { "." } else { relative.as_str() };
        let dir = self
            .dir
            .open_at(PathFlags::SYMLINK_FOLLOW, path, OpenFlags::DIRECTORY, DescriptorFlags::READ)
            .map_err(to_io)?;
        Ok(entries(&dir)?.named.into_iter().map(|entry| entry.name).collect())
    }

    /// Removes the file behind `key`, or the directory and everything under it. A symbolic link
    /// is removed, not followed. Entries that vanish meanwhile (a concurrent delete) are gone
    /// as wanted.
    pub fn remove_tree(&self, key: &str) -> io::Result<()> {
        let relative = self.relative(key);
        remove_entry(&self.dir, &relative, self.dir.stat_at(PathFlags::empty(), &relative).map_err(to_io)?.type_)
    }
}

/// The entries of an open directory, read to the end: names that are not UTF-8 (which WASI
/// cannot pass) are counted, not returned.
struct Entries {
    named: Vec<DirectoryEntry>,
    unnamed: usize,
}

fn entries(dir: &Descriptor) -> io::Result<Entries> {
    let stream = dir.read_directory().map_err(to_io)?;
    let mut found = Entries { named: Vec::new(), unnamed: 0 };
    loop {
        match stream.read_directory_entry() {
            Ok(Some(entry)) => found.named.push(entry),
            Ok(None) => return Ok(found),
            Err(ErrorCode::IllegalByteSequence) => found.unnamed += 1,
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// Removes `name` in `dir`, a directory's content first.
fn remove_entry(dir: &Descriptor, name: &str, kind: DescriptorType) -> io::Result<()> {
    let removed = if kind == DescriptorType::Directory {
        let sub = dir
            .open_at(
                PathFlags::empty(),
                name,
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            )
            .map_err(to_io)?;
        // All names first: removing while reading is unspecified for directory streams.
        let children = entries(&sub)?;
        for child in children.named {
            remove_entry(&sub, &child.name, child.type_)?;
        }
        if children.unnamed > 0 {
            // The sandbox cannot name them, so it cannot remove them: say so rather than a
            // bare "directory not empty".
            return Err(io::Error::other(format!(
                "{name} holds {} names that are not UTF-8, which the driver cannot remove",
                children.unnamed
            )));
        }
        dir.remove_directory_at(name)
    } else {
        dir.unlink_file_at(name)
    };
    match removed.map_err(to_io) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The length of an open file.
pub fn size(file: &Descriptor) -> io::Result<u64> {
    Ok(file.stat().map_err(to_io)?.size)
}

/// Writes all of `data` at `offset`, at most [`IO_CHUNK`] bytes per host call.
pub fn write_all_at(file: &Descriptor, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = file.write(&data[..data.len().min(IO_CHUNK)], offset).map_err(to_io)? as usize;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the host wrote nothing"));
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Up to `len` bytes from `offset`; fewer only at the end of the file. At most [`IO_CHUNK`]
/// bytes per host call.
pub fn read_at(file: &Descriptor, len: u64, offset: u64) -> io::Result<Vec<u8>> {
    let chunk = |wanted: u64| wanted.min(IO_CHUNK as u64);
    let (mut data, mut end) = file.read(chunk(len), offset).map_err(to_io)?;
    if !end && (data.len() as u64) < len {
        data.reserve((len - data.len() as u64).min(16 * IO_CHUNK as u64) as usize);
    }
    while !end && (data.len() as u64) < len {
        let (more, at_end) = file.read(chunk(len - data.len() as u64), offset + data.len() as u64).map_err(to_io)?;
        if more.is_empty() {
            break;
        }
        data.extend_from_slice(&more);
        end = at_end;
    }
    Ok(data)
}

/// The whole file: in one host call when it is at most [`IO_CHUNK`] long. One byte more than its
/// size is asked for, so that the host reports the end in the same answer.
pub fn read_to_end(file: &Descriptor) -> io::Result<Vec<u8>> {
    let size = size(file)?;
    let mut data = read_at(file, size.saturating_add(1), 0)?;
    // It grew since: the rest, to the end.
    while data.len() as u64 > size {
        let more = read_at(file, IO_CHUNK as u64, data.len() as u64)?;
        if more.is_empty() {
            break;
        }
        data.extend_from_slice(&more);
    }
    Ok(data)
}

pub fn sync(file: &Descriptor) -> io::Result<()> {
    file.sync().map_err(to_io)
}

/// A WASI error code as the `io::Error` std would have made of it.
fn to_io(e: ErrorCode) -> io::Error {
    let kind = match e {
        ErrorCode::NoEntry => io::ErrorKind::NotFound,
        ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
        ErrorCode::IsDirectory => io::ErrorKind::IsADirectory,
        ErrorCode::Access | ErrorCode::NotPermitted => io::ErrorKind::PermissionDenied,
        ErrorCode::Exist => io::ErrorKind::AlreadyExists,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.message())
}
