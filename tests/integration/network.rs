//! A network share: a source served by an sshd of its own on loopback and mounted with
//! sshfs, uncached, so that every lookup, stat, open and read is a round trip, as on an
//! uncached SMB or NFS client (`tests/sshfs-share` starts and stops it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Fixture, have, repo};
use crate::run::inventory;

/// The share: its sshd and mount, stopped (unmounted, sshd killed by its PID, keys
/// removed) when dropped, also when the test fails.
struct Share {
    keys: PathBuf,
    mount: PathBuf,
}

impl Share {
    fn start(f: &Fixture, source: &Path) -> Share {
        let script = repo().join("tests/sshfs-share");
        let keys = f.path("share-keys");
        let mount = f.path("mnt");
        // A port nobody listens on now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port()
            .to_string();
        let share = Share {
            keys: keys.clone(),
            mount: mount.clone(),
        };
        let status = Command::new(&script)
            .args(["start", keys.to_str().unwrap(), &port])
            .status()
            .unwrap();
        assert!(status.success(), "sshd did not start");
        let status = Command::new(&script)
            .args([
                "mount",
                keys.to_str().unwrap(),
                &port,
                source.to_str().unwrap(),
                mount.to_str().unwrap(),
                "uncached",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "sshfs did not mount");
        share
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/sshfs-share"))
            .args([
                "stop",
                self.keys.to_str().unwrap(),
                self.mount.to_str().unwrap(),
            ])
            .status();
    }
}

/// Whether this machine can serve a share: sshd, sshfs and FUSE, as root. In CI it
/// must.
fn can_share() -> bool {
    if !have("sshfs") || !have("ssh-keygen") || !have("fusermount3") {
        return false;
    }
    let ready = Path::new("/usr/sbin/sshd").exists()
        && Path::new("/dev/fuse").exists()
        && rustix::process::geteuid().is_root();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "sshd (openssh-server), /dev/fuse and root are needed; .ci/run installs sshd"
        );
        eprintln!("skipped: sshd, /dev/fuse or root is missing (CI has them)");
    }
    ready
}

/// A small migration from an uncached sshfs mount: odd names, empty and large files
/// (one larger than a package, so in parts), nested folders. The destination equals
/// the share as ferry sees it; the next round finds nothing to do, and the round after
/// a change on the server migrates that file alone.
#[test]
fn a_migration_from_an_uncached_sshfs_share() {
    if !can_share() {
        return;
    }
    let f = Fixture::new();
    let mut files = 0;
    for d in 0..6 {
        for i in 0..40 {
            let len = (i * 7919 + d * 131) % 20_000;
            let content: Vec<u8> = (0..len).map(|b| (b * 31 + i + d) as u8).collect();
            f.file(
                &format!("src/dept {d}/sub-{}/file {i} #%.txt", i % 3),
                content,
            );
            files += 1;
        }
    }
    f.file("src/empty", "");
    f.file("src/naïve café ☕.md", "unicode names");
    f.file("src/large.bin", vec![7u8; 3 << 20]);
    f.file(
        "src/in parts.bin",
        (0..(5u32 << 20))
            .map(|b| (b % 251) as u8)
            .collect::<Vec<_>>(),
    );
    files += 4;
    let share = Share::start(&f, &f.path("src"));
    let dst = f.path("dst");
    fs::create_dir_all(&dst).unwrap();
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: {}\ndefaults: {{ rules: posix, package: {{ max_size: 2MiB }} }}\ntasks:\n  - name: t\n    source: {}\n    destination: {}\n",
        f.path("state").display(),
        share.mount.display(),
        dst.display()
    ));
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(0);
    let listed = inventory(&share.mount);
    assert_eq!(
        listed
            .iter()
            .filter(|(_, what)| what.starts_with("file"))
            .count(),
        files
    );
    assert_eq!(listed, inventory(&dst));

    let again = f.ferry(&["run", "plan.yaml"]);
    again.assert_code(0);
    assert_eq!(inventory(&share.mount), inventory(&dst));

    fs::write(
        f.path("src/dept 3/sub-1/file 4 #%.txt"),
        "changed on the server",
    )
    .unwrap();
    let changed = f.ferry(&[
        "run",
        "plan.yaml",
        "--log-format",
        "json",
        "--log-file",
        "run.log",
    ]);
    changed.assert_code(0);
    let log = fs::read_to_string(f.path("run.log")).unwrap();
    let event = |name: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event: {log}"))
    };
    let end = event("task_end");
    assert_eq!(end["items"], 1, "the changed file alone: {end}");
    // The share answers slowly: many reads at once, and more workers.
    let sizing = event("sizing");
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .max(8);
    assert_eq!(sizing["reads"], 32, "{sizing}");
    assert_eq!(sizing["workers"], workers, "{sizing}");
    assert!(
        sizing["source_micros"].as_f64().unwrap() >= 50.0,
        "{sizing}"
    );
    assert_eq!(inventory(&share.mount), inventory(&dst));
    drop(share);
    assert!(!f.path("share-keys").exists());
}

/// Direct mode from the share (the NAS-to-NAS case): files copied from the uncached
/// sshfs mount straight to the destination, where the kernel cannot copy between the
/// two file systems, with and without `verify`. The destination equals the share, and
/// the next round does nothing.
#[test]
fn a_direct_migration_from_an_uncached_sshfs_share() {
    if !can_share() {
        return;
    }
    let f = Fixture::new();
    for i in 0..60 {
        let content: Vec<u8> = (0..(i * 997 % 7_000)).map(|b| (b * 7 + i) as u8).collect();
        f.file(&format!("src/team {}/doc {i} #%.txt", i % 4), content);
    }
    f.file("src/empty", "");
    f.file(
        "src/in parts.bin",
        (0..(3u32 << 20))
            .map(|b| (b % 241) as u8)
            .collect::<Vec<_>>(),
    );
    let share = Share::start(&f, &f.path("src"));
    for verify in ["transferred", "none"] {
        let dst = f.path(&format!("dst-{verify}"));
        f.plan(&format!(
            "version: 1\nname: p\nworking_folder: {}\nstaging: {{ kind: none }}\ndefaults: {{ rules: posix, verify: {verify}, package: {{ max_size: 1MiB }} }}\ntasks:\n  - name: t\n    source: {}\n    destination: {}\n",
            f.path(&format!("state-{verify}")).display(),
            share.mount.display(),
            dst.display()
        ));
        f.ferry(&["run", "plan.yaml"]).assert_code(0);
        assert_eq!(inventory(&share.mount), inventory(&dst), "verify: {verify}");
        f.run_finds_nothing();
    }
    drop(share);
}
