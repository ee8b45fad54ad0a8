//! Access tokens: from a service-account key (a signed JWT traded at its `token_uri`), from
//! the GCE metadata server (Application Default Credentials), or none at all (emulators).
//! A token is cached until a minute before it expires, and refreshed once when an answer is
//! 401. Signing for redirect URLs goes with it: locally with the key, or through IAM's
//! signBlob with the metadata server's token.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{Method, StatusCode};
use regstore_objectstore::http::{BodyStream, Head};
use regstore_objectstore::{Client, Idempotence, Request, Response, Retry, Timeouts};
use regstore_sdk::{Error, Result};
use serde::Deserialize;

use crate::config::{IAM_URL, METADATA_URL};
use crate::key::ServiceAccount;
use crate::{jwt, sign};

/// A token is replaced this long before it expires, so no request carries a dying one.
const EARLY: Duration = Duration::from_secs(60);
/// What the metadata-server requests say, so an operator outside Google Cloud knows why.
const ADC: &str = "getting Application Default Credentials from the GCE metadata server (no keyfile or \
                   credentials were given; outside Google Cloud give one, on it grant 169.254.169.254:80 by \
                   that address: the sandbox refuses metadata.google.internal, a name for a link-local address)";

enum Source {
    Anonymous,
    Key { key: Rc<ServiceAccount>, client: Client },
    Metadata { client: Client, iam: Client, email: RefCell<Option<String>> },
}

struct Token {
    header: String,
    refresh_at: Instant,
}

pub struct Auth {
    source: Source,
    token: RefCell<Option<Token>>,
}

#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

impl std::fmt::Debug for TokenAnswer {
    /// Never the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

impl Auth {
    pub fn anonymous() -> Self {
        Auth { source: Source::Anonymous, token: RefCell::new(None) }
    }

    pub fn with_key(key: Rc<ServiceAccount>) -> Self {
        let client = Client::new("Google OAuth 2.0", &key.token_uri);
        Auth { source: Source::Key { key, client }, token: RefCell::new(None) }
    }

    /// Application Default Credentials. Off Google Cloud nothing answers at the address:
    /// fail within seconds rather than the storage calls' 30.
    pub fn metadata() -> Self {
        let mut client = Client::new("the GCE metadata server", METADATA_URL);
        client.timeouts = Timeouts { connect: Duration::from_secs(2), ..Timeouts::default() };
        client.retry = Retry { max_tries: 3, budget: Duration::from_secs(30), ..Retry::default() };
        let iam = Client::new("IAM Service Account Credentials", IAM_URL);
        Auth { source: Source::Metadata { client, iam, email: RefCell::new(None) }, token: RefCell::new(None) }
    }

    /// Whether requests carry credentials.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.source, Source::Anonymous)
    }

