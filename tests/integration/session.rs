//! Sessions: `kill -9` at any point loses and repeats nothing, rounds move only what
//! changed, the journal refuses damage, one run of a plan at a time.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::harness::Fixture;
use crate::run::{ferry_temp_files, inventory, plan};

/// Fails with only the differences (a whole listing is unreadable).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (left, right) = (inventory(a), inventory(b));
    let only_left: Vec<_> = left.iter().filter(|x| !right.contains(x)).take(5).collect();
    let only_right: Vec<_> = right.iter().filter(|x| !left.contains(x)).take(5).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "source only: {only_left:?}\ndestination only: {only_right:?}"
    );
}

/// A small deterministic generator, so that every run of the suite kills at the same
/// points.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// About 400 files in nested folders, a few of them larger than a package.
fn tree(f: &Fixture) {
    let mut rng = Lcg(7);
    for i in 0..400u64 {
        let size = match i % 50 {
            0 => 1_500_000 + rng.next() % 500_000,
            _ => rng.next() % 20_000,
        };
        let data: Vec<u8> = (0..size).map(|_| (rng.next() & 0xff) as u8).collect();
        f.file(&format!("src/d{}/e{}/file-{i:04}.bin", i % 7, i % 3), &data);
    }
    f.dir("src/empty/folder");
}

const SMALL_PACKAGES: &str = "{ package: { max_size: 1MiB, max_files: 16 } }";

fn session(f: &Fixture) -> serde_json::Value {
    serde_json::from_slice(&fs::read(f.path("state/p/t/session.json")).unwrap()).unwrap()
}

/// Runs `ferry run` to the end, as cron would: again while it says "resume".
fn run_to_completion(f: &Fixture) -> crate::harness::Run {
    for _ in 0..5 {
        let run = f.ferry(&["run", "plan.yaml"]);
        if run.code != 3 && run.code != 5 {
            return run;
        }
    }
    panic!("the round did not complete in five runs");
}

#[test]
fn kill_9_at_random_points_loses_and_repeats_nothing() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    let mut rng = Lcg(2026);
    let mut finished_early = 0;
    for _ in 0..20 {
        let mut child = f.spawn(&["run", "plan.yaml"]);
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 400));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            finished_early += 1;
            // The round is complete: start over so the next kill lands mid-round.
            fs::remove_dir_all(f.path("dest")).unwrap();
            fs::remove_dir_all(f.path("state")).unwrap();
        }
    }
    assert!(finished_early < 20, "no kill landed before the end");
    let run = run_to_completion(&f);
    run.assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert!(ferry_temp_files(&f.path("dest")).is_empty());
    // The round counts every item exactly once, however many runs it took.
    let s = session(&f);
    let items = s["progress"]["items"].as_u64().unwrap();
    assert_eq!(items, 400 + 7 + 21 + 2);
    assert_eq!(s["progress"]["items_done"].as_u64().unwrap(), items, "{s}");
    assert_eq!(s["progress"]["failed"], 0);
    assert_eq!(s["status"], "completed");
    // The round's item report lists every item exactly once.
    let mut reader =
        csv::Reader::from_path(f.path("state/p/t/reports/R1/ItemReport_R1.csv")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for row in reader.records() {
        let row = row.unwrap();
        assert!(seen.insert(row[1].to_string()), "listed twice: {}", &row[1]);
    }
    assert_eq!(seen.len() as u64, items);
    // Nothing staged is left behind.
    let staging = f.path("state/staging");
    let left: Vec<_> = fs::read_dir(&staging)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// The same for an import-only run (split roles), whose files in parts are resumed
/// part by part from staging (reliability review, finding 4).
#[test]
fn kill_9_of_an_import_only_run_loses_and_repeats_nothing() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    let stage = ["run", "plan.yaml", "--stages", "scan,package,upload"];
    let import = ["run", "plan.yaml", "--stages", "import"];
    f.ferry(&stage).assert_code(0);
    let mut rng = Lcg(4242);
    let mut finished_early = 0;
    for _ in 0..20 {
        let mut child = f.spawn(&import);
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 300));
        let _ = child.kill();
        if child.wait().unwrap().success() {
            finished_early += 1;
            fs::remove_dir_all(f.path("dest")).unwrap();
            fs::remove_dir_all(f.path("state")).unwrap();
            f.ferry(&stage).assert_code(0);
        }
    }
    assert!(finished_early < 20, "no kill landed before the end");
    // A kill can land after the round completed, before the process ended.
    if session(&f)["status"] != "completed" {
        f.ferry(&import).assert_code(0);
    }
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert!(ferry_temp_files(&f.path("dest")).is_empty());
    let s = session(&f);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["progress"]["failed"], 0, "{s}");
    let left: Vec<_> = fs::read_dir(f.path("state/staging"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn sigint_pauses_with_exit_3_and_the_next_run_resumes() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    let child = f.spawn(&["run", "plan.yaml"]);
    std::thread::sleep(Duration::from_millis(150));
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let code = output.status.code().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(code == 3 || code == 0, "exit {code}: {stderr}");
    if code == 3 {
        assert!(
            stderr.contains("run the same command again to resume"),
            "{stderr}"
        );
        assert_eq!(session(&f)["status"], "paused");
    }
    run_to_completion(&f).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert!(ferry_temp_files(&f.path("dest")).is_empty());
}

#[test]
fn a_second_run_of_the_plan_exits_4_at_once_naming_the_holder() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    let mut first = f.spawn(&["run", "plan.yaml"]);
    // Freeze the first run as soon as it holds the lock.
    let lock = f.path("state/p/lock");
    let pid = first.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("pid {pid}"))) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    let started = Instant::now();
    let second = f.ferry(&["run", "plan.yaml"]);
    let waited = started.elapsed();
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    second.assert_code(4);
    assert!(
        second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("is being run by ferry on host"));
    // It does not wait for the lock (generous, for a loaded machine).
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(first.wait().unwrap().success());
    // The holder's exit frees the lock, however it exits.
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
}

