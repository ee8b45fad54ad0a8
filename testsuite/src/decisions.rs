//! regstore's decisions D1–D12 (docs/decisions.md), one test each, and the writer rules every
//! driver shares: the FileWriter state machine (docs/behaviour.md), and path-not-found for
//! resuming a path never written.

use regstore_api::{ErrorKind, WalkControl, path::cmp_components};

use crate::streams::write_all;
use crate::util::*;
use crate::walk::{PRE_ORDER, TREE, clear, plant, walk_recording};
use crate::{Ctx, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("TestD01StopEndsTheWholeWalk", d1_stop_ends_whole_walk),
        Test::new("TestD02WalkIsComponentWise", d2_component_wise),
        Test::new("TestD03ReaderPastTheEndIsEmpty", d3_reader_past_end),
        Test::new("TestD04AppendToCommittedContent", d4_append_to_committed),
        Test::new("TestD05SizeCountsBufferedBytes", d5_size_counts_buffered),
        Test::new("TestD06DeleteIsExactAndRecursive", d6_delete),
        Test::new("TestD07MoveOfADirectoryFails", d7_move_directory),
        Test::new("TestD08DotComponentsAreInvalid", d8_dot_components),
        Test::new("TestD09WalkOfAMissingRoot", d9_missing_walk_root),
        Test::new("TestD10RedirectOnlyGetAndHead", d10_redirect_methods),
        Test::new("TestD11ListIsSortedAndAbsolute", d11_list_sorted),
        Test::new("TestD12EmptiedDirectoriesVanish", d12_emptied_directories),
        Test::new("TestWriterStateMachine", writer_state_machine),
        Test::new("TestAppendToMissingPath", append_to_missing_path),
    ]
}

async fn d1_stop_ends_whole_walk(cx: Ctx) -> TestResult {
    let d = cx.d();
    plant(d, &TREE).await?;
    // With a hint, stop deep below `from`: upstream's fallback went on with the ancestors.
    let stop_at =
        |p: &str| Ok(if p == "/folder3/subfolder2/subfolder1" { WalkControl::Stop } else { WalkControl::Continue });
    let (with_hint, r1) = walk_recording(d, "/", Some("/folder3/subfolder1/subfolder1/file1"), stop_at).await;
    let (without, r2) = walk_recording(d, "/", None, stop_at).await;
    clear(d).await?;
    r1.ctx("Walk with a hint")?;
    r2.ctx("Walk without a hint")?;
    ensure_eq!(with_hint, vec!["/folder3/subfolder2", "/folder3/subfolder2/subfolder1"], "entries with a hint");
    let i = PRE_ORDER.iter().position(|p| *p == "/folder3/subfolder2/subfolder1").unwrap();
    ensure_eq!(without, PRE_ORDER[..=i].to_vec(), "entries without a hint");
    PASSED
}

async fn d2_component_wise(cx: Ctx) -> TestResult {
    let d = cx.d();
    let files = ["/a/b", "/a/c/d", "/a-b/c", "/a.b", "/a0", "/1.2/x", "/1.20/x", "/foo/x", "/foo-bar/x"];
    plant(d, &files).await?;
    let (seen, result) = walk_recording(d, "/", None, |_| Ok(WalkControl::Continue)).await;
    clear(d).await?;
    result.ctx("Walk")?;
    let mut expected = seen.clone();
    expected.sort_by(|a, b| cmp_components(a, b));
    ensure_eq!(seen, expected, "walk order");
    ensure_eq!(seen.len(), 16, "entries walked");
    PASSED
}

async fn d3_reader_past_end(cx: Ctx) -> TestResult {
    let path = random_path(32);
    cx.d().put_content(&path, &random_contents(32)).await.ctx("PutContent")?;
    for offset in [33, 64, 1 << 40] {
        let mut r = cx.d().reader(&path, offset).await.ctx(&format!("Reader at {offset}, past the end"))?;
        ensure!(r.read_chunk().await.ctx("read")?.is_none(), "Reader at {offset} must be empty");
    }
    cx.d().delete(&first_part(&path)).await.ctx("Delete")?;
    PASSED
}

async fn d4_append_to_committed(cx: Ctx) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    let (old, new) = (random_contents(64), random_contents(16));
    d.put_content(&path, &old).await.ctx("PutContent")?;
    let appended = match d.writer(&path, true).await {
        Ok(mut w) => {
            write_all(&mut *w, &new).await?;
            w.commit().await.ctx("Commit")?;
            true
        }
        Err(e) => {
            ensure_eq!(e.kind(), ErrorKind::Other, "the kind of the append error ({e})");
            ensure!(e.to_string().contains(&path), "the append error must name the path: {e}");
            false
        }
    };
    let got = d.get_content(&path).await.ctx("GetContent")?;
    d.delete(&first_part(&path)).await.ctx("Delete")?;
    // As the driver declares; a driver that does not say may do either.
    match cx.caps().appends_to_committed {
        Some(true) => ensure!(appended, "{} declares it appends to committed content, and refused (D4)", cx.name()),
        Some(false) => ensure!(!appended, "{} declares it refuses to append to committed content (D4)", cx.name()),
        None => {}
    }
    if appended {
        ensure!(got == [old, new].concat(), "the append lost or misplaced data");
    } else {
        ensure!(got == old, "a refused append must leave the content as it was");
    }
    PASSED
}

