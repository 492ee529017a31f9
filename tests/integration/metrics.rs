//! `--metrics-file`: the Prometheus text format, parsed back.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::harness::Fixture;
use crate::run::plan;

/// Every sample of a text-format file, by `name{labels}`; panics on a line that is not
/// a comment or a well-formed sample, or on a sample without its `# TYPE`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut typed = Vec::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            typed.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{line}"
        );
        assert!(typed.iter().any(|t| t == name), "no # TYPE for {name}");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

/// A run writes its figures, readable by another account's collector, and they say
/// what the run did.
#[test]
fn the_metrics_file_says_what_the_run_did() {
    let f = Fixture::new();
    for i in 0..7 {
        f.file(&format!("src/f{i}.txt"), format!("file {i}"));
    }
    f.plan(&plan("{ rules: posix }"));
    f.ferry(&["run", "plan.yaml", "--metrics-file", "ferry.prom"])
        .assert_code(0);
    let path = f.path("ferry.prom");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let samples = parse(&fs::read_to_string(&path).unwrap());
    let at = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from {samples:?}"))
    };
    assert_eq!(at(r#"ferry_round{plan="p",task="t"}"#), 1.0);
    assert_eq!(
        at(r#"ferry_task_status{plan="p",task="t",status="completed"}"#),
        1.0
    );
    assert_eq!(at(r#"ferry_items{plan="p",task="t",state="done"}"#), 7.0);
    assert_eq!(at(r#"ferry_items{plan="p",task="t",state="failed"}"#), 0.0);
    assert_eq!(
        at(r#"ferry_stage_items{plan="p",task="t",stage="import",result="ok"}"#),
        7.0
    );
    assert!(at(r#"ferry_bytes{plan="p",task="t",state="done"}"#) > 0.0);
    assert!(!f.path("ferry.prom.partial").exists());
}
