//! The progress bar of `metasystem sync [TARGET]` on a terminal. The command waits on its
//! `sync` request; meanwhile, once the run has taken more than [`SHOW_AFTER`], a thread asks
//! `sync status` every [`POLL_EVERY`] over a second connection and draws the running
//! targets' counters (files and bytes done of the totals) on stderr. The bar is cleared before
//! the summary prints. Never drawn when stderr is not a terminal, with `--json`, in CI
//! (`CI` set) or on a dumb terminal: scripts and logs get the summary alone.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use metasystem_actors::probes::fmt_bytes;
use metasystem_actors::sync::TargetStatus;

use super::Global;
use crate::control::client::Connection;
use crate::control::request::Command;

/// A run shorter than this shows no bar.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the counters are asked for.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long one `sync status` may take before the bar gives up (the run goes on).
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The bar's thread; dropping it stops the thread and clears the bar.
pub struct Watch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a bar may be drawn: a terminal on stderr, a person reading it.
fn wanted(global: &Global) -> bool {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !global.json && !ci && !dumb && std::io::stderr().is_terminal()
}

/// Starts watching a forced, real (not dry) `sync` on a terminal; `None` otherwise.
pub fn watch(command: &Command, global: &Global, socket: &Path) -> Option<Watch> {
    let Command::Sync(crate::control::request::Sync {
        target,
        dry_run: false,
        ..
    }) = command
    else {
        return None;
    };
    if !wanted(global) {
        return None;
    }
    let (stop, stopped) = mpsc::channel();
    let socket = socket.to_path_buf();
    let target = target.clone();
    let thread = std::thread::Builder::new()
        .name("sync-progress".into())
        .spawn(move || follow(&socket, target.as_deref(), &stopped))
        .ok()?;
    Some(Watch {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Waits [`SHOW_AFTER`], then draws until told to stop (or the daemon stops answering).
fn follow(socket: &Path, target: Option<&str>, stopped: &mpsc::Receiver<()>) {
    if !matches!(
        stopped.recv_timeout(SHOW_AFTER),
        Err(RecvTimeoutError::Timeout)
    ) {
        return;
    }
    let Ok(mut conn) = Connection::open(socket, Some(ASK_TIMEOUT)) else {
        return;
    };
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(120));
    // Whether the bar (true) or the spinner alone is drawn; `None` before anything is.
    let mut shape = None;
    // Whether the run was seen running: once it is not, its answer is on the way, and the
    // last counts stay rather than "waiting for the run to start".
    let mut seen = false;
    while let Ok(Ok(status)) = conn.call(crate::control::request::SyncStatus {}) {
        let view = View::of(&status.targets, target);
        if view.is_some() || !seen {
            seen |= view.is_some();
            show(&bar, view.as_ref(), target, &mut shape);
        }
        match stopped.recv_timeout(POLL_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    bar.finish_and_clear();
}

/// Draws `view`, switching between the spinner alone and the bar as totals appear.
fn show(bar: &ProgressBar, view: Option<&View>, target: Option<&str>, shape: &mut Option<bool>) {
    let (length, position) = view.map_or((0, 0), View::counts);
    let with_bar = length > 0;
    if *shape != Some(with_bar) {
        bar.set_style(style(with_bar));
        *shape = Some(with_bar);
    }
    bar.set_length(length);
    bar.set_position(position);
    bar.set_message(View::message(view, target));
}

fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "{spinner} {msg} [{bar:24}] {percent:>3}%"
    } else {
        "{spinner} {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

/// What the bar shows: the running targets (only `target` when one was named), their
/// counters added up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub names: Vec<String>,
    /// Files (copies, deletions, records) done and planned.
    pub files: (u64, u64),
    /// Bytes copied and to copy.
    pub bytes: (u64, u64),
    /// Who holds the lock a run waits for.
    pub waiting: Option<String>,
}

impl View {
    /// The running targets' counters; `None` when none of them runs (the run has not started
    /// yet, or is over).
    pub fn of(targets: &[TargetStatus], only: Option<&str>) -> Option<View> {
        let mut view = View {
            names: Vec::new(),
            files: (0, 0),
            bytes: (0, 0),
            waiting: None,
        };
        for t in targets {
            if only.is_some_and(|n| n != t.name) || !t.running {
                continue;
            }
            view.names.push(t.name.clone());
            if let Some(w) = &t.waiting {
                view.waiting = Some(format!("{}: waiting for the lock: {w}", t.name));
            }
            if let Some((fd, ft, bd, bt)) = t.progress {
                view.files.0 += fd;
                view.files.1 += ft;
                view.bytes.0 += bd;
                view.bytes.1 += bt;
            }
        }
        (!view.names.is_empty()).then_some(view)
    }

    /// The bar's length and position: bytes when there are bytes to copy, else files; (0, 0)
    /// while the run scans and compares (nothing planned yet).
    pub fn counts(&self) -> (u64, u64) {
        let (done, total) = if self.bytes.1 > 0 {
            self.bytes
        } else {
            self.files
        };
        (total, done.min(total))
    }

    /// The words beside the bar.
    pub fn message(view: Option<&View>, target: Option<&str>) -> String {
        let Some(v) = view else {
            return format!("{}: waiting for the run to start", target.unwrap_or("sync"));
        };
        if let Some(w) = &v.waiting {
            return w.clone();
        }
        let names = v.names.join(", ");
        if v.files.1 == 0 {
            return format!("{names}: scanning and comparing");
        }
        let mut text = format!("{names}: {}/{} files", v.files.0, v.files.1);
        if v.bytes.1 > 0 {
            text.push_str(&format!(
                ", {} of {}",
                fmt_bytes(v.bytes.0),
                fmt_bytes(v.bytes.1)
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, running: bool, progress: Option<(u64, u64, u64, u64)>) -> TargetStatus {
        TargetStatus {
            name: name.into(),
            path: format!("root/{name}"),
            primary: "/p".into(),
            target: "/t".into(),
            online: true,
            direction: "bidirectional".into(),
            strategy: "newest".into(),
            every_s: 600,
            running,
            progress,
            waiting: None,
            hashed_every_run: Vec::new(),
            last: None,
            last_success_ms: None,
            tracked: 0,
            breaker: None,
            watch: None,
        }
    }

    #[test]
    fn the_view_adds_up_the_running_targets_or_shows_the_one_named() {
        let targets = [
            status("a", true, Some((10, 100, 1_000_000, 4_000_000))),
            status("b", true, Some((5, 50, 0, 0))),
            status("c", false, None),
        ];
        let all = View::of(&targets, None).unwrap();
        assert_eq!(all.names, ["a", "b"]);
        assert_eq!(all.files, (15, 150));
        assert_eq!(all.counts(), (4_000_000, 1_000_000), "bytes when there are");
        assert_eq!(
            View::message(Some(&all), None),
            "a, b: 15/150 files, 1 MB of 4 MB"
        );
        let b = View::of(&targets, Some("b")).unwrap();
        assert_eq!(b.counts(), (50, 5), "files when no bytes are copied");
        assert_eq!(View::message(Some(&b), Some("b")), "b: 5/50 files");
        // Not running (not started yet, or done): nothing to show but that.
        assert_eq!(View::of(&targets, Some("c")), None);
        assert_eq!(View::of(&targets, Some("nope")), None);
        assert_eq!(
            View::message(None, Some("c")),
            "c: waiting for the run to start"
        );
        assert_eq!(
            View::message(None, None),
            "sync: waiting for the run to start"
        );
    }

    #[test]
    fn a_run_that_plans_nothing_yet_is_scanning() {
        let v = View::of(&[status("a", true, Some((0, 0, 0, 0)))], None).unwrap();
        assert_eq!(v.counts(), (0, 0));
        assert_eq!(View::message(Some(&v), None), "a: scanning and comparing");
        // Counters read one at a time may be ahead of each other: never past the end.
        let v = View::of(&[status("a", true, Some((9, 8, 0, 0)))], None).unwrap();
        assert_eq!(v.counts(), (8, 8));
    }

    #[test]
    fn a_run_waiting_for_the_lock_says_whose_it_is() {
        let mut t = status("a", true, Some((0, 0, 0, 0)));
        t.waiting = Some("held by h2-0123456789ab, pid 7".into());
        let v = View::of(&[t], None).unwrap();
        assert_eq!(
            View::message(Some(&v), None),
            "a: waiting for the lock: held by h2-0123456789ab, pid 7"
        );
    }

    #[test]
    fn no_bar_for_json() {
        let global = Global {
            config: None,
            socket: None,
            json: true,
            timeout: Duration::from_secs(1),
            log_json: false,
        };
        assert!(!wanted(&global));
    }
}
