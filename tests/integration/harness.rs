//! A small builder for integration tests: a temporary folder with a plan and a source
//! tree, the real `ferry` binary run inside it, and its output with temporary paths
//! redacted for snapshots.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary folder to run ferry in.
pub struct Fixture {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("ferry-test-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        Fixture {
            dir,
            env: vec![("HOME".into(), home.display().to_string())],
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    /// Writes a file (and its folders) relative to the fixture's root.
    pub fn file(&self, relative: &str, content: impl AsRef<[u8]>) -> &Self {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(path, content).expect("write file");
        self
    }

    /// Creates a folder relative to the fixture's root.
    pub fn dir(&self, relative: &str) -> &Self {
        std::fs::create_dir_all(self.path(relative)).expect("create folder");
        self
    }

    /// Makes a FIFO (named pipe) at `relative`, mode 0644.
    pub fn fifo(&self, relative: &str) -> &Self {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            self.path(relative),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("make a FIFO");
        self
    }

    /// Writes `plan.yaml`.
    pub fn plan(&self, yaml: &str) -> &Self {
        self.file("plan.yaml", yaml)
    }

    /// Sets an environment variable for every run.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs `ferry ARGS` in the fixture's root with a clean environment.
    /// Runs `ferry run plan.yaml` again and checks that it completes with nothing to
    /// import: everything is in place.
    pub fn run_finds_nothing(&self) -> Run {
        let again = self.ferry(&["run", "plan.yaml"]);
        again.assert_code(0);
        assert!(
            again.stderr.contains("imported 0 items"),
            "{}",
            again.stderr
        );
        again
    }

    pub fn ferry(&self, args: &[&str]) -> Run {
        self.run_as(None, args)
    }

    /// Starts `ferry ARGS` in the fixture's root without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        use std::process::Stdio;
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command.args(args).current_dir(self.root()).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry")
    }

    /// Runs `ferry ARGS` as another account (`setpriv`, as root), or as this one.
    pub fn run_as(&self, uid: Option<u32>, args: &[&str]) -> Run {
        let ferry = env!("CARGO_BIN_EXE_ferry");
        let mut command = match uid {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                    "--",
                    ferry,
                ]);
                c
            }
            None => Command::new(ferry),
        };
        command.args(args).current_dir(self.root()).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let output = output_within(command, std::time::Duration::from_secs(120));
        check_reports(self.root());
        Run {
            // A process killed by a signal (a crash point's abort) gets the shell's code.
            code: output.status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&output.status).unwrap_or(0)
            }),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            root: self.root().to_path_buf(),
        }
    }

    /// Every path under the root, for checking that a command touched nothing.
    pub fn listing(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                out.push(entry.path());
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&entry.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), &mut out);
        out.sort();
        out
    }
}

/// Runs a command, and fails the test instead of hanging when it does not end in time
/// (a scan that opened a FIFO would wait forever).
fn output_within(mut command: Command, limit: std::time::Duration) -> std::process::Output {
    use std::process::Stdio;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    let pid = child.id();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    match receive.recv_timeout(limit) {
        Ok(output) => output.expect("ferry's output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("ferry did not finish within {limit:?}");
        }
    }
}

/// What one run of ferry did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    root: PathBuf,
}

impl Run {
    fn redact(&self, text: &str) -> String {
        let root = self.root.display().to_string();
        let canonical = self
            .root
            .canonicalize()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut text = text.replace(&root, "[TEMP]");
        if !canonical.is_empty() {
            text = text.replace(&canonical, "[TEMP]");
        }
        redact_host(&text)
    }

    /// Exit code, stdout and stderr, temporary paths redacted: what a snapshot holds.
    pub fn snapshot(&self) -> String {
        let mut out = format!("exit: {}\n", self.code);
        if !self.stdout.is_empty() {
            out.push_str(&format!("--- stdout\n{}", self.redact(&self.stdout)));
        }
        if !self.stderr.is_empty() {
            out.push_str(&format!("--- stderr\n{}", self.redact(&self.stderr)));
        }
        out
    }

    pub fn stdout(&self) -> String {
        self.redact(&self.stdout)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.snapshot());
        self
    }
}

/// Replaces this machine's name (the reports' "Device name") with `[HOST]`.
pub fn redact_host(text: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match host.trim() {
        "" => text.to_string(),
        host => text.replace(&format!(",{host}\r\n"), ",[HOST]\r\n"),
    }
}

