//! Checking answers against Lightspeed's OpenAPI files (`tests/fixtures/lightspeed/`), one file
//! at a time. The conversion to JSON Schema is the sandbox's own (`els_sandbox::openapi`), the
//! one it validates 2026-07 request bodies with.

use els_sandbox::openapi;
use jsonschema::Validator;
use serde_json::{Value, json};

/// One parsed OpenAPI file.
pub struct Spec {
    /// For messages: where the file is.
    pub name: &'static str,
    pub doc: Value,
}

impl Spec {
    pub fn parse(name: &'static str, text: &str) -> Spec {
        let doc = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        Spec { name, doc }
    }

    /// A validator for one of this file's schema objects, with its components.
    pub fn validator(&self, schema: &Value) -> Validator {
        openapi::validator(&self.doc, schema).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// A validator for one of this file's components.
    pub fn component(&self, name: &str) -> Validator {
        openapi::component_validator(&self.doc, name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The operation's response schema (`Value::Null` when the file has none).
    pub fn response_schema(&self, path: &str, method: &str, code: &str) -> Value {
        self.doc["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]
            .clone()
    }

    /// The body is valid for the operation's response `code`.
    #[track_caller]
    pub fn assert_valid(&self, path: &str, method: &str, code: &str, body: &Value) {
        let schema = self.response_schema(path, method, code);
        assert!(
            schema.is_object(),
            "no {code} schema for {method} {path} in {}: add the operation to the reduced file",
            self.name
        );
        let errors = openapi::errors(&self.validator(&schema), body);
        assert!(
            errors.is_empty(),
            "{method} {path} response does not match {}:\n{}\n{body:#}",
            self.name,
            errors.join("\n")
        );
    }

    /// Each item is a valid `component`.
    #[track_caller]
    pub fn assert_each_valid(&self, component: &str, items: &[Value]) {
        let validator =
            self.validator(&json!({"$ref": format!("#/components/schemas/{component}")}));
        for item in items {
            let errors = openapi::errors(&validator, item);
            assert!(
                errors.is_empty(),
                "{component} ({}): {}\n{item:#}",
                self.name,
                errors.join("\n")
            );
        }
    }
}
