//! Shards: `ferry run --shard K/N` and `ferry finish PLAN --shards N`, by hand, on a
//! real Slurm cluster, and the Kubernetes manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, have, repo};

const PLAN: &str = "version: 1\nname: p\nworking_folder: state\nstaging: { kind: local, path: staging }\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: posix }\n";

/// A tree with folders at every depth: files at the top, in the spine folders and deep
/// inside units, and one folder big enough to be a unit of its own many times over.
fn tree(f: &Fixture, bytes_per_file: usize) {
    for top in 0..6 {
        for sub in 0..5 {
            for n in 0..4 {
                let data = crate::harness::incompressible(bytes_per_file, top * 100 + sub * 10 + n);
                f.file(
                    &format!("src/dept-{top}/team-{sub}/deep/file-{n}.bin"),
                    &data,
                );
            }
            f.file(
                &format!("src/dept-{top}/team-{sub}/note.txt"),
                format!("{top}/{sub}"),
            );
        }
        f.file(&format!("src/dept-{top}/readme.txt"), format!("dept {top}"));
    }
    f.file("src/top.txt", "at the top");
    f.dir("src/empty-folder");
}

/// Every item below `root` (relative paths), the root left out.
fn items(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The destination holds exactly the source: the same items, the same contents, and
/// the same modes and modification times (folders' too).
#[track_caller]
fn assert_same_tree(src: &Path, dest: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let (a, b) = (items(src), items(dest));
    assert_eq!(a, b, "the destination's items differ from the source's");
    for rel in &a {
        let (x, y) = (
            std::fs::symlink_metadata(src.join(rel)).unwrap(),
            std::fs::symlink_metadata(dest.join(rel)).unwrap(),
        );
        assert_eq!(x.mode(), y.mode(), "mode of {}", rel.display());
        assert_eq!(
            (x.mtime(), x.mtime_nsec()),
            (y.mtime(), y.mtime_nsec()),
            "time of {}",
            rel.display()
        );
        if x.is_file() {
            assert!(
                std::fs::read(src.join(rel)).unwrap() == std::fs::read(dest.join(rel)).unwrap(),
                "content of {}",
                rel.display()
            );
        }
    }
}

/// Nothing was added or removed (only the differences are shown when something was).
#[track_caller]
fn assert_unchanged(before: &[PathBuf], after: &[PathBuf]) {
    let added: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    let removed: Vec<_> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "added: {added:?}\nremoved: {removed:?}"
    );
}

/// The merged item report of round 1: each row's source path, counted.
fn merged_rows(f: &Fixture, shards: u32) -> BTreeMap<String, usize> {
    let path = f.path(&format!(
        "state/p/t/shards-of-{shards}/reports/R1/ItemReport_R1.csv"
    ));
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let mut rows = BTreeMap::new();
    for row in reader.records() {
        *rows.entry(row.unwrap()[0].to_string()).or_default() += 1;
    }
    rows
}

/// Checks that the merged reports count every item of the source exactly once.
#[track_caller]
fn assert_each_item_once(f: &Fixture, shards: u32) {
    let rows = merged_rows(f, shards);
    let src = f.path("src").canonicalize().unwrap();
    let expected: Vec<String> = items(&src)
        .iter()
        .map(|rel| src.join(rel).display().to_string())
        .collect();
    let found: Vec<String> = rows.keys().cloned().collect();
    assert_eq!(found, expected, "the merged item report's items");
    assert!(rows.values().all(|&n| n == 1), "an item twice: {rows:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("state/p/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["totals"]["scanned"], expected.len() as u64);
    assert_eq!(
        summary["totals"]["imported"].as_u64().unwrap()
            + summary["totals"]["already_at_destination"]
                .as_u64()
                .unwrap(),
        expected.len() as u64
    );
    assert_eq!(summary["tasks"][0]["task"], "t");
}

