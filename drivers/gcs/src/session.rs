//! The resumable upload protocol: start a session, send chunks with `Content-Range`, read what
//! the server persisted from a 308's `Range`, and after a cut or failed chunk ask the session
//! what it holds before sending again, so that no byte is stored twice or lost.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use regstore_objectstore::{Client, Failure, Idempotence, Response};
use regstore_sdk::{Error, Result};
use serde_json::json;

use crate::api::{Api, OCTET_STREAM, SERVICE, message, unexpected};
use crate::sign::encode;

/// Sends of a chunk in a row that make no progress before the write fails.
const MAX_TRIES: u32 = 6;

/// Where a session stands after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The session holds this many bytes (a 308).
    Stored(u64),
    /// The object is complete (a 200 or 201).
    Finished,
}

/// What one answer to a chunk means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Progress(Progress),
    /// Worth asking the session and sending again (a cut, 408, 429, 5xx, 401).
    Again(String),
    /// The session no longer exists.
    Gone(StatusCode),
    Fatal(Error),
}

/// One resumable upload session, for one path.
pub struct Session<'a> {
    api: &'a Api,
    /// For the session's own origin, which messages name.
    client: Client,
    /// The session URI (it authorises the upload by itself: never put it in messages).
    uri: String,
    /// The path being written, for messages.
    path: &'a str,
}

/// Starts a session for `key`; its URI comes back in `Location`.
pub fn start(api: &Api, key: &str, path: &str) -> Result<String> {
    let url = api.upload_url(&format!("uploadType=resumable&name={}", encode(key, false)));
    let what = format!("starting a resumable upload of {path}");
    let body = json!({ "name": key, "contentType": OCTET_STREAM }).to_string();
    // A session started twice is harmless: the spare one expires unused.
    let response = api.call(&what, Idempotence::Safe, || {
        Ok(api
            .request(Method::POST, &url)
            .header("x-upload-content-type", OCTET_STREAM)
            .header("content-type", "application/json; charset=UTF-8")
            .body(body.clone()))
    })?;
    if !response.status.is_success() {
        return Err(api.no_bucket(&what, &response));
    }
    match response.header("location").filter(|l| l.starts_with("http")) {
        Some(location) => Ok(location.to_string()),
        None => Err(Error::other(format!("{what}: {} answered without a session URI (Location)", api.endpoint()))),
    }
}

impl<'a> Session<'a> {
    /// The session at `uri` (as `start` or a state object gave it) for `path`.
    pub fn new(api: &'a Api, uri: &str, path: &'a str) -> Self {
        let uri = api.session_url(uri);
        let mut client = Client::new(SERVICE, &uri);
        client.timeouts = api.client.timeouts;
        client.retry = api.client.retry;
        Session { api, client, uri, path }
    }