    /// The `Authorization` value, fetching a token when none is cached or it is about to expire.
    pub fn header(&self) -> Result<Option<String>> {
        if self.is_anonymous() {
            return Ok(None);
        }
        if let Some(token) = self.token.borrow().as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(Some(token.header.clone()));
        }
        let token = self.fetch()?;
        let header = token.header.clone();
        *self.token.borrow_mut() = Some(token);
        Ok(Some(header))
    }

    /// Forgets the cached token (after a 401); false when there is none to refresh.
    pub fn invalidate(&self) -> bool {
        self.token.borrow_mut().take().is_some()
    }

    fn fetch(&self) -> Result<Token> {
        let answer = match &self.source {
            Source::Anonymous => return Err(Error::other("no credentials to fetch a token with")),
            Source::Key { key, client } => {
                let what = format!("fetching an access token for {} from {}", key.email, key.token_uri);
                let response = client.call(&what, Idempotence::Safe, || {
                    let body = format!(
                        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
                        jwt::assertion(key, unix_now())
                    );
                    Ok(Request::new(Method::POST, &key.token_uri)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body))
                })?;
                token_answer(&response, &what)?
            }
            Source::Metadata { client, .. } => {
                let url = format!("{METADATA_URL}/computeMetadata/v1/instance/service-accounts/default/token");
                let response = client.call(ADC, Idempotence::Safe, || {
                    Ok(Request::new(Method::GET, &url).header("metadata-flavor", "Google"))
                })?;
                token_answer(&response, ADC)?
            }
        };
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let kind = answer.token_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "Bearer".into());
        Ok(Token {
            header: format!("{kind} {}", answer.access_token),
            refresh_at: Instant::now() + lifetime.saturating_sub(EARLY),
        })
    }

    /// Adds the `Authorization` header, if any, to a request.
    pub fn authorize(&self, request: Request) -> Result<Request> {
        Ok(match self.header()? {
            Some(value) => request.header("authorization", value),
            None => request,
        })
    }

    /// `client.call` with credentials; a 401 refreshes the token and tries once more.
    pub fn call(
        &self,
        client: &Client,
        what: &str,
        idempotence: Idempotence,
        build: impl Fn() -> Result<Request>,
    ) -> Result<Response> {
        client.call_authorized(what, idempotence, || self.authorize(build()?), || self.invalidate())
    }

    /// As [`Auth::call`], with the body left to stream.
    pub fn call_streaming(
        &self,
        client: &Client,
        what: &str,
        build: impl Fn() -> Result<Request>,
    ) -> Result<(Head, BodyStream)> {
        let (head, body) = client.call_streaming(what, || self.authorize(build()?))?;
        if head.status == StatusCode::UNAUTHORIZED && self.invalidate() {
            drop(body);
            return client.call_streaming(what, || self.authorize(build()?));
        }
        Ok((head, body))
    }

    /// The account redirect URLs are credited to; `None` without credentials.
    pub fn signer_email(&self) -> Result<Option<String>> {
        match &self.source {
            Source::Anonymous => Ok(None),
            Source::Key { key, .. } => Ok(Some(key.email.clone())),
            Source::Metadata { client, email, .. } => {
                if let Some(known) = email.borrow().as_ref() {
                    return Ok(Some(known.clone()));
                }
                let url = format!("{METADATA_URL}/computeMetadata/v1/instance/service-accounts/default/email");
                let response = client.call(ADC, Idempotence::Safe, || {
                    Ok(Request::new(Method::GET, &url).header("metadata-flavor", "Google"))
                })?;
                if !response.status.is_success() {
                    return Err(Error::other(format!(
                        "{ADC}: the service account's email: {} answered {}",
                        client.endpoint(),
                        response.status
                    )));
                }
                let found = response.text().trim().to_string();
                *email.borrow_mut() = Some(found.clone());
                Ok(Some(found))
            }
        }
    }

    /// An RSA-SHA256 signature of `data` by the service account: local with a key, IAM's
    /// signBlob otherwise (the account needs `iam.serviceAccounts.signBlob` on itself).
    pub fn sign(&self, email: &str, data: &[u8]) -> Result<Vec<u8>> {
        match &self.source {
            Source::Anonymous => Err(Error::other("redirect URLs cannot be signed without credentials")),
            Source::Key { key, .. } => Ok(key.sign(data)),
            Source::Metadata { iam, .. } => {
                let url = format!("{IAM_URL}/v1/projects/-/serviceAccounts/{}:signBlob", sign::encode(email, false));
                let what = format!("signing a redirect URL as {email} with IAM signBlob");
                let body = serde_json::json!({ "payload": STANDARD.encode(data) }).to_string();
                let response = self.call(iam, &what, Idempotence::Safe, || {
                    Ok(Request::new(Method::POST, &url).header("content-type", "application/json").body(body.clone()))
                })?;
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Signed {
                    signed_blob: String,
                }
                if !response.status.is_success() {
                    return Err(Error::other(format!(
                        "{what}: {} answered {}: {}",
                        iam.endpoint(),
                        response.status,
                        crate::api::message(&response)
                    )));
                }
                let signed: Signed = serde_json::from_slice(&response.body)
                    .map_err(|e| Error::other(format!("{what}: cannot read the answer: {e}")))?;
                STANDARD
                    .decode(signed.signed_blob)
                    .map_err(|e| Error::other(format!("{what}: the signature is not base64: {e}")))
            }
        }
    }
}

/// The token in a token endpoint's answer, or an error saying why there is none.
fn token_answer(response: &Response, what: &str) -> Result<TokenAnswer> {
    if !response.status.is_success() {
        return Err(Error::other(format!("{what}: answered {}: {}", response.status, crate::api::message(response))));
    }
    let answer: TokenAnswer = serde_json::from_slice(&response.body)
        .map_err(|e| Error::other(format!("{what}: the answer holds no access token: {e}")))?;
    if answer.access_token.is_empty() {
        return Err(Error::other(format!("{what}: the answer's access_token is empty")));
    }
    Ok(answer)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: body.to_string().into(),
        }
    }

    #[test]
    fn token_answers() {
        let a = token_answer(&response(200, r#"{"access_token":"t","expires_in":3599,"token_type":"Bearer"}"#), "w")
            .unwrap();
        assert_eq!((a.access_token.as_str(), a.expires_in), ("t", Some(3599)));
        let e =
            token_answer(&response(400, r#"{"error":"invalid_grant","error_description":"Invalid JWT"}"#), "fetching")
                .unwrap_err();
        assert_eq!(e, Error::other("fetching: answered 400 Bad Request: invalid_grant: Invalid JWT"));
        assert!(token_answer(&response(200, "{}"), "w").unwrap_err().to_string().contains("no access token"));
        assert!(token_answer(&response(200, r#"{"access_token":""}"#), "w").is_err());
    }

    #[test]
    fn anonymous_sends_no_credentials() {
        let auth = Auth::anonymous();
        assert!(auth.is_anonymous());
        assert_eq!(auth.header().unwrap(), None);
        assert!(!auth.invalidate());
        assert_eq!(auth.signer_email().unwrap(), None);
        let r = auth.authorize(Request::new(Method::GET, "http://h/")).unwrap();
        assert!(r.header_value("authorization").is_none());
    }

    #[test]
    fn cached_tokens_are_used_until_shortly_before_expiry() {
        let key = Rc::new(ServiceAccount::from_json(crate::key::tests::TEST_KEY, "k").unwrap());
        let auth = Auth::with_key(key);
        *auth.token.borrow_mut() =
            Some(Token { header: "Bearer cached".into(), refresh_at: Instant::now() + Duration::from_secs(30) });
        assert_eq!(auth.header().unwrap().as_deref(), Some("Bearer cached"));
        let r = auth.authorize(Request::new(Method::GET, "http://h/")).unwrap();
        assert_eq!(r.header_value("authorization"), Some("Bearer cached"));
        assert!(auth.invalidate());
        assert!(!auth.invalidate(), "nothing left to refresh");
    }
}
