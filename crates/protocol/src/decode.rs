//! Shared parsing steps: guard, then XML-only plist parsing, then typed decoding with safe errors.
//!
//! Guarantees: bytes reach `plist` only after [`crate::guard::check_xml_plist`] accepted them, and only
//! its XML reader is used (no binary or OpenStep fallback). Decoding errors name the offending key (only
//! identifier-like keys, and in practice only keys the target type declares) and the value's plist type,
//! never the value: serde's own messages would echo e.g. a `BootstrapToken` sent as a string.

use plist::{Dictionary, Value};
use serde::de::DeserializeOwned;

use crate::error::ProtocolError;
use crate::guard::{DEFAULT_MAX_BODY, DEFAULT_MAX_DEPTH, check_xml_plist};

/// Guards `body` with the default limits and parses it as an XML plist whose top level is a dict.
/// Returns the dict still wrapped as a `Value`, ready for [`decode`].
pub(crate) fn guarded_dict(body: &[u8]) -> Result<Value, ProtocolError> {
    check_xml_plist(body, DEFAULT_MAX_DEPTH, DEFAULT_MAX_BODY)?;
    // plist's syntax errors print as an error kind plus a byte offset, never input bytes.
    let value =
        Value::from_reader_xml(body).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    match value {
        Value::Dictionary(_) => Ok(value),
        other => Err(ProtocolError::Malformed(format!(
            "top level must be a dict, found {}",
            kind(&other)
        ))),
    }
}

/// Decodes `T` from a plist value. `what` names the message or result in errors; on failure the error
/// names the first top-level key whose value alone fails to decode.
pub(crate) fn decode<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, ProtocolError> {
    decode_keeping(value, what, &[])
}

/// As [`decode`], but the keys in `always` (e.g. an enum tag) accompany each key probed for the culprit.
pub(crate) fn decode_keeping<T: DeserializeOwned>(
    value: &Value,
    what: &str,
    always: &[&str],
) -> Result<T, ProtocolError> {
    // serde's message may quote the offending value, so it is dropped here.
    plist::from_value::<T>(value).map_err(|_| {
        let detail = match value {
            Value::Dictionary(dict) => {
                culprit(dict, always, |probe| plist::from_value::<T>(probe).is_err())
            }
            other => Some(format!("expected a dict, found {}", kind(other))),
        };
        ProtocolError::Malformed(match detail {
            Some(detail) => format!("{what}: {detail}"),
            None => format!("{what}: unexpected structure"),
        })
    })
}

/// Decodes each item of a plist array as `T`, naming the failing item's index in errors.
pub(crate) fn decode_items<T: DeserializeOwned>(
    value: &Value,
    what: &str,
) -> Result<Vec<T>, ProtocolError> {
    let Value::Array(items) = value else {
        return Err(ProtocolError::Malformed(format!(
            "{what}: expected an array, found {}",
            kind(value)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| decode(item, &format!("{what} item {i}")))
        .collect()
}

/// Names the first key whose value, alone in a dict (plus the `always` keys), makes `fails` true.
fn culprit(dict: &Dictionary, always: &[&str], fails: impl Fn(&Value) -> bool) -> Option<String> {
    let is_kept = |key: &String| always.contains(&key.as_str());
    let base: Dictionary = dict
        .iter()
        .filter(|(key, _)| is_kept(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    dict.iter()
        .filter(|(key, _)| !is_kept(key))
        .find_map(|(key, value)| {
            let mut probe = base.clone();
            probe.insert(key.clone(), value.clone());
            fails(&Value::Dictionary(probe))
                .then(|| format!("invalid value for {} ({})", show_key(key), kind(value)))
        })
}

/// A key name fit for an error message: identifier-like keys are shown, anything else is not.
fn show_key(key: &str) -> String {
    let plain = key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        format!("`{key}`")
    } else {
        "a key".to_owned()
    }
}

/// The plist type of a value, for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Dictionary(_) => "dict",
        Value::Boolean(_) => "boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "date",
        Value::Real(_) => "real",
        Value::Integer(_) => "integer",
        Value::String(_) => "string",
        Value::Uid(_) => "uid",
        _ => "unknown value",
    }
}

/// Writes a plist value as XML.
pub(crate) fn to_xml(value: &Value) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    value
        .to_writer_xml(&mut out)
        .map_err(|e| ProtocolError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Probe {
        #[serde(rename = "Name")]
        name: Option<String>,
        #[serde(rename = "Count")]
        count: Option<i64>,
    }

    fn dict(entries: &[(&str, Value)]) -> Value {
        Value::Dictionary(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn decode_error_names_the_key_and_type_but_not_the_value() {
        let value = dict(&[
            ("Name", Value::String("fine".into())),
            ("Count", Value::String("hunter2".into())),
        ]);
        let err = decode::<Probe>(&value, "Probe").unwrap_err().to_string();
        assert!(err.contains("`Count`") && err.contains("string"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn decode_error_hides_keys_that_are_not_identifier_like() {
        assert_eq!(show_key("UDID"), "`UDID`");
        assert_eq!(show_key("secret value with spaces"), "a key");
        assert_eq!(show_key(&"A".repeat(65)), "a key");
    }

    #[test]
    fn non_dict_where_a_dict_is_expected_is_a_clean_error() {
        let err = decode::<Probe>(&Value::Boolean(true), "Probe")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a dict, found boolean"), "{err}");
    }

    #[test]
    fn decode_items_names_the_failing_index() {
        let items = Value::Array(vec![
            dict(&[("Count", Value::Integer(1.into()))]),
            dict(&[("Count", Value::Boolean(true))]),
        ]);
        let err = decode_items::<Probe>(&items, "Things")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Things item 1") && err.contains("`Count`"),
            "{err}"
        );
        assert!(decode_items::<Probe>(&Value::Boolean(true), "Things").is_err());
    }

    #[test]
    fn guarded_dict_refuses_a_non_dict_top_level() {
        let body = b"<plist><array/></plist>";
        let err = guarded_dict(body).unwrap_err().to_string();
        assert!(
            err.contains("top level must be a dict, found array"),
            "{err}"
        );
    }
}
