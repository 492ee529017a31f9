//! The checked-in schema is the one the code generates, and it is real JSON Schema.

use crate::harness::{Fixture, example_plans, have, repo};

#[test]
fn checked_in_schema_is_current() {
    let run = Fixture::new().ferry(&["schema"]);
    run.assert_code(0);
    let checked_in = std::fs::read_to_string(repo().join("schemas/plan.schema.json"))
        .expect("schemas/plan.schema.json");
    assert!(
        run.stdout == checked_in,
        "schemas/plan.schema.json is stale: run `just schema` and commit the result"
    );
}

#[test]
fn schema_is_valid_draft_2020_12() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/plan.schema.json")).expect("read"),
    )
    .expect("the schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).expect("the schema follows the 2020-12 meta-schema");
}

/// An independent validator (Python's check-jsonschema) accepts the example plans
/// against the checked-in schema and rejects a broken one.
#[test]
fn plans_validate_with_an_independent_validator() {
    if !have("check-jsonschema") {
        return;
    }
    let schema = repo().join("schemas/plan.schema.json");
    let plans = example_plans();
    assert!(plans.len() >= 2);
    let check = |files: &[std::path::PathBuf]| {
        std::process::Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(&schema)
            .args(files)
            .output()
            .expect("run check-jsonschema")
    };
    let out = check(&plans);
    assert!(
        out.status.success(),
        "check-jsonschema rejected the plans:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let f = Fixture::new();
    f.file(
        "bad.yaml",
        "version: 1\nname: x\ntasks:\n  - name: a\n    sourc: /x\n    destination: /y\n",
    );
    assert!(
        !check(&[f.path("bad.yaml")]).status.success(),
        "a broken plan passed check-jsonschema"
    );
}
