//! YAML as distribution reads its configuration (Go's `gopkg.in/yaml.v2` decoding into
//! `interface{}`), into JSON values for driver parameters.
//!
//! yaml-rust2 parses; the plain scalars are resolved here by YAML 1.1's rules, as yaml.v2 does:
//! `yes`/`no`/`on`/`off` are booleans, `0755` is octal, `1_000` is 1000, and a timestamp stays a
//! string. Mapping keys are their text as written (`1:` is the key `"1"`, `n:` the key `"n"`), and merge keys
//! (`<<: *defaults`) fill in what a mapping does not set itself.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The first document in `text` as a JSON value (`Null` for an empty text).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut builder = Builder::default();
    Parser::new_from_str(text).load(&mut builder, false).map_err(|e| e.to_string())?;
    match builder.error {
        Some(e) => Err(e),
        None => Ok(builder.done.unwrap_or(Value::Null)),
    }
}

/// A node being built: a sequence, or a mapping with the key waiting for its value.
enum Open {
    Sequence { items: Vec<Value>, anchor: usize },
    Mapping { entries: Map<String, Value>, merged: Map<String, Value>, key: Option<Key>, anchor: usize },
}

/// A mapping key: its text, and whether it was the merge key `<<`.
struct Key {
    text: String,
    merge: bool,
}

#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    anchors: HashMap<usize, Value>,
    done: Option<Value>,
    error: Option<String>,
}

