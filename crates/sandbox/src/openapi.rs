//! Lightspeed's OpenAPI schemas as JSON Schema validators: one conversion, used by the sandbox
//! at runtime (it validates 2026-07 request bodies against the published schemas, see
//! `lightspeed/dated.rs`) and by its tests (they validate every answer, `tests/openapi.rs` and
//! `tests/openapi_2026_07.rs`).
//!
//! The schemas are Lightspeed's published OpenAPI files reduced to the operations the
//! connector calls (`tests/fixtures/lightspeed/`): OpenAPI 3.0 schema objects, which are JSON
//! Schema but for `nullable` ([`convert`]).

use jsonschema::Validator;
use serde_json::{Map, Value, json};

/// OpenAPI 3.0 schema objects -> JSON Schema: `nullable: true` becomes a `null` alternative (a
/// `"null"` type, a `null` in the `enum`, or `anyOf [$ref, null]` for a bare `$ref`).
/// `example`/`examples` hold sample data, not schemas, and are copied as they are.
///
/// Source: `tests/fixtures/lightspeed/2026-07/MAPPING.md`, "Using them from a test" (take the
/// operation's schema, apply `convert()`, insert the file's `components`, compile).
pub fn convert(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(convert).collect()),
        Value::Object(m) => {
            let mut out: Map<String, Value> = Map::new();
            for (k, v) in m {
                if k == "example" || k == "examples" {
                    out.insert(k.clone(), v.clone());
                } else {
                    out.insert(k.clone(), convert(v));
                }
            }
            if out.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(t) = out.get("type").cloned() {
                    let mut types = match t {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    types.push(json!("null"));
                    out.insert("type".into(), Value::Array(types));
                    if let Some(Value::Array(e)) = out.get_mut("enum") {
                        e.push(Value::Null);
                    }
                } else if let Some(r) = out.remove("$ref") {
                    out.insert("anyOf".into(), json!([{"$ref": r}, {"type": "null"}]));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// A validator for `schema` (a schema object of `spec`, e.g. an operation's response schema or
/// `{"$ref": "#/components/schemas/SaleRequest"}`) with the `components` of `spec` (a whole
/// OpenAPI file), both converted. Formats are checked (`uuid`, `date-time`, `email`...);
/// unknown ones (`"UUID"`, used on Product fields) are ignored.
pub fn validator(spec: &Value, schema: &Value) -> Result<Validator, String> {
    let mut root = match convert(schema) {
        Value::Object(m) => m,
        other => return Err(format!("the schema is not an object: {other}")),
    };
    root.insert("components".into(), convert(&spec["components"]));
    jsonschema::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .build(&Value::Object(root))
        .map_err(|e| format!("the schema does not compile: {e}"))
}

/// A validator for the component schema `name` of `spec` (see [`validator`]).
pub fn component_validator(spec: &Value, name: &str) -> Result<Validator, String> {
    if spec["components"]["schemas"][name].is_null() {
        return Err(format!("the OpenAPI file has no component {name}"));
    }
    validator(
        spec,
        &json!({"$ref": format!("#/components/schemas/{name}")}),
    )
}

/// Every error `validator` finds in `instance`, as `"{instance path}: {message}"` (the JSON
/// pointer of the value at fault, `/` for the whole document), sorted.
pub fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    let mut out: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let path = e.instance_path.to_string();
            let path = if path.is_empty() { "/".into() } else { path };
            format!("{path}: {e}")
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALES: &str = include_str!("../tests/fixtures/lightspeed/2026-07/sales.json");

    #[test]
    fn nullable_becomes_a_null_alternative() {
        assert_eq!(
            convert(&json!({"type": "string", "nullable": true, "enum": ["A", null]})),
            json!({"type": ["string", "null"], "enum": ["A", null, null]})
        );
        assert_eq!(
            convert(&json!({"$ref": "#/x", "nullable": true, "example": {"nullable": true}})),
            json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}], "example": {"nullable": true}})
        );
        assert_eq!(
            convert(&json!({"type": "string", "nullable": false})),
            json!({"type": "string"})
        );
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let spec: Value = serde_json::from_str(SALES).unwrap();
        let v = component_validator(&spec, "SaleRequest").unwrap();
        let body = json!({"source": {}, "state": "closed"});
        assert_eq!(
            errors(&v, &body),
            ["/source: \"author_id\" is a required property"]
        );
        let errs = errors(&v, &json!({"source": {"author_id": "not-a-uuid"}}));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("/: ") && errs[0].contains("\"state\""));
        assert!(errs[1].starts_with("/source/author_id: "), "{errs:?}");
        assert!(component_validator(&spec, "Nope").is_err());
    }
}
