//! Readers and writers: round trips, offsets, resume and append, concurrency (tests 11–22,
//! 35, 36).

use std::sync::Arc;

use regstore_api::{ErrorKind, FileWriterIo, ReaderIo, StorageDriver};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::util::*;
use crate::{Ctx, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("TestWriteReadStreams1", |cx| streams(cx, b"a".to_vec())),
        Test::new("TestWriteReadStreams2", |cx| streams(cx, b"\xc3\x9f".to_vec())),
        Test::new("TestWriteReadStreams3", |cx| streams(cx, random_contents(32))),
        Test::new("TestWriteReadStreams4", |cx| streams(cx, random_contents(1 << 20))),
        Test::new("TestWriteReadStreamsNonUTF8", |cx| streams(cx, vec![0x80; 4])),
        Test::new("TestWriteReadLargeStreams", write_read_large_streams),
        Test::new("TestReaderWithOffset", reader_with_offset),
        Test::new("TestContinueStreamAppendLarge", |cx| continue_stream_append(cx, 10 << 20)),
        Test::new("TestContinueStreamAppendSmall", |cx| continue_stream_append(cx, 32)),
        Test::new("TestReadNonexistentStream", read_nonexistent_stream),
        Test::new("TestWriteZeroByteStreamThenAppend", |cx| zero_byte_then_append(cx, false)),
        Test::new("TestWriteZeroByteContentThenAppend", |cx| zero_byte_then_append(cx, true)),
        Test::new("TestConcurrentStreamReads", concurrent_stream_reads),
        Test::new("TestConcurrentFileStreams", concurrent_file_streams),
    ]
}

async fn streams(cx: Ctx, data: Vec<u8>) -> TestResult {
    write_read_compare_streams(cx.d(), &random_path(32), &data).await?;
    PASSED
}

async fn write_read_large_streams(cx: Ctx) -> TestResult {
    if cx.config.short {
        return Ok(Outcome::Skipped("short mode".into()));
    }
    // No larger than the driver can hold (an in-memory store in a 32-bit guest cannot hold 5 GiB).
    let size = cx.caps().max_object_size.map_or(cx.config.large_stream_size, |m| m.min(cx.config.large_stream_size));
    let path = random_path(32);
    let mut source = HashingReader { inner: RandomReader::new(size), hash: Sha256::new() };
    let (mut writer, written) = copy_into_writer(cx.d(), &path, false, &mut source).await?;
    ensure_eq!(written, size, "bytes copied into the writer");
    writer.commit().await.ctx("Commit")?;
    writer.close().await.ctx("Close")?;
    drop(writer);
    let mut reader = ReaderIo::new(cx.d().reader(&path, 0).await.ctx("Reader")?);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buf).await.ctx("reading back")?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        read += n as u64;
    }
    ensure_eq!(read, size, "bytes read back");
    ensure!(hash.finalize() == source.hash.finalize(), "the content read back differs (SHA-256)");
    cx.d().delete(&first_part(&path)).await.ctx("Delete")?;
    Ok(Outcome::Passed(Some(format!("{} MiB", size >> 20))))
}

/// Hashes what passes through it.
struct HashingReader {
    inner: RandomReader,
    hash: Sha256,
}

impl tokio::io::AsyncRead for HashingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        this.hash.update(&buf.filled()[before..]);
        poll
    }
}

async fn reader_with_offset(cx: Ctx) -> TestResult {
    let (d, name) = (cx.d(), cx.name());
    let path = random_path(32);
    let chunk = 32usize;
    let content = random_contents(3 * chunk);
    d.put_content(&path, &content).await.ctx("PutContent")?;
    for offset in [0usize, chunk, 2 * chunk] {
        let got = read_all(d.reader(&path, offset as i64).await.ctx("Reader")?).await?;
        ensure!(got == content[offset..], "Reader({offset}) returned the wrong suffix");
    }
    let e = expect_error(d.reader(&path, -1).await.map(|_| ()), ErrorKind::InvalidOffset, name, "Reader(-1)")?;
    ensure!(
        matches!(&e, regstore_api::Error::InvalidOffset { offset: -1, path: p, .. } if *p == path),
        "Reader(-1) must carry the offset -1 and the path: {e:?}"
    );
    let mut at_end = d.reader(&path, 3 * chunk as i64).await.ctx("Reader at the size")?;
    ensure!(at_end.read_chunk().await.ctx("read at the size")?.is_none(), "Reader at the size must be empty");
    let mut last = d.reader(&path, 3 * chunk as i64 - 1).await.ctx("Reader at the last byte")?;
    let first = last.read_chunk().await.ctx("first read")?.unwrap_or_default();
    ensure_eq!(first, content[3 * chunk - 1..].to_vec(), "the last byte");
    ensure!(last.read_chunk().await.ctx("second read")?.is_none(), "the stream must end after the last byte");
    d.delete(&first_part(&path)).await.ctx("Delete")?;
    PASSED
}

