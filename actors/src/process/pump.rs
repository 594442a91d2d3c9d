//! A process's output into its log files, on a thread of its own.
//!
//! One thread per running process reads its pipe(s) with one 64 KiB buffer and writes each
//! chunk to the rotating file before reading more: memory is bounded whatever the child
//! writes, and a child that writes faster than the disk takes it blocks on its full pipe
//! (back-pressure, as under supervisord), it never grows the daemon. File I/O never touches
//! the scheduler. A full disk loses output (counted, reported once), never blocks the child.
//! Chunks also go to the followers of `logs -f` (only when there are any).
//!
//! The thread ends when every pipe reports end of file (the process and everything that held
//! its output have exited), or once told to stop: then it reads what is already in the pipes
//! without waiting, and closes them, so a grandchild that left the process group with our pipe
//! cannot keep the thread alive.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::Chunk;
use crate::logfile::{LogSpec, RotatingFile};

/// A log file shared by the pumps of one process's runs: a run's pump may still drain what a
/// grandchild writes while the next run's pump starts, and two writers rotating one file
/// would misplace lines. The registry keeps it across runs (see [`super::Entry::log`]).
pub type SharedLog = Arc<std::sync::Mutex<RotatingFile>>;

/// A shared log for `spec`.
pub fn shared(spec: LogSpec) -> SharedLog {
    Arc::new(std::sync::Mutex::new(RotatingFile::new(spec)))
}

/// Read size: one buffer per process.
const BUFFER: usize = 64 * 1024;
/// How often a waiting pump looks at its stop flag.
const TICK: Duration = Duration::from_millis(200);

/// What the pump has done, read by `status` without stopping it.
#[derive(Debug, Default)]
pub struct PumpStats {
    /// Bytes written to the log files.
    pub written: AtomicU64,
    /// Bytes lost because the log could not be written.
    pub dropped: AtomicU64,
    pub rotations: AtomicU64,
    /// Whether the last write failed.
    pub failing: AtomicBool,
}

/// One output stream: its pipe and its file.
struct Source {
    /// The read end of the program's pipe.
    fd: OwnedFd,
    /// Where what is read goes.
    log: SharedLog,
    /// Whether it is the separate stderr (what followers of `--stderr` get).
    stderr: bool,
    /// Whether a failure was reported (once, until a write works again).
    reported: bool,
    /// The start of a UTF-8 character that the last read cut (at most 3 bytes), held back
    /// from the followers until the rest is read: they get text, and a piece that ends
    /// inside a character would show as U+FFFD.
    pending: Vec<u8>,
}

/// Starts the pump of one process's output. `stop` ends it (after reading what is there).
pub fn start(
    label: String,
    stdout: (OwnedFd, SharedLog),
    stderr: Option<(OwnedFd, SharedLog)>,
    followers: broadcast::Sender<Chunk>,
    stats: Arc<PumpStats>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut sources = vec![Source {
        fd: stdout.0,
        log: stdout.1,
        stderr: false,
        reported: false,
        pending: Vec::new(),
    }];
    if let Some((fd, log)) = stderr {
        sources.push(Source {
            fd,
            log,
            stderr: true,
            reported: false,
            pending: Vec::new(),
        });
    }
    std::thread::Builder::new()
        .name("metasystem-pump".into())
        .spawn(move || run(&label, sources, &followers, &stats, &stop))?;
    Ok(())
}

fn run(
    label: &str,
    mut sources: Vec<Source>,
    followers: &broadcast::Sender<Chunk>,
    stats: &PumpStats,
    stop: &AtomicBool,
) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut buf = vec![0u8; BUFFER];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as _,
    };
    while !sources.is_empty() {
        if stop.load(Ordering::Acquire) {
            drain(label, &mut sources, &mut buf, followers, stats);
            return;
        }
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|s| PollFd::new(&s.fd, PollFlags::IN))
                .collect();
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => fds.iter().map(|f| !f.revents().is_empty()).collect(),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::warn!(process = label, error = %e, "cannot wait for the output; it is no longer logged");
                    return;
                }
            }
        };
        let mut index = 0;
        sources.retain_mut(|source| {
            let keep = !ready[index] || read_once(label, source, &mut buf, followers, stats);
            index += 1;
            keep
        });
    }
}

