//! The plan's summary — `Summary.md`, `Summary.html` (one self-contained file with
//! inline SVG charts) and `summary.json` — rendered from the tasks' round summaries
//! with minijinja. The templates ship inside the binary; a plan's `report.templates`
//! folder, or `ferry report --template`, may replace them. Undefined variables are
//! errors, so that a typo in a template fails loudly, naming the template and line.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::round::{FailureCount, RoundSummary};
use super::{ReportError, write_atomic};
use crate::plan::Plan;

/// The version of `summary.json`'s shape.
pub const SUMMARY_VERSION: u32 = 1;

const BUILT_IN_MD: &str = include_str!("templates/summary.md");
const BUILT_IN_HTML: &str = include_str!("templates/summary.html");

/// Totals over the plan's tasks.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub tasks: u64,
    pub scanned: u64,
    pub items_with_issues: u64,
    pub to_migrate: u64,
    pub unchanged: u64,
    pub imported: u64,
    pub already_at_destination: u64,
    pub deleted: u64,
    pub bytes_imported: u64,
    pub failed: u64,
    pub failed_reading: u64,
    pub failed_packaging: u64,
    pub failed_uploading: u64,
    pub failed_importing: u64,
    /// Items the scans found will not migrate.
    pub not_migrated: u64,
    /// Of those, the items kept back by an error (exit 1).
    pub scan_errors: u64,
}

/// `summary.json`: the plan's last round of every task.
#[derive(Clone, Debug, Serialize)]
pub struct PlanSummary {
    pub version: u32,
    pub plan: String,
    pub generated_at: String,
    /// `completed` (every task's last round completed, nothing failed), `completed with
    /// failures`, or `incomplete` (a task not started, paused or staged).
    pub status: String,
    pub totals: Totals,
    /// Failures by code over all tasks; examples are prefixed with their task.
    pub failures: Vec<FailureCount>,
    pub tasks: Vec<RoundSummary>,
    /// Tasks of the plan with no round yet.
    pub not_started: Vec<String>,
    /// Tasks whose current round is not complete (paused, staged, failed, or a run that
    /// stopped before its round's reports were written): the plan is incomplete.
    pub unfinished: Vec<String>,
}

/// The highest round of a task that has a summary.
pub fn latest_round(reports: &Path) -> Option<u32> {
    fs::read_dir(reports)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n: u32 = name.to_str()?.strip_prefix('R')?.parse().ok()?;
            RoundSummary::path(&e.path()).exists().then_some(n)
        })
        .max()
}

