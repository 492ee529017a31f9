//! The plan's JSON schema: generated from the raw types, checked in as
//! `schemas/plan.schema.json`, and used at run time to check every plan.
//!
//! Schema errors become diagnostics that say, in words, what was found and what was
//! expected, at the line and column of the offending key or value.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::raw::RawPlan;
use super::units::describe_pattern;
use super::yaml::{Document, escape_pointer};

/// The plan schema as pretty-printed JSON, exactly as checked in.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&*SCHEMA).expect("a schema serialises");
    text.push('\n');
    text
}

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    // Optional keys are `Option`s so that a task can override a default; their
    // `None` is not a default worth showing (nor a valid value), so drop it.
    let drop_null_defaults = schemars::transform::RecursiveTransform(|s: &mut schemars::Schema| {
        if s.get("default").is_some_and(Value::is_null) {
            s.remove("default");
        }
    });
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(drop_null_defaults)
        .into_generator();
    generator.into_root_schema_for::<RawPlan>().to_value()
});

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::draft202012::new(&SCHEMA).expect("the generated plan schema is valid")
});

/// Checks a document against the schema; every violation is one diagnostic.
pub(crate) fn check(doc: &Document) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let errors: Vec<_> = VALIDATOR.iter_errors(&doc.value).collect();
    // A value of the wrong type fails its other keywords too; the type error says it all.
    let mistyped: Vec<String> = errors
        .iter()
        .filter(|e| matches!(e.kind(), ValidationErrorKind::Type { .. }))
        .map(|e| e.instance_path().as_str().to_string())
        .collect();
    for error in &errors {
        if !matches!(error.kind(), ValidationErrorKind::Type { .. })
            && mistyped.iter().any(|p| p == error.instance_path().as_str())
        {
            continue;
        }
        let pointer = error.instance_path().as_str().to_string();
        let schema_path = error.schema_path().as_str().to_string();
        let parent = schema_parent(&schema_path);
        let found = describe_found(error.instance());
        let spans = &doc.spans;
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                out.extend(unknown_keys(doc, &pointer, parent, unexpected));
            }
            ValidationErrorKind::Required { property } => {
                let key = property.as_str().unwrap_or_default();
                let what = describe_expected(
                    parent
                        .and_then(|p| p.get("properties"))
                        .and_then(|p| p.get(key)),
                );
                let mut message = format!("missing required key `{key}`");
                if !matches!(what.as_str(), "a string" | "a valid value") {
                    message.push_str(&format!(": {what}"));
                }
                out.push(Diagnostic::new(
                    spans.value(&pointer),
                    pointer.clone(),
                    message,
                ));
            }
            ValidationErrorKind::Constant { expected_value } if pointer == "/version" => {
                out.push(Diagnostic::new(
                    spans.value(&pointer),
                    pointer.clone(),
                    format!(
                        "unsupported plan version {}: this ferry reads version {expected_value}",
                        compact(error.instance())
                    ),
                ));
            }
            ValidationErrorKind::Enum { options } => {
                let message = not_an_option(options, error.instance(), &found);
                out.push(Diagnostic::new(
                    spans.value(&pointer),
                    pointer.clone(),
                    message,
                ));
            }
            ValidationErrorKind::UniqueItems => {
                let items = error.instance().as_array().cloned().unwrap_or_default();
                let twice = (1..items.len()).find(|&i| items[..i].contains(&items[i]));
                let (at, message) = match twice {
                    Some(i) => (
                        format!("{pointer}/{i}"),
                        format!("{} is listed twice", compact(&items[i])),
                    ),
                    None => (pointer.clone(), "a list entry appears twice".to_string()),
                };
                out.push(Diagnostic::new(spans.value(&at), at, message));
            }
            ValidationErrorKind::MinItems { limit } => {
                let message = if pointer == "/tasks" {
                    "a plan needs at least one task".to_string()
                } else {
                    format!("expected a list of at least {limit} entries")
                };
                out.push(Diagnostic::new(
                    spans.value(&pointer),
                    pointer.clone(),
                    message,
                ));
            }
            ValidationErrorKind::MinLength { limit: 1 } => {
                out.push(Diagnostic::new(
                    spans.value(&pointer),
                    pointer.clone(),
                    "must not be empty",
                ));
            }
            _ => {
                let expected = describe_expected(parent);
                out.push(Diagnostic::new(
                    spans.value(&pointer),
                    pointer.clone(),
                    format!("expected {expected}, found {found}"),
                ));
            }
        }
    }
    out
}

