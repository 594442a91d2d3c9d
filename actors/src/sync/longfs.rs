//! The file operations of a run on paths of any length. The kernel refuses a path of
//! `PATH_MAX` (4,096) bytes or more in one call (`ENAMETOOLONG`), but a folder tree may be
//! deeper than that: each of its names is legal, only the whole path is too long to pass.
//! Each function here is its `std::fs` namesake for a path below [`STEP`] bytes (the same
//! system call, nothing added), and for a longer one reaches the folder holding it in steps
//! (`openat` of at most [`STEP`] bytes at a time, each relative to the folder opened before)
//! and then acts relative to that open folder (`openat`, `renameat`, `unlinkat`, `mkdirat`,
//! `fchmodat`, `readlinkat`).
//!
//! Every path a run touches in a primary, a target or the backups goes through here. The
//! path is resolved again at each call, as the kernel resolves a short path at each call:
//! nothing is kept open between calls, so nothing here can act on a folder that was moved
//! since.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, Permissions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};

/// The longest path passed to the kernel in one call: below `PATH_MAX` (4,096 with its NUL)
/// with room to spare. A path at least this long is reached in steps.
pub const STEP: usize = 4000;

fn long(p: &Path) -> bool {
    p.as_os_str().len() >= STEP
}

/// The folder `dir`, opened with `flags` (with `O_DIRECTORY | O_CLOEXEC`) in steps of at
/// most [`STEP`] bytes.
fn open_folder(dir: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut at: Option<OwnedFd> = None;
    let mut chunk = PathBuf::new();
    for c in dir.components() {
        let part = c.as_os_str();
        let len = chunk.as_os_str().len();
        if len > 0 && len + 1 + part.len() >= STEP {
            at = Some(open_at(at.as_ref(), &chunk, step)?);
            chunk.clear();
        }
        // A component longer than a step cannot be one: the kernel says so below.
        chunk.push(c);
    }
    if chunk.as_os_str().is_empty() {
        chunk.push(Component::CurDir);
    }
    open_at(
        at.as_ref(),
        &chunk,
        flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
    )
}

fn open_at(at: Option<&OwnedFd>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let dir: BorrowedFd<'_> = at.map_or(CWD, AsFd::as_fd);
    Ok(rustix::fs::openat(dir, path, flags, Mode::empty())?)
}

/// The folder holding `p` (open, `O_PATH`) and `p`'s last name.
fn parent(p: &Path) -> io::Result<(OwnedFd, OsString)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a path to a name", p.display()),
        )
    };
    let name = match p.components().next_back() {
        Some(Component::Normal(n)) => n.to_owned(),
        _ => return Err(bad()),
    };
    let dir = p.parent().ok_or_else(bad)?;
    Ok((open_folder(dir, OFlags::PATH)?, name))
}

