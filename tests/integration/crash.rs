//! Crash points (issue 17): for every failpoint of `ferry::failpoint::POINTS` and every
//! action (a crash, `EIO`, `ENOSPC`), a migration that reaches it fails visibly (never
//! exit 0), and a second one without faults completes it: the destination equals the
//! source, each item is reported once per round, and nothing temporary or staged is
//! left. The list of points is checked against the source, and every write primitive in
//! the source is covered by a point or named here with the reason it needs none.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::Path;

use crate::harness::Fixture;
use crate::session::assert_same_tree;

const ACTIONS: [&str; 3] = ["crash", "eio", "enospc"];

fn tree(f: &Fixture) {
    for i in 0..6 {
        f.file(&format!("src/d{}/f{i}.txt", i % 2), format!("file {i}"));
    }
    f.dir("src/empty");
    // Two names of one file, in packages of their own: the second is a link.
    f.file("src/d0/linked.txt", "one file, two names");
    fs::hard_link(
        f.path("src/d0/linked.txt"),
        f.path("src/d1/linked-again.txt"),
    )
    .expect("hard link");
    // Larger than a package: it goes in parts.
    f.file(
        "src/big.bin",
        crate::harness::incompressible(2_500_000, 0x5DEE_CE66_D1CE_4E5B),
    );
}

/// Every path under `dir`.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(entry.path());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), out);
        }
    }
}

fn scenario(point: &str, action: &str, staging: &str) {
    let mut f = Fixture::new();
    tree(&f);
    f.plan(&format!("version: 1\nname: p\nworking_folder: state\n{staging}tasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix, package: {{ max_size: 1MiB, max_files: 2 }}, retries: {{ attempts: 1, backoff: 1ms }} }}\n"));
    f.env("FERRY_FAILPOINTS", &format!("{point}={action}"));
    let faulted = f.ferry(&["run", "plan.yaml"]);
    assert_ne!(
        faulted.code, 0,
        "{point}={action}: a run whose write failed exited 0\n{}",
        faulted.stderr
    );
    f.env("FERRY_FAILPOINTS", "");
    let clean = f.ferry(&["run", "plan.yaml"]);
    assert_eq!(
        clean.code, 0,
        "{point}={action}: the run after the fault did not complete\nfaulted ({}):\n{}\nclean:\n{}",
        faulted.code, faulted.stderr, clean.stderr
    );
    assert_same_tree(&f.path("src"), &f.path("dest"));

    let mut everything = Vec::new();
    walk(f.root(), &mut everything);
    for path in &everything {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with(".ferry-") && !name.ends_with(".partial"),
            "{point}={action}: left behind: {}",
            path.display()
        );
        if name.starts_with("ItemReport_R") {
            let text = fs::read_to_string(path).unwrap();
            let mut seen = HashSet::new();
            for line in text.lines().skip(1) {
                let source = line.split(',').next().unwrap_or_default();
                assert!(
                    seen.insert(source.to_string()),
                    "{point}={action}: {source} twice in {}",
                    path.display()
                );
            }
        }
    }
    let staged = crate::harness::staged_objects(&f);
    assert!(
        staged.is_empty(),
        "{point}={action}: staged data left: {staged:?}"
    );
}

fn point(name: &str) {
    for action in ACTIONS {
        scenario(name, action, "");
    }
}

/// The same in direct mode (`staging: {kind: none}`), for the points it reaches.
fn direct_point(name: &str) {
    for action in ACTIONS {
        scenario(name, action, "staging: { kind: none }\n");
    }
}

macro_rules! direct_points {
    ($($test:ident = $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                direct_point($name);
            }
        )*
    };
}

// Direct mode stages nothing: `staging-put` and `container-delete` are never reached.
direct_points!(
    direct_key_write = "key-write",
    direct_journal_append = "journal-append",
    direct_temp_file = "temp-file",
    direct_sync = "sync",
    direct_rename = "rename",
    direct_folder_sync = "folder-sync",
    direct_link = "link",
    direct_index_save = "index-save",
    direct_session_save = "session-save",
);

macro_rules! points {
    ($($test:ident = $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                point($name);
            }
        )*
        /// The tests above are the list of points, in full.
        const TESTED: &[&str] = &[$($name),*];
    };
}

