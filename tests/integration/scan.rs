//! `ferry scan` (and `ferry run` of scan-only plans): access checks, every rule, filters,
//! the readiness reports and the exit codes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::harness::{Fixture, have, redact_host};

const REPORTS: &str = "state/t";

fn plan(tasks: &str) -> String {
    format!("version: 1\nname: t\nworking_folder: state\ntasks:\n{tasks}")
}

/// A report of a task, temporary paths and host name redacted.
fn report(f: &Fixture, task: &str, file: &str) -> String {
    let path = f.path(&format!("{REPORTS}/{task}/reports/R1/{file}"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root = f.root().canonicalize().unwrap();
    redact_host(
        &text
            .replace(&root.display().to_string(), "[TEMP]")
            .replace(&f.root().display().to_string(), "[TEMP]"),
    )
}

/// (code, severity) of every row of a scan report, parsed by a CSV reader.
fn codes(f: &Fixture, task: &str) -> BTreeMap<String, String> {
    let path = f.path(&format!("{REPORTS}/{task}/reports/R1/ScanReport_R1.csv"));
    let mut reader = csv::Reader::from_path(path).unwrap();
    let mut out = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        assert_eq!(row.len(), 5, "{row:?}");
        let previous = out.insert(row[2].to_string(), row[3].to_string());
        assert!(
            previous.is_none() || previous.as_deref() == Some(&row[3]),
            "{} has two severities",
            &row[2]
        );
    }
    out
}

fn mtime(f: &Fixture, relative: &str, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(f.path(relative))
        .unwrap()
        .set_modified(time)
        .unwrap();
}

fn raw_name(f: &Fixture, folder: &str, name: &[u8]) {
    fs::write(f.path(folder).join(OsStr::from_bytes(name)), b"x").unwrap();
}

/// A source with at least one instance of every rule Linux can represent (all but
/// `name-too-long`: Linux itself refuses names over 255 bytes; `permission-denied`,
/// which needs an account without root's rights: see below; `unreadable`, which needs
/// a failing disk; `birth-time-unknown`, which needs a filesystem without birth times).
fn every_rule(f: &Fixture) {
    let s = "share";
    f.file(&format!("{s}/ok/report.docx"), "fine");
    for name in [
        "a:b?.txt",
        "pipe|name.txt",
        "back\\slash.txt",
        "quote\".txt",
    ] {
        f.file(&format!("{s}/chars/{name}"), "x");
    }
    f.file(&format!("{s}/spaces/ lead.txt"), "x");
    f.file(&format!("{s}/spaces/trail.txt "), "x");
    f.file(&format!("{s}/dots/end."), "x");
    for name in ["CON", "nul.txt", "COM1.log", "lpt9", ".lock", "desktop.ini"] {
        f.file(&format!("{s}/reserved/{name}"), "x");
    }
    f.file(&format!("{s}/site/_vti_cnf/page.htm"), "x");
    f.file(&format!("{s}/office/~$budget.xlsx"), "x");
    f.file(&format!("{s}/forms/request.txt"), "x");
    f.file(&format!("{s}/deep/forms/fine.txt"), "x");
    f.file(&format!("{s}/~drafts/draft.txt"), "x");
    f.file(&format!("{s}/office/~notes.txt"), "a tilde file is fine");
    let long = "l".repeat(130);
    f.file(&format!("{s}/{long}/{long}/{long}/too-long.txt"), "x");
    f.file(&format!("{s}/{long}/{long}/short.txt"), "x");
    f.file(&format!("{s}/empty/zero.txt"), "");
    f.file(&format!("{s}/links/intranet.url"), "[InternetShortcut]");
    f.file(&format!("{s}/links/app.LNK"), "L");
    f.dir(&format!("{s}/names"));
    raw_name(f, &format!("{s}/names"), b"caf\xe9-latin1.txt");
    raw_name(f, &format!("{s}/names"), b"new\nline.txt");
    raw_name(f, &format!("{s}/names"), b"esc\x1b[31m.txt");
    f.file(&format!("{s}/case/Report.docx"), "1");
    f.file(&format!("{s}/case/report.docx"), "2");
    f.file(&format!("{s}/case/REPORT.DOCX"), "3");
    f.file(&format!("{s}/unicode/caf\u{e9}.txt"), "nfc");
    f.file(&format!("{s}/unicode/cafe\u{301}.txt"), "nfd");
    f.file(&format!("{s}/hard/one.txt"), "linked");
    fs::hard_link(
        f.path(&format!("{s}/hard/one.txt")),
        f.path(&format!("{s}/hard/two.txt")),
    )
    .unwrap();
    // Sparse: 250 GB and 1 byte long, a few blocks on disk.
    f.dir(&format!("{s}/big"));
    let huge = fs::File::create(f.path(&format!("{s}/big/huge.vhd"))).unwrap();
    huge.set_len(250_000_000_001).unwrap();
    f.file(&format!("{s}/times/old.txt"), "x");
    mtime(
        f,
        &format!("{s}/times/old.txt"),
        SystemTime::UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400),
    );
    f.file(&format!("{s}/times/future.txt"), "x");
    mtime(
        f,
        &format!("{s}/times/future.txt"),
        // 2100-01-01: far from any clock the test runs under.
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800),
    );
    f.dir(&format!("{s}/special"));
    f.fifo(&format!("{s}/special/pipe"));
    std::os::unix::net::UnixListener::bind(f.path(&format!("{s}/special/socket"))).unwrap();
    std::os::unix::fs::symlink("../ok/report.docx", f.path(&format!("{s}/links/to-report")))
        .unwrap();
}

