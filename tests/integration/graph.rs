//! `ferry graph`: tasks in dependency order, as text, Graphviz and JSON.

use insta::assert_snapshot;

use crate::harness::{Fixture, have};

const DIAMOND: &str = "\
version: 1
name: diamond
working_folder: state
tasks:
  - name: report
    source: shares/report
    destination: site/report
    depends_on: [left, right]
  - name: left
    source: shares/left
    destination: site/left
    depends_on: [base]
  - name: right
    source: shares/right
    destination: site/right
    depends_on: [base]
    settings: { mode: scan-only, conflicts: overwrite }
  - name: base
    source: shares/base
    destination: site/base
  - name: lone
    source: shares/lone
    destination: site/lone
";

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.plan(DIAMOND);
    f
}

#[test]
fn text_lists_tasks_by_stage() {
    let run = fixture().ferry(&["graph", "plan.yaml"]);
    run.assert_code(0);
    assert_snapshot!(run.snapshot());
}

#[test]
fn dot_output() {
    let run = fixture().ferry(&["graph", "plan.yaml", "--format", "dot"]);
    run.assert_code(0);
    assert_snapshot!(run.snapshot());
}

#[test]
fn json_output() {
    let run = fixture().ferry(&["graph", "plan.yaml", "--format", "json"]);
    run.assert_code(0);
    assert_snapshot!(run.snapshot());
}

#[test]
fn dot_output_renders_with_graphviz() {
    if !have("dot") {
        return;
    }
    let f = fixture();
    let run = f.ferry(&["graph", "plan.yaml", "--format", "dot"]);
    run.assert_code(0);
    f.file("graph.dot", &run.stdout);
    let out = std::process::Command::new("dot")
        .args(["-Tsvg", "graph.dot"])
        .current_dir(f.root())
        .output()
        .expect("run dot");
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    for task in ["report", "left", "right", "base", "lone"] {
        assert!(
            svg.contains(&format!("<title>{task}</title>")),
            "{task} missing from the SVG"
        );
    }
    assert!(
        svg.contains("<title>base&#45;&gt;left</title>"),
        "edge missing:\n{svg}"
    );
}

#[test]
fn invalid_plan_is_not_graphed() {
    let f = Fixture::new();
    f.plan(&DIAMOND.replace("[base]\n  - name: right", "[report]\n  - name: right"));
    let run = f.ferry(&["graph", "plan.yaml"]);
    run.assert_code(2);
    assert!(run.stdout.is_empty());
    assert_snapshot!(run.snapshot());
}