/// `p` opened with `flags` (and `O_CLOEXEC`), created with `mode` when `flags` creates.
fn open_with(p: &Path, flags: OFlags, mode: u32) -> io::Result<File> {
    let (dir, name) = parent(p)?;
    let fd = rustix::fs::openat(
        &dir,
        name.as_os_str(),
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

/// `std::fs::symlink_metadata`.
pub fn symlink_metadata(p: &Path) -> io::Result<Metadata> {
    if !long(p) {
        return std::fs::symlink_metadata(p);
    }
    open_with(p, OFlags::PATH | OFlags::NOFOLLOW, 0)?.metadata()
}

/// `std::fs::metadata`.
pub fn metadata(p: &Path) -> io::Result<Metadata> {
    if !long(p) {
        return std::fs::metadata(p);
    }
    open_with(p, OFlags::PATH, 0)?.metadata()
}

/// `Path::exists`.
pub fn exists(p: &Path) -> bool {
    metadata(p).is_ok()
}

/// `Path::is_dir`.
pub fn is_dir(p: &Path) -> bool {
    metadata(p).is_ok_and(|m| m.is_dir())
}

/// `File::open`.
pub fn open(p: &Path) -> io::Result<File> {
    if !long(p) {
        return File::open(p);
    }
    open_with(p, OFlags::RDONLY, 0)
}

/// A folder opened for reading (to fsync it).
pub fn open_dir(p: &Path) -> io::Result<File> {
    if !long(p) {
        return File::open(p);
    }
    Ok(File::from(open_folder(p, OFlags::RDONLY)?))
}

/// An existing file opened for writing (not truncated).
pub fn open_write(p: &Path) -> io::Result<File> {
    if !long(p) {
        return std::fs::OpenOptions::new().write(true).open(p);
    }
    open_with(p, OFlags::WRONLY, 0)
}

/// A new file created for writing with `mode` (less the umask); `AlreadyExists` if the name
/// is taken.
pub fn create_new(p: &Path, mode: u32) -> io::Result<File> {
    if !long(p) {
        use std::os::unix::fs::OpenOptionsExt;
        return std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p);
    }
    open_with(p, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, mode)
}

/// `std::fs::rename`.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    if !long(from) && !long(to) {
        return std::fs::rename(from, to);
    }
    let (a, an) = parent(from)?;
    let (b, bn) = parent(to)?;
    Ok(rustix::fs::renameat(
        &a,
        an.as_os_str(),
        &b,
        bn.as_os_str(),
    )?)
}

/// `rename(from, to)` that fails with `AlreadyExists` when `to` exists; `None` where the
/// system or the file system cannot do that.
#[cfg(target_os = "linux")]
pub fn rename_noreplace(from: &Path, to: &Path) -> Option<io::Result<()>> {
    use rustix::fs::{renameat_with, RenameFlags};
    let r = if !long(from) && !long(to) {
        renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE)
    } else {
        let (a, an) = match parent(from) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let (b, bn) = match parent(to) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        renameat_with(
            &a,
            an.as_os_str(),
            &b,
            bn.as_os_str(),
            RenameFlags::NOREPLACE,
        )
    };
    match r {
        Ok(()) => Some(Ok(())),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => None,
        Err(e) => Some(Err(e.into())),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn rename_noreplace(_: &Path, _: &Path) -> Option<io::Result<()>> {
    None
}

/// `std::fs::hard_link`: `to` a new name of the file `from` (not following a symlink).
pub fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
    if !long(from) && !long(to) {
        return std::fs::hard_link(from, to);
    }
    let (a, an) = parent(from)?;
    let (b, bn) = parent(to)?;
    Ok(rustix::fs::linkat(
        &a,
        an.as_os_str(),
        &b,
        bn.as_os_str(),
        AtFlags::empty(),
    )?)
}

/// `std::fs::remove_file`.
pub fn remove_file(p: &Path) -> io::Result<()> {
    if !long(p) {
        return std::fs::remove_file(p);
    }
    let (dir, name) = parent(p)?;
    Ok(rustix::fs::unlinkat(
        &dir,
        name.as_os_str(),
        AtFlags::empty(),
    )?)
}

/// `std::fs::remove_dir` (only an empty folder).
pub fn remove_dir(p: &Path) -> io::Result<()> {
    if !long(p) {
        return std::fs::remove_dir(p);
    }
    let (dir, name) = parent(p)?;
    Ok(rustix::fs::unlinkat(
        &dir,
        name.as_os_str(),
        AtFlags::REMOVEDIR,
    )?)
}

/// A folder created with `mode` (less the umask).
pub fn create_dir(p: &Path, mode: u32) -> io::Result<()> {
    if !long(p) {
        use std::os::unix::fs::DirBuilderExt;
        return std::fs::DirBuilder::new().mode(mode).create(p);
    }
    let (dir, name) = parent(p)?;
    Ok(rustix::fs::mkdirat(
        &dir,
        name.as_os_str(),
        Mode::from_raw_mode(mode),
    )?)
}