#[test]
fn every_rule_is_reported_with_its_severity() {
    let f = Fixture::new();
    every_rule(&f);
    // Holes are kept by default, and then nothing is said of them.
    f.plan(&plan(
        "  - name: share\n    source: share\n    destination: destination\n    settings: { preserve: { sparse: false } }\n",
    ));
    let before = fs::read_dir(f.path("share")).unwrap().count();
    let run = f.ferry(&["scan", "plan.yaml"]);
    run.assert_code(1);
    let expected: BTreeMap<String, String> = [
        ("case-collision", "error"),
        ("control-character", "error"),
        ("file-too-large", "error"),
        ("forms-at-root", "error"),
        ("hard-link", "warning"),
        ("invalid-character", "error"),
        ("leading-trailing-space", "error"),
        ("non-utf8-name", "error"),
        ("normalization-twin", "error"),
        ("odd-timestamp", "warning"),
        ("office-lock-name", "error"),
        ("parent-not-migrated", "error"),
        ("path-too-long", "error"),
        ("reserved-name", "error"),
        ("shortcut-file", "error"),
        ("sparse-file", "warning"),
        ("special-file", "error"),
        ("symlink-skipped", "info"),
        ("tilde-folder", "error"),
        ("trailing-dot", "error"),
        ("vti-name", "error"),
        ("zero-byte-file", "error"),
    ]
    .into_iter()
    .map(|(c, s)| (c.to_string(), s.to_string()))
    .collect();
    assert_eq!(codes(&f, "share"), expected);
    insta::assert_snapshot!(
        "scan_every_rule_report",
        report(&f, "share", "ScanReport_R1.csv")
    );
    insta::assert_snapshot!(
        "scan_every_rule_summary",
        report(&f, "share", "ScanSummary_R1.csv")
    );
    insta::assert_snapshot!("scan_every_rule_stderr", run.snapshot());
    // Nothing was written to the source or the destination.
    assert_eq!(fs::read_dir(f.path("share")).unwrap().count(), before);
    assert!(!f.path("destination").exists());
}

#[test]
fn symlinks_follow_inside_the_source_only() {
    let f = Fixture::new();
    f.file("outside/secret.txt", "not part of the share");
    f.file("src/docs/a.txt", "a");
    f.file("src/real/b.txt", "b");
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, f.path(at)).unwrap();
    link("real", "src/followed");
    link("docs/a.txt", "src/file-link");
    link("..", "src/docs/up");
    link("missing.txt", "src/dangling");
    link("../outside/secret.txt", "src/escape");
    let task = |name: &str, policy: &str| {
        format!(
            "  - name: {name}\n    source: src\n    destination: dest-{name}\n    settings: {{ symlinks: {policy} }}\n"
        )
    };
    f.plan(&plan(
        &(task("follow", "follow") + &task("copy", "copy-link")),
    ));
    let run = f.ferry(&["scan", "plan.yaml"]);
    run.assert_code(1);
    insta::assert_snapshot!(
        "scan_symlinks_follow",
        report(&f, "follow", "ScanReport_R1.csv")
    );
    insta::assert_snapshot!(
        "scan_symlinks_copy",
        report(&f, "copy", "ScanReport_R1.csv")
    );
    // Followed: b.txt under `followed/` and the linked file count as items to migrate.
    let summary = report(&f, "follow", "ScanSummary_R1.csv");
    insta::assert_snapshot!("scan_symlinks_follow_summary", summary);
}

