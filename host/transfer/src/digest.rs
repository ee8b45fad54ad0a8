//! Content digests: which paths are blobs named by their sha256, and a reader that hashes
//! what passes through it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// The hex sha256 a registry blob's path names: `…/blobs/sha256/XX/HEX/data`, where XX is the
/// first two characters of HEX. `None` for every other path.
pub fn blob_digest(path: &str) -> Option<&str> {
    let mut parts = path.rsplit('/');
    let (data, hex, prefix, algorithm, blobs) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (data == "data"
        && blobs == "blobs"
        && algorithm == "sha256"
        && is_hex
        && hex.starts_with(prefix)
        && prefix.len() == 2)
        .then_some(hex)
}

/// Passes reads through, hashing them and counting their bytes.
pub struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    /// Called with the length of every read, for progress.
    on_read: Option<Box<dyn FnMut(u64) + Send + 'a>>,
}

impl<'a, R> HashingReader<'a, R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0, on_read: None }
    }

    /// Also reports the length of every read to `f`.
    pub fn on_read(mut self, f: impl FnMut(u64) + Send + 'a) -> Self {
        self.on_read = Some(Box::new(f));
        self
    }

    /// The bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The lower-case hex sha256 of what was read.
    pub fn hex_digest(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for HashingReader<'_, R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            let new = &buf.filled()[before..];
            this.hasher.update(new);
            this.bytes += new.len() as u64;
            if let (Some(f), false) = (this.on_read.as_mut(), new.is_empty()) {
                f(new.len() as u64);
            }
        }
        polled
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn blob_paths_name_their_digest() {
        let path = format!("/docker/registry/v2/blobs/sha256/e3/{EMPTY}/data");
        assert_eq!(blob_digest(&path), Some(EMPTY));
        for other in [
            format!("/docker/registry/v2/blobs/sha256/ab/{EMPTY}/data"),
            format!("/docker/registry/v2/blobs/sha512/e3/{EMPTY}/data"),
            format!("/docker/registry/v2/blobs/sha256/e3/{EMPTY}/link"),
            format!("/docker/registry/v2/repositories/r/_layers/sha256/{EMPTY}/link"),
            format!("/blobs/sha256/e3/{}/data", EMPTY.to_uppercase()),
            "/blobs/sha256/e3/e3b0/data".to_string(),
            "/data".to_string(),
        ] {
            assert_eq!(blob_digest(&other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn hashes_what_it_reads() {
        let mut reader = HashingReader::new(&b""[..]);
        reader.read_to_end(&mut Vec::new()).await.unwrap();
        assert_eq!((reader.hex_digest(), reader.bytes()), (EMPTY.to_string(), 0));
        let mut reader = HashingReader::new(&b"abc"[..]);
        reader.read_to_end(&mut Vec::new()).await.unwrap();
        // FIPS 180-2's test vector.
        assert_eq!(reader.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
