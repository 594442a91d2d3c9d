//! The health checks a `probe` actor runs, and the hysteresis it applies to their results. A
//! library: no actor, no config parsing here.
//!
//! - `actor`: `ProbeActor`: the schedule, the hysteresis, samples, events, alerts, heal actions,
//!   and the shared [`actor::Probes`] registry of reports.
//! - [`check`]: what a check is ([`CheckSpec`], one variant per kind, with its defaults), what it
//!   answers ([`CheckOutcome`]), what it keeps between runs ([`CheckState`]), and [`run`], which
//!   runs one check under a timeout.
//! - One module per kind, each with its pure evaluation unit-tested: [`disk`] (free space and
//!   the time-to-full trend), [`memory`] (`MemAvailable`), [`sqlite`] (integrity, size, row
//!   counts), [`net`] (TCP connect, HTTP GET), [`command`] (a program's exit status).
//! - [`data`]: checks the actor evaluates from data it is given (sync recency, open breakers).
//! - [`status`]: [`ProbeState`], the probe's reported status from consecutive raw results.
//!
//! Every check is bounded by the timeout given to [`run`]. Checks that cannot be cancelled
//! (a `statvfs` on a hung mount, SQLite's integrity check) run detached and are not started
//! again while the previous one still runs: a slow target costs one thread, not one per run.
//! And they run only with one of the daemon's [`Slots`] (2 x CPUs, at least 4, by default):
//! many probes with slow targets cost that many threads, not one per probe; a run that gets
//! no slot within its timeout warns "not checked".

pub mod actor;
pub mod check;
pub mod command;
pub mod data;
pub mod disk;
pub mod memory;
pub mod net;
pub mod sqlite;
pub mod status;

pub use check::{
    run, CheckOutcome, CheckSpec, CheckState, CommandSpec, DiskSpec, Health, HttpSpec, MemorySpec,
    ProcessCheckSpec, Slots, SqliteSpec, SyncRecencySpec, TcpSpec,
};
pub use data::{breakers, process, sync_recency, SyncHistory};
pub use status::{ProbeState, StatusChange, Thresholds};

use std::time::Duration;

/// A byte count for people, in decimal units as the defaults are written (`10 GB`, `512 MB`,
/// `1.23 GB`, `999 B`).
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    let mut number = format!("{v:.digits$}");
    if number.contains('.') {
        number = number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
    }
    format!("{number} {unit}")
}

/// A configured duration (`2s`, `1m 30s`, `150ms`).
pub fn fmt_limit(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A measured duration, rounded for people (`0.42 ms`, `12 ms`, `1.5 s`).
pub fn fmt_elapsed(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// An approximate span for people: `~40 min`, `~7 h`, `~3 days`.
pub fn fmt_approx(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 3600 {
        format!("~{} min", (secs + 30) / 60)
    } else if secs < 48 * 3600 {
        format!("~{} h", (secs + 1800) / 3600)
    } else {
        format!("~{} days", (secs + 43_200) / 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_decimal_units() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_bytes(1000), "1 kB");
        assert_eq!(fmt_bytes(1_500), "1.5 kB");
        assert_eq!(fmt_bytes(1_234_567_890), "1.23 GB");
        assert_eq!(fmt_bytes(10_000_000_000), "10 GB");
        assert_eq!(fmt_bytes(12_345_000_000), "12.3 GB");
        assert_eq!(fmt_bytes(500_000_000), "500 MB");
        assert_eq!(fmt_bytes(u64::MAX), "18.4 EB");
    }

    #[test]
    fn durations_are_shown_for_people() {
        assert_eq!(fmt_limit(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_elapsed(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(fmt_elapsed(Duration::from_millis(12)), "12 ms");
        assert_eq!(fmt_elapsed(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(fmt_approx(Duration::from_secs(40 * 60)), "~40 min");
        assert_eq!(fmt_approx(Duration::from_secs(7 * 3600 + 100)), "~7 h");
        assert_eq!(fmt_approx(Duration::from_secs(3 * 86_400)), "~3 days");
    }
}
