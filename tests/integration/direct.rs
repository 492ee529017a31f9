//! Direct mode (`staging: {kind: none}`): files copied from the source straight to the
//! destination, with the staged mode's scan, rounds, journal, reports and verification,
//! and nothing staged.

use std::fs;
use std::os::unix::fs::MetadataExt as _;

use crate::harness::{Fixture, incompressible};
use crate::run::inventory;

fn direct_plan(f: &Fixture, extra: &str) {
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nstaging: {{ kind: none }}\ndefaults: {{ rules: posix, symlinks: copy-link, package: {{ max_size: 1MiB, max_files: 50 }} }}\ntasks:\n  - name: t\n    source: src\n    destination: dst\n{extra}"
    ));
}

/// The files a share has, odd ones included: names with spaces, `#%`, Unicode and a
/// newline; an empty file; a sparse file; a file larger than a package (in parts); a
/// symlink; two names of one file; extended attributes.
fn share(f: &Fixture) {
    for d in 0..4 {
        for i in 0..30 {
            let len = (i * 7919 + d * 131) % 9_000;
            let content: Vec<u8> = (0..len).map(|b| (b * 31 + i + d) as u8).collect();
            f.file(&format!("src/dept {d}/file {i} #%.txt"), content);
        }
    }
    f.file("src/empty", "");
    f.file("src/naïve café ☕.md", "unicode names");
    f.file("src/line\nbreak.txt", "a newline in the name");
    f.file("src/in parts.bin", incompressible(2_600_000, 0xD1EC7));
    let sparse = fs::File::create(f.path("src/sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"middle", 4 << 20).unwrap();
    std::os::unix::fs::symlink("dept 1/file 3 #%.txt", f.path("src/link")).unwrap();
    f.file("src/linked.txt", "one file, two names");
    fs::hard_link(
        f.path("src/linked.txt"),
        f.path("src/dept 0/linked too.txt"),
    )
    .unwrap();
    let _ = rustix::fs::setxattr(
        f.path("src/dept 2/file 5 #%.txt"),
        "user.origin",
        b"finance",
        rustix::fs::XattrFlags::empty(),
    );
}

/// Everything under the working folder that looks staged: a staging folder, or a
/// sealed package anywhere.
fn staged_anything(f: &Fixture) -> Vec<String> {
    let mut found: Vec<String> = crate::harness::staged_objects(f)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    if f.path("state/staging").exists() {
        found.push("state/staging".into());
    }
    found
}

#[test]
fn a_direct_migration_copies_straight_to_the_destination() {
    let f = Fixture::new();
    share(&f);
    direct_plan(&f, "");
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(0);
    assert_eq!(inventory(&f.path("src")), inventory(&f.path("dst")));
    assert!(staged_anything(&f).is_empty(), "{:?}", staged_anything(&f));
    // The sparse file keeps its holes; the two names stay one file; attributes travel.
    let sparse = fs::metadata(f.path("dst/sparse.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "{} blocks",
        sparse.blocks()
    );
    assert_eq!(
        fs::metadata(f.path("dst/linked.txt")).unwrap().ino(),
        fs::metadata(f.path("dst/dept 0/linked too.txt"))
            .unwrap()
            .ino()
    );
    if let Ok(value) = xattr_of(&f.path("src/dept 2/file 5 #%.txt")) {
        assert_eq!(
            xattr_of(&f.path("dst/dept 2/file 5 #%.txt")).unwrap(),
            value
        );
    }
    // The item report has every file, with the hash the index keeps.
    let report = fs::read_to_string(f.path("state/p/t/reports/R1/ItemReport_R1.csv")).unwrap();
    assert!(report.contains("in parts.bin"), "{report}");

    // Content, both sides: the same.
    f.ferry(&["verify", "plan.yaml"]).assert_code(0);
    f.ferry(&["verify", "plan.yaml", "--against", "index"])
        .assert_code(0);

    // A round with nothing new copies nothing; one changed file is copied alone.
    f.run_finds_nothing();
    fs::write(f.path("src/dept 3/file 4 #%.txt"), "changed at the source").unwrap();
    fs::write(f.path("src/in parts.bin"), incompressible(2_700_000, 7)).unwrap();
    let changed = f.ferry(&["run", "plan.yaml"]);
    changed.assert_code(0);
    assert!(
        changed.stderr.contains("imported 2 items"),
        "{}",
        changed.stderr
    );
    assert_eq!(inventory(&f.path("src")), inventory(&f.path("dst")));
    assert!(staged_anything(&f).is_empty());
}

fn xattr_of(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut value = vec![0u8; 64];
    let n = rustix::fs::getxattr(path, "user.origin", &mut value)?;
    value.truncate(n);
    Ok(value)
}

/// A destination file someone changed since the last round is kept, as in a staged
/// run (`conflicts: keep-destination-changes`), and reported.
#[test]
fn direct_mode_keeps_a_destination_change() {
    let f = Fixture::new();
    f.file("src/a.txt", "first").file("src/b.txt", "second");
    direct_plan(&f, "");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(f.path("dst/a.txt"), "edited at the destination").unwrap();
    fs::write(f.path("src/a.txt"), "changed at the source").unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(f.path("dst/a.txt")).unwrap(),
        "edited at the destination"
    );
}

/// Direct mode has no stages to split and nothing for a ticket to carry.
#[test]
fn direct_mode_refuses_split_stages_and_tickets() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    direct_plan(&f, "");
    for args in [
        &["run", "plan.yaml", "--stages", "scan,package,upload"][..],
        &["run", "plan.yaml", "--stages", "import"][..],
        &[
            "run",
            "plan.yaml",
            "--stages",
            "scan,package,upload",
            "--ticket",
            "t.json",
        ][..],
    ] {
        let run = f.ferry(args);
        run.assert_code(2);
        assert!(run.stderr.contains("stages nothing"), "{}", run.stderr);
    }
    assert!(!f.path("dst").exists());
    assert!(!f.path("state").exists());
}

/// Between two file systems (tmpfs to the test's disk), where the kernel refuses
/// `copy_file_range`, files are read and written instead: the same result.
#[test]
fn a_direct_copy_between_two_file_systems() {
    let shm = std::path::Path::new("/dev/shm");
    let f = Fixture::new();
    let other = shm.is_dir()
        && fs::metadata(shm).map(|m| m.dev()).ok() != fs::metadata(f.root()).map(|m| m.dev()).ok();
    if !other {
        eprintln!("skipped: /dev/shm is missing or on the test's own file system");
        return;
    }
    let source = tempfile::Builder::new()
        .prefix("ferry-direct-")
        .tempdir_in(shm)
        .unwrap();
    fs::write(source.path().join("a.bin"), incompressible(3_000_000, 11)).unwrap();
    fs::write(source.path().join("b.txt"), "small").unwrap();
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nstaging: {{ kind: none }}\ndefaults: {{ rules: posix, package: {{ max_size: 1MiB }} }}\ntasks:\n  - name: t\n    source: {}\n    destination: dst\n",
        source.path().display()
    ));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_eq!(inventory(source.path()), inventory(&f.path("dst")));
    f.ferry(&["verify", "plan.yaml"]).assert_code(0);
}

