//! A round driven in-process through the staging traits, with staging in memory and
//! the task's state, source and destination in a temporary folder: the split roles
//! (stage here, import there) and a no-change round, without a binary or a staging
//! folder.

use super::*;
use crate::staging::memory::MemoryStaging;

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    plan: Plan,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    fs::create_dir_all(root.join("src/sub")).unwrap();
    fs::write(root.join("src/a.txt"), "alpha").unwrap();
    fs::write(root.join("src/sub/b.txt"), "bravo").unwrap();
    fs::write(
        root.join("plan.yaml"),
        "version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: src\n    destination: dest\n",
    )
    .unwrap();
    let plan = Plan::load(&root.join("plan.yaml")).unwrap();
    Setup {
        _dir: dir,
        root,
        plan,
    }
}

fn run(setup: &Setup, staging: &MemoryStaging, stages: Stages) -> Result<TaskRun, RunError> {
    let task = &setup.plan.tasks[0];
    let folder = state::task_folder(&setup.plan, &task.name);
    let mut session = Session::load_checked(&folder, &task.name)
        .unwrap()
        .unwrap_or_else(|| Session::new(task));
    let stop = AtomicBool::new(false);
    let memory = package::reads::Memory::new(crate::plan::DEFAULT_MEMORY.0);
    let reporter = Reporter::start("p".into());
    let round = Round {
        plan: &setup.plan,
        task,
        stages,
        workers: Some(2),
        walk_threads: Some(2),
        reporter: &reporter,
        control: Control {
            restart: false,
            stop: &stop,
            force: false,
            ticket: None,
            hand_over: false,
            memory: &memory,
        },
        staging,
        folder: &folder,
        layout: TaskLayout::at(&folder),
    };
    let result = run_round(&round, &mut session);
    drop(round);
    reporter.finish();
    result
}

#[test]
fn staged_here_imported_there_through_the_traits() {
    let setup = setup();
    let staging = MemoryStaging::default();
    let send = Stages {
        send: true,
        import: false,
    };
    let staged = run(&setup, &staging, send).unwrap();
    assert_eq!(staged.round, 1);
    assert!(staged.counters.staged > 0, "{:?}", staged.counters);
    assert_eq!(staging.containers().len(), 1, "one container for the round");
    assert!(!setup.root.join("dest/a.txt").exists());

    let import = Stages {
        send: false,
        import: true,
    };
    let imported = run(&setup, &staging, import).unwrap();
    assert_eq!(imported.round, 1, "the staged round, not a new one");
    assert!(imported.resumed);
    assert_eq!(fs::read(setup.root.join("dest/a.txt")).unwrap(), b"alpha");
    assert_eq!(
        fs::read(setup.root.join("dest/sub/b.txt")).unwrap(),
        b"bravo"
    );
    assert!(
        staging.containers().is_empty(),
        "the round's container went"
    );

    // Nothing changed: a new round that completes without a container.
    let all = Stages {
        send: true,
        import: true,
    };
    let again = run(&setup, &staging, all).unwrap();
    assert_eq!(again.round, 2);
    assert_eq!(again.counters.imported, 0);
    assert_eq!(
        again.unchanged_since_last_round, 3,
        "a.txt, sub and sub/b.txt"
    );
    assert!(staging.containers().is_empty());
}

#[test]
fn a_staging_that_fails_stops_the_round_with_the_staging_named() {
    let setup = setup();
    let staging = MemoryStaging::default();
    // Opening the container fails for good (not a transient error).
    staging.fail_next(1, io::ErrorKind::PermissionDenied);
    let all = Stages {
        send: true,
        import: true,
    };
    let e = run(&setup, &staging, all).unwrap_err();
    assert!(
        matches!(&e, RunError::Staging { staging, .. } if staging == "memory"),
        "{e}"
    );
    // Nothing was imported, and the next run of the round resumes it.
    assert!(!setup.root.join("dest/a.txt").exists());
    let done = run(&setup, &staging, all).unwrap();
    assert_eq!(done.round, 1);
    assert_eq!(fs::read(setup.root.join("dest/a.txt")).unwrap(), b"alpha");
}
