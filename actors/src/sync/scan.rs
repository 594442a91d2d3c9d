//! One side's listing: every regular file under the synced paths, with the size and time the
//! quick check compares (rsync's), minus what is never synced (this tool's own files, SQLite's
//! companions, excluded names). Symlinks and other non-regular files are listed as skipped.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use globset::GlobSet;

/// The marker written in the target on the first sync; a target without it (but with a base)
/// is refused: it is not the folder that was synced before.
pub const MARKER: &str = ".metasystem-sync";
/// The lock a run holds in the target (host and pid inside).
pub const LOCK: &str = ".metasystem-sync.lock";
/// Per-host snapshots of live databases, in the target.
pub const HOSTS: &str = "hosts";
/// Temp files: `.NAME.msync-tmp-RANDOM`, beside their destination.
pub const TMP_MARK: &str = ".msync-tmp-";

/// One file as the quick check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Size in bytes; for a database with a live `-wal` beside it, both sizes together.
    pub size: u64,
    /// Modification time in ns since the epoch; with a live `-wal`, the later of the two.
    pub mtime_ns: i64,
    /// Whether a non-empty `-wal` sits beside it (a database in use).
    pub live_wal: bool,
    /// A cloud provider's placeholder whose contents are not on this machine (macOS
    /// "dataless"): never read.
    pub dataless: bool,
}

/// What is synced: paths under the root (files or folders; empty: everything), filtered.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub paths: Vec<String>,
    /// When set, only matching files (relative paths, `/`-separated).
    pub include: Option<GlobSet>,
    pub exclude: Option<GlobSet>,
    /// Paths never synced, whatever the rest says: the backups folder and the snapshotted
    /// databases when they sit under the primary.
    pub never: Vec<String>,
}

impl Selection {
    pub fn wants(&self, rel: &str) -> bool {
        if is_internal(rel) || self.never.iter().any(|p| under(rel, p)) {
            return false;
        }
        if !self.paths.is_empty() && !self.paths.iter().any(|p| under(rel, p)) {
            return false;
        }
        if self.include.as_ref().is_some_and(|g| !g.is_match(rel)) {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|g| g.is_match(rel))
    }
}

/// Whether `rel` is `p` or inside it.
pub(crate) fn under(rel: &str, p: &str) -> bool {
    let p = p.trim_end_matches('/');
    rel == p || (rel.starts_with(p) && rel.as_bytes().get(p.len()) == Some(&b'/'))
}

/// How a skip that is a fault (a folder that cannot be listed, a file that cannot be looked
/// at) begins, unlike a symlink's or a placeholder's.
pub const UNREADABLE: &str = "unreadable";

/// Whether a skip's reason is a fault ([`UNREADABLE`]).
pub fn is_fault(why: &str) -> bool {
    why.starts_with(UNREADABLE)
}

/// This tool's own files and SQLite's companions, never synced as files.
pub fn is_internal(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    rel == MARKER
        || rel == LOCK
        || rel == HOSTS
        || rel.starts_with("hosts/")
        || name.contains(TMP_MARK)
        || name.ends_with("-wal")
        || name.ends_with("-shm")
        || name.ends_with("-journal")
}

/// One side's listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: BTreeMap<String, Meta>,
    /// Left-over temp files of an interrupted run (absolute paths), to delete.
    pub stale_temps: Vec<PathBuf>,
    /// Not synced, with why: symlinks, special files, unreadable folders, placeholders.
    pub skipped: Vec<(String, String)>,
}

/// macOS's `SF_DATALESS`: the file's contents live in the cloud only.
pub const SF_DATALESS: u32 = 0x4000_0000;

pub fn is_dataless(st_flags: u32) -> bool {
    st_flags & SF_DATALESS != 0
}

#[cfg(target_os = "macos")]
fn dataless(md: &std::fs::Metadata) -> bool {
    use std::os::macos::fs::MetadataExt;
    is_dataless(md.st_flags())
}

#[cfg(not(target_os = "macos"))]
fn dataless(_: &std::fs::Metadata) -> bool {
    false
}

pub fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    match md.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        },
        Err(_) => 0,
    }
}

/// The quick-check view of `path` (a database's live `-wal` folded in), `None` when it is
/// not a regular file any more.
pub fn meta_of(path: &Path) -> io::Result<Option<Meta>> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !md.file_type().is_file() {
        return Ok(None);
    }
    let mut meta = Meta {
        size: md.len(),
        mtime_ns: mtime_ns(&md),
        live_wal: false,
        dataless: dataless(&md),
    };
    fold_wal(path, &mut meta);
    Ok(Some(meta))
}

fn fold_wal(path: &Path, meta: &mut Meta) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = std::fs::symlink_metadata(&wal) {
        if w.file_type().is_file() && w.len() > 0 {
            meta.size += w.len();
            meta.mtime_ns = meta.mtime_ns.max(mtime_ns(&w));
            meta.live_wal = true;
        }
    }
}

