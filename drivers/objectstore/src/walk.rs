//! A native walk from one flat, paginated listing of every key under the walk's root (never a
//! request per directory), emitted in regstore's order by [`FlatWalk`].

use regstore_sdk::{Error, FileInfo, Result, Walker};

use crate::flatwalk::FlatWalk;
use crate::keys::KeyMap;

/// An object as a flat listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified_ns: u64,
}

/// One page of a listing, in key byte order.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// The token of the next page; `None` after the last one.
    pub next: Option<String>,
}

/// The listing calls a cloud driver provides.
pub trait FlatLister: 'static {
    /// Keys starting with `prefix`, without a delimiter. The first page (no `token`) may start
    /// after `start_after` (a key) where the service can; listing from the start is correct too,
    /// only slower.
    fn list_page(&self, prefix: &str, start_after: Option<&str>, token: Option<&str>) -> Result<Page>;

    /// Whether any key lies under `path/` (asked only when a start-after hint skipped them all).
    fn is_dir(&self, path: &str) -> Result<bool>;

    fn keys(&self) -> &KeyMap;
}

enum Next {
    First(Option<String>),
    Continue(String),
}

pub struct ListingWalker<L: FlatLister> {
    lister: L,
    prefix: String,
    walk: FlatWalk,
    /// `None` once the last page was read.
    next: Option<Next>,
}

impl<L: FlatLister> ListingWalker<L> {
    /// Reads the first page now, so that a missing root is path-not-found (D9) at once.
    pub fn open(lister: L, from: &str, start_after: Option<&str>) -> Result<Self> {
        let walk = FlatWalk::new(from, start_after);
        let start = walk.list_start_after().map(|p| lister.keys().key(&p));
        let prefix = lister.keys().dir_prefix(from);
        let mut walker = ListingWalker { lister, prefix, walk, next: Some(Next::First(start)) };
        if walker.walk.nothing_to_walk() {
            // The hint sorts after everything under `from`.
            walker.next = None;
            walker.walk.finish();
            return Ok(walker);
        }
        walker.read_page()?;
        if walker.next.is_none() {
            let missing = match walker.walk.root_not_found() {
                Some(missing) => missing,
                // Listed after the hint and nothing came back: look before it.
                None => !walker.lister.is_dir(from)?,
            };
            if missing {
                return Err(Error::not_found(from));
            }
        }
        Ok(walker)
    }

    fn read_page(&mut self) -> Result<()> {
        let (start_after, token) = match self.next.take() {
            None => return Ok(()),
            Some(Next::First(start)) => (start, None),
            Some(Next::Continue(token)) => (None, Some(token)),
        };
        let page = self.lister.list_page(&self.prefix, start_after.as_deref(), token.as_deref())?;
        for object in page.objects {
            if let Some(path) = self.lister.keys().path(&object.key) {
                self.walk.push(path, object.size, object.modified_ns);
            }
        }
        match page.next {
            Some(token) => self.next = Some(Next::Continue(token)),
            None => self.walk.finish(),
        }
        Ok(())
    }
}

impl<L: FlatLister> Walker for ListingWalker<L> {
    fn next(&mut self) -> Result<Option<FileInfo>> {
        loop {
            if let Some(entry) = self.walk.next_ready() {
                return Ok(Some(entry));
            }
            if self.next.is_none() {
                return Ok(None);
            }
            self.read_page()?;
        }
    }

    fn skip_dir(&mut self) {
        self.walk.skip_dir();
    }
}
