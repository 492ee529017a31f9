//! Reports: what a round found and did, written for people (stderr summaries) and for
//! spreadsheets (CSV files named as Migration Manager names them).
//!
//! File names come from the source and are hostile: every name shown anywhere goes
//! through [`escape`], so a newline or an escape sequence in a name cannot forge a report
//! line or drive a terminal; every CSV cell goes through [`csv_cell`], so a name cannot
//! become a spreadsheet formula. Report files are written beside their final name and
//! renamed into place, so a reader never sees half a report.

pub mod round;
pub mod scan;
pub mod summary;

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// A name or path as text that is safe to print: valid UTF-8 stays as it is, except
/// control and bidirectional-override characters (`\n`, `\t`, `\u{1b}`, `\u{202e}`);
/// bytes that are not UTF-8 are shown as `\xNN`. Never lossy in a way that makes two
/// different names look alike, short of a name that spells out such escapes itself.
pub fn escape(name: &OsStr) -> Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt as _;
    if let Some(text) = name.to_str()
        && !text.chars().any(needs_escape)
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for a path.
pub fn escape_path(path: &Path) -> Cow<'_, str> {
    escape(path.as_os_str())
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A CSV cell that a spreadsheet shows as text: a leading `=`, `+`, `-`, `@` (or tab or
/// carriage return, which some spreadsheets skip before looking) gets a `'` in front,
/// as OWASP recommends against formula injection. Quoting is the CSV writer's job.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// A CSV report being written: rows go to `<name>.partial`, and [`CsvFile::finish`]
/// renames it into place.
pub struct CsvFile {
    writer: csv::Writer<io::BufWriter<fs::File>>,
    partial: PathBuf,
    path: PathBuf,
}

impl std::fmt::Debug for CsvFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvFile").field("path", &self.path).finish()
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write report {}: {source}; check that the working folder is writable and has space", path.display())]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl CsvFile {
    /// Starts `path` with its header row.
    pub fn create(path: PathBuf, header: &[&str]) -> Result<CsvFile, ReportError> {
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let fail = |source| ReportError {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        let file = fs::File::create(&partial).map_err(fail)?;
        let writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(io::BufWriter::with_capacity(1 << 16, file));
        let mut csv = CsvFile {
            writer,
            partial,
            path,
        };
        csv.row(header)?;
        Ok(csv)
    }

    /// One row; every cell is neutralised with [`csv_cell`].
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> Result<(), ReportError> {
        let fail = |e: csv::Error| ReportError {
            path: self.path.clone(),
            source: e.into(),
        };
        for cell in cells {
            self.writer
                .write_field(csv_cell(cell.as_ref()).as_bytes())
                .map_err(fail)?;
        }
        // An empty record after fields ends the row.
        self.writer.write_record(None::<&[u8]>).map_err(fail)
    }

    /// Flushes, syncs and renames the report into place; returns its path.
    pub fn finish(self) -> Result<PathBuf, ReportError> {
        let CsvFile {
            writer,
            partial,
            path,
        } = self;
        let fail = |source| ReportError {
            path: path.clone(),
            source,
        };
        let file = writer
            .into_inner()
            .map_err(|e| fail(e.into_error()))?
            .into_inner()
            .map_err(|e| fail(e.into_error()))?;
        file.sync_all().map_err(fail)?;
        fs::rename(&partial, &path).map_err(fail)?;
        sync_parent(&path).map_err(fail)?;
        Ok(path)
    }
}

/// Writes a whole small file atomically (temp, sync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let fail = |source| ReportError {
        path: path.to_path_buf(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let mut file = fs::File::create(&partial).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&partial, path).map_err(fail)?;
    sync_parent(path).map_err(fail)
}

/// Makes a rename into `path`'s folder durable: without it, a power cut can bring back
/// the old file after the new one was reported written (reliability review, finding 15).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;

    #[test]
    fn escape_shows_controls_and_bad_bytes() {
        assert_eq!(escape(OsStr::new("plain é.txt")), "plain é.txt");
        assert_eq!(escape(OsStr::new("a\nb\tc\r")), "a\\nb\\tc\\r");
        assert_eq!(escape(OsStr::new("\u{1b}[31mred")), "\\u{1b}[31mred");
        assert_eq!(
            escape(OsStr::new("evil\u{202e}fdp.exe")),
            "evil\\u{202e}fdp.exe"
        );
        let latin1 = OsString::from_vec(b"caf\xe9 \x7f".to_vec());
        assert_eq!(escape(&latin1), "caf\\xE9 \\u{7f}");
    }

    #[test]
    fn formulas_become_text() {
        for evil in ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1"] {
            assert!(csv_cell(evil).starts_with('\''), "{evil}");
        }
        assert_eq!(csv_cell("a=b"), "a=b");
        assert_eq!(csv_cell(""), "");
    }
}