async fn d5_size_counts_buffered(cx: Ctx) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    let mut w = d.writer(&path, false).await.ctx("Writer")?;
    write_all(&mut *w, &random_contents(100)).await?;
    ensure_eq!(w.size(), 100, "Size before Close");
    w.close().await.ctx("Close")?;
    drop(w);
    let mut w = d.writer(&path, true).await.ctx("Writer(append)")?;
    write_all(&mut *w, &random_contents(7)).await?;
    ensure_eq!(w.size(), 107, "Size of a resumed writer before Close");
    w.cancel().await.ctx("Cancel")?;
    drop(w);
    match d.delete(&first_part(&path)).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(format!("Delete: {e}")),
    }
    PASSED
}

async fn d6_delete(cx: Ctx) -> TestResult {
    let d = cx.d();
    let files = ["/x/a", "/x/ab", "/x/a-v2/f", "/x/dir/f1", "/x/dir/sub/f2", "/x/dirsuffix/f"];
    plant(d, &files).await?;
    d.delete("/x/a").await.ctx("Delete(/x/a)")?;
    for kept in ["/x/ab", "/x/a-v2/f"] {
        d.get_content(kept).await.ctx(&format!("Delete(/x/a) must leave {kept}"))?;
    }
    expect_error(
        d.delete("/x/a").await,
        ErrorKind::PathNotFound,
        cx.name(),
        "Delete when only /x/ab and /x/a-v2 match the prefix",
    )?;
    expect_error(d.delete("/x/nothing").await, ErrorKind::PathNotFound, cx.name(), "Delete of a missing path")?;
    d.delete("/x/dir").await.ctx("Delete(/x/dir)")?;
    for gone in ["/x/dir/f1", "/x/dir/sub/f2"] {
        expect_error(
            d.get_content(gone).await,
            ErrorKind::PathNotFound,
            cx.name(),
            &format!("{gone} after Delete(/x/dir)"),
        )?;
    }
    d.get_content("/x/dirsuffix/f").await.ctx("Delete(/x/dir) must leave /x/dirsuffix/f")?;
    d.delete("/x").await.ctx("Delete(/x)")?;
    PASSED
}

async fn d7_move_directory(cx: Ctx) -> TestResult {
    let d = cx.d();
    plant(d, &["/parent/dir/f", "/parent/dir/sub/g"]).await?;
    let moved = d.move_file("/parent/dir", "/parent/other").await;
    let kept_f = d.get_content("/parent/dir/f").await;
    let kept_g = d.get_content("/parent/dir/sub/g").await;
    let other = d.list("/parent").await;
    clear(d).await?;
    ensure!(moved.is_err(), "Move of a directory must fail");
    kept_f.ctx("Move of a directory must leave its files")?;
    kept_g.ctx("Move of a directory must leave its subtree")?;
    ensure_eq!(other.ctx("List(/parent)")?, vec!["/parent/dir".to_string()], "List(/parent) after the failed Move");
    PASSED
}

async fn d8_dot_components(cx: Ctx) -> TestResult {
    let (d, name) = (cx.d(), cx.name());
    for p in ["/.", "/..", "/a/./b", "/a/../b", "/a/.."] {
        expect_error(d.put_content(p, b"x").await, ErrorKind::InvalidPath, name, &format!("PutContent({p})"))?;
        expect_error(d.get_content(p).await, ErrorKind::InvalidPath, name, &format!("GetContent({p})"))?;
        expect_error(d.stat(p).await, ErrorKind::InvalidPath, name, &format!("Stat({p})"))?;
        expect_error(d.list(p).await, ErrorKind::InvalidPath, name, &format!("List({p})"))?;
        expect_error(d.delete(p).await, ErrorKind::InvalidPath, name, &format!("Delete({p})"))?;
        expect_error(d.writer(p, false).await.map(|_| ()), ErrorKind::InvalidPath, name, &format!("Writer({p})"))?;
        expect_error(d.walker(p, None).await.map(|_| ()), ErrorKind::InvalidPath, name, &format!("Walk({p})"))?;
    }
    PASSED
}

async fn d9_missing_walk_root(cx: Ctx) -> TestResult {
    let d = cx.d();
    let (seen, result) = walk_recording(d, "/", None, |_| Ok(WalkControl::Continue)).await;
    result.ctx("Walk(\"/\") on empty storage")?;
    ensure!(seen.is_empty(), "Walk(\"/\") on empty storage reported {seen:?}");
    plant(d, &["/present/f"]).await?;
    let (_, missing) = walk_recording(d, "/absent", None, |_| Ok(WalkControl::Continue)).await;
    let (_, missing_hint) = walk_recording(d, "/absent", Some("/absent/x"), |_| Ok(WalkControl::Continue)).await;
    clear(d).await?;
    expect_error(missing, ErrorKind::PathNotFound, cx.name(), "Walk of a missing root")?;
    expect_error(missing_hint, ErrorKind::PathNotFound, cx.name(), "Walk of a missing root with a hint")?;
    PASSED
}

