//! The s3 driver against a real moto server (docs/testing.md) that this binary installs on
//! first use (`scripts/emulators install moto`), starts on a free loopback port, and stops at the
//! end: the conformance suite (`s3::TestList`, ...) with a fresh `rootdirectory` per test, and
//! distribution's S3-specific tests with regstore's decisions, checked through a
//! native aws-sdk-s3 client where the driver alone cannot tell.
//!
//! If moto cannot be installed or started, every trial fails with the reason, unless
//! `REGSTORE_SKIP_EMULATORS=1` (outside CI) reports them as ignored
//! (`regstore_testsuite::emulators::require_emulator`).

#[path = "support/bench.rs"]
mod bench;
#[path = "support/cloud.rs"]
mod cloud;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/registry_tree.rs"]
mod registry_tree;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use regstore::{
    Capabilities, Driver, Error, ErrorKind, FileWriter, Params, Registry, Sandbox, StorageDriver, WalkControl,
};
use regstore_testsuite::emulators::s3_client;
use regstore_testsuite::emulators::{MOTO_VERSION, Moto};
use regstore_testsuite::util::{Context, Failure, expect_error, random_contents};
// walk_test.go's tree, and its pre-order in regstore's component-wise order (D2).
use regstore_testsuite::walk::{PRE_ORDER, TREE};
use regstore_testsuite::{Config, DriverFactory, ensure, ensure_eq};

use cloud::{Specific, Suite};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const MIB: usize = 1 << 20;
/// distribution's minimum chunk size, which its S3 suite uses.
const CHUNK_SIZE: usize = 5 * MIB;
/// TestWriteReadLargeStreams against moto, which keeps everything in memory (distribution: 5 GiB).
const LARGE_STREAM: u64 = 256 << 20;

/// What the trials share once moto runs.
struct Env {
    endpoint: String,
    /// moto's address, for fault-injecting proxies in front of it.
    upstream: std::net::SocketAddr,
    /// A proxy that gives 10 % of requests a fault, for the conformance suite's `s3-faults` run.
    faulty: proxy::Proxy,
    /// The faults it has given.
    faults_given: Arc<AtomicU64>,
    bucket: String,
    registry: Registry,
    /// The s3 component registered as a third party's file, `s3file`, and its folder.
    file_registry: tokio::sync::OnceCell<Registry>,
    file_dir: OnceLock<tempfile::TempDir>,
    native: aws_sdk_s3::Client,
    next_root: AtomicU64,
}

impl Drop for Env {
    fn drop(&mut self) {
        let (faults, requests) = (self.faults_given.load(Ordering::Relaxed), self.faulty.requests());
        if requests > 0 {
            println!("s3: the s3-faults run's proxy gave {faults} faults in {requests} requests");
        }
    }
}

impl Env {
    /// A fresh root directory, `/regstore-test-N`.
    fn fresh_root(&self) -> String {
        format!("/regstore-test-{}", self.next_root.fetch_add(1, Ordering::SeqCst))
    }

    /// The suite's parameters for a driver rooted at `root` in `bucket`.
    fn params_in(&self, bucket: &str, root: &str) -> Params {
        params(json!({
            "regionendpoint": self.endpoint,
            "region": REGION,
            "bucket": bucket,
            "forcepathstyle": true,
            "accesskey": "a",
            "secretkey": "b",
            "chunksize": CHUNK_SIZE,
            "rootdirectory": root,
        }))
    }

    fn params(&self, root: &str) -> Params {
        self.params_in(&self.bucket, root)
    }

    async fn create(&self, params: &Params) -> Result<Driver, Failure> {
        self.registry.create("s3", params).await.map_err(|e| format!("creating the s3 driver: {e}"))
    }

    /// A driver over a fresh root, and that root.
    async fn fresh(&self) -> Result<(Driver, String), Failure> {
        let root = self.fresh_root();
        Ok((self.create(&self.params(&root)).await?, root))
    }
}

fn params(value: Value) -> Params {
    value.as_object().cloned().expect("an object")
}

/// The S3 key of `path` under `root`, as the driver maps it (docs/drivers/s3.md, Layout).
fn key(root: &str, path: &str) -> String {
    format!("{}{path}", root.trim_end_matches('/')).trim_start_matches('/').to_string()
}

fn sdk<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> Failure + '_ {
    move |e| format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
}

/// Checks that `List("/")` is empty, as distribution's TearDownTest requires.
async fn ensure_clean(d: &Driver) -> Result<(), Failure> {
    let left = d.list("/").await.ctx("List(\"/\") after the test")?;
    ensure!(left.is_empty(), "the test left content behind: List(\"/\") = {left:?}");
    Ok(())
}

async fn write_all(w: &mut dyn FileWriter, mut data: &[u8]) -> Result<(), Failure> {
    while !data.is_empty() {
        let n = w.write(&data[..data.len().min(MIB)]).await.ctx("Write")?;
        ensure!(n > 0, "Write accepted nothing");
        data = &data[n..];
    }
    Ok(())
}

