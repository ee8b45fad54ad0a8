//! Service-account keys (the JSON file Google hands out, or the same fields inline), and
//! RSASSA-PKCS1-v1_5 SHA-256 signatures with them, for access tokens and signed URLs.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::rand_core::{CryptoRng, RngCore};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{RsaPrivateKey, sha2::Sha256};
use serde_json::{Map, Value};

use regstore_sdk::{Error, Result};

/// Where tokens come from when the key does not say (Google's own default).
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A service account's identity and private key.
pub struct ServiceAccount {
    pub email: String,
    /// `private_key_id`: the `kid` of the tokens' JWTs.
    pub key_id: Option<String>,
    pub token_uri: String,
    signer: SigningKey<Sha256>,
}

impl std::fmt::Debug for ServiceAccount {
    /// Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("email", &self.email).field("token_uri", &self.token_uri).finish()
    }
}

impl ServiceAccount {
    /// A key from the text of a JSON key file; `source` names it in messages.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => Self::from_fields(&fields, source),
            Ok(_) => Err(Error::invalid_parameter(format!("{source} is not a JSON object"))),
            Err(e) => Err(Error::invalid_parameter(format!("{source} is not valid JSON: {e}"))),
        }
    }

    /// A key from its fields (`client_email`, `private_key`, ...), as a key file holds them.
    pub fn from_fields(fields: &Map<String, Value>, source: &str) -> Result<Self> {
        let text = |name: &str| -> Result<Option<&str>> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
                Some(other) => {
                    Err(Error::invalid_parameter(format!("{source}: the field {name} must be a string, not {other}")))
                }
            }
        };
        if let Some(kind) = text("type")?
            && kind != "service_account"
        {
            return Err(Error::invalid_parameter(format!(
                "{source} holds credentials of type {kind}; only service-account keys (type service_account) \
                 are supported"
            )));
        }
        let missing = |name: &str| Error::invalid_parameter(format!("{source} has no {name}"));
        let email = text("client_email")?.ok_or_else(|| missing("client_email"))?.to_string();
        let pem = text("private_key")?.ok_or_else(|| missing("private_key"))?;
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| Error::invalid_parameter(format!("{source}: private_key is not an RSA key in PEM: {e}")))?;
        let token_uri = text("token_uri")?.unwrap_or(DEFAULT_TOKEN_URI).to_string();
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(Error::invalid_parameter(format!("{source}: token_uri {token_uri:?} is not an http(s) URL")));
        }
        Ok(ServiceAccount {
            email,
            key_id: text("private_key_id")?.map(str::to_string),
            token_uri,
            signer: SigningKey::<Sha256>::new(key),
        })
    }

    /// The RS256 signature of `data`. Blinded with fresh randomness, so its timing does not
    /// depend on the key.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.signer.sign_with_rng(&mut HostRng, data).to_vec()
    }
}

/// `n` random bytes from the host.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    HostRng.fill_bytes(&mut out);
    out
}

/// Randomness from the host (`wasi:random` in the component, the OS natively for tests).
struct HostRng;

impl RngCore for HostRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    #[cfg(target_arch = "wasm32")]
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let bytes = wasip2::random::random::get_random_bytes(dest.len() as u64);
        dest.copy_from_slice(&bytes[..dest.len()]);
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rsa::rand_core::OsRng.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for HostRng {}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The inactive key Google publishes with its signing conformance tests.
    pub const TEST_KEY: &str = include_str!("../testdata/test_service_account.not-a-test.json");

    #[test]
    fn reads_a_key_file() {
        let key = ServiceAccount::from_json(TEST_KEY, "keyfile k.json").unwrap();
        assert_eq!(key.email, "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com");
        assert_eq!(key.key_id.as_deref(), Some("ffffffffffffffffffffffffffffffffffffffff"));
        assert_eq!(key.token_uri, DEFAULT_TOKEN_URI);
        assert!(!format!("{key:?}").contains("PRIVATE"), "Debug must not print the key");
    }

    #[test]
    fn signatures_are_deterministic_pkcs1() {
        // Blinding changes the arithmetic, never the PKCS#1 v1.5 signature.
        let key = ServiceAccount::from_json(TEST_KEY, "k").unwrap();
        assert_eq!(key.sign(b"abc"), key.sign(b"abc"));
        assert_eq!(key.sign(b"abc").len(), 256);
        assert_ne!(key.sign(b"abc"), key.sign(b"abd"));
    }

    #[test]
    fn refuses_what_is_not_a_service_account_key() {
        let message = |text: &str| match ServiceAccount::from_json(text, "keyfile k.json") {
            Err(Error::InvalidParameter(m)) => m,
            other => panic!("accepted {text}: {other:?}"),
        };
        assert!(message("[1]").contains("not a JSON object"));
        assert!(message("{").contains("not valid JSON"));
        assert!(message(r#"{"type":"authorized_user"}"#).contains("type authorized_user"));
        assert_eq!(message(r#"{"private_key":"x"}"#), "keyfile k.json has no client_email");
        assert_eq!(message(r#"{"client_email":"a@b"}"#), "keyfile k.json has no private_key");
        assert!(message(r#"{"client_email":"a@b","private_key":"nope"}"#).contains("not an RSA key in PEM"));
        assert!(message(r#"{"client_email":7}"#).contains("client_email must be a string"));
        let mut fields: Map<String, Value> = serde_json::from_str(TEST_KEY).unwrap();
        fields.insert("token_uri".into(), "ftp://x".into());
        assert!(
            matches!(ServiceAccount::from_fields(&fields, "c"), Err(Error::InvalidParameter(m)) if m.contains("ftp://x"))
        );
    }
}
