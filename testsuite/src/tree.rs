//! List, Move, Delete, Stat and RedirectURL (tests 23–33).

use std::time::Duration;

use regstore_api::{Error, ErrorKind};

use crate::util::*;
use crate::{Ctx, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("TestList", list),
        Test::new("TestMove", move_file),
        Test::new("TestMoveOverwrite", move_overwrite),
        Test::new("TestMoveNonexistent", move_nonexistent),
        Test::new("TestMoveInvalid", move_invalid),
        Test::new("TestDelete", delete),
        Test::new("TestRedirectURL", redirect_url),
        Test::new("TestDeleteNonexistent", delete_nonexistent),
        Test::new("TestDeleteFolder", delete_folder),
        Test::new("TestDeleteOnlyDeletesSubpaths", delete_only_deletes_subpaths),
        Test::new("TestStatCall", stat_call),
    ]
}

async fn list(cx: Ctx) -> TestResult {
    let d = cx.d();
    let root = format!("/{}", random_filename(rand::random_range(8..16)));
    let missing = format!("{root}/nonexistent");
    // Whole-value equality: the exact path asked for and the driver's name.
    let e = d.list(&missing).await.err();
    ensure_eq!(
        e,
        Some(Error::PathNotFound { driver: cx.name().to_string(), path: missing.clone() }),
        "List of a missing path"
    );
    let parent = format!("{root}/{}", random_filename(rand::random_range(8..16)));
    let mut children = Vec::new();
    for _ in 0..50 {
        let child = format!("{parent}/{}", random_filename(rand::random_range(8..16)));
        d.put_content(&child, &random_contents(32)).await.ctx("PutContent")?;
        children.push(child);
    }
    children.sort();
    children.dedup();
    ensure_eq!(d.list("/").await.ctx("List(/)")?, vec![root.clone()], "List(\"/\")");
    ensure_eq!(d.list(&root).await.ctx("List(root)")?, vec![parent.clone()], "List(root)");
    let mut listed = d.list(&parent).await.ctx("List(parent)")?;
    listed.sort();
    ensure_eq!(listed, children, "List(parent)");
    d.delete(&root).await.ctx("Delete")?;
    PASSED
}

async fn move_file(cx: Ctx) -> TestResult {
    let d = cx.d();
    let (src, dst) = (random_path(32), random_path(32));
    let content = random_contents(32);
    d.put_content(&src, &content).await.ctx("PutContent")?;
    d.move_file(&src, &dst).await.ctx("Move")?;
    ensure!(d.get_content(&dst).await.ctx("GetContent(destination)")? == content, "the destination lacks the content");
    expect_error(d.get_content(&src).await, ErrorKind::PathNotFound, cx.name(), "GetContent(source) after Move")?;
    cleanup(&cx, &[&src, &dst]).await
}

async fn move_overwrite(cx: Ctx) -> TestResult {
    let d = cx.d();
    let (src, dst) = (random_path(32), random_path(32));
    let content = random_contents(32);
    d.put_content(&src, &content).await.ctx("PutContent(source)")?;
    d.put_content(&dst, &random_contents(64)).await.ctx("PutContent(destination)")?;
    d.move_file(&src, &dst).await.ctx("Move")?;
    ensure!(
        d.get_content(&dst).await.ctx("GetContent(destination)")? == content,
        "Move must overwrite the destination"
    );
    expect_error(d.get_content(&src).await, ErrorKind::PathNotFound, cx.name(), "GetContent(source) after Move")?;
    cleanup(&cx, &[&src, &dst]).await
}

async fn move_nonexistent(cx: Ctx) -> TestResult {
    let d = cx.d();
    let (src, dst) = (random_path(32), random_path(32));
    let content = random_contents(32);
    d.put_content(&dst, &content).await.ctx("PutContent(destination)")?;
    expect_error(d.move_file(&src, &dst).await, ErrorKind::PathNotFound, cx.name(), "Move of a missing source")?;
    ensure!(d.get_content(&dst).await.ctx("GetContent(destination)")? == content, "the destination must be unchanged");
    cleanup(&cx, &[&dst]).await
}

async fn move_invalid(cx: Ctx) -> TestResult {
    let d = cx.d();
    d.put_content("/notadir", &random_contents(32)).await.ctx("PutContent")?;
    ensure!(d.move_file("/notadir/foo", "/notadir/bar").await.is_err(), "Move under a file must fail");
    d.delete("/notadir").await.ctx("Delete")?;
    PASSED
}

async fn delete(cx: Ctx) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    d.put_content(&path, &random_contents(32)).await.ctx("PutContent")?;
    d.delete(&path).await.ctx("Delete")?;
    expect_error(d.get_content(&path).await, ErrorKind::PathNotFound, cx.name(), "GetContent after Delete")?;
    PASSED
}

async fn delete_nonexistent(cx: Ctx) -> TestResult {
    expect_error(
        cx.d().delete(&random_path(32)).await,
        ErrorKind::PathNotFound,
        cx.name(),
        "Delete of a missing path",
    )?;
    PASSED
}

