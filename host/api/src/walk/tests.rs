//! The fallback against a test double, as distribution's walk_test.go: the double answers `list`
//! with path-not-found for anything without children, files included. The eleven tree cases run
//! against every driver in the conformance suite.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::*;
use crate::{Error, FileReader, FileWriter};

/// Files by path; `vanished` are listed but gone by the time they are stat'ed.
struct Double {
    files: BTreeMap<String, ()>,
    vanished: Vec<String>,
}

impl Double {
    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
        let mut out: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| format!("{prefix}{}", rest.split('/').next().unwrap()))
            .chain(self.vanished.iter().filter(|v| parent(v) == dir).cloned())
            .collect();
        out.dedup();
        out
    }
}

#[async_trait]
impl StorageDriver for Double {
    fn name(&self) -> &str {
        "double"
    }
    async fn get_content(&self, _: &str) -> Result<Vec<u8>> {
        unimplemented!()
    }
    async fn put_content(&self, _: &str, _: &[u8]) -> Result<()> {
        unimplemented!()
    }
    async fn reader(&self, _: &str, _: i64) -> Result<Box<dyn FileReader>> {
        unimplemented!()
    }
    async fn writer(&self, _: &str, _: bool) -> Result<Box<dyn FileWriter>> {
        unimplemented!()
    }
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let is_dir = !self.children(path).is_empty();
        if !is_dir && !self.files.contains_key(path) {
            return Err(Error::not_found("double", path));
        }
        Ok(FileInfo { path: path.into(), size: 0, modified: SystemTime::UNIX_EPOCH, is_dir })
    }
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let children = self.children(path);
        if children.is_empty() {
            return Err(Error::not_found("double", path));
        }
        Ok(children)
    }
    async fn move_file(&self, _: &str, _: &str) -> Result<()> {
        unimplemented!()
    }
    async fn delete(&self, _: &str) -> Result<()> {
        unimplemented!()
    }
    async fn redirect_url(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
    async fn walker(&self, path: &str, start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        let this = Arc::new(Double { files: self.files.clone(), vanished: self.vanished.clone() });
        Ok(Box::new(FallbackWalker::new(this, path, start_after)))
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn walk_file_removed() {
    // TestWalkFileRemoved: List gives zoidberg and bender, Stat(bender) is path-not-found.
    let double = Double { files: BTreeMap::from([("/zoidberg".into(), ())]), vanished: vec!["/bender".into()] };
    let mut seen = Vec::new();
    block_on(double.walk("/", None, &mut |fi| {
        seen.push(fi.path.clone());
        Ok(WalkControl::Continue)
    }))
    .unwrap();
    assert_eq!(seen, ["/zoidberg"]);
}

#[test]
fn plan_levels_follow_the_hint_upwards() {
    let levels: Vec<(String, Option<String>)> =
        plan("/", Some("/folder3/subfolder1/subfolder1/file1")).into_iter().map(|l| (l.dir, l.hint)).collect();
    assert_eq!(levels.len(), 5);
    assert_eq!(levels[0].0, "/folder3/subfolder1/subfolder1/file1");
    assert_eq!(levels[3], ("/folder3".into(), Some("/folder3/subfolder1".into())));
    assert_eq!(levels[4], ("/".into(), Some("/folder3".into())));
    assert!(plan("/folder1", Some("/folder1-suffix")).is_empty());
    assert_eq!(plan("/folder1", Some("/a")).len(), 1);
}

#[test]
fn missing_root_is_not_found_even_with_a_hint() {
    let double = Double { files: BTreeMap::from([("/a/b".into(), ())]), vanished: vec![] };
    for hint in [None, Some("/nope/x")] {
        let err = block_on(double.walk("/nope", hint, &mut |_| Ok(WalkControl::Continue))).unwrap_err();
        assert!(err.is_not_found(), "{hint:?}: {err}");
    }
}
