//! Case-only renames: `Notes.txt` renamed `notes.txt` (or a folder `Docs` renamed `docs`) on
//! one side is applied as a rename on the other, rather than held back for good as two names
//! that collide. Found before the run is planned: a path of the base, still on one side and
//! gone from the other, where a new name that differs from it only by case (or Unicode
//! normalisation) appeared. Edited on the first side meanwhile or not: once renamed, its
//! contents are decided under the new name like any path's. The first component that differs
//! is renamed (a folder moves whole: on a case-insensitive file system, renaming its files
//! one by one would leave the folder's old name), and the base follows.

use std::collections::HashMap;
use std::path::Path;

use super::classify::Side;
use super::scan::{fold, Meta};
use crate::store::sync::{Base, BaseChange};

/// A rename to make: on `side`, `from` (a path, or a folder above paths) becomes `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub side: Side,
    pub from: String,
    pub to: String,
}

/// The prefixes of `old` and `new` up to their first component that differs (they differ
/// only by case or normalisation).
fn first_difference(old: &str, new: &str) -> Option<(String, String)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.split('/').collect(), new.split('/').collect());
    if a.len() != b.len() {
        return None;
    }
    let i = a.iter().zip(&b).position(|(x, y)| x != y)?;
    Some((a[..=i].join("/"), b[..=i].join("/")))
}

/// The case-only renames made on one side that the other should make (pure, but for the
/// listings).
pub fn find(one_sided: &[(&str, Side, Meta)], base: &Base) -> Vec<Rename> {
    let mut out: Vec<Rename> = Vec::new();
    // `side`: where the old name still is (and is renamed).
    for side in [Side::Remote, Side::Local] {
        // Old names: in the base, still on that side, gone from the other. (Edited there or
        // not: renamed, the edit is decided under the new name as any edit is.)
        let mut old: HashMap<String, &str> = HashMap::new();
        for &(rel, s, m) in one_sided {
            if s == side && !m.dir && base.contains_key(rel) {
                old.insert(fold(rel), rel);
            }
        }
        if old.is_empty() {
            continue;
        }
        // New names: on the other side only, not in the base.
        for &(rel, s, m) in one_sided {
            if s == side || m.dir || base.contains_key(rel) {
                continue;
            }
            let Some(from) = old.get(&fold(rel)) else {
                continue;
            };
            let Some((from, to)) = first_difference(from, rel) else {
                continue;
            };
            if !out.iter().any(|r| r.side == side && r.from == from) {
                out.push(Rename { side, from, to });
            }
        }
    }
    out
}

/// Makes `r` under `root` (blocking I/O), if its new name is free there (a case-insensitive
/// file system answers for the old one: the same entry).
pub fn apply(root: &Path, r: &Rename) -> std::io::Result<()> {
    let (from, to) = (
        super::names::at(root, &r.from),
        super::names::at(root, &r.to),
    );
    let same_entry = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        match (
            super::longfs::symlink_metadata(a),
            super::longfs::symlink_metadata(b),
        ) {
            (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
            _ => false,
        }
    };
    if super::longfs::exists(&to) && !same_entry(&from, &to) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists already", to.display()),
        ));
    }
    super::longfs::rename(&from, &to)?;
    super::fsops::sync_dir(&to)
}

/// The base changes that follow `r`: every path at or under `from` moves to `to`.
pub fn rebase(base: &Base, r: &Rename) -> Vec<BaseChange> {
    let prefix = format!("{}/", r.from);
    let mut out = Vec::new();
    for (p, e) in base.iter() {
        let moved = if p == r.from {
            r.to.clone()
        } else if let Some(rest) = p.strip_prefix(&prefix) {
            format!("{}/{rest}", r.to)
        } else {
            continue;
        };
        out.push(BaseChange::Forget(p.to_string()));
        out.push(BaseChange::Put(moved, e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_component_that_differs_is_renamed() {
        assert_eq!(
            first_difference("Docs/a.txt", "docs/a.txt"),
            Some(("Docs".into(), "docs".into()))
        );
        assert_eq!(
            first_difference("d/Notes.txt", "d/notes.txt"),
            Some(("d/Notes.txt".into(), "d/notes.txt".into()))
        );
        assert_eq!(first_difference("a/b", "a/b"), None);
        assert_eq!(first_difference("a/b", "a"), None);
    }
}