/// A round begun staged is not finished in direct mode (what it staged would never be
/// imported), nor the other way round: the run refuses, and `--restart` sets the round
/// aside.
#[test]
fn a_round_keeps_the_staging_it_began_with() {
    let f = Fixture::new();
    f.file("src/a.txt", "a")
        .file("src/big.bin", incompressible(2_500_000, 3));
    let staged = "version: 1\nname: p\nworking_folder: state\ndefaults: { rules: posix, package: { max_size: 1MiB } }\ntasks:\n  - name: t\n    source: src\n    destination: dst\n";
    f.plan(staged);
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    direct_plan(&f, "");
    let refused = f.ferry(&["run", "plan.yaml"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("--restart"), "{}", refused.stderr);
    f.ferry(&["run", "plan.yaml", "--restart"]).assert_code(0);
    assert_eq!(inventory(&f.path("src")), inventory(&f.path("dst")));
    // Nothing the staged run put into staging is left.
    assert!(crate::harness::staged_objects(&f).is_empty());
}

/// A file that changed between the scan and its read is recorded as it was read (what
/// the destination holds), staged or direct: its next change at the source is copied,
/// not taken for someone else's change at the destination. The scan's checkpoint makes
/// the gap: a run stopped after the scan, and the file changed before the next.
#[test]
fn a_file_changed_after_the_scan_is_indexed_as_read() {
    for staging in ["", "staging: { kind: none }\n"] {
        let mut f = Fixture::new();
        f.file("src/a.txt", "one").file("src/b.txt", "two");
        // Two names of one file: the second is a link to the first, made at the
        // destination, and recorded as the file was read too.
        f.file("src/z/l1", "linked");
        fs::hard_link(f.path("src/z/l1"), f.path("src/z/l2")).unwrap();
        f.plan(&format!(
            "version: 1\nname: p\nworking_folder: state\n{staging}defaults: {{ rules: posix }}\ntasks:\n  - name: t\n    source: src\n    destination: dst\n"
        ));
        f.env("FERRY_FAILPOINTS", "key-write=crash");
        assert_ne!(f.ferry(&["run", "plan.yaml"]).code, 0);
        f.env("FERRY_FAILPOINTS", "");
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(f.path("src/a.txt"), "one, and more since the scan").unwrap();
        fs::write(f.path("src/z/l1"), "linked, and more since the scan").unwrap();
        f.ferry(&["run", "plan.yaml"]).assert_code(0);
        assert_eq!(inventory(&f.path("src")), inventory(&f.path("dst")));
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(f.path("src/a.txt"), "a third version").unwrap();
        fs::write(f.path("src/z/l1"), "linked, a third version").unwrap();
        let next = f.ferry(&["run", "plan.yaml"]);
        next.assert_code(0);
        assert_eq!(inventory(&f.path("src")), inventory(&f.path("dst")));
        assert_eq!(
            fs::metadata(f.path("dst/z/l1")).unwrap().ino(),
            fs::metadata(f.path("dst/z/l2")).unwrap().ino(),
            "{staging}"
        );
        assert_eq!(
            fs::read_to_string(f.path("dst/a.txt")).unwrap(),
            "a third version",
            "{staging}"
        );
    }
}

/// A file whose time is after 2262 (beyond an i64 of nanoseconds) is recorded with its
/// exact time, staged or direct: the next round finds it unchanged.
#[test]
fn a_file_from_the_far_future_is_unchanged_next_round() {
    for staging in ["", "staging: { kind: none }\n"] {
        let f = Fixture::new();
        f.file("src/future.txt", "from 2300");
        let file = fs::File::options()
            .write(true)
            .open(f.path("src/future.txt"))
            .unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(10_413_792_000))
            .unwrap();
        drop(file);
        f.plan(&format!(
            "version: 1\nname: p\nworking_folder: state\n{staging}defaults: {{ rules: posix }}\ntasks:\n  - name: t\n    source: src\n    destination: dst\n"
        ));
        f.ferry(&["run", "plan.yaml"]).assert_code(0);
        let again = f.ferry(&["run", "plan.yaml"]);
        again.assert_code(0);
        assert!(
            again.stderr.contains("imported 0 items")
                && again.stderr.contains("0 already up to date"),
            "{staging}{}",
            again.stderr
        );
    }
}
