//! Walk over one flat listing (no request per directory, unlike WalkFallback), emitted in
//! regstore's component-wise order (D2) by the shared [`ListingWalker`].

use std::rc::Rc;

use regstore_objectstore::keys::KeyMap;
use regstore_objectstore::walk::{FlatLister, Listed, ListingWalker, Page};
use regstore_sdk::Result;

use crate::client::run;
use crate::{Inner, LIST_MAX, modified_ns};

/// ListObjectsV2 without a delimiter, as the shared walk wants it.
pub struct S3Lister(pub Rc<Inner>);

pub type ObjectWalker = ListingWalker<S3Lister>;

impl FlatLister for S3Lister {
    fn list_page(&self, prefix: &str, start_after: Option<&str>, token: Option<&str>) -> Result<Page> {
        let page =
            run(self.0.list_page(prefix, None, start_after.map(String::from), token.map(String::from), LIST_MAX))?;
        let objects = page
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                let key = o.key?;
                Some(Listed {
                    key,
                    size: o.size.unwrap_or(0).max(0) as u64,
                    modified_ns: modified_ns(o.last_modified.as_ref()),
                })
            })
            .collect();
        let next = page.next_continuation_token.filter(|_| page.is_truncated == Some(true));
        Ok(Page { objects, next })
    }

    fn is_dir(&self, path: &str) -> Result<bool> {
        run(self.0.is_dir(path))
    }

    fn keys(&self) -> &KeyMap {
        &self.0.keys
    }
}
