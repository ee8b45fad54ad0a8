//! A walk built from a flat object listing (s3, azure, gcs): keys arrive in byte
//! order, the walk goes out in regstore's order, pre-order and component-wise (D2), with the
//! directories inferred from the keys and the host's fallback semantics for the start-after
//! hint and skip-dir (docs/behaviour.md, Walk).
//!
//! Byte order and component-wise order disagree only where one key continues a name with a byte
//! below '/' (`a-b`, `a.b`) and another continues it with '/' (`a/x`): `a-b` is listed first but
//! walks after the whole `a/` subtree. So an object waits only while a key that sorts before it
//! component-wise may still arrive.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use regstore_sdk::FileInfo;

/// Full paths compared as if '/' sorted before every other byte (D2), as the host's `cmp_components`.
pub fn cmp_components(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// A path ordered component-wise; bytes break ties so that distinct paths never collide.
#[derive(Debug, PartialEq, Eq)]
struct Ordered(String);

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_components(&self.0, &other.0).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
struct Object {
    size: u64,
    modified_ns: u64,
    /// The object is safe to walk once a pushed path reaches this (every key that could sort
    /// before it component-wise lies below it in bytes); `None`: safe at once.
    ready_at: Option<String>,
}

/// Turns a byte-ordered listing of the objects under `from` into regstore's walk.
///
/// The caller lists from [`FlatWalk::list_start_after`], pushes each object's path in listing
/// order, takes [`FlatWalk::next_ready`] entries as they come, and calls [`FlatWalk::finish`] after
/// the last page.
#[derive(Debug)]
pub struct FlatWalk {
    from: String,
    /// Every path under `from` starts with this: `from + "/"`, or `/`.
    prefix: String,
    /// Only entries sorting component-wise strictly after it are walked.
    hint: Option<String>,
    /// Objects not yet expanded, in walk order.
    pending: BTreeMap<Ordered, Object>,
    /// Entries of expanded objects; the hint and skip-dir are applied as they leave.
    out: VecDeque<FileInfo>,
    /// The byte-largest path pushed under `from`: later keys sort after it.
    last_pushed: Option<String>,
    /// The object expanded last: its ancestors have been reported (or filtered) already.
    last_expanded: Option<Ordered>,
    /// The directory `next_ready` returned last, which `skip_dir` refers to.
    returned_dir: Option<String>,
    /// `dir + "/"` of the directory skipped last; earlier skipped subtrees are all behind us.
    skip: Option<String>,
    finished: bool,
    saw_any: bool,
}

impl FlatWalk {
    /// A walk of `from` (a valid path, or `/`) after the hint, as the host's FallbackWalker.
    pub fn new(from: &str, start_after: Option<&str>) -> Self {
        let from = if from.len() > 1 { from.trim_end_matches('/') } else { from };
        let prefix = if from == "/" { "/".to_string() } else { format!("{from}/") };
        // As the fallback: a trailing '/' is trimmed, and an empty hint is no hint.
        let hint = start_after.map(|h| if h.len() > 1 { h.trim_end_matches('/') } else { h });
        FlatWalk {
            from: from.to_string(),
            prefix,
            hint: hint.filter(|h| !h.is_empty()).map(str::to_string),
            pending: BTreeMap::new(),
            out: VecDeque::new(),
            last_pushed: None,
            last_expanded: None,
            returned_dir: None,
            skip: None,
            finished: false,
            saw_any: false,
        }
    }

    /// What to send as the listing's StartAfter (a path; map it with `KeyMap::key`), or `None`.
    ///
    /// For a hint `from/c1/c2/...` this is `from/c1`: a sibling such as `c1-x` walks after the
    /// hint but lists before `c1/...`, so any later StartAfter could lose it. It is always below
    /// `from`, never an ancestor of the listing prefix: upstream sent the bare root as
    /// StartAfter, and SeaweedFS then listed nothing.
    pub fn list_start_after(&self) -> Option<String> {
        let rel = self.hint.as_deref()?.strip_prefix(self.prefix.as_str())?;
        let first = rel.split('/').next().filter(|c| !c.is_empty())?;
        Some(format!("{}{first}", self.prefix))
    }

    /// True when the hint sorts after everything under `from`: the walk is empty and succeeds
    /// even if `from` is missing (the fallback does not look), so no listing is needed.
    pub fn nothing_to_walk(&self) -> bool {
        self.hint.as_deref().is_some_and(|h| {
            h != self.from && !h.starts_with(self.prefix.as_str()) && cmp_components(h, &self.from).is_gt()
        })
    }

    /// Feeds the next listed object, in byte order of its path. `path` may end with '/' (a marker
    /// object: its directories are walked, the marker itself is not).
    pub fn push(&mut self, path: String, size: u64, modified_ns: u64) {
        let Some(rel) = path.strip_prefix(self.prefix.as_str()) else { return };
        self.saw_any = true;
        if self.last_pushed.as_ref().is_none_or(|last| path > *last) {
            self.last_pushed = Some(path.clone());
        }
        // The marker of `from` itself, or an empty component that no regstore path can name.
        if rel.is_empty() || rel.starts_with('/') || rel.contains("//") {
            return;
        }
        // Dropped early to bound the buffer: an object's entries all sort at or before it.
        if self.hint.as_deref().is_some_and(|h| cmp_components(&path, h).is_le())
            || self.skip.as_deref().is_some_and(|s| path.starts_with(s))
        {
            return;
        }
        let path = Ordered(path);
        // A repeated or out-of-order key would break pre-order; its place has passed.
        if self.last_expanded.as_ref().is_some_and(|last| path <= *last) {
            return;
        }
        // With i its first byte below '/', only keys starting with `path[..i] + "/"` can sort
        // before it, and they all lie below `path[..i] + "0"`.
        let ready_at = path.0.as_bytes()[self.prefix.len()..]
            .iter()
            .position(|&b| b < b'/')
            .map(|i| format!("{}0", &path.0[..self.prefix.len() + i]));
        self.pending.insert(path, Object { size, modified_ns, ready_at });
    }

    /// No more objects will be pushed.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The next entry that can be walked now, or `None` if more input is needed (or, after
    /// `finish`, the walk is over).
    pub fn next_ready(&mut self) -> Option<FileInfo> {
        loop {
            while let Some(entry) = self.out.pop_front() {
                if self.wanted(&entry.path) {
                    self.returned_dir = entry.is_dir.then(|| entry.path.clone());
                    return Some(entry);
                }
            }
            let (_, first) = self.pending.first_key_value()?;
            let safe = self.finished
                || first.ready_at.as_ref().is_none_or(|at| self.last_pushed.as_ref().is_some_and(|last| last >= at));
            if !safe {
                return None;
            }
            let (path, object) = self.pending.pop_first()?;
            self.expand(path, object);
        }
    }

    /// Do not descend into the directory `next_ready` returned last (nothing for a file).
    pub fn skip_dir(&mut self) {
        if let Some(dir) = self.returned_dir.take() {
            let skip = dir + "/";
            self.pending.retain(|path, _| !path.0.starts_with(&skip));
            self.skip = Some(skip);
        }
    }

    /// True once `finish` was called and everything was returned.
    pub fn is_done(&self) -> bool {
        self.finished && self.pending.is_empty() && !self.out.iter().any(|e| self.wanted(&e.path))
    }

    /// True if any object at all was pushed under `from` (markers and ignored keys included).
    pub fn saw_any(&self) -> bool {
        self.saw_any
    }

    /// After `finish`: whether the walk fails with path-not-found (D9), as the fallback decides.
    /// `None` when a StartAfter was sent and nothing came back: keys at or before it may exist,
    /// so the caller checks for any key under `from` (a one-key listing of its prefix).
    pub fn root_not_found(&self) -> Option<bool> {
        if self.saw_any || self.from == "/" || self.nothing_to_walk() {
            Some(false)
        } else if self.list_start_after().is_some() {
            None
        } else {
            Some(true)
        }
    }

    fn wanted(&self, path: &str) -> bool {
        self.hint.as_deref().is_none_or(|h| cmp_components(path, h).is_gt())
            && self.skip.as_deref().is_none_or(|s| !path.starts_with(s))
    }

    /// Queues the object's directories not met yet (directoryDiff, outermost first), then the
    /// object itself unless it is a marker.
    fn expand(&mut self, path: Ordered, object: Object) {
        let p = path.0.as_str();
        let prev = self.last_expanded.as_ref().map(|last| last.0.as_str());
        for (j, _) in p.match_indices('/').filter(|&(j, _)| j >= self.prefix.len()) {
            let dir = &p[..j];
            // Pre-order keeps a subtree contiguous: an ancestor of the previous object is done.
            if prev.is_some_and(|prev| prev.len() > j && prev.as_bytes()[j] == b'/' && prev.starts_with(dir)) {
                continue;
            }
            self.out.push_back(FileInfo::dir(dir, 0));
        }
        if !p.ends_with('/') {
            self.out.push_back(FileInfo::file(p, object.size, object.modified_ns));
        }
        self.last_expanded = Some(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyMap;

    /// distribution's walk_test.go tree.
    const TREE: &[&str] = &[
        "/file1",
        "/folder1/file1",
        "/folder1-suffix/file1",
        "/folder2/file1",
        "/folder3/subfolder1/subfolder1/file1",
        "/folder3/subfolder2/subfolder1/file1",
        "/folder4/file1",
    ];

    const FULL: &[&str] = &[
        "/file1",
        "/folder1",
        "/folder1/file1",
        "/folder1-suffix",
        "/folder1-suffix/file1",
        "/folder2",
        "/folder2/file1",
        "/folder3",
        "/folder3/subfolder1",
        "/folder3/subfolder1/subfolder1",
        "/folder3/subfolder1/subfolder1/file1",
        "/folder3/subfolder2",
        "/folder3/subfolder2/subfolder1",
        "/folder3/subfolder2/subfolder1/file1",
        "/folder4",
        "/folder4/file1",
    ];

    struct Run {
        entries: Vec<FileInfo>,
        walk: FlatWalk,
    }

    impl Run {
        fn paths(&self) -> Vec<&str> {
            self.entries.iter().map(|e| e.path.as_str()).collect()
        }
    }

    /// Walks `objects` as a driver would: keys under a root, listed after `list_start_after` in
    /// byte order, pushed `batch` at a time, skip-dir answered on the paths in `skip_on`.
    fn run_in(root: &str, objects: &[&str], from: &str, hint: Option<&str>, skip_on: &[&str], batch: usize) -> Run {
        let map = KeyMap::new(root);
        let mut walk = FlatWalk::new(from, hint);
        let prefix = map.dir_prefix(from);
        let start = walk.list_start_after().map(|s| map.key(&s));
        let mut keys: Vec<String> = objects
            .iter()
            .map(|p| map.key(p))
            .filter(|k| k.starts_with(&prefix) && start.as_ref().is_none_or(|s| k > s))
            .collect();
        keys.sort();
        let mut entries = Vec::new();
        let mut drain = |walk: &mut FlatWalk| {
            while let Some(entry) = walk.next_ready() {
                if skip_on.contains(&entry.path.as_str()) {
                    walk.skip_dir();
                }
                entries.push(entry);
            }
        };
        for page in keys.chunks(batch.max(1)) {
            for (i, key) in page.iter().enumerate() {
                walk.push(map.path(key).unwrap(), i as u64 + 1, 7);
            }
            drain(&mut walk);
        }
        walk.finish();
        drain(&mut walk);
        assert!(walk.is_done());
        assert_eq!(walk.next_ready().map(|e| e.path), None);
        for e in &entries {
            assert!(!e.path.ends_with('/') && !e.path.contains("//"), "bad entry {}", e.path);
        }
        Run { entries, walk }
    }

    fn run(objects: &[&str], from: &str, hint: Option<&str>, skip_on: &[&str]) -> Run {
        let all = run_in("", objects, from, hint, skip_on, usize::MAX);
        for (root, batch) in [("/s3/prefix/", 1), ("zot", 2), ("", 3)] {
            let other = run_in(root, objects, from, hint, skip_on, batch);
            assert_eq!(other.paths(), all.paths(), "root {root:?}, batches of {batch}");
        }
        all
    }

    fn after<'a>(first: &str) -> Vec<&'a str> {
        FULL.iter().skip_while(|p| **p != first).copied().collect()
    }

    #[test]
    fn walk_all() {
        let run = run(TREE, "/", None, &[]);
        assert_eq!(run.paths(), FULL);
        for e in &run.entries {
            assert_eq!(e.is_dir, !e.path.ends_with("file1"), "{}", e.path);
            if e.is_dir {
                assert_eq!((e.size, e.modified_ns), (0, 0));
            } else {
                assert_eq!(e.modified_ns, 7);
            }
        }
        assert!(run.walk.saw_any());
        assert_eq!(run.walk.root_not_found(), Some(false));
    }

    #[test]
    fn skip_directory() {
        let expected: Vec<_> = FULL.iter().copied().filter(|p| *p != "/folder1/file1").collect();
        assert_eq!(run(TREE, "/", None, &["/folder1"]).paths(), expected);
    }

    #[test]
    fn start_late_expecting_suffix() {
        assert_eq!(run(TREE, "/", Some("/folder1/file1"), &[]).paths(), after("/folder1-suffix"));
    }

    #[test]
    fn start_late_without_from() {
        let run = run(TREE, "/", Some("/folder3/subfolder1/subfolder1/file1"), &[]);
        assert_eq!(run.paths(), after("/folder3/subfolder2"));
    }

    #[test]
    fn start_late_with_from() {
        let run = run(TREE, "/folder3", Some("/folder3/subfolder1/subfolder1/file1"), &[]);
        assert_eq!(
            run.paths(),
            ["/folder3/subfolder2", "/folder3/subfolder2/subfolder1", "/folder3/subfolder2/subfolder1/file1"]
        );
    }

    #[test]
    fn start_after_from() {
        let run = run(TREE, "/folder1", Some("/folder1-suffix"), &[]);
        assert!(run.paths().is_empty());
        assert!(run.walk.nothing_to_walk());
        assert_eq!(run.walk.list_start_after(), None);
        // The fallback does not look at `from` then, so even a missing one is no error.
        let missing = FlatWalk::new("/folder0", Some("/folder1"));
        assert!(missing.nothing_to_walk());
        assert_eq!(missing.root_not_found(), Some(false));
    }

    #[test]
    fn start_matches_from() {
        let run = run(TREE, "/folder3", Some("/folder3"), &[]);
        assert_eq!(run.paths(), &after("/folder3")[1..7]);
        assert_eq!(run.walk.list_start_after(), None);
    }

    #[test]
    fn start_does_not_exist() {
        let run = run(TREE, "/folder3", Some("/folder3/notafolder/notafile"), &[]);
        assert_eq!(run.paths(), &after("/folder3")[1..7]);
    }

    #[test]
    fn stop_early_is_the_callers_job() {
        let mut walk = FlatWalk::new("/", None);
        let mut keys = TREE.to_vec();
        keys.sort();
        for key in keys {
            walk.push(key.to_string(), 1, 1);
        }
        walk.finish();
        let mut seen = Vec::new();
        while let Some(e) = walk.next_ready() {
            seen.push(e.path.clone());
            if e.path == "/folder1/file1" {
                break;
            }
        }
        assert_eq!(seen, ["/file1", "/folder1", "/folder1/file1"]);
    }

    #[test]
    fn from_folder() {
        assert_eq!(run(TREE, "/folder1", None, &[]).paths(), ["/folder1/file1"]);
        assert_eq!(run(TREE, "/folder1/", None, &[]).paths(), ["/folder1/file1"]);
    }

    #[test]
    fn start_after_values() {
        let sa = |from: &str, hint: Option<&str>| FlatWalk::new(from, hint).list_start_after();
        assert_eq!(sa("/", None), None);
        assert_eq!(sa("/", Some("")), None);
        assert_eq!(sa("/", Some("/")), None);
        assert_eq!(sa("/", Some("/a")), Some("/a".into()));
        assert_eq!(sa("/", Some("/a/")), Some("/a".into()));
        assert_eq!(sa("/", Some("/folder1/file1")), Some("/folder1".into()));
        assert_eq!(sa("/folder3", Some("/folder3/subfolder1/subfolder1/file1")), Some("/folder3/subfolder1".into()));
        assert_eq!(sa("/folder3", Some("/folder3")), None);
        assert_eq!(sa("/folder3", Some("/folder2/x")), None);
        assert_eq!(sa("/folder3", Some("/folder4")), None);
        // Never the root's own key: SeaweedFS returns nothing after an ancestor of the prefix.
        let map = KeyMap::new("zot");
        assert_eq!(map.key(&sa("/", Some("/a/b")).unwrap()), "zot/a");
    }

    #[test]
    fn suffix_sibling_waits_for_the_subtree() {
        let mut walk = FlatWalk::new("/", None);
        let ready = |walk: &mut FlatWalk| std::iter::from_fn(|| walk.next_ready()).map(|e| e.path).collect::<Vec<_>>();
        walk.push("/file1".into(), 1, 1);
        assert_eq!(ready(&mut walk), ["/file1"]);
        walk.push("/folder1-suffix/file1".into(), 1, 1);
        assert!(ready(&mut walk).is_empty());
        walk.push("/folder1/file1".into(), 1, 1);
        assert_eq!(ready(&mut walk), ["/folder1", "/folder1/file1"]);
        // `/folder1/...` keys may still come until the listing passes `/folder10`.
        walk.push("/folder1/file2".into(), 1, 1);
        assert_eq!(ready(&mut walk), ["/folder1/file2"]);
        walk.push("/folder2/file1".into(), 1, 1);
        assert_eq!(ready(&mut walk), ["/folder1-suffix", "/folder1-suffix/file1", "/folder2", "/folder2/file1"]);
        walk.finish();
        assert!(ready(&mut walk).is_empty());
        assert!(walk.is_done());
    }

    #[test]
    fn tags_under_skip() {
        let objects = [
            "/tags/1.2/current/link",
            "/tags/1.2.1/current/link",
            "/tags/1.20/current/link",
            "/tags/1.2-rc/current/link",
        ];
        let all = run(&objects, "/", None, &[]);
        assert_eq!(
            all.paths(),
            [
                "/tags",
                "/tags/1.2",
                "/tags/1.2/current",
                "/tags/1.2/current/link",
                "/tags/1.2-rc",
                "/tags/1.2-rc/current",
                "/tags/1.2-rc/current/link",
                "/tags/1.2.1",
                "/tags/1.2.1/current",
                "/tags/1.2.1/current/link",
                "/tags/1.20",
                "/tags/1.20/current",
                "/tags/1.20/current/link",
            ]
        );
        // `/tags/1.20` and `/tags/1.2.1` are not under `/tags/1.2`; a skip on a file changes nothing.
        let skipped = run(&objects, "/tags", None, &["/tags/1.2", "/tags/1.20/current/link"]);
        assert_eq!(
            skipped.paths(),
            [
                "/tags/1.2",
                "/tags/1.2-rc",
                "/tags/1.2-rc/current",
                "/tags/1.2-rc/current/link",
                "/tags/1.2.1",
                "/tags/1.2.1/current",
                "/tags/1.2.1/current/link",
                "/tags/1.20",
                "/tags/1.20/current",
                "/tags/1.20/current/link",
            ]
        );
        // The catalog's pagination: after `1.2`, its subtree is not walked again, `1.2-rc` is.
        let late = run(&objects, "/tags", Some("/tags/1.2/current/link"), &[]);
        assert_eq!(late.paths()[0], "/tags/1.2-rc");
        assert_eq!(late.walk.list_start_after().as_deref(), Some("/tags/1.2"));
    }

    #[test]
    fn marker_objects() {
        let objects = ["/a/_uploads/", "/a/b", "/c/_uploads/", "/c/_uploads/u1/data", "/d/", "/d/e/"];
        let run = run(&objects, "/", None, &[]);
        assert_eq!(
            run.paths(),
            ["/a", "/a/_uploads", "/a/b", "/c", "/c/_uploads", "/c/_uploads/u1", "/c/_uploads/u1/data", "/d", "/d/e"]
        );
        let dirs: Vec<_> = run.entries.iter().filter(|e| e.is_dir).map(|e| e.path.as_str()).collect();
        assert_eq!(dirs, ["/a", "/a/_uploads", "/c", "/c/_uploads", "/c/_uploads/u1", "/d", "/d/e"]);
        // An empty directory exists but walks to nothing.
        let empty = self::run(&objects, "/a/_uploads", None, &[]);
        assert!(empty.paths().is_empty());
        assert!(empty.walk.saw_any());
        assert_eq!(empty.walk.root_not_found(), Some(false));
    }

    #[test]
    fn keys_without_a_regstore_path_are_ignored() {
        let mut walk = FlatWalk::new("/", None);
        for p in ["//x", "/a//b", "/b", "/c/", "/elsewhere"] {
            walk.push(p.into(), 1, 1);
        }
        let mut outside = FlatWalk::new("/c", None);
        outside.push("/b/x".into(), 1, 1);
        outside.push("/c".into(), 1, 1);
        outside.finish();
        assert!(!outside.saw_any());
        assert_eq!(outside.root_not_found(), Some(true));
        walk.finish();
        let paths: Vec<_> = std::iter::from_fn(|| walk.next_ready()).map(|e| e.path).collect();
        assert_eq!(paths, ["/b", "/c", "/elsewhere"]);
    }

    #[test]
    fn repeated_keys_walk_once() {
        let mut walk = FlatWalk::new("/", None);
        for p in ["/a/x", "/a/x", "/b", "/a/x", "/b"] {
            walk.push(p.into(), 1, 1);
            while walk.next_ready().is_some_and(|e| e.path != "/b") {}
        }
        walk.finish();
        assert!(walk.next_ready().is_none() && walk.is_done());
    }

    #[test]
    fn missing_roots() {
        let missing = run(TREE, "/nothing", None, &[]);
        assert!(!missing.walk.saw_any());
        assert_eq!(missing.walk.root_not_found(), Some(true));
        let root = run(&[], "/", None, &[]);
        assert_eq!(root.walk.root_not_found(), Some(false));
        // After a StartAfter, an empty listing says nothing about what lies before it.
        let last = run(TREE, "/folder4", Some("/folder4/file1"), &[]);
        assert!(last.paths().is_empty());
        assert_eq!(last.walk.root_not_found(), None);
    }

    #[test]
    fn batches_give_the_same_walk() {
        let hints = [None, Some("/folder1/file1"), Some("/folder1"), Some("/folder3/subfolder1")];
        for hint in hints {
            for skip in [&[][..], &["/folder1", "/folder3/subfolder1"][..]] {
                let whole = run_in("", TREE, "/", hint, skip, usize::MAX);
                for batch in 1..=TREE.len() {
                    assert_eq!(run_in("r", TREE, "/", hint, skip, batch).paths(), whole.paths());
                }
            }
        }
    }

    #[test]
    fn without_suffix_siblings_nothing_waits() {
        let mut keys: Vec<String> = (0..50).map(|i| format!("/r{}/x{}/f{i}", i % 5, i % 3)).collect();
        keys.sort();
        let mut walk = FlatWalk::new("/", None);
        let mut seen = 0;
        for key in keys {
            walk.push(key.clone(), 1, 1);
            let ready: Vec<_> = std::iter::from_fn(|| walk.next_ready()).collect();
            assert_eq!(ready.last().map(|e| &e.path), Some(&key), "{key} waited");
            assert!(walk.pending.is_empty() && walk.out.is_empty());
            seen += ready.len();
        }
        walk.finish();
        assert!(walk.is_done());
        assert_eq!(seen, 50 + 5 + 15);
    }

    /// A small xorshift, so the property test needs no dependency and is reproducible.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn path(&mut self, depth: usize) -> String {
            const NAMES: &[&str] = &["a", "a-b", "a.b", "b", "1.2", "1.20"];
            (0..depth).map(|_| format!("/{}", NAMES[self.below(NAMES.len())])).collect()
        }
    }

    /// The reference walk: every directory and file under `from`, sorted by components, after the
    /// hint, without the subtrees of skipped directories.
    fn reference(objects: &[String], from: &str, hint: Option<&str>, skip_on: &[String]) -> Vec<String> {
        let prefix = if from == "/" { "/".to_string() } else { format!("{from}/") };
        let mut all = std::collections::BTreeSet::new();
        for object in objects.iter().filter(|o| o.starts_with(&prefix)) {
            let parts: Vec<&str> = object[1..].split('/').collect();
            for depth in 1..parts.len() {
                all.insert(format!("/{}", parts[..depth].join("/")));
            }
            if !object.ends_with('/') {
                all.insert(object.clone());
            }
        }
        let components = |p: &str| p.split('/').map(str::to_string).collect::<Vec<_>>();
        let mut sorted: Vec<String> = all.into_iter().filter(|p| p.len() > prefix.len()).collect();
        sorted.sort_by_key(|p| components(p));
        let hint = hint.map(|h| if h.len() > 1 { h.trim_end_matches('/') } else { h }).filter(|h| !h.is_empty());
        let mut skip: Option<String> = None;
        let mut out = Vec::new();
        for p in sorted {
            if hint.is_some_and(|h| components(&p) <= components(h)) || skip.as_ref().is_some_and(|s| p.starts_with(s))
            {
                continue;
            }
            if skip_on.contains(&p) {
                skip = Some(format!("{p}/"));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn random_trees_match_the_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let mut objects: Vec<String> = (0..1 + rng.below(10))
                .map(|_| {
                    let depth = 1 + rng.below(3);
                    let path = rng.path(depth);
                    if rng.below(6) == 0 { path + "/" } else { path }
                })
                .collect();
            objects.sort();
            objects.dedup();
            // A name is a file or a directory, not both.
            let all = objects.clone();
            objects.retain(|o| o.ends_with('/') || !all.iter().any(|x| x.starts_with(&format!("{o}/"))));
            let from = match rng.below(3) {
                0 => "/".to_string(),
                n => rng.path(n),
            };
            let hint = match rng.below(4) {
                0 => None,
                _ => {
                    let depth = 1 + rng.below(4);
                    let h = rng.path(depth);
                    Some(if rng.below(5) == 0 { h + "/" } else { h })
                }
            };
            let skip_on: Vec<String> = (0..rng.below(3))
                .map(|_| {
                    let depth = 1 + rng.below(3);
                    rng.path(depth)
                })
                .collect();
            let refs: Vec<&str> = objects.iter().map(String::as_str).collect();
            let skips: Vec<&str> = skip_on.iter().map(String::as_str).collect();
            let expected = reference(&objects, &from, hint.as_deref(), &skip_on);
            let batch = 1 + rng.below(4);
            let root = ["", "/", "s3/prefix"][rng.below(3)];
            let whole = run_in(root, &refs, &from, hint.as_deref(), &skips, usize::MAX);
            let paged = run_in(root, &refs, &from, hint.as_deref(), &skips, batch);
            let why = format!("case {case}: objects {objects:?}, from {from}, hint {hint:?}, skip {skip_on:?}");
            assert_eq!(whole.paths(), expected, "{why}");
            assert_eq!(paged.paths(), expected, "{why}, batches of {batch}");
            // D9 as the fallback: missing `from` fails unless it is `/` or the hint is after it.
            let prefix = if from == "/" { "/".to_string() } else { format!("{from}/") };
            let exists = objects.iter().any(|o| o.starts_with(&prefix));
            let not_found = paged.walk.root_not_found().unwrap_or(!exists);
            let expected_not_found = !exists && from != "/" && !paged.walk.nothing_to_walk();
            assert_eq!(not_found, expected_not_found, "{why}");
        }
    }
}
