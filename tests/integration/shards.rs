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
    assert_eq!(f.listing(), before, "a refused finish changed nothing");
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
    assert_eq!(f.listing(), before);
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
    assert_eq!(f.listing(), before);
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
