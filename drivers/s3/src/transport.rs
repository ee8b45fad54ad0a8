//! Where the SDK's requests go and how its futures run. Inside a component: the host's
//! `wasi:http` (aws-smithy-wasm) on wstd's executor. Built natively, the benchmarks' baseline:
//! objectstore's blocking HTTP client, the same one azure and gcs use, with each SDK future run
//! to completion on the calling thread. Either way each driver call is synchronous for the host,
//! so no future outlives the call it was made in.

#[cfg(target_arch = "wasm32")]
use aws_smithy_async::rt::sleep::SharedAsyncSleep;
#[cfg(target_arch = "wasm32")]
use aws_smithy_runtime_api::client::http::SharedHttpClient;

#[cfg(target_arch = "wasm32")]
pub fn run<F: Future>(future: F) -> F::Output {
    wstd::runtime::block_on(future)
}

#[cfg(target_arch = "wasm32")]
pub fn http_client() -> SharedHttpClient {
    aws_smithy_wasm::wasi::WasiHttpClientBuilder::new().build()
}

#[cfg(target_arch = "wasm32")]
pub fn sleep_impl() -> SharedAsyncSleep {
    SharedAsyncSleep::new(aws_smithy_wasm::wasi::WasiSleep)
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{http_client, run, sleep_impl};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Duration;

    use aws_smithy_async::rt::sleep::{AsyncSleep, SharedAsyncSleep, Sleep};
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::body::SdkBody;
    use regstore_objectstore::http::{Client, Failure, Request, Timeouts};

    pub fn run<F: Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    pub fn http_client() -> SharedHttpClient {
        SharedHttpClient::new(Blocking { timeouts: Timeouts::default() })
    }

    pub fn sleep_impl() -> SharedAsyncSleep {
        SharedAsyncSleep::new(TimerSleep)
    }

    /// The SDK's HTTP client over objectstore's: each request is sent and its answer read
    /// whole while the SDK's future is polled (on the calling thread, so blocking is fine).
    #[derive(Debug, Clone)]
    struct Blocking {
        timeouts: Timeouts,
    }

    impl HttpClient for Blocking {
        fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            let mut timeouts = self.timeouts;
            if let Some(connect) = settings.connect_timeout() {
                timeouts.connect = connect;
            }
            if let Some(read) = settings.read_timeout() {
                timeouts.first_byte = read;
                timeouts.idle = read;
            }
            SharedHttpConnector::new(Blocking { timeouts })
        }
    }

    impl HttpConnector for Blocking {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let result = self.send(request);
            HttpConnectorFuture::new(async move { result })
        }
    }

    impl Blocking {
        fn send(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
            let url = request.uri().to_string();
            let mut client = Client::new("S3", &url);
            client.timeouts = self.timeouts;
            let method =
                http::Method::from_bytes(request.method().as_bytes()).map_err(|e| ConnectorError::user(Box::new(e)))?;
            let body = request.body().bytes().ok_or_else(|| {
                ConnectorError::user("the native s3 transport sends only bodies held in memory".into())
            })?;
            let mut out = Request::new(method, url).body(bytes::Bytes::copy_from_slice(body));
            for (name, value) in request.headers() {
                out = out.header(name, value);
            }
            let response = client.send(&out).map_err(connector_error)?;
            let mut http_response = http::Response::new(SdkBody::from(response.body));
            *http_response.status_mut() = response.status;
            *http_response.headers_mut() = response.headers;
            HttpResponse::try_from(http_response).map_err(|e| ConnectorError::other(e.into(), None))
        }
    }

    /// A transport failure in the SDK's terms; the text names the endpoint.
    fn connector_error(failure: Failure) -> ConnectorError {
        let cause: Box<dyn std::error::Error + Send + Sync> = failure.cause().to_string().into();
        match failure {
            Failure::NoAnswer(_) => ConnectorError::timeout(cause),
            Failure::Invalid(_) => ConnectorError::user(cause),
            Failure::Unreachable(_) | Failure::Cut(_) => ConnectorError::io(cause),
            Failure::Refused(_) | Failure::Tls(_) => ConnectorError::other(cause, None),
        }
    }

    /// A timer that wakes the future, not a blocked thread: the SDK races its sleeps (timeouts,
    /// stalled-stream checks) against the request itself.
    #[derive(Debug)]
    struct TimerSleep;

    impl AsyncSleep for TimerSleep {
        fn sleep(&self, duration: Duration) -> Sleep {
            Sleep::new(futures_timer::Delay::new(duration))
        }
    }
}