/// `std::fs::create_dir_all`.
pub fn create_dir_all(p: &Path) -> io::Result<()> {
    if !long(p) {
        return std::fs::create_dir_all(p);
    }
    match create_dir(p, 0o777) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_) if is_dir(p) => return Ok(()),
        Err(e) => return Err(e),
    }
    match p.parent() {
        Some(up) if up != p => create_dir_all(up)?,
        _ => return Err(io::Error::other(format!("cannot create {}", p.display()))),
    }
    match create_dir(p, 0o777) {
        Ok(()) => Ok(()),
        Err(_) if is_dir(p) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `std::fs::set_permissions` (follows a symlink, as `chmod` does).
pub fn set_permissions(p: &Path, perm: Permissions) -> io::Result<()> {
    if !long(p) {
        return std::fs::set_permissions(p, perm);
    }
    let (dir, name) = parent(p)?;
    Ok(rustix::fs::chmodat(
        &dir,
        name.as_os_str(),
        Mode::from_raw_mode(perm.mode()),
        AtFlags::empty(),
    )?)
}

/// `std::fs::read_link`.
pub fn read_link(p: &Path) -> io::Result<PathBuf> {
    if !long(p) {
        return std::fs::read_link(p);
    }
    let (dir, name) = parent(p)?;
    let target = rustix::fs::readlinkat(&dir, name.as_os_str(), Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.to_bytes())))
}

/// `std::fs::read_dir`. The entries of a folder whose path is long are read through the open
/// folder (`/proc/self/fd`): their `path()` is not theirs, so callers join
/// `file_name()` to the folder's path; their `metadata()` and `file_type()` are right (taken
/// relative to the folder read).
pub fn read_dir(p: &Path) -> io::Result<std::fs::ReadDir> {
    if !long(p) {
        return std::fs::read_dir(p);
    }
    let dir = open_folder(p, OFlags::PATH)?;
    use std::os::fd::AsRawFd;
    // Opens the folder again (for reading) from the open one: the path is short.
    std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
}

/// Each regular file under `dir`, at any depth (symlinks not followed), given to `each` with
/// its path and its folder entry (whose `metadata()` is right). A folder under `dir` that
/// cannot be read is passed over; `dir` itself must be readable.
pub fn walk_files(dir: &Path, each: &mut dyn FnMut(&Path, &std::fs::DirEntry)) -> io::Result<()> {
    walk(dir, false, &mut |path, entry| {
        each(path, entry);
        std::ops::ControlFlow::Continue(())
    })
}

/// As [`walk_files`], without going into a folder of another device (a mount under `dir`),
/// and stopping when `each` says so.
pub fn walk_files_within(
    dir: &Path,
    each: &mut dyn FnMut(&Path, &std::fs::DirEntry) -> std::ops::ControlFlow<()>,
) -> io::Result<()> {
    walk(dir, true, each)
}

fn walk(
    dir: &Path,
    same_device: bool,
    each: &mut dyn FnMut(&Path, &std::fs::DirEntry) -> std::ops::ControlFlow<()>,
) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let device = if same_device {
        Some(symlink_metadata(dir)?.dev())
    } else {
        None
    };
    let mut todo = vec![dir.to_path_buf()];
    let mut first = true;
    while let Some(at) = todo.pop() {
        let entries = match read_dir(&at) {
            Ok(rd) => rd,
            Err(e) if first => return Err(e),
            Err(_) => continue,
        };
        first = false;
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = at.join(entry.file_name());
            if ft.is_dir() {
                let here = device.is_none_or(|d| entry.metadata().is_ok_and(|m| m.dev() == d));
                if here {
                    todo.push(path);
                }
            } else if ft.is_file() && each(&path, &entry).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Sets the extended attribute `name` of the file at `p` (following a symlink).
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn setxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    use rustix::fs::XattrFlags;
    if !long(p) {
        return Ok(rustix::fs::setxattr(p, name, value, XattrFlags::empty())?);
    }
    let f = open(p)?;
    Ok(rustix::fs::fsetxattr(&f, name, value, XattrFlags::empty())?)
}

