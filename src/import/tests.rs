//! The importer's unit tests: crafted manifests, refusals, caps and cleanup.

use super::*;
use crate::package::Trailer;

fn record(path: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Record {
        kind: KIND_FILE,
        path: path.to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_sec: 1,
        mtime_nsec: 0,
        size: data.len() as u64,
        part: 0,
        parts: 1,
        offset: 0,
        len: data.len() as u64,
        ..Record::default()
    }
    .write_to(&mut out)
    .unwrap();
    out.extend_from_slice(data);
    let hash = *blake3::hash(data).as_bytes();
    Trailer {
        ok: true,
        part_hash: hash,
        file_hash: hash,
    }
    .write_to(&mut out)
    .unwrap();
    out
}

fn stream(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    package::begin(&mut out).unwrap();
    for r in records {
        out.extend_from_slice(r);
    }
    package::end(&mut out, records.len() as u32).unwrap();
    out
}

fn listing(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out.sort();
    out
}

#[test]
fn crafted_manifests_are_refused_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    let dest_path = root.path().join("dest");
    let outside = root.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&dest_path).unwrap();
    std::os::unix::fs::symlink(&outside, dest_path.join("link")).unwrap();
    let preserve = Preserve::default();
    let dest = Destination::open(
        &dest_path,
        preserve,
        Conflicts::Overwrite,
        Verify::Transferred,
    )
    .unwrap();
    let before = listing(root.path());
    for bad in [&b"../x"[..], b"/etc/x", b"a/../../x"] {
        // A good record first: it must not be committed either.
        let bytes = stream(&[record(b"good/first.txt", b"fine"), record(bad, b"evil")]);
        let result = import_stream(&dest, bytes.as_slice());
        assert!(
            result.is_err(),
            "{:?} accepted",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(
            listing(root.path()),
            before,
            "{:?} left traces",
            String::from_utf8_lossy(bad)
        );
    }
    // A symlink in the destination is never written through: that item is refused
    // as the destination's doing, and the package's other items go in.
    let bytes = stream(&[record(b"link/x", b"evil"), record(b"fine.txt", b"ok")]);
    let outcomes = import_stream(&dest, bytes.as_slice()).unwrap();
    assert!(
        matches!(
            &outcomes[..],
            [
                Outcome::Failed {
                    code: DESTINATION_REFUSED,
                    ..
                },
                Outcome::Imported { .. }
            ]
        ),
        "{outcomes:?}"
    );
    assert!(fs::read_dir(&outside).unwrap().next().is_none());
    fs::remove_file(dest_path.join("fine.txt")).unwrap();
    // A record whose data does not match its hash refuses the package too.
    let mut tampered = record(b"t.txt", b"data");
    let at = tampered.len() - 66; // the last byte of the data
    tampered[at] ^= 1;
    assert!(import_stream(&dest, stream(&[tampered]).as_slice()).is_err());
    assert_eq!(listing(root.path()), before);
    // A void record (the file changed while it was read) is discarded, not written.
    let mut void = record(b"void.txt", b"mixed");
    let status = void.len() - 65;
    void[status] = 0;
    let outcomes = import_stream(&dest, stream(&[void]).as_slice()).unwrap();
    assert!(
        matches!(
            &outcomes[..],
            [Outcome::Failed {
                code: "changed-during-read",
                ..
            }]
        ),
        "{outcomes:?}"
    );
    assert_eq!(listing(root.path()), before);
    // And a good package goes in.
    let outcomes = import_stream(&dest, stream(&[record(b"ok/a.txt", b"yes")]).as_slice()).unwrap();
    assert!(matches!(outcomes[..], [Outcome::Imported { .. }]));
    assert_eq!(fs::read(dest_path.join("ok/a.txt")).unwrap(), b"yes");
}

/// Finding 16: a package cannot carry more data than the task's packages hold.
#[test]
fn a_record_past_the_package_size_is_refused_before_it_is_written() {
    let root = tempfile::tempdir().unwrap();
    let preserve = Preserve::default();
    let dest = Destination::open(root.path(), preserve, Conflicts::Overwrite, Verify::All)
        .unwrap()
        .with_package_limit(16, 1);
    let big = stream(&[record(b"big.bin", &[0u8; 17])]);
    assert!(import_stream(&dest, big.as_slice()).is_err());
    assert!(!root.path().join("big.bin").exists());
    let fits = stream(&[record(b"ok.bin", &[1u8; 16])]);
    assert!(import_stream(&dest, fits.as_slice()).is_ok());
}