/// The multipart uploads in progress whose key starts with `prefix`: (key, upload id).
async fn uploads_in_progress(env: &Env, prefix: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    loop {
        let page = env
            .native
            .list_multipart_uploads()
            .bucket(&env.bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .map_err(sdk("ListMultipartUploads"))?;
        for u in page.uploads() {
            out.push((u.key().unwrap_or_default().to_string(), u.upload_id().unwrap_or_default().to_string()));
        }
        if !page.is_truncated().unwrap_or(false) {
            return Ok(out);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        id_marker = page.next_upload_id_marker().map(str::to_string);
    }
}

/// The sizes of the parts of an upload in progress, by part number.
async fn upload_part_sizes(env: &Env, key: &str, upload_id: &str) -> Result<Vec<i64>, Failure> {
    let mut parts = Vec::new();
    let mut marker = None::<String>;
    loop {
        let page = env
            .native
            .list_parts()
            .bucket(&env.bucket)
            .key(key)
            .upload_id(upload_id)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .map_err(sdk("ListParts"))?;
        for p in page.parts() {
            parts.push((p.part_number().unwrap_or_default(), p.size().unwrap_or_default()));
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        marker = page.next_part_number_marker().map(str::to_string);
    }
    parts.sort();
    Ok(parts.into_iter().map(|(_, size)| size).collect())
}

/// The sizes of the parts a completed object was assembled from (HeadObject with a part
/// number), or `None` when it was not a multipart upload.
async fn object_part_sizes(env: &Env, key: &str) -> Result<Option<Vec<i64>>, Failure> {
    let head = |n: i32| env.native.head_object().bucket(&env.bucket).key(key).part_number(n).send();
    let first = head(1).await.map_err(sdk("HeadObject(partNumber=1)"))?;
    let Some(count) = first.parts_count() else { return Ok(None) };
    let mut sizes = vec![first.content_length().unwrap_or_default()];
    for n in 2..=count {
        sizes.push(head(n).await.map_err(sdk("HeadObject(partNumber)"))?.content_length().unwrap_or_default());
    }
    Ok(Some(sizes))
}

/// S3's and R2's rules for the parts of one upload: every part but the last is at least 5 MiB,
/// and all of them have the same size (upstream's resume copied the whole object as part 1).
fn check_parts(sizes: &[i64], what: &str) -> Result<(), Failure> {
    if let Some((_, non_last)) = sizes.split_last() {
        ensure!(
            non_last.iter().all(|&s| s >= CHUNK_SIZE as i64 && s == non_last[0]),
            "{what}: the parts other than the last must be equal and at least 5 MiB, got sizes {sizes:?}"
        );
    }
    Ok(())
}

// ---- distribution's S3 tests and regstore's S3 decisions ----

/// Drivers rooted at "" and at "/" must report valid paths (with a leading `/`). In a bucket of
/// its own, since those roots see the whole bucket.
async fn empty_root_list(env: Arc<Env>) -> Result<(), Failure> {
    let bucket = "regstore-empty-root";
    env.native.create_bucket().bucket(bucket).send().await.map_err(sdk("CreateBucket"))?;
    let root = env.fresh_root();
    let rooted = env.create(&env.params_in(bucket, &root)).await?;
    rooted.put_content("/test", b"contents").await.ctx("PutContent(/test)")?;
    let mut failures = Vec::new();
    for top in ["", "/"] {
        let d = env.create(&env.params_in(bucket, top)).await?;
        let listed = d.list("/").await.ctx(&format!("List(\"/\") with rootdirectory {top:?}"))?;
        if listed != [root.clone()] {
            failures.push(format!("rootdirectory {top:?}: List(\"/\") = {listed:?}, expected [{root:?}]"));
        }
        let mut walked = Vec::new();
        d.walk("/", None, &mut |fi| {
            walked.push(fi.path.clone());
            Ok(WalkControl::Continue)
        })
        .await
        .ctx(&format!("Walk(\"/\") with rootdirectory {top:?}"))?;
        let expected = vec![root.clone(), format!("{root}/test")];
        if walked != expected {
            failures.push(format!("rootdirectory {top:?}: Walk(\"/\") = {walked:?}, expected {expected:?}"));
        }
        for p in listed.iter().chain(&walked) {
            if !regstore_api::path::is_valid(p) {
                failures.push(format!("rootdirectory {top:?}: invalid path {p:?}"));
            }
        }
        let got = d.get_content(&format!("{root}/test")).await.ctx("GetContent through the top-level root")?;
        ensure!(got == b"contents", "GetContent through rootdirectory {top:?} returned {got:?}");
    }
    rooted.delete("/test").await.ctx("Delete(/test)")?;
    ensure_clean(&rooted).await?;
    let top = env.create(&env.params_in(bucket, "")).await?;
    ensure_eq!(top.list("/").await.ctx("List(\"/\") of the emptied bucket")?, Vec::<String>::new(), "List(\"/\")");
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// distribution's TestDelete: 16 cases over 10 objects; a delete never touches a sibling that
/// merely shares the prefix (D6).
async fn delete(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    const OBJECTS: [&str; 10] = [
        "/file1",
        "/file1-2",
        "/folder1/file1",
        "/folder2/file1",
        "/folder3/file1",
        "/folder3/subfolder1/subfolder1/file1",
        "/folder3/subfolder2/subfolder1/file1",
        "/folder4/file1",
        "/folder1-v2/file1",
        "/folder1-v2/subfolder1/file1",
    ];
    let folder3 =
        vec!["/folder3/file1", "/folder3/subfolder1/subfolder1/file1", "/folder3/subfolder2/subfolder1/file1"];
    let mut cases: Vec<(String, &str, Vec<&str>, Option<ErrorKind>)> = vec![
        ("delete folder1".into(), "/folder1", vec!["/folder1/file1"], None),
        ("delete folder2".into(), "/folder2", vec!["/folder2/file1"], None),
        ("delete folder3".into(), "/folder3", folder3, None),
        ("delete path that doesn't exist".into(), "/path/does/not/exist", vec![], Some(ErrorKind::PathNotFound)),
        ("delete path invalid: trailing slash".into(), "/path/is/invalid/", vec![], Some(ErrorKind::InvalidPath)),
        (
            "delete path invalid: trailing special character".into(),
            "/path/is/invalid*",
            vec![],
            Some(ErrorKind::InvalidPath),
        ),
    ];
    for p in OBJECTS {
        cases.push((format!("delete path:'{p}'"), p, vec![p], None));
    }
    ensure_eq!(cases.len(), 16, "the number of cases");
    let mut issues = Vec::new();
    for (name, target, expected, error) in &cases {
        for p in OBJECTS {
            d.put_content(p, format!("content {p}").as_bytes()).await.ctx(&format!("{name}: PutContent({p})"))?;
        }
        let result = d.delete(target).await;
        match (error, result) {
            (None, Err(e)) => issues.push(format!("{name}: unexpected error: {e}")),
            (Some(kind), Ok(())) => issues.push(format!("{name}: expected a {kind:?} error, got success")),
            (Some(kind), Err(e)) if e.kind() != *kind => {
                issues.push(format!("{name}: expected a {kind:?} error, got {:?}: {e}", e.kind()))
            }
            _ => {}
        }
        for p in OBJECTS {
            match d.stat(p).await {
                Err(e) if e.is_not_found() => {
                    if !expected.contains(&p) {
                        issues.push(format!("{name}: unexpected path was deleted: {p}"));
                    }
                }
                Err(e) => return Err(format!("{name}: Stat({p}): {e}")),
                Ok(fi) if !fi.is_dir && expected.contains(&p) => {
                    issues.push(format!("{name}: expected path was not deleted: {p}"))
                }
                Ok(_) => {}
            }
        }
    }
    for p in OBJECTS {
        match d.delete(p).await {
            Err(e) if !e.is_not_found() => return Err(format!("cleanup: Delete({p}): {e}")),
            _ => {}
        }
    }
    ensure_clean(&d).await?;
    ensure!(issues.is_empty(), "{}", issues.join("; "));
    Ok(())
}

/// An empty-directory marker key (`…/_uploads/`, made by other tools) must never surface as a
/// path with an empty last component (upstream's PurgeUploads crashed on it).
async fn walk_empty_uploads_dir(env: Arc<Env>) -> Result<(), Failure> {
    let (d, root) = env.fresh().await?;
    let layer = "/docker/registry/v2/repositories/foo/_layers/sha256/abcd/link";
    d.put_content(layer, b"sha256:abcd").await.ctx("PutContent(link)")?;
    d.put_content("/docker/registry/v2/blobs/sha256/ab/abcd/data", b"blob").await.ctx("PutContent(data)")?;
    let marker = key(&root, "/docker/registry/v2/repositories/foo/_uploads/");
    env.native
        .put_object()
        .bucket(&env.bucket)
        .key(&marker)
        .body(Vec::new().into())
        .send()
        .await
        .map_err(sdk("PutObject of the marker"))?;
    let mut walked = Vec::new();
    let result = d
        .walk("/docker/registry/v2", None, &mut |fi| {
            walked.push(fi.path.clone());
            Ok(WalkControl::Continue)
        })
        .await;
    let cleanup = d.delete("/docker").await;
    let _ = env.native.delete_object().bucket(&env.bucket).key(&marker).send().await;
    result.ctx("Walk(/docker/registry/v2)")?;
    cleanup.ctx("Delete(/docker)")?;
    let bad: Vec<&String> = walked.iter().filter(|p| p.ends_with('/') || !regstore_api::path::is_valid(p)).collect();
    ensure!(bad.is_empty(), "the walk reported paths with an empty last component: {bad:?} (all: {walked:?})");
    ensure!(walked.iter().any(|p| p == layer), "the walk missed {layer}: {walked:?}");
    ensure_clean(&d).await
}

/// What a walk function answers for a path (`Err` stands for an error of its own).
type Answer = fn(&str) -> Result<WalkControl, ()>;
/// One TestWalk case: name, from, hint, the walk function, the entries expected in order, and
/// whether the walk fails.
type WalkCase = (&'static str, &'static str, Option<&'static str>, Answer, Vec<&'static str>, bool);

/// distribution's S3 TestWalk cases, with regstore's order (D2), and no ancestor re-emitted in
/// "start late without from".
async fn walk(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    for p in TREE {
        d.put_content(p, format!("content {p}").as_bytes()).await.ctx(&format!("PutContent({p})"))?;
    }
    let from = |start: &str| PRE_ORDER.iter().skip_while(|p| **p != start).copied().collect::<Vec<_>>();
    let under = |dir: &str| PRE_ORDER.iter().filter(|p| p.starts_with(&format!("{dir}/"))).copied().collect::<Vec<_>>();
    let go: Answer = |_| Ok(WalkControl::Continue);
    let cases: Vec<WalkCase> = vec![
        ("walk all", "/", None, go, PRE_ORDER.to_vec(), false),
        (
            "skip directory",
            "/",
            None,
            |p| Ok(if p == "/folder3" { WalkControl::SkipDir } else { WalkControl::Continue }),
            PRE_ORDER.iter().filter(|p| !p.starts_with("/folder3/")).copied().collect(),
            false,
        ),
        (
            "start late without from",
            "/",
            Some("/folder3/subfolder1/subfolder1/file1"),
            go,
            from("/folder3/subfolder2"),
            false,
        ),
        (
            "start late with from",
            "/folder3",
            Some("/folder3/subfolder1/subfolder1/file1"),
            go,
            from("/folder3/subfolder2").into_iter().filter(|p| p.starts_with("/folder3/")).collect(),
            false,
        ),
        ("start after from", "/folder1", Some("/folder2"), go, vec![], false),
        ("start matches from", "/folder3", Some("/folder3"), go, under("/folder3"), false),
        ("start doesn't exist", "/folder3", Some("/folder3/notafolder/notafile"), go, under("/folder3"), false),
        (
            "stop early",
            "/",
            None,
            |p| Ok(if p == "/folder1/file1" { WalkControl::Stop } else { WalkControl::Continue }),
            vec!["/file1", "/folder1", "/folder1/file1"],
            false,
        ),
        ("error", "/", None, |_| Err(()), vec!["/file1"], true),
        ("from folder", "/folder1", None, go, vec!["/folder1/file1"], false),
    ];
    let mut issues = Vec::new();
    for (name, start, hint, answer, expected, fails) in cases {
        let mut walked = Vec::new();
        let mut bad_info = Vec::new();
        let result = d
            .walk(start, hint, &mut |fi| {
                walked.push(fi.path.clone());
                let is_file = TREE.contains(&fi.path.as_str());
                let size = if is_file { format!("content {}", fi.path).len() as u64 } else { 0 };
                if fi.is_dir == is_file || (is_file && fi.size != size) {
                    bad_info.push(format!("{} (is_dir {}, size {})", fi.path, fi.is_dir, fi.size));
                }
                answer(&fi.path).map_err(|()| Error::other("test", "foo"))
            })
            .await;
        match (fails, result) {
            (false, Err(e)) => issues.push(format!("{name}: unexpected error: {e}")),
            (true, Ok(())) => issues.push(format!("{name}: expected the walk function's error, got success")),
            (true, Err(e)) if e != Error::other("test", "foo") => {
                issues.push(format!("{name}: expected the walk function's error as it is, got {e}"))
            }
            _ => {}
        }
        if walked != expected {
            issues.push(format!("{name}: walked {walked:?}, expected {expected:?}"));
        }
        if !bad_info.is_empty() {
            issues.push(format!("{name}: wrong FileInfo for {bad_info:?}"));
        }
    }
    for top in ["/file1", "/folder1", "/folder1-suffix", "/folder2", "/folder3", "/folder4"] {
        d.delete(top).await.ctx(&format!("Delete({top})"))?;
    }
    ensure_clean(&d).await?;
    ensure!(issues.is_empty(), "{}", issues.join("; "));
    Ok(())
}

/// 1005 files in one directory: List and Delete must page past 1000 keys.
async fn over_thousand_blobs(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let results: Vec<Result<(), Error>> = futures::stream::iter(0..1005)
        .map(|i| {
            let d = d.clone();
            async move { d.put_content(&format!("/thousandfiletest/file{i}"), b"contents").await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r.ctx("PutContent")?;
    }
    let listed = d.list("/thousandfiletest").await.ctx("List(/thousandfiletest)")?;
    ensure_eq!(listed.len(), 1005, "the number of files listed");
    d.delete("/thousandfiletest").await.ctx("Delete(/thousandfiletest)")?;
    expect_error(d.stat("/thousandfiletest").await, ErrorKind::PathNotFound, d.name(), "Stat after the Delete")?;
    ensure_clean(&d).await
}

/// Move of an object above `multipartcopythresholdsize` (5 MiB here, to stay fast): a multipart
/// copy of ceil(size / multipartcopychunksize) parts; nothing left in progress.
async fn move_with_multipart_copy(env: Arc<Env>) -> Result<(), Failure> {
    let root = env.fresh_root();
    let mut p = env.params(&root);
    p.insert("multipartcopythresholdsize".into(), json!(5 * MIB));
    p.insert("multipartcopychunksize".into(), json!(5 * MIB));
    let d = env.create(&p).await?;
    let contents = random_contents(2 * 5 * MIB + 1234);
    d.put_content("/source", &contents).await.ctx("PutContent(/source)")?;
    d.move_file("/source", "/dest").await.ctx("Move(/source, /dest)")?;
    let got = d.get_content("/dest").await.ctx("GetContent(/dest)")?;
    let parts = object_part_sizes(&env, &key(&root, "/dest")).await;
    let source = d.get_content("/source").await;
    let left = uploads_in_progress(&env, &key(&root, "/")).await;
    d.delete("/dest").await.ctx("Delete(/dest)")?;
    ensure!(got == contents, "the moved content differs ({} bytes read, {} written)", got.len(), contents.len());
    expect_error(source, ErrorKind::PathNotFound, d.name(), "GetContent(/source) after the Move")?;
    let left = left?;
    ensure!(left.is_empty(), "multipart uploads left in progress after the Move: {left:?}");
    match parts? {
        Some(sizes) => ensure_eq!(sizes.len(), 3, "the number of parts of the copy (sizes {sizes:?})"),
        None => return Err("the destination was not assembled by a multipart copy".into()),
    }
    ensure_clean(&d).await
}

/// distribution's TestListObjectsV2: Stat, List and Walk over 6 files and a subdirectory.
async fn list_objects_v2(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let prefix = "/test-list-objects-v2";
    let files: Vec<String> = (0..6).map(|i| format!("{prefix}/{i}")).collect();
    for p in &files {
        d.put_content(p, p.as_bytes()).await.ctx(&format!("PutContent({p})"))?;
    }
    let fi = d.stat(&files[0]).await.ctx("Stat")?;
    ensure!(!fi.is_dir && fi.size == files[0].len() as u64 && fi.path == files[0], "Stat({}) = {fi:?}", files[0]);
    let sub = format!("{prefix}/sub/0");
    d.put_content(&sub, sub.as_bytes()).await.ctx("PutContent(sub/0)")?;
    let mut expected: Vec<String> = files.clone();
    expected.push(format!("{prefix}/sub"));
    ensure_eq!(d.list(prefix).await.ctx("List")?, expected, "List (sorted, D11)");
    let mut walked = Vec::new();
    let mut bad = Vec::new();
    d.walk(prefix, None, &mut |fi| {
        walked.push(fi.path.clone());
        let dir = fi.path == format!("{prefix}/sub");
        if fi.is_dir != dir || (!dir && fi.size != fi.path.len() as u64) {
            bad.push(fi.clone());
        }
        Ok(WalkControl::Continue)
    })
    .await
    .ctx("Walk")?;
    expected.push(sub);
    ensure_eq!(walked, expected, "Walk (component-wise, D2)");
    ensure!(bad.is_empty(), "unexpected FileInfo from the walk: {bad:?}");
    d.delete(prefix).await.ctx("Delete")?;
    ensure_clean(&d).await
}

/// `storageclass` NONE, STANDARD and REDUCED_REDUNDANCY: GetObject reports the class, except for
/// STANDARD, which S3 does not report.
async fn storage_class(env: Arc<Env>) -> Result<(), Failure> {
    use aws_sdk_s3::types::StorageClass;
    let root = env.fresh_root();
    let mut last = None;
    for class in ["NONE", "STANDARD", "REDUCED_REDUNDANCY"] {
        let mut p = env.params(&root);
        p.insert("storageclass".into(), json!(class));
        let d = env.create(&p).await?;
        let path = format!("/test-{class}");
        d.put_content(&path, b"contents").await.ctx(&format!("PutContent with storage class {class}"))?;
        let object = env.native.get_object().bucket(&env.bucket).key(key(&root, &path)).send().await;
        d.delete(&path).await.ctx("Delete")?;
        let object = object.map_err(sdk("GetObject"))?;
        let got = object.storage_class().cloned();
        match class {
            "STANDARD" => ensure!(got.is_none(), "storage class STANDARD: GetObject reported {got:?}"),
            "REDUCED_REDUNDANCY" => ensure_eq!(got, Some(StorageClass::ReducedRedundancy), "storage class of {path}"),
            _ => {}
        }
        last = Some(d);
    }
    ensure_clean(&last.expect("three drivers")).await
}

/// A writer resumed by two later driver instances with the same parameters (the registry's
/// chunked upload across requests): sizes, content, and S3's part rules on what is stored.
async fn resume_across_instances(env: Arc<Env>) -> Result<(), Failure> {
    let root = env.fresh_root();
    let p = env.params(&root);
    let path = "/uploads/resumed";
    let object = key(&root, path);
    let data = random_contents(11 * MIB + 1);
    let check_open = |when: &'static str| {
        let (env, object) = (env.clone(), object.clone());
        async move {
            for (k, id) in uploads_in_progress(&env, &object).await? {
                if k == object {
                    check_parts(&upload_part_sizes(&env, &k, &id).await?, &format!("{when}, upload {id}"))?;
                }
            }
            Ok::<(), Failure>(())
        }
    };

    let a = env.create(&p).await?;
    let mut w = a.writer(path, false).await.ctx("Writer on instance A")?;
    write_all(&mut *w, &data[..7 * MIB]).await?;
    w.close().await.ctx("Close on instance A")?;
    drop((w, a));
    check_open("after A's Close").await?;

    let b = env.create(&p).await?;
    let mut w = b.writer(path, true).await.ctx("Writer(append) on instance B")?;
    ensure_eq!(w.size(), 7 * MIB as u64, "Size on resuming on instance B");
    write_all(&mut *w, &data[7 * MIB..11 * MIB]).await?;
    w.close().await.ctx("Close on instance B")?;
    drop((w, b));
    check_open("after B's Close").await?;

    let c = env.create(&p).await?;
    let mut w = c.writer(path, true).await.ctx("Writer(append) on instance C")?;
    ensure_eq!(w.size(), 11 * MIB as u64, "Size on resuming on instance C");
    write_all(&mut *w, &data[11 * MIB..]).await?;
    w.commit().await.ctx("Commit on instance C")?;
    w.close().await.ctx("Close after Commit")?;
    drop(w);

    let got = c.get_content(path).await.ctx("GetContent")?;
    let parts = object_part_sizes(&env, &object).await;
    let left = uploads_in_progress(&env, &object).await;
    c.delete("/uploads").await.ctx("Delete")?;
    ensure!(
        got == data,
        "GetContent returned {} bytes that differ from the {} written in order",
        got.len(),
        data.len()
    );
    if let Some(sizes) = parts? {
        check_parts(&sizes, "the committed object")?;
    }
    let left = left?;
    ensure!(left.is_empty(), "multipart uploads left in progress after Commit: {left:?}");
    ensure_clean(&c).await
}

/// D4: appending to committed, non-empty content is refused with an error of kind other that
/// names the path, and the content stays as it was.
async fn append_to_committed_is_refused(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let path = "/committed/blob";
    let content = random_contents(64);
    d.put_content(path, &content).await.ctx("PutContent")?;
    let result = d.writer(path, true).await.map(|_| ());
    let got = d.get_content(path).await.ctx("GetContent");
    d.delete("/committed").await.ctx("Delete")?;
    let e = expect_error(result, ErrorKind::Other, d.name(), "Writer(append) on committed content")?;
    ensure!(e.to_string().contains(path), "the error must name the path {path}: {e}");
    ensure!(got? == content, "a refused append changed the content");
    ensure_clean(&d).await
}

/// RedirectURL: presigned GET and HEAD URLs that work as they are (D10); none for PUT.
async fn redirect_url(env: Arc<Env>) -> Result<(), Failure> {
    let (d, _) = env.fresh().await?;
    let path = "/redirect/blob";
    let content = random_contents(4321);
    d.put_content(path, &content).await.ctx("PutContent")?;
    let outcome = async {
        let client = regstore_testsuite::util::http_client(&[])?;
        let get = d.redirect_url("GET", path).await.ctx("RedirectURL(GET)")?.ok_or("RedirectURL(GET) gave no URL")?;
        let response = client.get(&get).send().await.map_err(|e| format!("GET {get}: {e}"))?;
        ensure_eq!(response.status().as_u16(), 200, "the status of GET {get}");
        let body = response.bytes().await.map_err(|e| format!("reading GET {get}: {e}"))?;
        ensure!(body[..] == content[..], "GET {get} returned {} bytes that differ from the content", body.len());
        let head =
            d.redirect_url("HEAD", path).await.ctx("RedirectURL(HEAD)")?.ok_or("RedirectURL(HEAD) gave no URL")?;
        let response = client.head(&head).send().await.map_err(|e| format!("HEAD {head}: {e}"))?;
        ensure_eq!(response.status().as_u16(), 200, "the status of HEAD {head}");
        let length = response.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_string);
        ensure_eq!(length, Some(content.len().to_string()), "Content-Length of HEAD {head}");
        let put = d.redirect_url("PUT", path).await.ctx("RedirectURL(PUT)")?;
        ensure!(put.is_none(), "RedirectURL(PUT) must give no URL, got {put:?}");
        Ok::<(), Failure>(())
    }
    .await;
    d.delete("/redirect").await.ctx("Delete")?;
    outcome?;
    ensure_clean(&d).await
}

/// Bad parameters are refused with invalid-parameter errors and distribution's texts.
async fn parameters(env: Arc<Env>) -> Result<(), Failure> {
    let base = env.params(&env.fresh_root());
    env.create(&base).await.map_err(|e| format!("the suite's own parameters: {e}"))?;
    let with = |changes: &[(&str, Option<Value>)]| {
        let mut p = base.clone();
        for (k, v) in changes {
            match v {
                Some(v) => p.insert(k.to_string(), v.clone()),
                None => p.remove(*k),
            };
        }
        p
    };
    let cases: Vec<(&str, Params, &str)> = vec![
        ("missing bucket", with(&[("bucket", None)]), "no bucket parameter provided"),
        (
            "missing region without regionendpoint",
            with(&[("region", None), ("regionendpoint", None)]),
            "no region parameter provided",
        ),
        ("chunksize 1", with(&[("chunksize", Some(json!(1)))]), "chunksize"),
        ("storageclass bogus", with(&[("storageclass", Some(json!("bogus")))]), "storageclass"),
        ("objectacl bogus", with(&[("objectacl", Some(json!("bogus")))]), "objectacl"),
        ("v4auth false", with(&[("v4auth", Some(json!(false)))]), "v4"),
        (
            "redirectendpoint with a path",
            with(&[("redirectendpoint", Some(json!("http://127.0.0.1:1/base")))]),
            "redirectendpoint cannot contain a base path",
        ),
    ];
    let mut issues = Vec::new();
    for (name, p, text) in cases {
        let result = env.registry.create("s3", &p).await.map(|_| ());
        match expect_error(result, ErrorKind::InvalidParameter, "s3", name) {
            Ok(e) if !e.to_string().contains(text) => issues.push(format!("{name}: the error must say {text:?}: {e}")),
            Ok(_) => {}
            Err(why) => issues.push(why),
        }
    }
    ensure!(issues.is_empty(), "{}", issues.join("; "));
    Ok(())
}

/// The bundled s3 driver is granted its endpoint's authority alone. The same component loaded
/// as a third party's file gets it only when the operator grants it: without, `open` fails
/// naming the authority and the flag; with it, it works.
async fn grants(env: Arc<Env>) -> Result<(), Failure> {
    let params = env.params(&env.fresh_root());
    let port = env.endpoint.rsplit(':').next().unwrap_or_default().to_string();
    let authority = format!("127.0.0.1:{port}");
    let plan = env.registry.plan("s3", &params, &Sandbox::default()).await.ctx("plan")?;
    ensure!(plan.trusted, "a bundled driver is trusted");
    ensure_eq!(plan.grants.ctx("grants")?.hosts, vec![authority.clone()], "the bundled grant: the endpoint only");

    let (registry, _file) = s3_file_registry().await?;
    let e = registry.create("s3file", &params).await.err().ok_or("a third-party s3 opened without its grant")?;
    let text = e.to_string();
    ensure_eq!(e.kind(), ErrorKind::NotGranted, "the kind of the error ({text})");
    for part in [format!("--allow-host {authority}"), "--memory-limit 4096".into(), "--deadline 900".into()] {
        ensure!(text.contains(&part), "the error must name {part}: {text}");
    }
    let d = registry.create_with("s3file", &params, s3_file_grants(&port)).await.ctx("with its grants")?;
    expect_error(d.stat("/missing").await.map(|_| ()), ErrorKind::PathNotFound, d.name(), "Stat")?;
    Ok(())
}

/// A registry holding the bundled s3 component as a third party's file, `s3file`.
async fn s3_file_registry() -> Result<(Registry, tempfile::TempDir), Failure> {
    let wasm = regstore_bundled::get("s3").ok_or("no bundled s3")?.wasm;
    let dir = tempfile::tempdir().ctx("a temporary directory")?;
    let file = dir.path().join("s3file.wasm");
    std::fs::write(&file, wasm).ctx("writing the component file")?;
    let registry = Registry::empty();
    registry.register_file(None, &file).await.ctx("registering the s3 component file")?;
    Ok((registry, dir))
}

/// What an operator grants the s3 component loaded from a file: its endpoint, and what it
/// declares it needs for a large multipart upload.
fn s3_file_grants(port: &str) -> Sandbox {
    Sandbox {
        hosts: vec![format!("127.0.0.1:{port}")],
        memory_limit: Some(4 << 30),
        call_deadline: Some(Duration::from_secs(900)),
        ..Sandbox::default()
    }
}

/// `regstore stat` against a loopback port where nothing listens fails fast, naming the
/// endpoint, without a panic (the issue's acceptance: within 10 seconds).
async fn unreachable_endpoint(_env: Arc<Env>) -> Result<(), Failure> {
    let port = regstore_testsuite::emulators::free_port().map_err(|e| format!("a free port: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let region_endpoint = format!("regionendpoint={endpoint}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_regstore"))
            .args(["stat", "--driver", "s3", "--param", &region_endpoint])
            .args(["--param", "region=us-east-1", "--param", "bucket=b", "--param", "forcepathstyle=true"])
            .args(["--param", "accesskey=a", "--param", "secretkey=b", "/docker"])
            .output()
    })
    .await
    .map_err(|e| format!("running regstore: {e}"))?
    .map_err(|e| format!("running regstore: {e}"))?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "stat against a dead endpoint must fail");
    ensure!(stderr.contains(&endpoint), "the error must name {endpoint}: {stderr}");
    ensure!(!stderr.contains("panicked"), "regstore panicked: {stderr}");
    ensure!(took < Duration::from_secs(10), "took {took:?} (limit 10 s): {stderr}");
    Ok(())
}

/// `redirectendpoint` replaces the scheme and host of redirect URLs before they are signed:
/// here another name for the same moto, so the URL must still work.
async fn redirect_endpoint(env: Arc<Env>) -> Result<(), Failure> {
    let root = env.fresh_root();
    let mut params = env.params(&root);
    let other = env.endpoint.replace("127.0.0.1", "localhost");
    params.insert("redirectendpoint".into(), json!(other));
    let d = env.create(&params).await?;
    let content = random_contents(100);
    d.put_content("/r/blob", &content).await.ctx("PutContent")?;
    let outcome = async {
        let url = d.redirect_url("GET", "/r/blob").await.ctx("RedirectURL")?.ok_or("no URL")?;
        ensure!(url.starts_with(&format!("{other}/")), "the URL must start with {other}/: {url}");
        let client = regstore_testsuite::util::http_client(&[])?;
        let body = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?.bytes().await;
        ensure!(body.map_err(|e| e.to_string())?[..] == content[..], "GET {url} returned other bytes");
        Ok::<(), Failure>(())
    }
    .await;
    d.delete("/r").await.ctx("Delete")?;
    outcome?;
    ensure_clean(&d).await
}

/// The s3 driver's own code built natively (`regstore_native`), each over a fresh root.
fn native_factory(env: Arc<Env>) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move { regstore_native::open_boxed("s3", &env.params(&env.fresh_root())) })
    })
}

