//! One side's listing: every regular file under the synced paths, with the size and time the
//! quick check compares (rsync's), minus what is never synced (this tool's own files, SQLite's
//! companions, excluded names). Symlinks and other non-regular files are listed as skipped.

use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub(crate) use super::select::under;
pub use super::select::{Patterns, Selection};
pub use crate::paths::Paths;

/// The marker written in the target on the first sync; a target without it (but with a base)
/// is refused: it is not the folder that was synced before.
pub const MARKER: &str = ".metasystem-sync";
/// The lock a run holds in the target (host and pid inside).
pub const LOCK: &str = ".metasystem-sync.lock";
/// Per-host snapshots of live databases, in the target: `.metasystem-hosts/HOST/` (a
/// reserved dotted folder: a user's own `hosts/` syncs).
pub const HOSTS: &str = ".metasystem-hosts";
/// Where versions before that kept them (`hosts/HOSTNAME/`): a host moves its own folder.
pub const LEGACY_HOSTS: &str = "hosts";
pub use super::temps::is_temp;

/// One file as the quick check sees it: everything comes from one `statx` (no extra system
/// call for the inode or the change time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// Size in bytes; for a database with a live `-wal` beside it, both sizes together.
    pub size: u64,
    /// Modification time in ns since the epoch; with a live `-wal`, the later of the two.
    pub mtime_ns: i64,
    /// A fingerprint of the inode number and the change time ([`stamp_of`]): a file replaced
    /// by another (a rename over it, `mv`) or written in place has another, whatever its size
    /// and time. 0 where the file system has no stable inode numbers.
    pub stamp: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Whether a non-empty `-wal` sits beside it (a database in use).
    pub live_wal: bool,
    /// A cloud provider's placeholder whose contents are not on this machine (macOS
    /// "dataless"): never read.
    pub dataless: bool,
    /// Racily clean (git's term): modified within [`GRANULARITY_NS`] of when it was looked
    /// at, so a write of the same size in the same clock tick would leave its size, time and
    /// stamp as they are. Never trusted by the quick check, nor recorded as trusted.
    pub racy: bool,
    /// An empty folder (listed as `NAME/`): created and removed, never read.
    pub dir: bool,
}

/// What stands for an empty folder's contents in the base and the decisions.
pub const FOLDER_HASH: [u8; 32] = [0xD1; 32];

/// The coarsest timestamp granularity a synced file system may have (FAT's 2 s): a file whose
/// modification time is this close to when it was looked at is racily clean.
pub const GRANULARITY_NS: i64 = 2_000_000_000;

/// A fingerprint of a file's inode number and change time, never 0.
pub fn stamp_of(md: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let ctime = md
        .ctime()
        .wrapping_mul(1_000_000_000)
        .wrapping_add(md.ctime_nsec());
    mix(md.ino(), ctime as u64)
}

/// Two 64-bit values into one (splitmix64's finaliser over both), never 0.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Meta {
    /// A file as `md` shows it, looked at `seen_ns` (ns since the epoch; a lower bound of
    /// when the stat was taken), on a file system with stable inode numbers or not.
    pub fn of(md: &std::fs::Metadata, seen_ns: i64, stable: bool) -> Meta {
        use std::os::unix::fs::PermissionsExt;
        let mtime_ns = mtime_ns(md);
        Meta {
            size: md.len(),
            mtime_ns,
            stamp: if stable { stamp_of(md) } else { 0 },
            mode: md.permissions().mode() & 0o7777,
            live_wal: false,
            dataless: dataless(md),
            racy: mtime_ns >= seen_ns.saturating_sub(GRANULARITY_NS),
            dir: false,
        }
    }

    /// An empty folder as `md` shows it: its mode; no size, time or stamp (a folder's time
    /// changes with what is in it; it is never read).
    pub fn folder(md: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::PermissionsExt;
        Meta {
            mode: md.permissions().mode() & 0o7777,
            dir: true,
            ..Meta::default()
        }
    }

    /// The stamp the base may record for this side: 0 when racily clean.
    pub fn trusted_stamp(&self) -> u64 {
        if self.racy {
            0
        } else {
            self.stamp
        }
    }

    /// Whether `now` is the file this was, as far as one stat tells (the stamps compared
    /// where both sides have one).
    pub fn same_file(&self, now: &Meta) -> bool {
        self.size == now.size
            && self.mtime_ns == now.mtime_ns
            && (self.stamp == 0 || now.stamp == 0 || self.stamp == now.stamp)
    }
}

