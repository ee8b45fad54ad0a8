//! How requests are authorised: Shared Key signatures, or OAuth bearer tokens from Entra ID
//! (a client secret, workload identity's federated token, or a managed identity through the
//! instance metadata endpoint), cached until shortly before they expire.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use http::Method;
use regstore_objectstore::{Client, Idempotence, Request};
use regstore_sdk::{Error, Result};
use serde::Deserialize;

use crate::config::{Config, Credentials, DEFAULT_AUTHORITY_HOST, METADATA_AUTHORITY};
use crate::sign::{encode_query, sign_shared_key};

/// The scope and resource of Azure Storage tokens.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const STORAGE_RESOURCE: &str = "https://storage.azure.com/";
/// A token is renewed when less than this is left of it.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

pub enum Auth {
    SharedKey { account: String, key: Vec<u8> },
    Token { source: TokenSource, cached: RefCell<Option<(String, SystemTime)>> },
}

pub enum TokenSource {
    ClientSecret { url: String, client_id: String, secret: String },
    Workload { url: String, client_id: String, token_file: String },
    ManagedIdentity,
}

/// The variables the host handed this driver.
pub type Env = dyn Fn(&str) -> Option<String>;

impl Auth {
    pub fn new(config: &Config, env: &Env) -> Result<Auth> {
        let source = match &config.credentials {
            Credentials::SharedKey { key } => {
                return Ok(Auth::SharedKey { account: config.account_name.clone(), key: key.clone() });
            }
            Credentials::ClientSecret { tenant_id, client_id, secret, authority_host } => TokenSource::ClientSecret {
                url: token_url(authority_host, tenant_id),
                client_id: client_id.clone(),
                secret: secret.clone(),
            },
            Credentials::Default { federated_token_file, authority_host } => {
                let file = federated_token_file.clone().or_else(|| env("AZURE_FEDERATED_TOKEN_FILE"));
                match (file, env("AZURE_CLIENT_ID"), env("AZURE_TENANT_ID")) {
                    (Some(token_file), Some(client_id), Some(tenant_id)) => {
                        let host = authority_host
                            .clone()
                            .or_else(|| env("AZURE_AUTHORITY_HOST"))
                            .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.into());
                        TokenSource::Workload { url: token_url(&host, &tenant_id), client_id, token_file }
                    }
                    _ => TokenSource::ManagedIdentity,
                }
            }
        };
        Ok(Auth::Token { source, cached: RefCell::new(None) })
    }

    /// Adds the request's `Authorization` (its `x-ms-date` and `x-ms-version` are set).
    pub fn authorize(&self, request: Request) -> Result<Request> {
        match self {
            Auth::SharedKey { account, key } => Ok(sign_shared_key(request, account, key)),
            Auth::Token { .. } => Ok(request.header("authorization", format!("Bearer {}", self.token()?))),
        }
    }

    /// Forgets the cached token (after a 401, so that the next request fetches a new one).
    pub fn forget_token(&self) {
        if let Auth::Token { cached, .. } = self {
            cached.borrow_mut().take();
        }
    }

    fn token(&self) -> Result<String> {
        let Auth::Token { source, cached } = self else { unreachable!("only token credentials have tokens") };
        if let Some((token, expires)) = cached.borrow().as_ref()
            && SystemTime::now() + RENEW_BEFORE < *expires
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = source.fetch()?;
        cached.replace(Some((token.clone(), SystemTime::now() + lifetime)));
        Ok(token)
    }
}

fn token_url(authority_host: &str, tenant_id: &str) -> String {
    format!("{}/{}/oauth2/v2.0/token", authority_host.trim_end_matches('/'), encode_query(tenant_id))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; the metadata endpoint sends it as a string.
    expires_in: serde_json::Value,
}

impl TokenSource {
    fn fetch(&self) -> Result<(String, Duration)> {
        let (url, request) = match self {
            TokenSource::ClientSecret { url, client_id, secret } => {
                let form = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    encode_query(client_id),
                    encode_query(secret),
                    encode_query(STORAGE_SCOPE)
                );
                (url.clone(), form_post(url, form))
            }
            TokenSource::Workload { url, client_id, token_file } => {
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    Error::other(format!(
                        "workload identity: cannot read the federated token file {token_file}: {e} (the host grants \
                         it when credentials.federatedtokenfile names it)"
                    ))
                })?;
                let form = format!(
                    "grant_type=client_credentials&client_id={}&scope={}\
                     &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                     &client_assertion={}",
                    encode_query(client_id),
                    encode_query(STORAGE_SCOPE),
                    encode_query(assertion.trim())
                );
                (url.clone(), form_post(url, form))
            }
            TokenSource::ManagedIdentity => {
                let url = format!(
                    "http://{METADATA_AUTHORITY}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
                    encode_query(STORAGE_RESOURCE)
                );
                (url.clone(), Request::new(Method::GET, &url).header("metadata", "true"))
            }
        };
        let client = Client::new("the Entra ID token endpoint", &url);
        let response = client.call("fetching an access token", Idempotence::Safe, || Ok(request.clone())).map_err(
            |e| match self {
                TokenSource::ManagedIdentity if e.to_string().contains("refused") => Error::other(format!(
                    "default_credentials: no workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID and a federated \
                     token file) was handed to the driver, and managed identity needs the instance metadata \
                     endpoint, which the sandbox blocks unless it is granted by name: --allow-host \
                     {METADATA_AUTHORITY} ({e})"
                )),
                _ => e,
            },
        )?;
        if !response.status.is_success() {
            return Err(Error::other(format!(
                "fetching an access token from {}: {} {}",
                client.endpoint(),
                response.status,
                response.text().chars().take(300).collect::<String>()
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(&response.body)
            .map_err(|e| Error::other(format!("fetching an access token from {}: {e}", client.endpoint())))?;
        let seconds = match &answer.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(300);
        Ok((answer.access_token, Duration::from_secs(seconds)))
    }
}

fn form_post(url: &str, form: String) -> Request {
    Request::new(Method::POST, url).header("content-type", "application/x-www-form-urlencoded").body(form.into_bytes())
}
