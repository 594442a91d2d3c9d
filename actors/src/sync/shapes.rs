//! Type conflicts: a path that is a file on one side and a folder on the other.
//!
//! A folder replaced by a file (or the other way round) on one side, the other side untouched,
//! is no conflict: the old shape's files are deleted (with backups) and the new shape's are
//! copied, over one or two runs. A conflict is when both sides changed: the file is new or
//! edited, and the folder holds something new or edited. It is settled before the run is
//! planned, by the strategy (the direction first): the losing shape is moved into the
//! backups, file by file (a folder's unsynced leftovers, if any, move aside under a conflict
//! name), and the winner then syncs as a new path. Under `manual`, both are kept: the file
//! is renamed to its conflict name (`NAME.conflict-STAMP-HOST.EXT`) on its side, and both
//! sync. Either way the paths' base entries are let go: what follows is a first sync of them,
//! deleting nothing.

use std::path::Path;
use std::time::SystemTime;

use super::classify::{Direction, Side, Strategy};
use super::engine::SyncSpec;
use super::fsops;
use super::items::quick;
use super::names;
use super::report::ConflictReport;
use super::scan::{Listing, Meta};
use super::temps::Temps;
use crate::store::sync::{Base, BaseChange};

/// A path that is a file on one side and a folder on the other, both changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub rel: String,
    /// The side where it is a file.
    pub file_on: Side,
    /// The file's modification time, and the latest of the folder's files'.
    pub file_mtime_ns: i64,
    pub folder_mtime_ns: i64,
}

/// Whether `m`, at `rel`, is what the base recorded (a file untouched since).
fn recorded(base: &Base, rel: &str, m: &Meta, local: bool) -> bool {
    base.get(rel).is_some_and(|b| {
        let side = if local { b.local } else { b.remote };
        quick(Some(&side), Some(m)).is_some()
    })
}

/// The listed paths of `side` under the folder `rel` (`rel/...`), with their metadata.
fn under<'a>(side: &'a Listing, rel: &'a str) -> impl Iterator<Item = (&'a str, Meta)> + 'a {
    let prefix_len = rel.len();
    let start = side.paths.find(&format!("{rel}/")).unwrap_or_else(|i| i);
    (start..side.len())
        .map(move |i| (side.paths.get(i), side.metas[i]))
        .take_while(move |(p, _)| {
            p.len() > prefix_len && p.starts_with(rel) && p.as_bytes()[prefix_len] == b'/'
        })
}

