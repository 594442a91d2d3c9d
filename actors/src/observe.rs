//! Watching the tree: every lifecycle event the engine emits becomes a stored event, samples,
//! and (for restarts and give-ups) alerts. This is the one place that turns the engine's
//! vocabulary into the metrics' and the alerts'; the engine knows nothing of either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::alerts::{Alert, Alerts, Severity};
use crate::metrics::{Metric, Metrics, Sample};
use crate::store::{unix_ms, StoredEvent};
use crate::supervision::event::{EventKind, EventSink, LifecycleEvent};
use crate::supervision::exit::ExitReason;

/// The dedup key of "this actor keeps restarting".
pub fn restart_key(path: &str) -> String {
    format!("restart:{path}")
}

/// The dedup key of "this supervisor gave up".
pub fn gave_up_key(path: &str) -> String {
    format!("gave_up:{path}")
}

/// The samples a lifecycle event stands for.
pub fn samples_of(e: &LifecycleEvent) -> Vec<Sample> {
    let at_ms = unix_ms(e.at);
    let sample = |metric: Metric, value: f64, ok: Option<bool>| Sample {
        at_ms,
        metric,
        subject: e.path.clone(),
        value,
        ok,
    };
    match &e.kind {
        EventKind::Started { .. } | EventKind::Restarted { .. } => {
            vec![sample(Metric::ActorStarts, 1.0, Some(true))]
        }
        EventKind::StartFailed { .. } => vec![
            sample(Metric::ActorStarts, 1.0, Some(false)),
            sample(Metric::ActorStartFailures, 1.0, None),
        ],
        EventKind::Exited { reason, .. } => {
            let ok = matches!(reason, ExitReason::Normal | ExitReason::Shutdown);
            vec![sample(Metric::ActorExits, 1.0, Some(ok))]
        }
        EventKind::RestartScheduled { delay, .. } => vec![
            sample(Metric::ActorRestarts, 1.0, None),
            sample(Metric::ActorRestartDelay, delay.as_secs_f64(), None),
        ],
        EventKind::GaveUp { .. } => vec![sample(Metric::ActorGiveUps, 1.0, None)],
    }
}

/// The critical alert "the supervisor at `path` gave up" (sent at its first occurrence).
pub fn gave_up_alert(path: &str, intensity: u32, period: std::time::Duration) -> Alert {
    let mut alert = Alert::new(
        Severity::Critical,
        format!("supervisor gave up: {path}"),
        path,
    )
    .body(format!(
        "{path} had more than {intensity} restarts in {} and gave up; its parent restarts it \
             (or, for the root, the daemon exits for its service manager to restart)",
        humantime::format_duration(period)
    ))
    .label("path", path)
    .at_once();
    alert.key = Some(gave_up_key(path));
    alert
}

/// The least time an actor must run after a restart before "actor restarting" resolves.
pub const STABLE_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(5);

/// Per path: how many restarts were scheduled, and whether the latest one's "running again"
/// is still to come (the condition is open). It is told only if no other restart of the
/// path came since.
#[derive(Clone, Default)]
struct Restarts(Arc<Mutex<HashMap<String, (u64, bool)>>>);

impl Restarts {
    /// One more restart of `path`, its condition open until [`Restarts::settled`].
    fn bump(&self, path: &str) -> u64 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(path.to_string()).or_default();
        n.0 += 1;
        n.1 = true;
        n.0
    }

    /// Whether restart `n` is still the latest of `path`; if so its condition is over.
    fn settled(&self, path: &str, n: u64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(path) {
            Some(e) if e.0 == n => {
                e.1 = false;
                true
            }
            _ => false,
        }
    }

    /// Whether a restart of `path` is still waiting for it to stay up.
    fn open(&self, path: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(path).is_some_and(|e| e.1)
    }
}

/// The alert a lifecycle event raises or clears, if any.
fn alert_of(e: &LifecycleEvent, alerts: &Alerts, restarts: &Restarts) {
    match &e.kind {
        EventKind::RestartScheduled {
            delay,
            attempt,
            reset_after,
        } => {
            let key = restart_key(&e.path);
            // The backoff counts restarts since the child last stayed up: the first of a new
            // run ends the previous condition, so `after` counts restarts in a row. Unless the
            // previous restart's condition is still open: a supervisor without backoff
            // (reset_after 0) numbers every restart of a storm #1, and clearing at each one
            // kept `after` from ever being reached (20 kills in 4 s raised nothing).
            if *attempt <= 1 && !restarts.open(&e.path) {
                alerts.clear(key.clone());
            }
            let mut alert = Alert::new(
                Severity::Warning,
                format!("actor restarting: {}", e.path),
                &e.path,
            )
            .body(format!(
                "{} is being restarted (restart #{attempt} in a row, next in {})",
                e.path,
                humantime::format_duration(std::time::Duration::from_millis(
                    delay.as_millis() as u64
                ))
            ))
            .label("path", &e.path);
            alert.key = Some(key.clone());
            alerts.raise(alert);
            // Once it has run for `reset_after` after this restart (with no restart since),
            // it is not restarting any more: the condition ends, as the backoff's count does.
            // At least `STABLE_AT_LEAST`: under a supervisor without backoff (reset_after 0)
            // "restarting" would end the moment it began, and a receiver would hear of it only
            // as resolved.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let n = restarts.bump(&e.path);
                let (alerts, restarts, path) = (alerts.clone(), restarts.clone(), e.path.clone());
                let wait = delay.saturating_add((*reset_after).max(STABLE_AT_LEAST));
                rt.spawn(async move {
                    tokio::time::sleep(wait).await;
                    if restarts.settled(&path, n) {
                        alerts.clear(key);
                    }
                });
            }
        }
        EventKind::Started { .. } | EventKind::Restarted { .. } => {
            // A supervisor that gave up runs again (its parent restarted it).
            alerts.clear(gave_up_key(&e.path));
        }
        EventKind::GaveUp { intensity, period } => {
            alerts.raise(gave_up_alert(&e.path, *intensity, *period));
        }
        EventKind::Exited {
            reason: ExitReason::Shutdown | ExitReason::Normal,
            ..
        } => {
            // Stopped on purpose (or done): whatever was wrong with it is over.
            alerts.clear(restart_key(&e.path));
        }
        _ => {}
    }
}

/// The engine's event sink for a daemon: store, samples, alerts.
pub fn sink(metrics: Metrics, alerts: Alerts) -> EventSink {
    let restarts = Restarts::default();
    EventSink::from_fn(move |event| {
        metrics.store().record(StoredEvent::from(&event));
        metrics.report_many(samples_of(&event));
        alert_of(&event, &alerts, &restarts);
    })
}
