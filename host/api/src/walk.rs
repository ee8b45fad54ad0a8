//! Walks: the pull-style [`Walker`], and distribution's WalkFallback (docs/behaviour.md, Walk)
//! built from `list` and `stat`, for drivers that do not walk natively.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;

use crate::path::{cmp_components, is_at_or_under, parent};
use crate::{FileInfo, Result, StorageDriver};

/// What a walk function answers for an entry (distribution's WalkFn outcomes; an error is the
/// fourth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkControl {
    /// Go on; a directory is entered.
    Continue,
    /// Do not enter this directory (nothing for a file); go on with the next entry.
    SkipDir,
    /// End the whole walk, successfully (D1).
    Stop,
}

/// A walk in progress: pre-order, component-wise (D2).
#[async_trait]
pub trait Walker: Send {
    /// The next entry, or `None` when the walk is done.
    async fn next(&mut self) -> Result<Option<FileInfo>>;
    /// Do not descend into the directory that `next` returned last.
    fn skip_dir(&mut self);
}

/// One directory level of the walk plan (see `plan`).
struct Level {
    dir: String,
    /// Children sorting at or before this are skipped.
    hint: Option<String>,
    /// A missing `dir` ends this level quietly instead of failing the walk.
    tolerate_missing: bool,
    /// This level lists the hint itself, which may name a file: then it is like a missing path.
    is_hint: bool,
}

/// Children of one directory still to visit.
struct Frame {
    children: Vec<String>,
    next: usize,
}

/// distribution's WalkFallback as a pull-style walker, with regstore's decisions: stop ends the
/// whole walk (D1, by the caller dropping the walker), a missing root is path-not-found (D9),
/// entries deleted during the walk are skipped, and a hint that names a file is treated as a
/// hint that names a missing path.
pub struct FallbackWalker {
    driver: Arc<dyn StorageDriver>,
    plan: VecDeque<Level>,
    hint: Option<String>,
    stack: Vec<Frame>,
    /// The directory returned last, entered on the next call unless skipped.
    pending_dir: Option<String>,
    failed: bool,
}

impl FallbackWalker {
    pub fn new(driver: Arc<dyn StorageDriver>, from: &str, start_after: Option<&str>) -> Self {
        let plan = plan(from, start_after);
        FallbackWalker { driver, plan, hint: None, stack: Vec::new(), pending_dir: None, failed: false }
    }

    /// Lists `dir` sorted by bytes, without the children at or before the current hint.
    fn push_frame(&mut self, mut children: Vec<String>) {
        children.sort_unstable();
        if let Some(hint) = &self.hint {
            children.retain(|c| c.as_str() > hint.as_str());
        }
        self.stack.push(Frame { children, next: 0 });
    }

    async fn start_level(&mut self, level: Level) -> Result<()> {
        self.hint = level.hint;
        match self.driver.list(&level.dir).await {
            Ok(children) => {
                self.push_frame(children);
                Ok(())
            }
            Err(e) if e.is_not_found() && level.tolerate_missing => Ok(()),
            Err(e) if level.is_hint => match self.driver.stat(&level.dir).await {
                Ok(info) if !info.is_dir => Ok(()),
                Err(se) if se.is_not_found() => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn advance(&mut self) -> Result<Option<FileInfo>> {
        loop {
            if let Some(dir) = self.pending_dir.take() {
                match self.driver.list(&dir).await {
                    Ok(children) => self.push_frame(children),
                    // Deleted since it was reported: nothing to enter.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(frame) = self.stack.last_mut() {
                let Some(child) = frame.children.get(frame.next).cloned() else {
                    self.stack.pop();
                    continue;
                };
                frame.next += 1;
                match self.driver.stat(&child).await {
                    Ok(info) => {
                        if info.is_dir {
                            self.pending_dir = Some(child);
                        }
                        return Ok(Some(info));
                    }
                    // Deleted between List and Stat: tolerated, as upstream (TestWalkFileRemoved).
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
            match self.plan.pop_front() {
                Some(level) => self.start_level(level).await?,
                None => return Ok(None),
            }
        }
    }
}

/// The walk plan: which directory levels to walk, and with which hint.
fn plan(from: &str, start_after: Option<&str>) -> VecDeque<Level> {
    let whole = |dir: &str| Level { dir: dir.into(), hint: None, tolerate_missing: false, is_hint: false };
    let hint = start_after.map(|h| if h.len() > 1 { h.trim_end_matches('/') } else { h });
    let Some(hint) = hint.filter(|h| !h.is_empty()) else {
        return VecDeque::from([whole(from)]);
    };
    if !is_at_or_under(hint, from) {
        // The hint lies outside `from`: all of it comes after the hint, or none of it does.
        return if cmp_components(hint, from).is_lt() { VecDeque::from([whole(from)]) } else { VecDeque::new() };
    }
    // Walk the hint's own level, then each ancestor up to `from`, each after the level below.
    let mut levels = VecDeque::new();
    let (mut base, mut level_hint) = (hint.to_string(), hint.to_string());
    loop {
        let at_from = base == from;
        levels.push_back(Level {
            dir: base.clone(),
            hint: Some(level_hint.clone()),
            tolerate_missing: !at_from,
            is_hint: base == hint && !at_from,
        });
        if at_from || base == "/" {
            break;
        }
        level_hint = base.clone();
        base = parent(&base).to_string();
    }
    levels
}

#[async_trait]
impl Walker for FallbackWalker {
    async fn next(&mut self) -> Result<Option<FileInfo>> {
        if self.failed {
            return Ok(None);
        }
        let next = self.advance().await;
        if next.is_err() {
            self.failed = true;
        }
        next
    }

    fn skip_dir(&mut self) {
        self.pending_dir = None;
    }
}

#[cfg(test)]
mod tests;
