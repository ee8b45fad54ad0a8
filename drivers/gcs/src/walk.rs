//! The native walk: one flat `objects.list` of everything under the walk's root, 1000 names a
//! page, emitted in regstore's order by the shared [`ListingWalker`] (upstream: a Stat per
//! entry; distribution PR #4951 asks for this).

use std::rc::Rc;

use regstore_objectstore::keys::KeyMap;
use regstore_objectstore::walk::{FlatLister, Listed, ListingWalker, Page};
use regstore_sdk::Result;

use crate::Inner;
use crate::api::{LIST_MAX, Object};

pub struct ObjectLister(pub Rc<Inner>);

pub type ObjectWalker = ListingWalker<ObjectLister>;

impl FlatLister for ObjectLister {
    fn list_page(&self, prefix: &str, start_after: Option<&str>, token: Option<&str>) -> Result<Page> {
        // startOffset includes the name itself; the walk drops whatever is not after its hint.
        let what = format!("listing {prefix:?} for a walk");
        let page = self.0.api.list(prefix, false, start_after, token, LIST_MAX, &what)?;
        let objects = page.items.into_iter().map(listed).collect();
        Ok(Page { objects, next: page.next_page_token.filter(|t| !t.is_empty()) })
    }

    fn is_dir(&self, path: &str) -> Result<bool> {
        self.0.is_dir(path)
    }

    fn keys(&self) -> &KeyMap {
        &self.0.keys
    }
}

/// An object as the walk sees it. An upload in progress is no file, but its directory exists,
/// as List and Stat see it: it goes in as a marker of that directory (a key ending in `/`).
fn listed(object: Object) -> Listed {
    if object.in_progress() {
        let dir = object.name.rsplit_once('/').map_or("", |(dir, _)| dir);
        return Listed { key: format!("{dir}/"), size: 0, modified_ns: 0 };
    }
    Listed { modified_ns: object.modified_ns(), size: object.size, key: object.name }
}

#[cfg(test)]
mod tests {
    use regstore_objectstore::flatwalk::FlatWalk;

    use super::*;
    use crate::api::UPLOAD_SESSION;

    fn object(name: &str, content_type: &str) -> Object {
        Object { name: name.into(), size: 3, content_type: Some(content_type.into()), ..Object::default() }
    }

    #[test]
    fn uploads_in_progress_leave_only_their_directory() {
        assert_eq!(listed(object("r/a/b/data", UPLOAD_SESSION)).key, "r/a/b/");
        let file = listed(object("r/a/b/startedat", "application/octet-stream"));
        assert_eq!((file.key.as_str(), file.size), ("r/a/b/startedat", 3));

        // In listing order, an upload's marker may come after names it sorts before: the walk
        // still reports each directory once, and never the upload.
        let keys = KeyMap::new("r");
        let names = [
            ("r/a/b/c", "application/octet-stream"),
            ("r/a/b/data", UPLOAD_SESSION),
            ("r/a/only/data", UPLOAD_SESSION),
            ("r/a/z", "application/octet-stream"),
        ];
        let mut walk = FlatWalk::new("/", None);
        for (name, kind) in names {
            let l = listed(object(name, kind));
            walk.push(keys.path(&l.key).unwrap(), l.size, l.modified_ns);
        }
        walk.finish();
        let mut seen = Vec::new();
        while let Some(entry) = walk.next_ready() {
            seen.push((entry.path, entry.is_dir));
        }
        let expected = [("/a", true), ("/a/b", true), ("/a/b/c", false), ("/a/only", true), ("/a/z", false)];
        assert_eq!(seen, expected.map(|(p, d)| (p.to_string(), d)));
    }
}