/// Whether the file system holding `root` keeps stable inode numbers (so that a stamp means
/// something from one run to the next). Not on FAT and exFAT (numbers made up at mount),
/// FUSE (often made up per lookup), SMB/CIFS (made up unless the server gives them).
pub fn stable_inodes(root: &Path) -> bool {
    fs_kind(root).is_none_or(|k| !UNSTABLE.contains(&k.as_str()))
}

/// File systems without stable inode numbers, as [`fs_kind`] names them.
const UNSTABLE: &[&str] = &[
    "vfat", "exfat", "fuse", "smb", "cifs", "msdos", "smbfs", "webdav",
];

/// The kind of file system holding `path`, as a short name where it matters here.
#[cfg(target_os = "linux")]
pub fn fs_kind(path: &Path) -> Option<String> {
    let st = rustix::fs::statfs(path).ok()?;
    #[allow(clippy::unnecessary_cast)]
    kind_of_magic(st.f_type as u64).map(str::to_string)
}

/// The kinds of Linux file system (`statfs`'s `f_type`) that matter here.
#[cfg(any(target_os = "linux", test))]
fn kind_of_magic(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0x4d44 => "vfat",
        0x2011_bab0 => "exfat",
        0x6573_5546 => "fuse",
        0x517b | 0xfe53_4d42 => "smb",
        0xff53_4d42 => "cifs",
        _ => return None,
    })
}

/// The kind of file system holding `path` (`f_fstypename`: msdos, exfat, smbfs, macfuse...).
#[cfg(target_os = "macos")]
pub fn fs_kind(path: &Path) -> Option<String> {
    let st = rustix::fs::statfs(path).ok()?;
    let name: Vec<u8> = st
        .f_fstypename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let name = String::from_utf8_lossy(&name).into_owned();
    Some(if name.contains("fuse") {
        "fuse".to_string()
    } else {
        name
    })
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn fs_kind(_: &Path) -> Option<String> {
    None
}

/// How a skip that is a fault (a folder that cannot be listed, a file that cannot be looked
/// at) begins, unlike a symlink's or a placeholder's.
pub const UNREADABLE: &str = "unreadable";

/// Whether a skip's reason is a fault ([`UNREADABLE`]).
pub fn is_fault(why: &str) -> bool {
    why.starts_with(UNREADABLE)
}

/// This tool's own files in a target (the marker, the lock, the per-host snapshots) and its
/// temp files, never synced as files. SQLite's companions are not here: they are left out
/// only beside a database of their name ([`companion_of`]).
pub fn is_internal(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    rel == MARKER
        || rel == LOCK
        || rel.strip_prefix(MARKER) == Some(".new")
        || super::select::under(rel, HOSTS)
        || is_temp(name)
}

/// SQLite's companion suffixes: the WAL, its shared memory, the rollback journal.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The database a companion file's name names (`notes.db-wal` → `notes.db`), if it has a
/// companion's suffix. It is a companion (never synced as a file) only when that database
/// is there beside it; otherwise it is a file like any other.
pub fn companion_of(name: &str) -> Option<&str> {
    COMPANIONS
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|owner| !owner.is_empty())
}

/// Whether `path` names a companion of an SQLite database beside it (blocking I/O: it reads
/// the database's header).
pub fn is_companion(path: &Path) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    let name = super::names::held(name);
    let Some(owner) = companion_of(&name) else {
        return false;
    };
    let owner = path.with_file_name(super::names::bytes(owner));
    super::longfs::symlink_metadata(&owner).is_ok_and(|m| m.is_file())
        && super::fsops::is_sqlite(&owner)
}

