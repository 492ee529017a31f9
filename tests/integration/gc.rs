//! `ferry gc`: expired keys with their staged data, and old rounds' journals and item
//! lists; listed first, deleted with --yes; never the destination or the reports.

use std::fs;

use crate::harness::Fixture;

fn plan(keep: u32) -> String {
    format!(
        "version: 1\nname: p\nworking_folder: state\nstate: {{ keep_rounds: {keep} }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix }}\n"
    )
}

fn staged_objects(f: &Fixture) -> usize {
    crate::harness::staged_objects(f).len()
}

/// A key that expired is listed, then deleted with the data it opens.
#[test]
fn an_expired_key_goes_with_its_staged_data() {
    let f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.plan(&plan(10));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let key = f.path("state/p/t/keys/R1.key");
    let nothing = f.ferry(&["gc", "plan.yaml"]);
    nothing.assert_code(0);
    assert!(
        nothing.stderr.contains("nothing to delete"),
        "{}",
        nothing.stderr
    );
    assert!(staged_objects(&f) > 0);

    let mut stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&key).unwrap()).unwrap();
    stored["expires_at"] = serde_json::json!(1_700_000_000);
    fs::write(&key, serde_json::to_vec(&stored).unwrap()).unwrap();
    let listed = f.ferry(&["gc", "plan.yaml"]);
    listed.assert_code(0);
    assert!(
        listed.stderr.contains("would delete task t round 1: key"),
        "{}",
        listed.stderr
    );
    assert!(listed.stderr.contains("expired at"), "{}", listed.stderr);
    assert!(key.exists(), "listing deletes nothing");
    assert!(staged_objects(&f) > 0);

    let deleted = f.ferry(&["gc", "plan.yaml", "--yes"]);
    deleted.assert_code(0);
    assert!(
        deleted.stderr.contains("deleted task t round 1"),
        "{}",
        deleted.stderr
    );
    assert!(!key.exists());
    assert!(!f.path("state/staging").exists() || staged_objects(&f) == 0);
    assert_eq!(fs::read_to_string(f.path("src/a.txt")).unwrap(), "alpha");
}

/// Completed rounds beyond `state.keep_rounds` lose their journal and item list; the
/// reports, the last rounds and the destination stay, and the next round is incremental.
#[test]
fn old_rounds_go_beyond_keep_rounds() {
    let f = Fixture::new();
    f.plan(&plan(1));
    for round in 1..=3 {
        f.file(&format!("src/f{round}.txt"), format!("round {round}"));
        f.ferry(&["run", "plan.yaml"]).assert_code(0);
    }
    let listed = f.ferry(&["gc", "plan.yaml"]);
    listed.assert_code(0);
    assert!(
        listed
            .stderr
            .contains("task t round 1: journal and item list"),
        "{}",
        listed.stderr
    );
    assert!(
        listed
            .stderr
            .contains("task t round 2: journal and item list"),
        "{}",
        listed.stderr
    );
    assert!(!listed.stderr.contains("round 3"), "{}", listed.stderr);
    f.ferry(&["gc", "plan.yaml", "--yes"]).assert_code(0);
    assert!(!f.path("state/p/t/rounds/R1").exists());
    assert!(!f.path("state/p/t/rounds/R2").exists());
    assert!(f.path("state/p/t/rounds/R3").exists());
    assert!(f.path("state/p/t/reports/R1").exists(), "reports stay");
    for round in 1..=3 {
        assert!(f.path(&format!("dest/f{round}.txt")).exists());
    }
    let next = f.ferry(&["run", "plan.yaml"]);
    next.assert_code(0);
    // The index was kept: nothing is moved again.
    assert!(next.stderr.contains("imported 0 items"), "{}", next.stderr);
}

/// The clock 31 days from now: past the default 30-day retention.
pub fn a_month_later() -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(31 * 24)).to_string()
}

/// Staged data whose key file was lost is found by listing the staging: kept while it
/// is younger than `staging.retention`, then listed, and deleted with --yes. Containers
/// of another task's name, of another state folder (another plan, or this plan's state on
/// another machine, sharing the staging), or not named as ferry names them, are never
/// touched.
#[test]
fn staged_data_whose_key_is_gone_goes_after_the_retention() {
    let mut f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.plan(&plan(10));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let key = f.path("state/p/t/keys/R1.key");
    let stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&key).unwrap()).unwrap();
    let container = stored["container"].as_str().unwrap().to_string();
    assert!(f.path(&format!("state/staging/{container}")).is_dir());
    fs::remove_file(&key).unwrap();
    let others = [
        "other-r1-0123456789abcdef",
        "t-r2-not-ferrys",
        "t-r1-ffffff-0123456789abcdef",
        "t-r1-0123456789abcdef",
    ];
    for other in others {
        f.dir(&format!("state/staging/{other}"));
    }

    let young = f.ferry(&["gc", "plan.yaml"]);
    young.assert_code(0);
    assert!(
        young.stderr.contains("nothing to delete"),
        "{}",
        young.stderr
    );

    f.env("FERRY_TEST_CLOCK", &a_month_later());
    let listed = f.ferry(&["gc", "plan.yaml"]);
    listed.assert_code(0);
    assert!(
        listed.stderr.contains(&format!(
            "would delete task t round 1: staged data (container {container}) that no key opens"
        )),
        "{}",
        listed.stderr
    );
    assert_eq!(
        listed.stderr.matches("would delete").count(),
        1,
        "{}",
        listed.stderr
    );
    assert!(f.path(&format!("state/staging/{container}")).is_dir());
    let deleted = f.ferry(&["gc", "plan.yaml", "--yes"]);
    deleted.assert_code(0);
    assert!(!f.path(&format!("state/staging/{container}")).exists());
    for other in others {
        assert!(
            f.path(&format!("state/staging/{other}")).is_dir(),
            "{other}"
        );
    }
}
