//! Hard links: the names one file has in a round's item list. The first name (in the
//! list's order) is the file's *leader*: it alone is packaged and imported; each other
//! name becomes a hard link to it at the destination once it is in place, and is
//! reported as an item of its own with its own result (a failed leader fails its other
//! names too, saying why).
//!
//! Only files whose link count is above 1 are held here (grouped by device and inode),
//! so memory grows with the linked files, not with the share.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use super::items::ItemReader;
use crate::package::packer::{Item, ItemKind};

/// The round's hard-link groups of more than one name.
#[derive(Debug, Default)]
pub(super) struct Links {
    /// The other names of each leader, by the leader's destination path.
    by_leader: HashMap<Vec<u8>, Vec<Item>>,
    /// Each group's leader, by device and inode.
    leader_of: HashMap<(u64, u64), Vec<u8>>,
}

fn linked(item: &Item) -> Option<(u64, u64)> {
    (item.kind == ItemKind::File && item.meta.nlink > 1).then_some((item.meta.dev, item.meta.ino))
}

impl Links {
    /// The groups in the item list at `path`.
    pub(super) fn read(path: &Path) -> io::Result<Links> {
        let mut groups: HashMap<(u64, u64), Vec<Item>> = HashMap::new();
        for item in ItemReader::open(path)? {
            let item = item?;
            if let Some(key) = linked(&item) {
                groups.entry(key).or_default().push(item);
            }
        }
        let mut links = Links::default();
        for (key, mut names) in groups {
            if names.len() < 2 {
                continue;
            }
            let leader = names.remove(0);
            let leader_path = leader.rel.as_os_str().as_bytes().to_vec();
            links.leader_of.insert(key, leader_path.clone());
            links.by_leader.insert(leader_path, names);
        }
        Ok(links)
    }

    /// Whether `item` is a file's other name: it is not packaged, its leader brings it.
    pub(super) fn is_other_name(&self, item: &Item) -> bool {
        linked(item)
            .and_then(|key| self.leader_of.get(&key))
            .is_some_and(|leader| leader.as_slice() != item.rel.as_os_str().as_bytes())
    }

    /// The other names of the file whose leader is at `path`.
    pub(super) fn of(&self, path: &[u8]) -> &[Item] {
        self.by_leader.get(path).map_or(&[], Vec::as_slice)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_leader.is_empty()
    }
}
