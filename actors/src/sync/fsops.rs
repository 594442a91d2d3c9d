//! The file operations a sync is made of, each leaving no torn file under a real name: copies
//! go to a temp file beside the destination, are made durable, and are renamed over it only if
//! the destination is still what the scan saw; what is replaced or deleted is backed up first.
//! All of it is blocking I/O: callers run it on the blocking pool.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::classify::Digest;
use super::longfs as fs;
use super::scan::{meta_of, Meta};
use super::temps::Temps;

/// Read and write in chunks of this size.
pub const CHUNK: usize = 256 * 1024;

thread_local! {
    /// Each thread's copy buffer: allocated (and zeroed) once, not per file (100,000 small
    /// files spent more on zeroing fresh 256 KiB buffers than on copying).
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer of [`CHUNK`] bytes (a fresh one if it is in use).
fn with_buf<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < CHUNK {
                buf.resize(CHUNK, 0);
            }
            f(&mut buf[..CHUNK])
        }
        Err(_) => f(&mut vec![0u8; CHUNK]),
    })
}

/// SHA-256 of a file (and of its live `-wal` after it, when `with_wal`: a database's changes
/// sit there until a checkpoint).
pub fn hash_file(path: &Path, with_wal: bool) -> io::Result<Digest> {
    let mut h = Sha256::new();
    with_buf(|buf| {
        feed(&mut h, path, buf)?;
        if with_wal {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            match feed(&mut h, Path::new(&wal), buf) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok::<(), io::Error>(())
    })?;
    Ok(h.finalize().into())
}

fn feed(h: &mut Sha256, path: &Path, buf: &mut [u8]) -> io::Result<()> {
    let mut f = fs::open(path)?;
    loop {
        let n = match f.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
}

pub fn hex(d: &Digest) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(64);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn from_hex(s: &str) -> Option<Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether the file starts with SQLite's header.
pub fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    fs::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

/// Creates the folders of `path`'s parent below `root` (never `root` itself).
pub fn make_parents(root: &Path, path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        if parent != root && !fs::exists(parent) {
            if !fs::is_dir(root) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is gone", root.display()),
                ));
            }
            fs::create_dir_all(parent)?;
        }
    }
    Ok(())
}

thread_local! {
    /// The folder this thread last made sure of, for one [`Durability`] (a chunk of a run).
    static PARENT: std::cell::RefCell<(u64, PathBuf)> =
        std::cell::RefCell::new((0, PathBuf::new()));
}

