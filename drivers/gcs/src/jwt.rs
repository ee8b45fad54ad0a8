//! The signed JWT a service account trades for an access token (OAuth 2.0 JWT bearer grant,
//! RFC 7523), RS256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::key::ServiceAccount;

/// What the driver asks for: distribution's gcs driver uses the same scope.
pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.full_control";
/// Google accepts assertions valid for at most an hour.
const LIFETIME_SECS: u64 = 3600;

/// `header.claims.signature`, issued at `now` (Unix seconds) for `key.token_uri`.
pub fn assertion(key: &ServiceAccount, now: u64) -> String {
    let mut header = json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = &key.key_id {
        header["kid"] = kid.as_str().into();
    }
    let claims = json!({
        "iss": key.email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + LIFETIME_SECS,
    });
    let signed =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::sha2::Sha256;
    use rsa::signature::Verifier;
    use serde_json::Value;

    use super::*;
    use crate::key::tests::TEST_KEY;

    #[test]
    fn assertions_verify_with_the_public_key() {
        let key = ServiceAccount::from_json(TEST_KEY, "k").unwrap();
        let jwt = assertion(&key, 1_549_011_600);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "ffffffffffffffffffffffffffffffffffffffff");
        assert_eq!(claims["iss"], key.email.as_str());
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!((claims["iat"].as_u64(), claims["exp"].as_u64()), (Some(1_549_011_600), Some(1_549_015_200)));

        let pem: Value = serde_json::from_str(TEST_KEY).unwrap();
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem["private_key"].as_str().unwrap()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(private.to_public_key());
        let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(signed.as_bytes(), &signature).expect("the signature verifies");
        assert!(verifier.verify(b"something else", &signature).is_err());
    }
}
