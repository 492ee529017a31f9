//! The reports of a run: item reports, summaries, templates, and what a browser and a
//! CSV reader make of them.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::process::Command;

use crate::harness::{Fixture, have, redact_host};

const TASK: &str = "state/p/t/reports/R1";

/// A small share with hostile names and one conflict at the destination, so that the
/// round has failures; tiny files keep the throughput figures at 0.
fn round_with_failures(f: &Fixture, plan_extra: &str) {
    f.file("src/plain.txt", "plain");
    f.file("src/=HYPERLINK(\"http-evil\",\"x\").txt", "formula");
    f.file("src/pipe|and*stars_.md", "markdown");
    f.file("src/<img src=x onerror=alert(1)>.html", "html");
    fs::write(f.path("src").join(OsStr::from_bytes(b"new\nline")), "nl").unwrap();
    f.file("src/folder/inner.txt", "inner");
    // The destination already has the folder, and a different file under a hostile
    // name: a conflict, kept, whose name every report must show safely.
    f.file("dest/folder/someone-elses.txt", "theirs");
    f.file("dest/<img src=x onerror=alert(1)>.html", "someone else's");
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\n{plan_extra}tasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix }}\n"
    ));
    let run = f.ferry(&["run", "plan.yaml", "--workers", "1"]);
    run.assert_code(1);
}

