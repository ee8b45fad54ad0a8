// A regstore storage driver in JavaScript: objects are files under a directory the host grants
// (parameter `rootdirectory`), as distribution's filesystem driver lays them out. The key
// `/a/b` is the file `<root>/a/b`; directories are real directories and nothing else is kept.
//
// Built with ComponentizeJS against the `storage-driver` world plus wasi:filesystem (see
// `build`). The contract is the WIT file's doc comments, docs/behaviour.md and
// docs/authoring.md; the comments on each method say what it must return.
//
// How values cross the component boundary in ComponentizeJS:
// - u64/s64 are BigInt, both ways (sizes, offsets, timestamps);
// - list<u8> arrives as a Uint8Array; return one too;
// - an option is the value or `undefined`;
// - a variant is `{ tag, val }`, and a `result<T, error>` fails by throwing the error variant;
// - WASI calls that fail throw an Error whose `payload` is the WASI error code ('no-entry', ...);
// - a resource is a class; the host dropping one calls its `[Symbol.dispose]()`.

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

const NAME = 'filesystem-js';

/**
 * Marks temporary files: `~` cannot appear in a valid key, so no key collides with one and
 * `list` can leave them out.
 */
const TMP_MARK = '~tmp-';
/** A temporary older than this was left by a writer that died; it may be removed. */
const STALE_TMP_NS = 600n * 1_000_000_000n;
/**
 * The most bytes one WASI read or write moves: each call copies its buffer across the
 * boundary, so a bounded chunk bounds the extra memory a large object costs.
 */
const CHUNK = 4 << 20;
/** The most bytes one FileReader.read returns (the host asks for 1 MiB; fewer is allowed). */
const READ_LIMIT = 16 << 20;
/** WASI refuses a read that would end past i64::MAX. */
const MAX_OFFSET = (1n << 63n) - 1n;
/** How often a write is retried when a concurrent delete pruned its parent directories. */
const PARENT_RETRIES = 8;
/**
 * One instance holds a whole PutContent twice (the host's copy in linear memory, then the JS
 * copy the bindings make of it) on top of the engine and the garbage between two GCs: about
 * 270 MiB for the suite's concurrent-reads test, which puts 128 MiB at once.
 */
const MEMORY_BYTES = 320n << 20n;
const CALL_TIMEOUT_MS = 60_000n;

// The symbol the generated bindings call when the host drops a resource.
const dispose = Symbol.dispose ?? Symbol.for('dispose');

// ---------------------------------------------------------------------------------------------
// Errors: the `error` variant of registry:storage/types, thrown as is.

const notFound = (path) => ({ tag: 'path-not-found', val: path });
const invalidParameter = (detail) => ({ tag: 'invalid-parameter', val: detail });
const unsupported = (method) => ({ tag: 'unsupported', val: method });
const other = (detail) => ({ tag: 'other', val: detail });

const isDriverError = (e) => typeof e?.tag === 'string' && !('payload' in e);

/**
 * The WASI error code a failed filesystem call threw; anything else is a bug and goes on up
 * (the call traps, and the host reports the crash with what the engine printed to stderr).
 * The bindings' errors come from another realm, so `instanceof Error` would not recognise
 * them: they are told by their `payload`, the error-code enum as a string.
 */
function wasiCode(e) {
  if (typeof e?.payload === 'string') return e.payload;
  throw e;
}

/**
 * A driver error for a failed filesystem call on `path` during `op`. A missing file, or a
 * parent that is not a directory, means nothing is stored at `path`.
 */
function fsError(op, path, e) {
  if (isDriverError(e)) return e;
  const code = wasiCode(e);
  if (code === 'no-entry' || code === 'not-directory') return notFound(path);
  return other(`${op} ${path}: ${code.replaceAll('-', ' ')}`);
}

/**
 * Runs `fn(resource)` and releases the WASI resource afterwards. The generated bindings stop
 * watching an imported handle for garbage collection as soon as a method is called on it, so
 * a descriptor that is not disposed by hand stays open for the instance's lifetime.
 */
function withResource(resource, fn) {
  try {
    return fn(resource);
  } finally {
    resource[dispose]();
  }
}

// ---------------------------------------------------------------------------------------------
// Parameters: a JSON object, as distribution's map[string]any; values may be strings.