/// distribution's documented configuration example (its s3 section, reserved keys and storage
/// middleware), pointed at moto, works through `regstore stat --config`, and a
/// `REGISTRY_STORAGE_S3_*` variable changes the parameter it names.
async fn config_file(env: Arc<Env>) -> Result<(), Failure> {
    const PREFIX: &str = "/s3/object/name/prefix";
    let driver = env.create(&env.params(PREFIX)).await?;
    driver.put_content("/probe", b"documented").await.map_err(|e| e.to_string())?;
    let other = format!("{}-other", env.bucket);
    env.native.create_bucket().bucket(&other).send().await.map_err(sdk("CreateBucket"))?;
    let example = format!(
        "storage:\n  s3:\n    accesskey: a\n    secretkey: b\n    region: us-west-1\n    regionendpoint: {}\n    \
         forcepathstyle: true\n    accelerate: false\n    bucket: {}\n    encrypt: true\n    keyid: mykeyid\n    \
         secure: true\n    v4auth: true\n    chunksize: 5242880\n    multipartcopychunksize: 33554432\n    \
         multipartcopymaxconcurrency: 100\n    multipartcopythresholdsize: 33554432\n    rootdirectory: {PREFIX}\n    \
         usefipsendpoint: false\n    loglevel: debug\n  delete:\n    enabled: false\n  cache:\n    \
         blobdescriptor: inmemory\n    blobdescriptorsize: 10000\n  maintenance:\n    uploadpurging:\n      \
         enabled: true\n      age: 168h\n      interval: 24h\n      dryrun: false\n    readonly:\n      \
         enabled: false\n  redirect:\n    disable: false\nmiddleware:\n  storage:\n    - name: cloudfront\n      \
         options:\n        baseurl: https://my.cloudfronted.domain.com/\n        privatekey: /path/to/pem\n        \
         keypairid: cloudfrontkeypairid\n        duration: 3000s\n        ipfilteredby: awsregion\n        \
         awsregion: \"us-east-1, use-east-2\"\n        updatefrequency: 12h\n        \
         iprangesurl: https://ip-ranges.amazonaws.com/ip-ranges.json\n",
        env.endpoint, env.bucket
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("config.yml");
    std::fs::write(&file, example).map_err(|e| e.to_string())?;
    let file = file.display().to_string();
    let stat = move |bucket: Option<String>| {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"));
            command.args(["stat", "--config", &file, "/probe", "--json"]).env_remove("REGISTRY_STORAGE");
            if let Some(bucket) = bucket {
                command.env("REGISTRY_STORAGE_S3_BUCKET", bucket);
            }
            command.output()
        })
    };
    let out = stat(None).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ensure!(out.status.success(), "stat --config: {stderr}");
    let info: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    ensure_eq!((&info["path"], &info["size"]), (&json!("/probe"), &json!(10)), "stat --config --json");
    // The override points it at the other bucket, where there is no such object.
    let out = stat(Some(other)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ensure!(!out.status.success() && stderr.contains("Path not found: /probe"), "with the override: {stderr}");
    driver.delete("/probe").await.map_err(|e| e.to_string())?;
    Ok(())
}

