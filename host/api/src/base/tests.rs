use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use super::*;
use crate::WalkControl;

/// A driver that answers the way a careless third party might: unsorted lists, errors under
/// another name, no native walk; and that counts how many calls run at once.
#[derive(Default)]
struct Careless {
    files: Mutex<Vec<String>>,
    running: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

#[async_trait]
impl StorageDriver for Careless {
    fn name(&self) -> &str {
        "careless"
    }
    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Err(Error::not_found("somebody-else", path))
    }
    async fn put_content(&self, path: &str, _: &[u8]) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.files.lock().unwrap().push(path.into());
        Ok(())
    }
    async fn reader(&self, _: &str, _: i64) -> Result<Box<dyn FileReader>> {
        unreachable!("the tests never reach the driver's reader")
    }
    async fn writer(&self, _: &str, _: bool) -> Result<Box<dyn FileWriter>> {
        Err(Error::other("io", "disk on fire"))
    }
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let files = self.files.lock().unwrap();
        let is_dir = path == "/" || files.iter().any(|f| f.starts_with(&format!("{path}/")));
        if !is_dir && !files.iter().any(|f| f == path) {
            return Err(Error::not_found("x", path));
        }
        Ok(FileInfo { path: path.into(), size: 0, modified: SystemTime::UNIX_EPOCH, is_dir })
    }
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
        let mut children: Vec<String> = Vec::new();
        for f in self.files.lock().unwrap().iter() {
            if let Some(rest) = f.strip_prefix(&prefix) {
                let child = format!("{prefix}{}", rest.split('/').next().unwrap());
                if !children.contains(&child) {
                    children.push(child);
                }
            }
        }
        if children.is_empty() && path != "/" {
            return Err(Error::not_found("x", path));
        }
        children.reverse();
        Ok(children)
    }
    async fn move_file(&self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn redirect_url(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
    async fn walker(&self, _: &str, _: Option<&str>) -> Result<Box<dyn Walker>> {
        Err(Error::Unsupported { driver: "x".into() })
    }
}

#[tokio::test]
async fn invalid_input_never_reaches_the_driver() {
    let base = Base::new(Careless::default());
    for bad in ["", "/", "a", "/a/../b", "/a//b"] {
        let e = base.put_content(bad, b"x").await.unwrap_err();
        assert_eq!(e, Error::InvalidPath { driver: "careless".into(), path: bad.into() });
    }
    // The offset first, as distribution.
    let e = base.reader("bad", -1).await.err().unwrap();
    assert_eq!(e.to_string(), "careless: invalid offset: -1 for path: bad");
    assert!(base.move_file("/a", "b").await.is_err());
    assert!(base.stat("/").await.is_ok(), "stat accepts the root");
    assert_eq!(base.inner().calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn errors_carry_the_drivers_name() {
    let base = Base::new(Careless::default());
    assert_eq!(base.get_content("/a").await.unwrap_err().to_string(), "careless: Path not found: /a");
    assert_eq!(base.writer("/a", false).await.err().unwrap().to_string(), "careless: disk on fire");
}

#[tokio::test]
async fn lists_are_sorted_and_walks_fall_back() {
    let base = Base::new(Careless::default());
    for p in ["/b/x", "/a", "/b-c", "/b/y/z"] {
        base.put_content(p, b"").await.unwrap();
    }
    assert_eq!(base.list("/").await.unwrap(), ["/a", "/b", "/b-c"]);
    let mut seen = Vec::new();
    base.walk("/", None, &mut |fi| {
        seen.push(fi.path.clone());
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    assert_eq!(seen, ["/a", "/b", "/b/x", "/b/y", "/b/y/z", "/b-c"]);
    let e = base.walker("/missing", None).await.unwrap().next().await.unwrap_err();
    assert_eq!(e.to_string(), "careless: Path not found: /missing");
}

#[tokio::test]
async fn the_regulator_bounds_concurrent_calls() {
    let base = Arc::new(Base::new(Careless::default()).with_max_concurrent_calls(3));
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move { base.get_content(&format!("/f{i}")).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_err());
    }
    assert_eq!(base.inner().calls.load(Ordering::SeqCst), 12);
    assert_eq!(base.inner().most.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn calls_are_measured_under_distributions_names() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles bind to the recorder in place when the driver is wrapped.
    let base = metrics::with_local_recorder(&recorder, || Base::new(Careless::default()));
    base.put_content("/a/b", b"12345").await.unwrap();
    base.stat("/a/b").await.unwrap();
    base.stat("/missing").await.unwrap_err();
    base.get_content("/a/b").await.unwrap_err();
    base.writer("/w", false).await.err().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Histogram(samples) => samples.len() as f64,
            DebugValue::Gauge(g) => g.into_inner(),
        };
        if value > 0.0 {
            seen.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
        }
    }
    let expected = [
        ("registry_storage_action_seconds{driver=careless,action=PutContent}", 1.0),
        ("registry_storage_action_seconds{driver=careless,action=Stat}", 2.0),
        ("registry_storage_action_seconds{driver=careless,action=GetContent}", 1.0),
        ("registry_storage_errors_total{driver=careless,action=Stat}", 1.0),
        ("registry_storage_errors_total{driver=careless,action=GetContent}", 1.0),
        ("registry_storage_errors_total{driver=careless,action=Writer}", 1.0),
        ("registry_storage_written_bytes_total{driver=careless}", 5.0),
    ];
    let expected: std::collections::BTreeMap<String, f64> = expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(seen, expected, "Writer is not timed, as in distribution");
}