/// One side's listing.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every synced file, sorted by relative path (byte order), each path once.
    pub paths: Paths,
    /// The quick-check view of each of `paths`, index for index.
    pub metas: Vec<Meta>,
    /// Temp files of this tool (relative path, nonce): the run removes those whose nonce
    /// the store lists for its target, and leaves the others alone.
    pub temps: Vec<(String, String)>,
    /// Not synced, with why: symlinks, special files, unreadable folders, placeholders.
    pub skipped: Vec<(String, String)>,
    /// Listed paths (`paths`) not there on this side, with what is there instead (nothing, or
    /// a link to nowhere): a run decides whether that is a deletion or a folder gone missing
    /// ([`super::listings::missing_listed`]).
    pub missing: Vec<(String, String)>,
    /// Whether the side's file system keeps stable inode numbers ([`stable_inodes`]): where
    /// it does not, stamps are 0 and every file is hashed.
    pub stable_inodes: bool,
    /// When the scan began (ns since the epoch): files modified since, or just before, are
    /// racily clean.
    pub seen_ns: i64,
}

impl Listing {
    /// How many files are listed.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// The listed files in order: path and quick-check view.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, Meta)> + '_ {
        self.paths.iter().zip(self.metas.iter().copied())
    }

    /// The quick-check view of `rel`, if listed.
    pub fn get(&self, rel: &str) -> Option<&Meta> {
        self.paths.find(rel).ok().map(|i| &self.metas[i])
    }

    /// Hands back the room grown beyond what is held.
    fn shrink_to_fit(&mut self) {
        self.paths.shrink_to_fit();
        self.metas.shrink_to_fit();
    }
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

/// The quick-check view of `path` now (a database's live `-wal` folded in), `None` when it
/// is not a regular file any more; its stamp as on a file system with stable inode numbers
/// (compare it with [`Meta::same_file`], which skips a 0 stamp).
pub fn meta_of(path: &Path) -> io::Result<Option<Meta>> {
    meta_on(path, true)
}

/// [`meta_of`] on a file system whose inode numbers are `stable` or not.
pub fn meta_on(path: &Path, stable: bool) -> io::Result<Option<Meta>> {
    let seen = now_ns();
    let md = match super::longfs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !md.file_type().is_file() {
        return Ok(None);
    }
    let mut meta = Meta::of(&md, seen, stable);
    fold_wal(path, &mut meta, seen);
    Ok(Some(meta))
}

fn fold_wal(path: &Path, meta: &mut Meta, seen_ns: i64) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = super::longfs::symlink_metadata(Path::new(&wal)) {
        if w.file_type().is_file() && w.len() > 0 {
            let wm = Meta::of(&w, seen_ns, meta.stamp != 0);
            meta.size += wm.size;
            meta.mtime_ns = meta.mtime_ns.max(wm.mtime_ns);
            if meta.stamp != 0 {
                meta.stamp = mix(meta.stamp, wm.stamp);
            }
            meta.racy |= wm.racy;
            meta.live_wal = true;
        }
    }
}

/// Lists `root` (which must exist). Errors reading a folder inside are skipped entries, not a
/// failed scan; an unreadable root is an error. Each folder is read once, and each file is
/// looked at relative to its open folder (no walk of the whole path per file); names that
/// are not UTF-8 are not synced.
pub fn scan(root: &Path, sel: &Selection) -> io::Result<Listing> {
    scan_side(root, sel, true, (0, 0))
}

