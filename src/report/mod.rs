//! Reports: what a round found and did, written for people (stderr summaries) and for
//! spreadsheets (CSV files named as Migration Manager names them).
//!
//! File names come from the source and are hostile: every name shown anywhere goes
//! through [`crate::shown::escape`], so a newline or an escape sequence in a name cannot forge a report
//! line or drive a terminal; every CSV cell goes through [`csv_cell`], so a name cannot
//! become a spreadsheet formula. Report files are written beside their final name and
//! renamed into place, so a reader never sees half a report.

pub mod round;
pub mod scan;
pub mod summary;

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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

impl From<ReportError> for crate::scan::ScanError {
    fn from(e: ReportError) -> Self {
        crate::scan::ScanError::Write {
            path: e.path,
            source: e.source,
        }
    }
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
        crate::state::sync_parent(&path).map_err(fail)?;
        Ok(path)
    }
}

/// Writes a whole small report atomically (temp, sync, rename, sync the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::state::write_atomic(path, bytes).map_err(|source| ReportError {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text() {
        for evil in ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1"] {
            assert!(csv_cell(evil).starts_with('\''), "{evil}");
        }
        assert_eq!(csv_cell("a=b"), "a=b");
        assert_eq!(csv_cell(""), "");
    }
}