async fn d10_redirect_methods(cx: Ctx) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    d.put_content(&path, &random_contents(32)).await.ctx("PutContent")?;
    let get = d.redirect_url("GET", &path).await.ctx("RedirectURL(GET)")?;
    let head = d.redirect_url("HEAD", &path).await.ctx("RedirectURL(HEAD)")?;
    let mut others = Vec::new();
    for method in ["PUT", "POST", "DELETE", "PATCH"] {
        others.push((method, d.redirect_url(method, &path).await.ctx(&format!("RedirectURL({method})"))?));
    }
    d.delete(&first_part(&path)).await.ctx("Delete")?;
    for (method, url) in others {
        ensure!(url.is_none(), "RedirectURL({method}) must give no URL, got {url:?}");
    }
    // A driver that declares it does not redirect a method must not.
    for (method, url) in [("GET", &get), ("HEAD", &head)] {
        if cx.caps().redirects(method) == Some(false) {
            ensure!(url.is_none(), "{} declares no redirect for {method}, and gave {url:?}", cx.name());
        }
    }
    PASSED
}

/// D10 for drivers that redirect: each method gets a URL signed for itself.
async fn d11_list_sorted(cx: Ctx) -> TestResult {
    let d = cx.d();
    let names = ["zeta", "Alpha", "alpha", "b-c", "b.c", "b", "9", "_x"];
    for n in names {
        d.put_content(&format!("/dir/{n}"), b"x").await.ctx("PutContent")?;
    }
    let listed = d.list("/dir").await.ctx("List(/dir)")?;
    d.delete("/dir").await.ctx("Delete")?;
    let mut expected: Vec<String> = names.iter().map(|n| format!("/dir/{n}")).collect();
    expected.sort();
    ensure_eq!(listed, expected, "List(/dir)");
    PASSED
}

async fn d12_emptied_directories(cx: Ctx) -> TestResult {
    let d = cx.d();
    plant(d, &["/a/b/c/file", "/a/keep"]).await?;
    d.delete("/a/b/c/file").await.ctx("Delete(/a/b/c/file)")?;
    ensure_eq!(d.list("/a").await.ctx("List(/a)")?, vec!["/a/keep".to_string()], "List(/a) after the deep delete");
    expect_error(d.stat("/a/b").await, ErrorKind::PathNotFound, cx.name(), "Stat of an emptied directory")?;
    let (seen, result) = walk_recording(d, "/", None, |_| Ok(WalkControl::Continue)).await;
    result.ctx("Walk")?;
    ensure_eq!(seen, vec!["/a", "/a/keep"], "Walk after the deep delete");
    d.delete("/a/keep").await.ctx("Delete(/a/keep)")?;
    ensure!(d.list("/").await.ctx("List(/)")?.is_empty(), "List(\"/\") must be empty after the last delete");
    PASSED
}

/// The FileWriter state machine of docs/behaviour.md (Writer and FileWriter).
async fn writer_state_machine(cx: Ctx) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    let mut w = d.writer(&path, false).await.ctx("Writer")?;
    write_all(&mut *w, b"abc").await?;
    w.close().await.ctx("Close")?;
    ensure!(w.write(b"x").await.is_err(), "Write after Close must fail");
    ensure!(w.close().await.is_err(), "Close after Close must fail");
    ensure!(w.commit().await.is_err(), "Commit after Close must fail");
    drop(w);

    let mut w = d.writer(&path, true).await.ctx("Writer(append)")?;
    write_all(&mut *w, b"def").await?;
    w.commit().await.ctx("Commit")?;
    ensure!(w.write(b"x").await.is_err(), "Write after Commit must fail");
    ensure!(w.commit().await.is_err(), "Commit after Commit must fail");
    w.close().await.ctx("Close after Commit must succeed")?;
    ensure!(w.cancel().await.is_err(), "Cancel after Commit must fail");
    drop(w);
    ensure_eq!(
        d.get_content(&path).await.ctx("GetContent")?,
        b"abcdef".to_vec(),
        "committed content after a refused Cancel"
    );

    let other = random_path(32);
    let mut w = d.writer(&other, false).await.ctx("Writer")?;
    write_all(&mut *w, b"doomed").await?;
    w.cancel().await.ctx("Cancel")?;
    ensure!(w.write(b"x").await.is_err(), "Write after Cancel must fail");
    w.close().await.ctx("Close after Cancel must succeed without writing")?;
    drop(w);
    expect_error(d.get_content(&other).await, ErrorKind::PathNotFound, cx.name(), "GetContent of cancelled content")?;
    crate::tree::cleanup(&cx, &[&path, &other]).await
}

/// Resuming a path nothing was written to is path-not-found (upstream's inmemory and filesystem
/// created an empty file).
async fn append_to_missing_path(cx: Ctx) -> TestResult {
    let path = random_path(32);
    expect_error(
        cx.d().writer(&path, true).await.map(|_| ()),
        ErrorKind::PathNotFound,
        cx.name(),
        "Writer(missing, append)",
    )?;
    PASSED
}