/// `regstore copy` filesystem → s3 (moto) → filesystem of a registry's tree of a few hundred
/// objects (384 MiB in CI; `REGSTORE_COPY_TRIAL_MIB` sets it): killed half-way and run again,
/// it finishes and skips what was done; the copy back, verified, is identical to the source.
async fn copy_registry(env: Arc<Env>) -> Result<(), Failure> {
    let mib: u64 = std::env::var("REGSTORE_COPY_TRIAL_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(384);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (source, back) = (dir.path().join("source"), dir.path().join("back"));
    registry_tree::write(&source, &registry_tree::sizes(mib << 20, 150)).map_err(|e| e.to_string())?;
    let objects = registry_tree::files(&source).len();
    let root = env.fresh_root();
    let write_config = |name: &str, text: String| -> Result<String, Failure> {
        let file = dir.path().join(name);
        std::fs::write(&file, text).map_err(|e| e.to_string())?;
        Ok(file.display().to_string())
    };
    let fs_config =
        |root: &std::path::Path| format!("storage:\n  filesystem:\n    rootdirectory: {}\n", root.display());
    let from = write_config("from.yml", fs_config(&source))?;
    let back_config = write_config("back.yml", fs_config(&back))?;
    let s3 = write_config(
        "s3.yml",
        format!(
            "storage:\n  s3:\n    regionendpoint: {}\n    region: {REGION}\n    bucket: {}\n    forcepathstyle: true\n    \
             accesskey: a\n    secretkey: b\n    rootdirectory: {root}\n  delete:\n    enabled: true\n",
            env.endpoint, env.bucket
        ),
    )?;
    let copy = |from: &str, to: &str, extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"));
        command.args(["copy", "--from", from, "--to", to, "--json"]).args(extra);
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        command
    };

    // Killed once about a third of the objects are there.
    let mut child = copy(&from, &s3, &[]).spawn().map_err(|e| e.to_string())?;
    let prefix = key(&root, "/");
    let mut there = 0;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        there = objects_under(&env, &prefix).await?;
        if there >= objects / 3 {
            child.kill().map_err(|e| e.to_string())?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.wait();
    ensure!(there > 0 && there < objects, "the kill came at {there} of {objects} objects");

    let out = tokio::task::spawn_blocking(move || copy(&from, &s3, &[]).output()).await.map_err(|e| e.to_string())?;
    let out = out.map_err(|e| e.to_string())?;
    ensure!(out.status.success(), "the resumed copy: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let (copied, skipped) = (summary["copied"].as_u64().unwrap_or(0), summary["skipped"].as_u64().unwrap_or(0));
    ensure_eq!(summary["objects"].as_u64(), Some(objects as u64), "objects in the summary");
    ensure!(copied + skipped == objects as u64 && skipped >= there as u64, "resumed: {summary}");
    ensure_eq!(summary["failed"], json!([]), "failures");
    let rate = |summary: &Value| {
        summary["copied_bytes"].as_f64().unwrap_or(0.0) / 1048576.0 / summary["seconds"].as_f64().unwrap_or(1.0)
    };
    eprintln!(
        "s3: copy of {objects} objects, {mib} MiB, filesystem to s3 resumed after a kill at {there}: {copied} copied at {:.0} MiB/s",
        rate(&summary)
    );

    let s3 = dir.path().join("s3.yml").display().to_string();
    let out = tokio::task::spawn_blocking(move || copy(&s3, &back_config, &["--verify"]).output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    ensure!(out.status.success(), "the copy back: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    ensure_eq!(
        (summary["copied"].as_u64(), summary["verified"].as_u64()),
        (Some(objects as u64), Some(objects as u64)),
        "{summary}"
    );
    eprintln!("s3: copy back to filesystem with --verify at {:.0} MiB/s", rate(&summary));
    registry_tree::same_trees(&source, &back)?;
    Ok(())
}

/// The objects under `prefix` in the suite's bucket, outside the staging folder.
async fn objects_under(env: &Env, prefix: &str) -> Result<usize, Failure> {
    let mut count = 0;
    let mut token = None::<String>;
    loop {
        let page = env
            .native
            .list_objects_v2()
            .bucket(&env.bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(sdk("ListObjectsV2"))?;
        count += page.contents().iter().filter(|o| !o.key().unwrap_or_default().contains("regstore-staging")).count();
        match page.next_continuation_token() {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(count),
        }
    }
}

/// A driver over a fresh root whose requests go through `proxy`, and that root.
async fn behind(env: &Env, proxy: &proxy::Proxy, extra: Value) -> Result<(Driver, String), Failure> {
    let root = env.fresh_root();
    let mut params = env.params(&root);
    params.insert("regionendpoint".into(), json!(proxy.endpoint));
    params.extend(extra.as_object().cloned().unwrap_or_default());
    Ok((env.create(&params).await?, root))
}

/// Reads all of `path` through a reader.
async fn read_all(d: &Driver, path: &str) -> Result<Vec<u8>, Failure> {
    let mut reader = d.reader(path, 0).await.ctx("Reader")?;
    let mut out = Vec::new();
    while let Some(chunk) = reader.read_chunk().await.ctx("reading")? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Round trips of 1–20 MiB, by PutContent and by a multipart writer in turn, through a proxy
/// that gives 10 % of requests a fault (close, 500, 503, cut after applying, cut mid-body):
/// none may fail, every object must read back whole, and no multipart upload may be left.
async fn fault_round_trips(env: Arc<Env>) -> Result<(), Failure> {
    let trips: usize = std::env::var("REGSTORE_FAULT_ROUND_TRIPS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let given = Arc::new(AtomicU64::new(0));
    let proxy = proxy::Proxy::start(env.upstream, proxy::random_faults(10, 7, given.clone())).await?;
    let (d, root) = behind(&env, &proxy, json!({})).await?;
    let started = std::time::Instant::now();
    let (mut bytes, mut state) = (0usize, 0x5EED_u64);
    for trip in 0..trips {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let size = MIB + (state >> 33) as usize % (19 * MIB + 1);
        let content = random_contents(size);
        let path = format!("/trips/{trip}");
        if trip % 2 == 0 {
            d.put_content(&path, &content).await.ctx(&format!("PutContent {path} ({size} bytes)"))?;
        } else {
            let mut w = d.writer(&path, false).await.ctx(&format!("Writer {path}"))?;
            write_all(&mut *w, &content).await.map_err(|e| format!("writing {path} ({size} bytes): {e}"))?;
            w.commit().await.ctx(&format!("Commit {path}"))?;
        }
        let back = read_all(&d, &path).await.map_err(|e| format!("reading back {path}: {e}"))?;
        ensure!(back == content, "{path} read back {} bytes that differ from the {size} written", back.len());
        bytes += size;
    }
    let took = started.elapsed();
    let left = uploads_in_progress(&env, &key(&root, "/")).await?;
    ensure!(left.is_empty(), "uploads left behind: {left:?}");
    println!(
        "s3: {trips} round trips of 1-20 MiB ({} MiB) through 10 % faults: {} faults in {} requests, \
         0 failed, 0 corrupt, 0 uploads left, {:.1} s",
        bytes / MIB,
        given.load(Ordering::Relaxed),
        proxy.requests(),
        took.as_secs_f64()
    );
    d.delete("/trips").await.ctx("Delete")?;
    Ok(())
}

/// A rule that cuts, after applying, the first request `pick` selects while `armed`.
fn cut_once(armed: Arc<std::sync::atomic::AtomicBool>, pick: fn(&proxy::Head) -> bool) -> proxy::Rule {
    Arc::new(move |head: &proxy::Head| {
        if pick(head) && armed.swap(false, Ordering::SeqCst) {
            proxy::Action::CutAfterApplying
        } else {
            proxy::Action::Forward
        }
    })
}

fn starts_upload(h: &proxy::Head) -> bool {
    h.method == "POST" && h.target.contains("?uploads")
}

fn completes_upload(h: &proxy::Head) -> bool {
    h.method == "POST" && h.target.contains("uploadId=")
}

fn aborts_upload(h: &proxy::Head) -> bool {
    h.method == "DELETE" && h.target.contains("uploadId=")
}

/// The answers to CreateMultipartUpload, CompleteMultipartUpload and AbortMultipartUpload are
/// lost after S3 applied them: the writer still works, leaves no second upload behind (which a
/// later `Writer(path, true)` could pick up), and an abort of an upload already gone succeeds.
async fn lost_upload_answers(env: Arc<Env>) -> Result<(), Failure> {
    use std::sync::atomic::AtomicBool;
    let data = random_contents(7 * MIB);
    for (name, pick) in [("create", starts_upload as fn(&proxy::Head) -> bool), ("complete", completes_upload)] {
        let armed = Arc::new(AtomicBool::new(true));
        let proxy = proxy::Proxy::start(env.upstream, cut_once(armed.clone(), pick)).await?;
        let (d, root) = behind(&env, &proxy, json!({})).await?;
        let object = key(&root, "/blob");
        let mut w = d.writer("/blob", false).await.ctx(&format!("Writer, {name} cut"))?;
        let uploads = uploads_in_progress(&env, &object).await?;
        ensure_eq!(uploads.len(), 1, "uploads of the key after Writer with the {name} answer lost");
        write_all(&mut *w, &data).await?;
        w.commit().await.ctx(&format!("Commit, {name} cut"))?;
        ensure!(!armed.load(Ordering::SeqCst), "the {name} answer was never cut");
        ensure!(proxy.seen().iter().filter(|h| pick(h)).count() >= 2, "the {name} request was not sent again");
        ensure!(d.get_content("/blob").await.ctx("GetContent")? == data, "the content after a lost {name} answer");
        let left = uploads_in_progress(&env, &object).await?;
        ensure!(left.is_empty(), "uploads left after a lost {name} answer: {left:?}");
    }

    let armed = Arc::new(AtomicBool::new(true));
    let proxy = proxy::Proxy::start(env.upstream, cut_once(armed.clone(), aborts_upload)).await?;
    let (d, root) = behind(&env, &proxy, json!({})).await?;
    let mut w = d.writer("/cancelled", false).await.ctx("Writer")?;
    write_all(&mut *w, &data).await?;
    w.cancel().await.ctx("Cancel whose first answer was lost")?;
    ensure!(!armed.load(Ordering::SeqCst), "the abort's answer was never cut");
    let left = uploads_in_progress(&env, &key(&root, "/cancelled")).await?;
    ensure!(left.is_empty(), "uploads left after Cancel: {left:?}");
    Ok(())
}

/// A Move above the copy threshold copies its parts `multipartcopymaxconcurrency` at a time:
/// with every UploadPartCopy held 800 ms by the proxy, the first four arrive within 800 ms of
/// each other, which parts copied one after another cannot do.
async fn multipart_copy_is_concurrent(env: Arc<Env>) -> Result<(), Failure> {
    const HOLD: Duration = Duration::from_millis(800);
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::<std::time::Instant>::new()));
    let seen = arrivals.clone();
    let rule: proxy::Rule = Arc::new(move |h: &proxy::Head| {
        if h.method == "PUT" && h.header("x-amz-copy-source").is_some() && h.target.contains("partNumber=") {
            seen.lock().unwrap().push(std::time::Instant::now());
            proxy::Action::Delay(HOLD)
        } else {
            proxy::Action::Forward
        }
    });
    let proxy = proxy::Proxy::start(env.upstream, rule).await?;
    let limits = json!({
        "multipartcopychunksize": CHUNK_SIZE,
        "multipartcopythresholdsize": CHUNK_SIZE,
        "multipartcopymaxconcurrency": 8,
    });
    let (d, _) = behind(&env, &proxy, limits).await?;
    let content = random_contents(8 * CHUNK_SIZE);
    d.put_content("/from", &content).await.ctx("PutContent")?;
    let started = std::time::Instant::now();
    d.move_file("/from", "/to").await.ctx("Move")?;
    let took = started.elapsed();
    let arrivals = arrivals.lock().unwrap().clone();
    ensure_eq!(arrivals.len(), 8, "UploadPartCopy requests");
    let spread = arrivals[3].duration_since(arrivals[0]);
    ensure!(spread < HOLD, "the first four part copies arrived over {spread:?}: they were not in flight together");
    ensure!(d.get_content("/to").await.ctx("GetContent")? == content, "the moved content differs");
    println!("s3: a Move of 8 parts, each held {HOLD:?}: the first four within {spread:?}, {took:?} in all");
    Ok(())
}

/// An endpoint that accepts connections and never answers: a call fails within 30 s, naming the
/// endpoint, as an error of the driver, not a crash. By default one try waits 20 s for a first
/// byte and leaves no time for another; with `firstbytetimeout=2s`, tries go on until the 30 s
/// budget would be passed.
async fn silent_endpoint(env: Arc<Env>) -> Result<(), Failure> {
    let proxy = proxy::Proxy::start(env.upstream, Arc::new(|_: &proxy::Head| proxy::Action::Silent)).await?;
    for (extra, said) in [(json!({}), "within 20 s"), (json!({"firstbytetimeout": "2s"}), "within 2 s (tried")] {
        let limit = 30;
        let (d, _) = behind(&env, &proxy, extra.clone()).await?;
        let started = std::time::Instant::now();
        let e = d.stat("/anything").await.err().ok_or("stat against a silent endpoint succeeded")?;
        let took = started.elapsed();
        let text = e.to_string();
        ensure!(took < Duration::from_secs(limit), "with {extra}: took {took:?} (limit {limit} s): {text}");
        ensure!(e.kind() != ErrorKind::Crashed, "with {extra}: reported as a crash: {text}");
        ensure!(
            text.contains(&proxy.endpoint) && text.contains(&format!("did not answer {said}")),
            "with {extra}: {text}"
        );
        println!("s3: a silent endpoint with {extra} failed in {:.1} s: {text}", took.as_secs_f64());
    }
    Ok(())
}

async fn bench_against_native(env: Arc<Env>) -> Result<(), Failure> {
    bench::bench_against_native("s3", factory(env.clone(), false), native_factory(env)).await
}

/// distribution's S3-specific trials, then regstore's. distribution's S3 TestDelete
/// and a RedirectURL test share their names with tests of the shared suite: those two are
/// `TestS3…` here.
fn specific() -> Vec<(&'static str, Specific<Env>)> {
    vec![
        ("TestEmptyRootList", |e| Box::pin(empty_root_list(e))),
        ("TestS3Delete", |e| Box::pin(delete(e))),
        ("TestWalkEmptyUploadsDir", |e| Box::pin(walk_empty_uploads_dir(e))),
        ("TestWalk", |e| Box::pin(walk(e))),
        ("TestOverThousandBlobs", |e| Box::pin(over_thousand_blobs(e))),
        ("TestMoveWithMultipartCopy", |e| Box::pin(move_with_multipart_copy(e))),
        ("TestListObjectsV2", |e| Box::pin(list_objects_v2(e))),
        ("TestStorageClass", |e| Box::pin(storage_class(e))),
        ("TestResumeAcrossInstances", |e| Box::pin(resume_across_instances(e))),
        ("TestAppendToCommittedIsRefused", |e| Box::pin(append_to_committed_is_refused(e))),
        ("TestS3RedirectURL", |e| Box::pin(redirect_url(e))),
        ("TestParams", |e| Box::pin(parameters(e))),
        ("TestGrants", |e| Box::pin(grants(e))),
        ("TestUnreachableEndpoint", |e| Box::pin(unreachable_endpoint(e))),
        ("TestRedirectEndpoint", |e| Box::pin(redirect_endpoint(e))),
        ("TestFaultRoundTrips", |e| Box::pin(fault_round_trips(e))),
        ("TestLostUploadAnswers", |e| Box::pin(lost_upload_answers(e))),
        ("TestSilentEndpoint", |e| Box::pin(silent_endpoint(e))),
        ("TestMultipartCopyIsConcurrent", |e| Box::pin(multipart_copy_is_concurrent(e))),
        ("TestConfigFile", |e| Box::pin(config_file(e))),
        ("TestCopyRegistry", |e| Box::pin(copy_registry(e))),
        ("BenchAgainstNative", |e| Box::pin(bench_against_native(e))),
    ]
}

// ---- the harness ----

/// A fresh bundled driver per conformance test whose requests go through the faulty proxy.
/// Redirect URLs name moto itself: the suite fetches them with a client that does not retry.
fn faulty_factory(env: Arc<Env>) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            let mut params = env.params(&env.fresh_root());
            params.insert("regionendpoint".into(), json!(env.faulty.endpoint));
            params.insert("redirectendpoint".into(), json!(env.endpoint));
            Ok(Arc::new(env.registry.create("s3", &params).await?) as Arc<dyn StorageDriver>)
        })
    })
}

