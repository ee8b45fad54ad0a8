//! Where the SDK's requests go: objectstore's HTTP client, the one azure and gcs use (the host's
//! `wasi:http` inside a component, ureq natively). It brings the connect, first-byte and idle
//! timeouts, the retries (backoff with jitter, `Retry-After`, 429/5xx, refused and cut
//! connections, cut bodies) and the words that name the endpoint and the cause. The SDK's own
//! retries are off: its wasm client retries no transport error at all, and one policy for the
//! three cloud drivers is easier to reason about than two stacked.
//!
//! Every S3 request is retried, since sending one twice has the effect of sending it once, but
//! for two: starting a multipart upload (a retry after a lost answer makes a second upload) and
//! completing one (the retry meets `NoSuchUpload`). The transport counts such replays
//! ([`Transport::replays`]) and the writer undoes or checks their effect.
//!
//! Each request's answer is read whole before the SDK sees it. Every driver call runs its SDK
//! futures to completion before it returns, so no future outlives the call it was made in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_smithy_async::rt::sleep::SharedAsyncSleep;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http::Method;
use regstore_objectstore::retry::Failed;
use regstore_objectstore::{Client, Failure, Idempotence, Request};

/// Runs one SDK future to completion on the calling thread.
#[cfg(target_arch = "wasm32")]
pub fn run<F: Future>(future: F) -> F::Output {
    wstd::runtime::block_on(future)
}

#[cfg(not(target_arch = "wasm32"))]
pub fn run<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

#[cfg(target_arch = "wasm32")]
pub fn sleep_impl() -> SharedAsyncSleep {
    SharedAsyncSleep::new(aws_smithy_wasm::wasi::WasiSleep)
}

#[cfg(not(target_arch = "wasm32"))]
pub fn sleep_impl() -> SharedAsyncSleep {
    SharedAsyncSleep::new(native::TimerSleep)
}

/// The SDK's HTTP client over `client`.
#[derive(Debug, Clone)]
pub struct Transport {
    client: Client,
    replays: Arc<AtomicU64>,
}

impl Transport {
    pub fn new(client: Client) -> Self {
        Transport { client, replays: Arc::default() }
    }

    /// How many requests so far were sent again after an answer that was lost or a 5xx: the
    /// server may have applied them twice. A caller whose request is not idempotent (starting
    /// an upload) compares this before and after, and cleans up after a replay.
    pub fn replays(&self) -> u64 {
        self.replays.load(Ordering::Relaxed)
    }

    pub fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }

    /// The SDK's request as objectstore's.
    fn request(request: &HttpRequest) -> Result<Request, ConnectorError> {
        let method = Method::from_bytes(request.method().as_bytes()).map_err(|e| ConnectorError::user(Box::new(e)))?;
        let body = request
            .body()
            .bytes()
            .ok_or_else(|| ConnectorError::user("the s3 transport sends only bodies held in memory".into()))?;
        let mut out = Request::new(method, request.uri().to_string()).body(bytes::Bytes::copy_from_slice(body));
        for (name, value) in request.headers() {
            out = out.header(name, value);
        }
        Ok(out)
    }

    /// Counts a replay (see [`Transport::replays`]).
    fn replayed(&self) -> impl FnMut() + Send + 'static {
        let replays = self.replays.clone();
        move || {
            replays.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// objectstore's answer as the SDK's.
fn response(response: regstore_objectstore::Response) -> Result<HttpResponse, ConnectorError> {
    let mut http_response = http::Response::new(SdkBody::from(response.body));
    *http_response.status_mut() = response.status;
    *http_response.headers_mut() = response.headers;
    HttpResponse::try_from(http_response).map_err(|e| ConnectorError::other(e.into(), None))
}

impl HttpClient for Transport {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// Inside a component the requests wait on the host asynchronously, on wstd's reactor, so the
/// SDK's concurrent futures (the parts of a multipart copy) have their requests in flight at
/// once.
#[cfg(target_arch = "wasm32")]
impl HttpConnector for Transport {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let transport = self.clone();
        HttpConnectorFuture::new(async move {
            let out = Transport::request(&request)?;
            let answer = transport.client.exchange_async(
                Idempotence::Safe,
                || out.clone(),
                transport.replayed(),
                |pollable| async move { wstd::runtime::AsyncPollable::new(pollable).wait_for().await },
                |wait| async move {
                    wstd::task::sleep(wait.into()).await;
                },
            );
            response(answer.await.map_err(connector_error)?)
        })
    }
}

/// Built natively (the benchmarks' baseline), each request blocks the calling thread.
#[cfg(not(target_arch = "wasm32"))]
impl HttpConnector for Transport {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let result = Transport::request(&request).and_then(|out| {
            let answer = self.client.exchange(Idempotence::Safe, || out.clone(), self.replayed());
            response(answer.map_err(connector_error)?)
        });
        HttpConnectorFuture::new(async move { result })
    }
}

/// A transport failure in the SDK's terms; the text names the endpoint and the cause.
fn connector_error(failed: Failed) -> ConnectorError {
    let cause: Box<dyn std::error::Error + Send + Sync> = failed.to_string().into();
    match failed.failure {
        Failure::NoAnswer(_) => ConnectorError::timeout(cause),
        Failure::Invalid(_) => ConnectorError::user(cause),
        Failure::Unreachable(_) | Failure::Cut(_) => ConnectorError::io(cause),
        Failure::Refused(_) | Failure::Tls(_) => ConnectorError::other(cause, None),
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Duration;

    use aws_smithy_async::rt::sleep::{AsyncSleep, Sleep};

    /// A timer that wakes the future, not a blocked thread.
    #[derive(Debug)]
    pub struct TimerSleep;

    impl AsyncSleep for TimerSleep {
        fn sleep(&self, duration: Duration) -> Sleep {
            Sleep::new(futures_timer::Delay::new(duration))
        }
    }
}
