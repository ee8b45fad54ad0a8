//! The aws-sdk-s3 client: requests go out through [`crate::transport`] (objectstore's HTTP
//! client), and every call runs to completion before the driver call returns.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_async::time::SystemTimeSource;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use regstore_sdk::{Error, Result};

use crate::config::Config;
use crate::transport::Transport;

pub use crate::transport::run;

/// A client for `config` whose requests go through `transport`.
pub fn build(config: &Config, transport: &Transport) -> Result<aws_sdk_s3::Client> {
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .http_client(transport.shared())
        .sleep_impl(crate::transport::sleep_impl())
        .time_source(SystemTimeSource::new())
        .force_path_style(config.force_path_style)
        .use_dual_stack(config.dual_stack)
        .use_fips(config.fips)
        .accelerate(config.accelerate)
        // Checksums only where S3 requires them: S3-compatible stores differ on the newer
        // default (trailing CRC32 on every upload), and parts carry their ETags anyway.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // The transport retries and times out requests itself (connect, first byte, idle).
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    if let Some(c) = &config.credentials {
        builder = builder.credentials_provider(aws_credential_types::Credentials::new(
            &c.access_key,
            &c.secret_key,
            c.session_token.clone(),
            None,
            "regstore-s3",
        ));
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    if let Some(agent) = &config.user_agent {
        let name = aws_types::app_name::AppName::new(agent.clone())
            .map_err(|e| Error::invalid_parameter(format!("invalid useragent {agent:?}: {e}")))?;
        builder = builder.app_name(name);
    }
    Ok(aws_sdk_s3::Client::from_conf(builder.build()))
}

/// What a failed request means to the driver.
pub enum Failure {
    /// The key (or the upload) does not exist.
    NotFound,
    /// A `Range` that starts at or past the end.
    InvalidRange,
    /// An `If-Match` precondition failed: the object changed.
    Changed,
    /// The request never got an answer: the endpoint is unreachable, or the sandbox refused it.
    Unreachable(Error),
    /// Anything else, already worded for the operator.
    Other(Error),
}

/// Classifies an SDK error; `endpoint` names where the request went, for operators.
pub fn classify<E>(err: SdkError<E, HttpResponse>, what: &str, endpoint: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(_) => err.raw_response().map(|r| r.status().as_u16()),
        _ => None,
    };
    match (err.code(), status) {
        (Some("NoSuchKey" | "NotFound" | "NoSuchUpload"), _) | (None, Some(404)) => return Failure::NotFound,
        (Some("InvalidRange"), _) | (_, Some(416)) => return Failure::InvalidRange,
        (Some("PreconditionFailed"), _) | (_, Some(412)) => return Failure::Changed,
        _ => {}
    }
    let unreachable = matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_));
    let error = Error::other(describe(&err, what, endpoint));
    if unreachable { Failure::Unreachable(error) } else { Failure::Other(error) }
}

/// Like [`classify`], for calls where only "missing" has a meaning of its own.
pub fn other<E>(err: SdkError<E, HttpResponse>, what: &str, endpoint: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    Error::other(describe(&err, what, endpoint))
}

/// One line for the operator: what failed, where, and the innermost cause.
fn describe<E>(err: &SdkError<E, HttpResponse>, what: &str, endpoint: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(e) => {
            let e = e.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{what}: {code}: {message}"),
                (Some(code), None) => format!("{what}: {code}"),
                _ => format!("{what}: {}", chain(e)),
            }
        }
        // The transport's own words name the endpoint and the cause; the SDK's wrappers around
        // them ("dispatch failure", "io error") say nothing more.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => match innermost(err) {
            Some(cause) if cause.contains(endpoint) => format!("{what}: {cause}"),
            Some(cause) => format!("{what}: S3 at {endpoint}: {cause}"),
            None => format!("{what}: cannot reach S3 at {endpoint}"),
        },
        _ => format!("{what}: {}", chain(err)),
    }
}

/// The text of an error's innermost source.
fn innermost(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = err.source()?;
    while let Some(next) = source.source() {
        source = next;
    }
    Some(source.to_string())
}

/// An error and its sources, innermost last, without repeats.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// moto (and so LocalStack) names the root of a ListParts answer `ListPartsResponse`, where S3
/// says `ListPartsResult`; the SDK's parser accepts only the latter. This interceptor, set on
/// ListParts calls alone, renames the root before parsing.
#[derive(Debug)]
pub struct ListPartsRootCompat;

impl Intercept for ListPartsRootCompat {
    fn name(&self) -> &'static str {
        "ListPartsRootCompat"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.response_mut().take_body();
        *context.response_mut().body_mut() = SdkBody::from_body_1_x(RenameRoot { inner: body, buffer: Vec::new() });
        Ok(())
    }
}

/// Collects a (small, XML) body and hands it on as one frame with the root element renamed.
struct RenameRoot {
    inner: SdkBody,
    buffer: Vec<u8>,
}

impl http_body::Body for RenameRoot {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        loop {
            match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if self.buffer.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) => {
                    let text = String::from_utf8_lossy(&std::mem::take(&mut self.buffer))
                        .replacen("<ListPartsResponse", "<ListPartsResult", 1)
                        .replacen("</ListPartsResponse>", "</ListPartsResult>", 1);
                    return Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(text)))));
                }
            }
        }
    }
}