    /// Sends `data`, the bytes from offset `from`, until the session holds all of them; with
    /// `total` (the object's size) this is the last chunk and the upload is finished.
    pub fn upload(&self, from: u64, data: Bytes, total: Option<u64>) -> Result<Progress> {
        let end = from + data.len() as u64;
        let mut stored = from;
        let mut fruitless = 0;
        // Why the last send was repeated, for messages.
        let mut trouble: Option<String> = None;
        loop {
            let rest = data.slice((stored - from) as usize..);
            if rest.is_empty() && total.is_none() {
                return Ok(Progress::Stored(stored));
            }
            let answer = self.send(stored, rest, total);
            let progress = match answer {
                Answer::Progress(p) => p,
                Answer::Gone(status) => return Err(self.gone(status)),
                Answer::Fatal(e) => return Err(e),
                Answer::Again(cause) => {
                    fruitless += 1;
                    if fruitless >= MAX_TRIES {
                        return Err(Error::other(format!(
                            "writing {} at byte {stored}: {cause} ({fruitless} times in a row)",
                            self.path
                        )));
                    }
                    regstore_objectstore::retry::sleep(Duration::from_millis(100 << fruitless.min(6)));
                    trouble = Some(cause);
                    // The chunk may have arrived whole or in part: ask before sending again.
                    self.query(stored)?
                }
            };
            match progress {
                Progress::Finished if total.is_some() => return Ok(Progress::Finished),
                Progress::Finished => {
                    let after = trouble.map_or(String::new(), |t| format!(" (asked after: {t})"));
                    return Err(Error::other(format!(
                        "writing {}: {} finished the upload before its last chunk{after}",
                        self.path,
                        self.client.endpoint()
                    )));
                }
                Progress::Stored(n) if n < stored || n > end => {
                    let after = trouble.map_or(String::new(), |t| format!(" (asked after: {t})"));
                    return Err(Error::other(format!(
                        "writing {}: the upload session holds {n} bytes, but {stored} were confirmed and \
                         {end} sent; it cannot be continued{after}",
                        self.path
                    )));
                }
                Progress::Stored(n) if n == stored => {
                    // An answer that took nothing counts as a failed send.
                    fruitless += 1;
                    if fruitless >= MAX_TRIES {
                        return Err(Error::other(format!(
                            "writing {} at byte {stored}: the upload session took none of the bytes \
                             ({fruitless} times in a row)",
                            self.path
                        )));
                    }
                }
                Progress::Stored(n) => {
                    fruitless = 0;
                    stored = n;
                }
            }
        }
    }

    /// One PUT of `data` from `from`.
    fn send(&self, from: u64, data: Bytes, total: Option<u64>) -> Answer {
        let range = content_range(from, data.len() as u64, total);
        let request = match self.api.auth.authorize(
            self.api
                .request(Method::PUT, &self.uri)
                .header("content-range", range)
                .header("content-type", OCTET_STREAM)
                .body(data),
        ) {
            Ok(r) => r,
            Err(e) => return Answer::Fatal(e),
        };
        match self.client.send(&request) {
            Ok(response) => {
                if response.status == StatusCode::UNAUTHORIZED {
                    self.api.auth.invalidate();
                }
                self.classify(&response)
            }
            Err(failure) => self.failed(failure),
        }
    }

    fn failed(&self, failure: Failure) -> Answer {
        let cause = failure.cause().to_string();
        if failure.is_transient() {
            Answer::Again(cause)
        } else {
            Answer::Fatal(Error::other(format!("writing {}: {cause}", self.path)))
        }
    }

    fn classify(&self, response: &Response) -> Answer {
        match response.status.as_u16() {
            200 | 201 => Answer::Progress(Progress::Finished),
            308 => Answer::Progress(Progress::Stored(stored_bytes(response.header("range")))),
            404 | 410 | 499 => Answer::Gone(response.status),
            401 | 408 | 429 | 500..=599 => {
                Answer::Again(format!("{} answered {}", self.client.endpoint(), response.status))
            }
            _ => Answer::Fatal(unexpected(
                &format!("writing {}", self.path),
                self.client.endpoint(),
                response.status,
                &message(response),
            )),
        }
    }

    /// Asks the session how many bytes it holds (or whether it finished); `known` is what the
    /// driver knows to be stored.
    pub fn query(&self, known: u64) -> Result<Progress> {
        let what = format!("asking the upload session of {} what it holds", self.path);
        let response = self.api.auth.call(&self.client, &what, Idempotence::Safe, || {
            Ok(self.api.request(Method::PUT, &self.uri).header("content-range", "bytes */*"))
        })?;
        match self.classify(&response) {
            // gcp-storage-emulator answers `bytes=0-0` before any byte; a writer that sends
            // 256 KiB chunks is never one byte in.
            Answer::Progress(Progress::Stored(1)) if known == 0 => Ok(Progress::Stored(0)),
            Answer::Progress(p) => Ok(p),
            Answer::Gone(status) => Err(self.gone(status)),
            Answer::Again(cause) => Err(Error::other(format!("{what}: {cause}"))),
            Answer::Fatal(e) => Err(e),
        }
    }

