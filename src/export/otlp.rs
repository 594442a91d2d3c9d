//! OpenTelemetry metrics over OTLP/HTTP (protobuf), posted to `<otlp_endpoint>/v1/metrics`
//! every `otlp_interval`.
//!
//! The SDK's `PeriodicReader` runs on its own thread and the exporter uses the blocking reqwest
//! client (the async one panics there: no reactor), so nothing here runs on the daemon's
//! runtime; [`start`] and [`Otlp::shutdown`] block, and the caller runs them on the blocking
//! pool.
//!
//! Instruments are observable and read [`Metrics::totals`] at each collection (cumulative
//! temporality: running totals since the daemon started, like the Prometheus export):
//! - occurrences ([`Unit::Events`]): a counter `metasystem.<name>` per `subject`, split by
//!   `outcome` (`ok`/`failed`) when the series reports outcomes;
//! - measurements: counters `metasystem.<name>.sum` (in the metric's unit) and
//!   `metasystem.<name>.count`, so a backend derives the mean over any window as
//!   rate(sum) / rate(count), the same as the Prometheus summary; plus
//!   `metasystem.<name>.failures` when the series reports outcomes. Last values are not
//!   exported: between two exports they would hide every other value.

use std::time::Duration;

use metasystem_actors::metrics::{Metric, Metrics, SeriesTotal, Unit};
use opentelemetry::metrics::{Meter, MeterProvider as _, ObservableCounter};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

/// One export may take this long.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running export.
pub struct Otlp {
    provider: SdkMeterProvider,
    /// Kept for the provider's life.
    _counters: (Vec<ObservableCounter<u64>>, Vec<ObservableCounter<f64>>),
}

/// `<endpoint>/v1/metrics`.
pub fn metrics_url(endpoint: &str) -> String {
    format!("{}/v1/metrics", endpoint.trim_end_matches('/'))
}

/// Builds the exporter, the reader and the instruments. Blocks (the HTTP client is built on a
/// thread of its own): call it from the blocking pool.
pub fn start(endpoint: &str, interval: Duration, metrics: Metrics) -> Result<Otlp, String> {
    let url = metrics_url(endpoint);
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot set up the OTLP export to {url}: {e}"))?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource())
        .build();
    let meter = provider.meter("metasystem");
    let counters = instruments(&meter, &metrics);
    Ok(Otlp {
        provider,
        _counters: counters,
    })
}

impl Otlp {
    /// Exports one last time and stops the reader's thread. Blocks up to the export timeout.
    pub fn shutdown(self) -> Result<(), String> {
        self.provider.shutdown().map_err(|e| e.to_string())
    }
}

fn resource() -> Resource {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Resource::builder_empty()
        .with_service_name("metasystem")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("host.name", host),
        ])
        .build()
}

/// The UCUM unit of a metric's values.
fn unit(u: Unit) -> &'static str {
    match u {
        Unit::Events => "{event}",
        Unit::Seconds => "s",
        Unit::Bytes => "By",
        Unit::Count | Unit::Ratio => "1",
    }
}

fn series(metrics: &Metrics, metric: Metric) -> Vec<(String, SeriesTotal)> {
    metrics
        .totals()
        .into_iter()
        .filter(|((m, _), _)| *m == metric)
        .map(|((_, subject), t)| (subject, t))
        .collect()
}

/// The name of the instrument(s) of `metric`.
pub fn instrument_name(metric: Metric) -> String {
    format!("metasystem.{}", metric.name())
}

fn instruments(
    meter: &Meter,
    metrics: &Metrics,
) -> (Vec<ObservableCounter<u64>>, Vec<ObservableCounter<f64>>) {
    let (mut ints, mut floats) = (Vec::new(), Vec::new());
    for &metric in Metric::ALL {
        let name = instrument_name(metric);
        if metric.unit() == Unit::Events {
            let m = metrics.clone();
            ints.push(
                meter
                    .u64_observable_counter(name)
                    .with_description(metric.help())
                    .with_unit(unit(metric.unit()))
                    .with_callback(move |o| {
                        for (subject, t) in series(&m, metric) {
                            let with_outcome = t.ok + t.failed;
                            if with_outcome == 0 {
                                o.observe(t.count, &[KeyValue::new("subject", subject)]);
                                continue;
                            }
                            for (outcome, n) in [("ok", t.ok), ("failed", t.failed)] {
                                o.observe(
                                    n,
                                    &[
                                        KeyValue::new("subject", subject.clone()),
                                        KeyValue::new("outcome", outcome),
                                    ],
                                );
                            }
                            let without = t.count.saturating_sub(with_outcome);
                            if without > 0 {
                                o.observe(without, &[KeyValue::new("subject", subject)]);
                            }
                        }
                    })
                    .build(),
            );
            continue;
        }
        let m = metrics.clone();
        floats.push(
            meter
                .f64_observable_counter(format!("{name}.sum"))
                .with_description(format!("{}: the sum of the values", metric.help()))
                .with_unit(unit(metric.unit()))
                .with_callback(move |o| {
                    for (subject, t) in series(&m, metric) {
                        if t.sum.is_finite() {
                            o.observe(t.sum, &[KeyValue::new("subject", subject)]);
                        }
                    }
                })
                .build(),
        );
        let m = metrics.clone();
        ints.push(
            meter
                .u64_observable_counter(format!("{name}.count"))
                .with_description(format!("{}: how many values", metric.help()))
                .with_unit("{value}")
                .with_callback(move |o| {
                    for (subject, t) in series(&m, metric) {
                        o.observe(t.count, &[KeyValue::new("subject", subject)]);
                    }
                })
                .build(),
        );
        let m = metrics.clone();
        ints.push(
            meter
                .u64_observable_counter(format!("{name}.failures"))
                .with_description(format!("{}: the failed ones", metric.help()))
                .with_unit("{event}")
                .with_callback(move |o| {
                    for (subject, t) in series(&m, metric) {
                        if t.ok + t.failed > 0 {
                            o.observe(t.failed, &[KeyValue::new("subject", subject)]);
                        }
                    }
                })
                .build(),
        );
    }
    (ints, floats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_endpoint_and_the_signal_path() {
        assert_eq!(
            metrics_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            metrics_url("https://otel.example/prefix/"),
            "https://otel.example/prefix/v1/metrics"
        );
    }

    #[test]
    fn instrument_names_are_valid() {
        for &m in Metric::ALL {
            let name = instrument_name(m);
            assert!(name.len() + ".failures".len() <= 255);
            let mut chars = name.chars();
            assert!(chars.next().is_some_and(|c| c.is_ascii_alphabetic()));
            assert!(chars.all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)));
        }
    }
}