/// [`scan`], following the listed paths (`sel.paths`) that are symlinks only when
/// `follow_listed` (the primary, where a user may link a folder to sync on purpose); in a
/// target, a listed path through a symlink is skipped like any symlink, or a run would write
/// outside the target, and read what the folder out there lacks as deleted. `room`: how many
/// paths of how many bytes in all the side likely holds (the base's, from the last run): the
/// listing is made that big at once, not grown by doubling, which at 100k files held up to
/// twice the room at the run's peak.
pub fn scan_side(
    root: &Path,
    sel: &Selection,
    follow_listed: bool,
    room: (usize, usize),
) -> io::Result<Listing> {
    super::longfs::read_dir(root)?; // the root itself must be readable
    let mut out = Listing {
        // Before any file is looked at: a lower bound of every stat's time.
        seen_ns: now_ns(),
        stable_inodes: stable_inodes(root),
        ..Listing::default()
    };
    out.paths.reserve(room.0, room.1);
    out.metas.reserve_exact(room.0);
    let starts: Vec<String> = if sel.paths.is_empty() {
        vec![String::new()]
    } else {
        sel.paths
            .iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .collect()
    };
    // Names with a companion's suffix, looked at once the listing is complete.
    let mut companions = Vec::new();
    for start in starts {
        if start.is_empty() {
            walk(&mut out, &mut companions, sel, root.to_path_buf(), start);
            continue;
        }
        if sel.excluded_above(&start) {
            continue;
        }
        // A listed path: followed if it is a symlink (as the root of a walk is), on the side
        // that may.
        let path = super::names::at(root, &start);
        if !follow_listed && through_link(root, &start) {
            out.skipped.push((
                start,
                "a symlink (or under one): not followed in a target".into(),
            ));
            continue;
        }
        let md = match super::longfs::metadata(&path) {
            Ok(md) => md,
            // A listed path that does not exist (yet) on this side.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let what = match super::longfs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_symlink() => format!(
                        "{} is a link to a place that is not there ({})",
                        path.display(),
                        super::longfs::read_link(&path)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default()
                    ),
                    _ => format!("{} is not there", path.display()),
                };
                out.missing.push((start, what));
                continue;
            }
            Err(e) => {
                out.skipped
                    .push((start, format!("{UNREADABLE}: {}: {e}", path.display())));
                continue;
            }
        };
        if md.is_dir() {
            if !sel.excludes_folder(&start) {
                walk(&mut out, &mut companions, sel, path, start);
            }
            continue;
        }
        let name = start.rsplit('/').next().unwrap_or(&start).to_string();
        consider(
            &mut out,
            &mut companions,
            sel,
            &start,
            &name,
            md.file_type(),
            || Ok(md.clone()),
        );
    }
    // A walk lists in order; listed paths may come in any order and overlap.
    if !out.paths.is_sorted() {
        out.paths.sort_along(&mut out.metas);
    }
    out.shrink_to_fit();
    // SQLite's companions beside their database are left out; a database's live WAL is
    // folded into it (its changes are not in the main file until a checkpoint).
    let mut dropped = std::collections::HashSet::new();
    for rel in companions {
        if !is_companion(&super::names::at(root, &rel)) {
            continue;
        }
        if let Ok(i) = out.paths.find(&rel) {
            dropped.insert(i);
        }
        if let Some(owner) = rel.strip_suffix("-wal") {
            if let Ok(o) = out.paths.find(owner) {
                let abs = super::names::at(root, owner);
                fold_wal(&abs, &mut out.metas[o], out.seen_ns);
            }
        }
    }
    if !dropped.is_empty() {
        out.paths.retain(|i| !dropped.contains(&i));
        let mut i = 0;
        out.metas.retain(|_| {
            i += 1;
            !dropped.contains(&(i - 1))
        });
    }
    Ok(out)
}