/// A fresh driver over a fresh root for each conformance test: the bundled s3 driver, or
/// (`as_file`) the same component loaded as a third party's file with the operator's grants.
fn factory(env: Arc<Env>, as_file: bool) -> DriverFactory {
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move {
            let params = env.params(&env.fresh_root());
            let driver = if as_file {
                let port = env.endpoint.rsplit(':').next().unwrap_or_default().to_string();
                let registry = env.file_registry.get().expect("registered at start");
                registry.create_with("s3file", &params, s3_file_grants(&port)).await?
            } else {
                env.registry.create("s3", &params).await?
            };
            Ok(Arc::new(driver) as Arc<dyn StorageDriver>)
        })
    })
}

/// What the s3 driver declares it can do (it does not depend on the parameters).
fn s3_capabilities(runtime: &tokio::runtime::Runtime) -> Capabilities {
    let params = params(json!({ "regionendpoint": "http://127.0.0.1:1", "region": REGION, "bucket": "b" }));
    runtime.block_on(Registry::new().describe("s3", &params)).expect("the s3 driver describes itself").capabilities
}

/// Starts moto and creates the suite's bucket.
fn start(runtime: &tokio::runtime::Runtime) -> Result<(Moto, Arc<Env>), String> {
    let moto = Moto::start()?;
    eprintln!(
        "s3: moto {MOTO_VERSION} ready on {} in {:.2} s (pid {}, log {})",
        moto.endpoint,
        moto.ready_in.as_secs_f64(),
        moto.pid(),
        moto.log().display()
    );
    let bucket = "regstore-test".to_string();
    runtime.block_on(moto.create_bucket(&bucket))?;
    let upstream: std::net::SocketAddr = ([127, 0, 0, 1], moto.port).into();
    let faults_given = Arc::new(AtomicU64::new(0));
    let faulty = runtime.block_on(proxy::Proxy::start(upstream, proxy::random_faults(10, 1, faults_given.clone())))?;
    let env = Env {
        endpoint: moto.endpoint.clone(),
        upstream,
        faulty,
        faults_given,
        native: s3_client::client(&moto.endpoint, REGION, "a", "b"),
        bucket,
        registry: Registry::new(),
        file_registry: tokio::sync::OnceCell::new(),
        file_dir: OnceLock::new(),
        next_root: AtomicU64::new(0),
    };
    let (file_registry, dir) = runtime.block_on(s3_file_registry())?;
    let _ = env.file_registry.set(file_registry);
    let _ = env.file_dir.set(dir);
    Ok((moto, Arc::new(env)))
}

fn main() {
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap());
    let suite = Suite {
        name: "s3",
        emulator: "moto (S3)",
        config: Config { large_stream_size: LARGE_STREAM, ..Config::default() },
        capabilities: s3_capabilities(&runtime),
        // The bundled driver, and the same component as a third party's file with its grants.
        // And the bundled driver behind a proxy that gives 10 % of requests a fault.
        variants: vec![
            ("s3", |env| factory(env, false)),
            ("s3-file", |env| factory(env, true)),
            ("s3-faults", faulty_factory),
        ],
        specific: specific(),
    };
    suite.main(runtime, start, |moto| {
        let (port, pid) = (moto.port, moto.pid());
        let took = moto.stop();
        println!("s3: moto {MOTO_VERSION} on 127.0.0.1:{port} (pid {pid}) stopped in {:.2} s", took.as_secs_f64());
    })
}