async fn delete_folder(cx: Ctx) -> TestResult {
    let d = cx.d();
    let dir = random_path(32);
    let files: Vec<String> = (0..3).map(|_| format!("{dir}/{}", random_filename(32))).collect();
    for f in &files {
        d.put_content(f, &random_contents(32)).await.ctx("PutContent")?;
    }
    d.delete(&files[0]).await.ctx("Delete(f1)")?;
    expect_error(
        d.get_content(&files[0]).await,
        ErrorKind::PathNotFound,
        cx.name(),
        "GetContent(f1) after its Delete",
    )?;
    for f in &files[1..] {
        d.get_content(f).await.ctx("GetContent of a sibling of the deleted file")?;
    }
    d.delete(&dir).await.ctx("Delete(dir)")?;
    for f in &files {
        expect_error(d.get_content(f).await, ErrorKind::PathNotFound, cx.name(), "GetContent after Delete(dir)")?;
    }
    PASSED
}

async fn delete_only_deletes_subpaths(cx: Ctx) -> TestResult {
    let d = cx.d();
    let dir = random_path(32);
    let file = format!("{dir}/{}", random_filename(32));
    let file_suffix = format!("{file}suffix");
    let sub = format!("{dir}/{}", random_filename(32));
    let sub_file = format!("{sub}/{}", random_filename(32));
    let sub_suffix_file = format!("{sub}suffix/{}", random_filename(32));
    for p in [&file, &file_suffix, &sub_file, &sub_suffix_file] {
        d.put_content(p, &random_contents(32)).await.ctx("PutContent")?;
    }
    d.delete(&file).await.ctx("Delete(file)")?;
    d.get_content(&file_suffix).await.ctx("Delete(file) must leave file+suffix")?;
    d.delete(&sub).await.ctx("Delete(dir)")?;
    d.get_content(&sub_suffix_file).await.ctx("Delete(dir) must leave dir+suffix/file")?;
    d.delete(&first_part(&dir)).await.ctx("Delete")?;
    PASSED
}

async fn redirect_url(cx: Ctx) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    let content = random_contents(32);
    d.put_content(&path, &content).await.ctx("PutContent")?;
    let client = crate::util::http_client(&cx.config.ca_files)?;
    if let Some(url) = d.redirect_url("GET", &path).await.ctx("RedirectURL(GET)")? {
        let resp = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        ensure_eq!(resp.status().as_u16(), 200, "status of GET on the redirect URL");
        let body = resp.bytes().await.map_err(|e| format!("GET {url} body: {e}"))?;
        ensure!(body[..] == content[..], "the GET redirect URL served other content");
    }
    if let Some(url) = d.redirect_url("HEAD", &path).await.ctx("RedirectURL(HEAD)")? {
        let resp = client.head(&url).send().await.map_err(|e| format!("HEAD {url}: {e}"))?;
        ensure_eq!(resp.status().as_u16(), 200, "status of HEAD on the HEAD redirect URL");
        let length = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_string);
        ensure_eq!(length, Some("32".to_string()), "Content-Length of HEAD on the HEAD redirect URL");
    }
    cleanup(&cx, &[&path]).await
}

async fn stat_call(cx: Ctx) -> TestResult {
    let d = cx.d();
    let dir = random_path(32);
    let file = format!("{dir}/{}", random_filename(32));
    expect_error(d.stat(&dir).await, ErrorKind::PathNotFound, cx.name(), "Stat of a missing directory")?;
    expect_error(d.stat(&file).await, ErrorKind::PathNotFound, cx.name(), "Stat of a missing file")?;
    d.put_content(&file, &random_contents(4096)).await.ctx("PutContent")?;
    let fi = d.stat(&file).await.ctx("Stat(file)")?;
    ensure_eq!(fi.path, file, "Stat(file).path");
    ensure_eq!(fi.size, 4096, "Stat(file).size");
    ensure!(!fi.is_dir, "Stat(file) must not be a directory");
    let first = fi.modified;
    // As upstream: object stores keep second-resolution times.
    tokio::time::sleep(Duration::from_secs(10)).await;
    d.put_content(&file, &random_contents(4096)).await.ctx("PutContent again")?;
    let fi = d.stat(&file).await.ctx("Stat(file) again")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(fi.modified > first, "the modification time must advance: {:?} then {:?}", first, fi.modified);
    let di = d.stat(&dir).await.ctx("Stat(dir)")?;
    ensure_eq!(di.path, dir, "Stat(dir).path");
    ensure_eq!(di.size, 0, "Stat(dir).size");
    ensure!(di.is_dir, "Stat(dir) must be a directory");
    match d.stat("/").await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(format!("Stat(\"/\") must succeed or be path-not-found: {e}")),
    }
    d.delete(&first_part(&dir)).await.ctx("Delete")?;
    PASSED
}

/// Deletes each path (path-not-found ignored), as `deletePath`.
pub async fn cleanup(cx: &Ctx, paths: &[&str]) -> TestResult {
    for p in paths {
        match cx.d().delete(&first_part(p)).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(format!("cleaning up {p}: {e}")),
        }
    }
    PASSED
}
