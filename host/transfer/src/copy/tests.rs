use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::*;

const V2: &str = "/docker/registry/v2";

fn native(name: &str, params: Value) -> Arc<dyn StorageDriver> {
    regstore_native::open_boxed(name, params.as_object().unwrap()).unwrap()
}

fn inmemory() -> Arc<dyn StorageDriver> {
    regstore_native::open_boxed("inmemory", &Map::new()).unwrap()
}

fn hex(content: &[u8]) -> String {
    Sha256::digest(content).iter().map(|b| format!("{b:02x}")).collect()
}

fn blob_path(digest: &str) -> String {
    format!("{V2}/blobs/sha256/{}/{digest}/data", &digest[..2])
}

/// A registry's tree: blobs of the given sizes (a few staged, the rest whole), each linked
/// from a repository's layers, a manifest revision, a tag, and an upload in progress.
/// Returns the blob paths.
async fn registry_tree(driver: &dyn StorageDriver, sizes: &[usize]) -> Vec<String> {
    let mut blobs = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let content: Vec<u8> = (0..*size).map(|j| ((i * 131 + j * 7) % 251) as u8).collect();
        let digest = hex(&content);
        let path = blob_path(&digest);
        driver.put_content(&path, &content).await.unwrap();
        let link = format!("{V2}/repositories/library/app/_layers/sha256/{digest}/link");
        driver.put_content(&link, format!("sha256:{digest}").as_bytes()).await.unwrap();
        blobs.push(path);
    }
    let manifest = hex(b"manifest");
    let revision = format!("{V2}/repositories/library/app/_manifests/revisions/sha256/{manifest}/link");
    driver.put_content(&revision, format!("sha256:{manifest}").as_bytes()).await.unwrap();
    let tag = format!("{V2}/repositories/library/app/_manifests/tags/latest/current/link");
    driver.put_content(&tag, format!("sha256:{manifest}").as_bytes()).await.unwrap();
    let upload = format!("{V2}/repositories/library/app/_uploads/8c3f0e36-1d5b-4b6e-9f9d-0a5c1f2e7b11");
    driver.put_content(&format!("{upload}/startedat"), b"2026-12-03T18:00:00Z").await.unwrap();
    driver.put_content(&format!("{upload}/hashstates/sha256/0"), &[1, 2, 3]).await.unwrap();
    driver.put_content(&format!("{upload}/data"), &[]).await.unwrap();
    blobs
}

/// Every file under `/` with its content.
async fn contents(driver: &dyn StorageDriver) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (path, _) in files_under(driver, "/").await.unwrap() {
        let content = driver.get_content(&path).await.unwrap();
        out.push((path, content));
    }
    out
}

fn options() -> CopyOptions {
    // Small enough that the larger blobs are staged and moved.
    CopyOptions { whole_max: 64 << 10, ..CopyOptions::default() }
}

const SIZES: &[usize] = &[0, 1, 1000, 70_000, 300_000, 1 << 20];

#[tokio::test]
async fn a_tree_copies_whole_between_drivers_and_back() {
    let (dir, back) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fs = native("filesystem", json!({ "rootdirectory": dir.path() }));
    registry_tree(&*fs, SIZES).await;
    let mem = inmemory();
    let summary = copy_tree(&*fs, &*mem, "/", &options(), &()).await.unwrap();
    let objects = contents(&*fs).await;
    assert_eq!(summary.objects, objects.len() as u64);
    assert_eq!((summary.copied, summary.skipped, summary.failed.len()), (summary.objects, 0, 0), "{summary:?}");
    assert_eq!(summary.bytes, objects.iter().map(|(_, c)| c.len() as u64).sum::<u64>());
    assert_eq!(contents(&*mem).await, objects);

    let fs_back = native("filesystem", json!({ "rootdirectory": back.path() }));
    let options = CopyOptions { verify: true, ..options() };
    let summary = copy_tree(&*mem, &*fs_back, "/", &options, &()).await.unwrap();
    assert_eq!((summary.copied, summary.verified, summary.failed.len()), (summary.objects, summary.objects, 0));
    assert_eq!(contents(&*fs_back).await, objects);
    assert!(fs_back.stat(STAGING_DIR).await.unwrap_err().is_not_found(), "nothing is left staged");
}