#[test]
fn a_new_round_moves_only_what_changed_and_keeps_edited_destination_files() {
    let f = Fixture::new();
    f.file("src/same.txt", "same");
    f.file("src/changed.txt", "before");
    f.file("src/edited-at-destination.txt", "before");
    f.file("src/deleted.txt", "gone soon");
    f.plan(&plan("{}"));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_eq!(session(&f)["round"], 1);

    // No change: nothing moves.
    f.run_finds_nothing();
    assert_eq!(session(&f)["round"], 2);
    assert_eq!(session(&f)["progress"]["unchanged"], 4);

    let later = SystemTime::now() + Duration::from_secs(10);
    let touch = |path: &Path, content: &str| {
        let file = fs::File::create(path).unwrap();
        file.write_all_at(content.as_bytes(), 0).unwrap();
        file.set_modified(later).unwrap();
    };
    touch(&f.path("src/changed.txt"), "after, longer");
    touch(
        &f.path("src/edited-at-destination.txt"),
        "after, at the source",
    );
    touch(
        &f.path("dest/edited-at-destination.txt"),
        "someone edited this copy",
    );
    fs::remove_file(f.path("src/deleted.txt")).unwrap();
    f.file("src/new.txt", "new");

    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("imported 2 items"), "{}", run.stderr);
    assert!(run.stderr.contains("destination-changed"), "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(f.path("dest/changed.txt")).unwrap(),
        "after, longer"
    );
    assert_eq!(fs::read_to_string(f.path("dest/new.txt")).unwrap(), "new");
    assert_eq!(
        fs::read_to_string(f.path("dest/edited-at-destination.txt")).unwrap(),
        "someone edited this copy"
    );
    // `deletions: keep`: what the source lost stays at the destination.
    assert!(f.path("dest/deleted.txt").exists());
    assert_eq!(session(&f)["round"], 3);
}

#[test]
fn a_plan_edited_mid_round_is_refused_unless_restart() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    f.plan(&plan("{ package: { max_size: 2MiB, max_files: 16 } }"));
    let refused = f.ferry(&["run", "plan.yaml"]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("was changed in the plan since its round 1 started"),
        "{}",
        refused.stderr
    );
    assert!(!f.path("dest").exists());
    f.ferry(&["run", "plan.yaml", "--restart"]).assert_code(0);
    assert_eq!(session(&f)["round"], 2);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// A staged round whose journal is then damaged in the given way; returns the import's