/// A report with the things that change from run to run replaced.
fn redacted(f: &Fixture, text: &str) -> String {
    let root = f.root().display().to_string();
    let text = redact_host(&text.replace(&root, "[TEMP]"));
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
    // Durations: seconds in JSON, "3s" / "2m 05s" / "1h 02m" in Markdown and HTML.
    let seconds = regex::Regex::new(r#""duration_seconds": \d+"#).unwrap();
    let duration = regex::Regex::new(r"\b\d+(h \d\dm|m \d\ds|s)\b").unwrap();
    let text = time.replace_all(&text, "[TIME]");
    let text = seconds.replace_all(&text, r#""duration_seconds": [DURATION]"#);
    let text = duration.replace_all(&text, "[DURATION]");
    match host.trim() {
        "" => text.into_owned(),
        host => text
            .replace(&format!(",{host}\n"), ",[HOST]\n")
            .replace(&format!("\"{host}\""), "\"[HOST]\"")
            .replace(&format!("| {host} |"), "| [HOST] |")
            .replace(&format!(">{host}<"), ">[HOST]<"),
    }
}

/// The CSV with its item IDs (inodes) and job IDs shown as `[INO]` and `[JOB]`: they
/// differ from run to run (`the_item_ids_are_the_inodes_and_the_job_is_the_run` checks
/// them).
fn ids_hidden(text: &str) -> String {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut hide = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.unwrap();
        if n == 0 {
            for (i, name) in record.iter().enumerate() {
                match name {
                    "Source item ID" | "Destination item ID" => hide.push((i, "[INO]")),
                    "Migration job ID" => hide.push((i, "[JOB]")),
                    _ => {}
                }
            }
            out.write_record(&record).unwrap();
            continue;
        }
        let cells: Vec<&str> = record
            .iter()
            .enumerate()
            .map(|(i, cell)| match hide.iter().find(|(h, _)| *h == i) {
                Some((_, shown)) if !cell.is_empty() => shown,
                _ => cell,
            })
            .collect();
        out.write_record(&cells).unwrap();
    }
    String::from_utf8(out.into_inner().unwrap()).unwrap()
}

/// The CSV's rows, header first then the rest sorted (workers finish in any order).
fn sorted_csv(text: &str) -> String {
    let mut lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    if lines.len() > 1 {
        lines[1..].sort_unstable();
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[test]
fn every_built_in_report_of_a_round_with_failures_and_hostile_names() {
    let f = Fixture::new();
    round_with_failures(&f, "");
    for name in [
        "ItemReport_R1.csv",
        "ItemFailureReport_R1.csv",
        "ItemSummary_R1.csv",
    ] {
        let text = fs::read_to_string(f.path(&format!("{TASK}/{name}"))).unwrap();
        insta::assert_snapshot!(name, redacted(&f, &sorted_csv(&ids_hidden(&text))));
    }
    for name in ["Summary.md", "Summary.html", "summary.json"] {
        let text = fs::read_to_string(f.path(&format!("state/p/{name}"))).unwrap();
        insta::assert_snapshot!(name, redacted(&f, &text));
    }
    // The round summary is what `ferry report` renders from.
    let round: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path(&format!("{TASK}/round.json"))).unwrap())
            .unwrap();
    assert_eq!(round["stages"]["imported"], 5);
    assert_eq!(round["stages"]["already_at_destination"], 1);
    assert_eq!(round["stages"]["failed_importing"], 1);
}

#[test]
fn csvs_have_the_documented_columns_and_no_formulas() {
    if !have("python3") {
        return;
    }
    let f = Fixture::new();
    round_with_failures(&f, "");
    f.ferry(&["report", "plan.yaml", "--format", "csv"])
        .assert_code(0);
    let script = r#"
import csv, json, sys
out = {}
for path in sys.argv[1:]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    out[path.rsplit("/", 1)[1]] = rows
print(json.dumps(out))
"#;
    let files = [
        f.path(&format!("{TASK}/ItemReport_R1.csv")),
        f.path(&format!("{TASK}/ItemFailureReport_R1.csv")),
        f.path(&format!("{TASK}/ItemSummary_R1.csv")),
        f.path("state/p/SummaryReport.csv"),
    ];
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let header = |name: &str| -> Vec<String> {
        parsed[name][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        header("ItemReport_R1.csv"),
        ferry::report::round::ITEM_COLUMNS
    );
    assert_eq!(
        header("ItemFailureReport_R1.csv"),
        ferry::report::round::FAILURE_COLUMNS
    );
    assert_eq!(
        header("ItemSummary_R1.csv"),
        ferry::report::round::SUMMARY_COLUMNS
    );
    assert_eq!(
        header("SummaryReport.csv"),
        ferry::report::summary::AGGREGATE_COLUMNS
    );
    // Every row has every column; the =HYPERLINK name is text, not a formula.
    let mut saw_formula_name = false;
    for name in [
        "ItemReport_R1.csv",
        "ItemFailureReport_R1.csv",
        "ItemSummary_R1.csv",
        "SummaryReport.csv",
    ] {
        let rows = parsed[name].as_array().unwrap();
        let width = rows[0].as_array().unwrap().len();
        for row in rows {
            let cells = row.as_array().unwrap();
            assert_eq!(cells.len(), width, "{name}: {row}");
            for cell in cells {
                let cell = cell.as_str().unwrap();
                assert!(
                    !cell.starts_with(['=', '+', '-', '@']),
                    "{name}: a cell a spreadsheet would run: {cell}"
                );
                saw_formula_name |= cell.starts_with("'=HYPERLINK(");
            }
        }
    }
    assert!(saw_formula_name);
    // ItemReport lists every item of the round once: 5 migrated, the folder that was
    // there already, and the conflict.
    let items = parsed["ItemReport_R1.csv"].as_array().unwrap().len() - 1;
    assert_eq!(items, 7);
}

#[test]
fn the_html_summary_renders_its_charts_and_tables_in_chromium() {
    if !have("chromium") {
        return;
    }
    let f = Fixture::new();
    round_with_failures(&f, "");
    let page = f.path("state/p/Summary.html");
    let url = format!("file://{}", page.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let profile = f.path("chromium-profile");
    let profile = format!("--user-data-dir={}", profile.display());
    let dom = Command::new("chromium")
        .args(common)
        .arg(&profile)
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    for needle in [
        "<svg id=\"chart-tasks\"",
        "<svg id=\"chart-failures\"",
        "<rect",
        "<table id=\"tasks\"",
        "<table id=\"failures\"",
        "destination-changed",
        // Hostile names arrive as text, not markup.
        "&lt;img src=x onerror=alert(1)&gt;",
    ] {
        assert!(
            dom_text.contains(needle),
            "the rendered page lacks {needle}"
        );
    }
    assert!(!dom_text.contains("<img"), "a name became markup");
    assert!(!log.contains("Uncaught"), "{log}");
    assert!(!log.contains(":CONSOLE"), "{log}");
    let shot = f.path("summary.png");
    let screenshot = Command::new("chromium")
        .args(common)
        .arg(&profile)
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1200,1400", &url])
        .output()
        .unwrap();
    assert!(
        screenshot.status.success(),
        "{}",
        String::from_utf8_lossy(&screenshot.stderr)
    );
    let png = fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page compresses to a few kilobytes; this one has charts and tables.
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());
}

#[test]
fn a_plan_template_replaces_the_summary_and_a_broken_one_names_its_line() {
    let f = Fixture::new();
    f.file(
        "templates/summary.md",
        "Custom summary of {{ plan }}: {{ totals.imported }} imported, {{ totals.failed }} failed.\n",
    );
    round_with_failures(&f, "report:\n  templates: templates\n");
    let text = fs::read_to_string(f.path("state/p/Summary.md")).unwrap();
    assert_eq!(text, "Custom summary of p: 5 imported, 1 failed.\n");
    // The HTML summary is still the built-in one.
    assert!(
        fs::read_to_string(f.path("state/p/Summary.html"))
            .unwrap()
            .contains("<svg")
    );

    f.file(
        "templates/summary.md",
        "# {{ plan }}\n\n{% for t in tasks %}\n- {{ t.task }}: {{ t.stages.imprted }}\n{% endfor %}\n",
    );
    let broken = f.ferry(&["report", "plan.yaml", "--format", "md"]);
    broken.assert_code(2);
    let root = f.root().display().to_string();
    insta::assert_snapshot!("template_error", broken.stderr.replace(&root, "[TEMP]"));
    // A run still finishes and says why the summary is missing.
    let run = f.ferry(&["run", "plan.yaml"]);
    assert!(
        run.stderr.contains("the plan's summary was not written"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("line 4"), "{}", run.stderr);

    // --template for one report, from anywhere.
    f.file(
        "other.html",
        "<p>{{ plan }} has {{ tasks | length }} task</p>\n",
    );
    f.ferry(&[
        "report",
        "plan.yaml",
        "--template",
        "other.html",
        "--out",
        "out",
    ])
    .assert_code(0);
    assert_eq!(
        fs::read_to_string(f.path("out/Summary.html")).unwrap(),
        "<p>p has 1 task</p>\n"
    );
}

#[test]
fn report_re_renders_a_stored_round_and_reports_go_with_their_task() {
    let f = Fixture::new();
    round_with_failures(&f, "");
    f.ferry(&["run", "plan.yaml"]).assert_code(1);
    // Round 2 changed nothing; round 1 is still there to render.
    let again = f.ferry(&[
        "report",
        "plan.yaml",
        "--round",
        "1",
        "--format",
        "json",
        "--out",
        "r1",
    ]);
    again.assert_code(0);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("r1/summary.json")).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["tasks"][0]["round"], 1);
    assert_eq!(json["tasks"][0]["stages"]["imported"], 5);
    let missing = f.ferry(&["report", "plan.yaml", "--round", "9"]);
    missing.assert_code(5);
    assert!(
        missing.stderr.contains("no summary of round 9"),
        "{}",
        missing.stderr
    );
    f.ferry(&["delete", "plan.yaml", "--task", "t", "--yes"])
        .assert_code(0);
    assert!(!f.path(TASK).exists());
}

#[test]
fn docs_list_exactly_the_columns_of_each_report() {
    let text = fs::read_to_string(crate::harness::repo().join("docs/reports.md")).unwrap();
    let columns = |marker: &str| -> Vec<String> {
        let at = text
            .find(&format!("<!-- columns:{marker} -->"))
            .expect(marker);
        let paragraph = text[at..].split("\n\n").next().unwrap();
        let list = paragraph.split("columns: ").nth(1).unwrap();
        list.trim_end_matches('.')
            .split(',')
            .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(columns("ItemReport"), ferry::report::round::ITEM_COLUMNS);
    assert_eq!(
        columns("ItemFailureReport"),
        ferry::report::round::FAILURE_COLUMNS
    );
    assert_eq!(
        columns("ItemSummary"),
        ferry::report::round::SUMMARY_COLUMNS
    );
    assert_eq!(
        columns("SummaryReport"),
        ferry::report::summary::AGGREGATE_COLUMNS
    );
}

/// Issue 15: the item report's IDs are what Migration Manager's users look for: each
/// item's inode at the source and at the destination, the run that imported it, and a
/// task ID that stays the same from round to round (and in `SummaryReport.csv`).
#[test]
fn the_item_ids_are_the_inodes_and_the_job_is_the_run() {
    use std::os::unix::fs::MetadataExt as _;
    let f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.file("src/deep/b.txt", "bravo");
    f.plan(&crate::run::plan("{ rules: posix }"));
    let before = jiff::Timestamp::now().as_second();
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let rows = |round: u32| {
        let text = fs::read_to_string(f.path(&format!(
            "state/p/t/reports/R{round}/ItemReport_R{round}.csv"
        )))
        .unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let (path, source, dest, job, task) = (
            at("Source"),
            at("Source item ID"),
            at("Destination item ID"),
            at("Migration job ID"),
            at("Task ID"),
        );
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                [&r[path], &r[source], &r[dest], &r[job], &r[task]].map(str::to_string)
            })
            .collect::<Vec<_>>()
    };
    let first = rows(1);
    assert_eq!(first.len(), 3, "{first:?}");
    let job = regex::Regex::new(r"^(\d{8}T\d{6}Z)-[0-9a-f]{5}$").unwrap();
    let guid = regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        .unwrap();
    for [path, source_id, dest_id, job_id, task_id] in &first {
        let rel = path.split("/src/").nth(1).unwrap();
        let source = fs::symlink_metadata(f.path(&format!("src/{rel}"))).unwrap();
        let dest = fs::symlink_metadata(f.path(&format!("dest/{rel}"))).unwrap();
        assert_eq!(source_id, &source.ino().to_string(), "{path}");
        assert_eq!(dest_id, &dest.ino().to_string(), "{path}");
        let started = job.captures(job_id).unwrap_or_else(|| panic!("{job_id}"));
        let started = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &started[1])
            .unwrap()
            .in_tz("UTC")
            .unwrap()
            .timestamp()
            .as_second();
        assert!(started >= before && started <= jiff::Timestamp::now().as_second());
        assert!(guid.is_match(task_id), "{task_id}");
        assert_eq!(job_id, &first[0][3], "one run, one job");
    }
    // The next round: another run, another job; the same task ID.
    f.file("src/c.txt", "charlie");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let second = rows(2);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0][3], first[0][3]);
    assert_eq!(second[0][4], first[0][4]);
    f.ferry(&["report", "plan.yaml", "--format", "csv"])
        .assert_code(0);
    let aggregate = fs::read_to_string(f.path("state/p/SummaryReport.csv")).unwrap();
    assert!(aggregate.contains(&first[0][4]), "{aggregate}");
}
