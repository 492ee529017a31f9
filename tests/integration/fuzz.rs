//! The fuzz targets on the stable toolchain: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`, and a few hundred deterministic mutations of each, go
//! through the target, whose properties panic when they fail (`ferry::fuzzing`).
//! `benches/fuzz.sh TARGET MINUTES` runs a target under cargo-fuzz where a nightly
//! toolchain is.

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::Fixture;

/// Mutations tried per corpus file.
const MUTATIONS: usize = 300;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for folder in ["corpus", "regressions"] {
        let dir = crate::harness::repo()
            .join("fuzz")
            .join(folder)
            .join(target);
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            out.push((entry.path(), fs::read(entry.path()).unwrap()));
        }
    }
    out.sort();
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four of: a bit flipped, a byte set to a value parsers care about, a range
/// removed, bytes inserted, a range repeated, a cut, or a piece of another input.
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    const SPECIAL: &[u8] = b"\0\xff\x7f\x80\n\r\"'{}[]:,-#&*!|>\\ 0123456789";
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = SPECIAL[rng.below(SPECIAL.len())];
            }
            2 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            4 if !out.is_empty() => {
                let start = at.min(out.len() - 1);
                let end = (start + 1 + rng.below(32)).min(out.len());
                let piece = out[start..end].to_vec();
                out.splice(start..start, piece);
            }
            5 => out.truncate(at),
            _ if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(64)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            _ => {}
        }
    }
    out
}

fn replay(target: &str) {
    let (_, run) = ferry::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap();
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "fuzz/corpus/{target}/ is empty");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for (i, (path, input)) in inputs.iter().enumerate() {
        run(input);
        let other = &inputs[(i + 1) % inputs.len()].1;
        for n in 0..MUTATIONS {
            let mutated = mutate(input, other, &mut rng);
            let outcome = std::panic::catch_unwind(|| run(&mutated));
            if let Err(panic) = outcome {
                let kept = std::env::temp_dir().join(format!("ferry-fuzz-{target}-{n}"));
                fs::write(&kept, &mutated).unwrap();
                panic!(
                    "fuzz target {target}: mutation {n} of {} failed; the input is in {} (keep it in fuzz/regressions/{target}/): {:?}",
                    path.display(),
                    kept.display(),
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or(panic.downcast_ref::<&str>().copied())
                );
            }
        }
    }
}

macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name));
        }
    )*};
}

targets!(
    plan, mm, envelope, package, journal, session, index, items, ticket, scan
);

/// Every target has a cargo-fuzz binary, and every binary a target.
#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = fs::read_to_string(crate::harness::repo().join("fuzz/Cargo.toml")).unwrap();
    for (name, _) in ferry::fuzzing::TARGETS {
        let source = crate::harness::repo().join(format!("fuzz/fuzz_targets/{name}.rs"));
        let text =
            fs::read_to_string(&source).unwrap_or_else(|_| panic!("no {}", source.display()));
        assert!(
            text.contains(&format!("ferry::fuzzing::{name}(")),
            "{}",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml: {name}"
        );
    }
    let binaries = manifest.matches("[[bin]]").count();
    assert_eq!(binaries, ferry::fuzzing::TARGETS.len());
}

/// Writes the corpora from real files: `cargo test --test integration -- --ignored
/// write_fuzz_corpora` (run once; the files are checked in).
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_fuzz_corpora() {
    let repo = crate::harness::repo();
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = repo.join("fuzz/corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    };
    for plan in ["demo.yaml", "example-full.yaml"] {
        put(
            "plan",
            plan,
            &fs::read(repo.join("plans").join(plan)).unwrap(),
        );
    }
    put(
        "plan",
        "broken.yaml",
        b"version: 1\nname: p\ntasks:\n  - name: a\n    sourc: x\n    destination: y\n",
    );
    let snapshots = repo.join("tests/integration/snapshots");
    let _ = snapshots;
    put(
        "mm",
        "tasks.csv",
        &[
            &[0u8][..],
            b"FileSharePath,,,SharePointSite,DocLibrary,DocSubFolder\r\n\\\\server\\share\\a,,,https://contoso.sharepoint.com/sites/a,Documents,Sub/Folder\r\n/srv/b,,,ann@contoso.com,Documents,\r\n",
        ]
        .concat(),
    );
    put(
        "mm",
        "tasks.json",
        &[
            &[1u8][..],
            br#"{ "Tasks": [ { "SourcePath": "\\\\server\\share\\a", "TargetPath": "https://contoso.sharepoint.com/sites/a", "TargetList": "Documents", "TargetListRelativePath": "x", "Settings": { "MigrateHiddenItems": false, "MigrateItemsModifiedAfter": "2016-05-22", "SkipFilesWithExtensions": "txt:mp3" } } ] }"#,
        ]
        .concat(),
    );
    let (_, sealed) = ferry::fuzzing::sealed_object();
    put(
        "envelope",
        "raw-head",
        &[&[0u8][..], &sealed[..512]].concat(),
    );
    put("envelope", "one-edit", &[1, 200, 0, 0, 1]);
    put("envelope", "cut", &[1, 0, 0, 0, 0, 3, 0]);
    // `stream` is a version 1 stream, kept as it was written (and frozen as
    // tests/fixtures/package-v1.stream); the seed is version 2.
    put("package", "stream-v2", &ferry::fuzzing::package_seed());

    // The state files of a real round, staged and handed over with a ticket, then of a
    // whole one.
    let f = Fixture::new();
    f.file("src/a.txt", "alpha");
    f.file("src/deep/b.txt", "bravo");
    f.dir("src/empty");
    f.plan("version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: posix }\n");
    f.ferry(&[
        "run",
        "plan.yaml",
        "--stages",
        "scan,package,upload",
        "--ticket",
        "round.ticket",
    ])
    .assert_code(0);
    let round = f.path("state/p/t/rounds/R1");
    put(
        "journal",
        "staged",
        &fs::read(round.join("journal")).unwrap(),
    );
    put("items", "round", &fs::read(round.join("items")).unwrap());
    put(
        "scan",
        "scan.json",
        &fs::read(round.join("scan.json")).unwrap(),
    );
    put(
        "ticket",
        "round.ticket",
        &fs::read(f.path("round.ticket")).unwrap(),
    );
    put(
        "session",
        "staged.json",
        &fs::read(f.path("state/p/t/session.json")).unwrap(),
    );
    let whole = Fixture::new();
    whole.file("src/a.txt", "alpha");
    whole.file("src/deep/b.txt", "bravo");
    whole.plan("version: 1\nname: p\nworking_folder: state\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: { rules: posix }\n");
    whole.ferry(&["run", "plan.yaml"]).assert_code(0);
    let journal = fs::read(whole.path("state/p/t/rounds/R1/journal")).unwrap();
    put("journal", "imported", &journal);
    let session = fs::read(whole.path("state/p/t/session.json")).unwrap();
    put("session", "completed.json", &session);
    put(
        "index",
        "index",
        &fs::read(whole.path("state/p/t/index")).unwrap(),
    );
    assert!(Path::new(&repo.join("fuzz/corpus")).is_dir());
}
