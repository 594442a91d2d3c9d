//! The Prometheus text exposition format 0.0.4, rendered from [`Metrics::totals`] and a few
//! daemon gauges.
//!
//! Per metric with at least one series, one family with `# HELP` and `# TYPE`:
//! - occurrences ([`Unit::Events`]): a counter `metasystem_<name>_total{subject}`, split by
//!   `outcome="ok|failed"` when the series reports outcomes (samples without one, if any, stay
//!   in a series with `subject` only);
//! - measurements: a summary without quantiles, `<name>_sum{subject}` and `<name>_count{subject}`
//!   (mean = rate(sum) / rate(count)); when the series reports outcomes, also a counter family
//!   `metasystem_<name>_failures_total{subject}`.
//!
//! [`Metrics::totals`]: metasystem_actors::metrics::Metrics::totals

use std::fmt::Write as _;

use metasystem_actors::metrics::{Metric, SeriesTotal, Unit};

/// The Content-Type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Daemon-wide values read cheaply (no message round trip) when a scrape comes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub version: String,
    /// The commit the binary is built from (`abc1234`, `abc1234-dirty`, `unknown`).
    pub revision: String,
    pub uptime_seconds: f64,
    /// Telemetry rows the store dropped (intake full).
    pub store_dropped_rows: u64,
    /// Telemetry rows waiting to be written.
    pub store_queued_rows: u64,
    /// Failed write attempts.
    pub store_write_failures: u64,
    /// Writes are failing now.
    pub store_failing: bool,
    /// Log lines lost because the log writer or stderr did not keep up.
    pub log_lines_dropped: u64,
    /// Log lines the `log_file` refused (they went to stderr instead).
    pub log_file_lines_refused: u64,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a HELP text: backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus reads it (Go's ParseFloat): `NaN`, `+Inf`, `-Inf`, else Rust's
/// shortest round-trip form (exponents for very large or small values).
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Renders the whole exposition. `totals` as [`Metrics::totals`] returns them (sorted by
/// metric, then subject; any order works).
///
/// [`Metrics::totals`]: metasystem_actors::metrics::Metrics::totals
pub fn render(totals: &[((Metric, String), SeriesTotal)], gauges: &Gauges) -> String {
    let mut out = String::with_capacity(1024 + totals.len() * 160);
    daemon_gauges(&mut out, gauges);
    for &metric in Metric::ALL {
        let series: Vec<(&str, &SeriesTotal)> = totals
            .iter()
            .filter(|((m, _), _)| *m == metric)
            .map(|((_, subject), t)| (subject.as_str(), t))
            .collect();
        if series.is_empty() {
            continue;
        }
        let name = metric.prometheus_name();
        if metric.unit() == Unit::Events {
            family(&mut out, &name, "counter", metric.help());
            for (subject, t) in &series {
                let with_outcome = t.ok + t.failed;
                if with_outcome == 0 {
                    sample(
                        &mut out,
                        &name,
                        &[("subject", subject)],
                        &t.count.to_string(),
                    );
                    continue;
                }
                for (outcome, n) in [("ok", t.ok), ("failed", t.failed)] {
                    let labels = [("subject", *subject), ("outcome", outcome)];
                    sample(&mut out, &name, &labels, &n.to_string());
                }
                let without = t.count.saturating_sub(with_outcome);
                if without > 0 {
                    sample(
                        &mut out,
                        &name,
                        &[("subject", subject)],
                        &without.to_string(),
                    );
                }
            }
            continue;
        }
        family(&mut out, &name, "summary", metric.help());
        for (subject, t) in &series {
            sample(
                &mut out,
                &format!("{name}_sum"),
                &[("subject", subject)],
                &float(t.sum),
            );
            let count = t.count.to_string();
            sample(
                &mut out,
                &format!("{name}_count"),
                &[("subject", subject)],
                &count,
            );
        }
        if series.iter().any(|(_, t)| t.ok + t.failed > 0) {
            let failures = format!("metasystem_{}_failures_total", metric.name());
            let help = format!("{}: the failed ones", metric.help());
            family(&mut out, &failures, "counter", &help);
            for (subject, t) in series.iter().filter(|(_, t)| t.ok + t.failed > 0) {
                sample(
                    &mut out,
                    &failures,
                    &[("subject", subject)],
                    &t.failed.to_string(),
                );
            }
        }
    }
    out
}

fn daemon_gauges(out: &mut String, g: &Gauges) {
    family(out, "metasystem_up", "gauge", "1 while the daemon runs");
    sample(out, "metasystem_up", &[], "1");
    family(
        out,
        "metasystem_build_info",
        "gauge",
        "the daemon's version and the commit it is built from, as labels; always 1",
    );
    sample(
        out,
        "metasystem_build_info",
        &[("version", &g.version), ("revision", &g.revision)],
        "1",
    );
    family(
        out,
        "metasystem_uptime_seconds",
        "gauge",
        "seconds since the daemon started",
    );
    sample(
        out,
        "metasystem_uptime_seconds",
        &[],
        &float(g.uptime_seconds),
    );
    let counters = [
        (
            "metasystem_store_dropped_rows_total",
            "telemetry rows the store dropped because its intake was full",
            g.store_dropped_rows,
        ),
        (
            "metasystem_store_write_failures_total",
            "failed write attempts of the store",
            g.store_write_failures,
        ),
        (
            "metasystem_log_lines_dropped_total",
            "log lines lost because the log writer or stderr did not keep up",
            g.log_lines_dropped,
        ),
        (
            "metasystem_log_file_lines_refused_total",
            "log lines the log file refused (written to stderr instead)",
            g.log_file_lines_refused,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        sample(out, name, &[], &value.to_string());
    }
    family(
        out,
        "metasystem_store_queued_rows",
        "gauge",
        "telemetry rows waiting to be written",
    );
    sample(
        out,
        "metasystem_store_queued_rows",
        &[],
        &g.store_queued_rows.to_string(),
    );
    family(
        out,
        "metasystem_store_failing",
        "gauge",
        "1 while the store's writes fail",
    );
    sample(
        out,
        "metasystem_store_failing",
        &[],
        if g.store_failing { "1" } else { "0" },
    );
}

#[cfg(test)]
mod tests {
    use super::super::text_check::parse;
    use super::*;

    fn total(count: u64, ok: u64, failed: u64, sum: f64) -> SeriesTotal {
        SeriesTotal {
            count,
            ok,
            failed,
            sum,
            last: 0.0,
            last_ms: 0,
        }
    }

    fn gauges() -> Gauges {
        Gauges {
            version: "0.1.0".into(),
            revision: "abc1234".into(),
            uptime_seconds: 12.5,
            store_dropped_rows: 3,
            ..Gauges::default()
        }
    }

    #[test]
    fn empty_totals_render_the_daemon_gauges_only() {
        let text = render(&[], &gauges());
        let e = parse(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
        assert_eq!(e.find("metasystem_up")[0].value, 1.0);
        assert_eq!(e.find("metasystem_uptime_seconds")[0].value, 12.5);
        assert_eq!(e.find("metasystem_store_dropped_rows_total")[0].value, 3.0);
        assert_eq!(e.types["metasystem_store_dropped_rows_total"], "counter");
        assert_eq!(
            e.find("metasystem_build_info")[0].label("version"),
            Some("0.1.0")
        );
        assert_eq!(
            e.find("metasystem_build_info")[0].label("revision"),
            Some("abc1234")
        );
        assert!(!text.contains("actor_starts"));
    }

    #[test]
    fn events_are_counters_split_by_outcome() {
        let totals = vec![
            (
                (Metric::ActorStarts, "root/a".to_string()),
                total(3, 0, 0, 3.0),
            ),
            (
                (Metric::ActorStarts, "root/b".to_string()),
                total(1, 0, 0, 1.0),
            ),
            (
                (Metric::ActorExits, "root/a".to_string()),
                total(5, 2, 2, 5.0),
            ),
        ];
        let text = render(&totals, &gauges());
        let e = parse(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
        assert_eq!(e.types["metasystem_actor_starts_total"], "counter");
        assert_eq!(
            e.help["metasystem_actor_starts_total"],
            Metric::ActorStarts.help()
        );
        let starts = e.find("metasystem_actor_starts_total");
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0].labels, vec![("subject".into(), "root/a".into())]);
        assert_eq!(starts[0].value, 3.0);
        let exits = e.find("metasystem_actor_exits_total");
        let by = |outcome: Option<&str>| {
            exits
                .iter()
                .find(|s| s.label("outcome") == outcome)
                .map(|s| s.value)
        };
        assert_eq!(by(Some("ok")), Some(2.0));
        assert_eq!(by(Some("failed")), Some(2.0));
        // The one sample without an outcome.
        assert_eq!(by(None), Some(1.0));
        // HELP and TYPE once per family.
        assert_eq!(
            text.matches("# TYPE metasystem_actor_starts_total ")
                .count(),
            1
        );
    }

    #[test]
    fn measurements_are_summaries_with_a_failures_counter() {
        let totals = vec![
            (
                (Metric::AlertDeliveries, "log".to_string()),
                total(4, 3, 1, 0.25),
            ),
            (
                (Metric::ActorRestartDelay, "root/a".to_string()),
                total(2, 0, 0, 1.5),
            ),
        ];
        let text = render(&totals, &gauges());
        let e = parse(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
        let name = Metric::AlertDeliveries.prometheus_name();
        assert_eq!(e.types[&name], "summary");
        assert_eq!(e.find(&format!("{name}_sum"))[0].value, 0.25);
        assert_eq!(e.find(&format!("{name}_count"))[0].value, 4.0);
        let failures = e.find("metasystem_alert_delivery_failures_total");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].value, 1.0);
        assert_eq!(failures[0].label("subject"), Some("log"));
        // No outcomes: no failures family.
        assert!(!text.contains("metasystem_actor_restart_delay_failures_total"));
        let delay = Metric::ActorRestartDelay.prometheus_name();
        assert_eq!(e.find(&format!("{delay}_sum"))[0].value, 1.5);
    }

    #[test]
    fn label_values_are_escaped() {
        let subject = "a\\b \"quoted\"\nnext line, {x=\"y\"}";
        let totals = vec![(
            (Metric::ActorStarts, subject.to_string()),
            total(1, 0, 0, 1.0),
        )];
        let text = render(&totals, &gauges());
        assert!(text.contains(r#"subject="a\\b \"quoted\"\nnext line, {x=\"y\"}""#));
        let e = parse(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
        assert_eq!(
            e.find("metasystem_actor_starts_total")[0].label("subject"),
            Some(subject)
        );
    }

    #[test]
    fn floats_are_spelled_as_prometheus_reads_them() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(-2.5), "-2.5");
        for v in [1e300, 1e-300, f64::MAX, f64::MIN_POSITIVE, 123456789.125] {
            assert_eq!(float(v).parse::<f64>().ok(), Some(v), "{v}");
        }
        let totals = vec![
            (
                (Metric::ActorRestartDelay, "inf".to_string()),
                total(1, 0, 0, f64::INFINITY),
            ),
            (
                (Metric::ActorRestartDelay, "nan".to_string()),
                total(1, 0, 0, f64::NAN),
            ),
            (
                (Metric::ActorRestartDelay, "big".to_string()),
                total(1, 0, 0, 1e300),
            ),
        ];
        let text = render(&totals, &gauges());
        let e = parse(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
        let sums = e.find("metasystem_actor_restart_delay_seconds_sum");
        assert_eq!(sums.len(), 3);
        assert!(sums.iter().any(|s| s.value == f64::INFINITY));
        assert!(sums.iter().any(|s| s.value.is_nan()));
        assert!(sums.iter().any(|s| s.value == 1e300));
    }

    #[test]
    fn every_metric_renders_valid_and_unique_families() {
        let mut totals = Vec::new();
        for &m in Metric::ALL {
            for subject in ["", "root/x", "root/y"] {
                totals.push(((m, subject.to_string()), total(3, 1, 1, 2.0)));
            }
        }
        let text = render(&totals, &gauges());
        let e = parse(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
        for &m in Metric::ALL {
            assert!(e.types.contains_key(&m.prometheus_name()), "{m}");
        }
    }

    #[test]
    fn the_checker_refuses_what_prometheus_would() {
        for bad in [
            "metasystem_up 1",                                // no newline at the end
            "metasystem_up 1\n",                              // no TYPE
            "# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n", // duplicate series
            "# TYPE a counter\na{x=\"a\\q\"} 1\n",            // bad escape
            "# TYPE a counter\na{x=\"1\"} inf\n",             // bad float
            "# TYPE a gauge\n# TYPE b gauge\na 1\n",          // not contiguous
            "# TYPE a gauge\n# TYPE a gauge\na 1\n",          // TYPE twice
            "# TYPE a counter\na -1\n",                       // negative counter
            "# TYPE a gauge\na{x=1} 1\n",                     // unquoted
            "# TYPE a gauge\n\na 1\n",                        // empty line
            "# TYPE a gauge\na 1 2 3\n",                      // trailing text
            "# TYPE 1a gauge\n",                              // bad name
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let good = "# HELP a x\\ny\n# TYPE a gauge\na{x=\"\\\"\",y=\"\"} NaN\na -Inf 123\n";
        assert!(parse(good).is_ok());
    }
}
