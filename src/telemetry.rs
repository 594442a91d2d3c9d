//! Logging: `tracing` to stderr (journald keeps it) or, with `[daemon] log_file`, to a file
//! that rotates by size or daily (for launchd and plain installs), and then to stderr as well
//! only with `log_stderr = true` (otherwise stderr gets only the lines the file refuses, after
//! a one-line notice); human-readable or JSON lines; written by its own thread: a stderr that
//! nobody reads (a full pipe) or a full disk must never stop the daemon, so lines that do not
//! fit in the writer's buffer are dropped and counted (`status`: `log_lines_dropped`). Lines
//! the file refuses (a directory or a file in its way, a full disk) are on stderr instead:
//! counted apart, with the file and why (`status`: `log_file`), and told on stderr once, when
//! the file starts refusing, and again when it takes lines again. Panics go through tracing as
//! one line (ractor catches them and turns them into supervision events).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::control::protocol::LogFileStatus;

use metasystem_actors::logfile::{LogSpec, RotatingFile};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Log lines buffered for the writer thread; past this, new lines are dropped (and counted).
const BUFFERED_LINES: usize = 4096;

/// The writer's count of dropped lines, once logging is set up.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// With a log file, the count of lines stderr's own writer dropped.
static STDERR_DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines the log file refused (a full disk, a directory in its way): on stderr instead.
static FILE_REFUSED: AtomicU64 = AtomicU64::new(0);

/// The log file, once logging is set up with one, and why it refuses lines now.
static FILE: Mutex<Option<(String, Option<String>)>> = Mutex::new(None);

/// Lines lost because the log writer or stderr did not keep up (not the ones the log file
/// refused, which went to stderr: see [`file_status`]).
pub fn lines_dropped() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
        + STDERR_DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// The log file's state, when there is one.
pub fn file_status() -> Option<LogFileStatus> {
    let file = FILE.lock().unwrap_or_else(|e| e.into_inner());
    file.as_ref().map(|(path, error)| LogFileStatus {
        path: path.clone(),
        lines_refused: FILE_REFUSED.load(Ordering::Relaxed),
        error: error.clone(),
    })
}

fn set_file_error(error: Option<String>) {
    let mut file = FILE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, e)) = file.as_mut() {
        *e = error;
    }
}

/// Keep it until the end: dropping it writes out what is buffered (for at most a second per
/// writer, so a stuck stderr cannot hold the exit).
pub struct LogGuard {
    /// The log thread's (declared first: dropped first, it hands its last lines to stderr's).
    _lines: WorkerGuard,
    /// stderr's own writer, when there is a log file.
    _stderr: Option<WorkerGuard>,
}

/// What the log thread writes to: stderr, and the log file when there is one. A failure of
/// one never stops the other, and never reaches the caller (the log thread would only count
/// it in a way nobody reads).
struct Tee {
    /// journald and terminals read it. With a log file, through a lossy writer of its own,
    /// so a stderr nobody reads never stops the file from being written.
    stderr: Box<dyn Write + Send>,
    /// `[daemon] log_file`, when set.
    file: Option<RotatingFile>,
    /// Every line to stderr too (always without a file; `log_stderr` with one). When false,
    /// stderr gets only the lines the file refuses.
    mirror: bool,
    /// The file refuses lines (told on stderr once, and again when it takes them again;
    /// with `mirror` too, or a file that never takes a line would go unnoticed).
    refusing: bool,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.mirror {
            let _ = self.stderr.write_all(buf);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(buf.len());
        };
        let written = file.write(buf);
        if let Some(notice) = file.take_notice() {
            // Written on: only said, once.
            let _ = writeln!(self.stderr, "metasystem: {notice}");
        }
        match written {
            Ok(()) => {
                if self.refusing {
                    self.refusing = false;
                    set_file_error(None);
                    let _ = writeln!(
                        self.stderr,
                        "metasystem: the log file {} takes lines again",
                        file.spec().path.display()
                    );
                }
            }
            Err(e) => {
                // Not lost: what cannot go to the file goes to stderr (is there already
                // with `mirror`). Counted as the file's, not as stderr's.
                FILE_REFUSED.fetch_add(1, Ordering::Relaxed);
                if !self.refusing {
                    self.refusing = true;
                    set_file_error(Some(e.to_string()));
                    let _ = writeln!(
                        self.stderr,
                        "metasystem: the log file {} refuses lines ({e}); they go to stderr until it takes them again",
                        file.spec().path.display()
                    );
                }
                if !self.mirror {
                    let _ = self.stderr.write_all(buf);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.stderr.flush();
        Ok(())
    }
}

/// Installs the global subscriber (writing from its own thread) and the panic hook.
/// `RUST_LOG` overrides `default_filter`. With `file`, every line also goes to that file
/// (rotated as it says; never with colours), and to stderr only when `mirror` says so
/// (besides the lines the file refuses). Without `file`, stderr is the log whatever
/// `mirror` says.
pub fn init(
    default_filter: &str,
    json: bool,
    file: Option<LogSpec>,
    mirror: bool,
) -> Option<LogGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal() && file.is_none();
    let path = file.as_ref().map(|spec| spec.path.display().to_string());
    let (tee, stderr_guard, stderr_counter) = match file {
        Some(spec) => {
            let (stderr, guard) = NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(BUFFERED_LINES)
                .thread_name("metasystem-log-stderr")
                .finish(std::io::stderr());
            let counter = stderr.error_counter();
            let tee = Tee {
                stderr: Box::new(stderr),
                file: Some(RotatingFile::new(spec)),
                mirror,
                refusing: false,
            };
            (tee, Some(guard), Some(counter))
        }
        None => {
            let tee = Tee {
                stderr: Box::new(std::io::stderr()),
                file: None,
                mirror: true,
                refusing: false,
            };
            (tee, None, None)
        }
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("metasystem-log")
        .finish(tee);
    let counter = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let installed = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(ansi).try_init()
    };
    install_panic_hook();
    // Already installed (tests start the daemon in-process more than once): keep the first.
    match installed {
        Ok(()) => {
            let _ = DROPPED.set(counter);
            if let Some(c) = stderr_counter {
                let _ = STDERR_DROPPED.set(c);
            }
            if let Some(path) = path {
                *FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some((path, None));
            }
            Some(LogGuard {
                _lines: guard,
                _stderr: stderr_guard,
            })
        }
        Err(_) => None,
    }
}

/// Panics are logged as one `error` line with their location; a backtrace only when
/// RUST_BACKTRACE asks for one. A panicking actor is then restarted by its supervisor.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            let backtrace = std::backtrace::Backtrace::force_capture();
            tracing::error!(%location, thread, %backtrace, "panic: {message}");
        } else {
            tracing::error!(%location, thread, "panic: {message}");
        }
    }));
}
