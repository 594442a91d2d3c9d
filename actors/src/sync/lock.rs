//! The target's lock: one run (or operator's change, `conflicts resolve`) per target at a
//! time, across every host that syncs into it.
//!
//! The lock is a file in the target, `HOST PID STARTED_MS NONCE` (HOST is the holder's
//! identity, [`crate::host`]: hostname + machine id), created exclusively. While held, its
//! modification time is refreshed every [`LOCK_REFRESH`]. A lock found in place is judged:
//! - of this very process: held while this process holds it, else a leftover, taken over;
//! - of this host (the same identity, not just the same hostname) and a process that is gone
//!   (or a zombie nobody reaped yet): taken over at once (a daemon killed mid-run and
//!   restarted finds its own lock);
//! - anyone's not refreshed for [`LOCK_STALE`]: stale, taken over (its holder died, lost the
//!   drive, or is another host's that stopped); a live holder refreshes it four times in that
//!   time, so hosts' clocks must agree within about a minute (NTP);
//! - otherwise held: another host's, or a live process of this host.
//!
//! A file that cannot be read as a lock (half-written by a holder killed at once) is stale
//! once [`UNREADABLE_STALE`] old. Each lock's text is unique (a random nonce), so a late
//! release never removes a newer holder's lock, and the refresh never touches one: a holder
//! that finds its lock gone or replaced stops refreshing and says so ([`TargetLock::lost`]).
//!
//! Nothing here blocks the scheduler: taking runs inside the caller's blocking task, the
//! refresh touches the file on the blocking pool, and release removes it there too.

use std::collections::HashSet;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::scan::LOCK;
use crate::store::{format_ms, unix_ms};

/// How often a held lock's modification time is refreshed.
pub const LOCK_REFRESH: Duration = Duration::from_secs(30);
/// A lock not refreshed for this long is stale whoever holds it: four refreshes missed.
pub const LOCK_STALE: Duration = Duration::from_secs(120);
/// A lock file that cannot be parsed (half-written by a holder killed at once) is stale once
/// this old.
pub const UNREADABLE_STALE: Duration = Duration::from_secs(60);
/// [`TargetLock::take_waiting`]'s pauses between tries grow to this.
const WAIT_PAUSE_MAX: Duration = Duration::from_secs(2);
/// At most this much of a lock file is read (it is one short line).
const READ_MAX: u64 = 1024;

/// The lock files this process holds now: one of ours that is not in here is a leftover.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn held() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// A held lock. Give it back with [`TargetLock::release`]; dropping it releases it too
/// (on the blocking pool when a runtime is there).
pub struct TargetLock {
    path: PathBuf,
    /// The text written, compared before removing (the file is ours only while it holds it).
    text: String,
    /// The task refreshing the modification time; aborted on release.
    refresh: Option<tokio::task::JoinHandle<()>>,
    /// Set by the refresh when the file is no longer ours (removed, or taken over).
    lost: Arc<AtomicBool>,
    released: bool,
}

