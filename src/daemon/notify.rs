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

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    /// Regression: a reload finishing during shutdown sent READY=1 after STOPPING=1. A real
    /// datagram socket stands in for systemd. (The only test here that sets NOTIFY_SOCKET or
    /// touches the stopping flag.)
    #[test]
    fn nothing_but_stopping_after_stopping() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let _ = socket.set_read_timeout(Some(Duration::from_millis(300)));
        std::env::set_var("NOTIFY_SOCKET", &path);
        let mut buf = [0u8; 1024];
        let mut next = || {
            socket
                .recv(&mut buf)
                .ok()
                .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        super::ready("running");
        assert!(next().is_some_and(|m| m.contains("READY=1")));
        super::reloading();
        assert!(next().is_some_and(|m| m.contains("RELOADING=1")));
        super::stopping();
        assert!(next().is_some_and(|m| m.contains("STOPPING=1")));
        super::ready("running");
        super::reloading();
        assert_eq!(next(), None, "nothing after STOPPING=1");
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
