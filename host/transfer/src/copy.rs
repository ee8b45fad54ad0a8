//! A registry's storage copied from one driver to another: every object under a path, streamed
//! (never whole in memory beyond [`CopyOptions::whole_max`]), a bounded number at once, each
//! published only once complete, blobs checked against the digest their path names, and what
//! is already at the destination skipped, so that a run that was stopped resumes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use regstore_api::{Error, ReaderIo, StorageDriver};

use crate::digest::{HashingReader, blob_digest};
use crate::stage::{STAGING_DIR, StageError, stage};

/// How a copy runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Objects in flight at once.
    pub jobs: usize,
    /// Afterwards, read every object back from the destination and compare it with the source.
    pub verify: bool,
    /// Only find out what would be copied (and deleted).
    pub dry_run: bool,
    /// Delete what the destination holds under the path and the source does not.
    pub delete_extraneous: bool,
    /// Objects up to this size go in one PutContent, held in memory; larger ones are staged.
    pub whole_max: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions { jobs: 4, verify: false, dry_run: false, delete_extraneous: false, whole_max: 4 << 20 }
    }
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Copied,
    /// Already at the destination, the same.
    Skipped,
    /// Would be copied (a dry run).
    WouldCopy,
    Failed(String),
}

/// Told how a copy goes, as it goes; every method may be called from several tasks at once.
pub trait Progress: Send + Sync {
    /// The objects found under the path, and their bytes.
    fn planned(&self, _objects: u64, _bytes: u64) {}
    /// Bytes moved (copied, or read to compare).
    fn bytes(&self, _bytes: u64) {}
    /// One object is done.
    fn done(&self, _path: &str, _size: u64, _outcome: &Outcome) {}
}

/// No progress reports.
impl Progress for () {}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Objects found at the source under the path, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Objects copied (or, in a dry run, that would be), and their bytes.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Objects already at the destination.
    pub skipped: u64,
    /// Objects read back and found equal (with `verify`).
    pub verified: u64,
    /// Destination objects deleted (or, in a dry run, that would be) as extraneous.
    pub deleted: u64,
    /// Each object that failed, and why.
    pub failed: Vec<(String, String)>,
    pub elapsed: Duration,
}

