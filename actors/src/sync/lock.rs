//! The target's lock: one run (or operator's change, `conflicts resolve`) per target at a
//! time, across every host that syncs into it.
//!
//! The lock is a file in the target, `host pid started_ms nonce`, created exclusively. While
//! held, its modification time is refreshed every [`LOCK_REFRESH`]; a lock not refreshed for
//! [`LOCK_STALE`] (its holder died or lost the drive) is taken over, and so is one of this
//! host whose process is gone, or of this very process that no longer holds it.
//!
//! Nothing here blocks the scheduler: taking runs inside the caller's blocking task, the
//! refresh touches the file on the blocking pool, and release removes it there too.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::scan::LOCK;
use crate::store::unix_ms;

/// How often a held lock's modification time is refreshed.
pub const LOCK_REFRESH: Duration = Duration::from_secs(5 * 60);
/// A lock neither taken nor refreshed for this long is stale whoever holds it: a dozen
/// refreshes missed (a slow cloud folder may show them late).
pub const LOCK_STALE: Duration = Duration::from_secs(3600);
/// A lock file that cannot be parsed (half-written by a holder killed at once) is stale once
/// this old.
const UNREADABLE_STALE: Duration = Duration::from_secs(60);

/// The lock files this process holds now: one of ours that is not in here is a leftover.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
/// Makes each lock's text unique, so a late release never removes a newer lock.
static NONCE: AtomicU64 = AtomicU64::new(0);

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
    released: bool,
}

/// Why a [`TargetLock`] was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another run (of this host or another) holds it: a run is skipped.
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

impl TargetLock {
    /// Takes the lock of `target` (blocking I/O: call it from a blocking task).
    pub fn take(target: &Path, host: &str) -> Result<TargetLock, LockError> {
        Self::take_with(target, host, LOCK_REFRESH)
    }

    fn take_with(target: &Path, host: &str, every: Duration) -> Result<TargetLock, LockError> {
        let path = target.join(LOCK);
        let text = format!(
            "{host} {} {} {}\n",
            std::process::id(),
            unix_ms(SystemTime::now()),
            NONCE.fetch_add(1, Ordering::Relaxed)
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
                        return Err(LockError::Failed(format!(
                            "cannot write the lock {}: {e}",
                            path.display()
                        )));
                    }
                    held().get_or_insert_with(HashSet::new).insert(path.clone());
                    let refresh = tokio::runtime::Handle::try_current()
                        .ok()
                        .map(|rt| rt.spawn(keep_fresh(path.clone(), every)));
                    return Ok(TargetLock {
                        path,
                        text,
                        refresh,
                        released: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let seen = std::fs::read_to_string(&path).unwrap_or_default();
                    if !is_stale(&seen, host, &path) {
                        return Err(LockError::Held(format!(
                            "{} is locked by another run ({})",
                            target.display(),
                            seen.trim()
                        )));
                    }
                    remove_if(&path, &seen);
                }
                Err(e) => {
                    return Err(LockError::Failed(format!(
                        "cannot create the lock {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Err(LockError::Held(format!(
            "cannot take the lock {}: another run took it meanwhile",
            path.display()
        )))
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

/// Removes the lock file if it still says `text` (not a newer holder's).
fn remove_if(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|now| now == text) {
        let _ = std::fs::remove_file(path);
    }
}

async fn keep_fresh(path: PathBuf, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let p = path.clone();
        let touched = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(SystemTime::now()))
        })
        .await;
        if let Ok(Err(e)) = touched {
            tracing::warn!(lock = %path.display(), error = %e, "cannot refresh the sync lock");
        }
    }
}

fn is_stale(text: &str, host: &str, path: &Path) -> bool {
    let age = |limit: Duration| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age > limit)
    };
    let mut parts = text.split_whitespace();
    let (Some(h), Some(pid)) = (parts.next(), parts.next()) else {
        return age(UNREADABLE_STALE);
    };
    if age(LOCK_STALE) {
        return true;
    }
    if h == host {
        if let Ok(pid) = pid.parse::<i32>() {
            if pid as u32 == std::process::id() {
                // Ours: stale unless this process still holds it (a release not done yet).
                return !held().as_ref().is_some_and(|s| s.contains(path));
            }
            return !alive(pid);
        }
    }
    false
}

fn alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => matches!(
            rustix::process::test_kill_process(p),
            Ok(()) | Err(rustix::io::Errno::PERM)
        ),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age_of(path: &Path) -> Duration {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX)
    }

    fn set_age(path: &Path, age: Duration) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let a = TargetLock::take(d.path(), "h1").unwrap();
        let err = TargetLock::take(d.path(), "h2").err().unwrap();
        assert!(
            matches!(&err, LockError::Held(why) if why.contains("locked by another run")),
            "{err}"
        );
        // The same process, while it holds it: refused too (two targets on one folder).
        assert!(TargetLock::take(d.path(), "h1").is_err());
        drop(a);
        assert!(!d.path().join(LOCK).exists());
        let _b = TargetLock::take(d.path(), "h2").unwrap();
    }

    #[test]
    fn a_lock_not_refreshed_for_an_hour_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, "otherhost 1 0 0\n").unwrap();
        assert!(TargetLock::take(d.path(), "h1").is_err(), "fresh: held");
        set_age(&lock, LOCK_STALE + Duration::from_secs(60));
        let _l = TargetLock::take(d.path(), "h1").unwrap();
    }

    #[test]
    fn leftovers_of_this_process_and_of_dead_ones_are_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join(LOCK);
        std::fs::write(&lock, format!("h1 {} 0 999999\n", std::process::id())).unwrap();
        let l = TargetLock::take(d.path(), "h1").unwrap();
        drop(l);
        // pid 0x7ffffffe is not running.
        std::fs::write(&lock, "h1 2147483646 0 0\n").unwrap();
        let _l = TargetLock::take(d.path(), "h1").unwrap();
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
            if age_of(&lock) < Duration::from_secs(60) {
                fresh = true;
                break;
            }
        }
        assert!(fresh, "the lock's time was not refreshed");
        let text = std::fs::read_to_string(&lock).unwrap();
        assert!(!is_stale(&text, "otherhost", &lock));
        l.release().await;
        assert!(!lock.exists());
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
}
