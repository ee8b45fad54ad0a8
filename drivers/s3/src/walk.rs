//! Walk over one flat listing (no request per directory, unlike WalkFallback), emitted in
//! regstore's component-wise order (D2) by the SDK's [`FlatWalk`].

use std::rc::Rc;

use regstore_sdk::flatwalk::FlatWalk;
use regstore_sdk::{Error, FileInfo, Result, Walker};

use crate::client::run;
use crate::{Inner, LIST_MAX, modified_ns};

pub struct ObjectWalker {
    s3: Rc<Inner>,
    prefix: String,
    walk: FlatWalk,
    /// The listing's next page: `None` once the last page was read.
    next_page: Option<Page>,
}

enum Page {
    First(Option<String>),
    Continue(String),
}

impl ObjectWalker {
    /// Reads the first page now: a missing root is path-not-found (D9) at once.
    pub fn open(s3: Rc<Inner>, from: &str, start_after: Option<&str>) -> Result<Self> {
        let walk = FlatWalk::new(from, start_after);
        let start = walk.list_start_after().map(|p| s3.key(&p));
        let prefix = s3.keys.dir_prefix(from);
        let mut walker = ObjectWalker { s3, prefix, walk, next_page: Some(Page::First(start)) };
        if walker.walk.nothing_to_walk() {
            // The hint sorts after everything under `from`.
            walker.next_page = None;
            walker.walk.finish();
            return Ok(walker);
        }
        walker.read_page()?;
        if walker.next_page.is_none() {
            let missing = match walker.walk.root_not_found() {
                Some(missing) => missing,
                // A StartAfter was sent and nothing came back: look before it.
                None => !run(walker.s3.is_dir(from))?,
            };
            if missing {
                return Err(Error::not_found(from));
            }
        }
        Ok(walker)
    }

    fn read_page(&mut self) -> Result<()> {
        let (start_after, token) = match self.next_page.take() {
            None => return Ok(()),
            Some(Page::First(start)) => (start, None),
            Some(Page::Continue(token)) => (None, Some(token)),
        };
        let page = run(self.s3.list_page(&self.prefix, None, start_after, token, LIST_MAX))?;
        for object in page.contents.unwrap_or_default() {
            let Some(path) = object.key.as_deref().and_then(|k| self.s3.keys.path(k)) else { continue };
            self.walk.push(path, object.size.unwrap_or(0).max(0) as u64, modified_ns(object.last_modified.as_ref()));
        }
        match page.next_continuation_token.filter(|_| page.is_truncated == Some(true)) {
            Some(token) => self.next_page = Some(Page::Continue(token)),
            None => self.walk.finish(),
        }
        Ok(())
    }
}

impl Walker for ObjectWalker {
    fn next(&mut self) -> Result<Option<FileInfo>> {
        loop {
            if let Some(entry) = self.walk.next_ready() {
                return Ok(Some(entry));
            }
            if self.next_page.is_none() {
                return Ok(None);
            }
            self.read_page()?;
        }
    }

    fn skip_dir(&mut self) {
        self.walk.skip_dir();
    }
}
