//! Reads: one `alt=media` GET from the offset, pinned with `ifGenerationMatch` to the
//! generation the first answer names, resumed after a cut by the shared [`ResumingReader`].
//! Objects in progress read as missing, as Stat sees them (for GetContent too, unlike
//! upstream).

use std::rc::Rc;

use http::{Method, StatusCode};
use regstore_objectstore::Response;
use regstore_objectstore::http::{BodyStream, Head};
use regstore_objectstore::reader::{Range, RangeSource, ResumingReader};
use regstore_sdk::{Error, FileReader, Result};

use crate::Inner;
use crate::api::is_upload_session;

/// One object, as ranges of it are fetched.
pub struct ObjectRanges {
    gcs: Rc<Inner>,
    path: String,
    key: String,
}

pub type Reader = ResumingReader<ObjectRanges>;

/// A reader of `path` from `offset`; a missing path fails here.
pub fn open(gcs: Rc<Inner>, path: &str, offset: u64) -> Result<Reader> {
    let key = gcs.keys.key(path);
    ResumingReader::open(ObjectRanges { gcs, path: path.into(), key }, offset)
}

/// The whole content of `path`.
pub fn read_all(gcs: Rc<Inner>, path: &str) -> Result<Vec<u8>> {
    let mut reader = open(gcs, path, 0)?;
    let mut content = Vec::new();
    loop {
        let chunk = reader.read(4 << 20)?;
        if chunk.is_empty() {
            return Ok(content);
        }
        if content.is_empty() {
            content = chunk;
        } else {
            content.extend_from_slice(&chunk);
        }
    }
}

impl RangeSource for ObjectRanges {
    fn open_range(&self, offset: u64, version: Option<&str>) -> Result<Option<Range>> {
        let api = &self.gcs.api;
        let mut url = format!("{}?alt=media", api.object_url(&self.key));
        if let Some(generation) = version {
            url.push_str(&format!("&ifGenerationMatch={generation}"));
        }
        let what = format!("reading {}", self.path);
        let (head, body) = api.call_streaming(&what, || {
            let request = api.request(Method::GET, &url);
            // No Range from 0: an empty object then reads as empty, not as 416.
            Ok(if offset > 0 { request.header("range", format!("bytes={offset}-")) } else { request })
        })?;
        match head.status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                if head.header("content-type").is_some_and(is_upload_session) {
                    return Err(Error::not_found(&self.path));
                }
                if head.status == StatusCode::OK && offset > 0 {
                    return Err(Error::other(format!(
                        "{what} from byte {offset}: {} ignored the Range header",
                        api.endpoint()
                    )));
                }
                let total = total_size(&head);
                let version = head.header("x-goog-generation").map(str::to_string);
                Ok(Some(Range { body, version, total }))
            }
            StatusCode::NOT_FOUND => Err(Error::not_found(&self.path)),
            StatusCode::PRECONDITION_FAILED => {
                Err(Error::other(format!("{} changed while it was being read; read it again", self.path)))
            }
            // At or past the end (D3), unless the object is only an upload in progress.
            StatusCode::RANGE_NOT_SATISFIABLE => match api.get(&self.key, &what)? {
                Some(object) if !object.in_progress() => Ok(None),
                _ => Err(Error::not_found(&self.path)),
            },
            _ => Err(api.unexpected(&what, &error_response(head, body))),
        }
    }

    fn path(&self) -> &str {
        &self.path
    }
}

/// The object's size: `Content-Range: bytes a-b/size` of a 206, the length of a 200.
fn total_size(head: &Head) -> Option<u64> {
    if head.status == StatusCode::PARTIAL_CONTENT {
        return head.header("content-range")?.rsplit_once('/')?.1.trim().parse().ok();
    }
    if head.header("content-encoding").is_some_and(|e| !e.eq_ignore_ascii_case("identity")) {
        return None;
    }
    head.header("content-length")?.trim().parse().ok()
}

/// An error answer with the start of its body, for the message.
fn error_response(head: Head, mut body: BodyStream) -> Response {
    let text = body.read(16 << 10).unwrap_or_default();
    Response { status: head.status, headers: head.headers, body: text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> Head {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Head { status: StatusCode::from_u16(status).unwrap(), headers: map }
    }

    #[test]
    fn sizes_from_either_answer() {
        assert_eq!(total_size(&head(206, &[("content-range", "bytes 1-1/2")])), Some(2));
        // gcp-storage-emulator's answer at the end: an empty range, the size still right.
        assert_eq!(total_size(&head(206, &[("content-range", "bytes 3-1/2")])), Some(2));
        assert_eq!(total_size(&head(206, &[])), None);
        assert_eq!(total_size(&head(200, &[("content-length", "5")])), Some(5));
        assert_eq!(total_size(&head(200, &[("content-length", "5"), ("content-encoding", "gzip")])), None);
    }
}
