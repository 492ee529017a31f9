//! `ferry validate`: good plans pass, and every kind of broken plan is reported at its
//! line and column, with exit 2 and nothing touched.

use insta::assert_snapshot;

use crate::harness::Fixture;

/// A valid plan; tests break one thing in it.
const GOOD: &str = "\
version: 1
name: finance
working_folder: state
tasks:
  - name: current
    source: shares/current
    destination: site/current
  - name: archive
    source: shares/archive
    destination: site/archive
    depends_on: [current]
";

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.dir("shares/current").dir("shares/archive");
    f
}

/// Validates `yaml` and checks the failure: exit 2, nothing created or changed.
fn broken(yaml: &str) -> String {
    broken_in(&fixture(), yaml)
}

fn broken_in(f: &Fixture, yaml: &str) -> String {
    f.plan(yaml);
    let before = f.listing();
    let run = f.ferry(&["validate", "plan.yaml"]);
    run.assert_code(2);
    assert_eq!(f.listing(), before, "validate must not create anything");
    run.snapshot()
}

#[test]
fn good_plan_passes() {
    let f = fixture();
    f.plan(GOOD);
    let run = f.ferry(&["validate", "plan.yaml"]);
    run.assert_code(0);
    assert_snapshot!(run.snapshot(), @r"
    exit: 0
    --- stderr
    plan.yaml: ok (2 tasks, 2 stages)
    ");
}

#[test]
fn syntax_error() {
    assert_snapshot!(broken(&GOOD.replace("[current]", "[current")));
}

#[test]
fn tab_indentation() {
    assert_snapshot!(broken(
        &GOOD.replace("  - name: archive", "\t- name: archive")
    ));
}

#[test]
fn unknown_key_with_suggestion() {
    assert_snapshot!(broken(
        &GOOD.replace("    source: shares/archive", "    sourc: shares/archive")
    ));
}

#[test]
fn wrong_types() {
    let yaml = GOOD.replace(
        "tasks:\n",
        "defaults:\n  package: { max_files: many, max_size: 64 }\n  preserve: { mtime: yes }\ntasks:\n",
    );
    assert_snapshot!(broken(&yaml));
}

#[test]
fn duplicate_key() {
    assert_snapshot!(broken(
        &GOOD.replace("name: finance\n", "name: finance\nname: payroll\n")
    ));
}

#[test]
fn duplicate_task_name() {
    assert_snapshot!(broken(
        &GOOD
            .replace("name: archive", "name: current")
            .replace("[current]", "[]")
    ));
}

#[test]
fn missing_dependency_with_suggestion() {
    assert_snapshot!(broken(&GOOD.replace("[current]", "[curent]")));
}

#[test]
fn three_task_cycle_is_reported_as_the_whole_loop() {
    let yaml = "\
version: 1
name: loop
working_folder: state
tasks:
  - name: a
    source: shares/a
    destination: site/a
    depends_on: [c]
  - name: b
    source: shares/b
    destination: site/b
    depends_on: [a]
  - name: c
    source: shares/c
    destination: site/c
    depends_on: [b]
";
    assert_snapshot!(broken(yaml));
}

#[test]
fn destination_inside_source() {
    assert_snapshot!(broken(&GOOD.replace(
        "destination: site/current",
        "destination: shares/current/migrated"
    )));
}

#[test]
fn source_inside_destination_through_a_symlink() {
    let f = fixture();
    f.dir("site");
    std::os::unix::fs::symlink(f.path("site"), f.path("link-to-site")).expect("symlink");
    f.dir("site/current/inner");
    let yaml = GOOD.replace(
        "source: shares/current",
        "source: link-to-site/current/inner",
    );
    assert_snapshot!(broken_in(&f, &yaml));
}

#[test]
fn destination_is_the_source() {
    assert_snapshot!(broken(&GOOD.replace(
        "destination: site/current",
        "destination: ./shares/../shares/current"
    )));
}

#[test]
fn staging_and_working_folder_inside_a_source() {
    let yaml = GOOD.replace(
        "working_folder: state",
        "working_folder: shares/archive/.ferry\nstaging:\n  path: shares/current/staging",
    );
    assert_snapshot!(broken(&yaml));
}

#[test]
fn destination_inside_another_tasks_source_unless_it_waits() {
    let yaml = GOOD.replace(
        "destination: site/current",
        "destination: shares/archive/from-current",
    );
    // `archive` depends on `current`, so it reads only after `current` has written.
    let f = fixture();
    f.plan(&yaml);
    f.ferry(&["validate", "plan.yaml"]).assert_code(0);
    assert_snapshot!(broken(&yaml.replace("[current]", "[]")));
}

#[test]
fn unset_variable() {
    assert_snapshot!(broken(
        &GOOD.replace("source: shares/current", "source: ${SHARE_ROOT}/current")
    ));
}

#[test]
fn variables_expand_from_the_environment() {
    let mut f = fixture();
    f.env("SHARE_ROOT", &f.path("shares").display().to_string());
    f.plan(&GOOD.replace("source: shares/current", "source: ${SHARE_ROOT}/current"));
    let run = f.ferry(&["graph", "plan.yaml", "--format", "json"]);
    run.assert_code(0);
    assert!(
        run.stdout()
            .contains("\"source\": \"[TEMP]/shares/current\""),
        "{}",
        run.stdout()
    );
}

#[test]
fn literal_secret_is_refused_and_never_echoed() {
    let sas = "https://acct.blob.core.windows.net/stage?sv=2022-11-02&sp=rw&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D";
    let out = broken(&GOOD.replace(
        "working_folder: state",
        &format!("working_folder: \"{sas}\""),
    ));
    assert!(!out.contains("c2VjcmV0"), "the secret leaked:\n{out}");
    assert_snapshot!(out);
}

#[test]
fn secret_in_an_unknown_key_is_masked_too() {
    let out = broken(&GOOD.replace(
        "name: finance\n",
        "name: finance\naccount_key: \"AccountKey=Zm9vYmFyYmF6cXV4;\"\n",
    ));
    assert!(!out.contains("Zm9v"), "the secret leaked:\n{out}");
    assert_snapshot!(out);
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = "\
version: 1
name: many problems
tasks:
  - name: a
    source: shares/current
    destination: site/a
    depends_on: [b, zzz]
    settings:
      verify: everything
      filters: { hidden: yes, max_size: huge, modified_after: 2023-02-30 }
  - name: a
    destination: site/b
";
    assert_snapshot!(broken(yaml));
}

#[test]
fn values_the_parsers_reject_after_the_schema() {
    let yaml = GOOD.replace(
        "tasks:\n",
        "defaults:\n  filters:\n    include: [\"src/[a-\"]\n    min_size: 2GB\n    max_size: 1GB\n    modified_after: 2023-02-30\n  package: { max_size: 10GiB }\nstaging:\n  retention: 90d\ntasks:\n",
    );
    assert_snapshot!(broken(&yaml));
}

#[test]
fn enum_typo_gets_a_suggestion() {
    let yaml = GOOD.replace("tasks:\n", "defaults:\n  conflicts: overwrit\ntasks:\n");
    assert_snapshot!(broken(&yaml));
}

#[test]
fn missing_required_keys() {
    assert_snapshot!(broken(
        "version: 1\ntasks:\n  - name: a\n    source: shares/current\n"
    ));
}

#[test]
fn unsupported_version() {
    assert_snapshot!(broken(&GOOD.replace("version: 1", "version: 2")));
}

#[test]
fn empty_plan() {
    assert_snapshot!(broken(""));
}

#[test]
fn two_documents_in_one_file() {
    assert_snapshot!(broken(&format!("{GOOD}---\n{GOOD}")));
}

#[test]
fn plan_that_is_not_utf8() {
    let f = fixture();
    let mut bytes = GOOD.replace("name: finance", "name: fin\u{1}").into_bytes();
    let at = bytes.iter().position(|&b| b == 1).expect("marker");
    bytes[at] = 0xff;
    f.file("plan.yaml", &bytes);
    let run = f.ferry(&["validate", "plan.yaml"]);
    run.assert_code(2);
    assert_snapshot!(run.snapshot());
}

#[test]
fn missing_plan_file() {
    let f = fixture();
    let run = f.ferry(&["validate", "nowhere.yaml"]);
    run.assert_code(2);
    assert_snapshot!(run.snapshot());
}

#[test]
fn several_plans_report_each_and_fail_if_any_fails() {
    let f = fixture();
    f.file("good.yaml", GOOD)
        .file("bad.yaml", GOOD.replace("version: 1", "version: one"));
    let run = f.ferry(&["validate", "good.yaml", "bad.yaml"]);
    run.assert_code(2);
    assert_snapshot!(run.snapshot());
}

#[test]
fn settings_merge_key_by_key_over_defaults() {
    let f = fixture();
    let yaml = GOOD.replace(
        "tasks:\n",
        "defaults:\n  filters: { hidden: skip, exclude: [\"**/*.tmp\"], modified_after: 2015-01-01 }\n  verify: all\ntasks:\n",
    ) + "    settings:\n      filters: { modified_after: null, extensions_skip: [EXE] }\n";
    f.plan(&yaml);
    let run = f.ferry(&["graph", "plan.yaml", "--format", "json"]);
    run.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let current = &json["tasks"][0]["settings"]["filters"];
    let archive = &json["tasks"][1]["settings"]["filters"];
    assert_eq!(current["modified_after"], "2015-01-01T00:00:00Z");
    assert_eq!(archive["modified_after"], serde_json::Value::Null);
    assert_eq!(archive["hidden"], "skip");
    assert_eq!(archive["exclude"], serde_json::json!(["**/*.tmp"]));
    assert_eq!(archive["extensions_skip"], serde_json::json!(["exe"]));
    assert_eq!(json["tasks"][1]["settings"]["verify"], "all");
}

#[test]
fn resources_out_of_range() {
    let yaml = GOOD.replace(
        "tasks:\n",
        "resources:\n  memory: 16MiB\n  reads: 64\ntasks:\n",
    );
    assert_snapshot!(broken(&yaml));
}

/// `kind: none` stages nothing: the settings of staged data are mistakes there.
#[test]
fn staging_settings_without_staging() {
    assert_snapshot!(broken(&GOOD.replace(
        "working_folder: state\n",
        "working_folder: state\nstaging:\n  kind: none\n  path: /srv/staging\n  key_ttl: 1d\nresources: { reads: 8 }\ndefaults:\n  package: { compression_level: 9 }\n",
    )));
}
