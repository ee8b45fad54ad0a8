//! tokio `AsyncRead` and `AsyncWrite` over the contract's readers and writers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{FileReader, FileWriter, Result};

/// A [`FileReader`] as a tokio `AsyncRead`. Errors are `io::Error`s wrapping the typed
/// [`crate::Error`] (`get_ref()` and `downcast_ref` recover it).
pub struct ReaderIo {
    state: ReadState,
    chunk: Vec<u8>,
    pos: usize,
}

type ReadFuture = BoxFuture<'static, (Box<dyn FileReader>, Result<Option<Vec<u8>>>)>;

enum ReadState {
    Idle(Box<dyn FileReader>),
    Reading(ReadFuture),
    Done,
}

impl ReaderIo {
    pub fn new(reader: Box<dyn FileReader>) -> Self {
        ReaderIo { state: ReadState::Idle(reader), chunk: Vec::new(), pos: 0 }
    }
}

impl AsyncRead for ReaderIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.chunk.len() {
                let n = out.remaining().min(this.chunk.len() - this.pos);
                out.put_slice(&this.chunk[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            match std::mem::replace(&mut this.state, ReadState::Done) {
                ReadState::Done => return Poll::Ready(Ok(())),
                ReadState::Idle(mut reader) => {
                    this.state = ReadState::Reading(
                        async move {
                            let chunk = reader.read_chunk().await;
                            (reader, chunk)
                        }
                        .boxed(),
                    );
                }
                ReadState::Reading(mut fut) => match fut.poll_unpin(cx) {
                    Poll::Pending => {
                        this.state = ReadState::Reading(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((reader, Ok(Some(chunk)))) => {
                        this.state = ReadState::Idle(reader);
                        this.chunk = chunk;
                        this.pos = 0;
                    }
                    Poll::Ready((_, Ok(None))) => return Poll::Ready(Ok(())),
                    Poll::Ready((reader, Err(e))) => {
                        this.state = ReadState::Idle(reader);
                        return Poll::Ready(Err(e.into()));
                    }
                },
            }
        }
    }
}

/// A [`FileWriter`] as a tokio `AsyncWrite`, writing to the driver in chunks of `chunk_size`
/// bytes. `shutdown` flushes without closing; [`FileWriterIo::into_inner`] hands the writer back
/// for `commit`, `close` or `cancel`.
pub struct FileWriterIo {
    state: WriteState,
    buffer: Vec<u8>,
    chunk_size: usize,
}

type WriteFuture = BoxFuture<'static, (Box<dyn FileWriter>, Result<()>)>;

enum WriteState {
    Idle(Box<dyn FileWriter>),
    Writing(WriteFuture),
    /// A write failed and lost the writer's future; only the error is left.
    Failed,
}

/// The default size of the chunks a [`FileWriterIo`] hands to the driver.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

impl FileWriterIo {
    pub fn new(writer: Box<dyn FileWriter>) -> Self {
        Self::with_chunk_size(writer, DEFAULT_CHUNK_SIZE)
    }

    pub fn with_chunk_size(writer: Box<dyn FileWriter>, chunk_size: usize) -> Self {
        FileWriterIo { state: WriteState::Idle(writer), buffer: Vec::with_capacity(chunk_size), chunk_size }
    }

    /// Flushes what is buffered and returns the writer.
    pub async fn into_inner(mut self) -> io::Result<Box<dyn FileWriter>> {
        futures::future::poll_fn(|cx| Pin::new(&mut self).poll_flush(cx)).await?;
        match self.state {
            WriteState::Idle(w) => Ok(w),
            _ => Err(io::Error::other("the writer failed earlier")),
        }
    }

    /// Drives the pending write to its end, then starts one for the buffer if it holds
    /// `at_least` bytes or more.
    fn poll_drain(&mut self, cx: &mut Context<'_>, at_least: usize) -> Poll<io::Result<()>> {
        loop {
            match std::mem::replace(&mut self.state, WriteState::Failed) {
                WriteState::Failed => return Poll::Ready(Err(io::Error::other("the writer failed earlier"))),
                WriteState::Writing(mut fut) => match fut.poll_unpin(cx) {
                    Poll::Pending => {
                        self.state = WriteState::Writing(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((w, result)) => {
                        self.state = WriteState::Idle(w);
                        result?;
                    }
                },
                WriteState::Idle(mut w) => {
                    if self.buffer.is_empty() || self.buffer.len() < at_least {
                        self.state = WriteState::Idle(w);
                        return Poll::Ready(Ok(()));
                    }
                    let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk_size));
                    self.state = WriteState::Writing(
                        async move {
                            let result = w.write(&data).await.map(drop);
                            (w, result)
                        }
                        .boxed(),
                    );
                }
            }
        }
    }
}

impl AsyncWrite for FileWriterIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buffer.len() >= this.chunk_size {
            ready!(this.poll_drain(cx, this.chunk_size))?;
        }
        let n = data.len().min(this.chunk_size - this.buffer.len());
        this.buffer.extend_from_slice(&data[..n]);
        if this.buffer.len() >= this.chunk_size {
            // Start sending now; a Pending here is fine, the bytes are already accepted.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx, this.chunk_size) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx, 1))?;
        // The flush may have started a write of the last bytes; wait for it too.
        self.poll_drain(cx, usize::MAX)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