/// Whether `rel` under `root`, or a folder above it, is a symlink.
pub fn through_link(root: &Path, rel: &str) -> bool {
    let mut at = root.to_path_buf();
    rel.split('/').any(|part| {
        at.push(part);
        super::longfs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// A folder being walked: its entries not looked at yet, the next one last.
struct Frame {
    /// The folder's path (its entries' `path()` is not theirs when it is long: see
    /// [`super::longfs::read_dir`]).
    dir: PathBuf,
    /// Whether every entry was read (none skipped as unreadable).
    read_all: bool,
    prefix: String,
    rest: Vec<(String, std::fs::DirEntry, std::fs::FileType)>,
}

/// Lists the folder `dir` (`prefix` relative to the root, "" for the root) and everything
/// under it, depth first, each folder's entries in byte order with a folder's name read as
/// `NAME/`: the files come out sorted by relative path, so the listing needs no sort (whose
/// second copy of 100k paths was most of a scan's memory).
fn walk(
    out: &mut Listing,
    companions: &mut Vec<String>,
    sel: &Selection,
    dir: PathBuf,
    prefix: String,
) {
    let mut stack: Vec<Frame> = Vec::new();
    let frame = open(out, &dir, prefix);
    empty_folder(out, sel, &dir, frame.as_ref());
    stack.extend(frame);
    // Each entry's path, built in one buffer (copied only where it is kept).
    let mut rel = String::new();
    while let Some(top) = stack.last_mut() {
        let Some((name, entry, ft)) = top.rest.pop() else {
            stack.pop();
            continue;
        };
        rel.clear();
        if !top.prefix.is_empty() {
            rel.push_str(&top.prefix);
            rel.push('/');
        }
        rel.push_str(&name);
        if ft.is_dir() {
            // A folder never synced (the daemon's own state dir inside the primary) or
            // excluded is not read at all: what is in it cannot matter, not even as unreadable.
            if !sel.never.iter().any(|p| under(&rel, p)) && !sel.excludes_folder(&rel) {
                let path = top.dir.join(entry.file_name());
                let frame = open(out, &path, rel.clone());
                empty_folder(out, sel, &path, frame.as_ref());
                stack.extend(frame);
            }
            continue;
        }
        consider(out, companions, sel, &rel, &name, ft, || entry.metadata());
    }
}

/// Reads one folder's entries (names that are not UTF-8 are not synced), sorted for
/// [`walk`]. A folder that cannot be read, or an entry whose type cannot be had, is skipped
/// with why.
fn open(out: &mut Listing, dir: &Path, prefix: String) -> Option<Frame> {
    let at = |prefix: &str| {
        if prefix.is_empty() {
            dir.display().to_string()
        } else {
            prefix.to_string()
        }
    };
    let entries = match super::longfs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.skipped
                .push((at(&prefix), format!("{UNREADABLE}: {}: {e}", dir.display())));
            return None;
        }
    };
    let mut rest = Vec::new();
    let mut read_all = true;
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.skipped
                    .push((at(&prefix), format!("{UNREADABLE}: {}: {e}", dir.display())));
                read_all = false;
                break;
            }
        };
        // A name that is not UTF-8 is held losslessly (see `names`).
        let name = super::names::held_owned(entry.file_name());
        match entry.file_type() {
            Ok(ft) => rest.push((name, entry, ft)),
            Err(e) => {
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                out.skipped
                    .push((rel, format!("{UNREADABLE}: cannot stat: {e}")));
                read_all = false;
            }
        }
    }
    // Last first: the walk pops the next entry off the end.
    rest.sort_unstable_by(|a, b| walk_order((&b.0, b.2.is_dir()), (&a.0, a.2.is_dir())));
    Some(Frame {
        dir: dir.to_path_buf(),
        read_all,
        prefix,
        rest,
    })
}

/// An empty folder (not the root) is listed as `NAME/`, where the walk is (a folder's
/// entries sort as `NAME/...`): empty folders sync. A folder holding anything, synced or
/// not, is not listed: its files stand for it.
fn empty_folder(out: &mut Listing, sel: &Selection, dir: &Path, frame: Option<&Frame>) {
    let Some(f) = frame else { return };
    if f.prefix.is_empty() || !f.rest.is_empty() || !f.read_all || !sel.wants_here(&f.prefix) {
        return;
    }
    let Ok(md) = super::longfs::symlink_metadata(dir) else {
        return;
    };
    out.paths.push(&format!("{}/", f.prefix));
    out.metas.push(Meta::folder(&md));
}

/// How an entry sorts among its folder's: a folder's name as `NAME/`, so that what is in it
/// comes where its paths sort.
fn walk_key(name: &[u8], dir: bool) -> impl Iterator<Item = u8> + '_ {
    name.iter().copied().chain(dir.then_some(b'/'))
}

