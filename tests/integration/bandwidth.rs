//! `bandwidth`: one token bucket for the run, through which every byte put into staging
//! passes; the limit of the window open at the time (on the set clock) applies.

use std::time::Instant;

use crate::harness::Fixture;

/// Inside a window whose limit is 4 MiB/s (the plan's own limit is higher), staging
/// 12 MiB of incompressible data achieves at most 4 MiB/s (15% for the burst) over
/// the run, and not far less.
#[test]
fn the_window_s_limit_holds_within_fifteen_percent() {
    let mut f = Fixture::new();
    for i in 0..6 {
        let data = crate::harness::incompressible(2 << 20, 0x9E37_79B9_7F4A_7C15 + i);
        f.file(&format!("src/f{i}.bin"), &data);
    }
    f.plan("version: 1\nname: p\nworking_folder: state\nschedule: { window: \"00:00-24:00\", time_zone: Europe/Paris }\nbandwidth:\n  limit: 64MiB/s\n  schedule:\n    - { window: \"Mon-Fri 08:00-18:00\", limit: 4MiB/s }\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: posix, package: { max_size: 2MiB } }\n");
    // Tuesday 11:00 in Paris.
    f.env("FERRY_TEST_CLOCK", "2026-12-01T10:00:00Z");
    let started = Instant::now();
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let elapsed = started.elapsed().as_secs_f64();
    let staged: u64 = crate::harness::staged_objects(&f)
        .iter()
        .map(|(_, len)| len)
        .sum();
    let rate = staged as f64 / elapsed;
    let limit = 4.0 * 1024.0 * 1024.0;
    assert!(
        // Never faster than the limit (15% for the bucket's burst); slower only as far
        // as a busy machine makes it (the suite runs its tests side by side).
        rate <= 1.15 * limit && rate >= 0.5 * limit,
        "achieved {:.2} MiB/s over {elapsed:.2} s against a limit of 4 MiB/s",
        rate / 1024.0 / 1024.0
    );
}

/// Bytes read from staging pass the same bucket: an import-only run of 12 MiB staged
/// without a limit achieves at most the plan's 4 MiB/s (15% for the burst), and not
/// far less.
#[test]
fn reading_from_staging_holds_the_limit_too() {
    let f = Fixture::new();
    for i in 0..6 {
        let data = crate::harness::incompressible(2 << 20, 0x2545_F491_4F6C_DD1D + i);
        f.file(&format!("src/f{i}.bin"), &data);
    }
    let plan = |bandwidth: &str| {
        format!(
            "version: 1\nname: p\nworking_folder: state\n{bandwidth}tasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix, package: {{ max_size: 2MiB }} }}\n"
        )
    };
    f.plan(&plan(""));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let staged: u64 = crate::harness::staged_objects(&f)
        .iter()
        .map(|(_, len)| len)
        .sum();
    f.plan(&plan("bandwidth: { limit: 4MiB/s }\n"));
    let started = Instant::now();
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    let elapsed = started.elapsed().as_secs_f64();
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
    let rate = staged as f64 / elapsed;
    let limit = 4.0 * 1024.0 * 1024.0;
    assert!(
        // Never faster than the limit (15% for the bucket's burst); slower only as far
        // as a busy machine makes it (the suite runs its tests side by side).
        rate <= 1.15 * limit && rate >= 0.5 * limit,
        "achieved {:.2} MiB/s over {elapsed:.2} s against a limit of 4 MiB/s",
        rate / 1024.0 / 1024.0
    );
}

/// A rate that cannot be read is a plan error at its place.
#[test]
fn bad_rates_are_refused() {
    let f = Fixture::new();
    f.dir("src");
    f.plan("version: 1\nname: p\nworking_folder: state\nbandwidth:\n  limit: fast\n  schedule:\n    - { window: \"Mon 08:00-18:00\", limit: 10B/s }\ntasks:\n  - name: t\n    source: src\n    destination: dest\n");
    let refused = f.ferry(&["validate", "plan.yaml"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("not a rate"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("at least 1KiB/s"),
        "{}",
        refused.stderr
    );
}

/// In direct mode (nothing staged) the bytes copied pass the bucket: 12 MiB at a limit
/// of 4 MiB/s take about three seconds.
#[test]
fn direct_copies_hold_the_limit() {
    let f = Fixture::new();
    for i in 0..6 {
        let data = crate::harness::incompressible(2 << 20, 0x2545_F491_4F6C_DD1D + i);
        f.file(&format!("src/f{i}.bin"), &data);
    }
    f.plan("version: 1\nname: p\nworking_folder: state\nstaging: { kind: none }\nbandwidth: { limit: 4MiB/s }\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: posix }\n");
    let started = Instant::now();
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let elapsed = started.elapsed().as_secs_f64();
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
    let rate = (12u64 << 20) as f64 / elapsed;
    let limit = 4.0 * 1024.0 * 1024.0;
    assert!(
        rate <= 1.15 * limit && rate >= 0.5 * limit,
        "achieved {:.2} MiB/s over {elapsed:.2} s against a limit of 4 MiB/s",
        rate / 1024.0 / 1024.0
    );
}
