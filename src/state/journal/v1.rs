//! Version 1 of the journal's records, before items carried their IDs and imports
//! their job: a round begun by an earlier ferry is read, and resumed, in it.

use serde::{Deserialize, Serialize};

use super::{Entry, ItemRecord, ItemResult, WholeFile};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ItemRecordV1 {
    path: Vec<u8>,
    source: Vec<u8>,
    kind: u8,
    size: u64,
    result: ItemResult,
}

/// The records of version 1, variant for variant (their order is the format).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum EntryV1 {
    Staged {
        package: u64,
        container: [u8; 16],
        items: Vec<ItemRecordV1>,
    },
    Imported {
        first: u64,
        last: u64,
        items: Vec<ItemRecordV1>,
    },
    Part {
        first: u64,
        part: u32,
        work: String,
        whole: Option<WholeFile>,
    },
    Block {
        package: u64,
        container: [u8; 16],
        upload: String,
        salt: [u8; 32],
        sealed: [u8; 32],
        index: u32,
        id: String,
    },
}

fn up(items: Vec<ItemRecordV1>) -> Vec<ItemRecord> {
    items
        .into_iter()
        .map(|r| ItemRecord {
            path: r.path,
            source: r.source,
            kind: r.kind,
            size: r.size,
            result: r.result,
            source_id: 0,
            dest_id: 0,
        })
        .collect()
}

fn down(items: &[ItemRecord]) -> Vec<ItemRecordV1> {
    items
        .iter()
        .map(|r| ItemRecordV1 {
            path: r.path.clone(),
            source: r.source.clone(),
            kind: r.kind,
            size: r.size,
            result: r.result.clone(),
        })
        .collect()
}

impl From<EntryV1> for Entry {
    /// IDs and jobs that version 1 did not keep are 0: unknown.
    fn from(entry: EntryV1) -> Entry {
        match entry {
            EntryV1::Staged {
                package,
                container,
                items,
            } => Entry::Staged {
                package,
                container,
                items: up(items),
                job: 0,
            },
            EntryV1::Imported { first, last, items } => Entry::Imported {
                first,
                last,
                items: up(items),
                job: 0,
            },
            EntryV1::Part {
                first,
                part,
                work,
                whole,
            } => Entry::Part {
                first,
                part,
                work,
                whole,
            },
            EntryV1::Block {
                package,
                container,
                upload,
                salt,
                sealed,
                index,
                id,
            } => Entry::Block {
                package,
                container,
                upload,
                salt,
                sealed,
                index,
                id,
            },
        }
    }
}

impl From<&Entry> for EntryV1 {
    /// For a round an earlier ferry began: what version 1 cannot hold is left out.
    fn from(entry: &Entry) -> EntryV1 {
        match entry.clone() {
            Entry::Staged {
                package,
                container,
                items,
                ..
            } => EntryV1::Staged {
                package,
                container,
                items: down(&items),
            },
            Entry::Imported {
                first, last, items, ..
            } => EntryV1::Imported {
                first,
                last,
                items: down(&items),
            },
            Entry::Part {
                first,
                part,
                work,
                whole,
            } => EntryV1::Part {
                first,
                part,
                work,
                whole,
            },
            Entry::Block {
                package,
                container,
                upload,
                salt,
                sealed,
                index,
                id,
            } => EntryV1::Block {
                package,
                container,
                upload,
                salt,
                sealed,
                index,
                id,
            },
        }
    }
}
