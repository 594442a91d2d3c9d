//! The root supervisor gave up: the alerts actor stopped with the rest of the tree, so the
//! daemon sends the critical "root gave up" alert itself, through the channels of the
//! config's alerts child, before it exits. The alert is stored in the outbox first, so a
//! channel that is down gets it from the next start.

use std::time::Duration;

use metasystem_actors::alerts::flush::{last_words, LastWords};
use metasystem_actors::store::{unix_ms, Store};
use metasystem_actors::ExitReason;
use tokio::time::Instant;

use crate::config::SupervisorConfig;
use crate::kinds::alerts::AlertsConfig;
use crate::kinds::Kind;

/// How long the daemon waits for its last alerts before exiting.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The first alerts child in the tree (there is at most one).
pub(super) fn alerts_config(root: &SupervisorConfig) -> Option<&AlertsConfig> {
    root.children.iter().find_map(|c| match &c.kind {
        Kind::Alerts(a) => Some(a),
        Kind::Supervisor(sup) => alerts_config(sup),
        _ => None,
    })
}

/// Sends the root give-up alert (and whatever else the outbox holds) within [`DEADLINE`].
/// `failed_for`: how long before now the rows the actor may have stored for it can be.
pub async fn root_gave_up(
    store: &Store,
    root: &SupervisorConfig,
    reason: &ExitReason,
    failed_for: Duration,
) {
    let Some(config) = alerts_config(root) else {
        return;
    };
    let settings = root.settings;
    let mut alert =
        metasystem_actors::observe::gave_up_alert("root", settings.intensity, settings.period);
    if *reason != ExitReason::MaxRestartIntensity {
        alert.body = format!("the root supervisor exited ({reason}); the daemon exits for its service manager to restart");
    }
    let words = LastWords {
        channels: config.channels.clone(),
        routes: config.routes.clone(),
        timeout: config.timeout,
        hostname: config.host.clone(),
    };
    let since = unix_ms(std::time::SystemTime::now()) - failed_for.as_millis() as i64;
    let flushed = last_words(store, &words, &alert, since, Instant::now() + DEADLINE).await;
    tracing::info!(
        accepted = flushed.accepted,
        left = flushed.left,
        dropped = flushed.dropped,
        "alerts sent before exiting"
    );
}
