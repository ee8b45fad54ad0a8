//! Ranged reads of a blob, pinned to the ETag of the first answer and resumed after a cut by
//! the shared [`ResumingReader`].

use std::rc::Rc;

use http::{Method, StatusCode};
use regstore_objectstore::reader::{Range, RangeSource};
use regstore_sdk::{Error, Result};

use crate::api::Blobs;

pub struct BlobRange {
    pub blobs: Rc<Blobs>,
    pub path: String,
    pub key: String,
}

impl RangeSource for BlobRange {
    fn open_range(&self, offset: u64, version: Option<&str>) -> Result<Option<Range>> {
        let url = self.blobs.blob_url(&self.key);
        let what = format!("reading {}", self.path);
        let build = || {
            let mut request = self.blobs.request(Method::GET, &url).header("x-ms-range", format!("bytes={offset}-"));
            if let Some(etag) = version {
                request = request.header("if-match", etag);
            }
            self.blobs.auth.authorize(request)
        };
        let (head, body) = self.blobs.client.call_streaming(&what, build)?;
        match head.status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                let total = head
                    .header("content-range")
                    .and_then(|r| r.rsplit_once('/'))
                    .and_then(|(_, total)| total.parse().ok())
                    .or_else(|| head.header("content-length").and_then(|l| l.parse::<u64>().ok()).map(|l| l + offset));
                Ok(Some(Range { body, version: head.header("etag").map(str::to_string), total }))
            }
            // At or past the end: an empty stream (D3).
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(None),
            StatusCode::NOT_FOUND => Err(Error::not_found(&self.path)),
            StatusCode::PRECONDITION_FAILED => {
                Err(Error::other(format!("{} changed while it was being read; read it again", self.path)))
            }
            status => {
                let code = head.header("x-ms-error-code").unwrap_or("").to_string();
                Err(Error::other(format!("{what}: {} answered {status} {code}", self.blobs.client.endpoint())))
            }
        }
    }

    fn path(&self) -> &str {
        &self.path
    }
}