points!(
    key_write = "key-write",
    staging_put = "staging-put",
    journal_append = "journal-append",
    temp_file = "temp-file",
    sync = "sync",
    rename = "rename",
    folder_sync = "folder-sync",
    link = "link",
    index_save = "index-save",
    session_save = "session-save",
    container_delete = "container-delete",
);

/// Write primitives that need no failpoint of their own, by file and function, and why.
const EXEMPT: &[(&str, &str, &str)] = &[
    (
        "src/state/durable.rs",
        "write_atomic",
        "its callers have the points (index-save, session-save); the others write reports or notes that are written again",
    ),
    (
        "src/state/durable.rs",
        "sync_parent",
        "part of write_atomic",
    ),
    (
        "src/state/journal.rs",
        "open",
        "the new journal's header: a crash leaves no journal or a .partial one, and the round starts over",
    ),
    (
        "src/state/journal.rs",
        "sync_dir",
        "after the header's rename",
    ),
    (
        "src/run/items.rs",
        "finish",
        "the item list is hashed and its hash kept in the scan checkpoint: a torn one is refused and the scan redone",
    ),
    (
        "src/run/round.rs",
        "abandon",
        "moving a journal aside on --restart: either name is read right",
    ),
    (
        "src/run/ticket.rs",
        "get_file",
        "a file of a ticket's round, fetched whole before the round is taken over",
    ),
    (
        "src/report/mod.rs",
        "*",
        "reports are rendered again from the journal and round.json",
    ),
    (
        "src/report/round.rs",
        "*",
        "the item report is rebuilt from the journal when a run resumes",
    ),
    (
        "src/command/metrics.rs",
        "*",
        "the metrics file is written again every few seconds",
    ),
    ("src/command/plan_from.rs", "*", "not part of a migration"),
    (
        "src/command/finish.rs",
        "run",
        "merged reports moved into place: finish merges again from the shards' reports, which it never changes",
    ),
];

/// The points in the source are exactly the list, the tests cover the list, and every
/// write primitive is in a function with a point or named in `EXEMPT`.
#[test]
fn every_write_step_has_a_failpoint() {
    let listed: BTreeSet<&str> = ferry::failpoint::POINTS.iter().copied().collect();
    assert_eq!(TESTED.iter().copied().collect::<BTreeSet<_>>(), listed);
    let primitive = regex::Regex::new(
        r"sync_all\(\)|sync_data\(\)|fs::rename\(|renameat|rustix::fs::fsync\(|syncfs\(",
    )
    .unwrap();
    let hit =
        regex::Regex::new(r#"failpoint::hit\("([a-z-]+)"\)|failpoint\("([a-z-]+)"\)"#).unwrap();
    let function = regex::Regex::new(r"^\s*(?:pub(?:\([a-z]+\))? )?fn ([a-z_0-9]+)").unwrap();
    let mut found = BTreeSet::new();
    let mut uncovered = Vec::new();
    let mut used = BTreeSet::new();
    let root = crate::harness::repo();
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    for file in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if relative == "src/fuzzing.rs" || relative == "src/failpoint.rs" {
            continue;
        }
        let text = fs::read_to_string(file).unwrap();
        // Test modules are not write steps.
        let text = text.split("#[cfg(test)]").next().unwrap();
        let mut current = String::new();
        let mut covered = false;
        for line in text.lines() {
            if let Some(c) = function.captures(line) {
                current = c[1].to_string();
                covered = false;
            }
            for c in hit.captures_iter(line) {
                covered = true;
                found.insert(c.get(1).or(c.get(2)).unwrap().as_str().to_string());
            }
            let code = line.split("//").next().unwrap();
            if primitive.is_match(code) && !covered {
                let exempt = EXEMPT
                    .iter()
                    .position(|(f, func, _)| *f == relative && (*func == "*" || *func == current));
                if let Some(i) = exempt {
                    used.insert(i);
                } else {
                    uncovered.push(format!("{relative}: fn {current}: {}", line.trim()));
                }
            }
        }
    }
    assert!(
        uncovered.is_empty(),
        "write steps without a failpoint (add one, or name them in EXEMPT with the reason):\n{}",
        uncovered.join("\n")
    );
    assert_eq!(
        found.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        listed,
        "the failpoints in the source and POINTS differ"
    );
    let stale: Vec<_> = EXEMPT
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, (f, func, _))| format!("{f}: fn {func}"))
        .collect();
    assert!(
        stale.is_empty(),
        "EXEMPT names what no longer writes: {stale:?}"
    );
}
