//! The fuzz targets: each takes arbitrary bytes, feeds them to one of ferry's readers,
//! and panics when a property fails, not only when the reader does. `fuzz/` runs them
//! under cargo-fuzz (nightly); `tests/integration/fuzz.rs` replays their corpora and a
//! few thousand mutations of each in `cargo test`, on the stable toolchain.
//!
//! The properties:
//! - `plan`, `mm`: every error has a line and column inside the text; a list that
//!   converts gives YAML that parses, with one task per row;
//! - `envelope`: nothing opens that was not sealed with the key, and what opens is
//!   exactly what was sealed;
//! - `package`: an import never writes outside its destination, nor through a link in it;
//! - `journal`, `session`, `index`, `items`, `ticket`, `scan`: what a reader accepts, the
//!   matching writer writes back, and the reader reads back the same.

#![doc(hidden)]

use std::fs;
use std::io::Read as _;
use std::path::Path;

use crate::plan::{Diagnostic, Plan, PlanError};

/// A fuzz target: panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and cargo-fuzz binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("plan", plan),
    ("mm", mm),
    ("envelope", envelope),
    ("package", package),
    ("journal", journal),
    ("session", session),
    ("index", index),
    ("items", items),
    ("ticket", ticket),
    ("scan", scan),
];

/// A new folder of its own under the system's temporary folder, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Scratch {
    let path = std::env::temp_dir().join(format!("ferry-fuzz-{:016x}", rand::random::<u64>()));
    fs::create_dir(&path).expect("a temporary folder");
    Scratch(path)
}

/// Panics unless every diagnostic points inside `text`.
fn located_inside(text: &str, diagnostics: &[Diagnostic]) {
    let lines = crate::plan::lines(text);
    for d in diagnostics {
        let line = d.place.line;
        assert!(
            line >= 1 && line <= lines.len(),
            "an error outside the text (line {line} of {}): {d}",
            lines.len()
        );
        let width = lines[line - 1].chars().count();
        assert!(
            d.place.column >= 1 && d.place.column <= width + 1,
            "an error outside its line (column {} of {width}): {d}",
            d.place.column
        );
    }
}

fn no_variables(_: &str) -> Result<String, std::env::VarError> {
    Err(std::env::VarError::NotPresent)
}

/// The plan loader, from YAML text to a validated plan or located errors.
pub fn plan(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Plan::from_text(
        &text,
        Path::new("/nonexistent/fuzz/plan.yaml"),
        &no_variables,
    ) {
        Ok(_) | Err(PlanError::Read { .. }) => {}
        Err(PlanError::Invalid { diagnostics, .. }) => {
            assert!(!diagnostics.is_empty(), "a refusal without a reason");
            located_inside(&text, &diagnostics);
        }
    }
}

/// Migration Manager's task lists: the first byte chooses CSV or JSON.
pub fn mm(data: &[u8]) {
    use crate::plan::mm::{self, Format, Options};
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 {
        Format::Csv
    } else {
        Format::Json
    };
    let text = String::from_utf8_lossy(rest);
    let shares = [("\\\\server\\share".to_string(), "/mnt/share".to_string())];
    let options = Options {
        name: "fuzz",
        origin: "tasks",
        destination_root: "/srv/sharepoint",
        shares: &shares,
    };
    match mm::convert(&text, format, &options) {
        Ok(plan) => {
            let value: serde_json::Value = serde_saphyr::from_str(&plan)
                .unwrap_or_else(|e| panic!("the plan made is not YAML ({e}):\n{plan}"));
            let tasks = value["tasks"].as_array().map_or(0, Vec::len);
            let rows = plan.lines().filter(|l| l.starts_with("  # line ")).count();
            assert!(
                tasks > 0 && tasks == rows,
                "{tasks} tasks for {rows} rows:\n{plan}"
            );
            for task in value["tasks"].as_array().into_iter().flatten() {
                let name = task["name"].as_str().unwrap_or_default();
                assert!(
                    mm::valid_name(name),
                    "task name `{name}` is not a plan's:\n{plan}"
                );
            }
        }
        Err(diagnostics) => {
            // Errors of a CSV point at its lines as the text has them (a BOM aside).
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            located_inside(text, &diagnostics);
        }
    }
}