/// The type conflicts between two listings, against the base (pure, but for the listings).
pub fn clashes(
    one_sided: &[(&str, Side, Meta)],
    local: &Listing,
    remote: &Listing,
    base: &Base,
) -> Vec<Clash> {
    let mut out = Vec::new();
    for &(rel, file_on, m) in one_sided {
        let file_local = file_on == Side::Local;
        let folder_side = if file_local { remote } else { local };
        if m.dir {
            continue;
        }
        let mut inside = under(folder_side, rel).peekable();
        if inside.peek().is_none() {
            continue;
        }
        // Both changed: the file is new or edited, and the folder holds something new or
        // edited. Otherwise one shape replaced the other, untouched: no conflict.
        let file_changed = !recorded(base, rel, &m, file_local);
        let mut folder_changed = false;
        let mut folder_mtime_ns = i64::MIN;
        for (p, fm) in inside {
            folder_mtime_ns = folder_mtime_ns.max(fm.mtime_ns);
            folder_changed |= fm.dir || !recorded(base, p, &fm, !file_local);
        }
        if file_changed && folder_changed {
            out.push(Clash {
                rel: rel.to_string(),
                file_on,
                file_mtime_ns: m.mtime_ns,
                folder_mtime_ns,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// How a clash is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The file wins: the folder (on the other side) goes into the backups.
    File,
    /// The folder wins: the file goes into the backups.
    Folder,
    /// Both are kept: the file is renamed to its conflict name.
    Both,
}

/// The settlement of `c` (pure): the direction's side wins a one-way sync; else the
/// strategy's (`newest`: the file's time against the folder's latest file's).
pub fn settle(c: &Clash, direction: Direction, strategy: Strategy) -> Settle {
    let side_wins = |s: Side| {
        if s == c.file_on {
            Settle::File
        } else {
            Settle::Folder
        }
    };
    match (direction, strategy) {
        (Direction::Push, _) => side_wins(Side::Local),
        (Direction::Pull, _) => side_wins(Side::Remote),
        (_, Strategy::Local) => side_wins(Side::Local),
        (_, Strategy::Remote) => side_wins(Side::Remote),
        (_, Strategy::Manual) => Settle::Both,
        (_, Strategy::Newest) if c.file_mtime_ns > c.folder_mtime_ns => Settle::File,
        (_, Strategy::Newest) => Settle::Folder,
    }
}

/// Applies the settlement of `c` (blocking I/O); answers the base changes (the paths let
/// go) and the report's line.
pub fn apply(
    spec: &SyncSpec,
    c: &Clash,
    how: Settle,
    folder_side: &Listing,
    base: &Base,
    at: SystemTime,
    temps: &Temps,
) -> std::io::Result<(Vec<BaseChange>, ConflictReport)> {
    let root = |s: Side| {
        if s == Side::Local {
            &spec.primary
        } else {
            &spec.target
        }
    };
    let folder_on = if c.file_on == Side::Local {
        Side::Remote
    } else {
        Side::Local
    };
    let side_name = |s: Side| if s == Side::Local { "local" } else { "remote" };
    let mut copy = None;
    match how {
        Settle::Folder => {
            let path = names::at(root(c.file_on), &c.rel);
            fsops::backup(
                &path,
                &spec.backups,
                &c.rel,
                at,
                c.file_on == Side::Local,
                temps,
            )?;
            if super::longfs::exists(&path) {
                super::longfs::remove_file(&path)?;
            }
        }
        Settle::File => {
            let dir = root(folder_on);
            for (p, m) in under(folder_side, &c.rel) {
                if m.dir {
                    continue;
                }
                let path = names::at(dir, p);
                fsops::backup(&path, &spec.backups, p, at, folder_on == Side::Local, temps)?;
                if super::longfs::exists(&path) {
                    super::longfs::remove_file(&path)?;
                }
            }
            remove_empty_tree(&names::at(dir, &c.rel));
            // Leftovers that are not synced (excluded, symlinks): kept, moved aside.
            let rest = names::at(dir, &c.rel);
            if super::longfs::exists(&rest) {
                let aside = fsops::conflict_name(&c.rel, at, &spec.host);
                super::longfs::rename(&rest, &names::at(dir, &aside))?;
            }
        }
        Settle::Both => {
            let from = if c.file_on == Side::Local {
                spec.host.clone()
            } else {
                spec.name.clone()
            };
            let name = fsops::conflict_name(&c.rel, at, &from);
            let dir = root(c.file_on);
            super::longfs::rename(&names::at(dir, &c.rel), &names::at(dir, &name))?;
            copy = Some(name);
        }
    }
    // The paths' base entries go: both shapes sync as new paths, deleting nothing.
    let prefix = format!("{}/", c.rel);
    let changes = base
        .iter()
        .filter(|(p, _)| *p == c.rel || p.starts_with(&prefix))
        .map(|(p, _)| BaseChange::Forget(p.to_string()))
        .collect();
    let kept = match how {
        Settle::File => side_name(c.file_on),
        Settle::Folder => side_name(folder_on),
        Settle::Both => "both",
    };
    Ok((
        changes,
        ConflictReport {
            path: c.rel.clone(),
            kept: kept.to_string(),
            copy,
        },
    ))
}

/// Removes the empty folders of the tree at `dir`, deepest first (what holds anything stays).
fn remove_empty_tree(dir: &Path) {
    let Ok(entries) = super::longfs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_tree(&dir.join(e.file_name()));
        }
    }
    let _ = super::longfs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clash(file_on: Side, file: i64, folder: i64) -> Clash {
        Clash {
            rel: "x".into(),
            file_on,
            file_mtime_ns: file,
            folder_mtime_ns: folder,
        }
    }

    #[test]
    fn a_clash_is_settled_by_the_direction_then_the_strategy() {
        use Direction::*;
        use Strategy::*;
        let cases = [
            (
                clash(Side::Local, 9, 1),
                Bidirectional,
                Newest,
                Settle::File,
            ),
            (
                clash(Side::Local, 1, 9),
                Bidirectional,
                Newest,
                Settle::Folder,
            ),
            (
                clash(Side::Remote, 1, 9),
                Bidirectional,
                Newest,
                Settle::Folder,
            ),
            (
                clash(Side::Remote, 1, 9),
                Bidirectional,
                Remote,
                Settle::File,
            ),
            (clash(Side::Local, 1, 9), Bidirectional, Local, Settle::File),
            (
                clash(Side::Local, 1, 9),
                Bidirectional,
                Manual,
                Settle::Both,
            ),
            (clash(Side::Local, 1, 9), Push, Manual, Settle::File),
            (clash(Side::Local, 9, 1), Pull, Newest, Settle::Folder),
        ];
        for (i, (c, d, s, want)) in cases.into_iter().enumerate() {
            assert_eq!(settle(&c, d, s), want, "case {i}");
        }
    }
}
