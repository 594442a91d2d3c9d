//! What the daemon exports about itself: a loopback HTTP listener (`/metrics` in the
//! Prometheus text format, `/health` as `application/health+json`) and OpenTelemetry metrics
//! over OTLP/HTTP. Both read [`Metrics::totals`] (running totals since the daemon started,
//! no message round trip) and a few daemon gauges.
//!
//! - `prometheus`: the text exposition format 0.0.4 (pure);
//! - `http`: the listener (hyper, bounded connections and header timeout);
//! - `otlp`: the OpenTelemetry SDK's periodic reader and OTLP/HTTP exporter.
//!
//! The daemon binds the listener at start ([`http::bind`]: a taken address stops the start),
//! [`start`]s the exports once it runs, stops the listener before the tree stops
//! ([`Exports::stop_http`]) and exports one last time after ([`Exports::finish`]).
//!
//! [`Metrics::totals`]: metasystem_actors::metrics::Metrics::totals

pub mod http;
pub mod otlp;
pub mod prometheus;
#[cfg(test)]
mod text_check;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, TelemetryConfig};
use crate::daemon::Daemon;

/// The final OTLP export (and the reader's stop) may take this long at shutdown.
const OTLP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// The running exports.
#[derive(Default)]
pub struct Exports {
    http: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    otlp: Option<otlp::Otlp>,
}

/// Binds the HTTP listener if `[daemon] http` is set (before the store opens: a taken address
/// stops the start); on failure removes the control socket the daemon already bound, and the
/// error names the address. Also hands back `[telemetry]` for [`start`].
pub async fn bind(
    config: &Config,
    control_socket: &Path,
) -> Result<(Option<http::Bound>, TelemetryConfig), String> {
    let telemetry = config.telemetry.clone();
    let Some(addr) = config.daemon.http else {
        return Ok((None, telemetry));
    };
    match http::bind(addr).await {
        Ok(bound) => Ok((Some(bound), telemetry)),
        Err(e) => {
            let _ = std::fs::remove_file(control_socket);
            Err(e)
        }
    }
}

/// Starts serving `bound` (if any) and the OTLP export (if configured). A failure to set up
/// the OTLP export is logged and leaves it off; the daemon runs on.
pub async fn start(
    bound: Option<http::Bound>,
    daemon: &Arc<Daemon>,
    telemetry: &TelemetryConfig,
) -> Exports {
    let mut exports = Exports::default();
    if let Some(bound) = bound {
        let (stop, stopped) = watch::channel(false);
        tracing::info!(
            address = %bound.addr,
            "serving http://{}/metrics and /health",
            bound.addr
        );
        let task = tokio::spawn(http::serve(bound, daemon.clone(), stopped));
        exports.http = Some((task, stop));
    }
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        let endpoint = endpoint.clone();
        let interval = telemetry.otlp_interval;
        let metrics = daemon.metrics_handle().clone();
        let url = otlp::metrics_url(&endpoint);
        match tokio::task::spawn_blocking(move || otlp::start(&endpoint, interval, metrics)).await {
            Ok(Ok(otlp)) => {
                tracing::info!(
                    url = %url,
                    interval = %humantime::format_duration(interval),
                    "exporting metrics over OTLP/HTTP"
                );
                exports.otlp = Some(otlp);
            }
            Ok(Err(e)) => tracing::error!("{e}; running without it"),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the OTLP export; running without it")
            }
        }
    }
    exports
}

impl Exports {
    /// Stops the HTTP listener and closes its connections.
    pub async fn stop_http(&mut self) {
        if let Some((task, stop)) = self.http.take() {
            stop.send_replace(true);
            let _ = task.await;
        }
    }

    /// Stops everything; the OTLP export sends what it has one last time (on the blocking
    /// pool, waiting at most [`OTLP_SHUTDOWN_TIMEOUT`]).
    pub async fn finish(mut self) {
        self.stop_http().await;
        let Some(otlp) = self.otlp.take() else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || otlp.shutdown());
        match tokio::time::timeout(OTLP_SHUTDOWN_TIMEOUT, done).await {
            Ok(Ok(Ok(()))) => tracing::debug!("OTLP export stopped"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the last OTLP export failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the OTLP export's shutdown failed"),
            Err(_) => tracing::warn!("the OTLP export did not stop in time"),
        }
    }
}

/// The `/metrics` page now.
pub fn scrape(daemon: &Daemon) -> String {
    let store = daemon.store().stats();
    let gauges = prometheus::Gauges {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: crate::BUILD
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_string(),
        uptime_seconds: daemon.uptime().as_secs_f64(),
        store_dropped_rows: store.dropped,
        store_queued_rows: (store.queued + store.samples_queued + store.inflight) as u64,
        store_write_failures: store.write_failures,
        store_failing: store.failing_since_ms.is_some(),
        log_lines_dropped: crate::telemetry::lines_dropped(),
        log_file_lines_refused: crate::telemetry::file_status().map_or(0, |f| f.lines_refused),
    };
    prometheus::render(&daemon.metrics_handle().totals(), &gauges)
}