#[test]
fn filters_are_anded_and_counted_apart_from_issues() {
    let f = Fixture::new();
    f.file("src/keep.docx", "kept, 20 bytes long.");
    f.file("src/notes.tmp", "excluded by glob....");
    f.file("src/build/out.o", "a folder excluded...");
    f.file("src/sub/Thumbs.db", "excluded anywhere...");
    f.file("src/.hidden", "hidden..............");
    f.file("src/.git/config", "in a hidden folder..");
    f.file("src/setup.EXE", "extension, any case.");
    f.file("src/tiny.txt", "small");
    f.file("src/large.txt", "x".repeat(5000));
    f.file("src/old.txt", "modified long ago...");
    mtime(
        &f,
        "src/old.txt",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
    );
    f.file("src/only.pdf", "not in the includes.");
    f.file("src/docs/in.docx", "included, deeper....");
    f.plan(&plan(
        "  - name: filtered\n    source: src\n    destination: dest\n    settings:\n      filters:\n        include: ['**/*.docx', '**/*.txt', '**/*.o', '**/*.tmp', '**/*.db', '**/*.EXE', '.hidden', '.git/**']\n        exclude: ['*.tmp', 'build', '**/Thumbs.db']\n        hidden: skip\n        extensions_skip: [exe]\n        min_size: 10B\n        max_size: 1KiB\n        modified_after: 2005-01-01\n",
    ));
    let run = f.ferry(&["scan", "plan.yaml"]);
    run.assert_code(0);
    insta::assert_snapshot!("scan_filters_stderr", run.snapshot());
    insta::assert_snapshot!(
        "scan_filters_summary",
        report(&f, "filtered", "ScanSummary_R1.csv")
    );
    // Filtered items are not findings.
    assert_eq!(codes(&f, "filtered"), BTreeMap::new());
}

#[test]
fn rule_sets_and_name_policies_change_severities() {
    let f = Fixture::new();
    f.file("src/a:b.txt", "x");
    f.file("src/CON.txt", "x");
    f.file("src/Case.txt", "1");
    f.file("src/case.txt", "2");
    f.file("src/empty", "");
    f.dir("src");
    raw_name(&f, "src", b"caf\xe9");
    let task = |name: &str, settings: &str| {
        format!(
            "  - name: {name}\n    source: src\n    destination: dest-{name}\n    settings: {settings}\n"
        )
    };
    f.plan(&plan(
        &(task("posix", "{ rules: posix }")
            + &task("windows", "{ rules: windows }")
            + &task(
                "lenient",
                "{ invalid_names: replace, case_collisions: rename }",
            )),
    ));
    f.ferry(&["scan", "plan.yaml", "--task", "posix"])
        .assert_code(0);
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        codes(&f, "posix"),
        map(&[("case-collision", "warning"), ("non-utf8-name", "warning")])
    );
    f.ferry(&["scan", "plan.yaml", "--task", "windows"])
        .assert_code(1);
    assert_eq!(
        codes(&f, "windows"),
        map(&[
            ("case-collision", "error"),
            ("invalid-character", "error"),
            ("non-utf8-name", "error"),
            ("reserved-name", "error"),
        ])
    );
    f.ferry(&["scan", "plan.yaml", "--task", "lenient"])
        .assert_code(1);
    assert_eq!(
        codes(&f, "lenient"),
        map(&[
            ("case-collision", "warning"),
            ("invalid-character", "warning"),
            ("non-utf8-name", "warning"),
            ("reserved-name", "warning"),
            ("zero-byte-file", "error"),
        ])
    );
    insta::assert_snapshot!(
        "scan_lenient_report",
        report(&f, "lenient", "ScanReport_R1.csv")
    );
}