/// stderr, paths redacted, after checking that the journal was left as it was.
fn import_with_journal(damage: impl Fn(&mut Vec<u8>)) -> (i32, String) {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let journal = f.path("state/p/t/rounds/R1/journal");
    let mut bytes = fs::read(&journal).unwrap();
    damage(&mut bytes);
    fs::write(&journal, &bytes).unwrap();
    let run = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    if run.code != 0 {
        assert_eq!(
            fs::read(&journal).unwrap(),
            bytes,
            "the evidence was changed"
        );
        assert!(!f.path("dest").exists() || inventory(&f.path("dest")).is_empty());
    } else {
        assert_same_tree(&f.path("src"), &f.path("dest"));
    }
    let root = f.root().display().to_string();
    (run.code, run.stderr.replace(&root, "[TEMP]"))
}

type Damage = dyn Fn(&mut Vec<u8>);

#[test]
fn journal_fixtures_torn_tail_accepted_damage_refused() {
    // A torn tail: the last record cut short by a crash. Dropped; the round completes
    // (the package it named is imported from staging or staged again).
    let (code, _) = import_with_journal(|b| {
        let n = b.len();
        b.truncate(n - 7);
    });
    assert_eq!(code, 0);
    // The last record's blocks never written (NUL): also a torn tail.
    let (code, _) = import_with_journal(|b| {
        let n = b.len();
        b[n - 30..].fill(0);
    });
    assert_eq!(code, 0);
    let cases: [(&str, Box<Damage>); 4] = [
        (
            "flipped",
            Box::new(|b: &mut Vec<u8>| {
                let mid = b.len() / 2;
                b[mid] ^= 0x20;
            }),
        ),
        ("zero_length", Box::new(|b: &mut Vec<u8>| b.clear())),
        ("all_nul", Box::new(|b: &mut Vec<u8>| b.fill(0))),
        ("newer", Box::new(|b: &mut Vec<u8>| b[8] = 9)),
    ];
    for (name, damage) in cases {
        let (code, stderr) = import_with_journal(damage);
        assert_eq!(code, 5, "{name}: {stderr}");
        insta::assert_snapshot!(format!("journal_{name}"), stderr);
    }
}

#[test]
fn a_completed_round_leaves_no_key_and_resumes_nothing() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.plan(&plan("{}"));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert!(!f.path("state/p/t/keys/R1.key").exists());
    let s = session(&f);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["last_result"]["imported"], 1);
    let mut w = fs::File::options()
        .append(true)
        .open(f.path("state/p/t/session.json"))
        .unwrap();
    w.write_all(b"garbage").unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(
        run.stderr
            .contains("is not a session this ferry understands"),
        "{}",
        run.stderr
    );
}

#[test]
fn status_plan_and_delete() {
    let f = Fixture::new();
    f.file("src/a.txt", "a");
    f.file("src/b.txt", "b");
    f.file("src/c.txt", "c");
    f.plan(&plan("{}"));
    let status = f.ferry(&["status", "plan.yaml", "--json"]);
    status.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["tasks"][0]["status"], "queued");

    // Before the first run everything is to create; the dry run touches nothing.
    let before = f.listing();
    let dry = f.ferry(&["plan", "plan.yaml"]);
    dry.assert_code(0);
    assert!(dry.stdout.contains("create    a.txt"), "{}", dry.stdout);
    assert_eq!(f.listing(), before);

    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let text = f.ferry(&["status", "plan.yaml"]);
    text.assert_code(0);
    assert!(text.stdout.contains("completed"), "{}", text.stdout);
    assert!(text.stdout.contains("R1 ended"), "{}", text.stdout);

    let later = SystemTime::now() + Duration::from_secs(10);
    let file = fs::File::create(f.path("src/a.txt")).unwrap();
    file.write_all_at(b"a, changed", 0).unwrap();
    file.set_modified(later).unwrap();
    // Another size than the source's new version: with the same size and time the
    // destination's copy counts as the source's (size and time decide, as in `run`).
    let file = fs::File::create(f.path("dest/b.txt")).unwrap();
    file.write_all_at(b"b, edited at the destination!", 0)
        .unwrap();
    file.set_modified(later).unwrap();
    let file = fs::File::create(f.path("src/b.txt")).unwrap();
    file.write_all_at(b"b, changed at the source too", 0)
        .unwrap();
    file.set_modified(later).unwrap();
    f.file("src/d.txt", "d");
    let dry = f.ferry(&["plan", "plan.yaml", "--task", "t"]);
    dry.assert_code(0);
    let listed: Vec<&str> = dry.stdout.lines().skip(1).take(3).collect();
    assert_eq!(
        listed,
        ["update    a.txt", "conflict  b.txt", "create    d.txt"],
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("skip             1 items"),
        "{}",
        dry.stdout
    );
    // The run does what the dry run said.
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("destination-changed") && run.stderr.contains("b.txt"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("imported 2 items"), "{}", run.stderr);

    // Delete asks; without a terminal it needs --yes.
    f.ferry(&["delete", "plan.yaml", "--task", "t"])
        .assert_code(2);
    assert!(f.path("state/p/t").exists());
    f.ferry(&["delete", "plan.yaml", "--task", "t", "--yes"])
        .assert_code(0);
    assert!(!f.path("state/p/t").exists());
    let json: serde_json::Value =
        serde_json::from_str(&f.ferry(&["status", "plan.yaml", "--json"]).stdout).unwrap();
    assert_eq!(json["tasks"][0]["round"], 0);
    assert!(
        f.ferry(&["delete", "plan.yaml", "--task", "nope", "--yes"])
            .stderr
            .contains("no task named `nope`")
    );
}