/// Copies every object under `root` from `from` to `to`. Errors that stop the whole copy (the
/// source cannot be walked) are the `Err`; each object's failure is in the summary.
pub async fn copy_tree(
    from: &dyn StorageDriver,
    to: &dyn StorageDriver,
    root: &str,
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let objects = files_under(from, root).await?;
    let mut summary = Summary {
        objects: objects.len() as u64,
        bytes: objects.iter().map(|(_, size)| size).sum(),
        ..Summary::default()
    };
    progress.planned(summary.objects, summary.bytes);
    let jobs = options.jobs.max(1);
    let mut failed = Vec::new();
    let mut outcomes = futures::stream::iter(&objects)
        .map(|(path, size)| async move {
            let outcome = copy_one(from, to, path, *size, options, progress).await;
            progress.done(path, *size, &outcome);
            (path, *size, outcome)
        })
        .buffer_unordered(jobs);
    while let Some((path, size, outcome)) = outcomes.next().await {
        match outcome {
            Outcome::Copied | Outcome::WouldCopy => {
                summary.copied += 1;
                summary.copied_bytes += size;
            }
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Failed(why) => failed.push((path.clone(), why)),
        }
    }
    drop(outcomes);
    if options.verify && !options.dry_run {
        let failed_paths: HashSet<String> = failed.iter().map(|(p, _): &(String, String)| p.clone()).collect();
        let mut checks = futures::stream::iter(objects.iter().filter(|(p, _)| !failed_paths.contains(p)))
            .map(|(path, _)| async move { (path, same_content(from, to, path, progress).await) })
            .buffer_unordered(jobs);
        while let Some((path, same)) = checks.next().await {
            match same {
                Ok(true) => summary.verified += 1,
                Ok(false) => failed.push((path.clone(), "verification: the copy differs".into())),
                Err(e) => failed.push((path.clone(), format!("verification: {e}"))),
            }
        }
    }
    if options.delete_extraneous {
        let wanted: HashSet<&str> = objects.iter().map(|(p, _)| p.as_str()).collect();
        for (path, _) in files_under(to, root).await? {
            if wanted.contains(path.as_str()) {
                continue;
            }
            if options.dry_run {
                summary.deleted += 1;
                continue;
            }
            match to.delete(&path).await {
                Ok(()) => summary.deleted += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => failed.push((path, format!("deleting the extraneous object: {e}"))),
            }
        }
    }
    summary.failed = failed;
    summary.failed.sort();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Every file under `root` (or `root` itself, if it is one) with its size, in walk order; the
/// staging folder of interrupted transfers is not content.
async fn files_under(driver: &dyn StorageDriver, root: &str) -> Result<Vec<(String, u64)>, Error> {
    let info = match driver.stat(root).await {
        Ok(info) => info,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if !info.is_dir {
        return Ok(vec![(info.path, info.size)]);
    }
    let mut files = Vec::new();
    let mut walker = driver.walker(root, None).await?;
    while let Some(info) = walker.next().await? {
        if info.path == STAGING_DIR {
            walker.skip_dir();
        } else if !info.is_dir {
            files.push((info.path, info.size));
        }
    }
    Ok(files)
}

/// Content up to this size is compared byte for byte when deciding whether to skip it; larger
/// content that is not a blob by its size alone.
const COMPARED_WHOLE: u64 = 1 << 20;

async fn copy_one(
    from: &dyn StorageDriver,
    to: &dyn StorageDriver,
    path: &str,
    size: u64,
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Outcome {
    match already_there(from, to, path, size, progress).await {
        Ok(true) => return Outcome::Skipped,
        Ok(false) => {}
        Err(why) => return Outcome::Failed(why),
    }
    if options.dry_run {
        return Outcome::WouldCopy;
    }
    let reader = match from.reader(path, 0).await {
        Ok(reader) => reader,
        Err(e) => return Outcome::Failed(format!("reading: {e}")),
    };
    let mut source = HashingReader::new(ReaderIo::new(reader)).on_read(progress_fn(progress));
    let staged = match stage(to, &mut source, options.whole_max).await {
        Ok(staged) => staged,
        Err(StageError::Source(e)) => return Outcome::Failed(format!("reading: {e}")),
        Err(StageError::Destination(e)) => return Outcome::Failed(format!("writing: {e}")),
    };
    if let Some(expected) = blob_digest(path) {
        let got = source.hex_digest();
        if got != expected {
            staged.discard(to).await;
            return Outcome::Failed(format!(
                "the source's content does not match its digest: sha256:{got} ({} bytes); not copied",
                source.bytes()
            ));
        }
    }
    match staged.publish(to, path).await {
        Ok(()) => Outcome::Copied,
        Err(e) => Outcome::Failed(format!("writing: {e}")),
    }
}

/// Whether the destination already holds the object: the same size, and for a blob content
/// that matches its digest, for small content the same bytes. A directory in the way fails.
async fn already_there(
    from: &dyn StorageDriver,
    to: &dyn StorageDriver,
    path: &str,
    size: u64,
    progress: &dyn Progress,
) -> Result<bool, String> {
    let there = match to.stat(path).await {
        Ok(info) => info,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(format!("checking the destination: {e}")),
    };
    if there.is_dir {
        return Err("the destination has a directory at this path".into());
    }
    if there.size != size {
        return Ok(false);
    }
    if let Some(expected) = blob_digest(path) {
        return match digest_of(to, path, progress).await {
            Ok(got) => Ok(got == expected),
            Err(e) => Err(format!("checking the destination: {e}")),
        };
    }
    if size <= COMPARED_WHOLE {
        let (source, destination) = (from.get_content(path).await, to.get_content(path).await);
        return match (source, destination) {
            (Ok(a), Ok(b)) => Ok(a == b),
            (Err(e), _) => Err(format!("reading: {e}")),
            (_, Err(e)) => Err(format!("checking the destination: {e}")),
        };
    }
    Ok(true)
}

/// Both sides' content of `path` hash the same.
async fn same_content(
    from: &dyn StorageDriver,
    to: &dyn StorageDriver,
    path: &str,
    progress: &dyn Progress,
) -> Result<bool, Error> {
    Ok(digest_of(from, path, progress).await? == digest_of(to, path, progress).await?)
}

/// The hex sha256 of what `driver` holds at `path`, streamed.
async fn digest_of(driver: &dyn StorageDriver, path: &str, progress: &dyn Progress) -> Result<String, Error> {
    let mut reader = HashingReader::new(ReaderIo::new(driver.reader(path, 0).await?)).on_read(progress_fn(progress));
    let mut sink = tokio::io::sink();
    tokio::io::copy(&mut reader, &mut sink).await.map_err(Error::from)?;
    Ok(reader.hex_digest())
}

/// A reader's callback that reports its bytes to `progress`.
fn progress_fn<'a>(progress: &'a dyn Progress) -> impl FnMut(u64) + Send + 'a {
    move |n| progress.bytes(n)
}

#[cfg(test)]
mod tests;
