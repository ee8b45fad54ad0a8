//! Retries with exponential backoff and full jitter, honouring `Retry-After`, bounded both in
//! tries and in time so that a dead endpoint fails a call quickly.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http::StatusCode;
use regstore_sdk::{Error, Result};

use crate::http::{BodyStream, Client, Failure, Head, Request, Response};

/// How a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included.
    pub max_tries: u32,
    /// The backoff's first ceiling; each retry doubles it, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No try starts that could not end within this much unproductive time (tries without an
    /// answer or with an error status, and the waits between tries).
    pub budget: Duration,
}

impl Default for Retry {
    /// Six tries ride out a 10 % fault rate (one call in a million fails); 30 s bound a dead
    /// endpoint.
    fn default() -> Self {
        Retry {
            max_tries: 6,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(30),
        }
    }
}

/// Whether a request may be sent twice with the same effect as once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// GET, HEAD, PUT of a whole object, DELETE: retried after any transient failure.
    Safe,
    /// An append: retried only when the server surely did not apply it (no connection, 429, 503).
    Unsafe,
}

/// Statuses that ask for the request again later.
pub fn retryable_status(status: StatusCode, idempotence: Idempotence) -> bool {
    match status.as_u16() {
        429 | 503 => true,
        408 | 500 | 502 | 504 => idempotence == Idempotence::Safe,
        _ => false,
    }
}

impl Retry {
    /// The wait before try `next` (2, 3, ...): a random point in the upper half of the
    /// backoff's ceiling, or what the server asked for.
    pub fn delay(&self, next: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked {
            return asked;
        }
        let ceiling = self.first_delay.saturating_mul(1 << (next - 2).min(16)).min(self.max_delay);
        let fraction = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }
}

/// What the server asked to wait: `Retry-After` (seconds or a date), or `x-ms-retry-after-ms`.
pub fn retry_after(head: &Head) -> Option<Duration> {
    if let Some(ms) = head.header("x-ms-retry-after-ms").or(head.header("retry-after-ms")) {
        return ms.trim().parse::<u64>().ok().map(Duration::from_millis);
    }
    let value = head.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// Blocks the calling driver for `d`.
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    #[cfg(target_arch = "wasm32")]
    wasip2::clocks::monotonic_clock::subscribe_duration(d.as_nanos() as u64).block();
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(d);
}

/// Runs a future whose awaits are all on ready futures (blocking calls) to its end.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => unreachable!("a future of blocking calls never waits"),
    }
}

/// A random number for jitter.
fn random_u64() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return wasip2::random::random::get_random_u64();
    #[cfg(not(target_arch = "wasm32"))]
    return getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the clock's nanoseconds are jitter enough.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos().into()
    });
}

/// Why the retry loop ended without an answer: the request could not be made, or no try got
/// a usable answer.
pub(crate) enum Stop<E> {
    Build(E),
    Failed(Failed),
}

impl Stop<Error> {
    /// The builder's error as it is; a failure in the caller's words (`what`).
    fn into_error(self, what: &str) -> Error {
        match self {
            Stop::Build(e) => e,
            Stop::Failed(failed) => Error::other(format!("{what}: {failed}")),
        }
    }
}

impl Stop<Infallible> {
    pub(crate) fn into_failed(self) -> Failed {
        match self {
            Stop::Build(never) => match never {},
            Stop::Failed(failed) => failed,
        }
    }
}

/// A request that got no usable answer: the last failure, and how many tries it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub failure: Failure,
    pub tries: u32,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.failure.cause())?;
        if self.tries > 1 {
            write!(f, " (tried {} times)", self.tries)?;
        }
        Ok(())
    }
}

impl Client {
    /// Sends the request `build` makes (a fresh one, signed anew, per try) until it gets an
    /// answer that is not worth retrying, and reads it whole. Every HTTP answer is returned,
    /// error statuses included; an error means no usable answer came, and names the endpoint.
    pub fn call(
        &self,
        what: &str,
        idempotence: Idempotence,
        build: impl FnMut() -> Result<Request>,
    ) -> Result<Response> {
        self.retried(
            idempotence,
            build,
            || {},
            |client, request| {
                let response = client.send(request)?;
                let head = Head { status: response.status, headers: response.headers.clone() };
                Ok((head, response))
            },
        )
        .map_err(|stop| stop.into_error(what))
    }

    /// As [`Client::call`] for a request carrying credentials: after a 401, when `refresh`
    /// drops a cached token (and says so), the request is made and sent once more.
    pub fn call_authorized(
        &self,
        what: &str,
        idempotence: Idempotence,
        build: impl Fn() -> Result<Request>,
        refresh: impl FnOnce() -> bool,
    ) -> Result<Response> {
        let response = self.call(what, idempotence, &build)?;
        if response.status == StatusCode::UNAUTHORIZED && refresh() {
            return self.call(what, idempotence, &build);
        }
        Ok(response)
    }