const FUZZ_KEY: [u8; 32] = [7; 32];
const FUZZ_CONTAINER: [u8; 16] = [3; 16];

/// The one object this target seals: 1.5 segments of a pattern, so that a mutation can
/// reach a second segment.
pub fn sealed_object() -> (Vec<u8>, Vec<u8>) {
    use crate::crypto::ContainerKey;
    use crate::crypto::envelope::{Seal, seal_resumable};
    let payload: Vec<u8> = (0..(crate::crypto::envelope::SEGMENT_SIZE as usize * 3 / 2))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut sealed = Vec::new();
    seal_resumable(
        &ContainerKey::from_bytes(FUZZ_KEY),
        &Seal {
            container_id: FUZZ_CONTAINER,
            package_id: 9,
            flags: 0,
            created_at: 1_000,
            expires_at: i64::MAX,
        },
        [5; 32],
        &payload,
        &mut sealed,
    )
    .expect("sealing in memory");
    (payload, sealed)
}

/// The envelope reader. First byte 0: the rest is read as an object as it is. Else:
/// the rest edits the one sealed object (pairs of offset and XOR value, then a cut).
pub fn envelope(data: &[u8]) {
    use crate::crypto::ContainerKey;
    use crate::crypto::envelope::{Expect, open};
    use std::sync::OnceLock;
    static OBJECT: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    let (payload, sealed) = OBJECT.get_or_init(sealed_object);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let object = if mode == 0 {
        rest.to_vec()
    } else {
        let mut object = sealed.clone();
        let mut edits = rest.chunks_exact(4);
        for edit in &mut edits {
            let at = u32::from_le_bytes([edit[0], edit[1], edit[2], 0]) as usize % object.len();
            object[at] ^= edit[3].max(1);
        }
        if let [a, b, ..] = edits.remainder() {
            object.truncate(u16::from_le_bytes([*a, *b]) as usize * 64);
        }
        object
    };
    let expect = Expect {
        container_id: FUZZ_CONTAINER,
        package_id: 9,
        now: 2_000,
    };
    let key = ContainerKey::from_bytes(FUZZ_KEY);
    let mut opened = Vec::new();
    let read = open(&key, expect, object.as_slice()).map(|mut o| o.read_to_end(&mut opened));
    if let Ok(Ok(_)) = read {
        assert!(
            object == *sealed && opened == *payload,
            "an object opened that was not the one sealed ({} bytes)",
            object.len()
        );
    }
}

/// A package stream (as decrypted and decompressed), imported into a destination that
/// holds a link to a folder beside it: nothing may appear outside the destination, nor
/// through the link.
pub fn package(data: &[u8]) {
    use crate::import::Destination;
    use crate::plan::raw::{Conflicts, Verify};
    let root = scratch();
    let dest = root.path().join("dest");
    let outside = root.path().join("outside");
    fs::create_dir_all(&dest).expect("dest");
    fs::create_dir_all(&outside).expect("outside");
    fs::write(outside.join("canary"), b"canary").expect("canary");
    std::os::unix::fs::symlink("../outside", dest.join("link")).expect("link");
    let preserve = crate::plan::Preserve::default();
    let Ok(destination) = Destination::open(&dest, preserve, Conflicts::Overwrite, Verify::All)
    else {
        return;
    };
    let destination = destination.with_package_limit(1 << 20, 1);
    let _ = crate::import::stream::import_stream(&destination, data);
    let _ = destination.finish();
    let mut beside: Vec<String> = fs::read_dir(root.path())
        .expect("root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["dest", "outside"],
        "an import wrote beside its destination"
    );
    let inside: Vec<_> = fs::read_dir(&outside).expect("outside").flatten().collect();
    assert_eq!(inside.len(), 1, "an import wrote through a link");
    assert_eq!(
        fs::read(outside.join("canary")).ok().as_deref(),
        Some(&b"canary"[..])
    );
}