#[test]
fn hostile_names_cannot_forge_rows_or_formulas() {
    let f = Fixture::new();
    f.file("src/=HYPERLINK(\"http:__x\",\"y\").txt", "x");
    f.file("src/+cmd|' calc'!A0", "x");
    f.file("src/-2+3", "");
    f.file("src/@SUM(1,2)", "");
    f.file("src/line\nbreak,\"quoted\".txt", "");
    f.plan(&plan(
        "  - name: hostile\n    source: src\n    destination: dest\n",
    ));
    f.ferry(&["scan", "plan.yaml"]).assert_code(1);
    let path = f.path(&format!("{REPORTS}/hostile/reports/R1/ScanReport_R1.csv"));
    let mut rows = 0;
    for row in csv::Reader::from_path(&path).unwrap().records() {
        let row = row.unwrap();
        assert_eq!(row.len(), 5);
        for cell in &row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell could run as a formula: {cell:?}"
            );
            assert!(!cell.contains('\n'), "a raw newline in a cell: {cell:?}");
        }
        rows += 1;
    }
    assert!(rows >= 5, "{rows} rows");
    if have("python3") {
        let check = "import csv,sys\nrows=list(csv.reader(open(sys.argv[1],newline='')))\nassert rows[0]==['Path','Kind','Code','Severity','Message'],rows[0]\nassert all(len(r)==5 for r in rows),rows\nassert not any(c[:1] in '=+-@' and c for r in rows for c in r)\nprint(len(rows)-1)";
        let out = std::process::Command::new("python3")
            .args(["-c", check])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    insta::assert_snapshot!(
        "scan_hostile_report",
        report(&f, "hostile", "ScanReport_R1.csv")
    );
}

#[test]
fn unreadable_folders_and_files_are_findings_and_their_contents_unknown() {
    let f = Fixture::new();
    f.file("src/open/a.txt", "a");
    f.file("src/secret/hidden-inside.txt", "never listed");
    f.file("src/locked.txt", "no read bit");
    let running_as_root = current_uid() == 0;
    if running_as_root && !have("setpriv") {
        return;
    }
    // The account that scans must reach the fixture, the plan and the working folder.
    for path in [f.root().to_path_buf(), f.path("src"), f.path("src/open")] {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    f.dir("state").dir("dest");
    for path in [f.path("state"), f.path("dest")] {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
    }
    for path in ["src/open/a.txt", "plan.yaml"] {
        let _ = fs::set_permissions(f.path(path), fs::Permissions::from_mode(0o644));
    }
    f.plan(&plan(
        "  - name: perms\n    source: src\n    destination: dest\n",
    ));
    fs::set_permissions(f.path("plan.yaml"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(f.path("src/secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(f.path("src/locked.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    if running_as_root {
        eprintln!("running as root: scanning as `nobody` (uid 65534) with setpriv");
    }
    let run = f.run_as(running_as_root.then_some(65534), &["scan", "plan.yaml"]);
    run.assert_code(1);
    let text = report(&f, "perms", "ScanReport_R1.csv");
    insta::assert_snapshot!("scan_unreadable_report", text);
    assert!(
        !text.contains("hidden-inside"),
        "contents of an unlistable folder"
    );
    let summary = report(&f, "perms", "ScanSummary_R1.csv");
    // src/open, src/open/a.txt migrate; secret and locked.txt do not.
    insta::assert_snapshot!("scan_unreadable_summary", summary);
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

#[test]
fn an_unusable_root_is_fatal_and_says_what_to_fix() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.file("blocker", "a file where a folder should be");
    f.plan(&plan(
        "  - name: missing\n    source: nowhere\n    destination: dest\n",
    ));
    insta::assert_snapshot!(
        "scan_missing_source",
        f.ferry(&["scan", "plan.yaml"]).snapshot()
    );
    f.plan(&plan(
        "  - name: blocked\n    source: src\n    destination: blocker/dest\n",
    ));
    insta::assert_snapshot!(
        "scan_destination_under_a_file",
        f.ferry(&["scan", "plan.yaml"]).snapshot()
    );
    f.plan(&plan(
        "  - name: proc\n    source: src\n    destination: /proc/ferry-cannot-write-here/dest\n",
    ));
    let run = f.ferry(&["scan", "plan.yaml"]);
    run.assert_code(5);
    assert!(run.stderr.contains("is not writable"), "{}", run.stderr);
    // No report was started for a task whose roots fail.
    assert!(!f.path(REPORTS).exists());
    assert!(!Path::new("/proc/ferry-cannot-write-here").exists());
}

#[test]
fn run_only_scans_scan_only_tasks() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.plan(&plan(
        "  - name: only\n    source: src\n    destination: dest\n    settings: { mode: scan-only }\n",
    ));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(0);
    assert!(
        f.path(&format!("{REPORTS}/only/reports/R1/ScanSummary_R1.csv"))
            .exists()
    );
    f.plan(&plan(
        "  - name: move\n    source: src\n    destination: dest\n",
    ));
    insta::assert_snapshot!(
        "run_migrate_not_yet",
        f.ferry(&["run", "plan.yaml"]).snapshot()
    );
    insta::assert_snapshot!(
        "scan_unknown_task",
        f.ferry(&["scan", "plan.yaml", "--task", "mvoe"]).snapshot()
    );
}