impl Builder {
    /// A finished node: the value of its parent's pending key, an item, or the document.
    fn finished(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        let Some(parent) = self.open.last_mut() else {
            self.done.get_or_insert(value);
            return;
        };
        match parent {
            Open::Sequence { items, .. } => items.push(value),
            Open::Mapping { entries, merged, key, .. } => match key.take() {
                None => *key = Some(Key { merge: false, text: key_text(&value) }),
                Some(Key { merge: true, .. }) => {
                    // `<<` takes a mapping or a list of mappings; earlier ones win.
                    let sources = match value {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for source in sources {
                        let Value::Object(source) = source else {
                            record(&mut self.error, mark, "a merge key (<<) needs a mapping or a list of mappings");
                            return;
                        };
                        for (k, v) in source {
                            merged.entry(k).or_insert(v);
                        }
                    }
                }
                Some(Key { text, .. }) => {
                    entries.insert(text, value);
                }
            },
        }
    }

    fn fail(&mut self, mark: Marker, why: &str) {
        record(&mut self.error, mark, why);
    }

    /// Whether a scalar about to be finished is the key `<<` of the open mapping.
    fn is_merge_key(&self, text: &str, style: TScalarStyle) -> bool {
        text == "<<"
            && style == TScalarStyle::Plain
            && matches!(self.open.last(), Some(Open::Mapping { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if self.is_merge_key(&text, style) {
                    if let Some(Open::Mapping { key, .. }) = self.open.last_mut() {
                        *key = Some(Key { text, merge: true });
                    }
                    return;
                }
                let as_key = matches!(self.open.last(), Some(Open::Mapping { key: None, .. }));
                match scalar(text.clone(), style, tag.as_ref()) {
                    // yaml.v2 decodes a key into a Go string: a null is "", anything else its
                    // text as written (`n:` is the key "n", not false).
                    Ok(Value::Null) if as_key && anchor == 0 => self.finished(Value::String(String::new()), 0, mark),
                    Ok(_) if as_key && anchor == 0 => self.finished(Value::String(text), 0, mark),
                    Ok(value) => self.finished(value, anchor, mark),
                    Err(e) => self.fail(mark, &e),
                }
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(value) => self.finished(value, 0, mark),
                None => self.fail(mark, "an alias to an unknown anchor"),
            },
            Event::SequenceStart(anchor, _) => self.open.push(Open::Sequence { items: Vec::new(), anchor }),
            Event::MappingStart(anchor, _) => {
                self.open.push(Open::Mapping { entries: Map::new(), merged: Map::new(), key: None, anchor })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.open.pop() {
                    Some(Open::Sequence { items, anchor }) => (Value::Array(items), anchor),
                    Some(Open::Mapping { mut entries, merged, anchor, .. }) => {
                        for (k, v) in merged {
                            entries.entry(k).or_insert(v);
                        }
                        (Value::Object(entries), anchor)
                    }
                    None => return,
                };
                self.finished(value, anchor, mark);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

/// Keeps the first error, with where it was found.
fn record(error: &mut Option<String>, mark: Marker, why: &str) {
    error.get_or_insert_with(|| format!("{why} at line {} column {}", mark.line(), mark.col() + 1));
}

/// A key's text: strings as they are, other values as they print.
fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A scalar's value: plain ones resolved by YAML 1.1's rules, quoted and block ones strings,
/// and the standard tags (`!!str`, `!!int`, ...) honoured.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag.filter(|t| t.handle == "tag:yaml.org,2002:" || t.handle == "!!") {
        let wrong = || format!("{text:?} is not a valid !!{}", tag.suffix);
        return match tag.suffix.as_str() {
            "str" | "binary" | "timestamp" => Ok(Value::String(text)),
            "null" => Ok(Value::Null),
            "bool" => boolean(&text).map(Value::Bool).ok_or_else(wrong),
            "int" => integer(&text).ok_or_else(wrong),
            "float" => integer(&text).or_else(|| float(&text)).ok_or_else(wrong),
            _ => Ok(Value::String(text)),
        };
    }
    if style != TScalarStyle::Plain || tag.is_some() {
        return Ok(Value::String(text));
    }
    Ok(plain(text))
}

/// A plain scalar, resolved as yaml.v2 resolves one for `interface{}`.
fn plain(text: String) -> Value {
    if let Some(b) = boolean(&text) {
        return Value::Bool(b);
    }
    if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    let numeric = text.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '.');
    if let Some(value) = numeric.then(|| integer(&text).or_else(|| float(&text))).flatten() {
        return value;
    }
    // Infinities and NaN have no JSON form, and a timestamp stays a string in yaml.v2.
    Value::String(text)
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// An integer as Go's `strconv.ParseInt(s, 0, 64)` (then `ParseUint`) reads it once the
/// underscores are gone: decimal, `0x` hex, `0o` or leading-`0` octal, `0b` binary, signed.
fn integer(text: &str) -> Option<Value> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, unsigned) = match digits.as_bytes().first()? {
        b'-' => (true, &digits[1..]),
        b'+' => (false, &digits[1..]),
        _ => (false, digits.as_str()),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (2, bin)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (8, oct)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        Some(Value::Number(value.into()))
    } else {
        Some(Value::Number(magnitude.into()))
    }
}

/// A float as yaml.v2 accepts one: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn float(text: &str) -> Option<Value> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    let unsigned = digits.strip_prefix(['-', '+']).unwrap_or(&digits);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => !fraction.is_empty() && all_digits(fraction),
        Some((whole, fraction)) => !whole.is_empty() && all_digits(whole) && all_digits(fraction),
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    Number::from_f64(digits.parse().ok()?).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_resolve_as_in_yaml_1_1() {
        let doc = parse(
            "a: yes\nb: Off\nc: ~\nd: 0755\ne: 0x1F\nf: -0b101\ng: 1_000\nh: 1.5e3\ni: .5\nj: 08\n\
             k: 2001-12-14\nl: .inf\nm: 18446744073709551615\nn: -9223372036854775808\no:\np: +12\n\
             0x1F: key\ny: n\n",
        )
        .unwrap();
        let expected = json!({
            "a": true, "b": false, "c": null, "d": 493, "e": 31, "f": -5, "g": 1000, "h": 1500.0,
            "i": 0.5, "j": 8.0, "k": "2001-12-14", "l": ".inf", "m": 18446744073709551615u64,
            "n": -9223372036854775808i64, "o": null, "p": 12, "0x1F": "key", "y": false,
        });
        assert_eq!(doc, expected);
    }

    #[test]
    fn quoted_and_tagged_scalars_keep_their_type() {
        let doc = parse("a: 'yes'\nb: \"5\"\nc: !!str 10\nd: !!int \"7\"\ne: |\n  text\nf: !!bool maybe\n");
        assert!(doc.as_ref().unwrap_err().contains("!!bool"), "{doc:?}");
        let doc = parse("a: 'yes'\nb: \"5\"\nc: !!str 10\nd: !!int \"7\"\ne: |\n  text\n").unwrap();
        assert_eq!(doc, json!({"a": "yes", "b": "5", "c": "10", "d": 7, "e": "text\n"}));
    }

    #[test]
    fn keys_of_any_type_become_text_and_merges_fill_in() {
        let doc = parse(
            "defaults: &d\n  region: us-east-1\n  secure: true\ns3:\n  <<: *d\n  secure: false\n  1: one\n\
             list: [*d, 2]\n",
        )
        .unwrap();
        assert_eq!(doc["s3"], json!({"region": "us-east-1", "secure": false, "1": "one"}));
        assert_eq!(doc["list"][0]["region"], "us-east-1");
        assert_eq!(parse("").unwrap(), Value::Null);
        assert_eq!(parse("inmemory").unwrap(), json!("inmemory"));
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = parse("storage:\n  s3: [unclosed\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        let e = parse("a: *nowhere\n").unwrap_err();
        assert!(!e.is_empty());
        let e = parse("a:\n  <<: 5\n").unwrap_err();
        assert!(e.contains("merge key"), "{e}");
    }
}
