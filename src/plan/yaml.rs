//! YAML text to a JSON value plus the place of every node in the text.
//!
//! serde-saphyr reads the document (YAML 1.2, strict booleans: `yes` stays a string,
//! duplicate keys are errors) into a `serde_json::Value` for the schema check, and
//! saphyr's marked tree maps every JSON pointer to its line and column, so that schema
//! and semantic errors found later can point into the file.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, YamlData};
use serde_saphyr::MessageFormatter;

use super::diagnostic::{Diagnostic, Place};

/// Where each node of a document is, by JSON pointer (`/tasks/0/source`).
#[derive(Debug, Default)]
pub(crate) struct Spans {
    nodes: HashMap<String, NodeSpan>,
}

#[derive(Clone, Copy, Debug)]
struct NodeSpan {
    /// The key that introduces the node in its mapping, if any.
    key: Option<Place>,
    value: Place,
}

impl Spans {
    /// The place of the node's value, or of its nearest ancestor that has one.
    pub(crate) fn value(&self, pointer: &str) -> Place {
        self.find(pointer).map(|n| n.value).unwrap_or_default()
    }

    /// The place of the key that introduces the node (its value when it has no key).
    pub(crate) fn key(&self, pointer: &str) -> Place {
        self.find(pointer)
            .map(|n| n.key.unwrap_or(n.value))
            .unwrap_or_default()
    }

    fn find(&self, pointer: &str) -> Option<&NodeSpan> {
        let mut pointer = pointer;
        loop {
            if let Some(node) = self.nodes.get(pointer) {
                return Some(node);
            }
            // Nodes made by merge keys or aliases have no place of their own.
            pointer = &pointer[..pointer.rfind('/')?];
        }
    }
}

/// A parsed document: its value and the places of its nodes.
#[derive(Debug)]
pub(crate) struct Document {
    pub value: serde_json::Value,
    pub spans: Spans,
}

/// Parses one YAML document. A syntax error, a duplicate key or a second document is
/// returned as a located diagnostic.
pub(crate) fn parse(text: &str) -> Result<Document, Diagnostic> {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    let value: serde_json::Value =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| syntax_error(text, &e))?;
    let mut spans = Spans::default();
    // saphyr parses the same text again for positions; it accepts everything
    // serde-saphyr accepted, and if it ever did not, errors would point at 1:1.
    if let Ok(docs) = MarkedYaml::load_from_str(text)
        && let Some(doc) = docs.first()
    {
        collect(doc, String::new(), None, &mut spans.nodes);
    }
    Ok(Document { value, spans })
}

fn collect(
    node: &MarkedYaml<'_>,
    pointer: String,
    key: Option<Place>,
    out: &mut HashMap<String, NodeSpan>,
) {
    match &node.data {
        YamlData::Mapping(mapping) => {
            for (k, v) in mapping {
                if let Some(name) = scalar_text(k) {
                    let child = format!("{pointer}/{}", escape_pointer(&name));
                    collect(v, child, Some(place(k)), out);
                }
            }
        }
        YamlData::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, format!("{pointer}/{i}"), None, out);
            }
        }
        YamlData::Tagged(_, inner) => {
            collect(inner, pointer.clone(), key, out);
            return;
        }
        _ => {}
    }
    out.insert(
        pointer,
        NodeSpan {
            key,
            value: place(node),
        },
    );
}

/// The text of a scalar key as serde-saphyr turns it into a JSON object key.
fn scalar_text(node: &MarkedYaml<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(scalar) => Some(match scalar {
            saphyr::Scalar::String(s) => s.to_string(),
            saphyr::Scalar::Integer(i) => i.to_string(),
            saphyr::Scalar::FloatingPoint(f) => f.to_string(),
            saphyr::Scalar::Boolean(b) => b.to_string(),
            saphyr::Scalar::Null => "null".to_string(),
        }),
        YamlData::Representation(text, _, _) => Some(text.to_string()),
        _ => None,
    }
}