/// Reads the extended attribute `name` of the file at `p` into `buf`: its length.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn getxattr(p: &Path, name: &str, buf: &mut [u8]) -> io::Result<usize> {
    if !long(p) {
        return Ok(rustix::fs::getxattr(p, name, buf)?);
    }
    let f = open(p)?;
    Ok(rustix::fs::fgetxattr(&f, name, buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    /// A folder whose path is longer than PATH_MAX under `root`: 40 levels of 200 bytes.
    fn deep(root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for i in 0..40 {
            p.push(format!("{i:02}{}", "d".repeat(198)));
        }
        create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn a_path_longer_than_path_max_is_worked_on_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let d = deep(dir.path());
        assert!(d.as_os_str().len() > 8000);
        assert!(
            std::fs::metadata(&d).is_err(),
            "the kernel refuses it whole"
        );
        assert!(is_dir(&d));

        let f = d.join("file.txt");
        let mut w = create_new(&f, 0o600).unwrap();
        w.write_all(b"deep").unwrap();
        drop(w);
        assert!(create_new(&f, 0o600).is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists));
        let mut s = String::new();
        open(&f).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "deep");
        assert_eq!(symlink_metadata(&f).unwrap().len(), 4);
        set_permissions(&f, Permissions::from_mode(0o640)).unwrap();
        assert_eq!(metadata(&f).unwrap().permissions().mode() & 0o777, 0o640);

        let h = d.join("linked.txt");
        hard_link(&f, &h).unwrap();
        assert_eq!(symlink_metadata(&f).unwrap().nlink(), 2);
        remove_file(&h).unwrap();
        let g = d.join("moved.txt");
        rename(&f, &g).unwrap();
        assert!(!exists(&f));
        assert_eq!(rename_noreplace(&g, &g).map(|r| r.is_err()), Some(true));
        // Across: from a short path to a long one and back.
        let short = dir.path().join("short.txt");
        rename(&g, &short).unwrap();
        assert_eq!(std::fs::read(&short).unwrap(), b"deep");
        rename(&short, &g).unwrap();

        let names: Vec<OsString> = read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.contains(&OsString::from("moved.txt")));
        let e = read_dir(&d)
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.file_name() == "moved.txt")
            .unwrap();
        assert_eq!(e.metadata().unwrap().len(), 4);

        remove_file(&g).unwrap();
        assert!(!exists(&g));
        remove_dir(&d).unwrap();
        assert!(!exists(&d));
        open_dir(d.parent().unwrap()).unwrap().sync_all().unwrap();
    }

    #[test]
    fn a_long_symlink_is_read_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = deep(dir.path());
        let link = d.join("link");
        // Made relative to the open folder: symlinkat.
        let (at, name) = parent(&link).unwrap();
        rustix::fs::symlinkat("elsewhere", &at, name.as_os_str()).unwrap();
        assert!(symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(metadata(&link).is_err());
        assert_eq!(read_link(&link).unwrap(), PathBuf::from("elsewhere"));
    }

    #[test]
    fn a_walk_reaches_files_past_path_max() {
        let dir = tempfile::tempdir().unwrap();
        let d = deep(dir.path());
        create_new(&d.join("deep.txt"), 0o600).unwrap();
        create_new(&dir.path().join("top.txt"), 0o600).unwrap();
        let mut seen = Vec::new();
        walk_files(dir.path(), &mut |p, e| {
            assert_eq!(p.file_name(), Some(e.file_name().as_os_str()));
            seen.push(p.strip_prefix(dir.path()).unwrap().to_path_buf());
        })
        .unwrap();
        seen.sort();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1], Path::new("top.txt"));
        assert!(seen[0].ends_with("deep.txt"));
        assert!(walk_files(&dir.path().join("none"), &mut |_, _| {}).is_err());
    }

    #[test]
    fn a_short_path_is_the_std_call() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c");
        create_dir_all(&p).unwrap();
        assert!(is_dir(&p));
        assert!(parent(Path::new("/")).is_err());
        assert!(create_dir_all(&p).is_ok(), "already there is fine");
    }
}