    /// As [`Client::call`], for a caller with words of its own for a failure. `replayed` is told
    /// of each retry of a request the server may already have applied (its answer was lost or
    /// was a 5xx other than 503), so that a caller can undo a duplicate effect.
    pub fn exchange(
        &self,
        idempotence: Idempotence,
        mut build: impl FnMut() -> Request,
        replayed: impl FnMut(),
    ) -> std::result::Result<Response, Failed> {
        let outcome = self.retried(
            idempotence,
            || Ok::<_, Infallible>(build()),
            replayed,
            |client, request| {
                let response = client.send(request)?;
                let head = Head { status: response.status, headers: response.headers.clone() };
                Ok((head, response))
            },
        );
        outcome.map_err(Stop::into_failed)
    }

    /// As [`Client::call`], with the body left to stream (for reads): only the status and the
    /// headers are awaited.
    pub fn call_streaming(&self, what: &str, build: impl FnMut() -> Result<Request>) -> Result<(Head, BodyStream)> {
        self.retried(
            Idempotence::Safe,
            build,
            || {},
            |client, request| {
                let (head, body) = client.open(request)?;
                Ok((head.clone(), (head, body)))
            },
        )
        .map_err(|stop| stop.into_error(what))
    }

    fn retried<T, E>(
        &self,
        idempotence: Idempotence,
        build: impl FnMut() -> std::result::Result<Request, E>,
        replayed: impl FnMut(),
        mut attempt: impl FnMut(&Client, &Request) -> std::result::Result<(Head, T), Failure>,
    ) -> std::result::Result<T, Stop<E>> {
        let tries = self.retried_with(
            idempotence,
            build,
            replayed,
            |request| std::future::ready(attempt(self, &request)),
            |wait| {
                sleep(wait);
                std::future::ready(())
            },
        );
        now(tries)
    }

    /// The retry loop, for blocking and for async callers alike: `attempt` makes one try,
    /// `pause` waits between tries.
    pub(crate) async fn retried_with<T, E, A, P>(
        &self,
        idempotence: Idempotence,
        mut build: impl FnMut() -> std::result::Result<Request, E>,
        mut replayed: impl FnMut(),
        mut attempt: impl FnMut(Request) -> A,
        pause: impl Fn(Duration) -> P,
    ) -> std::result::Result<T, Stop<E>>
    where
        A: Future<Output = std::result::Result<(Head, T), Failure>>,
        P: Future<Output = ()>,
    {
        // Time that brought nothing: tries that got no answer or an error status, and the waits.
        // A try cut off after it moved data does not count, so a long transfer that breaks is
        // still retried, while a dead endpoint exhausts the budget at once.
        let mut spent = Duration::ZERO;
        let mut tries = 0;
        loop {
            tries += 1;
            // A request that cannot be made (credentials that cannot be had) ends the loop with
            // the builder's own error.
            let request = build().map_err(Stop::Build)?;
            let began = Instant::now();
            let outcome = attempt(request).await;
            let took = began.elapsed();
            let wait = match outcome {
                Ok((head, out)) if !retryable_status(head.status, idempotence) => return Ok(out),
                Ok((head, out)) => {
                    spent += took;
                    let wait = self.retry.delay(tries + 1, retry_after(&head));
                    if !self.may_retry(tries, spent, wait) {
                        return Ok(out);
                    }
                    // 429 and 503 say the request was not taken; a 500 does not.
                    if !matches!(head.status.as_u16(), 429 | 503) {
                        replayed();
                    }
                    wait
                }
                Err(failure) => {
                    if !matches!(failure, Failure::Cut(_)) {
                        spent += took;
                    }
                    let wait = self.retry.delay(tries + 1, None);
                    let retry = failure.is_transient()
                        && (idempotence == Idempotence::Safe || !failure.may_have_applied())
                        && self.may_retry(tries, spent, wait);
                    if !retry {
                        return Err(Stop::Failed(Failed { failure, tries }));
                    }
                    if failure.may_have_applied() {
                        replayed();
                    }
                    wait
                }
            };
            spent += wait;
            pause(wait).await;
        }
    }

    /// Whether another try, after waiting `wait`, fits the policy: tries left, and time for it
    /// to get its answer within the budget.
    fn may_retry(&self, tries: u32, spent: Duration, wait: Duration) -> bool {
        tries < self.retry.max_tries && spent + wait + self.timeouts.first_byte <= self.retry.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE, Idempotence::Unsafe));
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS, Idempotence::Unsafe));
        assert!(!retryable_status(StatusCode::INTERNAL_SERVER_ERROR, Idempotence::Unsafe));
        assert!(retryable_status(StatusCode::INTERNAL_SERVER_ERROR, Idempotence::Safe));
        assert!(!retryable_status(StatusCode::NOT_FOUND, Idempotence::Safe));
        assert!(!retryable_status(StatusCode::PRECONDITION_FAILED, Idempotence::Safe));
    }

    #[test]
    fn retry_after_forms() {
        let head = |name: &str, value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::HeaderName::try_from(name).unwrap(), value.parse().unwrap());
            Head { status: StatusCode::SERVICE_UNAVAILABLE, headers }
        };
        assert_eq!(retry_after(&head("retry-after", "3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&head("x-ms-retry-after-ms", "250")), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&head("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        assert_eq!(retry_after(&head("retry-after", "soon")), None);
    }
}