/// The checkpoint journal: the bytes as a journal file, and as one record's payload.
pub fn journal(data: &[u8]) {
    use crate::state::journal::{self, Entry, Journal};
    let binding = journal::binding("p", "t", 1);
    let dir = scratch();
    let path = dir.path().join("journal");
    if let Ok(loaded) = journal::parse(&path, data, &binding) {
        let (copy, _) = Journal::open(&path, binding).expect("a new journal");
        for entry in &loaded.entries {
            copy.append(entry).expect("append");
        }
        drop(copy);
        let again = journal::read(&path, binding).expect("a journal just written");
        assert_eq!(again.entries, loaded.entries, "a journal read back differs");
    }
    if let Ok(entry) = postcard::from_bytes::<Entry>(data) {
        let bytes = postcard::to_allocvec(&entry).expect("encode");
        let back: Entry = postcard::from_bytes(&bytes).expect("decode what was encoded");
        assert_eq!(back, entry, "a record read back differs");
    }
}

/// A task's session file.
pub fn session(data: &[u8]) {
    use crate::state::Session;
    let dir = scratch();
    let path = crate::state::layout::TaskLayout::at(dir.path()).session();
    fs::write(&path, data).expect("write");
    if let Ok(Some(mut session)) = Session::load(dir.path(), "t") {
        let before = serde_json::to_value(&session).expect("a session as JSON");
        let other = scratch();
        session.save(other.path()).expect("save");
        let mut back = Session::load(other.path(), "t")
            .expect("a session just saved")
            .expect("there");
        back.updated_at.clone_from(&session.updated_at);
        let after = serde_json::to_value(&back).expect("a session as JSON");
        let mut before = before;
        before["updated_at"] = after["updated_at"].clone();
        assert_eq!(before, after, "a session read back differs");
    }
}

/// The index of what each round put in place.
pub fn index(data: &[u8]) {
    use crate::state::index::Index;
    let dir = scratch();
    let path = dir.path().join("index");
    fs::write(&path, data).expect("write");
    if let Ok(index) = Index::load(&path) {
        let again = dir.path().join("again");
        index.save(&again).expect("save");
        let back = Index::load(&again).expect("an index just saved");
        assert_eq!(back.items, index.items, "an index read back differs");
    }
}

/// A round's item list.
pub fn items(data: &[u8]) {
    use crate::run::items::{ItemReader, ItemWriter};
    let dir = scratch();
    let path = dir.path().join("items");
    fs::write(&path, data).expect("write");
    let Ok(reader) = ItemReader::open(&path) else {
        return;
    };
    let read: Result<Vec<_>, _> = reader.collect();
    let Ok(read) = read else {
        return;
    };
    let again = dir.path().join("again");
    let mut writer = ItemWriter::create(&again).expect("create");
    for item in &read {
        writer.push(item).expect("push");
    }
    writer.finish().expect("finish");
    let back: Vec<_> = ItemReader::open(&again)
        .expect("a list just written")
        .collect::<Result<_, _>>()
        .expect("its items");
    assert_eq!(
        format!("{back:?}"),
        format!("{read:?}"),
        "an item list read back differs"
    );
}

/// A ticket, as an importing site reads it.
pub fn ticket(data: &[u8]) {
    use crate::run::Ticket;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch();
    let path = dir.path().join("ticket");
    fs::write(&path, data).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("mode");
    if let Ok(ticket) = Ticket::read(&path, "p", 1_000) {
        let again = dir.path().join("again");
        fs::write(
            &again,
            serde_json::to_vec(&ticket).expect("a ticket as JSON"),
        )
        .expect("write");
        fs::set_permissions(&again, fs::Permissions::from_mode(0o600)).expect("mode");
        let back = Ticket::read(&again, "p", 1_000).expect("a ticket just written");
        assert_eq!(
            serde_json::to_value(&back).expect("JSON"),
            serde_json::to_value(&ticket).expect("JSON"),
            "a ticket read back differs"
        );
    }
}

