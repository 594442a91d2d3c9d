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
    }];
    if let Some((fd, log)) = stderr {
        sources.push(Source {
            fd,
            log,
            stderr: true,
            reported: false,
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
        Ok(0) => false,
        Ok(n) => {
            log_chunk(label, source, &buf[..n], followers, stats);
            true
        }
        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => true,
        Err(e) => {
            tracing::warn!(process = label, error = %e, "cannot read the output; it is no longer logged");
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
    let after = log.stats();
    drop(log);
    stats
        .rotations
        .fetch_add(after.rotations - before.rotations, Ordering::Relaxed);
    stats.failing.store(after.failing, Ordering::Relaxed);
    if followers.receiver_count() > 0 {
        let _ = followers.send(Chunk {
            stderr: source.stderr,
            data: Arc::from(data),
        });
    }
}
