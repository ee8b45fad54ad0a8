//! Content on its way to a path, so that the path only ever holds the old content or the new,
//! whole: up to [`WHOLE_PUT_MAX`] bytes are held and stored with one PutContent; more are
//! written under [`STAGING_DIR`] and moved into place. What an interrupted transfer leaves is
//! only ever under the staging folder.

use regstore_api::{Error, FileWriterIo, StorageDriver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The most content one PutContent carries; larger content is staged and moved.
pub const WHOLE_PUT_MAX: usize = 8 << 20;

/// Where large content is staged, one path per transfer. Nothing else is ever written here.
pub const STAGING_DIR: &str = "/regstore-staging";

/// Content read to its end, not yet at its path.
#[derive(Debug)]
#[must_use = "staged content is published or discarded"]
pub enum Staged {
    /// Small content, held in memory.
    Whole(Vec<u8>),
    /// Larger content, committed at a staging path.
    At { staging: String, size: u64 },
}

/// Why content could not be staged.
#[derive(Debug)]
pub enum StageError {
    /// The source failed to read (for a driver's reader, the driver's error is inside).
    Source(std::io::Error),
    /// The destination driver failed.
    Destination(Error),
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageError::Source(e) => write!(f, "reading the content: {e}"),
            StageError::Destination(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StageError {}

/// Reads `source` to its end into `driver`: held in memory up to `whole_max` bytes (at most
/// [`WHOLE_PUT_MAX`]), else written to a fresh staging path. A source that fails to read
/// leaves nothing behind.
pub async fn stage(
    driver: &dyn StorageDriver,
    source: &mut (dyn AsyncRead + Unpin + Send),
    whole_max: usize,
) -> Result<Staged, StageError> {
    let whole_max = whole_max.min(WHOLE_PUT_MAX);
    let mut head = Vec::new();
    source.take(whole_max as u64 + 1).read_to_end(&mut head).await.map_err(StageError::Source)?;
    if head.len() <= whole_max {
        return Ok(Staged::Whole(head));
    }
    let staging = format!("{STAGING_DIR}/{}-{:016x}", std::process::id(), nonce());
    let mut io = FileWriterIo::new(driver.writer(&staging, false).await.map_err(StageError::Destination)?);
    let copied = async {
        io.write_all(&head).await?;
        Ok::<u64, std::io::Error>(head.len() as u64 + tokio::io::copy(source, &mut io).await?)
    }
    .await;
    let size = match copied {
        Ok(size) => size,
        Err(e) => {
            if let Ok(mut writer) = io.into_inner().await {
                let _ = writer.cancel().await;
            }
            let _ = driver.delete(&staging).await;
            // The writer's errors come back typed from the adapter; the rest is the source's.
            return Err(if written_by_destination(&e, driver) {
                StageError::Destination(Error::from(e))
            } else {
                StageError::Source(e)
            });
        }
    };
    let published = async {
        let mut writer = io.into_inner().await?;
        writer.commit().await?;
        writer.close().await
    }
    .await;
    if let Err(e) = published {
        let _ = driver.delete(&staging).await;
        return Err(StageError::Destination(e));
    }
    Ok(Staged::At { staging, size })
}

impl Staged {
    /// The content's length.
    pub fn size(&self) -> u64 {
        match self {
            Staged::Whole(content) => content.len() as u64,
            Staged::At { size, .. } => *size,
        }
    }

    /// Puts the content at `path`, replacing what is there in one step.
    pub async fn publish(self, driver: &dyn StorageDriver, path: &str) -> Result<(), Error> {
        match self {
            Staged::Whole(content) => driver.put_content(path, &content).await,
            Staged::At { staging, .. } => {
                let moved = driver.move_file(&staging, path).await;
                if moved.is_err() {
                    let _ = driver.delete(&staging).await;
                }
                moved
            }
        }
    }

    /// Drops the content; the destination was never touched.
    pub async fn discard(self, driver: &dyn StorageDriver) {
        if let Staged::At { staging, .. } = self {
            let _ = driver.delete(&staging).await;
        }
    }
}

/// Whether an I/O error from the copy loop is the destination's: a typed error naming it.
fn written_by_destination(e: &std::io::Error, driver: &dyn StorageDriver) -> bool {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()).and_then(Error::driver) == Some(driver.name())
}

/// A value that differs between transfers, for staging names.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    RandomState::new().hash_one(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn inmemory() -> std::sync::Arc<dyn StorageDriver> {
        regstore_native::open_boxed("inmemory", &Map::new()).unwrap()
    }

    #[tokio::test]
    async fn small_content_is_held_and_large_content_staged() {
        let driver = inmemory();
        let staged = stage(&*driver, &mut &b"small"[..], 1024).await.unwrap();
        assert!(matches!(&staged, Staged::Whole(c) if c == b"small"));
        staged.publish(&*driver, "/a").await.unwrap();
        assert_eq!(driver.get_content("/a").await.unwrap(), b"small");

        let large = vec![7u8; 3000];
        let staged = stage(&*driver, &mut &large[..], 1024).await.unwrap();
        let Staged::At { staging, size } = &staged else { panic!("staged in memory") };
        assert!(staging.starts_with("/regstore-staging/") && *size == 3000);
        assert_eq!(driver.get_content("/a").await.unwrap(), b"small", "untouched until published");
        staged.publish(&*driver, "/a").await.unwrap();
        assert_eq!(driver.get_content("/a").await.unwrap(), large);
        assert!(driver.list("/regstore-staging").await.is_err(), "nothing is left staged");
    }

    #[tokio::test]
    async fn discarded_or_failed_content_leaves_nothing() {
        let driver = inmemory();
        driver.put_content("/a", b"old").await.unwrap();
        let staged = stage(&*driver, &mut &vec![1u8; 5000][..], 1024).await.unwrap();
        staged.discard(&*driver).await;
        assert_eq!(driver.get_content("/a").await.unwrap(), b"old");
        assert!(driver.list("/regstore-staging").await.is_err());

        // A source that fails half-way: nothing staged is left.
        let failing = tokio::io::AsyncReadExt::chain(&[9u8; 4000][..], Failing);
        let e = stage(&*driver, &mut Box::pin(failing), 1024).await.unwrap_err();
        assert!(matches!(e, StageError::Source(_)), "{e:?}");
        assert_eq!(e.to_string(), "reading the content: the disk went away");
        assert!(driver.list("/regstore-staging").await.is_err());
    }

    struct Failing;

    impl AsyncRead for Failing {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("the disk went away")))
        }
    }
}
