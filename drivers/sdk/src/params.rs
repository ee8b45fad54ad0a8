//! Driver parameters, coerced as distribution accepts them.
//!
//! Parameters come from `config.yml` (typed YAML values) or from `REGISTRY_STORAGE_<DRIVER>_<KEY>`
//! environment overrides and `--param key=value` (strings), so every getter accepts a string as
//! well as the native type.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// The JSON object handed to `open`.
#[derive(Debug, Clone, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Parses the JSON object handed to `open`; `null` or an empty text means no parameters.
    pub fn parse(json: &str) -> Result<Self> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(Value::Null) => Ok(Self::default()),
            Ok(other) => Err(Error::invalid_parameter(format!("parameters must be a JSON object, not {other}"))),
            Err(e) => Err(Error::invalid_parameter(format!("parameters are not valid JSON: {e}"))),
        }
    }

    /// The raw value, absent when missing or `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string parameter; numbers and booleans are printed as Go's `fmt.Sprint` would.
    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(Error::invalid_parameter(format!("the {key} parameter should be a string, not {v}"))),
        }
    }

    /// A boolean parameter: `true`/`false`, or a string Go's `strconv.ParseBool` accepts.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        let bad = |v: &Value| Error::invalid_parameter(format!("the {key} parameter should be a boolean, not {v}"));
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v @ Value::String(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                _ => Err(bad(v)),
            },
            Some(v) => Err(bad(v)),
        }
    }

    /// A signed integer parameter: a JSON integer, a float without fraction, or a decimal string.
    pub fn i64(&self, key: &str, default: i64) -> Result<i64> {
        let bad = |v: &Value| Error::invalid_parameter(format!("the {key} parameter should be an integer, not {v}"));
        match self.get(key) {
            None => Ok(default),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
                .ok_or_else(|| bad(v)),
            Some(v @ Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad(v)),
            Some(v) => Err(bad(v)),
        }
    }

    /// An integer parameter that must lie in `min..=max`; the error names the bounds.
    pub fn i64_in(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64> {
        let value = self.i64(key, default)?;
        if value < min || value > max {
            return Err(Error::invalid_parameter(format!(
                "the {key} parameter must be between {min} and {max} (got {value})"
            )));
        }
        Ok(value)
    }

    /// distribution's `GetLimitFromParameter`: a concurrency limit raised to at least `min`.
    /// Strings are parsed as unsigned integers with Go's base prefixes (`0x10`, `0o17`, `0b1`).
    pub fn limit(&self, key: &str, min: u64, default: u64) -> Result<u64> {
        let limit = match self.get(key) {
            None => default,
            Some(Value::String(s)) => parse_go_uint(s)
                .ok_or_else(|| Error::invalid_parameter(format!("parameter must be an integer, '{s}' invalid")))?,
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u,
                // A signed value that is not positive means the minimum, as upstream.
                (None, Some(_)) => min,
                (None, None) => {
                    return Err(Error::invalid_parameter(format!("invalid value '{n}'")));
                }
            },
            Some(v) => return Err(Error::invalid_parameter(format!("invalid value '{v}'"))),
        };
        Ok(limit.max(min))
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: an optional base prefix, underscores only with a prefix.
fn parse_go_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    let digits = if radix == 10 { digits.to_string() } else { digits.replace('_', "") };
    if digits.is_empty() || digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        Params::parse(json).unwrap()
    }

    #[test]
    fn limit_as_distribution() {
        // distribution's TestGetLimitFromParameter, plus signed and base-prefixed values.
        assert!(params(r#"{"m":"foo"}"#).limit("m", 1, 50).is_err());
        assert_eq!(params(r#"{"m":"50"}"#).limit("m", 1, 50).unwrap(), 50);
        assert_eq!(params(r#"{"m":"5"}"#).limit("m", 25, 50).unwrap(), 25);
        assert_eq!(params("{}").limit("m", 1, 50).unwrap(), 50);
        assert_eq!(params(r#"{"m":812}"#).limit("m", 1, 50).unwrap(), 812);
        assert_eq!(params(r#"{"m":-3}"#).limit("m", 25, 50).unwrap(), 25);
        assert_eq!(params(r#"{"m":"0x10"}"#).limit("m", 1, 50).unwrap(), 16);
        assert!(params(r#"{"m":true}"#).limit("m", 1, 50).is_err());
    }

    #[test]
    fn bools_and_strings_coerce() {
        let p = params(r#"{"a":"true","b":false,"c":"nope","n":5,"s":"x"}"#);
        assert!(p.bool("a", false).unwrap());
        assert!(!p.bool("b", true).unwrap());
        assert!(p.bool("c", true).is_err());
        assert!(p.bool("missing", true).unwrap());
        assert_eq!(p.string("n").unwrap().as_deref(), Some("5"));
        assert_eq!(p.string("s").unwrap().as_deref(), Some("x"));
    }

    #[test]
    fn integers_coerce_and_bound() {
        let p = params(r#"{"a":"10485760","b":5.0,"c":"x","d":1}"#);
        assert_eq!(p.i64("a", 0).unwrap(), 10_485_760);
        assert_eq!(p.i64("b", 0).unwrap(), 5);
        assert!(p.i64("c", 0).is_err());
        let err = p.i64_in("d", 0, 5, 10).unwrap_err();
        assert!(err.to_string().contains("between 5 and 10"), "{err}");
    }

    #[test]
    fn rejects_non_objects() {
        assert!(Params::parse("[1]").is_err());
        assert!(Params::parse("{").is_err());
        assert!(Params::parse("").unwrap().get("x").is_none());
    }
}