/// Finding 16: a resumed run removes only its own task's temporary names, never
/// another run's files in flight, nor the assemblies it takes up.
#[test]
fn stray_files_of_other_runs_are_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("a/.ferry-work-0000aaaa-1")).unwrap();
    fs::write(r.join("a/.ferry-work-0000aaaa-1/data"), "mine, resumed").unwrap();
    fs::create_dir_all(r.join("a/.ferry-work-0000aaaa-2")).unwrap();
    fs::write(r.join("a/.ferry-work-0000aaaa-2/data"), "mine, stale").unwrap();
    fs::write(r.join("a/.ferry-tmp-0000aaaa-3"), "mine").unwrap();
    fs::write(r.join("a/.ferry-tmp-0000bbbb-3"), "another run's").unwrap();
    fs::write(r.join("a/.ferry-tmp-notmine"), "not ferry's").unwrap();
    let keep = std::collections::HashSet::from([".ferry-work-0000aaaa-1".to_string()]);
    assert_eq!(clean_stray(r, &["0000aaaa".to_string()], &keep), 2);
    assert!(r.join("a/.ferry-work-0000aaaa-1/data").exists());
    assert!(!r.join("a/.ferry-work-0000aaaa-2").exists());
    assert!(!r.join("a/.ferry-tmp-0000aaaa-3").exists());
    assert!(r.join("a/.ferry-tmp-0000bbbb-3").exists());
    assert!(r.join("a/.ferry-tmp-notmine").exists());
}

#[test]
fn unsafe_paths_are_refused() {
    for bad in [
        &b""[..],
        b"/etc/passwd",
        b"../x",
        b"a/../../x",
        b"a//b",
        b"./a",
        b"a/.",
        b"a\0b",
        b"a/",
    ] {
        assert!(safe_components(bad).is_err(), "{bad:?}");
    }
    assert_eq!(safe_components(b"a/b c/\xff").unwrap().len(), 3);
    assert!(safe_components(&[b'x'; 256]).is_err());
}

/// A destination with the built-in `preserve` of a file share.
fn posix_destination(path: &Path) -> Destination {
    Destination::open(
        path,
        Preserve::default(),
        Conflicts::Overwrite,
        Verify::Transferred,
    )
    .unwrap()
}

/// A package stream of version 1, as ferry staged them before extended attributes and
/// sparse files (the `package` fuzz target's first seed, frozen): still imported, with
/// the same result.
#[test]
fn a_version_1_stream_is_still_imported() {
    let v1 = include_bytes!("../../tests/fixtures/package-v1.stream");
    assert_eq!(&v1[..9], b"FERRYPKG\x01");
    let root = tempfile::tempdir().unwrap();
    let dest_path = root.path().join("dest");
    let dest = posix_destination(&dest_path);
    let outcomes = import_stream(&dest, &v1[..]).unwrap();
    let imported = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Imported { .. }))
        .count();
    // A folder, two files and a link; the two parts of `big.bin` are written into its
    // assembly (committed by the run, not by the stream).
    assert_eq!(imported, 4, "{outcomes:?}");
    assert_eq!(
        fs::read(dest_path.join("docs/a.txt")).unwrap(),
        b"hello, ferry\n"
    );
    assert_eq!(fs::read(dest_path.join("empty")).unwrap(), b"");
    assert_eq!(
        fs::read_link(dest_path.join("docs/link")).unwrap(),
        Path::new("a.txt")
    );
    let parts = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::PartWritten { .. }))
        .count();
    assert_eq!(parts, 2, "{outcomes:?}");
}

/// A sparse record: only its data travels, the holes are made again, and the sparse
/// hash checks the whole content.
#[test]
fn a_sparse_record_is_written_with_its_holes() {
    let size = 16u64 << 20;
    let mut hash = package::sparse::SparseHasher::default();
    hash.update_at(8 << 20, b"data");
    let hash = hash.finalize(size);
    let sparse = |hash: [u8; 32]| {
        let mut out = Vec::new();
        Record {
            kind: KIND_FILE,
            path: b"image.raw".to_vec(),
            mode: 0o644,
            mtime_sec: 1,
            size,
            parts: 1,
            len: size,
            extents: Some(vec![package::Extent {
                offset: 8 << 20,
                len: 4,
            }]),
            xattrs: vec![package::Xattr {
                name: b"user.origin".to_vec(),
                value: b"nas1".to_vec(),
            }],
            ..Record::default()
        }
        .write_to(&mut out)
        .unwrap();
        out.extend_from_slice(b"data");
        Trailer {
            ok: true,
            part_hash: hash,
            file_hash: hash,
        }
        .write_to(&mut out)
        .unwrap();
        out
    };
    let root = tempfile::tempdir().unwrap();
    let dest_path = root.path().join("dest");
    let dest = posix_destination(&dest_path);
    // A wrong hash refuses the package.
    assert!(import_stream(&dest, stream(&[sparse([0; 32])]).as_slice()).is_err());
    let outcomes = import_stream(&dest, stream(&[sparse(hash)]).as_slice()).unwrap();
    assert!(
        matches!(&outcomes[..], [Outcome::Imported { .. }]),
        "{outcomes:?}"
    );
    let path = dest_path.join("image.raw");
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), size);
    use std::os::unix::fs::MetadataExt as _;
    assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
    let content = fs::read(&path).unwrap();
    assert_eq!(&content[8 << 20..(8 << 20) + 4], b"data");
    assert_eq!(content.iter().filter(|&&b| b != 0).count(), 4);
    // Its attribute came with it, where the filesystem keeps them.
    if let Ok(value) = rustix::fs::getxattr(&path, "user.origin", &mut [0u8; 16][..]) {
        assert_eq!(value, 4);
    }
}