/// Lists `root` (which must exist). Errors reading a folder inside are skipped entries, not a
/// failed scan; an unreadable root is an error.
pub fn scan(root: &Path, sel: &Selection) -> io::Result<Listing> {
    std::fs::read_dir(root)?; // the root itself must be readable
    let mut out = Listing::default();
    let starts: Vec<PathBuf> = if sel.paths.is_empty() {
        vec![root.to_path_buf()]
    } else {
        sel.paths
            .iter()
            .map(|p| root.join(p.trim_end_matches('/')))
            .collect()
    };
    let mut wal_owners = Vec::new();
    for start in starts {
        let walker = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound)
                        && e.depth() == 0
                    {
                        break; // a listed path that does not exist (yet) on this side
                    }
                    let at = e
                        .path()
                        .and_then(|p| rel(root, p))
                        .unwrap_or_else(|| start.display().to_string());
                    out.skipped.push((at, format!("{UNREADABLE}: {e}")));
                    continue;
                }
            };
            let Some(rel) = rel(root, entry.path()) else {
                continue;
            };
            let ft = entry.file_type();
            if ft.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            if name.contains(TMP_MARK) {
                out.stale_temps.push(entry.path().to_path_buf());
                continue;
            }
            if !sel.wants(&rel) {
                continue;
            }
            if !ft.is_file() {
                let what = if ft.is_symlink() {
                    "a symlink"
                } else {
                    "not a regular file"
                };
                out.skipped.push((rel, what.to_string()));
                continue;
            }
            let md = match entry.metadata() {
                Ok(md) => md,
                Err(e) => {
                    out.skipped
                        .push((rel, format!("{UNREADABLE}: cannot stat: {e}")));
                    continue;
                }
            };
            let meta = Meta {
                size: md.len(),
                mtime_ns: mtime_ns(&md),
                live_wal: false,
                dataless: dataless(&md),
            };
            if meta.dataless {
                out.skipped
                    .push((rel, "a cloud placeholder (not downloaded): not read".into()));
                continue;
            }
            if name.ends_with(".db") || name.ends_with(".sqlite") || name.ends_with(".sqlite3") {
                wal_owners.push(rel.clone());
            }
            out.files.insert(rel, meta);
        }
    }
    // A database's live WAL: its changes are not in the main file until a checkpoint.
    for rel in wal_owners {
        if let Some(meta) = out.files.get_mut(&rel) {
            fold_wal(&root.join(&rel), meta);
        }
    }
    Ok(out)
}

/// `path` relative to `root`, `/`-separated; `None` for the root itself or a name that is
/// not UTF-8 (reported by the caller as skipped would need the name; such names are rare and
/// not synced).
fn rel(root: &Path, path: &Path) -> Option<String> {
    let r = path.strip_prefix(root).ok()?;
    let mut s = String::new();
    for c in r.components() {
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(c.as_os_str().to_str()?);
    }
    (!s.is_empty()).then_some(s)
}

/// The key under which names collide on a case-insensitive or normalising filesystem.
pub fn fold(rel: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    rel.nfc().collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataless_flag() {
        assert!(is_dataless(0x4000_0000));
        assert!(is_dataless(0x4000_0020));
        assert!(!is_dataless(0x20)); // SF_ARCHIVED alone
        assert!(!is_dataless(0));
    }

    #[test]
    fn internal_names_are_never_synced() {
        for rel in [
            MARKER,
            LOCK,
            "hosts/h1/metastore.db",
            "a/.x.db.msync-tmp-1234",
            "notes.db-wal",
            "notes.db-shm",
            "notes.db-journal",
        ] {
            assert!(is_internal(rel), "{rel}");
        }
        for rel in ["notes.db", "hostsfile", "a/hosts/x", "wal"] {
            assert!(!is_internal(rel), "{rel}");
        }
    }

    #[test]
    fn selection_by_paths_and_globs() {
        let glob = |p: &str| {
            let mut b = globset::GlobSetBuilder::new();
            b.add(globset::Glob::new(p).unwrap());
            Some(b.build().unwrap())
        };
        let sel = Selection {
            paths: vec!["config/".into(), "notes.db".into()],
            include: None,
            exclude: glob("**/*.tmp"),
            never: vec!["config/backups".into()],
        };
        assert!(!sel.wants("config/backups/x.bak"));
        assert!(sel.wants("config/a.toml"));
        assert!(sel.wants("notes.db"));
        assert!(!sel.wants("configx/a"));
        assert!(!sel.wants("other.db"));
        assert!(!sel.wants("config/x.tmp"));
        let only = Selection {
            paths: vec![],
            include: glob("*.toml"),
            exclude: None,
            never: Vec::new(),
        };
        assert!(only.wants("a.toml"));
        assert!(!only.wants("a.txt"));
    }

    #[test]
    fn folding_catches_case_and_normalisation() {
        assert_eq!(fold("Notes/A.txt"), fold("notes/a.TXT"));
        assert_eq!(fold("caf\u{e9}"), fold("cafe\u{301}"));
        assert_ne!(fold("a"), fold("b"));
    }

    #[test]
    fn a_scan_lists_files_and_skips_what_it_must() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/deep/b.txt"), "bb").unwrap();
        std::fs::write(root.join("notes.db"), "x").unwrap();
        std::fs::write(root.join("notes.db-wal"), "walwal").unwrap();
        std::fs::write(root.join("sub/.b.txt.msync-tmp-1"), "t").unwrap();
        std::fs::write(root.join(MARKER), "m").unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let l = scan(root, &Selection::default()).unwrap();
        let names: Vec<_> = l.files.keys().cloned().collect();
        assert_eq!(names, ["a.txt", "notes.db", "sub/deep/b.txt"]);
        assert_eq!(l.files["sub/deep/b.txt"].size, 2);
        let db = l.files["notes.db"];
        assert!(db.live_wal);
        assert_eq!(db.size, 7);
        assert_eq!(l.stale_temps.len(), 1);
        assert_eq!(
            l.skipped,
            vec![("link".to_string(), "a symlink".to_string())]
        );
        // A listed path that does not exist is an empty listing, not an error.
        let sel = Selection {
            paths: vec!["missing".into()],
            ..Default::default()
        };
        assert!(scan(root, &sel).unwrap().files.is_empty());
        assert!(scan(&root.join("nope"), &Selection::default()).is_err());
    }
}
