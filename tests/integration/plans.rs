//! The example plans in `plans/` validate, and each points editors at the schema.

use crate::harness::{Fixture, example_plans, repo};

#[test]
fn every_example_plan_validates() {
    let plans = example_plans();
    let names: Vec<String> = plans.iter().map(|p| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("demo.yaml")));
    assert!(names.iter().any(|n| n.ends_with("example-full.yaml")));
    let mut args = vec!["validate"];
    args.extend(names.iter().map(String::as_str));
    Fixture::new().ferry(&args).assert_code(0);
}

#[test]
fn every_example_plan_names_the_schema_first() {
    for plan in example_plans() {
        let text = std::fs::read_to_string(&plan).expect("read plan");
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=../schemas/plan.schema.json"),
            "{}",
            plan.display()
        );
    }
}

/// example-full.yaml is the reference: it sets every key the schema knows.
#[test]
fn example_full_uses_every_key() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/plan.schema.json")).expect("schema"),
    )
    .expect("json");
    let text = std::fs::read_to_string(repo().join("plans/example-full.yaml")).expect("plan");
    let mut missing = Vec::new();
    collect_keys(&schema, &schema, &mut Vec::new(), &mut |path| {
        let key = path.last().expect("a key");
        if !text.contains(&format!("{key}:")) {
            missing.push(path.join("."));
        }
    });
    assert!(
        missing.is_empty(),
        "example-full.yaml does not use: {missing:?}"
    );
}

fn collect_keys(
    root: &serde_json::Value,
    node: &serde_json::Value,
    path: &mut Vec<String>,
    visit: &mut dyn FnMut(&[String]),
) {
    let node = match node.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => root
            .pointer(r.trim_start_matches('#'))
            .expect("ref resolves"),
        None => node,
    };
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (key, sub) in props {
            path.push(key.clone());
            visit(path);
            collect_keys(root, sub, path, visit);
            path.pop();
        }
    }
    if let Some(items) = node.get("items") {
        collect_keys(root, items, path, visit);
    }
}

#[test]
fn demo_stays_inside_the_checkout() {
    let run = Fixture::new().ferry(&[
        "graph",
        &repo().join("plans/demo.yaml").display().to_string(),
        "--format",
        "json",
    ]);
    run.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let target = repo().join("target");
    for task in json["tasks"].as_array().expect("tasks") {
        let destination = std::path::PathBuf::from(task["destination"].as_str().expect("path"));
        assert!(
            destination.starts_with(&target),
            "{}",
            destination.display()
        );
    }
}

/// The demo share holds a few dozen files, some of which SharePoint's rules flag.
#[test]
fn demo_share_has_files_that_sharepoint_flags() {
    let share = repo().join("plans/demo-share");
    let mut files = 0;
    let mut names = Vec::new();
    let mut stack = vec![share];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read").flatten() {
            names.push(entry.file_name().to_string_lossy().into_owned());
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
            }
        }
    }
    assert!((24..=100).contains(&files), "{files} files");
    for flagged in [
        "desktop.ini",
        "_vti_cnf",
        "forms",
        "~drafts",
        ".lock",
        "empty.txt",
    ] {
        assert!(names.iter().any(|n| n == flagged), "{flagged} missing");
    }
    assert!(names.iter().any(|n| n.starts_with("~$")));
    assert!(names.iter().any(|n| n.ends_with(".lnk")));
    assert!(names.iter().any(|n| n.ends_with(".url")));
}

/// The demo share breaks SharePoint's rules on purpose: its scan shows them.
#[test]
fn demo_plan_scans() {
    let f = Fixture::new();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .expect("cp");
        assert!(status.success());
    };
    f.dir("plans");
    copy(&repo().join("plans/demo.yaml"), &f.path("plans/demo.yaml"));
    copy(
        &repo().join("plans/demo-share"),
        &f.path("plans/demo-share"),
    );
    let run = f.ferry(&["scan", "plans/demo.yaml"]);
    insta::assert_snapshot!(run.snapshot());
    assert!(
        f.path("target/ferry-demo/state/demo/archive/reports/R1/ScanReport_R1.csv")
            .exists()
    );
    // The scan wrote nothing to the destination.
    assert!(!f.path("target/ferry-demo/destination").exists());
}