function parseParameters(json) {
  if (json.trim() === '') return {};
  let value;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw invalidParameter(`parameters are not valid JSON: ${e.message}`);
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidParameter(`parameters must be a JSON object, not ${json}`);
  }
  return value;
}

/** One parser for describe and open, so both give the same parameter errors. */
function rootDirectory(params) {
  const root = params.rootdirectory;
  if (root === undefined || root === null || root === '') {
    throw invalidParameter('no rootdirectory parameter provided');
  }
  if (typeof root === 'number' || typeof root === 'boolean') return String(root);
  if (typeof root !== 'string') {
    throw invalidParameter(`the rootdirectory parameter should be a string, not ${JSON.stringify(root)}`);
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Paths. The host has validated every key (`^(/[A-Za-z0-9._-]+)+$`, no `.` or `..`), so keys
// are joined without further checks.

/** A directory path as components, the way preopens are compared: `/a/./b/` and `a/b` alike. */
const components = (path) => path.split('/').filter((c) => c !== '' && c !== '.');

/** The parent of a key; `/` for a top-level key. */
function parentKey(key) {
  const at = key.lastIndexOf('/');
  return at <= 0 ? '/' : key.slice(0, at);
}

const baseName = (key) => key.slice(key.lastIndexOf('/') + 1);

const isTemporary = (name) => name.includes(TMP_MARK);

/** A name for a temporary sibling of `key`, unique to this call across instances. */
function temporarySibling(key) {
  const nonce = crypto.getRandomValues(new Uint8Array(8));
  const hex = Array.from(nonce, (b) => b.toString(16).padStart(2, '0')).join('');
  const dir = parentKey(key);
  return `${dir === '/' ? '' : dir}/.${baseName(key)}${TMP_MARK}${hex}`;
}

const modifiedNs = (stat) => {
  const t = stat.dataModificationTimestamp;
  return t ? t.seconds * 1_000_000_000n + BigInt(t.nanoseconds) : 0n;
};

// ---------------------------------------------------------------------------------------------
// File I/O on descriptors.

/** Writes all of `data` at `offset` (a BigInt), a chunk per call. */
function writeAll(file, data, offset) {
  let done = 0;
  while (done < data.length) {
    const n = Number(file.write(data.subarray(done, done + CHUNK), offset + BigInt(done)));
    if (n === 0) throw other('the host wrote nothing');
    done += n;
  }
}

/**
 * Up to `len` bytes (a Number) from `offset` (a BigInt), fewer only at the end of the file.
 * Every read hands back a fresh buffer, and the garbage waits for the next GC, so a first read
 * that answers everything is returned as it is; longer reads are copied into one buffer as
 * they arrive.
 */
function readAt(file, len, offset) {
  const [first, atEnd] = file.read(BigInt(Math.min(len, CHUNK)), offset);
  if (atEnd || first.length === 0 || first.length === len) return first;
  const buffer = new Uint8Array(len);
  buffer.set(first);
  let got = first.length;
  while (got < len) {
    const [data, end] = file.read(BigInt(Math.min(len - got, CHUNK)), offset + BigInt(got));
    buffer.set(data, got);
    got += data.length;
    if (end || data.length === 0) break;
  }
  return got === len ? buffer : buffer.subarray(0, got);
}

/**
 * The entries of an open directory. Names that are not UTF-8 cannot be keys, nor passed
 * through WASI: they are counted, not returned.
 */
function entries(dir) {
  return withResource(dir.readDirectory(), (stream) => {
    const named = [];
    let unnamed = 0;
    for (;;) {
      let entry;
      try {
        entry = stream.readDirectoryEntry();
      } catch (e) {
        if (wasiCode(e) !== 'illegal-byte-sequence') throw e;
        unnamed += 1;
        continue;
      }
      if (entry === undefined) return { named, unnamed };
      named.push(entry);
    }
  });
}

/**
 * Removes `name` in `dir`, a directory's content first. A symbolic link is removed, not
 * followed. Entries that vanish meanwhile (a concurrent delete) are gone as wanted.
 */
function removeEntry(dir, name, type) {
  try {
    if (type === 'directory') {
      const sub = dir.openAt({}, name, { directory: true }, { read: true, mutateDirectory: true });
      withResource(sub, () => {
        const { named, unnamed } = entries(sub);
        for (const child of named) removeEntry(sub, child.name, child.type);
        if (unnamed > 0) {
          throw other(`${name} holds ${unnamed} names that are not UTF-8, which the driver cannot remove`);
        }
      });
      dir.removeDirectoryAt(name);
    } else {
      dir.unlinkFileAt(name);
    }
  } catch (e) {
    if (isDriverError(e) || wasiCode(e) !== 'no-entry') throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The root: the preopen the host granted and where the root lies inside it.

/**
 * Finds the preopen that holds `root` (the longest one that is a prefix by components, the
 * later one on a tie), and creates the root inside it if it is missing.
 */
function openRoot(root) {
  const wanted = components(root);
  let best;
  for (const [dir, name] of getDirectories()) {
    const prefix = components(name);
    const holds = prefix.length <= wanted.length && prefix.every((c, i) => c === wanted[i]);
    if (holds && (best === undefined || prefix.length >= best.prefix.length)) {
      best?.dir[dispose]();
      best = { dir, prefix };
    } else {
      dir[dispose]();
    }
  }
  if (best === undefined) {
    throw other(
      `cannot use rootdirectory ${root}: no granted directory holds it (is it granted to the driver?)`,
    );
  }
  const inside = wanted.slice(best.prefix.length);
  // mkdir -p of the part of the root below the preopen.
  for (let i = 1; i <= inside.length; i++) {
    const dir = inside.slice(0, i).join('/');
    try {
      best.dir.createDirectoryAt(dir);
    } catch (e) {
      const code = wasiCode(e);
      if (code !== 'exist') throw other(`cannot create rootdirectory ${root}: ${code.replaceAll('-', ' ')}`);
    }
  }
  return { dir: best.dir, inside: inside.join('/') };
}

// ---------------------------------------------------------------------------------------------
// The driver.

class Driver {
  #dir; // the preopened directory descriptor
  #inside; // the root's path inside it, '' when the root is the preopen itself

  constructor({ dir, inside }) {
    this.#dir = dir;
    this.#inside = inside;
  }

  /** Parameter errors are invalid-parameter, with the texts describe gives. */
  static open(parameters) {
    return new Driver(openRoot(rootDirectory(parseParameters(parameters))));
  }

  name() {
    return NAME;
  }

  /** The whole object. Missing: path-not-found; a directory: other. */
  getContent(path) {
    try {
      return withResource(this.#openForRead(path), (file) => readAt(file, Number(file.stat().size), 0n));
    } catch (e) {
      throw fsError('reading', path, e);
    }
  }

  /**
   * Replaces the object atomically: the content goes to a temporary sibling, synced, then
   * renamed over the key, so a reader sees the old content or the new, never a mix.
   * Parents are created; a directory at `path`, or a file where a parent should be: other.
   */
  putContent(path, content) {
    if (this.#isDirectory(path)) throw other(`${path}: is a directory`);
    const tmp = temporarySibling(path);
    try {
      // The temporary is a sibling: creating the key's parents creates its own.
      this.#withParents(path, () => {
        const file = this.#dir.openAt({}, this.#rel(tmp), { create: true, exclusive: true }, { write: true });
        withResource(file, () => {
          writeAll(file, content, 0n);
          file.sync();
        });
      });
      this.#dir.renameAt(this.#rel(tmp), this.#dir, this.#rel(path));
    } catch (e) {
      this.#removeQuietly(tmp);
      throw fsError('writing', path, e);
    }
    this.#syncDirectory(parentKey(path));
    // What writers that died in this directory left behind goes with the next writer.
    this.#removeStaleTemporariesIn(parentKey(path));
  }

  /**
   * The content from `offset` (a BigInt). Missing, at any offset: path-not-found, now rather
   * than at the first read; a directory: other. Past the end: an empty stream (D3). The host
   * refuses negative offsets before calling; one here is invalid-offset all the same.
   */
  reader(path, offset) {
    if (offset < 0n) throw { tag: 'invalid-offset', val: { path, offset } };
    let file;
    try {
      file = this.#openForRead(path);
    } catch (e) {
      throw fsError('opening', path, e);
    }
    return new FileReader(file, path, offset);
  }

  /**
   * append=false creates or truncates the file at once (as upstream); append=true resumes
   * what an earlier writer closed, in any instance: the bytes are on disk, and size() starts
   * at their length. Nothing there to resume: path-not-found. A directory: other.
   */
  writer(path, append) {
    if (this.#isDirectory(path)) throw other(`${path}: is a directory`);
    const rel = this.#rel(path);
    const flags = { read: true, write: true };
    let file;
    try {
      file = append
        ? this.#dir.openAt({ symlinkFollow: true }, rel, {}, flags)
        : this.#withParents(path, () =>
            this.#dir.openAt({ symlinkFollow: true }, rel, { create: true, truncate: true }, flags),
          );
    } catch (e) {
      throw fsError('opening', path, e);
    }
    let size;
    try {
      size = file.stat().size;
    } catch (e) {
      file[dispose]();
      throw fsError('opening', path, e);
    }
    return new FileWriter(file, path, size, () => this.#discard(path));
  }

  /**
   * A file's size and mtime, or a directory (size 0). `/` is always a directory.
   * Missing: path-not-found.
   */
  stat(path) {
    let stat;
    try {
      stat = this.#dir.statAt({ symlinkFollow: true }, this.#rel(path));
    } catch (e) {
      throw fsError('stat', path, e);
    }
    const isDir = stat.type === 'directory';
    return { path, size: isDir ? 0n : stat.size, modifiedNs: modifiedNs(stat), isDir };
  }

  /**
   * Absolute paths of the direct children, temporaries left out, sorted by bytes (keys are
   * ASCII, so string order is byte order). Missing, or a file: path-not-found; `/` on empty
   * storage: [].
   */
  list(path) {
    let names;
    try {
      names = this.#names(path);
    } catch (e) {
      throw fsError('listing', path, e);
    }
    const prefix = path === '/' ? '' : path;
    return names
      .filter((name) => !isTemporary(name))
      .map((name) => `${prefix}/${name}`)
      .sort();
  }

  /**
   * Moves a file over `destination` (replacing a file there), creating its parents, then
   * prunes the parents `source` emptied. Missing source: path-not-found naming the source,
   * destination untouched; a directory source: other, nothing moved (D7).
   */
  move(source, destination) {
    let stat;
    try {
      stat = this.#dir.statAt({ symlinkFollow: true }, this.#rel(source));
    } catch (e) {
      throw fsError('moving', source, e);
    }
    if (stat.type === 'directory') {
      throw other(`cannot move directory ${source}: only files can be moved`);
    }
    try {
      this.#withParents(destination, () =>
        this.#dir.renameAt(this.#rel(source), this.#dir, this.#rel(destination)),
      );
    } catch (e) {
      if (!isDriverError(e) && wasiCode(e) === 'no-entry') throw notFound(source);
      throw fsError(`moving ${source} to`, destination, e);
    }
    this.#prune(source);
  }

  /**
   * Removes the object at `path` and everything under `path/` (never a `pathsuffix`
   * sibling), then the directories that emptied (D6, D12). Nothing there: path-not-found.
   */
  delete(path) {
    try {
      const stat = this.#dir.statAt({}, this.#rel(path));
      removeEntry(this.#dir, this.#rel(path), stat.type);
    } catch (e) {
      throw fsError('deleting', path, e);
    }
    this.#prune(path);
  }

  /** A filesystem has no URL to hand out: none, for every method (D10). */
  redirectUrl(_method, _path) {
    return undefined;
  }

  /** Not implemented: the host walks with list and stat (capability nativeWalk: false). */
  walk(_path, _startAfter) {
    throw unsupported('walk');
  }

  // --- helpers shared with the writer ---

  /** The path of `key` relative to the preopened directory. */
  #rel(key) {
    const relative = key === '/' ? '' : key.slice(1);
    if (this.#inside === '') return relative === '' ? '.' : relative;
    return relative === '' ? this.#inside : `${this.#inside}/${relative}`;
  }

  #openForRead(path) {
    const file = this.#dir.openAt({ symlinkFollow: true }, this.#rel(path), {}, { read: true });
    let type;
    try {
      type = file.getType();
    } catch (e) {
      file[dispose]();
      throw e;
    }
    if (type === 'directory') {
      file[dispose]();
      throw other(`${path}: is a directory`);
    }
    return file;
  }

  #isDirectory(path) {
    try {
      return this.#dir.statAt({ symlinkFollow: true }, this.#rel(path)).type === 'directory';
    } catch (e) {
      wasiCode(e);
      return false;
    }
  }

  /** The names in the directory `key`. */
  #names(key) {
    const rel = this.#rel(key);
    const dir = this.#dir.openAt({ symlinkFollow: true }, rel, { directory: true }, { read: true });
    return withResource(dir, () => entries(dir).named.map((entry) => entry.name));
  }

  /** mkdir -p of the parents of `key`; a parent that is a file is an error of kind other. */
  #createParents(key) {
    const parts = components(parentKey(key));
    for (let i = 1; i <= parts.length; i++) {
      const dir = `/${parts.slice(0, i).join('/')}`;
      try {
        this.#dir.createDirectoryAt(this.#rel(dir));
      } catch (e) {
        if (wasiCode(e) !== 'exist') throw e;
        if (!this.#isDirectory(dir)) throw other(`${key}: ${dir} is a file, not a directory`);
      }
    }
  }

  /**
   * Runs `fn` after creating the parents of `key`, and again while a concurrent prune
   * (another instance deleting the last file of the same directory) removes them in between.
   */
  #withParents(key, fn) {
    for (let attempt = 0; ; attempt++) {
      this.#createParents(key);
      try {
        return fn();
      } catch (e) {
        if (isDriverError(e) || wasiCode(e) !== 'no-entry' || attempt >= PARENT_RETRIES) throw e;
      }
    }
  }

  #removeQuietly(key) {
    try {
      this.#dir.unlinkFileAt(this.#rel(key));
    } catch (e) {
      wasiCode(e);
    }
  }

  /** Removes the file at `key` if it is there (a cancelled upload); prunes its parents. */
  #discard(key) {
    try {
      this.#dir.unlinkFileAt(this.#rel(key));
    } catch (e) {
      if (wasiCode(e) !== 'no-entry') throw fsError('cancelling', key, e);
    }
    this.#prune(key);
  }

  /**
   * Syncs the directory `key`, so a rename in it survives a crash. Best effort: a host that
   * cannot sync directories does not make the put fail.
   */
  #syncDirectory(key) {
    try {
      const dir = this.#dir.openAt({}, this.#rel(key), { directory: true }, { read: true });
      withResource(dir, () => dir.sync());
    } catch (e) {
      wasiCode(e);
    }
  }

  /**
   * Removes the emptied directories above `key`, up to the root (D12). A directory holding
   * only stale temporaries counts as empty. Only stale temporaries are removed: a concurrent
   * writer may create a file between the check and the removal, and removing a non-empty
   * directory simply fails, so that file survives.
   */
  #prune(key) {
    for (let dir = parentKey(key); dir !== '/'; dir = parentKey(dir)) {
      if (!this.#removeDirectory(dir)) {
        if (!(this.#removeStaleTemporariesIn(dir) && this.#removeDirectory(dir))) return;
      }
    }
  }

  #removeDirectory(key) {
    try {
      this.#dir.removeDirectoryAt(this.#rel(key));
      return true;
    } catch (e) {
      wasiCode(e);
      return false;
    }
  }

  /**
   * Removes the temporaries that dead writers left in the directory `key`; true when nothing
   * else was found there.
   */
  #removeStaleTemporariesIn(key) {
    let names;
    try {
      names = this.#names(key);
    } catch (e) {
      wasiCode(e);
      return false;
    }
    const now = BigInt(Date.now()) * 1_000_000n;
    const prefix = key === '/' ? '' : key;
    let onlyStale = true;
    for (const name of names) {
      const tmp = `${prefix}/${name}`;
      let stale = false;
      if (isTemporary(name)) {
        try {
          stale = now - modifiedNs(this.#dir.statAt({}, this.#rel(tmp))) > STALE_TMP_NS;
        } catch (e) {
          wasiCode(e);
        }
      }
      if (stale) this.#removeQuietly(tmp);
      else onlyStale = false;
    }
    return onlyStale;
  }
}

