//! Migration Manager's bulk task lists as a plan: the six-column CSV (FileSharePath,
//! two blank columns, SharePointSite, DocLibrary, DocSubFolder) or the JSON list of
//! `Tasks` with their `Settings`. Each row becomes a task whose destination is the
//! site's path, the library and the subfolder under a root folder.
//!
//! Windows paths (`\\server\share\dept`, `D:\data`) name a share this machine sees as
//! a mounted folder: `--share-map` says where. Every problem of the list is reported at
//! once, at its row and column (CSV) or line, column and key (JSON); duplicate rows are
//! refused, as Migration Manager refuses them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::diagnostic::{Diagnostic, Place};

mod paths;
use paths::{
    escape_dollar, library_name, site_folders, source_path, subfolders, windows_components,
};

/// The list's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// By the file's extension (`.csv` or `.json`, any case).
    pub fn of(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// How rows become tasks.
#[derive(Debug)]
pub struct Options<'a> {
    /// The plan's name.
    pub name: &'a str,
    /// The list's file name, for the plan's first comment.
    pub origin: &'a str,
    /// The folder under which each site's tree is made.
    pub destination_root: &'a str,
    /// Windows path prefixes (as written in the list) and the folders they are mounted
    /// at here.
    pub shares: &'a [(String, String)],
}

/// Why a `--share-map` cannot be used.
pub fn parse_share_map(text: &str) -> Result<(String, String), String> {
    let (prefix, folder) = text.split_once('=').ok_or_else(|| {
        format!("expected WINDOWS_PREFIX=FOLDER, as '\\\\server\\share=/mnt/share', not `{text}`")
    })?;
    if windows_components(prefix).is_none() {
        return Err(format!(
            "`{prefix}` is not a Windows share or drive path (\\\\server\\share or D:\\)"
        ));
    }
    if !folder.starts_with('/') && !folder.starts_with("${") {
        return Err(format!("`{folder}` is not an absolute folder"));
    }
    Ok((prefix.to_string(), folder.trim_end_matches('/').to_string()))
}

/// One task of the list, as read.
#[derive(Debug)]
struct Row {
    /// Where it is in the list: the CSV row, or the JSON task.
    place: Place,
    source_text: String,
    site_text: String,
    library_text: String,
    subfolder_text: String,
    source: String,
    destination: Vec<String>,
    filters: Vec<(&'static str, String)>,
    notes: Vec<String>,
}

/// Converts the list to plan text, or returns every problem found.
pub fn convert(
    text: &str,
    format: Format,
    options: &Options<'_>,
) -> Result<String, Vec<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Vec::new();
    let rows = match format {
        Format::Csv => csv_rows(text, options, &mut problems),
        Format::Json => json_rows(text, options, &mut problems),
    };
    if rows.is_empty() && problems.is_empty() {
        problems.push(Diagnostic::new(
            Place::default(),
            "",
            "the list has no task: expected one row (or JSON task) per file share",
        ));
    }
    duplicates(&rows, format, &mut problems);
    if !problems.is_empty() {
        let mut problems: Vec<Diagnostic> = problems.into_iter().map(|d| d.clamped(text)).collect();
        problems.sort_by_key(|d| d.place);
        return Err(problems);
    }
    Ok(render(&rows, options))
}

const COLUMNS: [&str; 6] = [
    "FileSharePath",
    "",
    "",
    "SharePointSite",
    "DocLibrary",
    "DocSubFolder",
];

