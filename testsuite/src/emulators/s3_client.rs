//! A native `aws-sdk-s3` client the tests inspect buckets with: path-style addressing, plain HTTP only
//! (the local emulators), static credentials.
//!
//! The SDK is built without its default HTTPS client (which would bring rustls and a C crypto
//! build); requests go through a small [`HttpConnector`] over `reqwest`, which the suite already
//! uses, with bodies streamed both ways. It also works around moto's misnamed ListParts answer
//! (`fix_list_parts_root`).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// An S3 client for `endpoint` (`http://127.0.0.1:PORT`), path-style, with static credentials.
pub fn client(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let credentials = Credentials::new(access_key, secret_key, None, None, "regstore-test");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials)
        .http_client(http_client())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The SDK's HTTP client: plain HTTP through `reqwest`, no TLS, no proxy, no redirects.
pub fn http_client() -> SharedHttpClient {
    // reqwest is built without a default TLS provider; this client speaks plain HTTP anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain-HTTP reqwest client always builds");
    SharedHttpClient::new(ReqwestClient(client))
}

#[derive(Debug, Clone)]
struct ReqwestClient(reqwest::Client);

impl HttpClient for ReqwestClient {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        // The connector settings carry only timeouts; the tests and benchmarks set none.
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for ReqwestClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let list_parts = is_list_parts(&request);
            let request = request.map(reqwest::Body::wrap);
            let request = reqwest::Request::try_from(request).map_err(|e| ConnectorError::user(e.into()))?;
            let response = client.execute(request).await.map_err(classify)?;
            let response = if list_parts && response.status().is_success() {
                let mut head = http::Response::builder().status(response.status()).body(()).expect("a valid status");
                *head.headers_mut() = response.headers().clone();
                let body = fix_list_parts_root(&response.bytes().await.map_err(classify)?);
                head.headers_mut().insert(http::header::CONTENT_LENGTH, body.len().into());
                head.map(|()| SdkBody::from(body))
            } else {
                http::Response::<reqwest::Body>::from(response).map(SdkBody::from_body_1_x)
            };
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Whether a request is ListParts (`GET /KEY?uploadId=ID`).
fn is_list_parts<B>(request: &http::Request<B>) -> bool {
    request.method() == http::Method::GET
        && request.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("uploadId=")))
}

/// moto 5.2.5 names the root element of its ListParts answer `ListPartsResponse`, where S3 has
/// `ListPartsResult`, and aws-sdk-s3's parser refuses any other name: rename it.
fn fix_list_parts_root(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    if !text.contains("<ListPartsResponse") {
        return body.to_vec();
    }
    text.replacen("<ListPartsResponse", "<ListPartsResult", 1)
        .replacen("</ListPartsResponse>", "</ListPartsResult>", 1)
        .into_bytes()
}

fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}