/// A round's scan checkpoint (with an empty item list beside it).
pub fn scan(data: &[u8]) {
    let dir = scratch();
    let scanned = dir.path().join("scan.json");
    let items = dir.path().join("items");
    fs::write(&scanned, data).expect("write");
    crate::run::items::ItemWriter::create(&items)
        .and_then(crate::run::items::ItemWriter::finish)
        .expect("an empty item list");
    let _ = crate::run::load_scan_checkpoint(&scanned, &items, &dir.path().join("journal"));
}

/// A package stream of the kinds of record a real one holds (a folder, a file, an empty
/// file, a link and a file's two parts), for the `package` target's corpus.
pub fn package_seed() -> Vec<u8> {
    use crate::package::{self, KIND_FILE, KIND_FOLDER, KIND_SYMLINK, Record, Trailer};
    let mut out = Vec::new();
    package::begin(&mut out).expect("in memory");
    let base = Record {
        kind: KIND_FILE,
        path: Vec::new(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 5,
        size: 0,
        part: 0,
        parts: 1,
        offset: 0,
        len: 0,
        ..Record::default()
    };
    let mut records = 0;
    let file = |out: &mut Vec<u8>, record: Record, data: &[u8], whole: &[u8]| {
        record.write_to(out).expect("in memory");
        out.extend_from_slice(data);
        Trailer {
            ok: true,
            part_hash: *blake3::hash(data).as_bytes(),
            file_hash: *blake3::hash(whole).as_bytes(),
        }
        .write_to(out)
        .expect("in memory");
    };
    let folder = Record {
        kind: KIND_FOLDER,
        path: b"docs".to_vec(),
        mode: 0o755,
        xattrs: vec![package::Xattr {
            name: b"user.origin".to_vec(),
            value: b"nas1".to_vec(),
        }],
        ..base.clone()
    };
    folder.write_to(&mut out).expect("in memory");
    Trailer {
        ok: true,
        part_hash: [0; 32],
        file_hash: [0; 32],
    }
    .write_to(&mut out)
    .expect("in memory");
    records += 1;
    let text = b"hello, ferry\n";
    file(
        &mut out,
        Record {
            path: b"docs/a.txt".to_vec(),
            size: text.len() as u64,
            len: text.len() as u64,
            ..base.clone()
        },
        text,
        text,
    );
    records += 1;
    file(
        &mut out,
        Record {
            path: b"empty".to_vec(),
            ..base.clone()
        },
        b"",
        b"",
    );
    records += 1;
    let link = Record {
        kind: KIND_SYMLINK,
        path: b"docs/link".to_vec(),
        target: b"a.txt".to_vec(),
        ..base.clone()
    };
    link.write_to(&mut out).expect("in memory");
    Trailer {
        ok: true,
        part_hash: [0; 32],
        file_hash: [0; 32],
    }
    .write_to(&mut out)
    .expect("in memory");
    records += 1;
    let whole = b"first half, second half";
    for (part, range) in [(0u32, 0..11), (1, 11..whole.len())] {
        file(
            &mut out,
            Record {
                path: b"big.bin".to_vec(),
                size: whole.len() as u64,
                part,
                parts: 2,
                offset: range.start as u64,
                len: range.len() as u64,
                ..base.clone()
            },
            &whole[range],
            whole,
        );
        records += 1;
    }
    // A sparse file: 4 bytes of data at 8192 in 12288 bytes, the rest a hole.
    let sparse = Record {
        path: b"image.raw".to_vec(),
        size: 12288,
        len: 12288,
        extents: Some(vec![package::Extent {
            offset: 8192,
            len: 4,
        }]),
        ..base.clone()
    };
    let mut hash = package::sparse::SparseHasher::default();
    hash.update_at(8192, b"data");
    let hash = hash.finalize(12288);
    sparse.write_to(&mut out).expect("in memory");
    out.extend_from_slice(b"data");
    Trailer {
        ok: true,
        part_hash: hash,
        file_hash: hash,
    }
    .write_to(&mut out)
    .expect("in memory");
    records += 1;
    package::end(&mut out, records).expect("in memory");
    out
}