fn csv_rows(text: &str, options: &Options<'_>, problems: &mut Vec<Diagnostic>) -> Vec<Row> {
    let lines = super::diagnostic::lines(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut first = true;
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(1, |p| p.line() as usize);
                problems.push(Diagnostic::new(
                    Place {
                        line,
                        column: 1,
                        width: 1,
                    },
                    "",
                    format!("not a CSV row: {e}"),
                ));
                break;
            }
        };
        let line = record
            .position()
            .map_or(1, |p| line_at(text, p.byte() as usize));
        let raw = lines.get(line.saturating_sub(1)).copied().unwrap_or("");
        let field = |i: usize| record.get(i).map(str::trim).unwrap_or("");
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let header = first
            && ["FileSharePath", "Source"]
                .iter()
                .any(|h| field(0).eq_ignore_ascii_case(h));
        first = false;
        if header {
            continue;
        }
        let at = |i: usize, message: String| {
            let (column, width) = field_place(raw, i);
            Diagnostic::new(
                Place {
                    line,
                    column,
                    width,
                },
                match COLUMNS.get(i) {
                    Some(name) if !name.is_empty() => {
                        format!("/{name} (column {})", column_letter(i))
                    }
                    _ => format!("/column {}", column_letter(i)),
                },
                message,
            )
        };
        let before = problems.len();
        if record.len() < 6 {
            problems.push(at(
                record.len().min(5),
                format!(
                    "the row has {} column{}; Migration Manager's list has six (FileSharePath, blank, blank, SharePointSite, DocLibrary, DocSubFolder), even when the last is empty",
                    record.len(),
                    if record.len() == 1 { "" } else { "s" }
                ),
            ));
            continue;
        }
        for i in 6..record.len() {
            if !field(i).is_empty() {
                problems.push(at(i, "a seventh column: the list has six".to_string()));
            }
        }
        for i in [1, 2] {
            if !field(i).is_empty() {
                problems.push(at(
                    i,
                    "must be blank: columns B and C name SharePoint Server sources, and ferry migrates file shares".to_string(),
                ));
            }
        }
        let source = source_path(field(0), options.shares).map_err(|m| problems.push(at(0, m)));
        let site = site_folders(field(3)).map_err(|m| problems.push(at(3, m)));
        let library = library_name(field(4)).map_err(|m| problems.push(at(4, m)));
        let subfolder = subfolders(field(5)).map_err(|m| problems.push(at(5, m)));
        if problems.len() > before {
            continue;
        }
        if let (Ok(source), Ok(site), Ok(library), Ok(subfolder)) =
            (source, site, library, subfolder)
        {
            rows.push(Row {
                place: Place {
                    line,
                    column: 1,
                    width: raw.chars().count().max(1),
                },
                source_text: field(0).to_string(),
                site_text: field(3).to_string(),
                library_text: field(4).to_string(),
                subfolder_text: field(5).to_string(),
                source,
                destination: [site, vec![library], subfolder].concat(),
                filters: Vec::new(),
                notes: Vec::new(),
            });
        }
    }
    rows
}

/// The line (1-based) of the record that begins at `byte`: the end of the line before
/// it (the `\n` of a `\r\n`) may still be ahead of it.
fn line_at(text: &str, byte: usize) -> usize {
    let bytes = text.as_bytes();
    let mut start = byte.min(bytes.len());
    while start < bytes.len() && (bytes[start] == b'\r' || bytes[start] == b'\n') {
        start += 1;
    }
    // Lines end as `diagnostic::lines` ends them: `\r\n`, `\n` or a lone `\r`.
    let before = &bytes[..start];
    before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && before.get(i + 1) != Some(&b'\n')))
        .count()
        + 1
}

/// The column (in characters, 1-based) where field `index` of a CSV line begins, and its
/// width; quoted commas do not count.
fn field_place(line: &str, index: usize) -> (usize, usize) {
    let mut field = 0;
    let mut quoted = false;
    let mut start = 0;
    let mut width = 0;
    for (at, c) in line.chars().enumerate() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                if field == index {
                    return (start + 1, width.max(1));
                }
                field += 1;
                start = at + 1;
                width = 0;
                continue;
            }
            _ => {}
        }
        if field == index {
            width += 1;
        }
    }
    if field == index {
        (start + 1, width.max(1))
    } else {
        (line.chars().count() + 1, 1)
    }
}

fn column_letter(index: usize) -> char {
    char::from(b'A' + (index.min(25) as u8))
}

const TASK_KEYS: [&str; 5] = [
    "SourcePath",
    "TargetPath",
    "TargetList",
    "TargetListRelativePath",
    "Settings",
];

const SETTING_KEYS: [&str; 5] = [
    "MigrateHiddenItems",
    "MigrateItemsCreatedAfter",
    "MigrateItemsModifiedAfter",
    "SkipFilesWithExtensions",
    "MigrateOneNoteNotebook",
];

