//! The event log of `--log-file` and `--log-format`: one line per event (a task's start
//! and end, each failed item, each retry, a pause), as text for people or as JSON lines
//! for machines. It goes beside the human output on stderr, which stays as it is.
//!
//! Events are `tracing` events whose field `event` names them; the fields of the spans
//! they happen in (`plan`, `task`, `round`) are added to each line. A JSON line has the
//! stable fields `time`, `level`, `event`, then those of `plan`, `task`, `round`, `shard`,
//! `item`, `code`, `bytes` and `duration` (seconds) it carries, then any others, such as
//! `message`. Every text passes through [`redact`](crate::shown::redact), so that a
//! signature in an error never reaches the log; credentials are never logged at all.

use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `time LEVEL event key=value …`, for people.
    #[default]
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// The fields every line that has them shows first, in this order.
const STABLE: [&str; 8] = [
    "plan", "task", "round", "shard", "item", "code", "bytes", "duration",
];

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the log file {}: {source}",
    crate::shown::escape_path(path)
)]
pub struct LogError {
    path: PathBuf,
    source: io::Error,
}

/// Starts the log: to `file` (appended to) when given, else to stderr when a format was
/// asked for; neither, no log. Once per process.
pub fn start(format: Option<Format>, file: Option<&Path>) -> Result<(), LogError> {
    let out: Box<dyn io::Write + Send> = match file {
        Some(path) => Box::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LogError {
                    path: path.to_path_buf(),
                    source,
                })?,
        ),
        None if format.is_some() => Box::new(io::stderr()),
        None => return Ok(()),
    };
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(Log {
        format: format.unwrap_or_default(),
        out: Mutex::new(out),
    });
    // Fails only when a log was started already (as in tests): that one stays.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// The layer that writes the lines.
struct Log {
    format: Format,
    out: Mutex<Box<dyn io::Write + Send>>,
}

/// A value of a field, as it is written.
#[derive(Clone, Debug)]
enum Value {
    Text(String),
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl Value {
    fn json(&self) -> String {
        match self {
            Value::Text(text) => serde_json::Value::from(text.as_str()).to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(x) if x.is_finite() => format!("{x:.3}"),
            Value::Float(_) => "null".to_string(),
            Value::Bool(b) => b.to_string(),
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Text(text)
                if !text.is_empty()
                    && !text
                        .chars()
                        .any(|c| c.is_whitespace() || c == '"' || c == '=') =>
            {
                text.clone()
            }
            Value::Text(_) => self.json(),
            other => other.json(),
        }
    }
}

/// Fields by name, in the order they were recorded.
#[derive(Clone, Debug, Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(
            field.name(),
            Value::Text(crate::shown::redact(&format!("{value:?}"))),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::Text(crate::shown::redact(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::Int(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::Int(value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }
}

impl<S> Layer<S> for Log
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        // The object store's own retries are ferry's retries too; nothing else of the
        // libraries below is logged.
        let store_retry = target.starts_with("object_store::client::retry");
        if !target.starts_with("ferry") && !store_retry {
            return;
        }
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(outer) = span.extensions().get::<Fields>() {
                    for (name, value) in &outer.0 {
                        fields.set(name, value.clone());
                    }
                }
            }
        }
        event.record(&mut fields);
        if store_retry {
            fields.set("event", Value::Text("retry".to_string()));
        }
        let Some(Value::Text(name)) = fields.get("event").cloned() else {
            return;
        };
        let level = if store_retry {
            &tracing::Level::WARN
        } else {
            event.metadata().level()
        };
        let line = self.line(level, &name, &fields);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A log that cannot be written must not stop a migration.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

impl Log {
    fn line(&self, level: &tracing::Level, event: &str, fields: &Fields) -> String {
        let time = crate::clock::now()
            .round(jiff::Unit::Millisecond)
            .unwrap_or_default();
        let level = level.as_str().to_ascii_lowercase();
        let mut ordered: Vec<(&str, &Value)> = STABLE
            .iter()
            .filter_map(|name| fields.get(name).map(|v| (*name, v)))
            .collect();
        ordered.extend(
            fields
                .0
                .iter()
                .filter(|(name, _)| *name != "event" && !STABLE.contains(name))
                .map(|(name, value)| (*name, value)),
        );
        match self.format {
            Format::Json => {
                let mut line = format!(
                    "{{\"time\":\"{time}\",\"level\":\"{level}\",\"event\":{}",
                    Value::Text(event.to_string()).json()
                );
                for (name, value) in ordered {
                    line.push_str(&format!(",\"{name}\":{}", value.json()));
                }
                line.push_str("}\n");
                line
            }
            Format::Text => {
                let mut line = format!("{time} {:<5} {event}", level.to_ascii_uppercase());
                for (name, value) in ordered {
                    line.push_str(&format!(" {name}={}", value.text()));
                }
                line.push('\n');
                line
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&'static str, Value)]) -> Fields {
        Fields(list.to_vec())
    }

    #[test]
    fn stable_fields_come_first_in_their_order() {
        let log = Log {
            format: Format::Json,
            out: Mutex::new(Box::new(io::sink())),
        };
        let line = log.line(
            &tracing::Level::WARN,
            "failure",
            &fields(&[
                ("message", Value::Text("no \"room\"".into())),
                ("code", Value::Text("DISK_FULL".into())),
                ("task", Value::Text("docs".into())),
                ("bytes", Value::Int(5)),
            ]),
        );
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["event"], "failure");
        assert_eq!(json["level"], "warn");
        let keys: Vec<&str> = line
            .split(",\"")
            .skip(1)
            .map(|k| k.split('"').next().unwrap())
            .collect();
        assert_eq!(keys, ["level", "event", "task", "code", "bytes", "message"]);
    }

    #[test]
    fn text_lines_quote_what_has_spaces() {
        let log = Log {
            format: Format::Text,
            out: Mutex::new(Box::new(io::sink())),
        };
        let line = log.line(
            &tracing::Level::INFO,
            "task_end",
            &fields(&[
                ("task", Value::Text("docs".into())),
                ("item", Value::Text("a b.txt".into())),
                ("duration", Value::Float(1.5)),
            ]),
        );
        assert!(
            line.ends_with(" INFO  task_end task=docs item=\"a b.txt\" duration=1.500\n"),
            "{line}"
        );
    }
}
