//! The findings of the reliability review of d6b8773, each through the real binary.
//! Every test names its finding; each failed on that commit.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use crate::harness::Fixture;
use crate::run::plan;

fn posix(extra: &str) -> String {
    plan(&format!("{{ rules: posix{extra} }}"))
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Finding 1: a setuid file (or setgid folder) of the source must not become a
/// setuid-root one at the destination; the scan warns about each.
#[test]
fn setuid_and_setgid_bits_are_cleared_unless_the_plan_keeps_them_with_the_owner() {
    let f = Fixture::new();
    f.file("src/home/tool", "#!/bin/sh\nid\n");
    fs::set_permissions(f.path("src/home/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    f.dir("src/shared");
    fs::set_permissions(f.path("src/shared"), fs::Permissions::from_mode(0o2775)).unwrap();
    f.file("src/shared/plain.txt", "plain");
    f.plan(&posix(""));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(0);
    assert!(run.stderr.contains("setuid-cleared"), "{}", run.stderr);
    assert_eq!(mode(&f.path("dest/home/tool")), 0o755);
    assert_eq!(mode(&f.path("dest/shared")), 0o775);
    let report = fs::read_to_string(f.path("state/p/t/reports/R1/ScanReport_R1.csv")).unwrap();
    assert_eq!(report.matches("setuid-cleared").count(), 2, "{report}");

    // Kept only when asked, and only with the owner.
    let g = Fixture::new();
    g.file("src/tool", "x");
    fs::set_permissions(g.path("src/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    g.plan(&posix(", preserve: { setuid: true }"));
    let refused = g.ferry(&["validate", "plan.yaml"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("settings.preserve.setuid"),
        "{}",
        refused.stderr
    );
    if is_root() {
        g.plan(&posix(", preserve: { setuid: true, owner: true }"));
        g.ferry(&["run", "plan.yaml"]).assert_code(0);
        assert_eq!(mode(&g.path("dest/tool")), 0o4755);
    }
}

/// Finding 2a: two tasks of one plan writing the same (or a nested) destination at
/// once are refused by `validate`, unless one depends on the other.
#[test]
fn tasks_with_the_same_or_nested_destinations_must_depend_on_each_other() {
    let f = Fixture::new();
    f.dir("a").dir("b");
    let two = |second_dest: &str, depends: &str| {
        format!(
            "version: 1\nname: p\nworking_folder: state\ntasks:\n  - {{name: a, source: a, destination: dst}}\n  - {{name: b, source: b, destination: {second_dest}{depends}}}\n"
        )
    };
    for dest in ["dst", "dst/sub"] {
        f.plan(&two(dest, ""));
        let run = f.ferry(&["validate", "plan.yaml"]);
        run.assert_code(2);
        assert!(
            run.stderr.contains("tasks[1].destination") && run.stderr.contains("task `a`"),
            "{}",
            run.stderr
        );
        f.plan(&two(dest, ", depends_on: [a]"));
        f.ferry(&["validate", "plan.yaml"]).assert_code(0);
    }
}

/// Finding 3: items below a folder whose absolute path is longer than the system opens
/// were left out silently. Now each is reported, the task is not ready, exit 1.
#[test]
fn items_deeper_than_path_max_are_reported_never_dropped() {
    let f = Fixture::new();
    f.file("src/top.txt", "short");
    // Built relative to each folder: the whole path cannot be used.
    let mut dir = fs::File::open(f.path("src")).unwrap();
    let name = "d".repeat(250);
    for _ in 0..20 {
        rustix::fs::mkdirat(&dir, name.as_str(), rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        let next = rustix::fs::openat(
            &dir,
            name.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        dir = fs::File::from(next);
    }
    rustix::fs::openat(
        &dir,
        "leaf.txt",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    f.plan(&posix(""));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("source-path-too-long") && run.stderr.contains("Not ready"),
        "{}",
        run.stderr
    );
    let report = fs::read_to_string(f.path("state/p/t/reports/R1/ScanReport_R1.csv")).unwrap();
    assert!(report.contains("source-path-too-long"), "{report}");
}

/// Finding 8: a symlink at the destination with the source file's size and time is not
/// "already at destination"; it is a conflict, kept and reported.
#[test]
fn a_symlink_with_the_same_size_and_time_is_not_the_file() {
    let f = Fixture::new();
    f.file("outside/file1.txt", "B".repeat(26));
    f.file("src/report.txt", "A".repeat(26));
    f.dir("dest");
    std::os::unix::fs::symlink(f.path("outside/file1.txt"), f.path("dest/report.txt")).unwrap();
    let when = rustix::fs::Timespec {
        tv_sec: 1_714_903_200,
        tv_nsec: 123_456_789,
    };
    for (path, follow) in [
        (f.path("src/report.txt"), true),
        (f.path("dest/report.txt"), false),
    ] {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: when,
                last_modification: when,
            },
            if follow {
                rustix::fs::AtFlags::empty()
            } else {
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW
            },
        )
        .unwrap();
    }
    f.plan(&posix(""));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("destination-changed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("0 already up to date"),
        "{}",
        run.stderr
    );
    let plan = f.ferry(&["plan", "plan.yaml"]);
    assert!(plan.stdout.contains("conflict"), "{}", plan.stdout);
    // With `overwrite`, the link is replaced by the file; the outside file is untouched.
    f.plan(&posix(", conflicts: overwrite"));
    f.ferry(&["run", "plan.yaml", "--restart"]).assert_code(0);
    assert!(
        fs::symlink_metadata(f.path("dest/report.txt"))
            .unwrap()
            .is_file()
    );
    assert_eq!(
        fs::read_to_string(f.path("dest/report.txt")).unwrap(),
        "A".repeat(26)
    );
    assert_eq!(
        fs::read_to_string(f.path("outside/file1.txt")).unwrap(),
        "B".repeat(26)
    );
}

/// A file large enough that a run lasts while the test looks at the process.
fn slow_tree(f: &Fixture, megabytes: usize) {
    let data: Vec<u8> = (0..megabytes * 1_000_000)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    f.file("src/big.bin", &data);
}

/// Finding 13: a core dump of a run would hold the container key: the process allows
/// none.
#[test]
fn a_run_dumps_no_core() {
    let f = Fixture::new();
    slow_tree(&f, 200);
    f.plan(&posix(", package: { max_size: 1MiB }"));
    let mut child = f.spawn(&["run", "--workers", "1", "plan.yaml"]);
    let limits = format!("/proc/{}/limits", child.id());
    let mut seen = None;
    // Generous, for a loaded machine: the loop ends as soon as the key is seen.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
        if f.path("state/p/t/keys/R1.key").exists()
            && let Ok(text) = fs::read_to_string(&limits)
        {
            seen = Some(text);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.expect("the run's limits while its key existed");
    let core = text
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

/// Every file and folder under `root`, with its mode.
fn modes(root: &Path, out: &mut Vec<(std::path::PathBuf, u32, bool)>) {
    for entry in fs::read_dir(root).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        out.push((entry.path(), meta.mode() & 0o777, meta.is_dir()));
        if meta.is_dir() {
            modes(&entry.path(), out);
        }
    }
}

/// Finding 14: the state names every source path: its files are 0600 and its folders
/// 0700, whatever the umask; the destination gets the usual modes.
#[test]
fn state_is_private_and_the_destination_is_not() {
    let f = Fixture::new();
    f.file("src/a/b.txt", "b");
    f.file("src/c.txt", "c");
    fs::set_permissions(f.path("src/c.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    f.plan(&posix(", package: { max_files: 1 }"));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let mut state = Vec::new();
    modes(&f.path("state"), &mut state);
    assert!(state.len() > 10, "{state:?}");
    // Staging containers are 0300 (no listing); nothing is open to others.
    for (path, mode, _) in &state {
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
    assert_eq!(mode(&f.path("state/p/t/session.json")), 0o600);
    assert_eq!(mode(&f.path("state/p/t/rounds/R1")), 0o700);
    assert_eq!(mode(&f.path("dest")), 0o755);
    assert_eq!(mode(&f.path("dest/c.txt")), 0o644);
}

/// Builds the fault shim `tests/faults/NAME.c` into the fixture; `None` (skipped
/// locally, a failure in CI) without a C compiler.
fn fault_shim(f: &Fixture, name: &str) -> Option<std::path::PathBuf> {
    if !crate::harness::have("cc") {
        return None;
    }
    let out = f.path(&format!("{name}.so"));
    let source = crate::harness::repo().join(format!("tests/faults/{name}.c"));
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .status()
        .unwrap();
    assert!(built.success(), "the shim {name} builds");
    Some(out)
}

fn many_small_files(f: &Fixture, n: usize) {
    for i in 0..n {
        let data: Vec<u8> = (0..3000u32).map(|b| (b as usize * 31 + i) as u8).collect();
        f.file(&format!("src/f{i:04}.bin"), &data);
    }
}

/// Finding 5: a short write on a journal append (a disk filling up) left half a record
/// in the middle of the journal, and every later run refused it until `--restart`.
#[test]
fn a_failed_journal_append_leaves_no_damage_and_the_next_run_resumes() {
    let mut f = Fixture::new();
    let Some(shim) = fault_shim(&f, "shortwrite") else {
        return;
    };
    many_small_files(&f, 400);
    f.plan(&posix(", package: { max_files: 2 }"));
    f.env("LD_PRELOAD", &shim.display().to_string())
        .env("FERRY_SHORT_WRITE_AT", "20");
    let first = f.ferry(&["run", "--workers", "4", "plan.yaml"]);
    assert_eq!(first.code, 5, "{}", first.snapshot());
    assert!(first.stderr.contains("journal"), "{}", first.stderr);
    f.env("FERRY_SHORT_WRITE_AT", "0");
    let second = f.ferry(&["run", "plan.yaml"]);
    second.assert_code(0);
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// Finding 7: a damaged checkpoint (scan, item list, index, session) is refused with
/// exit 5 naming the file and the way out, never read as "not there".
#[test]
fn damaged_checkpoints_are_refused_not_ignored() {
    let f = Fixture::new();
    many_small_files(&f, 30);
    f.plan(&posix(", package: { max_files: 5 }"));
    let stage = ["run", "plan.yaml", "--stages", "scan,package,upload"];
    f.ferry(&stage).assert_code(0);
    let round = f.path("state/p/t/rounds/R1");
    let keep = |name: &str| fs::read(round.join(name)).unwrap();
    let (scan, items) = (keep("scan.json"), keep("items"));

    fs::write(round.join("scan.json"), b"").unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("scan.json is damaged") && run.stderr.contains("--restart"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read(round.join("scan.json")).unwrap(),
        b"",
        "kept as it was"
    );
    fs::write(round.join("scan.json"), &scan).unwrap();

    let mut bad = items.clone();
    let n = bad.len();
    bad[n / 2] ^= 1;
    fs::write(round.join("items"), &bad).unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(run.stderr.contains("item list"), "{}", run.stderr);
    fs::write(round.join("items"), &items).unwrap();

    let session = f.path("state/p/t/session.json");
    let kept = fs::read(&session).unwrap();
    fs::write(&session, b"").unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(run.stderr.contains("session.json"), "{}", run.stderr);
    fs::write(&session, &kept).unwrap();

    // Intact again: the round completes, exactly.
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));

    let index = f.path("state/p/t/index");
    let mut bytes = fs::read(&index).unwrap();
    bytes[12] ^= 1;
    fs::write(&index, &bytes).unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(run.stderr.contains("index"), "{}", run.stderr);
}

/// Finding 9: a folder of the destination replaced by a symlink refuses the items below
/// it with their own code and reason, and only those: the rest of the package goes in.
#[test]
fn destination_refusals_name_the_path_and_refuse_only_their_items() {
    let f = Fixture::new();
    f.file("src/top.txt", "top");
    f.file("src/sub/one.txt", "one");
    f.dir("outside").dir("dest");
    std::os::unix::fs::symlink(f.path("outside"), f.path("dest/sub")).unwrap();
    f.plan(&posix(""));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("destination-refused") && run.stderr.contains("sub/one.txt"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert!(!run.stderr.contains("integrity"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(f.path("dest/top.txt")).unwrap(), "top");
    assert!(fs::read_dir(f.path("outside")).unwrap().next().is_none());
}

/// Finding 11: a file that keeps changing while it is read is one failure row, not one
/// per try; `failed` never exceeds the items (the report check runs after every run).
#[test]
fn a_file_that_keeps_changing_is_one_failure() {
    let mut f = Fixture::new();
    // A shim appends a byte to busy.bin after every read of it: a writer racing the reads
    // would be missed whenever its writes fall in the same timestamp tick.
    let Some(shim) = fault_shim(&f, "changing") else {
        return;
    };
    let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    f.file("src/busy.bin", &big);
    f.file("src/quiet.txt", "quiet");
    // Three reads in all, 200 ms before the second and 400 ms before the third.
    f.plan(&posix(", retries: { attempts: 3, backoff: 200ms }"));
    f.env("LD_PRELOAD", &shim.display().to_string())
        .env("FERRY_CHANGING", "/busy.bin");
    let started = std::time::Instant::now();
    let run = f.ferry(&["run", "plan.yaml"]);
    let took = started.elapsed();
    run.assert_code(1);
    // `retries.backoff` is waited (a lower bound only: never a speed measurement).
    assert!(took >= Duration::from_millis(600), "{took:?}");
    let failures =
        fs::read_to_string(f.path("state/p/t/reports/R1/ItemFailureReport_R1.csv")).unwrap();
    let rows = failures.lines().filter(|l| l.contains("busy.bin")).count();
    assert_eq!(rows, 1, "{failures}");
    assert!(run.stderr.contains("1 failed"), "{}", run.stderr);
    assert_eq!(fs::read(f.path("dest/quiet.txt")).unwrap(), b"quiet");
    assert!(!f.path("dest/busy.bin").exists());
}

/// Finding 12: staged objects nothing consumed (here one refused as tampered) go with
/// the round's key, rather than stay in staging where nobody could open them again.
#[test]
fn a_completed_round_leaves_nothing_in_staging() {
    let f = Fixture::new();
    for i in 0..6 {
        f.file(&format!("src/f{i}.txt"), format!("file {i}"));
    }
    f.plan(&posix(", package: { max_files: 2 }"));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let staging = f.path("state/staging");
    let container = fs::read_dir(&staging)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::set_permissions(&container, fs::Permissions::from_mode(0o700)).unwrap();
    let object = fs::read_dir(&container)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&object).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    fs::write(&object, bytes).unwrap();
    fs::set_permissions(&container, fs::Permissions::from_mode(0o300)).unwrap();
    let run = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    run.assert_code(1);
    assert!(run.stderr.contains("integrity-failed"), "{}", run.stderr);
    assert!(!container.exists(), "the container was left behind");
    assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
}

/// A tmpfs of `megabytes` mounted at `path` for the test's life (root only).
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(path: &Path, megabytes: u32) -> Option<Mounted> {
        fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to mount a tmpfs"
            );
            eprintln!("skipped: cannot mount a tmpfs here (not root)");
            return None;
        }
        Some(Mounted(path.to_path_buf()))
    }

    fn resize(&self, megabytes: u32) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={megabytes}m")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn two_megabyte_files(f: &Fixture, n: usize) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        // Incompressible: the sizes in staging are the sizes of the files.
        let data: Vec<u8> = (0..2_000_000u32)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        f.file(&format!("src/big-{i:02}.bin"), &data);
    }
    for i in 0..50 {
        f.file(&format!("src/small/{i:02}.txt"), format!("small {i}"));
    }
}

/// Finding 10: a full destination stops the run (exit 5, saying what to free) and the
/// round stays open; once there is space, the next run completes it, exactly.
#[test]
fn a_full_destination_stops_the_run_and_the_next_run_completes_the_round() {
    let f = Fixture::new();
    let Some(dest) = Mounted::tmpfs(&f.path("dest"), 20) else {
        return;
    };
    two_megabyte_files(&f, 25);
    f.plan(&posix(", package: { max_files: 4 }"));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("is full") && run.stderr.contains("free space"),
        "{}",
        run.stderr
    );
    let session: serde_json::Value =
        serde_json::from_slice(&fs::read(f.path("state/p/t/session.json")).unwrap()).unwrap();
    assert_eq!(session["status"], "failed");
    assert_eq!(session["round"], 1);
    dest.resize(100);
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
    let session: serde_json::Value =
        serde_json::from_slice(&fs::read(f.path("state/p/t/session.json")).unwrap()).unwrap();
    assert_eq!(session["round"], 1, "the same round completed");
}

/// Finding 10: a full staging folder stops the run too.
#[test]
fn a_full_staging_folder_stops_the_run() {
    let f = Fixture::new();
    let Some(staging) = Mounted::tmpfs(&f.path("staging"), 3) else {
        return;
    };
    two_megabyte_files(&f, 6);
    f.plan(
        "version: 1\nname: p\nworking_folder: state\nstaging: { kind: local, path: staging }\ndefaults: { rules: posix, package: { max_files: 4 } }\ntasks:\n  - { name: t, source: src, destination: dest }\n",
    );
    let run = f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"]);
    run.assert_code(5);
    assert!(run.stderr.contains("staging folder"), "{}", run.stderr);
    staging.resize(50);
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// The work folder of a file in parts at `dest/folder`, and its assembly's size.
fn assembly(folder: &Path) -> Option<(String, u64)> {
    for entry in fs::read_dir(folder).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".ferry-work-")
            && let Ok(meta) = fs::metadata(entry.path().join("data"))
        {
            return Some((name, meta.len()));
        }
    }
    None
}

/// Waits until the assembly under `folder` holds at least `bytes`; its work folder.
fn wait_for_assembly(folder: &Path, bytes: u64, child: &mut std::process::Child) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((work, size)) = assembly(folder)
            && size >= bytes
        {
            return work;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its file in parts reached {bytes} bytes"
        );
        assert!(std::time::Instant::now() < deadline, "no assembly grew");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn random_file(f: &Fixture, relative: &str, bytes: usize, seed: u64) {
    f.file(relative, crate::harness::incompressible(bytes, seed));
}

fn kill_9(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Findings 4 and 6: `kill -9` during the import of a file in parts keeps the parts that
/// are in; the next run takes the same assembly up where it stopped, in a run that
/// stages and imports, and in an import-only run, whose staged parts are deleted only
/// once they are durable and journalled.
#[test]
fn kill_9_inside_a_file_in_parts_keeps_its_progress() {
    for import_only in [false, true] {
        let f = Fixture::new();
        random_file(&f, "src/big.bin", 40_000_000, 11);
        f.file("src/small.txt", "small");
        f.plan(&posix(", package: { max_size: 1MiB }"));
        let import: &[&str] = if import_only {
            f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
                .assert_code(0);
            &["run", "--workers", "1", "plan.yaml", "--stages", "import"]
        } else {
            &["run", "--workers", "1", "plan.yaml"]
        };
        let mut work = None;
        for (kill, at) in [8_000_000u64, 16_000_000, 24_000_000]
            .into_iter()
            .enumerate()
        {
            let mut child = f.spawn(import);
            let now = wait_for_assembly(&f.path("dest"), at, &mut child);
            kill_9(&mut child);
            if let Some(before) = &work {
                assert_eq!(before, &now, "kill {kill}: the assembly was started over");
            }
            work = Some(now);
        }
        let last: Vec<&str> = import
            .iter()
            .copied()
            .filter(|a| *a != "--workers" && *a != "1")
            .collect();
        f.ferry(&last).assert_code(0);
        crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
        assert!(assembly(&f.path("dest")).is_none());
        assert!(crate::run::ferry_temp_files(&f.path("dest")).is_empty());
        assert_eq!(fs::read_dir(f.path("state/staging")).unwrap().count(), 0);
    }
}

/// Finding 2b: the file a file in parts is assembled in cannot be predicted, planted
/// or reached by another account, even in a folder anyone may write.
#[test]
fn a_planted_part_file_takes_nothing_over() {
    if !is_root() {
        eprintln!("skipped: needs root to act as another account");
        return;
    }
    let f = Fixture::new();
    random_file(&f, "src/shared/payroll.bin", 12_000_000, 5);
    fs::set_permissions(
        f.path("src/shared/payroll.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    f.dir("dest/shared");
    fs::set_permissions(f.path("dest"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(f.path("dest/shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(f.root(), fs::Permissions::from_mode(0o755)).unwrap();
    // The name d6b8773 used, planted by another account.
    let planted = format!(
        ".ferry-part-{}",
        &blake3::hash(b"shared/payroll.bin").to_hex()[..24]
    );
    let ok = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "touch"])
        .arg(f.path("dest/shared").join(&planted))
        .status()
        .unwrap();
    assert!(ok.success());
    f.plan(&posix(", package: { max_size: 4MiB }"));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let copy = fs::metadata(f.path("dest/shared/payroll.bin")).unwrap();
    assert_eq!((copy.uid(), copy.mode() & 0o7777), (0, 0o600));
    assert_eq!(
        fs::read(f.path("dest/shared/payroll.bin")).unwrap(),
        fs::read(f.path("src/shared/payroll.bin")).unwrap()
    );
    assert_eq!(
        fs::metadata(f.path("dest/shared").join(&planted))
            .unwrap()
            .len(),
        0
    );
}

/// Finding 2a: two plans (their own working folders) writing one destination at once:
/// the second is refused with exit 4, never interleaved with the first.
#[test]
fn a_second_plan_writing_the_same_destination_is_refused() {
    let f = Fixture::new();
    random_file(&f, "a/big.bin", 40_000_000, 3);
    random_file(&f, "b/big.bin", 1_000_000, 4);
    let plan = |name: &str, source: &str| {
        format!(
            "version: 1\nname: {name}\nworking_folder: state-{name}\ndefaults: {{ rules: posix, package: {{ max_size: 1MiB }} }}\ntasks:\n  - {{ name: t, source: {source}, destination: dst }}\n"
        )
    };
    f.file("a.yaml", plan("a", "a"))
        .file("b.yaml", plan("b", "b"));
    let mut first = f.spawn(&["run", "--workers", "1", "a.yaml"]);
    wait_for_assembly(&f.path("dst"), 1, &mut first);
    let second = f.ferry(&["run", "b.yaml"]);
    second.assert_code(4);
    assert!(
        second.stderr.contains("another ferry run is writing into"),
        "{}",
        second.stderr
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(
        fs::read(f.path("dst/big.bin")).unwrap(),
        fs::read(f.path("a/big.bin")).unwrap()
    );
}

/// Found as a new user: folders this run created in an empty destination were reported
/// "Skipped / Already at destination"; they are migrated.
#[test]
fn folders_a_run_creates_are_migrated_not_already_there() {
    let f = Fixture::new();
    for i in 0..30 {
        f.file(
            &format!("src/d{}/e{}/f{i}.txt", i % 4, i % 3),
            format!("{i}"),
        );
    }
    f.plan(&posix(", package: { max_files: 3 }"));
    f.ferry(&["run", "--workers", "4", "plan.yaml"])
        .assert_code(0);
    let report = fs::read_to_string(f.path("state/p/t/reports/R1/ItemReport_R1.csv")).unwrap();
    assert!(!report.contains("Already at destination"), "{report}");
}

/// Found as a new user: the demo exits 1 because the scan found items that will not
/// migrate, but the summaries said "completed" and "No failures". They show what was not
/// migrated and why, by code, with counts, examples and the scan report, and agree with
/// the exit code.
#[test]
fn the_summaries_show_what_the_scan_keeps_back_and_agree_with_the_exit_code() {
    let f = Fixture::new();
    f.file("src/fine.txt", "fine");
    f.file("src/CON", "reserved");
    f.file("src/empty.txt", "");
    f.plan(&plan("{}"));
    f.ferry(&["run", "plan.yaml"]).assert_code(1);
    let md = fs::read_to_string(f.path("state/p/Summary.md")).unwrap();
    assert!(
        md.contains("Status: **completed, some items not migrated**"),
        "{md}"
    );
    assert!(
        md.contains("| t | `reserved-name` | error | 1 | CON |"),
        "{md}"
    );
    assert!(
        md.contains("| t | `zero-byte-file` | error | 1 | empty.txt |"),
        "{md}"
    );
    assert!(md.contains("(t/reports/R1/ScanReport_R1.csv)"), "{md}");
    assert!(f.path("state/p/t/reports/R1/ScanReport_R1.csv").exists());
    let html = fs::read_to_string(f.path("state/p/Summary.html")).unwrap();
    assert!(html.contains("id=\"not-migrated\""), "{html}");
    assert!(!html.contains(">completed</span>"), "{html}");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(f.path("state/p/summary.json")).unwrap()).unwrap();
    assert_eq!(json["totals"]["not_migrated"], 2);
    // Once the plan skips nothing that is there, a clean round says so.
    fs::remove_file(f.path("src/CON")).unwrap();
    fs::remove_file(f.path("src/empty.txt")).unwrap();
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let md = fs::read_to_string(f.path("state/p/Summary.md")).unwrap();
    assert!(md.contains("Status: **completed**"), "{md}");
}

/// Finding 3: a folder whose listing fails (here an I/O error, injected) is reported
/// with its reason and its contents are unknown; walker errors are never dropped.
#[test]
fn a_folder_that_cannot_be_listed_is_a_finding() {
    let mut f = Fixture::new();
    let Some(shim) = fault_shim(&f, "unlistable") else {
        return;
    };
    f.file("src/top.txt", "top");
    f.file("src/a/broken/inside.txt", "unknown");
    f.file("src/a/fine.txt", "fine");
    f.plan(&posix(""));
    f.env("LD_PRELOAD", &shim.display().to_string())
        .env("FERRY_UNLISTABLE", "/a/broken");
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("Not ready"), "{}", run.stderr);
    let report = fs::read_to_string(f.path("state/p/t/reports/R1/ScanReport_R1.csv")).unwrap();
    assert!(
        report.contains("unreadable") && report.contains("cannot list this folder"),
        "{report}"
    );
    assert!(f.path("dest/a/fine.txt").exists());
    assert!(!f.path("dest/a/broken").exists());
}

// Regression tests for what an adversarial review of these fixes found (the `F` numbers
// are that review's).

/// F2: a part refused in an import-only run takes the file's assembly with it.
#[test]
fn a_refused_part_leaves_no_assembly_behind() {
    let f = Fixture::new();
    random_file(&f, "src/parts.bin", 20_000_000, 21);
    f.plan(&posix(", package: { max_size: 4MiB }"));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let staging = f.path("state/staging");
    let container = fs::read_dir(&staging)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::set_permissions(&container, fs::Permissions::from_mode(0o700)).unwrap();
    let mut objects: Vec<_> = fs::read_dir(&container)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    objects.sort();
    // Damage the end of one part: its first segments are written before it is refused.
    let object = &objects[0];
    let mut bytes = fs::read(object).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    fs::write(object, bytes).unwrap();
    fs::set_permissions(&container, fs::Permissions::from_mode(0o300)).unwrap();
    let run = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    run.assert_code(1);
    assert!(run.stderr.contains("integrity-failed"), "{}", run.stderr);
    assert!(
        crate::run::ferry_temp_files(&f.path("dest")).is_empty(),
        "{:?}",
        crate::run::ferry_temp_files(&f.path("dest"))
    );
}

/// F3: a full destination in the middle of a file in parts, in an import-only run whose
/// parts already in are gone from staging: the next run, with space, completes the file.
#[test]
fn a_full_destination_inside_a_file_in_parts_loses_nothing_in_an_import_only_run() {
    let f = Fixture::new();
    let Some(dest) = Mounted::tmpfs(&f.path("dest"), 20) else {
        return;
    };
    random_file(&f, "src/huge.bin", 50_000_000, 31);
    f.plan(&posix(", package: { max_size: 4MiB }"));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let import = ["run", "plan.yaml", "--stages", "import"];
    let full = f.ferry(&import);
    full.assert_code(5);
    assert!(full.stderr.contains("is full"), "{}", full.stderr);
    dest.resize(200);
    f.ferry(&import).assert_code(0);
    crate::session::assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// F10: an import-only (or resumed) run of a round whose scan kept items back for an
/// error exits 1, as the run that scanned did, and as the summary says.
#[test]
fn every_run_of_a_round_with_scan_errors_exits_1() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.fifo("src/pipe");
    f.plan(&posix(""));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(1);
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(1);
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(f.path("state/p/summary.json")).unwrap()).unwrap();
    assert_eq!(json["status"], "completed, some items not migrated");
}

/// F11: a symlink where a folder belongs is refused with its own code; the folder is
/// never "already at the destination".
#[test]
fn a_symlink_where_a_folder_belongs_is_refused() {
    let f = Fixture::new();
    f.file("src/d/f.txt", "1");
    f.dir("outside").dir("dest");
    std::os::unix::fs::symlink(f.path("outside"), f.path("dest/d")).unwrap();
    f.plan(&posix(""));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    let report = fs::read_to_string(f.path("state/p/t/reports/R1/ItemReport_R1.csv")).unwrap();
    assert!(!report.contains("Already at destination"), "{report}");
    assert!(run.stderr.contains("destination-refused"), "{}", run.stderr);
    assert!(run.stderr.contains("2 failed"), "{}", run.stderr);
    assert!(fs::read_dir(f.path("outside")).unwrap().next().is_none());
}

/// F12: a missing session.json, while the task has rounds, is refused: replaying an old
/// round reported a false success.
#[test]
fn a_missing_session_of_a_task_with_rounds_is_refused() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.plan(&posix(""));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    f.file("src/b.txt", "b");
    fs::remove_file(f.path("state/p/t/session.json")).unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("session.json is missing") && run.stderr.contains("ferry delete"),
        "{}",
        run.stderr
    );
    assert!(!f.path("dest/b.txt").exists());
}

/// F6: a file changed between a kill inside it and the resume starts over, so the new
/// version is never joined to the old one's parts (here with `verify: none`, which does
/// not read the file back).
#[test]
fn a_file_changed_between_kill_and_resume_starts_over() {
    let f = Fixture::new();
    random_file(&f, "src/big.bin", 40_000_000, 41);
    f.plan(&posix(", package: { max_size: 1MiB }, verify: none"));
    let mut child = f.spawn(&["run", "--workers", "1", "plan.yaml"]);
    wait_for_assembly(&f.path("dest"), 8_000_000, &mut child);
    kill_9(&mut child);
    random_file(&f, "src/big.bin", 40_000_000, 42);
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_eq!(
        fs::read(f.path("dest/big.bin")).unwrap(),
        fs::read(f.path("src/big.bin")).unwrap()
    );
}

/// A session.json older than the task's rounds (restored from a backup) is refused: it
/// replayed an old round with exit 0.
#[test]
fn a_session_older_than_the_tasks_rounds_is_refused() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.plan(&posix(""));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let old = fs::read(f.path("state/p/t/session.json")).unwrap();
    f.file("src/b.txt", "b");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    f.file("src/c.txt", "c");
    fs::write(f.path("state/p/t/session.json"), old).unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("older than the task's state"),
        "{}",
        run.stderr
    );
    let scan = f.ferry(&["scan", "plan.yaml"]);
    scan.assert_code(5);
}

/// An import-only run killed after its round completed, before it deleted the key and
/// the hand-over note: its rerun reports the completed round, not "nothing staged".
#[test]
fn the_rerun_of_an_import_killed_after_completing_reports_the_round() {
    let f = Fixture::new();
    for i in 0..5 {
        f.file(&format!("src/f{i}.txt"), format!("{i}"));
    }
    f.plan(&posix(""));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let key = fs::read(f.path("state/p/t/keys/R1.key")).unwrap();
    let note = fs::read(f.path("state/p/t/rounds/R1/staged.json")).unwrap();
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    // What a kill in that window leaves.
    fs::write(f.path("state/p/t/keys/R1.key"), key).unwrap();
    fs::set_permissions(
        f.path("state/p/t/keys/R1.key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(f.path("state/p/t/rounds/R1/staged.json"), note).unwrap();
    let rerun = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    rerun.assert_code(0);
    assert!(
        rerun.stderr.contains("imported 5 items"),
        "{}",
        rerun.stderr
    );
    assert!(!f.path("state/p/t/keys/R1.key").exists());
}

/// Catalogue cases 28 and 29: between the scan and the read (here a run that stopped
/// right after its scan checkpoint), one file is deleted, one becomes a symlink, one is
/// replaced by another file and one by a FIFO. Each is one failure row with its own
/// code; the FIFO is never read from, nothing is read through the link, and the rest
/// migrates.
#[test]
fn files_deleted_or_replaced_after_the_scan_fail_alone() {
    let mut f = Fixture::new();
    for name in ["gone", "linked", "replaced", "fifo", "kept"] {
        f.file(&format!("src/{name}.txt"), name);
    }
    f.file("outside/secret.txt", "secret");
    f.plan(&posix(""));
    // The key is written right after the scan checkpoint: the process aborts there.
    f.env("FERRY_FAILPOINTS", "key-write=crash");
    assert_ne!(f.ferry(&["run", "plan.yaml"]).code, 0);
    f.env("FERRY_FAILPOINTS", "");
    assert!(f.path("state/p/t/rounds/R1/scan.json").exists());
    fs::remove_file(f.path("src/gone.txt")).unwrap();
    fs::remove_file(f.path("src/linked.txt")).unwrap();
    std::os::unix::fs::symlink(f.path("outside/secret.txt"), f.path("src/linked.txt")).unwrap();
    fs::remove_file(f.path("src/replaced.txt")).unwrap();
    f.file("src/replaced.txt", "replaced");
    fs::remove_file(f.path("src/fifo.txt")).unwrap();
    f.fifo("src/fifo.txt");
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("4 failed"), "{}", run.stderr);
    let failures =
        fs::read_to_string(f.path("state/p/t/reports/R1/ItemFailureReport_R1.csv")).unwrap();
    for (name, code) in [
        ("gone.txt", "vanished"),
        ("linked.txt", "changed-type"),
        ("replaced.txt", "changed-type"),
        ("fifo.txt", "changed-type"),
    ] {
        let rows: Vec<_> = failures.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(rows.len(), 1, "{name}: {failures}");
        assert!(rows[0].contains(code), "{name}: {}", rows[0]);
    }
    assert_eq!(fs::read(f.path("dest/kept.txt")).unwrap(), b"kept");
    for name in ["gone", "linked", "replaced", "fifo"] {
        assert!(!f.path(&format!("dest/{name}.txt")).exists(), "{name}");
    }
    // The next round takes what is there now: the new file, the link skipped.
    f.ferry(&["run", "plan.yaml"]);
    assert_eq!(fs::read(f.path("dest/replaced.txt")).unwrap(), b"replaced");
    assert!(!f.path("dest/linked.txt").exists());
}

/// docs/RELIABILITY.md maps every case of the reliability catalogue (46) to the tests
/// that show it: each case has a row, and each test a row names exists where it says.
#[test]
fn the_reliability_table_covers_every_case_and_names_real_tests() {
    let repo = crate::harness::repo();
    let text = fs::read_to_string(repo.join("docs/RELIABILITY.md")).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    let numbers: Vec<u32> = rows
        .iter()
        .map(|r| r[2..].split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=46).collect::<Vec<_>>());
    let mut named = 0;
    for row in &rows {
        for cite in row.split('`').skip(1).step_by(2) {
            let Some((file, test)) = cite.split_once("::") else {
                continue;
            };
            if !(file.starts_with("src/") || file.starts_with("tests/")) {
                continue;
            }
            let source = fs::read_to_string(repo.join(file))
                .unwrap_or_else(|e| panic!("{file} (named in a row): {e}"));
            assert!(
                source.contains(&format!("fn {test}(")),
                "docs/RELIABILITY.md names {file}::{test}, which is not there"
            );
            named += 1;
        }
    }
    assert!(named > 100, "{named}");
}