#[test]
fn mirror_deletes_what_the_source_lost_within_the_cap() {
    let f = Fixture::new();
    for i in 0..10 {
        f.file(&format!("src/keep/k{i}.txt"), "keep");
    }
    f.file("src/gone/a.txt", "a");
    f.file("src/gone/b.txt", "b");
    f.file("src/edited.txt", "e");
    let mirror = "{ deletions: mirror, max_delete: { items: 2, percent: 50 } }";
    f.plan(&plan(mirror));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    fs::remove_dir_all(f.path("src/gone")).unwrap();
    fs::remove_file(f.path("src/edited.txt")).unwrap();
    let later = SystemTime::now() + Duration::from_secs(10);
    let file = fs::File::create(f.path("dest/edited.txt")).unwrap();
    file.write_all_at(b"edited at the destination", 0).unwrap();
    file.set_modified(later).unwrap();

    let dry = f.ferry(&["plan", "plan.yaml"]);
    for line in [
        "delete    edited.txt",
        "delete    gone",
        "delete    gone/a.txt",
    ] {
        assert!(dry.stdout.contains(line), "{line}: {}", dry.stdout);
    }
    // Four items are gone: over the cap of two, so nothing is deleted.
    let capped = f.ferry(&["run", "plan.yaml"]);
    capped.assert_code(1);
    assert!(capped.stderr.contains("delete-capped"), "{}", capped.stderr);
    assert!(f.path("dest/gone/a.txt").exists());
    // With --force they go, but not the file someone edited at the destination.
    let forced = f.ferry(&["run", "plan.yaml", "--force"]);
    forced.assert_code(1);
    assert!(forced.stderr.contains("3 deleted"), "{}", forced.stderr);
    assert!(forced.stderr.contains("delete-kept"), "{}", forced.stderr);
    assert!(!f.path("dest/gone").exists());
    assert!(f.path("dest/edited.txt").exists());
    assert_eq!(fs::read_dir(f.path("dest/keep")).unwrap().count(), 10);
    // Nothing left to mirror.
    let again = f.ferry(&["run", "plan.yaml"]);
    again.assert_code(0);
    assert!(again.stderr.contains("0 deleted"), "{}", again.stderr);
}

#[test]
fn a_staged_round_whose_key_expired_is_staged_again_under_a_new_key() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&plan(SMALL_PACKAGES));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let key = f.path("state/p/t/keys/R1.key");
    let mut stored: serde_json::Value = serde_json::from_slice(&fs::read(&key).unwrap()).unwrap();
    let old_container = stored["container_id"].as_str().unwrap().to_string();
    stored["expires_at"] = serde_json::json!(1);
    fs::write(&key, serde_json::to_vec(&stored).unwrap()).unwrap();
    // The importing role alone cannot use it.
    let refused = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    refused.assert_code(5);
    assert!(refused.stderr.contains("expired"), "{}", refused.stderr);
    // A run that also stages packages the round again under a new key and container.
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert!(!f.path("state/staging").join(&old_container).exists());
    assert_eq!(session(&f)["round"], 1);
}
