//! `--log-format` and `--log-file`: the event log, parsed back.

use serde_json::Value;

use crate::harness::Fixture;
use crate::run::plan;

/// The log's lines as JSON objects; panics on a line that is not one, or that does not
/// begin with `time`, `level` and `event`.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(
                line.starts_with("{\"time\":\"") && line.contains("\",\"level\":\""),
                "{line}"
            );
            let time = value["time"].as_str().unwrap();
            assert!(time.parse::<jiff::Timestamp>().is_ok(), "{line}");
            assert!(
                ["info", "warn", "error"].contains(&value["level"].as_str().unwrap()),
                "{line}"
            );
            assert!(value["event"].is_string(), "{line}");
            value
        })
        .collect()
}

/// The events of one name.
pub fn events<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == name).collect()
}

/// A run logs its start and end, each task's start and end with the round and what it
/// did, and each item kept back, with the stable field names; a second run appends.
#[test]
fn the_json_log_has_each_event_with_its_stable_fields() {
    let f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.file("src/deep/b.txt", "bravo");
    f.file("src/bad:name?.txt", "refused by the rules");
    f.plan(&plan("{ rules: sharepoint }"));
    let args = [
        "run",
        "plan.yaml",
        "--log-format",
        "json",
        "--log-file",
        "run.log",
    ];
    let first = f.ferry(&args);
    first.assert_code(1);
    // Human output stays as it is, and the log is not on stderr.
    assert!(first.stderr.contains("run t: imported"), "{}", first.stderr);
    assert!(!first.stderr.contains("\"event\""), "{}", first.stderr);

    let text = std::fs::read_to_string(f.path("run.log")).unwrap();
    let lines = json_lines(&text);
    let names: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "run_start",
            "task_start",
            "failure",
            "sizing",
            "task_end",
            "run_end"
        ],
        "{text}"
    );
    for line in &lines {
        assert_eq!(line["plan"], "p", "{line}");
    }
    let failure = events(&lines, "failure")[0];
    assert_eq!(failure["level"], "warn");
    assert_eq!(failure["task"], "t");
    assert_eq!(failure["round"], 1);
    assert_eq!(failure["item"], "bad:name?.txt");
    assert_eq!(failure["code"], "invalid-character");
    assert!(failure["message"].as_str().unwrap().contains(':'));
    let end = events(&lines, "task_end")[0];
    assert_eq!(end["round"], 1);
    assert_eq!(end["result"], "partial");
    assert_eq!(end["items"], 3, "two files and a folder: {end}");
    assert_eq!(end["kept_back"], 1, "{end}");
    assert_eq!(end["bytes"], 10);
    assert!(end["duration"].as_f64().unwrap() >= 0.0);
    assert_eq!(events(&lines, "run_end")[0]["exit"], 1);

    // The next run appends its own lines: a round with nothing to do.
    f.ferry(&args).assert_code(1);
    let text = std::fs::read_to_string(f.path("run.log")).unwrap();
    let lines = json_lines(&text);
    assert_eq!(events(&lines, "run_start").len(), 2);
    let second = events(&lines, "task_end")[1];
    assert_eq!(second["round"], 2, "{second}");
}

/// A pause is logged with its reason, and a staging service that cannot be reached
/// with each retry, as text lines on stderr when no file is named.
#[test]
fn pauses_and_retries_are_logged() {
    let mut f = Fixture::new();
    for i in 0..5 {
        f.file(&format!("src/f{i}.txt"), format!("file {i}"));
    }
    f.plan(&plan("{ rules: posix, package: { max_files: 1 } }"));
    f.env("FERRY_TEST_CLOCK", "2026-12-01T12:00:00Z@1000000");
    let paused = f.ferry(&[
        "run",
        "plan.yaml",
        "--workers",
        "1",
        "--max-duration",
        "1m",
        "--log-format",
        "text",
    ]);
    paused.assert_code(3);
    let pause = paused
        .stderr
        .lines()
        .find(|l| l.contains(" pause "))
        .unwrap_or_else(|| panic!("{}", paused.stderr));
    assert!(
        pause.contains("INFO  pause plan=p message=\"paused after --max-duration\""),
        "{pause}"
    );

    // Nothing listens on port 9 of the loopback: each attempt is refused and retried.
    f.env("FERRY_TEST_S3_SECRET", "do-not-log-me-0123456789");
    f.file(
        "s3.yaml",
        "version: 1\nname: p3\nworking_folder: state\nstaging:\n  kind: s3\n  bucket: nothere\n  endpoint: http://127.0.0.1:9\n  key_id: { env: FERRY_TEST_S3_SECRET }\n  credential: { env: FERRY_TEST_S3_SECRET }\ntasks:\n  - name: t\n    source: src\n    destination: dest3\n    settings: { rules: posix, retries: { attempts: 3, backoff: 10ms } }\n",
    );
    let refused = f.ferry(&[
        "run",
        "s3.yaml",
        "--log-format",
        "json",
        "--log-file",
        "s3.log",
    ]);
    refused.assert_code(5);
    let text = std::fs::read_to_string(f.path("s3.log")).unwrap();
    let lines = json_lines(&text);
    let retries = events(&lines, "retry");
    assert_eq!(retries.len(), 2, "{text}");
    assert!(
        retries
            .iter()
            .all(|r| r["level"] == "warn" && r["plan"] == "p3")
    );
    assert_eq!(events(&lines, "run_end")[0]["exit"], 5);
    assert!(!text.contains("do-not-log-me"), "{text}");
    assert!(!f.path("dest3").exists());
}

/// A log file that cannot be opened is a usage error, before anything is touched.
#[test]
fn a_log_file_that_cannot_be_opened_is_refused() {
    let f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.plan(&plan("{ rules: posix }"));
    let refused = f.ferry(&["run", "plan.yaml", "--log-file", "no/such/folder/run.log"]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("cannot open the log file no/such/folder/run.log"),
        "{}",
        refused.stderr
    );
    assert!(!f.path("dest").exists());
    assert!(!f.path("state").exists());
}