/// Keys the schema does not know, each with the closest known one and the list.
fn unknown_keys(
    doc: &Document,
    pointer: &str,
    parent: Option<&Value>,
    unexpected: &[String],
) -> Vec<Diagnostic> {
    let allowed: Vec<&str> = parent
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for key in unexpected {
        let child = format!("{pointer}/{}", escape_pointer(key));
        let mut message = format!("unknown key `{key}`");
        if let Some(best) = closest(key, &allowed) {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
        message.push_str(&format!(" Expected one of: {}", allowed.join(", ")));
        out.push(Diagnostic::new(doc.spans.key(&child), child, message));
    }
    out
}

/// A value that is not one of the options, with the closest option.
fn not_an_option(options: &Value, instance: &Value, found: &str) -> String {
    let options: Vec<&str> = options
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut message = format!(
        "expected one of {}, found {found}",
        options
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(best) = instance.as_str().and_then(|s| closest(s, &options)) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    message
}

/// The subschema that holds the keyword a schema path ends in, following `$ref`s.
fn schema_parent(schema_path: &str) -> Option<&'static Value> {
    let segments: Vec<String> = schema_path
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (_, parents) = segments.split_last()?;
    let mut node: &'static Value = &SCHEMA;
    for segment in parents {
        node = if segment == "$ref" {
            resolve(node)?
        } else {
            index(node, segment)?
        };
    }
    Some(node)
}

fn index<'v>(node: &'v Value, segment: &str) -> Option<&'v Value> {
    match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

/// Follows a local `$ref` (`#/$defs/Name`) of a subschema.
fn resolve(node: &Value) -> Option<&'static Value> {
    let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
    SCHEMA.pointer(target)
}

/// What a subschema accepts, in words: "a size such as `64MiB`", "true or false".
fn describe_expected(schema: Option<&Value>) -> String {
    let Some(schema) = schema else {
        return "a valid value".into();
    };
    if let Some(target) = resolve(schema) {
        return describe_expected(Some(target));
    }
    if let Some(value) = schema.get("const") {
        return compact(value);
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = options
            .iter()
            .map(|o| format!("`{}`", compact_str(o)))
            .collect();
        return format!("one of {}", words.join(", "));
    }
    if let Some(words) = schema
        .get("pattern")
        .and_then(Value::as_str)
        .and_then(describe_pattern)
    {
        let nullable = schema
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|t| t.contains(&"null".into()));
        return if nullable {
            format!("{words}, or null")
        } else {
            words.to_string()
        };
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let words: Vec<String> = branches
            .iter()
            .map(|b| describe_expected(Some(b)))
            .collect();
        return words.join(", or ");
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return "a valid value".into(),
    };
    let words: Vec<String> = types.iter().map(|t| describe_type(t, schema)).collect();
    words.join(" or ")
}

fn describe_type(kind: &str, schema: &Value) -> String {
    match kind {
        "string" => "a string".into(),
        "boolean" => "true or false".into(),
        "null" => "null".into(),
        "array" => "a list".into(),
        "object" => "a mapping of keys to values".into(),
        "integer" | "number" => {
            let what = if kind == "integer" {
                "a whole number"
            } else {
                "a number"
            };
            match (schema.get("minimum"), schema.get("maximum")) {
                (Some(lo), Some(hi)) => format!("{what} from {lo} to {hi}"),
                (Some(lo), None) => format!("{what} of at least {lo}"),
                (None, Some(hi)) => format!("{what} of at most {hi}"),
                (None, None) => what.into(),
            }
        }
        other => format!("a {other}"),
    }
}

/// What was found, in words, without echoing long values in full.
fn describe_found(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", compact(&Value::String(s.clone()))),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A short, escaped rendering of a value for messages.
fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let mut shown: String = s
                .chars()
                .take(40)
                .collect::<String>()
                .escape_debug()
                .to_string();
            if s.chars().count() > 40 {
                shown.push('…');
            }
            format!("\"{shown}\"")
        }
        other => other.to_string(),
    }
}

fn compact_str(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// The closest of `options` to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &o.to_lowercase()),
                *o,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}
