//! XML answers (Azure's listings and errors) through quick-xml's serde support.

use serde::de::DeserializeOwned;

use regstore_sdk::{Error, Result};

/// Parses an XML body into `T`; `what` names the request for the message.
pub fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    let text = std::str::from_utf8(body).map_err(|_| Error::other(format!("{what}: the answer is not UTF-8 XML")))?;
    quick_xml::de::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| Error::other(format!("{what}: cannot read the XML answer: {e}")))
}

/// Text with XML's five special characters escaped, for request bodies.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct ApiError {
        #[serde(rename = "Code")]
        code: String,
    }

    #[test]
    fn parses_with_a_byte_order_mark() {
        let e: ApiError =
            parse("\u{feff}<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code></Error>".as_bytes(), "x").unwrap();
        assert_eq!(e.code, "BlobNotFound");
        assert!(parse::<ApiError>(b"<nope", "listing").unwrap_err().to_string().contains("listing"));
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
    }
}
