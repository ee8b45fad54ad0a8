//! Object-store keys under a `rootdirectory`, for the s3, azure and gcs drivers (the "Layout"
//! section of each page in docs/drivers/).

/// Maps absolute regstore paths to object keys under a root prefix, and back.
#[derive(Debug, Clone)]
pub struct KeyMap {
    /// The root's key, without leading or trailing '/': "" or "s3/object/name/prefix".
    root: String,
}

impl KeyMap {
    /// `""`, `"/"`, `"/a/b/"` and `"a/b"` are all accepted.
    pub fn new(rootdirectory: &str) -> Self {
        KeyMap { root: rootdirectory.trim_matches('/').to_string() }
    }

    /// The key of `path`: `/a/b` gives `a/b` or `root/a/b`; `/` gives the root's key. A trailing '/'
    /// is kept, so marker keys map too.
    pub fn key(&self, path: &str) -> String {
        let rel = path.trim_start_matches('/');
        if self.root.is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    /// The prefix of every key under `path`: `/` gives `""` or `root/`; `/a` gives `a/` or `root/a/`.
    pub fn dir_prefix(&self, path: &str) -> String {
        let key = self.key(path.trim_end_matches('/'));
        if key.is_empty() { key } else { key + "/" }
    }

    /// The path of `key`, always with a leading '/'; `None` for a key outside the root.
    pub fn path(&self, key: &str) -> Option<String> {
        if self.root.is_empty() {
            return Some(format!("/{key}"));
        }
        let rest = key.strip_prefix(self.root.as_str())?;
        if rest.is_empty() {
            Some("/".into())
        } else if rest.starts_with('/') {
            Some(rest.to_string())
        } else {
            // Shares the root's text but not its directory, e.g. `rootx/a` under `root`.
            None
        }
    }
}

impl KeyMap {
    /// The sorted, distinct paths of the direct children of the directory whose keys start with
    /// `prefix`, from the names of a delimited listing (keys and common prefixes, the latter
    /// with their trailing '/'). A marker key (`dir/`) stands for the directory itself and is
    /// never an empty name.
    pub fn children(&self, prefix: &str, names: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut children: Vec<String> = names
            .into_iter()
            .filter_map(|name| {
                let name = name.trim_end_matches('/');
                (name.len() > prefix.len()).then(|| self.path(name)).flatten()
            })
            .collect();
        children.sort();
        children.dedup();
        children
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(KeyMap::new("").key("/a/b"), "a/b");
        assert_eq!(KeyMap::new("/s3/object/name/prefix").key("/a"), "s3/object/name/prefix/a");
        assert_eq!(KeyMap::new("").key("/"), "");
        assert_eq!(KeyMap::new("/s3/prefix").key("/"), "s3/prefix");
        assert_eq!(KeyMap::new("").dir_prefix("/"), "");
        assert_eq!(KeyMap::new("").dir_prefix("/a"), "a/");
        assert_eq!(KeyMap::new("s3/prefix").dir_prefix("/"), "s3/prefix/");
        assert_eq!(KeyMap::new("s3/prefix").dir_prefix("/a"), "s3/prefix/a/");
        assert_eq!(KeyMap::new("s3/prefix").path("s3/prefix/a/b").as_deref(), Some("/a/b"));
    }

    #[test]
    fn root_spellings_agree() {
        for root in ["a/b", "/a/b", "/a/b/", "a/b/", "//a/b//"] {
            let map = KeyMap::new(root);
            assert_eq!(map.key("/x/y"), "a/b/x/y", "root {root:?}");
            assert_eq!(map.dir_prefix("/x"), "a/b/x/", "root {root:?}");
            assert_eq!(map.path("a/b/x/y").as_deref(), Some("/x/y"), "root {root:?}");
        }
    }

    /// Upstream's TestEmptyRootList: roots "" and "/" give paths that start with '/'.
    #[test]
    fn empty_roots_give_absolute_paths() {
        for root in ["", "/"] {
            let map = KeyMap::new(root);
            assert_eq!(map.key("/test/test1"), "test/test1");
            assert_eq!(map.path("test/test1").as_deref(), Some("/test/test1"));
            assert_eq!(map.path("").as_deref(), Some("/"));
            assert_eq!(map.path("a/_uploads/").as_deref(), Some("/a/_uploads/"));
        }
    }

    #[test]
    fn keys_outside_the_root() {
        let map = KeyMap::new("/s3/prefix");
        assert_eq!(map.path("s3/prefixed/a"), None);
        assert_eq!(map.path("other/a"), None);
        assert_eq!(map.path("s3"), None);
        assert_eq!(map.path("s3/prefix").as_deref(), Some("/"));
        assert_eq!(map.path("s3/prefix/").as_deref(), Some("/"));
        assert_eq!(map.path("s3/prefix/a/_uploads/").as_deref(), Some("/a/_uploads/"));
    }

    #[test]
    fn children_of_a_delimited_listing() {
        let map = KeyMap::new("root");
        let names = ["root/a/b", "root/a/c/", "root/a/", "root/a/b", "root/a/-x"].map(String::from);
        assert_eq!(map.children("root/a/", names), ["/a/-x", "/a/b", "/a/c"]);
    }

    #[test]
    fn round_trips() {
        for root in ["", "/", "zot", "/s3/object/name/prefix/"] {
            let map = KeyMap::new(root);
            for path in ["/", "/a", "/a/b", "/docker/registry/v2/repositories/x-y/_uploads/1.2", "/a/_uploads/"] {
                assert_eq!(map.path(&map.key(path)).as_deref(), Some(path), "root {root:?}");
                if path != "/" && !path.ends_with('/') {
                    // Everything under the path starts with its prefix; siblings sharing its text do not.
                    assert!(map.key(&format!("{path}/c")).starts_with(&map.dir_prefix(path)));
                    assert!(!map.key(&format!("{path}-c")).starts_with(&map.dir_prefix(path)));
                }
            }
            assert!(map.key("/a").starts_with(&map.dir_prefix("/")));
        }
    }
}