/// Why a [`TargetLock`] was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another run (of this host or another) holds it: a run is skipped. The message names
    /// the holder.
    Held(String),
    /// It cannot be created or written (a full or read-only target): a run fails.
    Failed(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(why) | LockError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<LockError> for String {
    fn from(e: LockError) -> String {
        e.to_string()
    }
}

/// One try at taking the lock.
enum Attempt {
    Taken(TargetLock),
    /// Held: the holder, described for people.
    Held(String),
    Failed(String),
}

impl TargetLock {
    /// Takes the lock of `target` for `host` (this host's identity), or says who holds it
    /// (blocking I/O: call it from a blocking task).
    pub fn take(target: &Path, host: &str) -> Result<TargetLock, LockError> {
        Self::take_with(target, host, LOCK_REFRESH)
    }

    /// As [`take`](Self::take), but a held lock is tried again, with pauses growing from
    /// 100 ms to 2 s, until it is taken or `wait` has passed (a forced run waiting for another
    /// host's run). `on_held` is told who holds it at every try that finds it held (holder,
    /// pid, since when, last refreshed). A lock that cannot be written fails at once. Blocks:
    /// call it from a blocking task.
    pub fn take_waiting(
        target: &Path,
        host: &str,
        wait: Duration,
        mut on_held: impl FnMut(&str),
    ) -> Result<TargetLock, LockError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match attempt(target, host, LOCK_REFRESH) {
                Attempt::Taken(lock) => return Ok(lock),
                Attempt::Failed(why) => return Err(LockError::Failed(why)),
                Attempt::Held(who) => {
                    let waited = started.elapsed();
                    if waited >= wait {
                        let waited = (!wait.is_zero()).then_some(waited);
                        return Err(held_error(target, &who, waited));
                    }
                    on_held(&who);
                    std::thread::sleep(pause.min(wait - waited));
                    pause = (pause * 2).min(WAIT_PAUSE_MAX);
                }
            }
        }
    }

    fn take_with(target: &Path, host: &str, every: Duration) -> Result<TargetLock, LockError> {
        match attempt(target, host, every) {
            Attempt::Taken(lock) => Ok(lock),
            Attempt::Held(who) => Err(held_error(target, &who, None)),
            Attempt::Failed(why) => Err(LockError::Failed(why)),
        }
    }

    /// Whether the lock was found gone or replaced by another holder's while held (the
    /// refresh checks at every tick): the run must stop before it commits anything more,
    /// as another may be running on the same target.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Gives the lock back: the file is removed (on the blocking pool) before this answers.
    pub async fn release(mut self) {
        let (path, text) = self.forget();
        let _ = tokio::task::spawn_blocking(move || remove_if(&path, &text)).await;
    }

    /// Stops the refresh and the bookkeeping; answers what to remove.
    fn forget(&mut self) -> (PathBuf, String) {
        self.released = true;
        if let Some(t) = self.refresh.take() {
            t.abort();
        }
        if let Some(set) = held().as_mut() {
            set.remove(&self.path);
        }
        (self.path.clone(), self.text.clone())
    }
}

fn held_error(target: &Path, who: &str, waited: Option<Duration>) -> LockError {
    let waited = match waited {
        Some(w) => format!(" (waited {})", human(w)),
        None => String::new(),
    };
    LockError::Held(format!(
        "{} is locked by another run: {who}{waited}",
        target.display()
    ))
}

fn attempt(target: &Path, host: &str, every: Duration) -> Attempt {
    let path = target.join(LOCK);
    let text = format!(
        "{host} {} {} {:016x}\n",
        std::process::id(),
        unix_ms(SystemTime::now()),
        fastrand::u64(..)
    );
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_all()) {
                    let _ = std::fs::remove_file(&path);
                    return Attempt::Failed(format!(
                        "cannot write the lock {}: {e}",
                        path.display()
                    ));
                }
                held().get_or_insert_with(HashSet::new).insert(path.clone());
                let lost = Arc::new(AtomicBool::new(false));
                let refresh = tokio::runtime::Handle::try_current().ok().map(|rt| {
                    rt.spawn(keep_fresh(
                        path.clone(),
                        text.clone(),
                        every,
                        Arc::clone(&lost),
                    ))
                });
                return Attempt::Taken(TargetLock {
                    path,
                    text,
                    refresh,
                    lost,
                    released: false,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Something that is no lock file (a folder, a FIFO that a read would wait on
                // for ever): a fault to fix, never a holder to wait for.
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if !m.is_file() => {
                        return Attempt::Failed(format!(
                            "the lock {} is not a regular file: remove it (no run of this tool \
                             makes one)",
                            path.display()
                        ))
                    }
                    _ => {}
                }
                let seen = read_written(&path);
                let age = age_of(&path);
                if !is_stale(&seen, host, &path, age) {
                    return Attempt::Held(describe(&seen, host, age));
                }
                remove_if(&path, &seen);
            }
            Err(e) => {
                return Attempt::Failed(format!("cannot create the lock {}: {e}", path.display()))
            }
        }
    }
    let seen = read_written(&path);
    Attempt::Held(format!(
        "another run took it meanwhile: {}",
        describe(&seen, host, age_of(&path))
    ))
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (path, text) = self.forget();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || remove_if(&path, &text));
            }
            Err(_) => remove_if(&path, &text),
        }
    }
}

