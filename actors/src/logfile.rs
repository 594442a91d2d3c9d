//! A log file that rotates itself: by size (the current file would grow past `max_size`) or
//! daily (the UTC date changed), keeping `keep` old files as `NAME.1` (the newest) to
//! `NAME.KEEP`, as logrotate and supervisord name them.
//!
//! Shared by the managed processes' output (one per process, written by its pump thread) and
//! the daemon's own `log_file` (written by the log thread). It is a plain blocking writer:
//! callers own a thread for it, never the scheduler. A write that fails (a full disk, a
//! removed directory) never fails the caller: the bytes are counted as dropped, the file is
//! closed, and it is opened again on a later write (at most once a second), so a disk that
//! frees up is written to again without anyone's help.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// When a log file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Before the current file would grow past this many bytes: a write is split at its last
    /// line that fits (a line longer than a whole file is cut).
    Size(u64),
    /// At the first write of a new UTC day.
    Daily,
}

/// How a log file is written and rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    pub path: PathBuf,
    pub rotation: Rotation,
    /// Rotated files kept besides the current one (0: the current file is truncated instead).
    pub keep: u32,
}

/// The most rotated files a log may keep.
pub const MAX_KEEP: u32 = 1000;

/// What a writer has done, for `status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogStats {
    /// Bytes written to the files.
    pub written: u64,
    /// Bytes that could not be written (the disk refused them) and are lost.
    pub dropped: u64,
    pub rotations: u64,
    /// Whether the last write failed.
    pub failing: bool,
}

/// How long after a failure the file is not tried again (each try is a few syscalls; a
/// process flooding a full disk must not turn into a syscall storm).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the path is checked to still name the open file: one removed or moved away by
/// someone (by hand, by an outside logrotate) is replaced by a new one at the path, rather
/// than written to unseen until the next rotation.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A log file and its rotation. Not thread-safe on purpose: one writer thread owns it.
pub struct RotatingFile {
    spec: LogSpec,
    /// The open current file; `None` before the first write and after a failure.
    file: Option<File>,
    /// The current file's size, as far as this writer knows (it is the only writer).
    size: u64,
    /// The UTC day (days since 1970) the current file was opened in, for daily rotation.
    day: u64,
    /// When the last failure happened: no new try before [`RETRY_AFTER`].
    failed_at: Option<Instant>,
    /// The last error, for a one-line report when the state changes.
    last_error: Option<String>,
    /// The open file's device and inode, and when the path was last seen to still name it.
    identity: Option<(u64, u64)>,
    checked_at: Option<Instant>,
    stats: LogStats,
    /// What stands at a rotated name and is not a regular file, as last reported: reported
    /// again only when it changes, forgotten once a rotation finds the way clear.
    reported_obstacle: Option<PathBuf>,
    /// A report not yet taken by [`RotatingFile::take_notice`].
    notice: Option<String>,
}

fn today() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// Opens `path` with `options` if it is a regular file (or is made as one). Anything else in
/// its place (a FIFO, a device, a directory) is refused with an error naming it: opening a
/// FIFO waits for its other end, which would block the writer (and the program on its full
/// pipe) or the reader for good. Opened without waiting, then checked, so a FIFO put there in
/// between is refused too.
fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        )
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(not_regular()),
        _ => {}
    }
    let file = options.custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    // O_NONBLOCK means nothing to a regular file's reads and writes; cleared all the same
    // (and only it: O_APPEND stays).
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}