fn place(node: &MarkedYaml<'_>) -> Place {
    let start = node.span.start;
    let end = node.span.end;
    // A node saphyr gives no place (line 0: an empty document with only a tag, found by
    // the `plan` fuzz target) is shown at the start of the text.
    if start.line() == 0 {
        return Place::default();
    }
    let width = if end.line() == start.line() {
        end.col().saturating_sub(start.col())
    } else {
        0
    };
    Place {
        line: start.line(),
        column: start.col() + 1,
        width: width.max(1),
    }
}

/// Escapes a mapping key as one JSON pointer segment (RFC 6901).
pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn syntax_error(text: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let error = error.without_snippet();
    let place = error
        .location()
        .map(|l| Place {
            line: l.line() as usize,
            column: l.column() as usize,
            width: 1,
        })
        .unwrap_or_default();
    let message = serde_saphyr::DefaultMessageFormatter
        .format_message(error)
        .into_owned();
    let message = if matches!(error, serde_saphyr::Error::MultipleDocuments { .. }) {
        "a plan is one YAML document, but this file holds more than one (a second `---`)"
            .to_string()
    } else if message.contains("tabs disallowed") {
        "a tab is used for indentation: YAML allows only spaces there".to_string()
    } else if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        format!("the key `{key}` appears twice in this mapping; each key may appear once")
    } else {
        format!("invalid YAML: {message}")
    };
    let place = if place.line == 0 { end_of(text) } else { place };
    // A tab in indentation often surfaces as some other complaint a line away.
    if let Some(tab) = indentation_tab(text, place.line) {
        return Diagnostic::new(
            tab,
            "",
            "a tab is used for indentation: YAML allows only spaces there",
        );
    }
    Diagnostic::new(place, "", message)
}

/// A tab in the leading whitespace of the lines around `line`.
fn indentation_tab(text: &str, line: usize) -> Option<Place> {
    super::diagnostic::lines(text)
        .into_iter()
        .enumerate()
        .skip(line.saturating_sub(2))
        .take(3)
        .find_map(|(i, l)| {
            let lead = l.len() - l.trim_start_matches([' ', '\t']).len();
            l[..lead].find('\t').map(|at| Place {
                line: i + 1,
                column: at + 1,
                width: 1,
            })
        })
}

fn end_of(text: &str) -> Place {
    let lines = super::diagnostic::lines(text);
    let line = lines.len();
    let column = lines.last().map_or(0, |l| l.chars().count()) + 1;
    Place {
        line,
        column,
        width: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_map_to_keys_and_values() {
        let doc = parse("version: 1\ntasks:\n  - name: a\n    source: /x\n").expect("parses");
        let key = doc.spans.key("/tasks/0/source");
        let value = doc.spans.value("/tasks/0/source");
        assert_eq!((key.line, key.column, key.width), (4, 5, 6));
        assert_eq!((value.line, value.column, value.width), (4, 13, 2));
    }

    #[test]
    fn unknown_pointers_fall_back_to_the_nearest_ancestor() {
        let doc = parse("a:\n  b: 1\n").expect("parses");
        assert_eq!(doc.spans.value("/a/b/c/d").line, 2);
        assert_eq!(doc.spans.value("/zzz").line, 1);
    }

    #[test]
    fn keys_with_slashes_and_tildes_are_escaped() {
        let doc = parse("a:\n  \"x/y~z\": 1\n").expect("parses");
        assert_eq!(doc.spans.key("/a/x~1y~0z").line, 2);
    }

    #[test]
    fn strict_booleans_keep_yes_a_string() {
        let doc = parse("a: yes\nb: true\nc: 2015-01-01\n").expect("parses");
        assert_eq!(doc.value["a"], "yes");
        assert_eq!(doc.value["b"], true);
        assert_eq!(doc.value["c"], "2015-01-01");
    }

    #[test]
    fn duplicate_keys_are_located() {
        let err = parse("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(err.place.line, 3);
        assert!(err.message.contains("`a` appears twice"), "{}", err.message);
    }
}