/// The start of a lock file (it is one short line; a bigger file is not a lock). Only a
/// regular file is read (never opened otherwise: a FIFO would block).
fn read_lock(path: &Path) -> io::Result<String> {
    if !std::fs::symlink_metadata(path)?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(READ_MAX)
        .read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Removes the lock file if it still says `text` (not a newer holder's).
fn remove_if(path: &Path, text: &str) {
    if read_lock(path).is_ok_and(|now| now == text) {
        let _ = std::fs::remove_file(path);
    }
}

/// How far ahead of this host's clock a lock's time may be and still count (as now): a
/// holder whose clock is ahead. Further ahead it is no time at all.
const FUTURE_LIMIT: Duration = Duration::from_secs(3600);

/// How long ago the lock was written or refreshed: `None` if that cannot be read. A time in
/// the future (a holder whose clock is ahead) is now; one more than [`FUTURE_LIMIT`] ahead is
/// no time at all (`None`: stale), or a dead host whose clock was a year ahead would lock
/// every host out for a year.
fn age_of(path: &Path) -> Option<Duration> {
    let modified = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()?;
    match modified.elapsed() {
        Ok(age) => Some(age),
        Err(e) if e.duration() > FUTURE_LIMIT => None,
        Err(_) => Some(Duration::ZERO),
    }
}

async fn keep_fresh(path: PathBuf, text: String, every: Duration, lost: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (p, t) = (path.clone(), text.clone());
        let touched = tokio::task::spawn_blocking(move || -> io::Result<bool> {
            // Only our own lock: one found gone or replaced is never refreshed for its new
            // holder (nor made again: the holder that took it over runs now).
            if read_lock(&p)? != t {
                return Ok(false);
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(SystemTime::now()))?;
            Ok(true)
        })
        .await;
        match touched {
            Ok(Ok(true)) => {}
            Ok(Err(e)) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(lock = %path.display(), error = %e, "cannot refresh the sync lock");
            }
            Ok(_) => {
                lost.store(true, Ordering::Relaxed);
                tracing::error!(
                    lock = %path.display(),
                    "the sync lock held by this run was removed or taken over by another run"
                );
                return;
            }
            Err(_) => return,
        }
    }
}

/// A lock's holder, as its text says.
struct Holder<'a> {
    host: &'a str,
    pid: i32,
    started_ms: i64,
}

/// `HOST PID STARTED_MS NONCE\n`; `None` for anything else (a half-written file).
fn parse(text: &str) -> Option<Holder<'_>> {
    let line = text.strip_suffix('\n')?;
    let mut parts = line.split_whitespace();
    let (host, pid, started, _nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(Holder {
        host,
        pid: pid.parse().ok()?,
        started_ms: started.parse().ok()?,
    })
}

/// Whether the lock that says `text`, written or refreshed `age` ago, may be taken over by
/// `host` (see the module's doc).
fn is_stale(text: &str, host: &str, path: &Path, age: Option<Duration>) -> bool {
    let older = |limit: Duration| age.is_none_or(|age| age > limit);
    let Some(holder) = parse(text) else {
        return older(UNREADABLE_STALE);
    };
    if holder.host == host {
        if u32::try_from(holder.pid).is_ok_and(|pid| pid == std::process::id()) {
            // Ours: stale unless this process still holds it (a release not done yet).
            return !held().as_ref().is_some_and(|s| s.contains(path));
        }
        if !alive(holder.pid) {
            return true;
        }
    }
    older(LOCK_STALE)
}

/// The lock's text. A lock is created empty and written right after: one found empty and
/// young is read again for a little while, so a waiter says who holds it rather than "an
/// unreadable lock" (an empty lock that stays so is unreadable, and stale in time).
fn read_written(path: &Path) -> String {
    let mut seen = read_lock(path).unwrap_or_default();
    for _ in 0..20 {
        let young = age_of(path).is_some_and(|a| a < Duration::from_secs(2));
        if !seen.trim().is_empty() || !young {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        seen = read_lock(path).unwrap_or_default();
    }
    seen
}

/// Who holds the lock that says `text`, for people.
fn describe(text: &str, host: &str, age: Option<Duration>) -> String {
    let refreshed = match age {
        Some(a) => format!("{} ago", human(a)),
        None => "at an unknown time".into(),
    };
    match parse(text) {
        Some(h) => format!(
            "held by {}{} pid {}, since {}, last refreshed {refreshed}",
            h.host,
            if h.host == host { " (this host)" } else { "" },
            h.pid,
            format_ms(h.started_ms),
        ),
        None => {
            let shown: String = text.trim().chars().take(80).collect();
            format!("held by an unreadable lock ({shown:?}), written {refreshed}")
        }
    }
}

/// A duration to the second (at least 1s), as `1m 30s`.
fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

/// Whether process `pid` of this host runs: a zombie (killed, not yet reaped by its parent)
/// does not.
fn alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => {
            matches!(
                rustix::process::test_kill_process(p),
                Ok(()) | Err(rustix::io::Errno::PERM)
            ) && !zombie(pid)
        }
        None => false,
    }
}