/// The repository's root, for tests of its own files.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether a program is on PATH. In CI every tool the tests use must be there.
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{program}` is not installed; .ci/run must install it"
        );
        eprintln!("skipped: `{program}` is not installed (CI installs it)");
    }
    found
}

/// The example plans in `plans/`, sorted.
pub fn example_plans() -> Vec<PathBuf> {
    let mut plans: Vec<_> = std::fs::read_dir(repo().join("plans"))
        .expect("plans/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    plans
}

/// Checks every round's reports under `root` against each other: an item appears once
/// in the item report, in one final state; the summary's counters are the sums of its
/// rows; the failure report lists exactly its failed rows; a completed round accounts
/// for every item it set out to migrate. Every run of the test suite checks this after
/// every `ferry` it runs (reliability review, finding 11).
pub fn check_reports(root: &Path) {
    let mut rounds = Vec::new();
    find_rounds(root, &mut rounds);
    for folder in rounds {
        check_round(&folder);
    }
}

fn find_rounds(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            find_rounds(&path, out);
        } else if entry.file_name() == "round.json" {
            out.push(dir.to_path_buf());
        }
    }
}

fn csv_rows(path: &Path) -> Option<(csv::StringRecord, Vec<csv::StringRecord>)> {
    let mut reader = csv::Reader::from_path(path).ok()?;
    let headers = reader.headers().ok()?.clone();
    let rows = reader.records().map(|r| r.expect("a CSV row")).collect();
    Some((headers, rows))
}

fn column(headers: &csv::StringRecord, name: &str) -> usize {
    headers
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn check_round(folder: &Path) {
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("round.json")).expect("round.json"))
            .expect("round.json parses");
    let round = summary["round"].as_u64().expect("round");
    let stages = &summary["stages"];
    let count = |key: &str| {
        stages[key]
            .as_u64()
            .unwrap_or_else(|| panic!("stages.{key}"))
    };
    let failed = count("failed_reading")
        + count("failed_packaging")
        + count("failed_uploading")
        + count("failed_importing");
    let shown = folder.display();
    // ItemSummary is round.json's counters.
    let (headers, rows) =
        csv_rows(&folder.join(format!("ItemSummary_R{round}.csv"))).expect("ItemSummary");
    assert_eq!(rows.len(), 1, "{shown}: one ItemSummary row");
    for (column_name, key) in [
        ("Imported", "imported"),
        ("Already at destination", "already_at_destination"),
        ("Failed reading", "failed_reading"),
        ("Failed packaging", "failed_packaging"),
        ("Failed uploading", "failed_uploading"),
        ("Failed importing", "failed_importing"),
    ] {
        let cell: u64 = rows[0][column(&headers, column_name)]
            .parse()
            .expect("a count");
        assert_eq!(cell, count(key), "{shown}: ItemSummary {column_name}");
    }
    let Some((headers, rows)) = csv_rows(&folder.join(format!("ItemReport_R{round}.csv"))) else {
        return;
    };
    let (dest, status) = (column(&headers, "Destination"), column(&headers, "Status"));
    let mut seen = std::collections::HashSet::new();
    let (mut migrated, mut skipped, mut failed_rows) = (0u64, 0u64, 0u64);
    for row in &rows {
        assert!(
            seen.insert(row[dest].to_string()),
            "{shown}: {} is listed twice in the item report",
            &row[dest]
        );
        match &row[status] {
            "Migrated" => migrated += 1,
            "Skipped" => skipped += 1,
            "Failed" => failed_rows += 1,
            other => panic!("{shown}: status {other}"),
        }
    }
    assert_eq!(migrated, count("imported"), "{shown}: imported");
    assert_eq!(
        skipped,
        count("already_at_destination"),
        "{shown}: already there"
    );
    assert_eq!(failed_rows, failed, "{shown}: failed items");
    let failure_rows = csv_rows(&folder.join(format!("ItemFailureReport_R{round}.csv")))
        .map_or(0, |(_, rows)| rows.len() as u64);
    assert_eq!(failure_rows, failed_rows, "{shown}: failure report rows");
    if summary["status"] == "completed" {
        let expected = summary["scan"]["to_migrate"].as_u64().expect("to_migrate");
        assert_eq!(
            migrated + skipped + failed_rows,
            expected,
            "{shown}: a completed round accounts for every item once"
        );
    }
}

/// `bytes` of data no compressor can shrink (xorshift64 from `seed`), so that sizes in
/// staging are the sizes of the files.
pub fn incompressible(bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The objects in a fixture's local staging and their sizes (each container is a 0300
/// folder, opened for the count and closed again).
pub fn staged_objects(f: &Fixture) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut objects = Vec::new();
    let Ok(containers) = std::fs::read_dir(f.path("state/staging")) else {
        return objects;
    };
    for container in containers.flatten() {
        let path = container.path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        for object in std::fs::read_dir(&path).unwrap().flatten() {
            objects.push((object.path(), object.metadata().unwrap().len()));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o300)).unwrap();
    }
    objects
}

/// The contents of every file under `root`, as text (lossy), for searching them.
pub fn file_texts(root: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                texts.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    texts
}
