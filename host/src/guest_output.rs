//! What a guest prints. Each line of its stdout and stderr becomes a `tracing` event (target
//! `regstore::guest`), emitted while the guest runs and so inside the span of the driver call
//! that printed it; the last lines are kept for the error of a trap, where a Rust guest's panic
//! message or a Python traceback lands. Nothing is refused: a guest that logs a line per call
//! for days must not find its stderr closed (a Rust `eprintln!` panics when it is).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Lines kept for a trap's error.
const TAIL_LINES: usize = 6;
/// A line longer than this is cut into pieces, so a guest that never prints a newline holds
/// no more than this much host memory.
const LONGEST_LINE: usize = 4096;
/// What one write may carry, as wasi's `check-write` tells the guest.
const WRITE_BUDGET: usize = 64 << 10;

/// One of a guest's output streams. Clones share the line in progress.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    stream: Arc<Stream>,
}

struct Stream {
    name: &'static str,
    driver: Arc<str>,
    partial: Mutex<Vec<u8>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl GuestOutput {
    /// The stderr and stdout of one instance of `driver`; they share one tail.
    pub(crate) fn pair(driver: &str) -> (GuestOutput, GuestOutput) {
        let (driver, tail): (Arc<str>, _) = (driver.into(), Arc::new(Mutex::new(VecDeque::new())));
        let stream = |name| GuestOutput {
            stream: Arc::new(Stream { name, driver: driver.clone(), partial: Mutex::default(), tail: tail.clone() }),
        };
        (stream("stderr"), stream("stdout"))
    }

    /// The last lines printed, oldest first, with a line still in progress at the end.
    pub(crate) fn tail(&self) -> Vec<String> {
        let mut lines: Vec<String> = lock(&self.stream.tail).iter().cloned().collect();
        let partial = lock(&self.stream.partial);
        if !partial.iter().all(u8::is_ascii_whitespace) {
            lines.push(readable(&partial));
        }
        lines
    }

    fn take(&self, mut bytes: &[u8]) {
        let mut finished = Vec::new();
        {
            let mut partial = lock(&self.stream.partial);
            while !bytes.is_empty() {
                let room = LONGEST_LINE - partial.len();
                let (piece, end) = match bytes.iter().take(room + 1).position(|b| *b == b'\n') {
                    Some(at) => (&bytes[..at], at + 1),
                    None if bytes.len() < room => (bytes, bytes.len()),
                    None => (&bytes[..room], room),
                };
                partial.extend_from_slice(piece);
                if end > piece.len() || partial.len() >= LONGEST_LINE {
                    finished.push(readable(&partial));
                    partial.clear();
                }
                bytes = &bytes[end..];
            }
        }
        if finished.is_empty() {
            return;
        }
        let s = &self.stream;
        for line in &finished {
            tracing::info!(target: "regstore::guest", driver = &*s.driver, stream = s.name, "{line}");
        }
        let mut tail = lock(&s.tail);
        for line in finished.into_iter().filter(|l| !l.trim().is_empty()) {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // What is guarded stays consistent across a panic, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A line as text fit for a log: invalid UTF-8 replaced, control characters (a terminal's
/// escape sequences among them) shown as U+FFFD, a trailing carriage return dropped.
fn readable(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).chars().map(|c| if c.is_control() && c != '\t' { '\u{FFFD}' } else { c }).collect()
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_BUDGET)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_joined_across_writes_and_cut_when_too_long() {
        let (stderr, stdout) = GuestOutput::pair("d");
        stderr.take(b"first ha");
        stderr.take(b"lf\r\nsecond\n\nthird \x1b[31mred\x1b[0m\n");
        stdout.take(b"from stdout\nunfinished");
        assert_eq!(
            stderr.tail(),
            ["first half", "second", "third \u{FFFD}[31mred\u{FFFD}[0m", "from stdout"],
            "blank lines are not kept; each stream has its own line in progress"
        );
        assert_eq!(stdout.tail().last().map(String::as_str), Some("unfinished"));

        let (stderr, _) = GuestOutput::pair("d");
        stderr.take(&vec![b'x'; 3 * LONGEST_LINE + 10]);
        let tail = stderr.tail();
        assert_eq!(tail.iter().map(String::len).collect::<Vec<_>>(), [LONGEST_LINE, LONGEST_LINE, LONGEST_LINE, 10]);
        // A newline right at the limit ends that line, with no empty line after it.
        let (stderr, _) = GuestOutput::pair("d");
        let mut exact = vec![b'y'; LONGEST_LINE];
        exact.push(b'\n');
        stderr.take(&exact);
        stderr.take(b"z\n");
        assert_eq!(stderr.tail().iter().map(String::len).collect::<Vec<_>>(), [LONGEST_LINE, 1]);
    }

    #[test]
    fn only_the_last_lines_are_kept_and_writes_are_never_refused() {
        let (mut stderr, _) = GuestOutput::pair("d");
        for i in 0..100_000 {
            OutputStream::write(&mut stderr, Bytes::from(format!("line {i}\n"))).unwrap();
        }
        assert_eq!(stderr.check_write().unwrap(), WRITE_BUDGET);
        let tail = stderr.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().map(String::as_str), Some("line 99999"));
    }

    #[test]
    fn each_line_is_an_event_in_the_span_of_the_call() {
        use tracing::field::{Field, Visit};
        use tracing_subscriber::layer::{Context, SubscriberExt};

        type Seen = Arc<Mutex<Vec<(String, Option<&'static str>, String)>>>;
        /// Records each guest line with the span it came in and its stream.
        struct Record(Seen);
        impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> tracing_subscriber::Layer<S>
            for Record
        {
            fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
                #[derive(Default)]
                struct Fields(String, String);
                impl Visit for Fields {
                    fn record_str(&mut self, field: &Field, value: &str) {
                        if field.name() == "stream" {
                            self.1 = value.to_string();
                        }
                    }
                    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                        if field.name() == "message" {
                            self.0 = format!("{value:?}");
                        }
                    }
                }
                let mut fields = Fields::default();
                event.record(&mut fields);
                let span = ctx.event_span(event).map(|s| s.name());
                lock(&self.0).push((fields.0, span, fields.1));
            }
        }
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(Record(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let (stderr, stdout) = GuestOutput::pair("d");
            stderr.take(b"outside\n");
            let span = tracing::info_span!("storage");
            let _entered = span.enter();
            stderr.take(b"one\ntw");
            stdout.take(b"out\n");
            stderr.take(b"o\n");
        });
        let seen = lock(&seen).clone();
        let expected = [
            ("outside", None, "stderr"),
            ("one", Some("storage"), "stderr"),
            ("out", Some("storage"), "stdout"),
            ("two", Some("storage"), "stderr"),
        ];
        assert_eq!(seen, expected.map(|(m, s, n)| (m.to_string(), s, n.to_string())));
    }
}
