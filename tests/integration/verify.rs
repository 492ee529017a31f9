//! `ferry verify`: the destination against the source, or against the index.

use std::fs;

use crate::harness::Fixture;
use crate::run::plan;

fn report(f: &Fixture) -> Vec<(String, String)> {
    let text = fs::read_to_string(f.path("state/p/t/reports/R1/VerifyReport_R1.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().trim_start_matches('\u{feff}'),
        "Path,Result,Source hash,Destination hash"
    );
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[0].to_string(), cells[1].to_string())
        })
        .collect()
}

/// A migrated tree verifies as the same; a flipped byte, a missing file and an extra
/// file are each found, against the source and against the index alike, and make exit 1.
#[test]
fn verify_finds_a_flipped_byte_a_missing_file_and_an_extra_one() {
    let f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.file("src/deep/b.txt", "bravo");
    f.file("src/deep/c.bin", vec![7u8; 300_000]);
    f.file("src/name with spaces.txt", "spaces");
    f.plan(&plan("{ rules: posix }"));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);

    let clean = f.ferry(&["verify", "plan.yaml"]);
    clean.assert_code(0);
    assert!(
        clean
            .stderr
            .contains("4 same, 0 differ, 0 missing, 0 extra"),
        "{}",
        clean.stderr
    );
    assert!(report(&f).iter().all(|(_, result)| result == "same"));

    let mut c = fs::read(f.path("dest/deep/c.bin")).unwrap();
    c[150_000] ^= 1;
    fs::write(f.path("dest/deep/c.bin"), c).unwrap();
    fs::remove_file(f.path("dest/a.txt")).unwrap();
    f.file("dest/stray.txt", "not from the source");

    for against in ["source", "index"] {
        let found = f.ferry(&["verify", "plan.yaml", "--against", against]);
        found.assert_code(1);
        assert!(
            found
                .stderr
                .contains("2 same, 1 differ, 1 missing, 1 extra, 0 unreadable"),
            "{against}: {}",
            found.stderr
        );
        let rows = report(&f);
        let result = |path: &str| {
            rows.iter()
                .find(|(p, _)| p == path)
                .map(|(_, r)| r.as_str())
                .unwrap_or("absent")
        };
        assert_eq!(result("deep/c.bin"), "differs", "{against}");
        assert_eq!(result("a.txt"), "missing", "{against}");
        assert_eq!(result("stray.txt"), "extra", "{against}");
        assert_eq!(result("deep/b.txt"), "same", "{against}");
    }
    // The source was never touched, nor the destination by verify.
    assert_eq!(fs::read_to_string(f.path("src/a.txt")).unwrap(), "alpha");
    assert!(!f.path("dest/a.txt").exists());
}

/// A sample is a share of the files, the same ones each time; a bad fraction and a
/// task that never ran are usage errors.
#[test]
fn a_sample_and_bad_requests() {
    let f = Fixture::new();
    for i in 0..200 {
        f.file(&format!("src/f{i:03}.txt"), format!("file {i}"));
    }
    f.plan(&plan("{ rules: posix }"));
    let early = f.ferry(&["verify", "plan.yaml"]);
    early.assert_code(2);
    assert!(early.stderr.contains("has not run yet"), "{}", early.stderr);
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let sampled = f.ferry(&["verify", "plan.yaml", "--sample", "0.25"]);
    sampled.assert_code(0);
    let first = report(&f);
    assert!((20..80).contains(&first.len()), "{}", first.len());
    f.ferry(&["verify", "plan.yaml", "--sample", "0.25"])
        .assert_code(0);
    assert_eq!(report(&f), first);
    f.ferry(&["verify", "plan.yaml", "--sample", "0"])
        .assert_code(2);
    f.ferry(&["verify", "plan.yaml", "--sample", "1.5"])
        .assert_code(2);
}