/// Two entries (name, whether a folder) in [`walk_key`] order: their common length compared
/// as bytes at once, only what follows it one byte at a time.
fn walk_order(a: (&str, bool), b: (&str, bool)) -> std::cmp::Ordering {
    let (x, y) = (a.0.as_bytes(), b.0.as_bytes());
    let n = x.len().min(y.len());
    x[..n]
        .cmp(&y[..n])
        .then_with(|| walk_key(&x[n..], a.1).cmp(walk_key(&y[n..], b.1)))
}

/// One entry that is not a folder: a stale temp, skipped, or listed.
#[allow(clippy::too_many_arguments)]
fn consider(
    out: &mut Listing,
    companions: &mut Vec<String>,
    sel: &Selection,
    rel: &str,
    name: &str,
    ft: std::fs::FileType,
    metadata: impl FnOnce() -> io::Result<std::fs::Metadata>,
) {
    if let Some(nonce) = super::temps::nonce_of(name) {
        out.temps.push((rel.to_string(), nonce.to_string()));
        return;
    }
    if super::temps::is_legacy(name) {
        out.skipped.push((
            rel.to_string(),
            "named like a temp file of an older version: never synced or deleted (rename it \
             to sync it, or delete it)"
                .into(),
        ));
        return;
    }
    if companion_of(name).is_some() && ft.is_file() {
        // Looked at once the listing is complete, selected or not: a live WAL makes its
        // database one in use whatever the patterns say of the WAL.
        companions.push(rel.to_string());
    }
    if !sel.wants_here(rel) {
        return;
    }
    if !ft.is_file() {
        let what = if ft.is_symlink() {
            "a symlink"
        } else {
            "not a regular file"
        };
        out.skipped.push((rel.to_string(), what.to_string()));
        return;
    }
    let md = match metadata() {
        Ok(md) => md,
        Err(e) => {
            out.skipped
                .push((rel.to_string(), format!("{UNREADABLE}: cannot stat: {e}")));
            return;
        }
    };
    let meta = Meta::of(&md, out.seen_ns, out.stable_inodes);
    if meta.dataless {
        out.skipped.push((
            rel.to_string(),
            "a cloud placeholder (not downloaded): not read".into(),
        ));
        return;
    }
    out.paths.push(rel);
    out.metas.push(meta);
}