/// [`make_parents`] for a copy from the other side: each folder made is given the mode of the
/// same folder there (`like`: the source's root), with the owner's bits added (the copies go
/// in), so a 0700 folder never arrives readable by others.
pub fn make_parents_like(root: &Path, path: &Path, like: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent == root || fs::exists(parent) {
        return Ok(());
    }
    if !fs::is_dir(root) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is gone", root.display()),
        ));
    }
    let Ok(rel) = parent.strip_prefix(root) else {
        return make_parents(root, path);
    };
    let mut at = root.to_path_buf();
    let mut from = like.to_path_buf();
    for part in rel.components() {
        at.push(part);
        from.push(part);
        if fs::is_dir(&at) {
            continue;
        }
        let mode = fs::metadata(&from)
            .ok()
            .filter(std::fs::Metadata::is_dir)
            .map_or(0o755, |m| (m.permissions().mode() & 0o777) | 0o700);
        match fs::create_dir(&at, mode) {
            Ok(()) => {
                // Exactly that, whatever the umask.
                fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && fs::is_dir(&at) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`make_parents_like`], looked at once per folder by each thread of a chunk (files come
/// sorted, a folder's together).
pub fn make_parents_in(root: &Path, path: &Path, like: &Path, dur: &Durability) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if PARENT.with(|p| {
        let p = p.borrow();
        p.0 == dur.id && p.1 == parent
    }) {
        return Ok(());
    }
    make_parents_like(root, path, like)?;
    PARENT.with(|p| *p.borrow_mut() = (dur.id, parent.to_path_buf()));
    Ok(())
}

/// The SQLite header: a file starting with it is copied as a snapshot, not byte for byte.
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A copy of `src` in the temp file `temp` (a name from [`Temps::beside`] its destination),
/// durable, with the modification time `mtime_ns`: answers the SHA-256 of what was copied,
/// and its size. On an error nothing is left at `temp`.
pub fn copy_to_temp(src: &Path, temp: PathBuf, mtime_ns: i64) -> io::Result<(Digest, u64)> {
    match copy_file(src, temp, mtime_ns, false, None)? {
        Some(c) => Ok((c.hash, c.size)),
        None => Err(io::Error::other("unreachable: not looking for SQLite")),
    }
}

/// A copy in a temp file beside its destination.
pub struct TempCopy {
    pub temp: PathBuf,
    /// SHA-256 of what was copied.
    pub hash: Digest,
    pub size: u64,
    /// Where it is, for [`Durability`].
    pub dev: Dev,
    /// The source's size and time once read to its end.
    pub source: (u64, i64),
}

/// [`copy_to_temp`] whose temp file is made durable through `dur` (at its next flush on a
/// filesystem that batches), answering `None` (and leaving nothing) when the source starts
/// with SQLite's header: a database is copied as a snapshot.
pub fn copy_staged(
    src: &Path,
    temp: PathBuf,
    mtime_ns: i64,
    dur: &Durability,
) -> io::Result<Option<TempCopy>> {
    copy_file(src, temp, mtime_ns, true, Some(dur))
}

/// The copy: to `temp`, hashed on the way, with `mtime_ns`; durable before it answers when
/// `dur` is `None`.
fn copy_file(
    src: &Path,
    temp: PathBuf,
    mtime_ns: i64,
    detect_sqlite: bool,
    dur: Option<&Durability>,
) -> io::Result<Option<TempCopy>> {
    // The source's errors name it (a write's keep their OS error: a full disk is told apart).
    let unreadable =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot read {}: {e}", src.display()));
    let result = with_buf(|buf| {
        let mut from = fs::open(src).map_err(unreadable)?;
        let mut first = 0;
        if detect_sqlite {
            // The first chunk (or the whole file), to look at its header.
            while first < buf.len() {
                match from.read(&mut buf[first..]) {
                    Ok(0) => break,
                    Ok(n) => first += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(unreadable(e)),
                }
            }
            if buf[..first].starts_with(SQLITE_HEADER) {
                return Ok(None);
            }
        }
        // Created readable by its owner alone, whatever the umask: never wider than its
        // source, whose permission bits it gets once written.
        let mut to = fs::create_new(&temp, 0o600)?;
        let mut h = Sha256::new();
        let mut total = 0u64;
        let md = from.metadata()?;
        if is_sparse(&md) {
            // Holes stay holes: only the data is read and written (what was read for the
            // header is read again).
            total = copy_sparse(&mut from, &mut to, &mut h, buf, md.len())?;
            first = 0;
        } else if first > 0 {
            h.update(&buf[..first]);
            to.write_all(&buf[..first])?;
            total += first as u64;
        }
        // A large file (its first chunk full, its size past LARGE): hashed on a second thread.
        if (first == buf.len() || !detect_sqlite) && md.len() >= LARGE && !is_sparse(&md) {
            let (hashed, n) = copy_hashing(&mut from, &mut to, h)?;
            h = hashed;
            total += n;
        }
        loop {
            let n = match from.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(unreadable(e)),
            };
            h.update(&buf[..n]);
            to.write_all(&buf[..n])?;
            total += n as u64;
        }
        let from_md = from.metadata()?;
        let source = (from_md.len(), super::scan::mtime_ns(&from_md));
        {
            use std::os::unix::fs::PermissionsExt;
            // The permission bits only: never set-user-id, set-group-id or sticky.
            let mode = from_md.permissions().mode() & 0o777;
            to.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        to.set_modified(time_of(mtime_ns))?;
        let md = to.metadata()?;
        let dev = match dur {
            Some(d) => {
                use std::os::unix::fs::MetadataExt;
                d.file_on(&to, md.dev())?
            }
            None => {
                to.sync_all()?;
                Dev::NOW
            }
        };
        Ok(Some((h.finalize().into(), total, dev, source)))
    });
    match result {
        Ok(Some((hash, size, dev, source))) => Ok(Some(TempCopy {
            temp,
            hash,
            size,
            dev,
            source,
        })),
        Ok(None) => Ok(None),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Whether the file `md` describes has holes: fewer blocks than its size needs.
fn is_sparse(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    md.len() > 0 && md.blocks().saturating_mul(512) < md.len()
}

/// Copies `len` bytes of `from` (which has holes) to `to` keeping the holes: each data range
/// (`SEEK_DATA` to `SEEK_HOLE`) is read and written at its offset, the holes are skipped (and
/// hashed as the zeros they read as), the end is set by the length. Answers the bytes the
/// copy holds (`len`).
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn copy_sparse(
    from: &mut File,
    to: &mut File,
    h: &mut Sha256,
    buf: &mut [u8],
    len: u64,
) -> io::Result<u64> {
    use rustix::fs::{seek, SeekFrom};
    use std::io::{Seek, SeekFrom as StdSeek};
    let zeros = [0u8; 4096];
    let hash_zeros = |h: &mut Sha256, mut n: u64| {
        while n > 0 {
            let k = n.min(zeros.len() as u64) as usize;
            h.update(&zeros[..k]);
            n -= k as u64;
        }
    };
    let mut at = 0u64;
    while at < len {
        let data = match seek(&*from, SeekFrom::Data(at)) {
            Ok(d) => d,
            // No data after `at`: the rest is a hole.
            Err(e) if e == rustix::io::Errno::NXIO => len,
            Err(e) => return Err(e.into()),
        };
        let data = data.min(len);
        hash_zeros(h, data - at);
        if data >= len {
            break;
        }
        let hole = seek(&*from, SeekFrom::Hole(data))
            .map_err(io::Error::from)?
            .min(len);
        from.seek(StdSeek::Start(data))?;
        to.seek(StdSeek::Start(data))?;
        let mut left = hole - data;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match from.read(&mut buf[..want]) {
                Ok(0) => return Err(io::Error::other("the file shrank while it was copied")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
            to.write_all(&buf[..n])?;
            left -= n as u64;
        }
        at = hole;
    }
    to.set_len(len)?;
    // Whatever follows is read from the end, as a plain copy would.
    from.seek(StdSeek::Start(len))?;
    to.seek(StdSeek::Start(len))?;
    Ok(len)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn copy_sparse(
    from: &mut File,
    to: &mut File,
    h: &mut Sha256,
    buf: &mut [u8],
    _len: u64,
) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    from.seek(SeekFrom::Start(0))?;
    let mut total = 0;
    loop {
        let n = from.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        h.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Files at least this large are copied with their hashing on a second thread.
const LARGE: u64 = 8 << 20;
/// The chunks of such a copy.
const LARGE_CHUNK: usize = 1 << 20;
/// How much of such a copy is written before its writeback is started.
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Starts writing `len` bytes of `f` from `offset` back to the disk, without waiting (Linux:
/// `POSIX_FADV_DONTNEED` starts the writeback of dirty pages): a large copy's data goes to
/// the disk while the rest is copied and hashed, not all at the flush that makes it durable.
#[cfg(target_os = "linux")]
fn start_writeback(f: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(
        f,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    );
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

/// The rest of `from` written to `to` and fed to `h`, which a helper thread hashes while this
/// one reads and writes the next chunks: SHA-256 (~1.5 GB/s on a core) is the slowest part of
/// copying a large file, and in turn a copy took the hash's time plus the I/O's. Answers the
/// hash state and the bytes copied (the hash is of exactly those bytes, in order).
fn copy_hashing(from: &mut File, to: &mut File, h: Sha256) -> io::Result<(Sha256, u64)> {
    use std::sync::mpsc::sync_channel;
    let stopped = || io::Error::other("the hashing thread stopped");
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(2);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(4);
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut h = h;
            for (buf, n) in full_rx {
                h.update(&buf[..n]);
                let _ = empty_tx.send(buf);
            }
            h
        });
        let mut unallocated = 3;
        let copied = (|| -> io::Result<u64> {
            let mut total = 0u64;
            let mut kicked = 0u64;
            loop {
                let mut buf = match empty_rx.try_recv() {
                    Ok(b) => b,
                    Err(_) if unallocated > 0 => {
                        unallocated -= 1;
                        vec![0u8; LARGE_CHUNK]
                    }
                    Err(_) => empty_rx.recv().map_err(|_| stopped())?,
                };
                let n = loop {
                    match from.read(&mut buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if n == 0 {
                    return Ok(total);
                }
                to.write_all(&buf[..n])?;
                total += n as u64;
                full_tx.send((buf, n)).map_err(|_| stopped())?;
                if total - kicked >= WRITEBACK_EVERY {
                    start_writeback(to, kicked, total - kicked);
                    kicked = total;
                }
            }
        })();
        drop(full_tx);
        let h = hasher
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        copied.map(|n| (h, n))
    })
}

/// A filesystem a run writes to, as [`Durability`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dev {
    /// Whether what is written there is made durable by [`Durability::flush`] (else at once).
    batched: bool,
}

impl Dev {
    /// Made durable at once, file by file.
    pub const NOW: Dev = Dev { batched: false };
}

/// How the files a run writes become durable. On a filesystem known to write everything back
/// on `syncfs` (ext2/3/4, xfs, btrfs, f2fs, tmpfs, on Linux), many files at once: temp files
/// and renames are noted and [`Durability::flush`] makes them all durable with one `syncfs`
/// per filesystem (a per-file fsync of the file and of its folder costs a journal commit each:
/// 100,000 files took minutes). Elsewhere (FUSE and network filesystems, where only fsync
/// reaches the server, and other systems) each file and folder is fsynced as before, and
/// `flush` has nothing left to do. Callers flush where the order matters: temp files before
/// their renames, backups before what they back up is replaced, renames before the base
/// records them.
pub struct Durability {
    /// Which one (per-thread caches of what it did are kept for it alone).
    id: u64,
    /// Filesystems seen (by device): an open file there when they batch.
    seen: std::sync::Mutex<Vec<(u64, Option<File>)>>,
    /// The first filesystem seen and whether it batches (most runs write to one or two):
    /// known without taking the lock.
    first: std::sync::OnceLock<(u64, bool)>,
    /// Never batch (tests of the file-by-file way).
    file_by_file: bool,
    /// Time spent in flushes, in ns.
    flushing: std::sync::atomic::AtomicU64,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::new()
    }
}

impl Durability {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Durability {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            seen: std::sync::Mutex::new(Vec::new()),
            first: std::sync::OnceLock::new(),
            file_by_file: false,
            flushing: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Every file and folder fsynced as it is written, whatever the filesystem.
    #[cfg(test)]
    fn file_by_file() -> Self {
        Durability {
            file_by_file: true,
            ..Durability::new()
        }
    }

    /// `f` was written: durable now (fsync), or at the next flush.
    pub fn file(&self, f: &File) -> io::Result<Dev> {
        use std::os::unix::fs::MetadataExt;
        self.file_on(f, f.metadata()?.dev())
    }

    /// [`Durability::file`] for `f` on device `id` (its `st_dev`).
    pub fn file_on(&self, f: &File, id: u64) -> io::Result<Dev> {
        let dev = self.dev_of(f, id)?;
        if !dev.batched {
            f.sync_all()?;
        }
        Ok(dev)
    }

    /// A rename or unlink in the folder of `path` (on `dev`): durable now, or at the next
    /// flush.
    pub fn dir(&self, path: &Path, dev: Dev) -> io::Result<()> {
        if dev.batched {
            Ok(())
        } else {
            sync_dir(path)
        }
    }

    /// Everything noted since the last flush, durable.
    pub fn flush(&self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let r = seen
            .iter()
            .filter_map(|(_, f)| f.as_ref())
            .try_for_each(syncfs);
        self.flushing.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        r
    }

    /// How long flushes took so far.
    pub fn flushing(&self) -> Duration {
        Duration::from_nanos(self.flushing.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn dev_of(&self, f: &File, id: u64) -> io::Result<Dev> {
        if let Some(&(first, batched)) = self.first.get() {
            if first == id {
                return Ok(Dev { batched });
            }
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, keep)) = seen.iter().find(|(d, _)| *d == id) {
            return Ok(Dev {
                batched: keep.is_some(),
            });
        }
        let keep = if !self.file_by_file && syncfs_writes_back(f) {
            Some(f.try_clone()?)
        } else {
            None
        };
        let dev = Dev {
            batched: keep.is_some(),
        };
        seen.push((id, keep));
        let _ = self.first.set((id, dev.batched));
        Ok(dev)
    }
}

#[cfg(target_os = "linux")]
fn syncfs_writes_back(f: &File) -> bool {
    const EXT: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const BTRFS: u64 = 0x9123_683E;
    const F2FS: u64 = 0xF2F5_2010;
    const TMPFS: u64 = 0x0102_1994;
    match rustix::fs::fstatfs(f) {
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => matches!(st.f_type as u64, EXT | XFS | BTRFS | F2FS | TMPFS),
        Err(_) => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn syncfs_writes_back(_: &File) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn syncfs(f: &File) -> io::Result<()> {
    rustix::fs::syncfs(f).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn syncfs(_: &File) -> io::Result<()> {
    Ok(())
}

pub fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Why an install did not happen.
#[derive(Debug)]
pub enum InstallError {
    /// The destination changed since the scan: deferred to the next run.
    Changed,
    Io(io::Error),
}

impl From<io::Error> for InstallError {
    fn from(e: io::Error) -> Self {
        InstallError::Io(e)
    }
}

/// Whether `dest` is still what the scan saw (`None`: absent).
pub fn unchanged(dest: &Path, expected: Option<Meta>) -> io::Result<bool> {
    let now = meta_of(dest)?;
    Ok(match (now, expected) {
        (None, None) => true,
        (Some(n), Some(e)) => e.same_file(&n),
        _ => false,
    })
}

/// Renames `temp` over `dest` if `dest` is still what the scan saw, then makes the rename
/// durable (the folder's fsync). On `Changed` the temp file is removed.
pub fn install(temp: &Path, dest: &Path, expected: Option<Meta>) -> Result<(), InstallError> {
    if !unchanged(dest, expected)? {
        let _ = fs::remove_file(temp);
        return Err(InstallError::Changed);
    }
    if let Err(e) = fs::rename(temp, dest) {
        let _ = fs::remove_file(temp);
        return Err(e.into());
    }
    sync_dir(dest)?;
    Ok(())
}

/// [`install`] whose rename is made durable through `dur` (at its next flush on a filesystem
/// that batches).
pub fn install_with(
    temp: &Path,
    dest: &Path,
    expected: Option<Meta>,
    dur: &Durability,
    dev: Dev,
) -> Result<(), InstallError> {
    if expected.is_none() {
        // A new file: renamed only if nothing has the name, in one step (no look first).
        match fs::rename_noreplace(temp, dest) {
            Some(Ok(())) => {
                dur.dir(dest, dev)?;
                return Ok(());
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(temp);
                return Err(InstallError::Changed);
            }
            Some(Err(e)) => {
                let _ = fs::remove_file(temp);
                return Err(e.into());
            }
            None => {} // not supported here: look, then rename
        }
    }
    if !unchanged(dest, expected)? {
        let _ = fs::remove_file(temp);
        return Err(InstallError::Changed);
    }
    if let Err(e) = fs::rename(temp, dest) {
        let _ = fs::remove_file(temp);
        return Err(e.into());
    }
    dur.dir(dest, dev)?;
    Ok(())
}

/// fsync of the folder holding `path` (a rename or unlink in it is durable after this).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => fs::open_dir(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) of `at`.
pub fn stamp(at: SystemTime) -> String {
    // "2026-11-22T10:15:00Z"
    let s = humantime::format_rfc3339_seconds(at).to_string();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 14 {
        format!("{}-{}", &digits[..8], &digits[8..14])
    } else {
        digits
    }
}

/// Parses a [`stamp`] back.
pub fn parse_stamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 15
        || b[8] != b'-'
        || !s[..8]
            .bytes()
            .chain(s[9..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    humantime::parse_rfc3339(&text).ok()
}

/// The longest file name most file systems take, in bytes.
pub const NAME_MAX: usize = 255;

/// `NAME.conflict-YYYYMMDD-HHMMSS-HOST.EXT` beside `rel`: a version of a conflict kept by the
/// manual strategy, HOST naming the host whose version it holds. A name that would be longer
/// than [`NAME_MAX`] has its stem (then its extension) shortened to fit.
pub fn conflict_name(rel: &str, at: SystemTime, from: &str) -> String {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), rel),
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    let from: String = from
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let mark = format!(".conflict-{}-{from}", stamp(at));
    // Room for `-N` (a second conflict in the same second) too.
    let room = NAME_MAX.saturating_sub(mark.len() + 5);
    let ext = cut(&ext, room / 2);
    let stem = cut(stem, room - ext.len());
    format!("{dir}{stem}{mark}{ext}")
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The extended attribute naming the host whose version a file in a target is (set on what a
/// run installs there).
const WRITER_XATTR: &str = "user.metasystem.host";

/// Notes on the file at `path` that `host` wrote it with the modification time `mtime_ns`
/// (where the file system keeps extended attributes; elsewhere nothing is noted).
pub fn set_writer(path: &Path, host: &str, mtime_ns: i64) {
    let value = format!("{host} {mtime_ns}");
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let _ = fs::setxattr(path, WRITER_XATTR, value.as_bytes());
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    let _ = (path, value);
}

/// The host that wrote the file at `path`, when noted ([`set_writer`]) and the file still
/// has the time it was written with (an edit in place keeps the attribute, not the time).
pub fn writer_of(path: &Path, mtime_ns: i64) -> Option<String> {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        let mut buf = [0u8; 160];
        let n = fs::getxattr(path, WRITER_XATTR, &mut buf[..]).ok()?;
        let s = std::str::from_utf8(buf.get(..n)?).ok()?;
        let (host, at) = s.rsplit_once(' ')?;
        (at.parse::<i64>().ok()? == mtime_ns && !host.is_empty()).then(|| host.to_string())
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (path, mtime_ns);
        None
    }
}

/// Copies (or, for a file of the primary about to be deleted, moves) `src` into the backups
/// folder as `rel`'s backup; durable before it answers. Answers the backup's path. With `mv`,
/// `src` is gone when it answers `Ok`, also when the backups are on another file system.
pub fn backup(
    src: &Path,
    backups: &Path,
    rel: &str,
    at: SystemTime,
    mv: bool,
    temps: &Temps,
) -> io::Result<PathBuf> {
    let dest = free_backup_name(backups, rel, at);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    if mv {
        match fs::rename(src, &dest) {
            Ok(()) => {
                sync_dir(&dest)?;
                sync_dir(src)?;
                return Ok(dest);
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    let Some(seen) = meta_of(src)? else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is gone or not a regular file", src.display()),
        ));
    };
    let own_mtime = super::scan::mtime_ns(&fs::metadata(src)?);
    let temp = temps.beside(&dest);
    copy_to_temp(src, temp.clone(), own_mtime)?;
    if let Err(e) = fs::rename(&temp, &dest) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(&dest)?;
    if mv {
        // Another file system (a rename cannot cross): the copy is durable, so the source
        // goes now, unless it changed while it was copied (then the caller's move fails and
        // the file stays where it was; the backup is a harmless extra).
        match remove(src, seen) {
            Ok(()) => {}
            Err(InstallError::Changed) => {
                return Err(io::Error::other(format!(
                    "{} changed while it was backed up",
                    src.display()
                )))
            }
            Err(InstallError::Io(e)) => return Err(e),
        }
    }
    Ok(dest)
}

/// A free backup name for `rel` taken at `at` (`NAME-STAMP.bak`, else `NAME-STAMP.N.bak`).
fn free_backup_name(backups: &Path, rel: &str, at: SystemTime) -> PathBuf {
    let mut n = 0;
    loop {
        let dest = super::names::at(
            backups,
            &crate::sync::backup_name::BackupName::new(rel, at, n).to_string(),
        );
        if n >= 9_999 || fs::symlink_metadata(&dest).is_err() {
            return dest;
        }
        n += 1;
    }
}

/// The first half of a [`backup`] copy of `src` (never a move): the copy in a temp file beside
/// its backup name, made durable through `dur`; answers (temp, backup name, where). Renamed
/// to its name by [`place_backup`] once durable.
pub fn backup_staged(
    src: &Path,
    backups: &Path,
    rel: &str,
    at: SystemTime,
    dur: &Durability,
    temps: &Temps,
) -> io::Result<(PathBuf, PathBuf, Dev)> {
    let dest = free_backup_name(backups, rel, at);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    let md = fs::metadata(src)?;
    match copy_file(
        src,
        temps.beside(&dest),
        super::scan::mtime_ns(&md),
        false,
        Some(dur),
    )? {
        Some(c) => Ok((c.temp, dest, c.dev)),
        None => Err(io::Error::other("unreachable: not looking for SQLite")),
    }
}

/// A backup of `dest` (which [`unchanged`] just found to be what the scan saw) that copies
/// nothing: a second name for the same file in the backups folder (a hard link; Linux only),
/// where the backups are on its file system. Once `dest` is replaced (by a rename over it),
/// the replaced version lives on under that name alone. Complete from the start (it is the
/// file itself, never a half-written copy), durable through `dur` with the copy's temp file
/// beside `dest` (`dev`: the same file system). A file with other names (hard links of the
/// user's) is copied instead. Answers the backup's name and `dest` as a
/// stat shows it now (a link changes its change time: what the install must find).
pub fn backup_linked(
    dest: &Path,
    backups: &Path,
    rel: &str,
    at: SystemTime,
    seen: Meta,
    dur: &Durability,
    dev: Dev,
) -> io::Result<Linked> {
    if !cfg!(target_os = "linux") {
        return Ok(Linked::Cannot);
    }
    use std::os::unix::fs::MetadataExt;
    let name = free_backup_name(backups, rel, at);
    if let Some(parent) = name.parent() {
        fs::create_dir_all(parent)?;
    }
    // A file with other names already (a user's hard links): an edit through one of them
    // would change the backup too. Copied instead (looked at before the link, which would
    // give it another change time).
    if fs::symlink_metadata(dest)?.nlink() != 1 || fs::hard_link(dest, &name).is_err() {
        return Ok(Linked::Cannot);
    }
    if fs::symlink_metadata(&name).map_or(true, |m| m.nlink() != 2) {
        // A name given to it meanwhile: looked at again at the next run.
        let _ = fs::remove_file(&name);
        return Ok(Linked::Changed);
    }
    // The name is the file the scan saw (not one renamed over `dest` since the look, nor one
    // written in the meantime): else it goes, and the run finds `dest` changed.
    let now = meta_of(dest)?;
    let same = match (
        &now,
        fs::symlink_metadata(dest),
        fs::symlink_metadata(&name),
    ) {
        (Some(now), Ok(d), Ok(b)) => {
            d.ino() == b.ino()
                && d.dev() == b.dev()
                && now.size == seen.size
                && now.mtime_ns == seen.mtime_ns
                && now.mode == seen.mode
        }
        _ => false,
    };
    match now {
        Some(now) if same => {
            dur.dir(&name, dev)?;
            Ok(Linked::Made(name, now))
        }
        _ => {
            let _ = fs::remove_file(&name);
            Ok(Linked::Changed)
        }
    }
}

/// What [`backup_linked`] did.
#[derive(Debug)]
pub enum Linked {
    /// The backup's name, and the destination as a stat shows it now.
    Made(PathBuf, Meta),
    /// No link here (another file system, one without hard links, a name taken): the backup
    /// is a copy.
    Cannot,
    /// The destination is not what the scan saw: nothing was made.
    Changed,
}

/// The second half of a staged backup: its temp file (durable) renamed to its name.
pub fn place_backup(temp: &Path, name: &Path, dur: &Durability, dev: Dev) -> io::Result<()> {
    if let Err(e) = fs::rename(temp, name) {
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    dur.dir(name, dev)
}

/// Deletes `path` if it is still what the scan saw, durable.
pub fn remove(path: &Path, expected: Meta) -> Result<(), InstallError> {
    if !unchanged(path, Some(expected))? {
        return Err(InstallError::Changed);
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    sync_dir(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn stamps_round_trip() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let s = stamp(at);
        assert_eq!(s.len(), 15);
        assert_eq!(parse_stamp(&s), Some(at));
        assert_eq!(parse_stamp("2026112-101500x"), None);
    }

    #[test]
    fn backup_and_conflict_names() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let b = crate::sync::backup_name::BackupName::new("sub/notes.db", at, 0).to_string();
        assert!(b.starts_with("sub/notes.db-20"), "{b}");
        assert!(b.ends_with(".bak"));
        assert_eq!(
            b.parse::<crate::sync::backup_name::BackupName>()
                .ok()
                .map(|b| (b.original, b.taken)),
            Some(("sub/notes.db".into(), at))
        );
        let dup = crate::sync::backup_name::BackupName::new("sub/notes.db", at, 2).to_string();
        assert_eq!(dup, b.replace(".bak", ".2.bak"));
        assert_eq!(
            dup.parse::<crate::sync::backup_name::BackupName>()
                .ok()
                .map(|b| (b.original, b.taken)),
            Some(("sub/notes.db".into(), at))
        );
        // A name too long to take the suffix: the name becomes a folder.
        let long = format!("d/{}", "n".repeat(NAME_MAX));
        for n in [0, 3] {
            let b = crate::sync::backup_name::BackupName::new(&long, at, n).to_string();
            assert!(b.starts_with(&format!("{long}/20")), "{b}");
            assert!(b.rsplit('/').all(|part| part.len() <= NAME_MAX));
            assert_eq!(
                b.parse::<crate::sync::backup_name::BackupName>()
                    .ok()
                    .map(|b| (b.original, b.taken)),
                Some((long.clone(), at))
            );
        }
        let fits = "m".repeat(NAME_MAX - 25);
        assert!(
            crate::sync::backup_name::BackupName::new(&fits, at, 9)
                .to_string()
                .len()
                <= NAME_MAX
        );
        assert_eq!(
            "notes.db"
                .parse::<crate::sync::backup_name::BackupName>()
                .ok()
                .map(|b| (b.original, b.taken)),
            None
        );
        let c = conflict_name("sub/notes.db", at, "ice cloud");
        assert!(c.starts_with("sub/notes.conflict-20"), "{c}");
        assert!(c.ends_with("-ice_cloud.db"), "{c}");
        assert!(conflict_name("Makefile", at, "h").starts_with("Makefile.conflict-"));
        // A long name is shortened to fit, on a character boundary, its host kept.
        let long = format!("d/{}.{}", "é".repeat(120), "x".repeat(30));
        let c = conflict_name(&long, at, "laptop-0123456789ab");
        let name = c.strip_prefix("d/").unwrap();
        assert!(name.len() + 5 <= NAME_MAX, "{}", name.len());
        assert!(name.contains(".conflict-") && name.contains("-laptop-0123456789ab."));
    }

    /// The writer noted on a file (an extended attribute) is read back; a file system without
    /// them notes nothing.
    #[test]
    fn the_writer_of_a_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "x").unwrap();
        let mtime = |f: &Path| super::super::scan::meta_of(f).unwrap().unwrap().mtime_ns;
        assert_eq!(writer_of(&f, mtime(&f)), None);
        set_writer(&f, "h2-0123456789ab", mtime(&f));
        if let Some(w) = writer_of(&f, mtime(&f)) {
            assert_eq!(w, "h2-0123456789ab");
            // Edited in place since (another time): no longer known.
            assert_eq!(writer_of(&f, mtime(&f) + 1), None);
        }
    }

    #[test]
    fn hex_round_trips() {
        let d: Digest = core::array::from_fn(|i| i as u8 * 7);
        assert_eq!(from_hex(&hex(&d)), Some(d));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn an_install_refuses_a_destination_that_changed() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let dest = d.path().join("dest");
        fs::write(&src, "new").unwrap();
        fs::write(&dest, "old").unwrap();
        let seen = meta_of(&dest).unwrap();
        fs::write(&dest, "changed meanwhile").unwrap();
        let temps = Temps::unregistered();
        let temp = temps.beside(&dest);
        let (hash, size) = copy_to_temp(&src, temp.clone(), 0).unwrap();
        assert_eq!(size, 3);
        assert_eq!(hash, hash_file(&src, false).unwrap());
        assert!(matches!(
            install(&temp, &dest, seen),
            Err(InstallError::Changed)
        ));
        assert!(!temp.exists());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "changed meanwhile");
        // Against what is there now it goes through, with the source's time.
        let seen = meta_of(&dest).unwrap();
        let temp = temps.beside(&dest);
        copy_to_temp(&src, temp.clone(), 1_000_000_000).unwrap();
        install(&temp, &dest, seen).unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(meta_of(&dest).unwrap().unwrap().mtime_ns, 1_000_000_000);
    }

    #[test]
    fn staged_copies_and_backups_land_whole_either_way_of_durability() {
        let temps = Temps::unregistered();
        for dur in [Durability::new(), Durability::file_by_file()] {
            let d = tempfile::tempdir().unwrap();
            let src = d.path().join("src");
            let dest = d.path().join("dest");
            let backups = d.path().join("backups");
            fs::write(&src, "new").unwrap();
            fs::write(&dest, "old").unwrap();
            let seen = meta_of(&dest).unwrap();
            let c = copy_staged(&src, temps.beside(&dest), 1_000_000_000, &dur)
                .unwrap()
                .unwrap();
            assert_eq!(c.hash, hash_file(&src, false).unwrap());
            assert_eq!(c.size, 3);
            let (temp, name, dev) =
                backup_staged(&dest, &backups, "dest", SystemTime::now(), &dur, &temps).unwrap();
            dur.flush().unwrap();
            place_backup(&temp, &name, &dur, dev).unwrap();
            dur.flush().unwrap();
            install_with(&c.temp, &dest, seen, &dur, c.dev).unwrap();
            dur.flush().unwrap();
            assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
            assert_eq!(fs::read_to_string(&name).unwrap(), "old");
            let now = meta_of(&dest).unwrap().unwrap();
            assert_eq!((now.size, now.mtime_ns), (3, 1_000_000_000));
            // A destination that changed since the scan is left alone.
            let c = copy_staged(&src, temps.beside(&dest), 0, &dur)
                .unwrap()
                .unwrap();
            assert!(matches!(
                install_with(&c.temp, &dest, seen, &dur, c.dev),
                Err(InstallError::Changed)
            ));
            assert!(!c.temp.exists());
        }
    }

    #[test]
    fn a_large_copy_hashes_what_it_copied() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("big");
        let bytes: Vec<u8> = (0..(LARGE as usize + 3 * LARGE_CHUNK + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        fs::write(&src, &bytes).unwrap();
        let dur = Durability::new();
        let c = copy_staged(
            &src,
            Temps::unregistered().beside(&d.path().join("copy")),
            0,
            &dur,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.size, bytes.len() as u64);
        assert_eq!(c.hash, hash_file(&src, false).unwrap());
        assert_eq!(fs::read(&c.temp).unwrap(), bytes);
    }

    #[test]
    fn backups_copy_or_move_and_never_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("f.txt");
        let backups = d.path().join("backups");
        fs::write(&src, "v1").unwrap();
        let at = SystemTime::now();
        let temps = Temps::unregistered();
        let b1 = backup(&src, &backups, "dir/f.txt", at, false, &temps).unwrap();
        let b2 = backup(&src, &backups, "dir/f.txt", at, true, &temps).unwrap();
        assert_ne!(b1, b2);
        assert!(!src.exists());
        assert_eq!(fs::read_to_string(&b1).unwrap(), "v1");
        assert_eq!(fs::read_to_string(&b2).unwrap(), "v1");
    }

    #[test]
    fn a_move_across_file_systems_removes_the_source() {
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            return; // no second file system here
        };
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("f.txt");
        fs::write(&src, "v1").unwrap();
        let b = backup(
            &src,
            other.path(),
            "f.txt",
            SystemTime::now(),
            true,
            &Temps::unregistered(),
        )
        .unwrap();
        assert!(!src.exists());
        assert_eq!(fs::read_to_string(&b).unwrap(), "v1");
    }
}