fn json_rows(text: &str, options: &Options<'_>, problems: &mut Vec<Diagnostic>) -> Vec<Row> {
    // JSON is YAML: the plan's parser gives every node its place (and takes the
    // trailing commas of Migration Manager's own examples).
    let document = match super::yaml::parse(text) {
        Ok(document) => document,
        Err(d) => {
            problems.push(d);
            return Vec::new();
        }
    };
    let spans = &document.spans;
    let at =
        |pointer: &str, message: String| Diagnostic::new(spans.value(pointer), pointer, message);
    let key_at =
        |pointer: &str, message: String| Diagnostic::new(spans.key(pointer), pointer, message);
    let Some(tasks) = document.value.get("Tasks").and_then(|t| t.as_array()) else {
        problems.push(at(
            "",
            "expected an object with a `Tasks` list, as Migration Manager's bulk JSON has"
                .to_string(),
        ));
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let pointer = format!("/Tasks/{i}");
        let Some(object) = task.as_object() else {
            problems.push(at(
                &pointer,
                "expected a task: an object with SourcePath, TargetPath and TargetList".to_string(),
            ));
            continue;
        };
        let before = problems.len();
        for key in object.keys() {
            if !TASK_KEYS.contains(&key.as_str()) {
                let why = if key == "Items" {
                    "`Items` (lists and subsites) belongs to SharePoint Server sources; ferry migrates file shares".to_string()
                } else {
                    format!("unknown key; a task has {}", TASK_KEYS.join(", "))
                };
                problems.push(key_at(&format!("{pointer}/{key}"), why));
            }
        }
        let text_of =
            |key: &str, required: bool, problems: &mut Vec<Diagnostic>| -> Option<String> {
                match object.get(key) {
                    Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
                    None | Some(serde_json::Value::Null) if !required => Some(String::new()),
                    None => {
                        problems.push(at(&pointer, format!("`{key}` is missing")));
                        None
                    }
                    Some(_) => {
                        problems.push(at(&format!("{pointer}/{key}"), "expected text".to_string()));
                        None
                    }
                }
            };
        let source_text = text_of("SourcePath", true, problems);
        let site_text = text_of("TargetPath", true, problems);
        let library_text = text_of("TargetList", true, problems);
        let subfolder_text = text_of("TargetListRelativePath", false, problems);
        let (filters, notes) = settings(
            object.get("Settings"),
            &format!("{pointer}/Settings"),
            &at,
            &key_at,
            problems,
        );
        let (Some(source_text), Some(site_text), Some(library_text), Some(subfolder_text)) =
            (source_text, site_text, library_text, subfolder_text)
        else {
            continue;
        };
        let source = source_path(&source_text, options.shares)
            .map_err(|m| problems.push(at(&format!("{pointer}/SourcePath"), m)));
        let site = site_folders(&site_text)
            .map_err(|m| problems.push(at(&format!("{pointer}/TargetPath"), m)));
        let library = library_name(&library_text)
            .map_err(|m| problems.push(at(&format!("{pointer}/TargetList"), m)));
        let subfolder = subfolders(&subfolder_text)
            .map_err(|m| problems.push(at(&format!("{pointer}/TargetListRelativePath"), m)));
        if problems.len() > before {
            continue;
        }
        if let (Ok(source), Ok(site), Ok(library), Ok(subfolder)) =
            (source, site, library, subfolder)
        {
            rows.push(Row {
                place: spans.value(&pointer),
                source_text,
                site_text,
                library_text,
                subfolder_text,
                source,
                destination: [site, vec![library], subfolder].concat(),
                filters,
                notes,
            });
        }
    }
    rows
}

type Located<'a> = dyn Fn(&str, String) -> Diagnostic + 'a;

