//! The packer: cuts the scan's stream of items into packages, without any I/O.
//!
//! A package holds at most `max_files` items and `max_size` bytes of file data. Folders
//! (empty or not) and symlinks travel as items without data. A file larger than
//! `max_size` becomes a run of parts, each its own package, cut at `max_size`
//! boundaries; the parts of one file are handed out together (`Work::Parts`) so that
//! one worker reads the file once, in order, hashing it whole as it goes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use crate::scan::{EntryKind, Meta, ScanEntry};

/// One item to migrate, as the packer and the package builder see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Path below the destination root (the source's path, unless renamed).
    pub rel: PathBuf,
    /// Where to read it.
    pub source: PathBuf,
    pub kind: ItemKind,
    pub meta: Meta,
    /// A file whose metadata alone changed since the last round (same size and
    /// modification time, a later change time): its package carries no content.
    pub metadata_only: bool,
}

/// What an item is, for packaging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    File,
    Folder,
    Symlink { target: OsString },
}

impl Item {
    /// The item for a scanned entry that migrates; `None` for anything else.
    pub fn from_entry(entry: &ScanEntry) -> Option<Item> {
        let kind = match &entry.kind {
            EntryKind::File => ItemKind::File,
            EntryKind::Folder => ItemKind::Folder,
            EntryKind::Symlink { target } => ItemKind::Symlink {
                target: target.clone().into_os_string(),
            },
            EntryKind::Special | EntryKind::Unknown => return None,
        };
        Some(Item {
            rel: entry.dest.clone(),
            source: entry.source(),
            kind,
            meta: entry.meta,
            metadata_only: false,
        })
    }

    fn data_len(&self) -> u64 {
        match self.kind {
            ItemKind::File if !self.metadata_only => self.meta.size,
            _ => 0,
        }
    }
}

/// A unit of work for one package worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Whole items in one package.
    Package { id: u64, items: Vec<Arc<Item>> },
    /// One large file in `count` parts, packages `first_id .. first_id + count`, each
    /// at most `part_size` bytes.
    Parts {
        first_id: u64,
        count: u64,
        part_size: u64,
        item: Arc<Item>,
    },
}

impl Work {
    /// How many package numbers this work uses.
    pub fn packages(&self) -> u64 {
        match self {
            Work::Package { .. } => 1,
            Work::Parts { count, .. } => *count,
        }
    }
}

/// Packs items as they come; package numbers run from 0 without gaps, in the order of
/// the items, so that a round numbers its packages the same way every time.
#[derive(Debug)]
pub struct Packer {
    max_size: u64,
    max_files: usize,
    next_id: u64,
    items: Vec<Arc<Item>>,
    bytes: u64,
}

impl Packer {
    pub fn new(max_size: u64, max_files: u32) -> Packer {
        Packer {
            max_size: max_size.max(1),
            max_files: (max_files as usize).max(1),
            next_id: 0,
            items: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds an item; returns the work that is complete because of it (zero, one or two
    /// units: the package it closed, and the parts of a large file).
    pub fn push(&mut self, item: Item) -> Vec<Work> {
        let mut out = Vec::new();
        let len = item.data_len();
        if len > self.max_size {
            let count = len.div_ceil(self.max_size);
            // The parts come after everything before them, to keep the order.
            out.extend(self.flush());
            out.push(Work::Parts {
                first_id: self.next_id,
                count,
                part_size: self.max_size,
                item: Arc::new(item),
            });
            self.next_id += count;
            return out;
        }
        if self.items.len() == self.max_files || self.bytes + len > self.max_size {
            out.extend(self.flush());
        }
        self.bytes += len;
        self.items.push(Arc::new(item));
        out
    }

    /// The last, partly filled package.
    pub fn flush(&mut self) -> Option<Work> {
        if self.items.is_empty() {
            return None;
        }
        let work = Work::Package {
            id: self.next_id,
            items: std::mem::take(&mut self.items),
        };
        self.next_id += 1;
        self.bytes = 0;
        Some(work)
    }

    /// How many package numbers were used so far.
    pub fn packages(&self) -> u64 {
        self.next_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> Item {
        Item {
            rel: PathBuf::from(name),
            source: PathBuf::from(name),
            kind: ItemKind::File,
            meta: Meta {
                size,
                ..Meta::default()
            },
            metadata_only: false,
        }
    }

    fn folder(name: &str) -> Item {
        Item {
            kind: ItemKind::Folder,
            ..file(name, 0)
        }
    }

    fn shape(work: &[Work]) -> Vec<String> {
        work.iter()
            .map(|w| match w {
                Work::Package { id, items } => format!(
                    "{id}:[{}]",
                    items
                        .iter()
                        .map(|i| i.rel.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                Work::Parts {
                    first_id,
                    count,
                    item,
                    ..
                } => format!("{first_id}+{count}:{}", item.rel.display()),
            })
            .collect()
    }

    fn pack(packer: &mut Packer, items: Vec<Item>) -> Vec<Work> {
        let mut out: Vec<Work> = items.into_iter().flat_map(|i| packer.push(i)).collect();
        out.extend(packer.flush());
        out
    }

    #[test]
    fn bounded_by_bytes_and_files_and_large_files_split() {
        let mut p = Packer::new(100, 3);
        let work = pack(
            &mut p,
            vec![
                folder("d"),
                file("a", 40),
                file("b", 40),
                file("c", 40),
                file("e", 0),
                file("f", 0),
                file("g", 0),
                file("big", 250),
                file("h", 100),
            ],
        );
        assert_eq!(
            shape(&work),
            ["0:[d a b]", "1:[c e f]", "2:[g]", "3+3:big", "6:[h]"]
        );
        assert_eq!(p.packages(), 7);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(pack(&mut Packer::new(10, 10), vec![]).is_empty());
    }

    #[test]
    fn every_item_is_packed_once_within_bounds() {
        // A deterministic spread of sizes around the bounds.
        let items: Vec<Item> = (0..500u64)
            .map(|i| file(&format!("f{i}"), (i * 7919) % 260))
            .collect();
        let mut p = Packer::new(128, 7);
        let work = pack(&mut p, items.clone());
        let mut seen = Vec::new();
        let mut next = 0;
        for w in &work {
            match w {
                Work::Package { id, items } => {
                    assert_eq!(*id, next);
                    assert!(items.len() <= 7);
                    assert!(items.iter().map(|i| i.meta.size).sum::<u64>() <= 128);
                    seen.extend(items.iter().map(|i| i.rel.clone()));
                }
                Work::Parts {
                    first_id,
                    count,
                    item,
                    part_size,
                } => {
                    assert_eq!(*first_id, next);
                    assert_eq!(*count, item.meta.size.div_ceil(*part_size));
                    seen.push(item.rel.clone());
                }
            }
            next += w.packages();
        }
        let expected: Vec<PathBuf> = items.iter().map(|i| i.rel.clone()).collect();
        assert_eq!(seen, expected);
    }
}