/// Four shards run at once over one destination; `finish` refuses while one is
/// missing (changing nothing), then merges: the destination is the source, and the
/// merged reports count each item once.
#[test]
fn four_shards_at_once_then_finish_merges_them() {
    let f = Fixture::new();
    tree(&f, 2000);
    f.plan(PLAN);
    // Three of four shards, side by side (they share the destination).
    let children: Vec<_> = (0..3)
        .map(|k| f.spawn(&["run", "plan.yaml", "--shard", &format!("{k}/4")]))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = f.listing();
    let refused = f.ferry(&["finish", "plan.yaml", "--shards", "4"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("task `t`, shard 3 of 4: has not run"),
        "{}",
        refused.stderr
    );
    assert_unchanged(&before, &f.listing());
    f.ferry(&["run", "plan.yaml", "--shard", "3/4"])
        .assert_code(0);
    f.ferry(&["finish", "plan.yaml", "--shards", "4"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert_each_item_once(&f, 4);
    // `ferry status` shows every shard.
    let status = f.ferry(&["status", "plan.yaml"]);
    status.assert_code(0);
    for k in 0..4 {
        assert!(
            status.stdout.contains(&format!("t [{k}/4]  completed")),
            "{}",
            status.stdout
        );
    }
    // Each item was one shard's: the shards' own counts add up to the whole.
    let scanned: u64 = (0..4)
        .map(|k| {
            let round: serde_json::Value = serde_json::from_slice(
                &std::fs::read(f.path(&format!("state/p/t/shard-{k}-of-4/reports/R1/round.json")))
                    .unwrap(),
            )
            .unwrap();
            round["scan"]["scanned"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(scanned, items(&f.path("src")).len() as u64);
}

/// A second round, sharded the same way, carries only what changed, and a file gone
/// from the source goes from the destination too (`deletions: mirror`), by the shard
/// whose unit it was.
#[test]
fn a_second_sharded_round_carries_changes_and_deletions() {
    let f = Fixture::new();
    tree(&f, 500);
    f.plan(&PLAN.replace("rules: posix", "rules: posix, deletions: mirror"));
    for k in 0..3 {
        f.ferry(&["run", "plan.yaml", "--shard", &format!("{k}/3")])
            .assert_code(0);
    }
    f.ferry(&["finish", "plan.yaml", "--shards", "3"])
        .assert_code(0);
    std::fs::remove_file(f.path("src/dept-2/team-1/deep/file-3.bin")).unwrap();
    f.file("src/dept-4/team-4/new.txt", "new");
    for k in 0..2 {
        f.ferry(&["run", "plan.yaml", "--shard", &format!("{k}/3")])
            .assert_code(0);
    }
    // Shard 2 is still at round 1: finish says so and changes nothing.
    let before = f.listing();
    let behind = f.ferry(&["finish", "plan.yaml", "--shards", "3"]);
    behind.assert_code(1);
    assert!(
        behind.stderr.contains(
            "the shards are at different rounds (round 1: shards [2]; round 2: shards [0, 1])"
        ),
        "{}",
        behind.stderr
    );
    assert_unchanged(&before, &f.listing());
    f.ferry(&["run", "plan.yaml", "--shard", "2/3"])
        .assert_code(0);
    f.ferry(&["finish", "plan.yaml", "--shards", "3"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("state/p/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["tasks"][0]["round"], 2);
    assert_eq!(summary["totals"]["deleted"], 1);
}

/// `--shard` takes K from a variable (`JOB_COMPLETION_INDEX` on Kubernetes), and checks
/// `0 ≤ K < N`.
#[test]
fn the_shard_index_may_come_from_the_environment() {
    let mut f = Fixture::new();
    tree(&f, 100);
    f.plan(PLAN);
    f.env("JOB_COMPLETION_INDEX", "1");
    f.ferry(&["run", "plan.yaml", "--shard", "env:JOB_COMPLETION_INDEX/2"])
        .assert_code(0);
    assert!(f.path("state/p/t/shard-1-of-2/session.json").exists());
    assert!(!f.path("state/p/t/shard-0-of-2").exists());
    let missing = f.ferry(&["run", "plan.yaml", "--shard", "env:SLURM_ARRAY_TASK_ID/2"]);
    missing.assert_code(2);
    assert!(
        missing
            .stderr
            .contains("SLURM_ARRAY_TASK_ID, which is not set"),
        "{}",
        missing.stderr
    );
    let over = f.ferry(&["run", "plan.yaml", "--shard", "2/2"]);
    over.assert_code(2);
    assert!(
        over.stderr.contains("shard 2 of 2 does not exist"),
        "{}",
        over.stderr
    );
}

/// A round left unfinished by shards of one split is not joined by a run split another
/// way, nor by an unsharded run: they would assign the same items twice.
#[test]
fn another_split_in_the_middle_of_a_round_is_refused() {
    let f = Fixture::new();
    tree(&f, 100);
    f.plan(PLAN);
    // Staged only: the round stays open.
    f.ferry(&[
        "run",
        "plan.yaml",
        "--shard",
        "0/2",
        "--stages",
        "scan,package,upload",
    ])
    .assert_code(0);
    let before = f.listing();
    for args in [&["--shard", "1/3"][..], &[]] {
        let mut all = vec!["run", "plan.yaml"];
        all.extend_from_slice(args);
        let refused = f.ferry(&all);
        refused.assert_code(2);
        assert!(
            refused
                .stderr
                .contains("shard 0 of 2 is in the middle of round 1 (paused)"),
            "{}",
            refused.stderr
        );
    }
    assert_unchanged(&before, &f.listing());
    // The same split goes on.
    f.ferry(&["run", "plan.yaml", "--shard", "0/2"])
        .assert_code(0);
}

/// Shards whose reports hold the same item are not of one run: finish names the item
/// and merges nothing.
#[test]
fn an_item_in_two_shards_is_an_error_not_a_double_count() {
    let f = Fixture::new();
    tree(&f, 100);
    f.plan(PLAN);
    for k in 0..2 {
        f.ferry(&["run", "plan.yaml", "--shard", &format!("{k}/2")])
            .assert_code(0);
    }
    // Shard 1's reports replaced by shard 0's: every item of shard 0 twice.
    let (zero, one) = (
        f.path("state/p/t/shard-0-of-2/reports/R1"),
        f.path("state/p/t/shard-1-of-2/reports/R1"),
    );
    for entry in std::fs::read_dir(&zero).unwrap().flatten() {
        std::fs::copy(entry.path(), one.join(entry.file_name())).unwrap();
    }
    let refused = f.ferry(&["finish", "plan.yaml", "--shards", "2"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("is in the reports of shards [0, 1]"),
        "{}",
        refused.stderr
    );
    assert!(!f.path("state/p/t/shards-of-2").join("reports/R1").exists());
    assert!(!f.path("state/p/summary.json").exists());
}

/// The Kubernetes manifest is valid for the API (`kubernetes-validate --strict`, which
/// rejects unknown fields), and its plan is a valid plan.
#[test]
fn the_kubernetes_manifest_is_valid() {
    if !have("kubernetes-validate") {
        return;
    }
    let manifest = repo().join("deploy/k8s/ferry-indexed-job.yaml");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // --strict is strict: a misspelt field fails.
    let f = Fixture::new();
    let text = std::fs::read_to_string(&manifest).unwrap();
    f.file(
        "typo.yaml",
        text.replace("backoffLimitPerIndex:", "backofLimitPerIndex:"),
    );
    let typo = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(f.path("typo.yaml"))
        .output()
        .unwrap();
    assert!(!typo.status.success());
    // The index is read from JOB_COMPLETION_INDEX, and N agrees in all three places.
    assert!(text.contains("completionMode: Indexed"));
    assert!(text.contains("completions: 4"));
    assert!(text.contains(r#""--shard", "env:JOB_COMPLETION_INDEX/4""#));
    assert!(text.contains(r#""finish", "/etc/ferry/plan.yaml", "--shards", "4""#));
}

/// A one-node Slurm cluster (`.ci/slurm`): `SLURM_CONF` names it. Locally without one
/// the test says so and passes; in CI it must be there.
fn slurm() -> bool {
    if !have("sbatch") {
        return false;
    }
    let up = std::env::var_os("SLURM_CONF").is_some()
        && Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Slurm cluster answers (SLURM_CONF); .ci/run starts one with .ci/slurm"
        );
        eprintln!("skipped: no Slurm cluster (start one with `source .ci/slurm start`)");
    }
    up
}

fn sbatch(f: &Fixture, args: &[&str]) -> String {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg("--cpus-per-task=1")
        .arg(format!(
            "--export=ALL,FERRY={}",
            env!("CARGO_BIN_EXE_ferry")
        ))
        .arg(format!("--chdir={}", f.root().display()))
        .arg(format!("--output={}/slurm-%A_%a.out", f.root().display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A job's state and exit code, as `scontrol` shows them while it is remembered.
fn job(id: &str) -> (String, String) {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or("")
            .to_string()
    };
    (field("JobState="), field("ExitCode="))
}

/// Waits until no job of `id` (every task of an array) is pending or running.
fn wait_ended(id: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-j", id, "-o", "%T"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        assert!(started.elapsed() < within, "job {id} did not end in time");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `deploy/slurm/ferry.sbatch` as its header says: an array of 4 shards, and `finish`
/// after it with `afterany`. One shard is cancelled in the middle: finish names it and
/// changes nothing; that index alone is submitted again, then finish again, and the
/// result is the same as one uninterrupted run's.
#[test]
fn slurm_array_of_four_shards_with_one_cancelled_and_resubmitted() {
    if !slurm() {
        return;
    }
    let f = Fixture::new();
    tree(&f, 64 << 10);
    // Slow enough (each shard about 2 MiB at 512 KiB/s) to be cancelled in the middle.
    f.plan(&PLAN.replace("tasks:", "bandwidth: { limit: 512KiB/s }\ntasks:"));
    let script = repo().join("deploy/slurm/ferry.sbatch");
    let script = script.to_str().unwrap();
    let array = sbatch(&f, &["--array=0-3", script, "plan.yaml", "4"]);
    let finish = sbatch(
        &f,
        &[
            &format!("--dependency=afterany:{array}"),
            script,
            "plan.yaml",
            "4",
            "finish",
        ],
    );
    // Cancel shard 1 once it has been running for a moment.
    let victim = format!("{array}_1");
    let started = Instant::now();
    while job(&victim).0 != "RUNNING" {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "shard 1 never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("scancel").arg(&victim).status().unwrap();
    assert!(status.success());
    wait_ended(&array, Duration::from_secs(300));
    wait_ended(&finish, Duration::from_secs(120));
    let (state, code) = job(&finish);
    assert_eq!(
        (state.as_str(), code.as_str()),
        ("FAILED", "1:0"),
        "finish with shard 1 cancelled"
    );
    let log = std::fs::read_to_string(f.path(&format!("slurm-{finish}_4294967294.out")))
        .or_else(|_| {
            // A job that is not an array names its output with its own ID only.
            let name = std::fs::read_dir(f.root())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with(&format!("slurm-{finish}")))
                .unwrap();
            std::fs::read_to_string(f.path(&name))
        })
        .unwrap();
    assert!(
        log.contains("shard 1 of 4") && log.contains("nothing was changed"),
        "{log}"
    );
    assert!(!f.path("state/p/summary.json").exists());
    // Shard 1 alone, then finish again.
    let again = sbatch(&f, &["--array=1", script, "plan.yaml", "4"]);
    let finish = sbatch(
        &f,
        &[
            &format!("--dependency=afterany:{again}"),
            script,
            "plan.yaml",
            "4",
            "finish",
        ],
    );
    wait_ended(&again, Duration::from_secs(300));
    wait_ended(&finish, Duration::from_secs(120));
    assert_eq!(job(&finish), ("COMPLETED".to_string(), "0:0".to_string()));
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert_each_item_once(&f, 4);
}

fn summary(f: &Fixture) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(f.path("state/p/summary.json")).unwrap()).unwrap()
}

fn all_shards(f: &Fixture, count: u32) {
    for k in 0..count {
        f.ferry(&["run", "plan.yaml", "--shard", &format!("{k}/{count}")])
            .assert_code(0);
    }
}

/// The top folders get their modes at `finish`, not from the shard that lists them:
/// other shards still write into them (a read-only one would keep them out).
#[test]
fn top_folders_get_their_modes_at_finish() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::new();
    tree(&f, 100);
    for top in 0..6 {
        std::fs::set_permissions(
            f.path(&format!("src/dept-{top}")),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
    }
    f.plan(PLAN);
    all_shards(&f, 3);
    let mode = |top: u32| {
        std::fs::metadata(f.path(&format!("dest/dept-{top}")))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert!((0..6).all(|top| mode(top) != 0o750), "set before finish");
    f.ferry(&["finish", "plan.yaml", "--shards", "3"])
        .assert_code(0);
    assert!((0..6).all(|top| mode(top) == 0o750));
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// A whole top folder gone from the source (`deletions: mirror`): each shard deletes
/// its items inside it, and `finish` the emptied folder itself, counted once.
#[test]
fn a_top_folder_gone_from_the_source_is_gone_after_finish() {
    let f = Fixture::new();
    tree(&f, 100);
    f.plan(&PLAN.replace(
        "rules: posix",
        "rules: posix, deletions: mirror, max_delete: { items: 1000, percent: 100 }",
    ));
    all_shards(&f, 3);
    f.ferry(&["finish", "plan.yaml", "--shards", "3"])
        .assert_code(0);
    std::fs::remove_dir_all(f.path("src/dept-3")).unwrap();
    // Shards in reverse order: the folder's own shard runs before others empty it.
    for k in (0..3).rev() {
        f.ferry(&["run", "plan.yaml", "--shard", &format!("{k}/3")])
            .assert_code(0);
    }
    f.ferry(&["finish", "plan.yaml", "--shards", "3"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    // dept-3: readme, 5 teams with a note, a deep folder and 4 files each, and itself.
    assert_eq!(
        summary(&f)["totals"]["deleted"],
        1 + 1 + 5 * (1 + 1 + 1 + 4)
    );
    assert_eq!(summary(&f)["status"], "completed");
}

/// `max_delete.items` is the whole run's: each of N shards may delete its Nth part, so
/// that splitting a run does not multiply the cap.
#[test]
fn max_delete_is_shared_out_between_shards() {
    let f = Fixture::new();
    tree(&f, 100);
    f.plan(&PLAN.replace(
        "rules: posix",
        "rules: posix, deletions: mirror, max_delete: { items: 2, percent: 100 }",
    ));
    all_shards(&f, 2);
    f.ferry(&["finish", "plan.yaml", "--shards", "2"])
        .assert_code(0);
    // Three files in three units: one shard has at least two, over its cap of one.
    for top in [0, 2, 4] {
        std::fs::remove_file(f.path(&format!("src/dept-{top}/team-0/note.txt"))).unwrap();
    }
    for k in 0..2 {
        f.ferry(&["run", "plan.yaml", "--shard", &format!("{k}/2")]);
    }
    f.ferry(&["finish", "plan.yaml", "--shards", "2"])
        .assert_code(1);
    let failures = summary(&f)["failures"].to_string();
    assert!(failures.contains("delete-capped"), "{failures}");
}

/// A second split of a task is refused while the first runs, and leaves no state
/// behind. (Two started at the same moment are kept apart by the task's split lock:
/// the second exits 4.)
#[test]
fn a_second_split_is_refused_while_the_first_runs() {
    let f = Fixture::new();
    tree(&f, 64 << 10);
    f.plan(&PLAN.replace("tasks:", "bandwidth: { limit: 1MiB/s }\ntasks:"));
    let mut first = f.spawn(&["run", "plan.yaml", "--shard", "0/2"]);
    let started = Instant::now();
    while !f.path("state/p/t/shard-0-of-2/session.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "shard 0 never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = f.ferry(&["run", "plan.yaml", "--shard", "0/3"]);
    let unsharded = f.ferry(&["run", "plan.yaml"]);
    let _ = first.kill();
    let _ = first.wait();
    for refused in [&second, &unsharded] {
        refused.assert_code(2);
        assert!(
            refused
                .stderr
                .contains("shard 0 of 2 is in the middle of round 1 ("),
            "{}",
            refused.stderr
        );
    }
    assert!(!f.path("state/p/t/shard-0-of-3").exists());
    assert!(!f.path("state/p/t/session.json").exists());
}

/// Changing N between rounds keeps the rounds incremental: the new shards start from
/// the index of the old ones, so unchanged files stay unchanged, a changed file is
/// carried, a deleted one mirrored, and nothing is taken for a conflict. Finishing the
/// old split after the new one ran is refused.
#[test]
fn another_n_in_the_next_round_starts_from_the_last_index() {
    let f = Fixture::new();
    tree(&f, 100);
    f.plan(&PLAN.replace("rules: posix", "rules: posix, deletions: mirror"));
    all_shards(&f, 2);
    f.ferry(&["finish", "plan.yaml", "--shards", "2"])
        .assert_code(0);
    std::fs::remove_file(f.path("src/dept-1/team-1/deep/file-1.bin")).unwrap();
    f.file(
        "src/dept-5/team-2/note.txt",
        "changed, and longer than before",
    );
    all_shards(&f, 3);
    f.ferry(&["finish", "plan.yaml", "--shards", "3"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    let totals = &summary(&f)["totals"];
    assert_eq!(totals["deleted"], 1, "{totals}");
    assert_eq!(totals["failed"], 0, "{totals}");
    assert_eq!(totals["imported"], 1, "{totals}");
    assert!(totals["unchanged"].as_u64().unwrap() > 100, "{totals}");
    // The 2-split is older than the 3-split now.
    let stale = f.ferry(&["finish", "plan.yaml", "--shards", "2"]);
    stale.assert_code(1);
    assert!(
        stale.stderr.contains("3 shards ran after these 2 shards"),
        "{}",
        stale.stderr
    );
    // And back to one unsharded run, from the 3-split's index.
    f.file("src/top.txt", "changed at the top");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    let round: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("state/p/t/reports/R1/round.json")).unwrap())
            .unwrap();
    assert_eq!(round["stages"]["imported"], 1, "{round}");
}

/// Tasks that only scan keep no rounds: `finish` passes over them.
#[test]
fn finish_passes_over_tasks_that_only_scan() {
    let f = Fixture::new();
    tree(&f, 100);
    f.file("other/a.txt", "a");
    f.plan(&format!(
        "{PLAN}  - name: look\n    source: other\n    destination: dest2\n    settings: {{ rules: posix, mode: scan-only }}\n"
    ));
    all_shards(&f, 2);
    f.ferry(&["finish", "plan.yaml", "--shards", "2"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}