// ---------------------------------------------------------------------------------------------
// Streams.

class FileReader {
  #file;
  #path;
  #offset;

  constructor(file, path, offset) {
    this.#file = file;
    this.#path = path;
    this.#offset = offset;
  }

  /** Up to `len` bytes (a BigInt; the host asks for 1 MiB); an empty list at the end. */
  read(len) {
    let want = MAX_OFFSET - this.#offset;
    if (len < want) want = len;
    if (want > BigInt(READ_LIMIT)) want = BigInt(READ_LIMIT);
    if (want <= 0n) return new Uint8Array(0);
    try {
      const data = readAt(this.#file, Number(want), this.#offset);
      this.#offset += BigInt(data.length);
      return data;
    } catch (e) {
      throw fsError('reading', this.#path, e);
    }
  }

  [dispose]() {
    this.#file[dispose]();
  }
}

/**
 * distribution's FileWriter. Bytes go straight to the file at `path`, so closing is a sync and
 * resuming (driver.writer(path, true)) reopens the same file, in this instance or another.
 * The state machine and its exact texts are docs/behaviour.md's:
 *
 * | call \ state | open           | closed           | committed           | cancelled           |
 * |--------------|----------------|------------------|---------------------|---------------------|
 * | write        | ok             | already closed   | already committed   | already cancelled   |
 * | close        | ok → closed    | already closed   | ok, does nothing    | ok, writes nothing  |
 * | commit       | ok → committed | already closed   | already committed   | already cancelled   |
 * | cancel       | ok → cancelled | already closed   | already committed   | already cancelled   |
 */
class FileWriter {
  #file; // undefined once nothing more may be written
  #path;
  #size; // BigInt: resumed bytes plus every byte written (D5)
  #discard; // removes the file and prunes its parents
  #state = 'open';

  constructor(file, path, size, discard) {
    this.#file = file;
    this.#path = path;
    this.#size = size;
    this.#discard = discard;
  }

  /** Accepts all of `data` or fails; returns its length. */
  write(data) {
    this.#checkOpen();
    try {
      writeAll(this.#file, data, this.#size);
    } catch (e) {
      throw fsError('writing', this.#path, e);
    }
    this.#size += BigInt(data.length);
    return BigInt(data.length);
  }

  size() {
    return this.#size;
  }

  /** Persists every byte written, without publishing; a later writer(path, true) resumes here. */
  close() {
    if (this.#state === 'closed') throw other('already closed');
    if (this.#state === 'open') {
      this.#sync();
      this.#state = 'closed';
    }
    this.#release();
  }

  /** Persists and publishes: the bytes are already at `path`, so syncing them is enough. */
  commit() {
    this.#checkOpen();
    this.#sync();
    this.#state = 'committed';
    this.#release();
  }

  /**
   * Discards the content at `path`, written by this writer and the earlier ones it resumed,
   * and the directories that held only it.
   */
  cancel() {
    this.#checkOpen();
    this.#release();
    this.#state = 'cancelled';
    this.#discard();
  }

  [dispose]() {
    this.#release();
  }

  #checkOpen() {
    if (this.#state !== 'open') throw other(`already ${this.#state}`);
  }

  #sync() {
    try {
      this.#file.sync();
    } catch (e) {
      throw fsError('syncing', this.#path, e);
    }
  }

  #release() {
    if (this.#file !== undefined) {
      this.#file[dispose]();
      this.#file = undefined;
    }
  }
}

/** Never created: walk answers unsupported. The world still wants the class. */
class Walker {
  next() {
    return undefined;
  }

  skipDir() {}
}

// ---------------------------------------------------------------------------------------------
// The exports: the `driver` interface (registry:storage/types has nothing to export).

export const driver = {
  /**
   * What the driver needs and can do for these parameters. Runs in an instance with nothing
   * granted: it only reads the parameters, never the filesystem.
   */
  describe(parameters) {
    const root = rootDirectory(parseParameters(parameters));
    return {
      requirements: {
        // The root exactly as given: the host grants it at that very path.
        readWriteDirs: [root],
        readOnlyDirs: [],
        httpAuthorities: [],
        env: [],
        // Objects live in files: any instance can serve any call, and a resumed writer finds
        // its bytes on disk.
        keepsState: false,
        memoryBytes: MEMORY_BYTES,
        callTimeoutMs: CALL_TIMEOUT_MS,
        maxConcurrentCalls: undefined,
      },
      capabilities: {
        nativeWalk: false,
        redirectMethods: [],
        appendsToCommitted: true,
        maxObjectSize: undefined,
      },
    };
  },
  Driver,
  FileReader,
  FileWriter,
  Walker,
};
