//! Talking to systemd: READY/RELOADING/STOPPING notifications and the watchdog interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set once STOPPING=1 has been sent: READY=1 must never follow it (a reload that finishes
/// during shutdown would otherwise tell systemd we are up again).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Tells systemd (when it started us with NOTIFY_SOCKET); a no-op otherwise.
fn send(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// READY=1 (with a status line), unless the daemon is already stopping.
pub fn ready(status: &str) {
    if !STOPPING.load(Ordering::Acquire) {
        send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }
}

/// RELOADING=1, unless the daemon is already stopping.
pub fn reloading() {
    if !STOPPING.load(Ordering::Acquire) {
        send(&[sd_notify::NotifyState::Reloading]);
    }
}

/// STOPPING=1; from now on READY=1 and RELOADING=1 are never sent.
pub fn stopping() {
    STOPPING.store(true, Ordering::Release);
    send(&[sd_notify::NotifyState::Stopping]);
}

/// The systemd watchdog interval, with libsystemd's `sd_watchdog_enabled` rules: WATCHDOG_USEC
/// set and positive, and WATCHDOG_PID, when set, naming this process. (The sd-notify crate also
/// insists on WATCHDOG_PID being present, which libsystemd does not.)
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}
