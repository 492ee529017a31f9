//! The command line itself: help, exit codes, and what `run` says until it exists.

use insta::assert_snapshot;

use crate::harness::{Fixture, repo};

#[test]
fn every_command_has_help_with_an_example() {
    let f = Fixture::new();
    for command in ["validate", "schema", "graph", "run"] {
        let run = f.ferry(&[command, "--help"]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("Example"),
            "`ferry {command} --help` has no example:\n{}",
            run.stdout
        );
    }
    let run = f.ferry(&["--help"]);
    run.assert_code(0);
    assert_snapshot!(run.snapshot());
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::new();
    f.ferry(&[]).assert_code(2);
    f.ferry(&["frobnicate"]).assert_code(2);
    f.ferry(&["graph", "plan.yaml", "--format", "png"])
        .assert_code(2);
    f.ferry(&["validate"]).assert_code(2);
}

#[test]
fn a_plan_error_stops_run_before_anything_is_touched() {
    let f = Fixture::new();
    f.dir("share").file("share/a.txt", "a");
    f.plan("version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: share\n    destination: site\n    settings: { verify: sometimes }\n");
    let before = f.listing();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(2);
    assert_eq!(f.listing(), before);
    assert_snapshot!(run.snapshot());
}

/// The README's exit-code table is the one in src/exit.rs.
#[test]
fn readme_lists_the_exit_codes() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    for exit in ferry::Exit::ALL {
        let row = format!("| {} | {} |", exit.code(), exit.meaning());
        assert!(readme.contains(&row), "README.md lacks the row `{row}`");
    }
}

/// The README opens with the two commands that work on a fresh machine.
#[test]
fn readme_opens_with_the_demo_and_test_commands() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let head: String = readme.lines().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("cargo run --release -- run plans/demo.yaml"),
        "{head}"
    );
    assert!(head.contains("cargo test"), "{head}");
}