/// A JSON task's `Settings` as the task's filters, and notes for the plan's comments.
fn settings(
    value: Option<&serde_json::Value>,
    pointer: &str,
    at: &Located<'_>,
    key_at: &Located<'_>,
    problems: &mut Vec<Diagnostic>,
) -> (Vec<(&'static str, String)>, Vec<String>) {
    let mut filters = Vec::new();
    let mut notes = Vec::new();
    let Some(value) = value else {
        return (filters, notes);
    };
    let Some(object) = value.as_object() else {
        problems.push(at(pointer, "expected an object of settings".to_string()));
        return (filters, notes);
    };
    for (key, value) in object {
        let here = format!("{pointer}/{key}");
        match key.as_str() {
            "MigrateHiddenItems" => match value.as_bool() {
                Some(hidden) => filters.push(("hidden", if hidden { "migrate" } else { "skip" }.to_string())),
                None => problems.push(at(&here, "expected true or false".to_string())),
            },
            "MigrateItemsCreatedAfter" | "MigrateItemsModifiedAfter" => {
                let filter = if key == "MigrateItemsCreatedAfter" { "created_after" } else { "modified_after" };
                match value.as_str().map(str::trim) {
                    Some(date) if super::units::Date::parse(date).is_ok() => {
                        filters.push((filter, quoted(date)));
                    }
                    Some(_) | None => problems.push(at(
                        &here,
                        "expected a date as YYYY-MM-DD (or an RFC 3339 time)".to_string(),
                    )),
                }
            }
            "SkipFilesWithExtensions" => match extensions(value) {
                Some(list) if list.is_empty() => {}
                Some(list) => filters.push(("extensions_skip", format!("[{}]", list.join(", ")))),
                None => problems.push(at(
                    &here,
                    "expected extensions without the dot, separated by colons (`txt:mp3`), or a list of them".to_string(),
                )),
            },
            "MigrateOneNoteNotebook" => match value.as_bool() {
                Some(true) => notes.push(
                    "MigrateOneNoteNotebook: OneNote folders are copied as folders (a file share keeps no notebooks)".to_string(),
                ),
                Some(false) => {}
                None => problems.push(at(&here, "expected true or false".to_string())),
            },
            _ => problems.push(key_at(
                &here,
                format!("unknown setting; Migration Manager's are {}", SETTING_KEYS.join(", ")),
            )),
        }
    }
    (filters, notes)
}

/// `txt:mp3` or `["txt", ".mp3"]` as `"txt", "mp3"` (JSON strings), without repeats.
fn extensions(value: &serde_json::Value) -> Option<Vec<String>> {
    let parts: Vec<&str> = match value {
        serde_json::Value::String(s) => s.split([':', ';', ',']).collect(),
        serde_json::Value::Array(items) => {
            items.iter().map(|i| i.as_str()).collect::<Option<_>>()?
        }
        _ => return None,
    };
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        let extension = part.trim().trim_start_matches('.').to_lowercase();
        if extension.is_empty() {
            continue;
        }
        if extension.contains(['/', '\\', '.', '*']) {
            return None;
        }
        let quoted = quoted(&extension);
        if !out.contains(&quoted) {
            out.push(quoted);
        }
    }
    Some(out)
}

/// Duplicate rows, and rows that would write one folder.
fn duplicates(rows: &[Row], format: Format, problems: &mut Vec<Diagnostic>) {
    let unit = if format == Format::Csv {
        "row"
    } else {
        "the task at line"
    };
    let mut seen: HashMap<(String, Vec<String>), usize> = HashMap::new();
    let mut destinations: HashMap<Vec<String>, usize> = HashMap::new();
    for row in rows {
        let place = row.place;
        let key = (row.source.clone(), row.destination.clone());
        if let Some(first) = seen.get(&key).copied() {
            problems.push(Diagnostic::new(
                place,
                "",
                format!("a duplicate of {unit} {first}: Migration Manager refuses duplicate rows, and so does ferry"),
            ));
            continue;
        }
        seen.insert(key, row.place.line);
        if let Some(first) = destinations.get(&row.destination).copied() {
            problems.push(Diagnostic::new(
                place,
                "",
                format!(
                    "the same destination as {unit} {first} ({}): two tasks must not write one folder",
                    row.destination.join("/")
                ),
            ));
            continue;
        }
        destinations.insert(row.destination.clone(), row.place.line);
    }
}

/// A task name from the destination's last site folder, library and subfolders.
fn task_name(row: &Row, taken: &mut Vec<String>) -> String {
    let site_parts =
        row.destination.len() - 1 - subfolders(&row.subfolder_text).map_or(0, |s| s.len());
    let mut words: Vec<&str> = Vec::new();
    if site_parts > 0 {
        words.push(&row.destination[site_parts - 1]);
    }
    words.extend(row.destination[site_parts..].iter().map(String::as_str));
    let mut slug = String::new();
    for c in words.join("-").to_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    let mut slug = slug.trim_matches(['-', '.', '_']).to_string();
    slug.truncate(56);
    let slug = slug.trim_end_matches(['-', '.', '_']).to_string();
    let base = if slug.is_empty() {
        "task".to_string()
    } else {
        slug
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// Whether `name` is a task name a plan accepts.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Text safe inside a YAML comment: on one line (found by the `mm` fuzz target: a
/// carriage return in a quoted CSV field ended the comment), printable.
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            c if printable(c) => c,
            _ => ' ',
        })
        .collect()
}