impl PlanSummary {
    /// The summary of `tasks` (by name, in plan order), each at `round` or its latest.
    pub fn gather(plan: &Plan, tasks: &[&str], round: Option<u32>) -> io::Result<PlanSummary> {
        let mut rounds = Vec::new();
        let mut not_started = Vec::new();
        for &name in tasks {
            let task = crate::state::layout::TaskLayout::of(plan, name);
            let reports = task.all_reports();
            match round.or_else(|| latest_round(&reports)) {
                Some(n) => match RoundSummary::load(&task.reports(n)) {
                    Ok(summary) => rounds.push(summary),
                    Err(e) if e.kind() == io::ErrorKind::NotFound && round.is_none() => {
                        not_started.push(name.to_string());
                    }
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("no summary of round {n} of task `{name}`: {e}"),
                        ));
                    }
                },
                None => not_started.push(name.to_string()),
            }
        }
        let mut summary = PlanSummary::of(&plan.name, rounds, not_started);
        for &name in tasks {
            let folder = crate::state::task_folder(plan, name);
            if let Ok(Some(session)) = crate::state::Session::load(&folder, name)
                && session.unfinished()
            {
                summary.unfinished.push(name.to_string());
            }
        }
        if round.is_none() && !summary.unfinished.is_empty() {
            summary.status = "incomplete".to_string();
        }
        Ok(summary)
    }

    /// The summary of the given rounds.
    pub fn of(plan: &str, tasks: Vec<RoundSummary>, not_started: Vec<String>) -> PlanSummary {
        let mut totals = Totals::default();
        let mut failures: BTreeMap<String, FailureCount> = BTreeMap::new();
        for t in &tasks {
            totals.tasks += 1;
            totals.scanned += t.scan.scanned;
            totals.items_with_issues += t.scan.items_with_issues;
            totals.to_migrate += t.scan.to_migrate;
            totals.unchanged += t.scan.unchanged;
            totals.imported += t.stages.imported;
            totals.already_at_destination += t.stages.already_at_destination;
            totals.deleted += t.stages.deleted;
            totals.bytes_imported += t.bytes_imported;
            totals.failed_reading += t.stages.failed_reading;
            totals.failed_packaging += t.stages.failed_packaging;
            totals.failed_uploading += t.stages.failed_uploading;
            totals.failed_importing += t.stages.failed_importing;
            totals.failed += t.failed();
            totals.not_migrated += t.scan.not_migrated_items();
            totals.scan_errors += t.scan.errors;
            for f in &t.failures {
                let entry = failures
                    .entry(f.code.clone())
                    .or_insert_with(|| FailureCount {
                        code: f.code.clone(),
                        stage: f.stage,
                        count: 0,
                        examples: Vec::new(),
                    });
                entry.count += f.count;
                for e in &f.examples {
                    if entry.examples.len() < 3 {
                        entry.examples.push(format!("{}: {e}", t.task));
                    }
                }
            }
        }
        let mut failures: Vec<FailureCount> = failures.into_values().collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        let incomplete = !not_started.is_empty() || tasks.iter().any(|t| t.status != "completed");
        let status = if incomplete {
            "incomplete"
        } else if totals.failed > 0 || !failures.is_empty() {
            "completed with failures"
        } else if totals.scan_errors > 0 {
            // The run's exit is 1: the summary says why.
            "completed, some items not migrated"
        } else {
            "completed"
        };
        PlanSummary {
            version: SUMMARY_VERSION,
            plan: plan.to_string(),
            generated_at: crate::state::now_text(),
            status: status.to_string(),
            totals,
            failures,
            tasks,
            not_started,
            unfinished: Vec::new(),
        }
    }
}

/// Which summary to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

impl Format {
    /// The template's name, and the file it renders.
    pub fn template(self) -> &'static str {
        match self {
            Format::Markdown => "summary.md",
            Format::Html => "summary.html",
        }
    }

    pub fn file(self) -> &'static str {
        match self {
            Format::Markdown => "Summary.md",
            Format::Html => "Summary.html",
        }
    }

    fn built_in(self) -> &'static str {
        match self {
            Format::Markdown => BUILT_IN_MD,
            Format::Html => BUILT_IN_HTML,
        }
    }
}

/// A template that could not be read or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("template `{name}` ({origin}), line {line}: {detail}{excerpt}")]
    Render {
        name: String,
        origin: String,
        line: usize,
        detail: String,
        excerpt: String,
    },
}

/// The templates a summary is rendered with: built in, unless the plan's
/// `report.templates` folder or an explicit file replaces one.
#[derive(Debug, Default)]
pub struct Templates {
    /// Replacements by template name: (source, where it came from).
    replaced: BTreeMap<&'static str, (String, PathBuf)>,
}

