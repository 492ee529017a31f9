//! Run windows and `--max-duration`, with the clock set by `FERRY_TEST_CLOCK` (a time,
//! and how many times faster than real it runs): no test waits for real minutes.

use std::fs;

use crate::harness::Fixture;
use crate::session::assert_same_tree;

fn windowed(f: &Fixture, window: &str) {
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nschedule:\n  window: {window}\n  time_zone: Europe/Paris\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix, package: {{ max_files: 1 }} }}\n"
    ));
}

fn tree(f: &Fixture) {
    for i in 0..60 {
        f.file(&format!("src/d{}/f{i:02}.txt", i % 3), format!("file {i}"));
    }
}

fn round_and_status(f: &Fixture) -> (u64, String) {
    let session: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("state/p/t/session.json")).unwrap())
            .unwrap();
    (
        session["round"].as_u64().unwrap(),
        session["status"].as_str().unwrap().to_string(),
    )
}

/// Outside the window, `ferry run` does nothing, exits 0 and says when the next window
/// opens; inside, it runs.
#[test]
fn outside_the_window_nothing_is_done() {
    let mut f = Fixture::new();
    tree(&f);
    windowed(&f, "\"Mon-Fri 19:00-07:00\"");
    // Saturday 2026-12-05, noon in Paris.
    f.env("FERRY_TEST_CLOCK", "2026-12-05T11:00:00Z");
    let closed = f.ferry(&["run", "plan.yaml"]);
    closed.assert_code(0);
    assert!(
        closed.stderr.contains("outside the run window")
            && closed.stderr.contains("2026-12-07 19:00 CET (Mon)"),
        "{}",
        closed.stderr
    );
    assert!(!f.path("dest").exists());
    assert!(!f.path("state/p/t/session.json").exists());
    // Monday 21:00 in Paris: inside.
    f.env("FERRY_TEST_CLOCK", "2026-12-07T20:00:00Z");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// The window closes during the run (the set clock runs a thousand times faster, so
/// its last thirty seconds pass in thirty milliseconds: enough to find the window open,
/// not enough to finish): the run pauses with exit 3, saying why, and the next run
/// inside a window resumes the same round and completes it.
#[test]
fn the_window_closing_pauses_the_run_and_the_next_run_resumes() {
    let mut f = Fixture::new();
    tree(&f);
    windowed(&f, "[\"Mon-Fri 19:00-07:00\"]");
    // Tuesday 06:59:30 in Paris, thirty seconds before the window closes.
    f.env("FERRY_TEST_CLOCK", "2026-12-01T05:59:30Z@1000");
    let paused = f.ferry(&["run", "plan.yaml", "--workers", "1"]);
    paused.assert_code(3);
    assert!(
        paused
            .stderr
            .contains("paused at the end of the run window"),
        "{}",
        paused.stderr
    );
    // The window may close before the task even began (no session yet), or during its
    // round (which stays open).
    if f.path("state/p/t/session.json").exists() {
        assert_eq!(round_and_status(&f), (1, "paused".to_string()));
    }
    f.env("FERRY_TEST_CLOCK", "2026-12-01T20:00:00Z");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_eq!(round_and_status(&f), (1, "completed".to_string()));
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// `--max-duration` pauses the same way, without any window; a bad duration is a usage
/// error, and a schedule that cannot be read is a plan error at its line.
#[test]
fn max_duration_pauses_and_bad_schedules_are_refused() {
    let mut f = Fixture::new();
    tree(&f);
    f.plan("version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: posix, package: { max_files: 1 } }\n");
    f.env("FERRY_TEST_CLOCK", "2026-12-01T12:00:00Z@1000000");
    let paused = f.ferry(&["run", "plan.yaml", "--workers", "1", "--max-duration", "1m"]);
    paused.assert_code(3);
    assert!(
        paused.stderr.contains("paused after --max-duration"),
        "{}",
        paused.stderr
    );
    f.env("FERRY_TEST_CLOCK", "2026-12-01T12:00:00Z");
    f.ferry(&["run", "plan.yaml", "--max-duration", "2h"])
        .assert_code(0);
    assert_eq!(round_and_status(&f), (1, "completed".to_string()));
    f.ferry(&["run", "plan.yaml", "--max-duration", "soon"])
        .assert_code(2);

    windowed(&f, "\"Mon-Fri 19:00\"");
    let bad = f.ferry(&["validate", "plan.yaml"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("plan.yaml:5:"), "{}", bad.stderr);
    assert!(bad.stderr.contains("not a span of times"), "{}", bad.stderr);
    f.plan("version: 1\nname: p\nworking_folder: state\nschedule: { window: \"19:00-07:00\", time_zone: Mars/Olympus }\ntasks:\n  - name: t\n    source: src\n    destination: dest\n");
    let zone = f.ferry(&["validate", "plan.yaml"]);
    zone.assert_code(2);
    assert!(
        zone.stderr.contains("not an IANA time zone"),
        "{}",
        zone.stderr
    );
}