#[tokio::test]
async fn a_second_run_skips_what_is_there_and_mends_what_differs() {
    let (from, to) = (inmemory(), inmemory());
    let blobs = registry_tree(&*from, SIZES).await;
    let first = copy_tree(&*from, &*to, "/", &options(), &()).await.unwrap();
    let again = copy_tree(&*from, &*to, "/", &options(), &()).await.unwrap();
    assert_eq!((again.copied, again.skipped), (0, first.objects), "{again:?}");

    // An interrupted earlier run: a blob cut short, a blob of the right size but wrong bytes,
    // a link rewritten, an object missing.
    let cut = &blobs[4];
    to.put_content(cut, &from.get_content(cut).await.unwrap()[..1000]).await.unwrap();
    let wrong = &blobs[3];
    to.put_content(wrong, &vec![0; from.stat(wrong).await.unwrap().size as usize]).await.unwrap();
    let tag = format!("{V2}/repositories/library/app/_manifests/tags/latest/current/link");
    to.put_content(&tag, format!("sha256:{}", hex(b"other")).as_bytes()).await.unwrap();
    to.delete(&blobs[1]).await.unwrap();
    let mended = copy_tree(&*from, &*to, "/", &options(), &()).await.unwrap();
    assert_eq!((mended.copied, mended.skipped), (4, first.objects - 4), "{mended:?}");
    assert_eq!(contents(&*to).await, contents(&*from).await);
}

#[tokio::test]
async fn a_corrupt_source_blob_is_reported_and_not_copied() {
    let (from, to) = (inmemory(), inmemory());
    let blobs = registry_tree(&*from, SIZES).await;
    for corrupt in [&blobs[2], &blobs[5]] {
        let mut content = from.get_content(corrupt).await.unwrap();
        content[0] ^= 1;
        from.put_content(corrupt, &content).await.unwrap();
    }
    let summary = copy_tree(&*from, &*to, "/", &options(), &()).await.unwrap();
    let failed: Vec<&str> = summary.failed.iter().map(|(p, _)| p.as_str()).collect();
    let mut expected = vec![blobs[2].as_str(), blobs[5].as_str()];
    expected.sort();
    assert_eq!(failed, expected);
    assert!(summary.failed[0].1.contains("does not match its digest"), "{:?}", summary.failed);
    assert_eq!(summary.copied, summary.objects - 2);
    for blob in expected {
        assert!(to.stat(blob).await.unwrap_err().is_not_found(), "{blob} must not be copied");
    }
    assert!(to.stat(STAGING_DIR).await.unwrap_err().is_not_found(), "nothing is left staged");
}

#[tokio::test]
async fn dry_runs_change_nothing_and_extraneous_objects_go_on_request() {
    let (from, to) = (inmemory(), inmemory());
    registry_tree(&*from, SIZES).await;
    to.put_content("/docker/registry/v2/stale", b"old").await.unwrap();
    to.put_content("/elsewhere", b"outside the copied path").await.unwrap();
    let dry = CopyOptions { dry_run: true, delete_extraneous: true, ..options() };
    let summary = copy_tree(&*from, &*to, V2, &dry, &()).await.unwrap();
    assert_eq!((summary.copied, summary.copied_bytes, summary.deleted), (summary.objects, summary.bytes, 1));
    assert_eq!(files_under(&*to, "/").await.unwrap().len(), 2, "a dry run writes nothing");

    let progress = Counting::default();
    let options = CopyOptions { delete_extraneous: true, ..options() };
    let summary = copy_tree(&*from, &*to, V2, &options, &progress).await.unwrap();
    assert_eq!(summary.deleted, 1);
    assert!(to.stat("/docker/registry/v2/stale").await.unwrap_err().is_not_found());
    assert_eq!(to.get_content("/elsewhere").await.unwrap(), b"outside the copied path");
    assert_eq!(progress.done.load(Ordering::Relaxed), summary.objects);
    assert_eq!(progress.bytes.load(Ordering::Relaxed), summary.bytes, "every byte copied is reported");

    // One object by its path; a missing path is nothing to copy.
    let one = copy_tree(
        &*from,
        &*inmemory(),
        &format!("{V2}/repositories/library/app/_manifests/tags/latest/current/link"),
        &options,
        &(),
    )
    .await
    .unwrap();
    assert_eq!(one.copied, 1);
    assert_eq!(copy_tree(&*from, &*to, "/missing", &options, &()).await.unwrap().objects, 0);
}

#[derive(Default)]
struct Counting {
    bytes: AtomicU64,
    done: AtomicU64,
}

impl Progress for Counting {
    fn bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn done(&self, _path: &str, _size: u64, _outcome: &Outcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}