/// Reads one chunk of `source` and logs it; false at its end.
fn read_once(
    label: &str,
    source: &mut Source,
    buf: &mut [u8],
    followers: &broadcast::Sender<Chunk>,
    stats: &PumpStats,
) -> bool {
    match rustix::io::read(source.fd.as_fd(), &mut *buf) {
        Ok(0) => {
            flush_pending(source, followers);
            false
        }
        Ok(n) => {
            log_chunk(label, source, &buf[..n], followers, stats);
            true
        }
        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => true,
        Err(e) => {
            tracing::warn!(process = label, error = %e, "cannot read the output; it is no longer logged");
            flush_pending(source, followers);
            false
        }
    }
}

/// Reads what the pipes hold now, without waiting for more.
fn drain(
    label: &str,
    sources: &mut Vec<Source>,
    buf: &mut [u8],
    followers: &broadcast::Sender<Chunk>,
    stats: &PumpStats,
) {
    for source in sources.iter_mut() {
        if rustix::io::ioctl_fionbio(&source.fd, true).is_err() {
            continue;
        }
        // Bounded: a writer still going at full speed must not keep the drain going.
        for _ in 0..64 {
            match rustix::io::read(source.fd.as_fd(), &mut *buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => log_chunk(label, source, &buf[..n], followers, stats),
            }
        }
        flush_pending(source, followers);
    }
    sources.clear();
}

fn log_chunk(
    label: &str,
    source: &mut Source,
    data: &[u8],
    followers: &broadcast::Sender<Chunk>,
    stats: &PumpStats,
) {
    let mut log = source.log.lock().unwrap_or_else(|e| e.into_inner());
    let before = log.stats();
    match log.write(data) {
        Ok(()) => {
            stats
                .written
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            if source.reported {
                source.reported = false;
                tracing::info!(process = label, file = %log.spec().path.display(), "the output log is written again");
            }
        }
        Err(e) => {
            stats
                .dropped
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            if !source.reported {
                source.reported = true;
                tracing::warn!(process = label, file = %log.spec().path.display(), error = %e, "cannot write the output log; output is dropped (counted) until it can");
            }
        }
    }
    if let Some(notice) = log.take_notice() {
        tracing::warn!(process = label, "{notice}");
    }
    let after = log.stats();
    drop(log);
    stats
        .rotations
        .fetch_add(after.rotations - before.rotations, Ordering::Relaxed);
    stats.failing.store(after.failing, Ordering::Relaxed);
    if followers.receiver_count() == 0 {
        source.pending.clear();
        return;
    }
    let mut piece = std::mem::take(&mut source.pending);
    piece.extend_from_slice(data);
    let cut = whole_chars_end(&piece);
    source.pending = piece.split_off(cut);
    if !piece.is_empty() {
        let _ = followers.send(Chunk {
            stderr: source.stderr,
            data: Arc::from(piece),
        });
    }
}

/// The end of the stream: what was held back goes out as it is.
fn flush_pending(source: &mut Source, followers: &broadcast::Sender<Chunk>) {
    if source.pending.is_empty() {
        return;
    }
    let data = std::mem::take(&mut source.pending);
    if followers.receiver_count() > 0 {
        let _ = followers.send(Chunk {
            stderr: source.stderr,
            data: Arc::from(data),
        });
    }
}

/// Where a UTF-8 character cut at the end of `data` starts (`data.len()` when the end is not
/// inside one). Bytes that are not UTF-8 at all are not held back: they are shown as U+FFFD
/// anyway.
pub fn whole_chars_end(data: &[u8]) -> usize {
    let n = data.len();
    for back in 1..=n.min(3) {
        let b = data[n - back];
        if b & 0xC0 == 0x80 {
            // A continuation byte: its lead is further back.
            continue;
        }
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if len > back { n - back } else { n };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::whole_chars_end;

    #[test]
    fn cut_characters_are_found() {
        assert_eq!(whole_chars_end(b""), 0);
        assert_eq!(whole_chars_end(b"abc"), 3);
        let e = "é".as_bytes();
        assert_eq!(whole_chars_end(&[b'a', e[0]]), 1);
        assert_eq!(whole_chars_end(&[b'a', e[0], e[1]]), 3);
        let crab = "🦀".as_bytes();
        assert_eq!(whole_chars_end(&crab[..1]), 0);
        assert_eq!(whole_chars_end(&crab[..3]), 0);
        assert_eq!(whole_chars_end(crab), 4);
        // Not UTF-8: passed on at once.
        assert_eq!(whole_chars_end(&[0xff, 0x80, 0x80, 0x80]), 4);
        assert_eq!(whole_chars_end(&[b'x', 0x80]), 2);
    }
}