    /// Ends the session (distribution leaves it to expire). Best effort: it expires in a week
    /// anyway, and the emulators answer 499 or 501.
    pub fn cancel(&self) {
        let request = self.api.request(Method::DELETE, &self.uri);
        if let Ok(request) = self.api.auth.authorize(request) {
            let _ = self.client.send(&request);
        }
    }

    fn gone(&self, status: StatusCode) -> Error {
        Error::other(format!(
            "the resumable upload of {} is gone ({} answered {status}): its session expired or was cancelled; \
             write the content again",
            self.path,
            self.client.endpoint()
        ))
    }
}

/// `bytes from-last/total`, `bytes from-last/*` for a chunk of unknown total, `bytes */total`
/// for an empty last chunk.
fn content_range(from: u64, len: u64, total: Option<u64>) -> String {
    let total = total.map_or("*".to_string(), |t| t.to_string());
    if len == 0 { format!("bytes */{total}") } else { format!("bytes {from}-{}/{total}", from + len - 1) }
}

/// The bytes a 308 says the session holds: `Range: bytes=0-N` is N+1; no `Range` is none yet
/// (real GCS omits it before the first byte; distribution's driver crashed on that).
fn stored_bytes(range: Option<&str>) -> u64 {
    range
        .and_then(|r| r.trim().strip_prefix("bytes=0-"))
        .and_then(|end| end.trim().parse::<u64>().ok())
        .map_or(0, |end| end + 1)
}

/// A request that asks nothing of the server, for tests of the classification.
#[cfg(test)]
fn answer(status: u16, range: Option<&str>) -> Response {
    let mut headers = http::HeaderMap::new();
    if let Some(r) = range {
        headers.insert("range", r.parse().unwrap());
    }
    Response { status: StatusCode::from_u16(status).unwrap(), headers, body: Bytes::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Auth;

    #[test]
    fn content_ranges() {
        assert_eq!(content_range(0, 262_144, None), "bytes 0-262143/*");
        assert_eq!(content_range(262_144, 10, Some(262_154)), "bytes 262144-262153/262154");
        assert_eq!(content_range(524_288, 0, Some(524_288)), "bytes */524288");
        assert_eq!(content_range(0, 0, Some(0)), "bytes */0");
    }

    #[test]
    fn stored_ranges() {
        assert_eq!(stored_bytes(Some("bytes=0-262143")), 262_144);
        assert_eq!(stored_bytes(None), 0, "no Range: nothing stored yet");
        assert_eq!(stored_bytes(Some("garbage")), 0);
    }

    #[test]
    fn answers_to_a_chunk() {
        let api = Api::new("http://127.0.0.1:1", "b", Auth::anonymous(), None);
        let s = Session::new(&api, "http://127.0.0.1:1/upload?upload_id=x", "/p");
        assert_eq!(s.classify(&answer(308, Some("bytes=0-9"))), Answer::Progress(Progress::Stored(10)));
        assert_eq!(s.classify(&answer(308, None)), Answer::Progress(Progress::Stored(0)));
        assert_eq!(s.classify(&answer(200, None)), Answer::Progress(Progress::Finished));
        assert_eq!(s.classify(&answer(201, None)), Answer::Progress(Progress::Finished));
        for gone in [404, 410, 499] {
            assert_eq!(s.classify(&answer(gone, None)), Answer::Gone(StatusCode::from_u16(gone).unwrap()));
        }
        for again in [401, 408, 429, 500, 503] {
            assert!(matches!(s.classify(&answer(again, None)), Answer::Again(_)), "{again}");
        }
        let Answer::Fatal(e) = s.classify(&answer(400, None)) else { panic!("400 is final") };
        assert_eq!(e, Error::other("writing /p: http://127.0.0.1:1 answered 400 Bad Request"));
        let gone = s.gone(StatusCode::GONE).to_string();
        assert!(gone.contains("/p") && gone.contains("http://127.0.0.1:1") && !gone.contains("upload_id"), "{gone}");
    }
}