/// Whether YAML lets `c` stand for itself in a document (its "printable" set).
fn printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        || c >= '\u{10000}'
}

/// `text` as a YAML double-quoted scalar: what is not printable is escaped (`\u007f`),
/// as JSON's quoting does not (found by the `mm` fuzz target: a DEL in a library's name
/// made a plan that was not YAML).
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if printable(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

fn render(rows: &[Row], options: &Options<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Made by `ferry plan-from` from {} (Migration Manager's bulk tasks): one task per row.",
        comment(options.origin)
    );
    let _ = writeln!(
        out,
        "# Check each source and destination, then `ferry validate` and `ferry scan` this plan.\n# Every other setting is ferry's default: see plans/example-full.yaml."
    );
    let _ = writeln!(out, "version: 1");
    let _ = writeln!(out, "name: {}", quoted(options.name));
    let _ = writeln!(out, "tasks:");
    let mut taken = Vec::new();
    let root = options.destination_root.trim_end_matches('/');
    let destinations: Vec<String> = rows
        .iter()
        .map(|row| {
            let tail: Vec<String> = row.destination.iter().map(|p| escape_dollar(p)).collect();
            format!("{root}/{}", tail.join("/"))
        })
        .collect();
    let names: Vec<String> = rows.iter().map(|row| task_name(row, &mut taken)).collect();
    for (i, row) in rows.iter().enumerate() {
        let mut target = comment(&row.site_text);
        for part in [&row.library_text, &row.subfolder_text] {
            if !part.is_empty() {
                target.push_str(" | ");
                target.push_str(&comment(part));
            }
        }
        let _ = writeln!(
            out,
            "  # line {}: {} -> {target}",
            row.place.line,
            comment(&row.source_text)
        );
        for note in &row.notes {
            let _ = writeln!(out, "  # {}", comment(note));
        }
        // Quoted: a name of digits (`2024`) or `true` would be read as a number or a
        // boolean (found by the `mm` fuzz target).
        let _ = writeln!(out, "  - name: {}", quoted(&names[i]));
        let _ = writeln!(out, "    source: {}", quoted(&row.source));
        let _ = writeln!(out, "    destination: {}", quoted(&destinations[i]));
        // A destination inside another task's waits for it: two runs must not write
        // one folder at once.
        let outer: Vec<String> = rows
            .iter()
            .enumerate()
            .filter(|(j, other)| {
                *j != i
                    && other.destination.len() < row.destination.len()
                    && row.destination.starts_with(&other.destination)
            })
            .map(|(j, _)| quoted(&names[j]))
            .collect();
        if !outer.is_empty() {
            let _ = writeln!(out, "    depends_on: [{}]", outer.join(", "));
        }
        if !row.filters.is_empty() {
            let _ = writeln!(out, "    settings:\n      filters:");
            for (key, value) in &row.filters {
                let _ = writeln!(out, "        {key}: {value}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_found_in_their_line() {
        assert_eq!(field_place("a,\"b,c\",d", 2), (9, 1));
        assert_eq!(field_place("abc,,", 1), (5, 1));
        assert_eq!(field_place("a", 3), (2, 1));
    }

    /// Found by the `mm` fuzz target: JSON's quoting leaves a DEL as it is, which YAML
    /// does not allow in a document.
    #[test]
    fn quoted_text_is_yaml_whatever_it_holds() {
        for text in [
            "a\u{7f}b",
            "\u{85}\u{9f}\u{fffe}",
            "q\"\\\n\t\u{1b}",
            "caf\u{e9} \u{1F600}",
        ] {
            let yaml = quoted(text);
            let back: String =
                serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(back, text);
        }
        assert_eq!(quoted("a\u{7f}"), "\"a\\u007f\"");
    }

    #[test]
    fn extensions_are_normalised() {
        let list = |v: serde_json::Value| extensions(&v).map(|l| l.join(","));
        assert_eq!(list("TXT:.mp3::txt".into()).unwrap(), "\"txt\",\"mp3\"");
        assert_eq!(
            list(serde_json::json!(["exe", ".BAT"])).unwrap(),
            "\"exe\",\"bat\""
        );
        assert!(list(serde_json::json!(5)).is_none());
        assert!(list("a/b".into()).is_none());
    }
}
