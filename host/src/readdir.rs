//! `wasi:filesystem`'s `read-directory`, answered from the directory's own entries.
//!
//! wasmtime-wasi learns each entry's type with a `stat` of it: one system call per name, which
//! made listing a directory of 50 files in the sandbox several times slower than natively. A
//! directory read already returns each entry's type (`d_type`) on the filesystems a registry
//! runs on, as native `read_dir` uses it; only an entry whose type the filesystem leaves
//! unknown is stat'ed here. This shadows three definitions of the linker's
//! `wasi:filesystem/types` (the method, the entry stream's method and its destructor); every
//! other filesystem call stays wasmtime-wasi's, and the guest sees the same interface.

use std::os::fd::AsFd;

use rustix::fs::{AtFlags, Dir, FileType, statat};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::filesystem::types::DirectoryEntryStream;
use wasmtime_wasi::p2::bindings::filesystem::types::{DescriptorType, DirectoryEntry, ErrorCode};

use crate::sandbox::HostState;

/// The interface as wasmtime-wasi's linker names it; a guest importing any 0.2.x version is
/// matched to it. A wasmtime-wasi that names another fails `Runtime::new` (see below).
const INTERFACE: &str = "wasi:filesystem/types@0.2.12";
const READ_DIRECTORY: &str = "[method]descriptor.read-directory";

/// The entries of one read, handed out one per `read-directory-entry`. Stored in the
/// instance's resource table under the handle the guest holds as its entry stream.
struct Entries(std::vec::IntoIter<Result<DirectoryEntry, ErrorCode>>);

type Answer<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// Replaces wasmtime-wasi's directory reading in `linker` (which must already hold WASI).
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // Defining the method without shadowing must fail: that proves wasmtime-wasi's interface
    // is there under this name. Otherwise the definitions below would make a second, partial
    // interface beside it, and the guests would go on with wasmtime-wasi's unnoticed.
    if linker.instance(INTERFACE)?.func_wrap(READ_DIRECTORY, read_directory).is_ok() {
        wasmtime::bail!("wasmtime-wasi does not define {INTERFACE}; update regstore's readdir::INTERFACE");
    }
    linker.allow_shadowing(true);
    let mut types = linker.instance(INTERFACE)?;
    types.func_wrap(READ_DIRECTORY, read_directory)?;
    types.func_wrap("[method]directory-entry-stream.read-directory-entry", read_directory_entry)?;
    types.resource("directory-entry-stream", ResourceType::host::<DirectoryEntryStream>(), |mut store, rep| {
        store.data_mut().table.delete(Resource::<Entries>::new_own(rep))?;
        Ok(())
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

fn read_directory(
    mut store: StoreContextMut<'_, HostState>,
    (fd,): (Resource<Descriptor>,),
) -> Answer<Resource<DirectoryEntryStream>> {
    let table = &mut store.data_mut().table;
    let entries = match table.get(&fd)? {
        Descriptor::Dir(dir) => read(dir.dir.as_fd()),
        Descriptor::File(_) => Err(ErrorCode::NotDirectory),
    };
    Ok((match entries {
        Ok(entries) => {
            let own = table.push(Entries(entries.into_iter()))?;
            // The guest holds it as wasmtime-wasi's stream type; only `read_directory_entry`
            // and the destructor above ever look inside.
            Ok(Resource::new_own(own.rep()))
        }
        Err(e) => Err(e),
    },))
}

fn read_directory_entry(
    mut store: StoreContextMut<'_, HostState>,
    (stream,): (Resource<DirectoryEntryStream>,),
) -> Answer<Option<DirectoryEntry>> {
    let entries = store.data_mut().table.get_mut(&Resource::<Entries>::new_borrow(stream.rep()))?;
    Ok((entries.0.next().transpose(),))
}

/// Every entry of the directory open as `dir`, but `.` and `..`, read through a descriptor of
/// its own (the guest's descriptor keeps its position). A name that is not UTF-8 is an
/// `illegal-byte-sequence` entry, as wasmtime-wasi reports it.
fn read(dir: std::os::fd::BorrowedFd<'_>) -> Result<Vec<Result<DirectoryEntry, ErrorCode>>, ErrorCode> {
    let mut reader = Dir::read_from(dir).map_err(io)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.read() {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            entries.push(Err(ErrorCode::IllegalByteSequence));
            continue;
        };
        let kind = match entry.file_type() {
            FileType::Unknown => match statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                // Gone since it was read: not an entry any more.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(io(e)),
            },
            known => known,
        };
        entries.push(Ok(DirectoryEntry { type_: descriptor_type(kind), name: name.to_string() }));
    }
    Ok(entries)
}

fn descriptor_type(kind: FileType) -> DescriptorType {
    match kind {
        FileType::RegularFile => DescriptorType::RegularFile,
        FileType::Directory => DescriptorType::Directory,
        FileType::Symlink => DescriptorType::SymbolicLink,
        FileType::Fifo => DescriptorType::Fifo,
        FileType::Socket => DescriptorType::Socket,
        FileType::CharacterDevice => DescriptorType::CharacterDevice,
        FileType::BlockDevice => DescriptorType::BlockDevice,
        FileType::Unknown => DescriptorType::Unknown,
    }
}

fn io(errno: rustix::io::Errno) -> ErrorCode {
    ErrorCode::from(&std::io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn entries_carry_their_types_and_odd_names_are_flagged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("file", dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"").unwrap();
        let handle = std::fs::File::open(dir.path()).unwrap();

        let mut named = Vec::new();
        let mut illegal = 0;
        for entry in read(handle.as_fd()).unwrap() {
            match entry {
                Ok(entry) => named.push((entry.name, entry.type_)),
                Err(ErrorCode::IllegalByteSequence) => illegal += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = [
            ("file", DescriptorType::RegularFile),
            ("link", DescriptorType::SymbolicLink),
            ("sub", DescriptorType::Directory),
        ];
        assert_eq!(named.len(), expected.len(), "{named:?}");
        for ((name, kind), (want_name, want_kind)) in named.iter().zip(expected) {
            assert_eq!(name, want_name);
            assert!(std::mem::discriminant(kind) == std::mem::discriminant(&want_kind), "{name}: {kind:?}");
        }
        assert_eq!(illegal, 1, "the name that is not UTF-8 is reported, not skipped");
        // The caller's descriptor keeps its own position: a second read sees everything again.
        assert_eq!(read(handle.as_fd()).unwrap().len(), 4);
    }

    #[test]
    fn shadows_only_an_interface_that_wasmtime_wasi_defines() {
        let engine = wasmtime::Engine::default();
        let mut without_wasi = Linker::<HostState>::new(&engine);
        let refused = add_to_linker(&mut without_wasi).expect_err("nothing to shadow is an error");
        assert!(refused.to_string().contains(INTERFACE), "{refused}");
        let mut with_wasi = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut with_wasi).unwrap();
        add_to_linker(&mut with_wasi).unwrap();
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let file = std::fs::File::open(dir.path().join("file")).unwrap();
        assert!(matches!(read(file.as_fd()), Err(ErrorCode::NotDirectory)));
    }
}