impl Templates {
    /// The built-in templates, with those in `folder` (if given) in their place.
    pub fn for_plan(folder: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut templates = Templates::default();
        if let Some(folder) = folder {
            for format in [Format::Markdown, Format::Html] {
                let path = folder.join(format.template());
                match fs::read_to_string(&path) {
                    Ok(text) => {
                        templates.replaced.insert(format.template(), (text, path));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(TemplateError::Read { path, source }),
                }
            }
        }
        Ok(templates)
    }

    /// Replaces the template of `format` with the file at `path`.
    pub fn replace(&mut self, format: Format, path: &Path) -> Result<(), TemplateError> {
        let text = fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.replaced
            .insert(format.template(), (text, path.to_path_buf()));
        Ok(())
    }

    /// Renders the summary in `format`.
    pub fn render(&self, format: Format, summary: &PlanSummary) -> Result<String, TemplateError> {
        let name = format.template();
        let (source, origin) = match self.replaced.get(name) {
            Some((text, path)) => (text.as_str(), path.display().to_string()),
            None => (format.built_in(), "built in".to_string()),
        };
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        // HTML escaping of `&<>"'` only: paths keep their slashes readable in the source.
        env.set_formatter(|out, state, value| {
            if value.is_safe() || *state.auto_escape() != minijinja::AutoEscape::Html {
                return minijinja::escape_formatter(out, state, value);
            }
            let text = value.to_string();
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#39;"),
                    c => escaped.push(c),
                }
            }
            out.write_str(&escaped).map_err(minijinja::Error::from)
        });
        env.add_filter("md", markdown_cell);
        env.add_filter("bytes", |n: u64| {
            bytesize::ByteSize(n).display().iec().to_string()
        });
        env.add_filter("duration", duration);
        let failed = |e: minijinja::Error| {
            let line = e.line().unwrap_or(0);
            let excerpt = source
                .lines()
                .nth(line.saturating_sub(1))
                .map(|l| format!("\n  {line} | {}", l.trim_end()))
                .unwrap_or_default();
            TemplateError::Render {
                name: name.to_string(),
                origin: origin.clone(),
                line,
                detail: match e.detail() {
                    Some(detail) => format!("{} ({detail})", e.kind()),
                    None => e.kind().to_string(),
                },
                excerpt,
            }
        };
        env.add_template(name, source).map_err(failed)?;
        let template = env.get_template(name).map_err(failed)?;
        let mut text = template
            .render(minijinja::Value::from(minijinja::value::Serde(context(
                summary,
            ))))
            .map_err(failed)?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// The template's context: the summary, each task with its failure count, and the
/// charts' geometry.
fn context(summary: &PlanSummary) -> serde_json::Value {
    let mut value = serde_json::to_value(summary).unwrap_or_default();
    if let Some(tasks) = value.get_mut("tasks").and_then(|t| t.as_array_mut()) {
        for (task, round) in tasks.iter_mut().zip(&summary.tasks) {
            task["failed"] = round.failed().into();
        }
    }
    value["status_class"] = match summary.status.as_str() {
        "completed" => "completed",
        "completed with failures" | "completed, some items not migrated" => "failures",
        _ => "incomplete",
    }
    .into();
    value["chart"] = charts(summary);
    value
}

/// Bar geometry for the HTML summary's SVG charts.
fn charts(summary: &PlanSummary) -> serde_json::Value {
    const WIDTH: f64 = 900.0;
    const LABEL: f64 = 180.0;
    const ROW: f64 = 28.0;
    let span = WIDTH - LABEL - 80.0;
    let totals: Vec<u64> = summary
        .tasks
        .iter()
        .map(|t| {
            t.stages.imported + t.scan.unchanged + t.stages.already_at_destination + t.failed()
        })
        .collect();
    let most = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let tasks: Vec<serde_json::Value> = summary
        .tasks
        .iter()
        .zip(&totals)
        .enumerate()
        .map(|(i, (t, &total))| {
            let mut x = LABEL;
            let mut segments = Vec::new();
            for (name, value, color) in [
                ("imported", t.stages.imported, "#2da44e"),
                (
                    "unchanged",
                    t.scan.unchanged + t.stages.already_at_destination,
                    "#8c959f",
                ),
                ("failed", t.failed(), "#cf222e"),
            ] {
                let width = (value as f64 / most * span * 10.0).round() / 10.0;
                segments.push(serde_json::json!({
                    "name": name, "value": value, "color": color, "x": x, "width": width,
                }));
                x += width;
            }
            serde_json::json!({
                "label": shorten(&t.task),
                "y": i as f64 * ROW + 4.0,
                "segments": segments,
                "end": x,
                "total": total,
            })
        })
        .collect();
    let most_failed = summary
        .failures
        .iter()
        .map(|f| f.count)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let failures: Vec<serde_json::Value> = summary
        .failures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            serde_json::json!({
                "label": shorten(&f.code),
                "y": i as f64 * ROW + 4.0,
                "value": f.count,
                "width": (f.count as f64 / most_failed * span * 10.0).round() / 10.0,
            })
        })
        .collect();
    serde_json::json!({
        "width": WIDTH,
        "label_width": LABEL,
        "tasks_height": (tasks.len().max(1) as f64) * ROW + 8.0,
        "failures_height": (failures.len().max(1) as f64) * ROW + 8.0,
        "tasks": tasks,
        "failures": failures,
    })
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 24 {
        let mut short: String = text.chars().take(23).collect();
        short.push('…');
        short
    } else {
        text.to_string()
    }
}