/// The key under which names collide on a case-insensitive or normalising filesystem.
pub fn fold(rel: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    rel.nfc().collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn globs(patterns: &[&str]) -> Option<Patterns> {
        Some(Patterns::parse(patterns).unwrap())
    }

    #[test]
    fn file_systems_without_stable_inode_numbers_are_known() {
        for magic in [0x4d44, 0x2011_bab0, 0x6573_5546, 0xff53_4d42] {
            let kind = kind_of_magic(magic).unwrap();
            assert!(UNSTABLE.contains(&kind), "{kind}");
        }
        assert_eq!(kind_of_magic(0xEF53), None); // ext4
        let d = tempfile::tempdir().unwrap();
        assert!(stable_inodes(d.path()));
    }

    /// The stamp changes with the inode (a file renamed over another) and the change time
    /// (a write, a chmod); a file modified just before it was looked at is racily clean.
    #[test]
    fn stamps_and_racy_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "aaaa").unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let a = meta_of(&f).unwrap().unwrap();
        assert!(!a.racy && a.stamp != 0);
        assert_eq!(a.trusted_stamp(), a.stamp);
        // Another file of the same size and time renamed over it.
        let g = d.path().join("g");
        std::fs::write(&g, "bbbb").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&g)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::rename(&g, &f).unwrap();
        let b = meta_of(&f).unwrap().unwrap();
        assert_eq!((a.size, a.mtime_ns), (b.size, b.mtime_ns));
        assert_ne!(a.stamp, b.stamp);
        assert!(!a.same_file(&b));
        // Written just now: racily clean, its stamp never recorded.
        std::fs::write(&f, "cccc").unwrap();
        let c = meta_of(&f).unwrap().unwrap();
        assert!(c.racy);
        assert_eq!(c.trusted_stamp(), 0);
        // Without stable inode numbers there is no stamp, and comparisons skip it.
        let u = meta_on(&f, false).unwrap().unwrap();
        assert_eq!(u.stamp, 0);
        assert!(u.same_file(&c) && c.same_file(&u));
    }

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
            ".metasystem-sync.new",
            ".metasystem-hosts/h1/metastore.db",
            "a/.x.db.msync-tmp-00000000000004d2",
            "a/.msync-0123456789abcdef-00000001.tmp",
        ] {
            assert!(is_internal(rel), "{rel}");
        }
        // A user's `hosts/` and names with a companion's suffix are not ours.
        for rel in [
            "notes.db",
            "hostsfile",
            "hosts/h1/x",
            "a/hosts/x",
            "wal",
            "x-wal",
        ] {
            assert!(!is_internal(rel), "{rel}");
        }
        assert_eq!(companion_of("notes.db-wal"), Some("notes.db"));
        assert_eq!(companion_of("a-journal"), Some("a"));
        assert_eq!(companion_of("-shm"), None);
        assert_eq!(companion_of("notes.db"), None);
    }

    /// Regression: every name ending in -wal, -shm or -journal was left out, database or not.
    /// Only a database's companions beside it are.
    #[test]
    fn companions_are_left_out_only_beside_their_database() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut db = b"SQLite format 3\0".to_vec();
        db.extend([0u8; 100]);
        std::fs::write(root.join("app.sqlite"), &db).unwrap();
        std::fs::write(root.join("app.sqlite-wal"), "frames").unwrap();
        std::fs::write(root.join("app.sqlite-shm"), "shm").unwrap();
        std::fs::write(root.join("notes.txt"), "n").unwrap();
        std::fs::write(root.join("notes.txt-journal"), "my journal").unwrap();
        std::fs::write(root.join("build-wal"), "a file").unwrap();
        std::fs::write(root.join("orphan.db-shm"), "no database").unwrap();
        let l = scan(root, &Selection::default()).unwrap();
        assert_eq!(
            l.paths.iter().collect::<Vec<_>>(),
            [
                "app.sqlite",
                "build-wal",
                "notes.txt",
                "notes.txt-journal",
                "orphan.db-shm"
            ]
        );
        // The live WAL is folded into its database, whatever its name.
        let app = l.get("app.sqlite").unwrap();
        assert!(app.live_wal);
        assert_eq!(app.size, db.len() as u64 + 6);
    }

    #[test]
    fn folding_catches_case_and_normalisation() {
        assert_eq!(fold("Notes/A.txt"), fold("notes/a.TXT"));
        assert_eq!(fold("caf\u{e9}"), fold("cafe\u{301}"));
        assert_ne!(fold("a"), fold("b"));
    }

    #[test]
    fn an_excluded_folder_is_not_read_and_nothing_in_it_is_synced() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "cache/a",
            "cachex/b",
            "x/node_modules/m/c",
            "x/keep",
            "x/y.tmp/inside",
            "z.tmp",
        ] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "x").unwrap();
        }
        // A folder that could not be read, inside an excluded one: never looked at. (As root
        // the mode does not stop a read; nothing under it is listed either way.)
        let locked = root.join("x/node_modules/locked");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), "x").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let sel = Selection {
            exclude: globs(&["cache", "**/node_modules", "**/*.tmp"]),
            ..Default::default()
        };
        let l = scan(root, &sel).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(l.paths.iter().collect::<Vec<_>>(), ["cachex/b", "x/keep"]);
        assert!(l.skipped.is_empty(), "{:?}", l.skipped);
        assert!(!sel.wants("cache/a") && !sel.wants("x/node_modules/m/c"));
        assert!(!sel.wants("x/y.tmp/inside") && sel.wants("cachex/b"));
        // A listed path inside an excluded folder, or an excluded listed folder: nothing.
        let listed = Selection {
            paths: vec!["x/node_modules/m".into(), "cache".into(), "x/keep".into()],
            ..sel
        };
        let l = scan(root, &listed).unwrap();
        assert_eq!(l.paths.iter().collect::<Vec<_>>(), ["x/keep"]);
    }

    #[test]
    fn a_walk_lists_in_path_order_without_sorting() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // '.' (0x2e), '-' (0x2d) and ' ' sort before '/' (0x2f), '0' after it: "a/x" comes
        // between "a.b" and "a0".
        for dir in ["a", "a/b", "a b", "ab", "Z"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for f in [
            "a/x", "a/b/y", "a.b", "a-b", "a0", "a b/z", "ab/w", "Z/v", "\u{e9}", "b",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        let mut out = Listing::default();
        walk(
            &mut out,
            &mut Vec::new(),
            &Selection::default(),
            root.to_path_buf(),
            String::new(),
        );
        let got: Vec<&str> = out.paths.iter().collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(got, sorted);
        assert_eq!(got.len(), 10);
        assert!(out.paths.is_sorted());
    }

    #[test]
    fn overlapping_listed_paths_are_listed_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("docs/deep")).unwrap();
        std::fs::write(root.join("docs/b"), "b").unwrap();
        std::fs::write(root.join("docs/deep/a"), "a").unwrap();
        std::fs::write(root.join("c"), "c").unwrap();
        let sel = Selection {
            paths: vec![
                "docs".into(),
                "docs/deep".into(),
                "c".into(),
                "docs/b".into(),
            ],
            ..Default::default()
        };
        let l = scan(root, &sel).unwrap();
        assert_eq!(
            l.paths.iter().collect::<Vec<_>>(),
            ["c", "docs/b", "docs/deep/a"]
        );
        assert_eq!(l.len(), l.metas.len());
        assert_eq!(l.get("docs/deep/a").map(|m| m.size), Some(1));
        assert_eq!(l.iter().map(|(_, m)| m.size).sum::<u64>(), 3);
    }

    #[test]
    fn a_scan_lists_files_and_skips_what_it_must() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/deep/b.txt"), "bb").unwrap();
        std::fs::write(root.join("notes.db"), "SQLite format 3\0").unwrap();
        std::fs::write(root.join("notes.db-wal"), "walwal").unwrap();
        std::fs::write(root.join("sub/.msync-0123456789abcdef-00000002.tmp"), "t").unwrap();
        // An older version's temp name: reported, never synced nor deleted.
        std::fs::write(root.join("sub/.b.txt.msync-tmp-0123456789abcdef"), "t").unwrap();
        // Not ours: a user's names that merely contain the mark are listed.
        std::fs::write(root.join("notes.msync-tmp-1"), "n").unwrap();
        std::fs::write(root.join("sub/.c.msync-tmp-0123456789abcdeg"), "n").unwrap();
        std::fs::write(root.join(MARKER), "m").unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let l = scan(root, &Selection::default()).unwrap();
        let names: Vec<_> = l.paths.iter().collect();
        assert_eq!(
            names,
            [
                "a.txt",
                "notes.db",
                "notes.msync-tmp-1",
                "sub/.c.msync-tmp-0123456789abcdeg",
                "sub/deep/b.txt"
            ]
        );
        assert_eq!(l.get("sub/deep/b.txt").map(|m| m.size), Some(2));
        let db = *l.get("notes.db").unwrap();
        assert!(db.live_wal);
        assert_eq!(db.size, 22);
        assert_eq!(
            l.temps,
            [(
                "sub/.msync-0123456789abcdef-00000002.tmp".to_string(),
                "0123456789abcdef".to_string()
            )]
        );
        let skipped: Vec<&str> = l.skipped.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(skipped, ["link", "sub/.b.txt.msync-tmp-0123456789abcdef"]);
        // A listed path that does not exist is an empty listing, not an error.
        let sel = Selection {
            paths: vec!["missing".into()],
            ..Default::default()
        };
        assert!(scan(root, &sel).unwrap().is_empty());
        assert!(scan(&root.join("nope"), &Selection::default()).is_err());
    }
}
