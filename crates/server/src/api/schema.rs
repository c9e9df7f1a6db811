//! JSON Schemas of the OpenAPI document (OpenAPI 3.1, whose schemas are JSON Schema 2020-12). Every JSON
//! answer and every JSON request body is typed in `apitypes` and gets its schema derived by `utoipa`;
//! answers are then [`close`]d here (NanoMDM's shapes, whose fields may be left out, stay open). Only the
//! text of non-JSON bodies (plists, CSV, profiles) is still described with the small builders below. The
//! openapi test validates real answers and sample request bodies against the document with the `jsonschema`
//! crate.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// A request or answer body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body (an answer of 204, or a POST that reads nothing).
    Empty,
    /// `application/json` with this schema.
    Json(Value),
    /// Another media type (a command plist, a CSV export, a signed profile) and the schema of its text.
    Media(&'static str, Value),
}

pub(crate) fn string() -> Value {
    json!({"type": "string"})
}

/// `#/components/schemas/{name}`.
pub(crate) fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `schema` with a description.
pub(crate) fn described(schema: Value, text: &str) -> Value {
    let mut schema = schema;
    schema["description"] = json!(text);
    schema
}

/// Closes the derived answer schemas named in `typed`, as the hand-written ones always were: an answer carries
/// every field (null when unknown), so each is required, and no other field is allowed. A flattened struct
/// (utoipa's `allOf` of a `$ref` and the extra fields) becomes one object with the fields of both, since
/// `additionalProperties: false` cannot see across `allOf`.
pub(crate) fn close(components: &mut BTreeMap<String, Value>, typed: &BTreeSet<String>) {
    let source = components.clone();
    for name in typed {
        if let Some(s) = components.get_mut(name) {
            close_schema(s, &source);
        }
    }
}

fn close_schema(s: &mut Value, components: &BTreeMap<String, Value>) {
    if let Some(parts) = s.get("allOf").and_then(Value::as_array).cloned() {
        let mut merged = Map::new();
        for part in parts {
            let mut part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|name| components.get(name))
                    .cloned()
                    .unwrap_or(part),
                None => part,
            };
            close_schema(&mut part, components);
            if let Some(props) = part.get("properties").and_then(Value::as_object) {
                merged.extend(props.clone());
            }
        }
        let obj = s.as_object_mut().expect("allOf sits in an object");
        obj.remove("allOf");
        obj.insert("type".into(), json!("object"));
        obj.insert("properties".into(), Value::Object(merged));
    }
    let Some(obj) = s.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for p in props.values_mut() {
            close_schema(p, components);
        }
        let names: Vec<Value> = props.keys().map(|k| json!(k)).collect();
        obj.insert("required".into(), Value::Array(names));
        obj.insert("additionalProperties".into(), json!(false));
    }
    if let Some(items) = obj.get_mut("items") {
        close_schema(items, components);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(list)) = obj.get_mut(key) {
            list.iter_mut().for_each(|v| close_schema(v, components));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_requires_every_field_and_merges_a_flattened_struct() {
        let mut c = BTreeMap::new();
        c.insert(
            "A".to_string(),
            json!({"type": "object", "properties": {"x": {"type": ["string", "null"]}}}),
        );
        c.insert(
            "B".to_string(),
            json!({"allOf": [{"$ref": "#/components/schemas/A"}, {"type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]}]}),
        );
        let typed = ["A".to_string(), "B".to_string()].into_iter().collect();
        close(&mut c, &typed);
        assert_eq!(c["A"]["required"], json!(["x"]));
        assert_eq!(c["A"]["additionalProperties"], json!(false));
        assert_eq!(c["B"]["required"], json!(["x", "y"]));
        assert!(c["B"].get("allOf").is_none());
    }
}
