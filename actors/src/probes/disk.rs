//! Free disk space, and how soon the disk is full at the current rate.
//!
//! The space is what `statvfs` reports as available to unprivileged users (`f_bavail` blocks of
//! `f_frsize` bytes), read on the blocking pool (a hung network mount must not hold the
//! scheduler). Each run adds a point to a [`DiskTrend`]: at most [`TREND_MAX_POINTS`] over the
//! last [`TREND_WINDOW`], thinned to about one every [`TREND_SPACING`]. A least-squares line
//! through them gives the rate; the time to full is the latest free space over that rate.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::check::{detached, unit, CheckOutcome, CheckState, DiskSpec, Health};
use super::{fmt_approx, fmt_bytes};

/// How far back the trend looks.
pub const TREND_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The most points the trend keeps.
pub const TREND_MAX_POINTS: usize = 512;
/// Points closer together than this are merged (the newest reading kept).
pub const TREND_SPACING: Duration = Duration::from_secs(5 * 60);
/// The least time the points must span before the trend projects anything.
pub const TREND_MIN_SPAN: Duration = Duration::from_secs(10 * 60);
/// The fewest points the trend projects from.
pub const TREND_MIN_POINTS: usize = 3;

/// What `statvfs` says of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Available to unprivileged users.
    pub available: u64,
    pub total: u64,
}

/// The free space of the filesystem holding `path` (blocking).
pub fn fs_space(path: &Path) -> Result<FsSpace, String> {
    match rustix::fs::statvfs(path) {
        Ok(st) => Ok(FsSpace {
            available: st.f_bavail.saturating_mul(st.f_frsize),
            total: st.f_blocks.saturating_mul(st.f_frsize),
        }),
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
            Err(format!("{} does not exist", path.display()))
        }
        Err(e) => Err(format!(
            "cannot read the free space of {}: {e}",
            path.display()
        )),
    }
}

/// Free space over time: `(unix ms, free bytes)`, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskTrend {
    points: VecDeque<(i64, u64)>,
}

impl DiskTrend {
    /// Adds a reading. A clock that went back clears the history; readings within
    /// [`TREND_SPACING`] of the point before the last replace the last; points older than
    /// [`TREND_WINDOW`] and beyond [`TREND_MAX_POINTS`] are dropped.
    pub fn record(&mut self, now_ms: i64, free: u64) {
        if self.points.back().is_some_and(|&(t, _)| now_ms < t) {
            self.points.clear();
        }
        let spacing = millis(TREND_SPACING);
        let n = self.points.len();
        let close = n >= 2 && now_ms.saturating_sub(self.points[n - 2].0) < spacing;
        if close {
            self.points.pop_back();
        }
        self.points.push_back((now_ms, free));
        let window = millis(TREND_WINDOW);
        while self
            .points
            .front()
            .is_some_and(|&(t, _)| now_ms.saturating_sub(t) > window)
        {
            self.points.pop_front();
        }
        while self.points.len() > TREND_MAX_POINTS {
            self.points.pop_front();
        }
    }

