"""A regstore storage driver written in Python: objects are files under a granted directory.

The key `/a/b` is the file `<rootdirectory>/a/b`; directories are plain directories and
nothing else is stored, so any instance (in this process or another) sees the same tree. The
driver keeps no state in memory between calls: the host may run several instances and replace
one between calls, and a writer resumed with `writer(path, append=True)` finds its bytes on disk.

The contract is `wit/0.2.0/storage.wit`, world `storage-driver`; docs/behaviour.md says what
each operation returns. The host has already validated every path (and refused negative
offsets), adds the driver's name to every error and sorts `list`, so none of that is done here.

How the bindings map (componentize-py 0.25):

- The exported interface `driver` is implemented by this module, named `driver` after it: its
  resources are the classes `Driver`, `FileReader` and `FileWriter` below. The
  interface's free function `describe` is a method of a class named after the interface, which
  is `Driver` again, so one class plays both parts (see `Driver.__init__`).
- `result<T, error>`: return T, or raise `Err(<error case>)`; `option<T>`: T or None;
  `u64`/`s64`: int; `list<u8>`: bytes.
"""

import builtins
import errno
import io
import json
import os
import stat
import time
from typing import NoReturn

from componentize_py_types import Err
from wit_world.exports.types import (
    Capabilities,
    Description,
    Error_InvalidParameter,
    Error_Other,
    Error_PathNotFound,
    Error_Unsupported,
    FileInfo,
    Requirements,
)

NAME = "pyfilesystem"

# Marks temporary files. `~` cannot appear in a valid key, so no key names one, and `list`
# leaves them out.
TMP_MARK = "~tmp-"
# A temporary older than this was left by a call that died (a trap, a killed host); the next
# write in its directory, or a prune, removes it.
STALE_TMP_SECONDS = 600

# The most linear memory one instance needs. The interpreter starts at 12.5 MiB, and
# `put_content` and `get_content` hold the whole object twice at their peak, once in the buffer
# the canonical ABI lifts or lowers and once as a Python `bytes`: the suite's 128 MiB
# `put_content` needs 269 MiB. (componentize-py 0.25.1 also keeps every `list<u8>` an export
# returns, so a reader's instance grows by each chunk it returns; the host moves a long reader
# to a fresh instance before that meets the limit.)
MEMORY_BYTES = 384 << 20
# The host's default for a third-party driver; one 4 MiB write or 1 MiB read is far quicker.
CALL_TIMEOUT_MS = 60_000


# ---------------------------------------------------------------------------------------------
# Errors. A driver returns the kind and the path (or a detail); the host formats the message.


def not_found(path: str) -> Err:
    return Err(Error_PathNotFound(path))


def other(detail: str) -> Err:
    return Err(Error_Other(detail))


def invalid_parameter(detail: str) -> Err:
    return Err(Error_InvalidParameter(detail))


def words(e: OSError) -> str:
    """The error's text without an errno number: inside the sandbox it is WASI's, not the host's."""
    return e.strerror or str(e)


def io_error(op: str, path: str, e: OSError) -> Err:
    """A failure of `op` on `path`, where a missing file (or a file where a directory was
    expected on the way) means nothing is stored at `path`."""
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):
        return not_found(path)
    return other(f"{op} {path}: {words(e)}")


# ---------------------------------------------------------------------------------------------
# Parameters: a JSON object, as distribution's map[string]any. Values set with `--param` or
# environment overrides arrive as strings, so a string is accepted wherever a value is.