/// `testContinueStreamAppend(n)`: write, Close, resume twice, Commit; the content is in order.
async fn continue_stream_append(cx: Ctx, n: usize) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    let content = random_contents(3 * n);
    let (mut w, copied) = copy_into_writer(d, &path, false, &mut &content[..n]).await?;
    ensure_eq!(copied, n as u64, "bytes copied");
    w.close().await.ctx("Close")?;
    ensure_eq!(w.size(), n as u64, "Size after Close");
    drop(w);

    let mut w = d.writer(&path, true).await.ctx("Writer(append)")?;
    ensure_eq!(w.size(), n as u64, "Size straight after resuming");
    write_all(&mut *w, &content[n..2 * n]).await?;
    w.close().await.ctx("Close")?;
    ensure_eq!(w.size(), 2 * n as u64, "Size after the second Close");
    drop(w);

    let mut w = d.writer(&path, true).await.ctx("Writer(append) again")?;
    ensure_eq!(w.size(), 2 * n as u64, "Size straight after resuming again");
    write_all(&mut *w, &content[2 * n..]).await?;
    w.commit().await.ctx("Commit")?;
    w.close().await.ctx("Close after Commit")?;
    ensure_eq!(w.size(), 3 * n as u64, "Size after Commit");
    drop(w);

    let got = d.get_content(&path).await.ctx("GetContent")?;
    ensure!(got == content, "the appended content is not all 3×{n} bytes in order (got {} bytes)", got.len());
    d.delete(&first_part(&path)).await.ctx("Delete")?;
    PASSED
}

/// Writes all of `data` through a writer, in the chunks a FileWriterIo would use.
pub async fn write_all(w: &mut dyn regstore_api::FileWriter, data: &[u8]) -> Result<(), Failure> {
    for chunk in data.chunks(regstore_api::DEFAULT_CHUNK_SIZE) {
        let n = w.write(chunk).await.ctx("Write")?;
        ensure_eq!(n, chunk.len(), "bytes accepted by Write");
    }
    Ok(())
}

async fn read_nonexistent_stream(cx: Ctx) -> TestResult {
    let path = random_path(32);
    for offset in [0, 64] {
        expect_error(
            cx.d().reader(&path, offset).await.map(|_| ()),
            ErrorKind::PathNotFound,
            cx.name(),
            &format!("Reader(missing, {offset})"),
        )?;
    }
    PASSED
}

/// `TestWriteZeroByte{Stream,Content}ThenAppend`: appending to empty committed content works.
async fn zero_byte_then_append(cx: Ctx, by_put_content: bool) -> TestResult {
    let d = cx.d();
    let path = random_path(32);
    if by_put_content {
        d.put_content(&path, &[]).await.ctx("PutContent of nothing")?;
    } else {
        let mut w = d.writer(&path, false).await.ctx("Writer")?;
        w.commit().await.ctx("Commit")?;
        w.close().await.ctx("Close")?;
        ensure_eq!(w.size(), 0, "Size of the empty writer");
    }
    let mut r = d.reader(&path, 0).await.ctx("Reader")?;
    ensure!(r.read_chunk().await.ctx("read")?.is_none(), "the empty content must read as empty");
    drop(r);

    let content = random_contents(32);
    let mut w = d.writer(&path, true).await.ctx("Writer(append) on empty content")?;
    write_all(&mut *w, &content).await?;
    w.commit().await.ctx("Commit")?;
    w.close().await.ctx("Close")?;
    ensure_eq!(w.size(), 32, "Size after appending");
    drop(w);
    let got = read_all(d.reader(&path, 0).await.ctx("Reader")?).await?;
    ensure!(got == content, "the appended bytes were not read back");
    d.delete(&first_part(&path)).await.ctx("Delete")?;
    PASSED
}

async fn concurrent_stream_reads(cx: Ctx) -> TestResult {
    let size: usize = if cx.config.short { 10 << 20 } else { 128 << 20 };
    let path = random_path(32);
    let content = Arc::new(random_contents(size));
    cx.d().put_content(&path, &content).await.ctx("PutContent")?;
    let mut readers = Vec::new();
    for _ in 0..10 {
        let (driver, path, content) = (cx.driver.clone(), path.clone(), content.clone());
        let offset = rand::random_range(0..size);
        readers.push(tokio::spawn(async move {
            let got = read_all(driver.reader(&path, offset as i64).await.ctx("Reader")?).await?;
            ensure!(got[..] == content[offset..], "the reader at {offset} returned the wrong suffix");
            Ok::<_, Failure>(())
        }));
    }
    for r in readers {
        r.await.map_err(|e| format!("a reader task failed: {e}"))??;
    }
    cx.d().delete(&first_part(&path)).await.ctx("Delete")?;
    PASSED
}

async fn concurrent_file_streams(cx: Ctx) -> TestResult {
    let streams = if cx.config.short { 8 } else { 32 };
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let driver = cx.driver.clone();
        tasks.push(tokio::spawn(async move { file_stream(&*driver, streams << 20).await }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("a stream task failed: {e}"))??;
    }
    PASSED
}

/// `testFileStreams(size)`: a local file copied into a writer, read back and compared.
async fn file_stream(d: &dyn StorageDriver, size: usize) -> Result<(), Failure> {
    let path = random_path(32);
    let content = random_contents(size);
    let tmp = tempfile::tempfile().ctx("creating a temporary file")?;
    let mut file = tokio::fs::File::from_std(tmp);
    file.write_all(&content).await.ctx("filling the temporary file")?;
    file.sync_all().await.ctx("syncing the temporary file")?;
    file.seek(std::io::SeekFrom::Start(0)).await.ctx("seeking")?;
    let writer = d.writer(&path, false).await.ctx("Writer")?;
    let mut io = FileWriterIo::new(writer);
    let n = tokio::io::copy(&mut file, &mut io).await.ctx("copying")?;
    ensure_eq!(n, size as u64, "bytes copied");
    let mut writer = io.into_inner().await.ctx("flushing")?;
    writer.commit().await.ctx("Commit")?;
    writer.close().await.ctx("Close")?;
    drop(writer);
    let got = read_all(d.reader(&path, 0).await.ctx("Reader")?).await?;
    ensure!(got == content, "stream {path} read back differs");
    // The exact path: concurrent streams may share a first component.
    d.delete(&path).await.ctx("Delete")?;
    Ok(())
}