    /// The readings kept, oldest first.
    pub fn points(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.points.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// See [`project`].
    pub fn projection(&self) -> Option<Projection> {
        let points: Vec<(i64, u64)> = self.points().collect();
        project(&points)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Where the trend goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// Least-squares slope, bytes per second (negative: filling up).
    pub bytes_per_second: f64,
    /// When free space reaches zero at that rate, from the latest reading; `None` when it is
    /// not shrinking.
    pub time_to_full: Option<Duration>,
}

/// The least-squares line through `points` (`(unix ms, free bytes)`, oldest first): its slope,
/// and the time until the latest free space reaches zero at that rate. `None` with fewer than
/// [`TREND_MIN_POINTS`] points or when they span less than [`TREND_MIN_SPAN`].
pub fn project(points: &[(i64, u64)]) -> Option<Projection> {
    let (&(first_t, _), &(last_t, last_free)) = (points.first()?, points.last()?);
    if points.len() < TREND_MIN_POINTS || last_t.saturating_sub(first_t) < millis(TREND_MIN_SPAN) {
        return None;
    }
    let n = points.len() as f64;
    // Seconds since the first point, so the sums stay well-conditioned.
    let xs = points
        .iter()
        .map(|&(t, f)| ((t.saturating_sub(first_t)) as f64 / 1000.0, f as f64));
    let (sx, sy) = xs.clone().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) = xs.fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    if !slope.is_finite() {
        return None;
    }
    let time_to_full = if slope < 0.0 {
        Duration::try_from_secs_f64(last_free as f64 / -slope).ok()
    } else {
        None
    };
    Some(Projection {
        bytes_per_second: slope,
        time_to_full,
    })
}

/// The outcome for `space` measured at `path` with the trend's `projection`.
pub fn evaluate(spec: &DiskSpec, space: FsSpace, projection: Option<Projection>) -> CheckOutcome {
    let free = space.available;
    let (mut status, mut message) = if free < spec.fail_below_bytes {
        (
            Health::Fail,
            format!(
                "{} free on {}, below {}",
                fmt_bytes(free),
                spec.path.display(),
                fmt_bytes(spec.fail_below_bytes)
            ),
        )
    } else if free < spec.warn_below_bytes {
        (
            Health::Warn,
            format!(
                "{} free on {}, below {}",
                fmt_bytes(free),
                spec.path.display(),
                fmt_bytes(spec.warn_below_bytes)
            ),
        )
    } else {
        (
            Health::Pass,
            format!(
                "{} free of {} on {}",
                fmt_bytes(free),
                fmt_bytes(space.total),
                spec.path.display()
            ),
        )
    };
    let time_to_full = projection.and_then(|p| p.time_to_full);
    if let (Some(eta), Some(within)) = (time_to_full, spec.warn_full_within) {
        if eta <= within {
            status = status.worst(Health::Warn);
            message.push_str(&format!(
                "; full in {} at the current rate",
                fmt_approx(eta)
            ));
        }
    }
    CheckOutcome::new(status, message)
        .with_value(free as f64, unit::BYTES)
        .with_details(json!({
            "path": spec.path.display().to_string(),
            "available_bytes": free,
            "total_bytes": space.total,
            "bytes_per_hour": projection.map(|p| (p.bytes_per_second * 3600.0).round()),
            "full_in_seconds": time_to_full.map(|d| d.as_secs()),
        }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

/// `permit`: the slot held until the `statvfs` returns (past a timeout too).
pub(crate) async fn check(
    spec: &DiskSpec,
    state: &mut CheckState,
    permit: Option<OwnedSemaphorePermit>,
) -> CheckOutcome {
    let path: PathBuf = spec.path.clone();
    let measured = detached(&mut state.disk_pending, move || {
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            fs_space(&path)
        })
    })
    .await;
    let space = match measured {
        Ok(Ok(space)) => space,
        Ok(Err(message)) | Err(message) => {
            return CheckOutcome::fail(message)
                .with_details(json!({ "path": spec.path.display().to_string() }));
        }
    };
    state.trend.record(now_ms(), space.available);
    evaluate(spec, space, state.trend.projection())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_steady_decline_projects_its_time_to_full() {
        // 1 GB an hour, 10 GB left at the last point.
        let points: Vec<(i64, u64)> = (0..=6)
            .map(|h| (h * HOUR, 16_000_000_000 - h as u64 * 1_000_000_000))
            .collect();
        let p = project(&points).unwrap();
        assert!((p.bytes_per_second * 3600.0 + 1e9).abs() < 1.0, "{p:?}");
        let eta = p.time_to_full.unwrap();
        assert!((eta.as_secs_f64() - 10.0 * 3600.0).abs() < 1.0, "{eta:?}");
    }

    #[test]
    fn noise_is_averaged_by_the_fit() {
        let points = [
            (0, 1_000_000),
            (10 * MIN, 900_000),
            (20 * MIN, 850_000),
            (30 * MIN, 700_000),
        ];
        let p = project(&points).unwrap();
        // Slope of the least-squares line: -9500 bytes per minute.
        assert!((p.bytes_per_second * 60.0 + 9500.0).abs() < 1e-6, "{p:?}");
        let eta = p.time_to_full.unwrap().as_secs_f64();
        assert!((eta - 700_000.0 / (9500.0 / 60.0)).abs() < 1e-3, "{eta}");
    }

    #[test]
    fn growing_or_flat_space_never_fills() {
        let flat = [(0, 5), (10 * MIN, 5), (20 * MIN, 5)];
        assert_eq!(project(&flat).unwrap().time_to_full, None);
        let growing = [(0, 5), (10 * MIN, 6), (20 * MIN, 7)];
        assert_eq!(project(&growing).unwrap().time_to_full, None);
    }

    #[test]
    fn too_little_history_projects_nothing() {
        assert_eq!(project(&[]), None);
        assert_eq!(project(&[(0, 10), (HOUR, 5)]), None);
        // Three points within a few minutes: too short a span.
        assert_eq!(project(&[(0, 10), (MIN, 9), (2 * MIN, 8)]), None);
        // Identical times (a clock that stood still).
        assert_eq!(project(&[(HOUR, 10), (HOUR, 9), (HOUR, 8)]), None);
    }

    #[test]
    fn full_already_is_zero_time() {
        let p = project(&[(0, 200), (10 * MIN, 100), (20 * MIN, 0)]).unwrap();
        assert_eq!(p.time_to_full, Some(Duration::ZERO));
    }

    #[test]
    fn the_trend_is_thinned_windowed_and_bounded() {
        let mut t = DiskTrend::default();
        // One reading a minute for two days.
        for m in 0..(48 * 60) {
            t.record(m * MIN, 1_000_000 - m as u64);
        }
        assert!(t.len() <= TREND_MAX_POINTS);
        let points: Vec<_> = t.points().collect();
        let (first, last) = (points[0].0, points[points.len() - 1].0);
        assert_eq!(last, (48 * 60 - 1) * MIN);
        assert!(last - first <= 24 * HOUR);
        // Thinned: every other gap spans at least the spacing.
        for w in points.windows(3) {
            assert!(w[2].0 - w[0].0 >= millis(TREND_SPACING), "{w:?}");
        }
        assert!(t.len() >= 24 * 60 / 5, "{}", t.len());
        // A steady minute-by-minute decline is still projected.
        let eta = t.projection().unwrap().time_to_full.unwrap();
        let expected = (1_000_000 - (48 * 60 - 1)) as f64 * 60.0;
        assert!((eta.as_secs_f64() - expected).abs() / expected < 1e-6);
    }

    #[test]
    fn a_clock_going_back_starts_the_trend_again() {
        let mut t = DiskTrend::default();
        t.record(10 * HOUR, 5);
        t.record(11 * HOUR, 4);
        t.record(HOUR, 3);
        assert_eq!(t.points().collect::<Vec<_>>(), vec![(HOUR, 3)]);
    }

    fn space(available: u64) -> FsSpace {
        FsSpace {
            available,
            total: 100_000_000_000,
        }
    }

    #[test]
    fn thresholds_decide_the_status() {
        let spec = DiskSpec::new("/data");
        let pass = evaluate(&spec, space(20_000_000_000), None);
        assert_eq!(pass.status, Health::Pass);
        assert_eq!(pass.message, "20 GB free of 100 GB on /data");
        assert_eq!(pass.value, Some(20e9));
        assert_eq!(pass.unit, "bytes");
        let warn = evaluate(&spec, space(7_000_000_000), None);
        assert_eq!(warn.status, Health::Warn);
        assert_eq!(warn.message, "7 GB free on /data, below 10 GB");
        let fail = evaluate(&spec, space(4_999_999_999), None);
        assert_eq!(fail.status, Health::Fail);
        assert!(fail.message.ends_with("below 5 GB"), "{}", fail.message);
    }

    #[test]
    fn a_disk_filling_soon_warns() {
        let spec = DiskSpec::new("/data");
        let soon = Projection {
            bytes_per_second: -1e6,
            time_to_full: Some(Duration::from_secs(7 * 3600 + 60)),
        };
        let o = evaluate(&spec, space(50_000_000_000), Some(soon));
        assert_eq!(o.status, Health::Warn);
        assert!(
            o.message.ends_with("; full in ~7 h at the current rate"),
            "{}",
            o.message
        );
        assert_eq!(o.details["full_in_seconds"], 7 * 3600 + 60);
        assert_eq!(o.details["bytes_per_hour"], -3.6e9);
        // Beyond the horizon, or with the warning off: no warning.
        let later = Projection {
            time_to_full: Some(Duration::from_secs(25 * 3600)),
            ..soon
        };
        assert_eq!(
            evaluate(&spec, space(50_000_000_000), Some(later)).status,
            Health::Pass
        );
        let off = DiskSpec {
            warn_full_within: None,
            ..spec.clone()
        };
        assert_eq!(
            evaluate(&off, space(50_000_000_000), Some(soon)).status,
            Health::Pass
        );
        // A failure stays a failure, with the projection said too.
        let o = evaluate(&spec, space(1_000_000_000), Some(soon));
        assert_eq!(o.status, Health::Fail);
        assert!(o.message.contains("full in"), "{}", o.message);
    }

    #[test]
    fn a_missing_path_is_named() {
        let err = fs_space(Path::new("/no/such/metasystem/path")).unwrap_err();
        assert_eq!(err, "/no/such/metasystem/path does not exist");
    }
}
