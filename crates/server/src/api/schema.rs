//! Small builders for the JSON Schemas of the OpenAPI document (OpenAPI 3.1, whose schemas are JSON Schema
//! 2020-12), so each module writes the schema of its bodies beside its handlers in a few lines. The builders
//! use a small subset on purpose: `type` (a name, or a list for nullable values), `properties`, `required`,
//! `additionalProperties: false`, `items`, `enum`, `anyOf`/`oneOf` and `$ref` into `components/schemas`.
//! The API test validates real answers against these schemas with a validator for exactly that subset.

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

pub(crate) fn integer() -> Value {
    json!({"type": "integer"})
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis() -> Value {
    json!({"type": "integer", "description": "milliseconds since the Unix epoch"})
}

pub(crate) fn boolean() -> Value {
    json!({"type": "boolean"})
}

/// One of these strings.
pub(crate) fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

pub(crate) fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// `#/components/schemas/{name}`.
pub(crate) fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The same schema, or null.
pub(crate) fn nullable(schema: Value) -> Value {
    let mut schema = schema;
    let Some(obj) = schema.as_object_mut() else {
        return schema;
    };
    match obj.get("type").cloned() {
        Some(Value::String(t)) if obj.get("$ref").is_none() => {
            obj.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(values)) = obj.get_mut("enum") {
                values.push(Value::Null);
            }
            schema
        }
        _ => json!({"anyOf": [schema, {"type": "null"}]}),
    }
}

/// An object with exactly these fields, all present (a value may still be null where its schema says so).
pub(crate) fn object(fields: &[(&str, Value)]) -> Value {
    object_with(fields, &[])
}

/// An object with these required and optional fields and no others.
pub(crate) fn object_with(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    for (name, schema) in required.iter().chain(optional) {
        properties.insert((*name).to_string(), schema.clone());
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "additionalProperties": false,
    })
}

/// `schema` with more fields (all required) added to its properties.
pub(crate) fn extend(schema: Value, fields: &[(&str, Value)]) -> Value {
    let mut schema = schema;
    for (name, field) in fields {
        schema["properties"][*name] = field.clone();
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.push(json!(name));
        }
    }
    schema
}

/// `schema` with a description.
pub(crate) fn described(schema: Value, text: &str) -> Value {
    let mut schema = schema;
    schema["description"] = json!(text);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_adds_null_to_the_type_or_wraps_a_reference() {
        assert_eq!(nullable(string()), json!({"type": ["string", "null"]}));
        assert_eq!(
            nullable(one_of(&["a"])),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(
            nullable(reference("X")),
            json!({"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]})
        );
    }

    #[test]
    fn objects_list_required_fields_and_refuse_others() {
        let o = object_with(&[("a", string())], &[("b", integer())]);
        assert_eq!(o["required"], json!(["a"]));
        assert_eq!(o["additionalProperties"], json!(false));
        assert_eq!(o["properties"]["b"], integer());
        let e = extend(o, &[("c", boolean())]);
        assert_eq!(e["required"], json!(["a", "c"]));
    }
}