/// `NAME.n`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    /// A writer for `spec`; nothing is opened until the first write.
    pub fn new(spec: LogSpec) -> Self {
        RotatingFile {
            spec,
            file: None,
            size: 0,
            day: today(),
            failed_at: None,
            last_error: None,
            identity: None,
            checked_at: None,
            stats: LogStats::default(),
            reported_obstacle: None,
            notice: None,
        }
    }

    pub fn spec(&self) -> &LogSpec {
        &self.spec
    }

    pub fn stats(&self) -> LogStats {
        self.stats
    }

    /// The last error, if the last write failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Writes `data` whole (rotating first if it must); on failure the bytes are counted as
    /// dropped and the error is returned, for the caller to report once.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // Within a second of a failure the file is not tried: the bytes are lost, and the
        // time of the failure stays (a skipped write is no new failure, or a program writing
        // more than once a second would never be logged again).
        if let Some(at) = self.failed_at {
            if at.elapsed() < RETRY_AFTER {
                self.stats.dropped += data.len() as u64;
                return Err(io::Error::other(
                    self.last_error
                        .clone()
                        .unwrap_or_else(|| "the log file failed".into()),
                ));
            }
            self.failed_at = None;
        }
        match self.try_write(data) {
            Ok(()) => {
                self.stats.written += data.len() as u64;
                self.stats.failing = false;
                self.last_error = None;
                Ok(())
            }
            Err(e) => {
                self.stats.dropped += data.len() as u64;
                self.stats.failing = true;
                self.last_error = Some(e.to_string());
                self.file = None;
                self.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    fn try_write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_some() && self.checked_at.is_none_or(|at| at.elapsed() >= CHECK_EVERY) {
            self.checked_at = Some(Instant::now());
            if !self.path_names_open_file() {
                self.file = None;
            }
        }
        if self.file.is_none() {
            self.open()?;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let (now, later) = match self.spec.rotation {
                Rotation::Size(max) => {
                    let room = max.saturating_sub(self.size) as usize;
                    if rest.len() <= room {
                        (rest, &rest[rest.len()..])
                    } else {
                        // What fits, up to its last whole line (a line longer than a whole
                        // file is cut at the size).
                        let fits = &rest[..room];
                        let cut = match fits.iter().rposition(|b| *b == b'\n') {
                            Some(i) => i + 1,
                            None if self.size == 0 => room.max(1),
                            None => 0,
                        };
                        rest.split_at(cut)
                    }
                }
                Rotation::Daily => {
                    if today() != self.day && self.size > 0 {
                        self.rotate()?;
                    }
                    (rest, &rest[rest.len()..])
                }
            };
            if !now.is_empty() {
                let Some(file) = self.file.as_mut() else {
                    return Err(io::Error::other("the log file is not open"));
                };
                file.write_all(now)?;
                self.size += now.len() as u64;
            }
            if !later.is_empty() {
                self.rotate()?;
            }
            rest = later;
        }
        Ok(())
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(dir) = self.spec.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let file = open_regular(
            &self.spec.path,
            OpenOptions::new().create(true).append(true),
        )?;
        let meta = file.metadata()?;
        self.size = meta.len();
        {
            use std::os::unix::fs::MetadataExt;
            self.identity = Some((meta.dev(), meta.ino()));
            self.checked_at = Some(Instant::now());
        }
        // A file left by an earlier run belongs to the day it was last written.
        self.day = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or_else(today, |d| d.as_secs() / 86_400);
        self.file = Some(file);
        Ok(())
    }

    /// Whether the configured path still names the file open here (false when it was removed,
    /// moved away or replaced).
    fn path_names_open_file(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.spec.path) {
            Ok(m) => self.identity == Some((m.dev(), m.ino())),
            Err(_) => false,
        }
    }

    /// NAME.(keep-1) → NAME.keep, ..., NAME → NAME.1, then a new NAME.
    ///
    /// Only regular files are moved, replaced or removed. Something else at a rotated name
    /// (a directory, a FIFO, a symlink: someone's, not ours) is left alone and ends the chain
    /// there: with it at NAME.k, NAME.1 to NAME.(k-1) are kept, and with it at NAME.1 the
    /// current file is truncated at the size limit instead of rotated. Either way the log
    /// keeps being written and the disk stays bounded, where a rename onto it would fail at
    /// every rotation and drop all output for good. That is logrotate's and supervisord's
    /// contract from the operator's side (the log is written, old files are capped), without
    /// logrotate's "skip the rotation and let the file grow"; what is in the way is reported
    /// once (see [`RotatingFile::take_notice`]), and removing it restores the full rotation.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let path = self.spec.path.clone();
        let keep = self.spec.keep;
        let in_the_way = (1..=keep).find_map(|n| {
            let p = rotated_path(&path, n);
            std::fs::symlink_metadata(&p)
                .is_ok_and(|m| !m.file_type().is_file())
                .then_some((n, p))
        });
        let usable = match &in_the_way {
            Some((n, p)) => {
                let usable = n - 1;
                if self.reported_obstacle.as_ref() != Some(p) {
                    self.reported_obstacle = Some(p.clone());
                    self.notice = Some(if usable == 0 {
                        format!(
                            "{} is not a regular file, so {} is truncated at its size limit instead of rotated; remove it to rotate again",
                            p.display(),
                            path.display()
                        )
                    } else {
                        format!(
                            "{} is not a regular file, so {} keeps {usable} rotated file(s) instead of {keep}; remove it to keep {keep} again",
                            p.display(),
                            path.display()
                        )
                    });
                }
                usable
            }
            None => {
                self.reported_obstacle = None;
                keep
            }
        };
        if usable == 0 || self.shift(usable).is_err() {
            // Nowhere to move the current file (or a move failed half-way): start it again.
            open_regular(
                &path,
                OpenOptions::new().write(true).create(true).truncate(true),
            )?;
        }
        if in_the_way.is_none() {
            // One past `keep`, left by a run with a larger `keep`: gone, as configured.
            let extra = rotated_path(&path, keep + 1);
            if std::fs::symlink_metadata(&extra).is_ok_and(|m| m.file_type().is_file()) {
                let _ = std::fs::remove_file(extra);
            }
        }
        self.stats.rotations += 1;
        self.open()?;
        self.day = today();
        Ok(())
    }

    /// NAME.(usable-1) → NAME.usable, ..., NAME → NAME.1: every name up to `usable` holds a
    /// regular file or nothing (the oldest is replaced).
    fn shift(&self, usable: u32) -> io::Result<()> {
        let path = &self.spec.path;
        for n in (1..usable).rev() {
            match std::fs::rename(rotated_path(path, n), rotated_path(path, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        // A current file removed by someone leaves nothing to move: a new one is made.
        match std::fs::rename(path, rotated_path(path, 1)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A one-line report of something the operator should know that did not stop the writes
    /// (what is in the way of the rotation), once per cause; `None` when there is nothing new.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    /// Writes out nothing (writes are unbuffered) but syncs nothing either: a log is not worth
    /// an fsync per line. Present so callers can treat it as a `Write`.
    pub fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        RotatingFile::write(self, buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        RotatingFile::flush(self)
    }
}

/// The last `lines` lines of the log at `path` (its rotated files too, newest last, when the
/// current one holds fewer), reading at most `max_bytes` from the end. Blocking: run it on the
/// blocking pool. A missing file is no lines.
pub fn tail(path: &Path, lines: usize, max_bytes: usize) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut wanted = lines;
    let mut budget = max_bytes;
    // The current file, then NAME.1, NAME.2, ... while lines are missing. One missing file
    // is skipped: a rotation renames them one after the other (NAME is missing until the new
    // one is made, NAME.1 while NAME moves there), and someone may have removed NAME; two
    // missing in a row end the files.
    let mut n = 0;
    let mut missing = 0;
    while wanted > 0 && budget > 0 && n <= MAX_KEEP {
        let file = if n == 0 {
            path.to_path_buf()
        } else {
            rotated_path(path, n)
        };
        n += 1;
        let chunk = match tail_one(&file, wanted, budget) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing += 1;
                if missing == 2 {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        missing = 0;
        budget = budget.saturating_sub(chunk.len());
        wanted = wanted.saturating_sub(count_lines(&chunk));
        let mut joined = chunk;
        joined.extend_from_slice(&out);
        out = joined;
    }
    Ok(out)
}

/// Lines in `data`, counting a last line without its newline.
fn count_lines(data: &[u8]) -> usize {
    let newlines = data.iter().filter(|b| **b == b'\n').count();
    newlines + usize::from(data.last().is_some_and(|b| *b != b'\n'))
}

/// The last `lines` lines of one file, at most `max_bytes` of them.
fn tail_one(path: &Path, lines: usize, max_bytes: usize) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = open_regular(path, OpenOptions::new().read(true))?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes as u64);
    file.seek(SeekFrom::Start(start))?;
    let mut data = Vec::with_capacity((len - start) as usize);
    file.take(max_bytes as u64).read_to_end(&mut data)?;
    // Count newlines from the end; a final newline ends the last line, it does not start one.
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let mut seen = 0;
    let mut cut = None;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                cut = Some(i + 1);
                break;
            }
        }
    }
    Ok(match cut {
        Some(i) => data.split_off(i),
        // Fewer lines than asked (or a cut inside a line at the budget's edge): all of it,
        // less a partial first line when the budget cut the file.
        None if start > 0 => match data.iter().position(|b| *b == b'\n') {
            Some(i) => data.split_off(i + 1),
            // One line longer than the budget: its end rather than nothing.
            None => data,
        },
        None => data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, rotation: Rotation, keep: u32) -> LogSpec {
        LogSpec {
            path: dir.join("sub/app.log"),
            rotation,
            keep,
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(10), 2));
        for i in 0..5 {
            log.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        let path = dir.path().join("sub/app.log");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 4\n");
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 1)).unwrap(),
            "line 3\n"
        );
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 2)).unwrap(),
            "line 2\n"
        );
        assert!(!rotated_path(&path, 3).exists());
        assert_eq!(log.stats().rotations, 4);
        assert_eq!(log.stats().written, 35);
    }

    #[test]
    fn a_large_write_is_split_at_lines_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(10), 5));
        log.write(b"aaaa\nbbbb\ncccc\nddddddddddddddd\ne\n")
            .unwrap();
        let path = dir.path().join("sub/app.log");
        let read = |n: u32| {
            let p = if n == 0 {
                path.clone()
            } else {
                rotated_path(&path, n)
            };
            std::fs::read_to_string(p).unwrap_or_default()
        };
        assert_eq!(read(3), "aaaa\nbbbb\n");
        assert_eq!(read(2), "cccc\n");
        assert_eq!(read(1), "dddddddddd");
        assert_eq!(read(0), "ddddd\ne\n");
        for n in 0..=3 {
            assert!(read(n).len() <= 10);
        }
    }

    #[test]
    fn daily_rotation_starts_a_new_file_on_a_new_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/app.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "yesterday\n").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
            .unwrap();
        drop(file);
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Daily, 3));
        log.write(b"today\n").unwrap();
        log.write(b"still today\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "today\nstill today\n"
        );
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 1)).unwrap(),
            "yesterday\n"
        );
        assert_eq!(log.stats().rotations, 1);
    }

    #[test]
    fn keep_zero_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(8), 0));
        log.write(b"aaaaaa\n").unwrap();
        log.write(b"bbbbbb\n").unwrap();
        let path = dir.path().join("sub/app.log");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bbbbbb\n");
        assert!(!rotated_path(&path, 1).exists());
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/app.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "12345678\n").unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(12), 1));
        log.write(b"abcd\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abcd\n");
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 1)).unwrap(),
            "12345678\n"
        );
    }

    #[test]
    fn a_failing_directory_drops_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        // The log's directory is a file: every open fails.
        std::fs::write(dir.path().join("sub"), "not a dir").unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(100), 1));
        assert!(log.write(b"lost\n").is_err());
        assert!(
            log.write(b"lost too\n").is_err(),
            "no retry within a second"
        );
        assert_eq!(log.stats().dropped, 14);
        assert!(log.stats().failing);
        std::fs::remove_file(dir.path().join("sub")).unwrap();
        std::thread::sleep(RETRY_AFTER + Duration::from_millis(50));
        log.write(b"back\n").unwrap();
        assert!(!log.stats().failing);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/app.log")).unwrap(),
            "back\n"
        );
    }

    #[test]
    fn tail_reads_the_last_lines_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(20), 3));
        for i in 0..10 {
            log.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        let path = dir.path().join("sub/app.log");
        let got = String::from_utf8(tail(&path, 4, 1 << 20).unwrap()).unwrap();
        assert_eq!(got, "line 6\nline 7\nline 8\nline 9\n");
        let got = String::from_utf8(tail(&path, 1, 1 << 20).unwrap()).unwrap();
        assert_eq!(got, "line 9\n");
        // The byte budget bounds the answer and never starts mid-line.
        let got = String::from_utf8(tail(&path, 100, 10).unwrap()).unwrap();
        assert_eq!(got, "line 9\n");
        assert!(tail(&dir.path().join("none.log"), 5, 100)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn tail_of_one_line_longer_than_the_budget_is_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a".repeat(100)).unwrap();
        assert_eq!(tail(&path, 1, 10).unwrap(), b"aaaaaaaaaa");
    }

    #[test]
    fn tail_counts_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc").unwrap();
        assert_eq!(tail(&path, 2, 100).unwrap(), b"b\nc");
    }

    /// A directory at `NAME.1` (or any rotated name) made every rotation fail, and with it every
    /// write for good. The rotation now moves only regular files: with something else at
    /// NAME.1 the current file is truncated at the size limit and written on; at NAME.k the
    /// names below it still rotate. Either way it is reported once, naming what is in the way,
    /// and nothing of it is touched.
    #[test]
    fn something_at_a_rotated_name_bounds_the_log_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/app.log");
        std::fs::create_dir_all(rotated_path(&path, 1)).unwrap();
        std::fs::write(rotated_path(&path, 1).join("mine"), "keep me").unwrap();
        let mut log = RotatingFile::new(spec(dir.path(), Rotation::Size(10), 3));
        for i in 0..5 {
            log.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 4\n");
        assert_eq!(log.stats().dropped, 0);
        assert_eq!(log.stats().written, 35);
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 1).join("mine")).unwrap(),
            "keep me"
        );
        assert!(!rotated_path(&path, 2).exists());
        let notice = log.take_notice().expect("a notice");
        assert!(
            notice.contains(&rotated_path(&path, 1).display().to_string())
                && notice.contains("truncated at its size limit"),
            "{notice}"
        );
        log.write(b"line 5\n").unwrap();
        assert_eq!(log.take_notice(), None, "reported once");

        // Out of the way: the rotation is whole again. In the way further down: the names
        // above it rotate.
        std::fs::remove_dir_all(rotated_path(&path, 1)).unwrap();
        std::fs::create_dir_all(rotated_path(&path, 3)).unwrap();
        for i in 6..10 {
            log.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 9\n");
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 1)).unwrap(),
            "line 8\n"
        );
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path, 2)).unwrap(),
            "line 7\n"
        );
        assert!(rotated_path(&path, 3).is_dir());
        assert!(log
            .take_notice()
            .is_some_and(|n| n.contains("keeps 2 rotated file(s) instead of 3")));
        assert_eq!(log.stats().dropped, 0);
    }
}