/// Linux: the state in `/proc/PID/stat` (after the command name, which may hold anything) is
/// Z (zombie) or X (dead). Unreadable: not known to be one.
#[cfg(target_os = "linux")]
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn zombie(_pid: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_age(path: &Path, age: Duration) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    /// A process of this host that runs (not this one), killed and reaped when dropped.
    struct Sleeper(std::process::Child);

    impl Sleeper {
        fn start() -> Sleeper {
            Sleeper(
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .unwrap(),
            )
        }
        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn held_why(r: Result<TargetLock, LockError>) -> String {
        match r {
            Err(LockError::Held(why)) => why,
            Err(e) => panic!("not held: {e}"),
            Ok(_) => panic!("taken, should be held"),
        }
    }

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let a = TargetLock::take(d.path(), "h1").unwrap();
        let why = held_why(TargetLock::take(d.path(), "h2"));
        assert!(why.contains("locked by another run"), "{why}");
        assert!(why.contains("held by h1 pid "), "{why}");
        // The same process, while it holds it: refused too (two targets on one folder).
        let why = held_why(TargetLock::take(d.path(), "h1"));
        assert!(why.contains("h1 (this host)"), "{why}");
        drop(a);
        assert!(!d.path().join(LOCK).exists());
        let _b = TargetLock::take(d.path(), "h2").unwrap();
    }

    /// Regression: a waiter that read the lock between its creation and its write said "held
    /// by an unreadable lock (\"\")" instead of naming the holder.
    #[test]
    fn a_lock_read_while_being_written_names_its_holder() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "").unwrap();
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40));
                std::fs::write(&lock, "box-aaaaaaaaaaaa 4242 1796000000000 1f\n").unwrap();
            })
        };
        let why = held_why(TargetLock::take(d.path(), "box-bbbbbbbbbbbb"));
        writer.join().unwrap();
        assert!(why.contains("held by box-aaaaaaaaaaaa pid 4242"), "{why}");
        // One that stays empty is unreadable (and stale in time).
        std::fs::write(&lock, "").unwrap();
        set_age(&lock, Duration::from_secs(5));
        let why = held_why(TargetLock::take(d.path(), "box-bbbbbbbbbbbb"));
        assert!(why.contains("unreadable lock"), "{why}");
    }

    #[test]
    fn the_lock_says_who_holds_it_since_when_and_when_refreshed() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "box-aaaaaaaaaaaa 4242 1796000000000 1f\n").unwrap();
        set_age(&lock, Duration::from_secs(90));
        let why = held_why(TargetLock::take(d.path(), "box-bbbbbbbbbbbb"));
        assert!(
            why.contains("held by box-aaaaaaaaaaaa pid 4242, since 2026-11-30T")
                && why.contains("last refreshed 1m 30s ago"),
            "{why}"
        );
        // What this host writes: its identity, its pid, when, a nonce.
        std::fs::remove_file(&lock).unwrap();
        let l = TargetLock::take(d.path(), "box-bbbbbbbbbbbb").unwrap();
        let text = std::fs::read_to_string(&lock).unwrap();
        let h = parse(&text).unwrap();
        assert_eq!(h.host, "box-bbbbbbbbbbbb");
        assert_eq!(h.pid as u32, std::process::id());
        assert!(h.started_ms > 1_700_000_000_000, "{text}");
        drop(l);
    }

    #[test]
    fn another_hosts_lock_is_held_while_refreshed_and_stale_after_two_minutes() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "otherhost-000000000000 1 0 0\n").unwrap();
        assert!(TargetLock::take(d.path(), "h1").is_err(), "fresh: held");
        set_age(&lock, Duration::from_secs(90));
        assert!(TargetLock::take(d.path(), "h1").is_err(), "90 s: held");
        set_age(&lock, Duration::from_secs(150));
        let _l = TargetLock::take(d.path(), "h1").unwrap();
    }

    /// Regression: two machines with one hostname (clones, containers) took over each
    /// other's live locks, a pid of the other machine being judged on this one.
    #[test]
    fn the_same_hostname_with_another_identity_is_another_host() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        let me = "box-bbbbbbbbbbbb";
        // A pid that runs here, this very process's (two containers are both pid 1), and
        // one that runs nowhere: all the other host's, held while fresh.
        let sleeper = Sleeper::start();
        for pid in [sleeper.pid(), std::process::id(), 2_147_483_646] {
            std::fs::write(&lock, format!("box-aaaaaaaaaaaa {pid} 0 0\n")).unwrap();
            let why = held_why(TargetLock::take(d.path(), me));
            assert!(why.contains("held by box-aaaaaaaaaaaa pid"), "{why}");
            assert!(!why.contains("this host"), "{why}");
        }
        std::fs::remove_file(&lock).unwrap();
    }

    #[test]
    fn a_live_process_of_this_host_holds_it_while_it_refreshes() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        let sleeper = Sleeper::start();
        std::fs::write(&lock, format!("h1 {} 0 0\n", sleeper.pid())).unwrap();
        let why = held_why(TargetLock::take(d.path(), "h1"));
        assert!(why.contains("h1 (this host)"), "{why}");
        set_age(&lock, Duration::from_secs(90));
        assert!(TargetLock::take(d.path(), "h1").is_err());
        // Not refreshed for two minutes: its pid is another process's now, or it is stuck.
        set_age(&lock, Duration::from_secs(150));
        let _l = TargetLock::take(d.path(), "h1").unwrap();
    }

    #[test]
    fn leftovers_of_this_process_and_of_dead_ones_are_taken_over_at_once() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, format!("h1 {} 0 999999\n", std::process::id())).unwrap();
        let l = TargetLock::take(d.path(), "h1").unwrap();
        drop(l);
        // pid 0x7ffffffe is not running: a restarted daemon's own lock, fresh.
        std::fs::write(&lock, "h1 2147483646 0 0\n").unwrap();
        let _l = TargetLock::take(d.path(), "h1").unwrap();
    }

    /// Regression: a daemon killed (kill -9) and not reaped yet by its parent is a zombie,
    /// which `kill(pid, 0)` says exists: its lock locked out the restarted daemon.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_holder_not_reaped_yet_is_dead() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        let mut sleeper = Sleeper::start();
        let pid = sleeper.pid();
        sleeper.0.kill().unwrap();
        // Not waited for: a zombie until reaped (by the drop).
        let stat = format!("/proc/{pid}/stat");
        for _ in 0..200 {
            if zombie(pid as i32) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(zombie(pid as i32), "{:?}", std::fs::read_to_string(&stat));
        assert!(!alive(pid as i32));
        std::fs::write(&lock, format!("h1 {pid} 0 0\n")).unwrap();
        let _l = TargetLock::take(d.path(), "h1").unwrap();
        drop(sleeper);
    }

    #[test]
    fn a_half_written_lock_is_stale_after_a_minute() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        for text in ["", "h1", "h1 12", "h1 12 0 0"] {
            std::fs::write(&lock, text).unwrap();
            let why = held_why(TargetLock::take(d.path(), "h1"));
            assert!(why.contains("unreadable"), "{text:?}: {why}");
            set_age(&lock, UNREADABLE_STALE + Duration::from_secs(5));
            let l = TargetLock::take(d.path(), "h1").unwrap();
            drop(l);
        }
    }

    #[test]
    fn a_lock_refreshed_by_a_clock_ahead_of_ours_is_fresh() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "other-000000000000 1 0 0\n").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(600))
            .unwrap();
        assert!(TargetLock::take(d.path(), "h1").is_err());
        // A year ahead: no time at all (a dead host's clock set wrong locks nobody out).
        f.set_modified(SystemTime::now() + Duration::from_secs(365 * 86_400))
            .unwrap();
        assert!(TargetLock::take(d.path(), "h1").is_ok());
    }

    /// Regression: the lock was never refreshed, so a run longer than the stale age could be
    /// joined by another host's run.
    #[tokio::test]
    async fn a_held_lock_is_kept_fresh() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let l = tokio::task::spawn_blocking(move || {
            TargetLock::take_with(&dir, "h1", Duration::from_millis(20))
        })
        .await
        .unwrap()
        .unwrap();
        let lock = d.path().join(LOCK);
        set_age(&lock, Duration::from_secs(7200));
        let mut fresh = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if age_of(&lock).is_some_and(|a| a < Duration::from_secs(60)) {
                fresh = true;
                break;
            }
        }
        assert!(fresh, "the lock's time was not refreshed");
        assert!(!l.lost());
        let text = std::fs::read_to_string(&lock).unwrap();
        assert!(!is_stale(&text, "otherhost", &lock, age_of(&lock)));
        l.release().await;
        assert!(!lock.exists());
    }

    /// A lock taken over by another run is never refreshed for it, and its holder learns it
    /// lost it.
    #[tokio::test]
    async fn a_lock_taken_over_is_lost_and_not_refreshed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let l = tokio::task::spawn_blocking(move || {
            TargetLock::take_with(&dir, "h1", Duration::from_millis(20))
        })
        .await
        .unwrap()
        .unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "h2 1 0 0\n").unwrap();
        set_age(&lock, Duration::from_secs(7200));
        for _ in 0..200 {
            if l.lost() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(l.lost());
        assert!(age_of(&lock).is_some_and(|a| a > Duration::from_secs(3600)));
        l.release().await;
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), "h2 1 0 0\n");
    }

    /// A release that comes late never removes a lock another holder took meanwhile.
    #[test]
    fn a_late_release_leaves_a_newer_lock_alone() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        let mut a = TargetLock::take(d.path(), "h1").unwrap();
        let (path, text) = a.forget();
        std::fs::write(&lock, "h2 1 0 0\n").unwrap();
        remove_if(&path, &text);
        assert!(lock.exists());
    }

    #[test]
    fn each_lock_text_is_unique() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        let a = TargetLock::take(d.path(), "h1").unwrap();
        let first = std::fs::read_to_string(&lock).unwrap();
        drop(a);
        let _b = TargetLock::take(d.path(), "h1").unwrap();
        assert_ne!(std::fs::read_to_string(&lock).unwrap(), first);
    }

    #[test]
    fn waiting_takes_the_lock_once_its_holder_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "box-aaaaaaaaaaaa 4242 0 0\n").unwrap();
        let remover = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                std::fs::remove_file(lock).unwrap();
            })
        };
        let mut told = Vec::new();
        let l = TargetLock::take_waiting(d.path(), "h1", Duration::from_secs(20), |who| {
            told.push(who.to_string())
        })
        .unwrap();
        remover.join().unwrap();
        assert!(!told.is_empty());
        assert!(
            told[0].starts_with("held by box-aaaaaaaaaaaa pid 4242, since ")
                && told[0].contains("last refreshed"),
            "{told:?}"
        );
        assert!(parse(&std::fs::read_to_string(&lock).unwrap()).is_some_and(|h| h.host == "h1"));
        drop(l);
    }

    #[test]
    fn waiting_gives_up_after_its_time_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "box-aaaaaaaaaaaa 4242 0 0\n").unwrap();
        let started = Instant::now();
        let mut tries = 0;
        let why = held_why(TargetLock::take_waiting(
            d.path(),
            "h1",
            Duration::from_millis(500),
            |_| tries += 1,
        ));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(tries >= 2, "{tries}");
        assert!(
            why.contains("held by box-aaaaaaaaaaaa pid 4242") && why.contains("(waited "),
            "{why}"
        );
        // No wait: one try.
        let why = held_why(TargetLock::take_waiting(
            d.path(),
            "h1",
            Duration::ZERO,
            |_| panic!("not told when not waiting"),
        ));
        assert!(!why.contains("waited"), "{why}");
        // A stale lock is taken over while waiting as at once.
        set_age(&lock, LOCK_STALE + Duration::from_secs(1));
        let _l = TargetLock::take_waiting(d.path(), "h1", Duration::from_secs(5), |_| {}).unwrap();
    }

    #[test]
    fn a_lock_that_cannot_be_written_fails_without_waiting() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("not-there");
        let started = Instant::now();
        let r = TargetLock::take_waiting(&missing, "h1", Duration::from_secs(30), |_| {});
        assert!(matches!(r, Err(LockError::Failed(_))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
