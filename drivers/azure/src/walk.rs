//! A native walk from one flat listing of the walk's root (5,000 names per request), through
//! the shared flat-walk code: never a request per directory.

use std::rc::Rc;

use regstore_objectstore::keys::KeyMap;
use regstore_objectstore::walk::{FlatLister, ListingWalker, Page};
use regstore_sdk::Result;

use crate::api::{Blobs, LIST_MAX};

pub struct BlobLister(pub Rc<Blobs>);

pub type BlobWalker = ListingWalker<BlobLister>;

impl FlatLister for BlobLister {
    /// List Blobs has no start-after; the walk skips what lies before its hint.
    fn list_page(&self, prefix: &str, _start_after: Option<&str>, token: Option<&str>) -> Result<Page> {
        let listing = self.0.list(prefix, false, token, LIST_MAX)?;
        Ok(Page { objects: listing.blobs, next: listing.next_marker })
    }

    fn is_dir(&self, path: &str) -> Result<bool> {
        self.0.any_under(&self.0.keys.dir_prefix(path))
    }

    fn keys(&self) -> &KeyMap {
        &self.0.keys
    }
}