def parse_parameters(text: str) -> dict:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise invalid_parameter(f"parameters are not valid JSON: {e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_parameter(f"parameters must be a JSON object, not {json.dumps(value)}")
    return value


def root_directory(parameters: str) -> str:
    """The `rootdirectory` parameter, exactly as given. `describe` and `open` both read it here,
    so both fail with the same message."""
    value = parse_parameters(parameters).get("rootdirectory")
    if isinstance(value, bool):  # before int: True is an int in Python
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    elif value is not None and not isinstance(value, str):
        raise invalid_parameter(f"the rootdirectory parameter should be a string, not {json.dumps(value)}")
    if not value:
        raise invalid_parameter("no rootdirectory parameter provided")
    return value


def guest_root(root: str) -> str:
    """The root as this guest's file calls must spell it. The host grants the directory under
    the name declared, and wasi-libc matches a path against that name byte for byte, after
    stripping leading `/` and `./` from the name but only leading `/` from the path: so the root
    is used as given (a trailing `/` included), except that a relative root loses its `./`."""
    if root.startswith("/"):
        return root
    while root.startswith("./"):
        root = root[2:].lstrip("/")
    return root or "."


# ---------------------------------------------------------------------------------------------
# Keys and files.


def parent_key(path: str) -> str:
    """The parent of a valid key; `/` for a top-level key."""
    return path.rsplit("/", 1)[0] or "/"


def is_temporary(name: str) -> bool:
    return TMP_MARK in name


def temporary_sibling(file: str) -> str:
    """A name beside `file` that is unique to this call and that no key can have."""
    head, name = os.path.split(file)
    return os.path.join(head, f".{name}{TMP_MARK}{os.urandom(8).hex()}")


def write_all_at(fd: int, data: bytes, offset: int) -> None:
    """Writes all of `data` at `offset`; `pwrite` may write less than it was given."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n == 0:
            raise OSError(0, "the host wrote nothing")
        view = view[n:]
        offset += n


def sync_dir(directory: str) -> None:
    """fsync of a directory, so that a rename in it survives a crash."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(full: str) -> None:
    """Removes the file `full`, or the directory and everything under it. Entries that vanish
    meanwhile (a concurrent delete) are gone as wanted. A symbolic link is removed, not followed."""
    try:
        is_dir = stat.S_ISDIR(os.lstat(full).st_mode)
        if not is_dir:
            os.unlink(full)
            return
        # All names first: removing while reading a directory stream is unspecified.
        for name in os.listdir(full):
            remove_tree(os.path.join(full, name))
        os.rmdir(full)
    except FileNotFoundError:
        pass


def check_not_directory(path: str, full: str) -> None:
    """Content cannot replace a directory: an error of kind other, as the filesystem driver."""
    if os.path.isdir(full):
        raise other(f"{path}: is a directory")


# ---------------------------------------------------------------------------------------------
# The driver.


class Driver:
    """The resource `driver`, and the interface `driver` whose function `describe` it carries.

    componentize-py calls `describe` on an instance it makes with no arguments, and every other
    method on the instance `open` returns; only the latter has a root.
    """

    def __init__(self, root: str | None = None):
        self._root = root

    # -- before open ---------------------------------------------------------------------------

    def describe(self, parameters: str) -> Description:
        """What the driver needs for these parameters. It runs in an instance with nothing
        granted, so it reads the parameters and nothing else."""
        root = root_directory(parameters)
        requirements = Requirements(
            # As given: the host grants it at this very path (a relative one against its own
            # working directory) and creates it when it is missing.
            read_write_dirs=[root],
            read_only_dirs=[],
            http_authorities=[],
            env=[],
            # Everything lives in files: the host may pool instances and replace one between calls.
            keeps_state=False,
            memory_bytes=MEMORY_BYTES,
            call_timeout_ms=CALL_TIMEOUT_MS,
            max_concurrent_calls=None,
        )
        capabilities = Capabilities(
            native_walk=False,  # `walk` is unsupported: the host walks with `list` and `stat`
            redirect_methods=[],  # `redirect_url` never gives a URL
            appends_to_committed=True,  # a file can always be appended to (D4)
            max_object_size=None,
        )
        return Description(requirements, capabilities)

    @classmethod
    def open(cls, parameters: str) -> "Driver":
        """A driver on `rootdirectory`, which the host has granted (and created) before this."""
        root = root_directory(parameters)
        full = guest_root(root)
        try:
            try:
                os.mkdir(full)
            except FileExistsError:
                pass
            if not stat.S_ISDIR(os.stat(full).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        except OSError as e:
            raise other(f"cannot use rootdirectory {root}: {words(e)} (is it granted to the driver?)") from None
        return cls(full)

    def name(self) -> str:
        return NAME

    def _full(self, path: str) -> str:
        """The file behind a key. Every file name is made here, from the root as the sandbox
        knows it: `os.path.dirname` of one would lose a trailing `/` of the root."""
        if path == "/":
            return self._root
        return self._root.rstrip("/") + path

    def _make_dir(self, key: str) -> None:
        """Creates the directory `key` and its missing parents. It works from the deep end and
        never looks above the root, where the sandbox shows nothing; that is why `os.makedirs`,
        which looks at every ancestor first, fails here. A file in the way raises
        FileExistsError or NotADirectoryError."""
        if key == "/":
            return
        full = self._full(key)
        try:
            os.mkdir(full)
            return
        except FileExistsError:
            if os.path.isdir(full):
                return
            raise
        except FileNotFoundError:
            pass
        self._make_dir(parent_key(key))
        try:
            os.mkdir(full)
        except FileExistsError:  # made meanwhile by a concurrent call
            if not os.path.isdir(full):
                raise

    def _with_parents(self, path: str, action):
        """Runs `action`, which creates a file in the directory of the key `path`; when that
        directory is missing, creates it and tries again, also while a concurrent prune
        (another instance deleting the last file there) removes it in between."""
        for attempt in range(8):
            try:
                return action()
            except FileNotFoundError:
                if attempt == 7:
                    raise
            self._make_dir(parent_key(path))

    # -- whole objects -------------------------------------------------------------------------

    def get_content(self, path: str) -> bytes:
        """The whole content. Missing: path-not-found; a directory: other."""
        try:
            with io.FileIO(self._full(path), "r") as f:
                return f.readall()
        except IsADirectoryError:
            raise other(f"{path}: is a directory") from None
        except OSError as e:
            raise io_error("reading", path, e) from None

    def put_content(self, path: str, content: bytes) -> None:
        """Replaces the content atomically: a temporary sibling, synced, then renamed over the
        file, so a reader or a crash sees the old content or the new. A directory, or a parent
        that is a file: other. Never path-not-found, since it creates what is missing."""
        file = self._full(path)
        check_not_directory(path, file)
        tmp = temporary_sibling(file)

        def write_temporary():
            with io.FileIO(tmp, "w") as f:
                write_all_at(f.fileno(), content, 0)
                os.fsync(f.fileno())

        try:
            self._with_parents(path, write_temporary)
            os.replace(tmp, file)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise other(f"writing {path}: {words(e)}") from None
        try:
            sync_dir(self._full(parent_key(path)))
        except OSError as e:
            raise other(f"syncing the directory of {path}: {words(e)}") from None
        # What calls that died in this directory left behind goes with the next write.
        self._remove_stale_temporaries(parent_key(path))

    # -- streams -------------------------------------------------------------------------------

    def reader(self, path: str, offset: int) -> "FileReader":
        """The content from `offset` (never negative: the host checks). Missing: path-not-found,
        whatever the offset; a directory: other; at or past the end: a reader whose first read
        is empty (D3)."""
        try:
            file = io.FileIO(self._full(path), "r")
        except IsADirectoryError:
            raise other(f"{path}: is a directory") from None
        except OSError as e:
            raise io_error("opening", path, e) from None
        return FileReader(file, path, offset)

    def writer(self, path: str, append: bool) -> "FileWriter":
        """A writer whose bytes go straight into the file at `path`, as distribution's
        filesystem driver does.

        `append=False` creates or truncates the file at once (a directory, or a parent that is
        a file: other). `append=True` resumes the file where an earlier writer left it, closed
        or committed (D4: this driver appends to committed content); nothing there is
        path-not-found.
        """
        file = self._full(path)
        check_not_directory(path, file)
        try:
            if append:
                f = io.FileIO(file, "r+")  # no create: resuming nothing is path-not-found
            else:
                f = self._with_parents(path, lambda: io.FileIO(file, "w"))
        except IsADirectoryError:
            raise other(f"{path}: is a directory") from None
        except OSError as e:
            if append:
                raise io_error("opening", path, e) from None
            raise other(f"opening {path}: {words(e)}") from None
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError as e:
            f.close()
            raise other(f"opening {path}: {words(e)}") from None
        return FileWriter(self, f, path, size)

    # -- the tree ------------------------------------------------------------------------------

    def stat(self, path: str) -> FileInfo:
        """A file's size, or a directory (size 0). `/` is always a directory. Missing:
        path-not-found. A directory exists only while something is in it, which `delete`,
        `move` and `cancel` ensure by pruning (D12)."""
        try:
            st = os.stat(self._full(path))
        except OSError as e:
            raise io_error("stat", path, e) from None
        if stat.S_ISDIR(st.st_mode):
            return FileInfo(path=path, size=0, modified_ns=max(st.st_mtime_ns, 0), is_dir=True)
        return FileInfo(path=path, size=st.st_size, modified_ns=max(st.st_mtime_ns, 0), is_dir=False)

    # Named `list` as in the WIT: inside this class the name is the method, so the annotation
    # spells the builtin out.
    def list(self, path: str) -> builtins.list[str]:
        """Absolute paths of the direct children, sorted (D11). Missing, or a file:
        path-not-found; `/` on empty storage: []. Temporaries are not content."""
        try:
            names = os.listdir(self._full(path))
        except OSError as e:
            raise io_error("listing", path, e) from None
        prefix = "" if path == "/" else path
        return sorted(f"{prefix}/{name}" for name in names if not is_temporary(name))

    def move(self, source: str, destination: str) -> None:
        """Moves a file over `destination`, creating its parents, then prunes the source's
        emptied directories. Missing source: path-not-found naming the source, destination
        untouched; a directory: other, nothing moved (D7). A file moved onto itself stays."""
        src, dst = self._full(source), self._full(destination)
        try:
            st = os.stat(src)
        except OSError as e:
            raise io_error("moving", source, e) from None
        if stat.S_ISDIR(st.st_mode):
            raise other(f"cannot move directory {source}: only files can be moved")
        try:
            self._with_parents(destination, lambda: os.replace(src, dst))
        except FileNotFoundError:
            raise not_found(source) from None  # the source went away meanwhile
        except OSError as e:
            raise other(f"moving {source} to {destination}: {words(e)}") from None
        self._prune(source)

    def delete(self, path: str) -> None:
        """Removes the file at `path`, or the directory and everything under `path/`, never a
        sibling that merely shares the prefix (D6), then the directories it emptied (D12).
        Nothing there: path-not-found. (`/` never arrives: the host refuses it.)"""
        full = self._full(path)
        try:
            os.lstat(full)
            remove_tree(full)
        except OSError as e:
            raise io_error("deleting", path, e) from None
        self._prune(path)

    def redirect_url(self, method: str, path: str) -> str | None:
        """Files are served by the registry itself: never a URL, for any method (D10)."""
        return None

    def walk(self, path: str, start_after: str | None) -> NoReturn:
        """Not implemented: `unsupported` makes the host walk with `list` and `stat`, with the
        exact semantics of the contract (and `native_walk` is declared False). So no class
        implements the resource `walker`: componentize-py needs one only to return it."""
        raise Err(Error_Unsupported("walk"))

    # -- housekeeping --------------------------------------------------------------------------

    def _prune(self, path: str) -> None:
        """Removes the directories above `path` that are now empty, up to the root (D12). A
        directory holding only stale temporaries counts as empty. Only `rmdir` removes a
        directory, and it fails on a non-empty one, so a file that a concurrent writer creates
        meanwhile survives."""
        key = parent_key(path)
        while key != "/":
            full = self._full(key)
            if not (rmdir(full) or (self._remove_stale_temporaries(key) and rmdir(full))):
                return
            key = parent_key(key)

    def _remove_stale_temporaries(self, key: str) -> bool:
        """Removes the temporaries that died calls left in the directory `key`; True when
        nothing else was found there."""
        full = self._full(key)
        try:
            names = os.listdir(full)
        except OSError:
            return False
        only_stale = True
        now = time.time()
        for name in names:
            entry = os.path.join(full, name)
            try:
                stale = is_temporary(name) and now - os.lstat(entry).st_mtime > STALE_TMP_SECONDS
                if stale:
                    os.unlink(entry)
            except OSError:
                stale = False
            only_stale = only_stale and stale
        return only_stale


def rmdir(full: str) -> bool:
    try:
        os.rmdir(full)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Readers and writers. Each holds an open file; Python closes it when the host drops the
# resource and the object is collected.


class FileReader:
    def __init__(self, file: io.FileIO, path: str, offset: int):
        self._file = file
        self._path = path
        self._offset = offset

    # The WIT parameter is named `len`; the host passes it positionally, so it may have another
    # name here, which keeps the builtin `len` usable.
    def read(self, length: int) -> bytes:
        """Up to `length` bytes, fewer only at the end; empty at the end."""
        # WASI refuses a read that would end past the largest s64: no file reaches there, so
        # such a read is past the end (D3).
        length = min(length, (1 << 63) - 1 - self._offset)
        chunks = []
        got = 0
        try:
            while got < length:
                chunk = os.pread(self._file.fileno(), length - got, self._offset + got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as e:
            raise io_error("reading", self._path, e) from None
        self._offset += got
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# distribution's FileWriter state machine (docs/behaviour.md, "Writer and FileWriter").
OPEN, CLOSED, COMMITTED, CANCELLED = "open", "closed", "committed", "cancelled"


class FileWriter:
    def __init__(self, driver: Driver, file: io.FileIO, path: str, size: int):
        self._driver = driver
        self._file: io.FileIO | None = file
        self._path = path
        self._size = size
        self._state = OPEN

    def _check_open(self) -> None:
        """Only an open writer takes writes, commits or cancels; the texts are exact."""
        if self._state != OPEN:
            raise other(f"already {self._state}")

    def _sync(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as e:
            raise other(f"syncing {self._path}: {words(e)}") from None

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, data: bytes) -> int:
        """Accepts all of `data` (the host sends at most 4 MiB at a time), at the end of what
        is there. After close, commit or cancel: `already closed` / `committed` / `cancelled`."""
        self._check_open()
        try:
            write_all_at(self._file.fileno(), data, self._size)
        except OSError as e:
            raise other(f"writing {self._path}: {words(e)}") from None
        self._size += len(data)
        return len(data)

    def size(self) -> int:
        """Resumed bytes plus every byte accepted (D5); nothing is buffered here."""
        return self._size

    def close(self) -> None:
        """Persists what was written, without publishing; a later `writer(path, True)` resumes
        here. Twice: `already closed`. After commit it succeeds; after cancel it writes nothing."""
        if self._state == CLOSED:
            raise other("already closed")
        if self._state == OPEN:
            self._sync()
            self._state = CLOSED
        self._release()

    def commit(self) -> None:
        """Publishes the content; it is already in place, so this makes it durable."""
        self._check_open()
        self._sync()
        self._state = COMMITTED

    def cancel(self) -> None:
        """Discards the content at the path (this writer's and what it resumed), then the
        directories that emptied. After commit: `already committed`, the content kept."""
        self._check_open()
        self._release()
        self._state = CANCELLED
        try:
            os.unlink(self._driver._full(self._path))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise other(f"cancelling {self._path}: {words(e)}") from None
        self._driver._prune(self._path)