/// Text for a Markdown table cell: characters with a meaning in Markdown or HTML are
/// escaped, line breaks and other controls shown escaped, so that a hostile file name
/// can neither break the table nor inject markup.
pub fn markdown_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Writes the plan's summaries into `folder`: the formats asked for, and
/// `summary.json` when `json`. Returns the files written.
pub fn write(
    folder: &Path,
    summary: &PlanSummary,
    templates: &Templates,
    formats: &[Format],
    json: bool,
) -> Result<Vec<PathBuf>, SummaryError> {
    let mut written = Vec::new();
    fs::create_dir_all(folder).map_err(|source| {
        SummaryError::Write(ReportError {
            path: folder.to_path_buf(),
            source,
        })
    })?;
    for &format in formats {
        let text = templates.render(format, summary)?;
        let path = folder.join(format.file());
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    if json {
        let mut text = serde_json::to_vec_pretty(summary).unwrap_or_default();
        text.push(b'\n');
        let path = folder.join("summary.json");
        write_atomic(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// The columns of `SummaryReport.csv`, after Migration Manager's aggregate summary.
pub const AGGREGATE_COLUMNS: [&str; 19] = [
    "Task name",
    "Incremental round",
    "Status",
    "Source",
    "Destination",
    "Total scanned items",
    "Total to be migrated items",
    "Migrated items",
    "Items not migrated",
    "Total bytes",
    "Total GB",
    "Migrated bytes",
    "Migrated GB",
    "Agent",
    "Duration (minutes)",
    "Task ID",
    "Start time",
    "End time",
    "GB/hour",
];

/// `SummaryReport.csv`: one row per task.
pub fn write_csv(folder: &Path, summary: &PlanSummary) -> Result<PathBuf, ReportError> {
    let mut csv = super::CsvFile::create(folder.join("SummaryReport.csv"), &AGGREGATE_COLUMNS)?;
    let gb = |b: u64| format!("{:.2}", b as f64 / 1e9);
    for t in &summary.tasks {
        csv.row(&[
            t.task.clone(),
            t.round.to_string(),
            t.status.clone(),
            t.source.clone(),
            t.destination.clone(),
            t.scan.scanned.to_string(),
            t.scan.to_migrate.to_string(),
            t.stages.imported.to_string(),
            t.failed().to_string(),
            t.scan.bytes_to_migrate.to_string(),
            gb(t.scan.bytes_to_migrate),
            t.bytes_imported.to_string(),
            gb(t.bytes_imported),
            t.device.clone(),
            format!("{:.1}", t.duration_seconds as f64 / 60.0),
            super::round::task_id(&summary.plan, &t.task),
            t.started_at.clone(),
            t.ended_at.clone(),
            t.gb_per_hour.to_string(),
        ])?;
    }
    csv.finish()
}

/// Why a summary was not written.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Write(#[from] ReportError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_tables_or_inject_markup() {
        assert_eq!(markdown_cell("a|b"), "a\\|b");
        assert_eq!(
            markdown_cell("<script>x</script>"),
            "\\<script\\>x\\</script\\>"
        );
        assert_eq!(markdown_cell("line\nbreak\u{1b}"), "line\\nbreak\\u{1b}");
        assert_eq!(markdown_cell("[a](javascript:x)"), "\\[a\\](javascript:x)");
    }

    #[test]
    fn a_typo_in_a_template_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        fs::write(
            &path,
            "# {{ plan }}\n\n{{ totals.imported }}\n{{ totals.imprted }}\n",
        )
        .unwrap();
        let templates = Templates::for_plan(Some(dir.path())).unwrap();
        let summary = PlanSummary::of("p", Vec::new(), Vec::new());
        let err = templates.render(Format::Markdown, &summary).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("template `summary.md`"), "{text}");
        assert!(text.contains("line 4"), "{text}");
        assert!(text.contains("totals.imprted"), "{text}");
    }

    #[test]
    fn built_in_templates_render_an_empty_plan() {
        let summary = PlanSummary::of("p", Vec::new(), vec!["t".into()]);
        let templates = Templates::default();
        assert!(
            templates
                .render(Format::Markdown, &summary)
                .unwrap()
                .contains("No failures.")
        );
        assert!(
            templates
                .render(Format::Html, &summary)
                .unwrap()
                .contains("<svg")
        );
        assert_eq!(summary.status, "incomplete");
    }
}
