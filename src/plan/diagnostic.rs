//! Plan errors that point into the file.
//!
//! A `Diagnostic` is one problem at one place: `plans/a.yaml:12:5: tasks[1].source:
//! what is wrong and what was expected`, followed by the line and a caret. All the
//! problems of a file are collected and shown together.

use std::fmt::{self, Write as _};

use unicode_width::UnicodeWidthChar;

/// A position in the plan text: 1-based line and column (in characters), and how many
/// characters to underline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub line: usize,
    pub column: usize,
    pub width: usize,
}

impl Default for Place {
    fn default() -> Self {
        Place {
            line: 1,
            column: 1,
            width: 1,
        }
    }
}

/// The text's lines as YAML (and CSV) count them: a line ends at `\r\n`, `\n`, or a
/// lone `\r`. Places count lines this way, so a snippet must too: with `str::lines`, a
/// stray carriage return would show the line after the one meant.
pub fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        out.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    out.push(rest);
    out
}

/// One problem in a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub place: Place,
    /// The JSON pointer of the node (`/tasks/1/source`); empty for the whole plan.
    pub pointer: String,
    pub message: String,
    /// A secret starts at this column of the line: the snippet masks it to the end.
    pub redact_from: Option<usize>,
}

impl Diagnostic {
    pub(crate) fn new(
        place: Place,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            place,
            pointer: pointer.into(),
            message: message.into(),
            redact_from: None,
        }
    }

    /// The place moved inside `text` when a parser put it past the end (an empty
    /// document `---` is placed on the line after it: found by the `mm` fuzz target).
    pub(crate) fn clamped(mut self, text: &str) -> Diagnostic {
        let lines = lines(text);
        if self.place.line == 0 || self.place.line > lines.len() {
            let last = lines.len().max(1);
            self.place = Place {
                line: last,
                column: lines.last().map_or(0, |l| l.chars().count()) + 1,
                width: 1,
            };
        }
        let width = lines[self.place.line - 1].chars().count();
        self.place.column = self.place.column.clamp(1, width + 1);
        self
    }

    /// The key path, as a user reads it: `tasks[1].source`.
    pub fn path(&self) -> String {
        Self::path_of(&self.pointer)
    }

    /// Renders the diagnostic with the plan's name as the user gave it and the line it
    /// points at.
    pub fn render(&self, file: &str, text: &str) -> String {
        let mut out = String::new();
        let Place {
            line,
            column,
            width,
        } = self.place;
        let _ = write!(out, "{file}:{line}:{column}: ");
        if !self.pointer.is_empty() {
            let _ = write!(out, "{}: ", self.path());
        }
        out.push_str(&self.message);
        out.push('\n');
        // An empty text has no line to show.
        if let Some(source) = lines(text)
            .get(line.saturating_sub(1))
            .filter(|_| !text.is_empty())
        {
            let gutter = line.to_string().len();
            let (shown, caret_at, caret_width) =
                display_line(source, column, width, self.redact_from);
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{line} | {shown}");
            let _ = writeln!(
                out,
                "{:gutter$} | {:caret_at$}{}",
                "",
                "",
                "^".repeat(caret_width.max(1))
            );
        }
        out
    }

    /// The key path of a JSON pointer: `/tasks/1/source` reads `tasks[1].source`.
    pub(crate) fn path_of(pointer: &str) -> String {
        let mut path = String::new();
        for segment in pointer.split('/').skip(1) {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                let _ = write!(path, "[{segment}]");
            } else {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&segment);
            }
        }
        path
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.place.line, self.place.column)?;
        if !self.pointer.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        f.write_str(&self.message)
    }
}

/// The line as shown under an error: tabs become one space and control characters a
/// replacement character, so the caret lines up and nothing reaches the terminal
/// raw; a redacted value is masked from its start to the end of the line. Returns
/// the text and the caret's offset and width in terminal columns.
fn display_line(
    source: &str,
    column: usize,
    width: usize,
    redact_from: Option<usize>,
) -> (String, usize, usize) {
    let mut shown = String::new();
    let (mut caret_at, mut caret_width, mut at) = (0, 0, 0);
    for (i, c) in source.chars().enumerate() {
        let index = i + 1;
        let c = match c {
            _ if redact_from.is_some_and(|from| index >= from) => '*',
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        };
        let w = c.width().unwrap_or(0);
        if index < column {
            caret_at += w;
        } else if index < column + width {
            caret_width += w;
        }
        shown.push(c);
        at += w;
    }
    // A caret past the end of the line (an error at end of input) sits just after it.
    if column > source.chars().count() {
        caret_at = at;
    }
    (shown, caret_at, caret_width.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headline_line_and_caret() {
        let d = Diagnostic::new(
            Place {
                line: 2,
                column: 5,
                width: 5,
            },
            "/tasks/0/sourc",
            "unknown key",
        );
        let text = "tasks:\n  - sourc: /x\n";
        assert_eq!(
            d.render("p.yaml", text),
            "p.yaml:2:5: tasks[0].sourc: unknown key\n  |\n2 |   - sourc: /x\n  |     ^^^^^\n"
        );
    }

    /// Found by the `plan` fuzz target: YAML ends a line at a lone `\r`, and the snippet
    /// showed the line after the one meant.
    #[test]
    fn a_lone_carriage_return_ends_a_line_as_in_yaml() {
        assert_eq!(lines("a\rb\r\nc\nd"), ["a", "b", "c", "d"]);
        assert_eq!(lines("a\n"), ["a", ""]);
        let d = Diagnostic::new(
            Place {
                line: 2,
                column: 1,
                width: 3,
            },
            "",
            "here",
        );
        assert!(d.render("p.yaml", "a\rbad\nc").contains("2 | bad"));
    }

    #[test]
    fn redacted_values_are_masked() {
        let mut d = Diagnostic::new(
            Place {
                line: 1,
                column: 7,
                width: 3,
            },
            "/path",
            "secret",
        );
        d.redact_from = Some(7);
        let out = d.render("p.yaml", "path: sig=abc\n");
        assert!(out.contains("1 | path: *******"), "{out}");
        assert!(!out.contains("abc"));
    }

    #[test]
    fn wide_characters_and_tabs_keep_the_caret_aligned() {
        let d = Diagnostic::new(
            Place {
                line: 1,
                column: 3,
                width: 1,
            },
            "",
            "here",
        );
        let out = d.render("p.yaml", "日\tx: y");
        assert!(out.ends_with("1 | 日 x: y\n  |    ^\n"), "{out:?}");
    }

    #[test]
    fn paths_read_like_keys() {
        assert_eq!(Diagnostic::path_of(""), "");
        assert_eq!(Diagnostic::path_of("/tasks/1/source"), "tasks[1].source");
        assert_eq!(
            Diagnostic::path_of("/defaults/filters/include/0"),
            "defaults.filters.include[0]"
        );
        assert_eq!(Diagnostic::path_of("/a~1b/c~0d"), "a/b.c~d");
    }
}
