//! `ferry run`: whole migrations checked file by file, split stages, tampering, and
//! that the key never shows.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::harness::Fixture;

pub fn plan(settings: &str) -> String {
    format!(
        "version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {settings}\n"
    )
}

/// A tree that has everything that makes migrations go wrong.
fn hostile_tree(f: &Fixture) {
    f.file("src/plain.txt", "plain");
    f.file("src/with space/and  two.txt", "spaces");
    f.file("src/nfc/caf\u{e9}.txt", "composed");
    f.file("src/nfd/cafe\u{301}.txt", "decomposed");
    f.dir("src/bytes");
    fs::write(
        f.path("src/bytes")
            .join(OsStr::from_bytes(b"latin1-\xe9\xff")),
        "bytes",
    )
    .unwrap();
    fs::write(
        f.path("src/bytes").join(OsStr::from_bytes(b"new\nline")),
        "newline",
    )
    .unwrap();
    let long = "n".repeat(255);
    f.file(&format!("src/long/{long}"), "a 255-byte name");
    let deep: String = (0..40).map(|i| format!("level-{i:02}/")).collect();
    f.file(&format!("src/{deep}deep.txt"), "deep");
    f.file("src/empty-file", "");
    f.dir("src/empty-folder/inner-empty");
    let sparse = fs::File::create(f.path("src/sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    use std::os::unix::fs::FileExt as _;
    sparse.write_all_at(b"middle", 4 << 20).unwrap();
    // Larger than a package (1 MiB below): it travels in parts.
    let big: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    f.file("src/big.bin", &big);
    f.file("src/modes/private.txt", "0600");
    fs::set_permissions(
        f.path("src/modes/private.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    f.file("src/modes/script.sh", "#!/bin/sh\n");
    fs::set_permissions(
        f.path("src/modes/script.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    f.file("src/old.txt", "old");
    fs::File::options()
        .write(true)
        .open(f.path("src/old.txt"))
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789))
        .unwrap();
    std::os::unix::fs::symlink("plain.txt", f.path("src/link-to-plain")).unwrap();
}

/// Every file and link under `root`, with what must survive the trip.
pub fn inventory(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let what = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else if meta.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else {
                let hash = blake3::hash(&fs::read(&path).unwrap());
                format!(
                    "file {} {:o} {}.{:09} {}",
                    meta.len(),
                    meta.mode() & 0o7777,
                    meta.mtime(),
                    meta.mtime_nsec(),
                    hash.to_hex()
                )
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

pub fn ferry_temp_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_bytes().starts_with(b".ferry-") {
                found.push(entry.path());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn a_hostile_tree_migrates_byte_identical_with_times_and_modes() {
    let f = Fixture::new();
    hostile_tree(&f);
    f.plan(&plan(
        "{ rules: posix, symlinks: copy-link, package: { max_size: 1MiB, max_files: 5 } }",
    ));
    let run = f.ferry(&["run", "plan.yaml", "--workers", "3"]);
    run.assert_code(0);
    assert_eq!(inventory(&f.path("src")), inventory(&f.path("dest")));
    assert!(ferry_temp_files(&f.path("dest")).is_empty());
    // The round is complete: its container and its key are gone.
    let staging = f.path("state/staging");
    assert_eq!(
        fs::read_dir(&staging).unwrap().count(),
        0,
        "staging not empty"
    );
    assert!(!f.path("state/p/t/keys/R1.key").exists());
    // A second run finds everything in place.
    f.run_finds_nothing();
}

#[test]
fn split_stages_hand_over_through_the_key_file() {
    let f = Fixture::new();
    hostile_tree(&f);
    f.plan(&plan(
        "{ rules: posix, symlinks: copy-link, package: { max_size: 1MiB } }",
    ));
    let staged = f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"]);
    staged.assert_code(0);
    assert!(!f.path("dest").exists(), "staging wrote the destination");
    let key = f.path("state/p/t/keys/R1.key");
    assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    let container = only_container(&f);
    assert_eq!(fs::metadata(&container).unwrap().mode() & 0o777, 0o300);
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    assert_eq!(inventory(&f.path("src")), inventory(&f.path("dest")));
    assert!(!key.exists());
    // Nothing left to import.
    let again = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    again.assert_code(5);
    assert!(again.stderr.contains("no staged round"), "{}", again.stderr);
}

fn only_container(f: &Fixture) -> PathBuf {
    let containers: Vec<PathBuf> = fs::read_dir(f.path("state/staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(containers.len(), 1);
    containers[0].clone()
}

#[test]
fn a_flipped_byte_in_staging_fails_that_package_and_writes_none_of_it() {
    let f = Fixture::new();
    for i in 0..6 {
        f.file(&format!("src/f{i}.txt"), format!("file {i} ").repeat(100));
    }
    // One file per package: six packages.
    f.plan(&plan("{ package: { max_files: 1 } }"));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let container = only_container(&f);
    fs::set_permissions(&container, fs::Permissions::from_mode(0o700)).unwrap();
    let mut objects: Vec<PathBuf> = fs::read_dir(&container)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    objects.sort();
    assert_eq!(objects.len(), 6);
    let victim = &objects[0];
    let mut bytes = fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(victim, bytes).unwrap();
    fs::set_permissions(&container, fs::Permissions::from_mode(0o300)).unwrap();
    let run = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("integrity check failed for package"),
        "{}",
        run.stderr
    );
    let imported = fs::read_dir(f.path("dest")).unwrap().count();
    assert_eq!(imported, 5, "exactly the damaged package's file is missing");
    assert!(ferry_temp_files(&f.path("dest")).is_empty());
}

#[test]
fn the_key_never_appears_in_output_reports_or_state() {
    let f = Fixture::new();
    hostile_tree(&f);
    f.plan(&plan("{ rules: posix, package: { max_size: 1MiB } }"));
    let staged = f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"]);
    let text = fs::read_to_string(f.path("state/p/t/keys/R1.key")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hex = json["key"].as_str().unwrap().to_string();
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let imported = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    imported.assert_code(0);
    let encodings = [
        hex.clone(),
        hex.to_uppercase(),
        base64(&raw, false),
        base64(&raw, true),
    ];
    let mut haystacks = vec![
        staged.stdout.clone(),
        staged.stderr.clone(),
        imported.stdout.clone(),
        imported.stderr.clone(),
    ];
    let mut files = Vec::new();
    let mut stack = vec![f.path("state"), f.path("dest")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.file_type().unwrap().is_file() {
                files.push(entry.path());
            }
        }
    }
    assert!(files.len() > 10);
    for file in &files {
        haystacks.push(String::from_utf8_lossy(&fs::read(file).unwrap()).into_owned());
        let bytes = fs::read(file).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == raw.as_slice()),
            "raw key bytes in {}",
            file.display()
        );
    }
    for text in &haystacks {
        for encoding in &encodings {
            assert!(
                !text.contains(encoding.as_str()),
                "the key appears as {encoding}"
            );
        }
    }
}

fn base64(bytes: &[u8], url: bool) -> String {
    let table: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn independent_tasks_run_together_and_dependents_after() {
    let f = Fixture::new();
    for task in ["a", "b", "c"] {
        for i in 0..20 {
            f.file(
                &format!("{task}/dir{}/f{i}.txt", i % 3),
                format!("{task} {i}"),
            );
        }
    }
    f.plan(
        "version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: a\n    source: a\n    destination: out/a\n  - name: b\n    source: b\n    destination: out/b\n  - name: c\n    source: c\n    destination: out/c\n    depends_on: [a]\n",
    );
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(0);
    for task in ["a", "b", "c"] {
        assert_eq!(
            inventory(&f.path(task)),
            inventory(&f.path(&format!("out/{task}")))
        );
        assert!(
            run.stderr
                .contains(&format!("run {task}: imported 23 items")),
            "{}",
            run.stderr
        );
    }
    // c's summary comes after a's: it waited for it.
    let at = |task: &str| run.stderr.find(&format!("run {task}:")).unwrap();
    assert!(at("c") > at("a"), "{}", run.stderr);
}

/// Regression: without `preserve.mode`, files and folders kept the private modes ferry
/// writes them with (0600, 0700) instead of the usual ones.
#[test]
fn without_preserved_modes_items_get_the_usual_ones() {
    let f = Fixture::new();
    f.file("src/sub/secret.txt", "x");
    fs::set_permissions(
        f.path("src/sub/secret.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(f.path("src/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    f.plan(&plan("{ preserve: { mode: false } }"));
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let mode = |p: &str| fs::metadata(f.path(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("dest/sub/secret.txt"), 0o644);
    assert_eq!(mode("dest/sub"), 0o755);
}

/// `case_collisions: rename` never renames onto a name the folder already has: `a.txt`
/// beside `A.txt` and a real `a (2).txt` becomes `a (3).txt`, and every file arrives
/// with its own content (before, `a.txt` became `a (2).txt` and one of the two was lost
/// without a failure).
#[test]
fn a_renamed_collision_never_takes_an_existing_name() {
    let f = Fixture::new();
    f.file("src/A.txt", "upper");
    f.file("src/a.txt", "lower");
    f.file("src/a (2).txt", "the real a (2)");
    f.file("src/sub/B.txt", "B");
    f.file("src/sub/b.txt", "b");
    f.plan("version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: windows, case_collisions: rename }\n");
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    let read = |name: &str| fs::read_to_string(f.path(&format!("dest/{name}"))).unwrap();
    assert_eq!(read("A.txt"), "upper");
    assert_eq!(read("a (2).txt"), "the real a (2)");
    assert_eq!(read("a (3).txt"), "lower");
    assert_eq!(read("sub/B.txt"), "B");
    assert_eq!(read("sub/b (2).txt"), "b");
    let mut names: Vec<String> = fs::read_dir(f.path("dest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["A.txt", "a (2).txt", "a (3).txt", "sub"]);
}
